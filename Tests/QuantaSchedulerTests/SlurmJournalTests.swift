import Foundation
import Testing
import QuantaTestSupport
import QuantaCore
@testable import QuantaScheduler
import QuantaSlurm

/// `slurm-journal.jsonl` on real files: what `SlurmRecord.read` makes of a round cut short by a
/// kill, of a line torn mid-write, and of a slurm.json older than the journal.
@Suite struct SlurmJournalTests {
    let dir: SubmitDirectory

    init() throws {
        let root = NSTemporaryDirectory() + "quanta-journal-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        dir = SubmitDirectory(root)
    }

    static let planned: [SlurmRecord.Planned] = ["a", "b", "c"].map { .init(array: $0, jobs: nil, elements: "0-3", memoryMB: 2048) }

    func append(_ e: SlurmJournal.Entry) throws { try SlurmJournal.append(e, to: dir.slurmJournal) }

    func appendRaw(_ text: String) throws {
        let h = try #require(FileHandle(forWritingAtPath: dir.slurmJournal))
        try h.seekToEnd()
        h.write(Data(text.utf8))
        try h.close()
    }

    func submitted(_ array: String, _ id: UInt32) -> SlurmRecord.Submitted {
        .init(Self.planned.first { $0.array == array }!, jobID: id)
    }

