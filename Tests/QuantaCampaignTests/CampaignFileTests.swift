import Foundation
import Testing
import QuantaCore
@testable import QuantaCampaign

/// The campaign file: what it reads, and one clear error (file, line, fix) for each kind of mistake.
@Suite struct CampaignFileTests {
    static let full = """
    name: hsc-rc2
    repository: /repo/main
    site: local-slurm
    config: submit.yaml
    inputs: [HSC/RC2/defaults]
    output: u/ops/rc2
    schedule: "0 3 */14 * *"
    retention: {keep: 2}
    notify: mail -s campaign ops@example.org
    rules:
      - {task: calibrate, message: "No reference objects", class: pipeline, action: accept}
      - {message: "Connection reset", class: infrastructure, action: retry, retries: 3}
    steps:
      - name: step1
        pipeline: DRP.yaml#step1
        dataQuery: "instrument='HSC' AND skymap='hsc_rings_v1'"
        groups: {dimension: band, values: [g, r, i]}
        overrides: ["isr:doDark=False", "-C calibrate:cal.py"]
        groupOverrides: {g: ["calibrate:connections.refCat=ps1_g"]}
        pilot: "tract=9813"
        gate: {maxFailedFraction: 0.05, datasetTypes: [calexp]}
      - name: check
        after: step1
        script: python3 check.py {value}
        over: [a, b]
        gate: manual
      - name: step2
        after: [step1, check]
        builtin: [makeWarp, assembleCoadd]
        groups:
          queries: {north: "tract=9813", south: "tract=9697"}
      - name: ready
        graph: prebuilt.qgn
    """

    @Test func readsEveryPart() throws {
        let s = try CampaignFile.parse(Self.full, source: "c.yaml")
        #expect(s.name == "hsc-rc2" && s.repository == "/repo/main" && s.site == "local-slurm" && s.config == "submit.yaml")
        #expect(s.inputs == ["HSC/RC2/defaults"] && s.output == "u/ops/rc2" && s.retention == Retention(keep: 2))
        #expect(s.schedule?.text == "0 3 */14 * *" && s.notify == "mail -s campaign ops@example.org")
        #expect(s.rules.count == 2 && s.rules[0].action == .accept && s.rules[1].retries == 3 && s.rules[1].origin == .infrastructure)
        #expect(s.steps.map(\.name) == ["step1", "check", "step2", "ready"])
        let one = s.steps[0]
        #expect(one.work == .pipeline("DRP.yaml#step1", dataQuery: "instrument='HSC' AND skymap='hsc_rings_v1'"))
        #expect(one.groups == .dimension("band", values: ["g", "r", "i"]))
        #expect(one.overrides == [.value(label: "isr", key: "doDark", value: "False"), .file(label: "calibrate", path: "cal.py")])
        #expect(one.overrides.flatMap(\.arguments) == ["-c", "isr:doDark=False", "-C", "calibrate:cal.py"])
        #expect(one.groupOverrides["g"] == [.value(label: "calibrate", key: "connections.refCat", value: "ps1_g")])
        #expect(one.pilot == "tract=9813" && one.gate?.maxFailedFraction == 0.05 && one.gate?.datasetTypes == ["calexp"])
        #expect(s.steps[1].work == .script(command: "python3 check.py {value}", over: ["a", "b"]) && s.steps[1].gate?.manual == true)
        #expect(s.steps[1].after == ["step1"] && s.steps[2].after == ["step1", "check"])
        #expect(s.steps[2].work == .builtin(tasks: ["makeWarp", "assembleCoadd"], dataQuery: nil))
        #expect(s.steps[2].groups == .queries([("north", "tract=9813"), ("south", "tract=9697")]))
        #expect(s.steps[3].work == .graph("prebuilt.qgn"))
    }

