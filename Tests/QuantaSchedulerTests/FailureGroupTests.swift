import Foundation
import Testing
import QuantaScheduler

/// Failures grouped by task and masked first line (pure logic).
@Suite struct FailureGroupTests {
    @Test func specificsAreMasked() {
        #expect(FailureGroups.mask("No reference objects in detector 17 of visit 903334") == "No reference objects in detector N of visit N")
        #expect(FailureGroups.mask("/data/repo/u/me/run/calexp_903334.fits: cfitsio could not read rows 0..<128")
                == "<path>: cfitsio could not read rows N..<N")
        #expect(FailureGroups.mask("dataset 0196a1b2-3c4d-7e8f-9a0b-1c2d3e4f5a6b missing for {visit: 12, detector: 3}")
                == "dataset <uuid> missing for {…}")
        #expect(FailureGroups.mask("ValueError: sigma=1.5e-3 too small") == "ValueError: sigma=N too small")
        #expect(FailureGroups.mask("HSC-G band") == "HSC-G band", "letters are kept")
    }

    /// Blocked quanta count under the failure at their root, whichever job they were in; blocked
    /// ones with no failed root (their upstream never ran) make their own group.
    @Test func blockedQuantaGoUnderTheirRootFailure() {
        typealias Row = SubmissionStatus.QuantumRow
        var rows: [Row] = []
        for d in [3, 17] {
            rows.append(Row(task: "isr", dataID: "{detector=\(d)}", state: .failed, reason: "/raw/\(d).fits: truncated at byte \(d * 100)", log: "/logs/\(d)"))
        }
        rows.append(Row(task: "calibrate", dataID: "{detector=5}", state: .failed, reason: "ValueError: no stars", log: nil))
        for d in 0..<26 {
            rows.append(Row(task: d < 20 ? "calibrate" : "gather", dataID: "{d=\(d)}", state: .blocked, reason: "upstream isr failed",
                            log: nil, blockedByTask: "isr", blockedByReason: "/raw/\(d).fits: truncated at byte \(d)"))
        }
        rows.append(Row(task: "gather", dataID: "{visit=1}", state: .blocked, reason: "upstream calibrate {…} did not run (job calibrate:4 has no manifest)", log: nil))
        let groups = FailureGroups.of(rows: rows) { task, message in message.contains("stars") ? "rule 1 (accept)" : nil }
        #expect(groups.count == 3, "\(groups)")
        #expect(groups[0].task == "isr" && groups[0].count == 2 && groups[0].blocked == 26 && groups[0].message == "<path>: truncated at byte N")
        #expect(groups[0].examples == ["{detector=3}", "{detector=17}"] && groups[0].log == "/logs/3")
        #expect(groups[1].task == "calibrate" && groups[1].rule == "rule 1 (accept)" && groups[1].count == 1 && groups[1].blocked == 0)
        #expect(groups[2].state == "blocked" && groups[2].count == 1)
        let text = FailureGroups.render(groups, limit: 2)
        #expect(text[0] == "      2 × isr failed — blocked 26 downstream: <path>: truncated at byte N", "\(text)")
        #expect(text.last == "  … 1 more groups (--all or --json lists them)")
    }

    /// Each group counts what ended its quanta's jobs: the task's own error or the infrastructure.
    @Test func groupsSayPayloadOrInfrastructure() {
        typealias Row = SubmissionStatus.QuantumRow
        let rows = [
            Row(task: "isr", dataID: "{d=1}", state: .failed, reason: "exit code 137", log: nil, jobFailureClass: .outOfMemory),
            Row(task: "isr", dataID: "{d=2}", state: .failed, reason: "exit code 137", log: nil, jobFailureClass: .outOfMemory),
            Row(task: "isr", dataID: "{d=3}", state: .failed, reason: "exit code 137", log: nil, jobFailureClass: .failed),
            Row(task: "calibrate", dataID: "{d=4}", state: .failed, reason: "ValueError", log: nil, jobFailureClass: .failed),
        ]
        let groups = FailureGroups.of(rows: rows)
        #expect(groups[0].classes == ["infrastructure: out of memory": 2, "payload": 1])
        #expect(groups[1].classes == ["payload": 1])
        let text = FailureGroups.render(groups, limit: 5)
        #expect(text[0] == "      3 × isr failed (2 infrastructure: out of memory, 1 payload): exit code N", "\(text)")
        #expect(text[2] == "      1 × calibrate failed (payload): ValueError", "\(text)")
    }
}