    @Test func aKillMidRoundLeavesTheQueuedArraysOnRecord() throws {
        #expect(try SlurmRecord.read(dir) == nil && !SlurmRecord.exists(dir))
        try append(.round(0, reason: .submit, backend: "cli", planned: Self.planned))
        try append(.array(0, submitted("a", 101)))
        // The kill: no slurm.json, the second array's line half-written.
        try appendRaw(#"{"event":"array","round":0,"submitted":{"arr"#)
        let r = try #require(try SlurmRecord.read(dir))
        #expect(SlurmRecord.exists(dir))
        #expect(r.backend == "cli")
        #expect(r.allJobIDs == [101])
        let cut = try #require(r.interrupted)
        #expect(cut.number == 0 && cut.arrays.map(\.array) == ["a"])
        #expect(cut.unsubmitted.map(\.array) == ["b", "c"])
        #expect(r.notes.count == 1 && r.notes[0].contains("slurm-journal.jsonl line 3") && r.notes[0].contains("ignored"), "\(r.notes)")

        // Completing the round later: the next line starts on a line of its own, after the torn one.
        try append(.array(0, submitted("b", 102)))
        try append(.array(0, submitted("c", 103)))
        try append(.final(0, jobID: 104))
        let done = try #require(try SlurmRecord.read(dir))
        #expect(done.interrupted == nil)
        #expect(done.allJobIDs == [101, 102, 103, 104])
        #expect(done.rounds[0].planned == nil, "a complete round keeps no plan")
        #expect(done.notes.count == 1, "the torn line is still the only one: \(done.notes)")
        // slurm.json written from the fold, read back with the journal folded over it again: nothing doubles.
        try done.write(dir)
        let again = try #require(try SlurmRecord.read(dir))
        #expect(again.rounds.count == 1 && again.rounds[0].arrays.map(\.jobID) == [101, 102, 103])
        #expect(!FileManager.default.contents(atPath: dir.slurmRecord)!.isEmpty)
        #expect(!String(decoding: FileManager.default.contents(atPath: dir.slurmRecord)!, as: UTF8.self).contains("notes"))
    }

    @Test func journalEntriesNewerThanSlurmJsonAreFoldedIn() throws {
        // A slurm.json from before the journal existed: round 0, complete.
        let old = SlurmRecord(backend: "libslurm", rounds: [
            .init(number: 0, reason: .submit, submittedAt: "t0", arrays: [submitted("a", 1), submitted("b", 2)], finalJob: 3),
        ])
        try old.write(dir)
        // The final job's retry round, killed after its first sbatch.
        try append(.round(1, reason: .retry, backend: "libslurm",
                          planned: [.init(array: "a", jobs: [2], elements: "2", memoryMB: 4096), .init(array: "b", jobs: [2], elements: "2", memoryMB: 2048)]))
        try append(.array(1, .init(.init(array: "a", jobs: [2], elements: "2", memoryMB: 4096), jobID: 10)))
        let r = try #require(try SlurmRecord.read(dir))
        #expect(r.rounds.map(\.number) == [0, 1])
        #expect(r.allJobIDs == [1, 2, 3, 10])
        #expect(r.interrupted?.number == 1 && r.interrupted?.unsubmitted.map(\.array) == ["b"])
        #expect(r.notes.isEmpty)
        // Cancel, then a person's restart: replayed in order.
        try append(.cancelled)
        #expect(try SlurmRecord.read(dir)?.cancelled == true)
        try append(.round(2, reason: .restart, backend: "libslurm", planned: []))
        #expect(try SlurmRecord.read(dir)?.cancelled == false)
        // A round whose sbatch failed (and whose jobs were cancelled) is void.
        try append(.abandoned(2))
        #expect(try SlurmRecord.read(dir)?.rounds.map(\.number) == [0, 1])
    }

    @Test func anUnreadableSlurmJsonFallsBackToTheJournal() throws {
        try Data("{ not json".utf8).write(to: URL(fileURLWithPath: dir.slurmRecord))
        #expect(throws: QuantaError.self) { try SlurmRecord.read(dir) }
        try append(.round(0, reason: .submit, backend: "cli", planned: Self.planned))
        try append(.array(0, submitted("a", 7)))
        let r = try #require(try SlurmRecord.read(dir))
        #expect(r.allJobIDs == [7])
        #expect(r.notes.contains { $0.contains("slurm.json: unreadable") }, "\(r.notes)")
    }

    /// The parser's fuzz target: arbitrary bytes, and valid lines cut anywhere, never crash it and
    /// never lose a whole line that precedes the damage.
    @Test func arbitraryBytesNeverCrashTheParser() throws {
        var rng = SystemRandomNumberGenerator()
        let good = String(decoding: try JSONEncoder.compact.encode(SlurmJournal.Entry.array(0, submitted("a", 5))), as: UTF8.self) + "\n"
        for _ in 0..<500 {
            let noise = (0..<Int.random(in: 0..<200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let cut = Int.random(in: 0...good.utf8.count, using: &rng)
            let data = Data(good.utf8) + Data(noise) + Data(good.utf8.prefix(cut))
            let (entries, _) = SlurmJournal.parse(data, name: "j")
            #expect(entries.first?.submitted?.jobID == 5)
        }
        #expect(SlurmJournal.parse(Data(), name: "j").entries.isEmpty)
    }
}

/// `SlurmView.isActive` while a final job is still submitting its retry round (CI saw `submit
/// --wait` return in that window, with round 2 queued and not yet run).
@Suite struct SlurmViewActivityTests {
    static func final(_ id: UInt32, _ state: SlurmJobState) -> SlurmJobRecord {
        SlurmJobRecord(arrayJobID: id, jobID: id, taskIDs: [], state: state, reason: "", exitCode: 0, signal: 0,
                       stderrPath: nil, memoryMB: nil, startTime: nil, endTime: nil)
    }

    static func record(finalOfLast: UInt32?) -> SlurmRecord {
        SlurmRecord(backend: "libslurm", rounds: [
            .init(number: 0, reason: .submit, submittedAt: "t0", arrays: [], finalJob: 10),
            .init(number: 1, reason: .retry, submittedAt: "t1", arrays: [], finalJob: finalOfLast, planned: []),
        ])
    }

    @Test func aRoundBeingSubmittedByARunningFinalJobIsActive() {
        let view = SlurmView(record: Self.record(finalOfLast: nil), attempts: [:], finalJobs: [Self.final(10, .running)], note: nil)
        #expect(view.isActive)
    }

    @Test func aRoundCutShortByAKillIsNotActive() {
        // The final job that was submitting it is gone: restart completes the round.
        let view = SlurmView(record: Self.record(finalOfLast: nil), attempts: [:], finalJobs: [Self.final(10, .failed)], note: nil)
        #expect(!view.isActive)
        #expect(!SlurmView(record: SlurmRecord(backend: "cli", rounds: [.init(number: 0, reason: .submit, submittedAt: "t", arrays: [], finalJob: nil, planned: [])]),
                           attempts: [:], finalJobs: [], note: nil).isActive)
    }

    @Test func aRoundIsActiveUntilItsFinalJobEnds() {
        let running = SlurmView(record: Self.record(finalOfLast: 11), attempts: [:], finalJobs: [Self.final(10, .completed), Self.final(11, .pending)], note: nil)
        #expect(running.isActive)
        let done = SlurmView(record: Self.record(finalOfLast: 11), attempts: [:], finalJobs: [Self.final(10, .completed), Self.final(11, .completed)], note: nil)
        #expect(!done.isActive)
    }
}