    /// Each mistake: the message names the file and line, and says what to do.
    @Test(arguments: [
        ("name: x\nrepository: r\nsteps:\n  - name: a\n    graph: g.qgn\n    gtae: manual\n", "c.yaml:6: steps[0]: unknown key 'gtae'; did you mean 'gate'?"),
        ("name: x\nrepository: r\nstesp: []\n", "c.yaml:3: the campaign: unknown key 'stesp'; did you mean 'steps'?"),
        ("name: x\nrepository: r\nsteps:\n  - name: a\n    graph: g\n    after: b\n  - name: b\n    graph: g\n",
         "c.yaml:6: step a comes after 'b', which is not a step above it (steps run in file order; move 'b' above 'a')"),
        ("name: x\nrepository: r\nsteps:\n  - name: a\n    graph: g\n  - name: b\n    graph: g\n    after: [aa]\n",
         "c.yaml:8: step b comes after 'aa', which is not a step above it (steps run in file order; move 'aa' above 'b')"),
        ("name: x\nrepository: r\nsteps:\n  - name: step1\n    graph: g\n  - name: b\n    graph: g\n    after: [setp1]\n",
         "c.yaml:8: step b comes after 'setp1', which is not a step above it (steps run in file order; move 'setp1' above 'b'; did you mean 'step1'?)"),
        ("name: x\nrepository: r\nsteps:\n  - name: a\n    graph: g\n    after: a\n", "c.yaml:6: step a cannot come after itself"),
        ("name: x\nrepository: r\nschedule: '0 25 * * *'\nsteps:\n  - {name: a, graph: g}\n", "c.yaml:3: schedule: '25' is not a hour (0-23)"),
        ("name: x\nrepository: r\nschedule: 'daily'\nsteps:\n  - {name: a, graph: g}\n", "c.yaml:3: schedule: 'daily' is not a cron schedule"),
        ("name: x\nrepository: r\nsteps:\n  - {name: a, graph: g, script: s}\n", "c.yaml:4: step a: give exactly one of pipeline"),
        ("name: x\nrepository: r\nsteps:\n  - {name: a, graph: g}\n  - {name: a, graph: h}\n", "c.yaml:5: step 'a' is defined twice"),
        ("name: x\nrepository: r\nrules:\n  - {message: '(', class: pipeline, action: accept}\nsteps:\n  - {name: a, graph: g}\n",
         "c.yaml:4: rules[0].message: '(' is not a regular expression"),
        ("name: x\nrepository: r\nrules:\n  - {message: m, class: pipline, action: accept}\nsteps:\n  - {name: a, graph: g}\n",
         "c.yaml:4: rules[0].class: 'pipline' is not one of infrastructure, configuration, pipeline"),
        ("name: x\nrepository: r\nsteps:\n  - {name: a, graph: g, gate: {maxFailedFraction: 5}}\n", "c.yaml:4: step a.gate.maxFailedFraction: a fraction from 0 to 1"),
        ("name: x\nrepository: r\nsteps:\n  - {name: a, graph: g, overrides: ['isr:doDark=False']}\n", "overrides are pipetask's -c/-C and apply to a pipeline step"),
        ("name: x\nrepository: r\nsteps:\n  - {name: a, pipeline: p.yaml, overrides: ['nonsense']}\n", "override 'nonsense' is neither label:key=value"),
        ("name: x\nrepository: r\nretention: {keep: 0}\nsteps:\n  - {name: a, graph: g}\n", "c.yaml:3: retention.keep: keep at least 1 run"),
        ("name: x y\nrepository: r\nsteps:\n  - {name: a, graph: g}\n", "c.yaml:1: name: 'x y'"),
        ("name: x\nsteps:\n  - {name: a, graph: g}\n", "c.yaml:1: missing 'repository'"),
        ("name: x\nrepository: r\nsteps: []\n", "c.yaml:3: steps: the campaign has no step"),
        ("name: x\nrepository: r\nsteps: [\n", "c.yaml: not valid YAML"),
        ("", "c.yaml: empty; a campaign needs name, repository and steps"),
    ])
    func mistakesAreOneClearLine(_ text: String, _ message: String) throws {
        #expect {
            try CampaignFile.parse(text, source: "c.yaml")
        } throws: { e in
            let m = "\(e)"
            return m.hasPrefix(message) || (m.hasPrefix("c.yaml") && m.contains(message)) && !m.contains("\n")
        }
    }

    /// The examples in docs/campaigns.md stay valid.
    @Test func theExamplesParse() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("examples/campaigns").path
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") }.sorted()
        #expect(files.count >= 4)
        for f in files {
            let spec = try CampaignFile.load(path: dir + "/" + f)
            #expect(!spec.steps.isEmpty, "\(f)")
        }
    }

    @Test func anyBytesAreAnErrorOrACampaign() throws {
        // Bit flips of a good file: each parses or fails with a QuantaError naming the file, never a trap.
        let bytes = Array(Self.full.utf8)
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<400 {
            var b = bytes
            for _ in 0..<3 { b[Int.random(in: 0..<b.count, using: &rng)] ^= UInt8(1 << Int.random(in: 0..<8, using: &rng)) }
            do { _ = try CampaignFile.parse(String(decoding: b, as: UTF8.self), source: "c.yaml") } catch let e as QuantaError {
                #expect(e.message.hasPrefix("c.yaml"), "\(e.message)")
            }
        }
    }
}

@Suite struct CronScheduleTests {
    static var utc: Calendar {
        var c = Calendar(identifier: .gregorian)
        c.timeZone = TimeZone(identifier: "UTC")!
        return c
    }

    static func date(_ s: String) -> Date { ISO8601DateFormatter().date(from: s)! }

    @Test(arguments: [
        ("0 3 * * 1", "2026-11-30T03:00:00Z", "2026-12-07T03:00:00Z"),  // Mondays 03:00, strictly after
        ("0 3 * * 1", "2026-11-30T02:59:00Z", "2026-11-30T03:00:00Z"),
        ("*/15 * * * *", "2026-11-30T10:07:12Z", "2026-11-30T10:15:00Z"),
        ("@daily", "2026-12-31T23:59:00Z", "2027-01-01T00:00:00Z"),
        ("30 2 1,15 * *", "2026-12-15T02:30:00Z", "2027-01-01T02:30:00Z"),
        ("0 0 29 2 *", "2027-01-01T00:00:00Z", "2028-02-29T00:00:00Z"),
        ("0 12 13 * fri", "2026-11-30T00:00:00Z", "2026-12-04T12:00:00Z"),  // day 13 OR Friday, as cron
        ("0 0 * * 7", "2026-11-30T00:00:00Z", "2026-12-06T00:00:00Z"),     // 7 is Sunday
        ("5 4 * jan-mar/2 *", "2026-11-30T00:00:00Z", "2027-01-01T04:05:00Z"),
    ])
    func nextTime(_ cron: String, _ after: String, _ expected: String) throws {
        let s = try CronSchedule(cron)
        #expect(s.next(after: Self.date(after), calendar: Self.utc) == Self.date(expected))
    }

    @Test func impossibleDatesHaveNoNextTime() throws {
        #expect(try CronSchedule("0 0 31 2 *").next(after: Self.date("2026-01-01T00:00:00Z"), calendar: Self.utc) == nil)
    }

    @Test(arguments: ["* * * *", "60 * * * *", "* * 0 * *", "*/0 * * * *", "5-1 * * * *", "a * * * *", "* * * foo *", ", * * * *"])
    func badSchedulesAreRefused(_ text: String) {
        #expect(throws: CronSchedule.ParseError.self) { try CronSchedule(text) }
    }
}
