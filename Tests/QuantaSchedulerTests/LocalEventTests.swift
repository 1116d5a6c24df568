import Foundation
import Testing
import QuantaTestSupport
@testable import QuantaScheduler
import QuantaCore

/// The local backend's event lines: one type writes and reads them (issue 15).
@Suite struct LocalEventTests {
    @Test func linesRoundTripToTheMicrosecond() throws {
        let e = LocalEvent(time: 1_780_000_000.123456, array: "isr", index: 42, kind: .end, detail: "exit code 1:\tboom\nline two")
        let back = try #require(LocalEvent(line: Substring(e.line.dropLast())))
        #expect(back.array == "isr" && back.index == 42 && back.kind == .end)
        #expect(abs(back.time - e.time) < 1e-6)
        #expect(back.detail == "exit code 1: boom line two", "a tab or newline in the detail cannot split the line")
        #expect(LocalEvent(time: 1, array: "a", index: 0, kind: .start, detail: "pid 123").pid == 123)
        #expect(LocalEvent(time: 1, array: "a", index: 0, kind: .end, detail: "pid 123").pid == nil)
    }

    @Test func linesItDidNotWriteAreSkipped() {
        for line in ["", "2026-11-30T07:00:00Z\tisr\t3\tstart\tpid 9", "1.5\tisr\tx\tstart\t", "1.5\tisr\t3\tbegun\t", "1.5\tisr"] {
            #expect(LocalEvent(line: Substring(line)) == nil, "\(line)")
        }
    }

    @Test func theLatestEventOfEachJobWins() throws {
        let dir = SubmitDirectory(NSTemporaryDirectory() + "quanta-events-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: dir.root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir.root) }
        LocalEvent.append(LocalEvent(time: 1, array: "a", index: 0, kind: .start, detail: "pid 1"), to: dir)
        LocalEvent.append(LocalEvent(time: 2, array: "a", index: 1, kind: .skipped, detail: "a:0 failed"), to: dir)
        LocalEvent.append(LocalEvent(time: 3, array: "a", index: 0, kind: .end, detail: "exit code 0"), to: dir)
        LocalEvent.append(LocalEvent(time: 4, array: "merge", index: 0, kind: .merged, detail: "exit code 0"), to: dir)
        let latest = LocalEvent.latest(dir)
        #expect(latest.count == 2)
        #expect(latest[.init(array: "a", index: 0)]?.kind == .end && latest[.init(array: "a", index: 1)]?.kind == .skipped)
    }
}
