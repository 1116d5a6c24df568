import Foundation
import QuantaRegistry
import Testing
import QuantaTestSupport
@testable import QuantaButler
@testable import QuantaCore
@testable import QuantaGraphIO
import QuantaScheduler

/// Issue 12, item 4: a damaged snapshot is an error naming the file, never a trap, and never
/// other data than the file was written with.
@Suite struct SnapshotDamageTests {
    /// A real snapshot of a small plan, written the way `quanta plan` writes it.
    static func writeSnapshot(_ dir: String, visits: [Int64] = [1, 2], detectors: [Int64] = [0, 1, 2]) throws -> String {
        let graph = pipelineGraph(visits: visits, detectors: detectors)
        let clustered = try Clustering.cluster(graph, config: try config(""), order: try graph.validate(source: "g"))
        let plan = try ArrayPlanner.plan(clustered, site: testSite)
        let repo = try Repository.create(at: dir + "/repo")
        let meta = SnapshotMeta(submission: "sub", repo: repo.root, datastoreRoot: repo.datastoreRoot, outputRun: "u/test/run1",
                                output: "u/test", inputCollections: ["raw/all"], graph: dir + "/g.qgn")
        let tasks = Dictionary(uniqueKeysWithValues: graph.tasks.map {
            ($0.label, TaskExecution(executor: .command, command: "cp {input} {output}", builtin: nil))
        })
        let path = dir + "/snapshot.bin"
        try Snapshot.write(path: path, meta: meta, graph: graph, plan: plan, repo: repo, tasks: tasks)
        return path
    }

    /// Everything a job reads, as text (JobSpec holds dictionaries, so it is spelled out in order).
    static func describe(_ j: JobSpec) -> String {
        var out = "\(j.array):\(j.index) \(j.label) \(j.meta)\n"
        for (label, t) in j.tasks.sorted(by: { $0.key < $1.key }) { out += "task \(label) \(t)\n" }
        for q in j.quanta { out += "q \(q.id) \(q.task) \(q.dataID) in \(q.inputs) out \(q.outputs)\n" }
        return out
    }

    /// Every lookup a submission makes of its snapshot: each job, the job list, the metadata.
    static func lookups(_ path: String, jobs: [(String, Int)]) -> [Result<String, Error>] {
        var out = jobs.map { job in Result { describe(try Snapshot.job(path: path, array: job.0, index: job.1)) } }
        out.append(Result { try Snapshot.jobs(path: path).map { "\($0.array):\($0.index) \($0.label) \($0.tasks)" }.joined(separator: "\n") })
        out.append(Result { "\(try Snapshot.meta(path: path))" })
        out.append(Result { "\(try Snapshot.datasetTypes(path: path).map { "\($0)" })" })
        return out
    }

    @Test func everyFlippedByteIsAnErrorOrTheOriginalData() throws {
        let dir = try temporaryDirectory()
        let original = try Self.writeSnapshot(dir)
        let jobs = try Snapshot.jobs(path: original).map { ($0.array, $0.index) }
        #expect(jobs.count == 14)
        let expected = Self.lookups(original, jobs: jobs).map { try? $0.get() }
        #expect(expected.allSatisfy { $0 != nil })
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: original)))
        let damaged = dir + "/damaged/snapshot.bin"
        try FileManager.default.createDirectory(atPath: dir + "/damaged", withIntermediateDirectories: true)
        var errors = 0, same = 0
        var wrong: [String] = []
        for i in bytes.indices {
            var copy = bytes
            copy[i] ^= UInt8(1) << UInt8(i % 8)
            unlink(damaged)
            try Data(copy).write(to: URL(fileURLWithPath: damaged))
            for (k, result) in Self.lookups(damaged, jobs: jobs).enumerated() {
                switch result {
                case .success(let text):
                    if text == expected[k] { same += 1 } else { wrong.append("byte \(i): lookup \(k) returned other data") }
                case .failure(let error):
                    errors += 1
                    let message = (error as? QuantaError)?.message ?? "\(error)"
                    if !message.hasPrefix(damaged + ":") || message.contains("\n") {
                        wrong.append("byte \(i): lookup \(k) threw '\(message)', not one line naming the file")
                    }
                }
            }
        }
        #expect(wrong.isEmpty, "\(wrong.count) bad lookups, e.g. \(wrong.prefix(5))")
        #expect(errors > 0 && same > 0)
    }

    @Test func aDamagedSectionNamesItselfAndTheFix() throws {
        let dir = try temporaryDirectory()
        let path = try Self.writeSnapshot(dir)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        // The last data ID's JSON text sits just before the checksum table: damage its last byte.
        let r = try SnapshotFile.Reader(path)
        let at = r.start(.didText) + r.header.sections["didText"]![1] - 1
        bytes[at] ^= 0x20
        let damaged = dir + "/d.bin"
        try Data(bytes).write(to: URL(fileURLWithPath: damaged))
        let jobs = try Snapshot.jobs(path: path)
        var messages: [String] = []
        for j in jobs {
            do { _ = try Snapshot.job(path: damaged, array: j.array, index: j.index) } catch { messages.append("\(error)") }
        }
        #expect(messages.contains("\(damaged): damaged (checksum mismatch in section didText); plan the submission again"), "\(messages)")
        // What does not touch the damaged chunk still reads: only what a lookup touches is verified.
        #expect(try Snapshot.jobs(path: damaged).count == jobs.count)
    }

    /// Issue 13: each input made inside the graph names the quantum that makes it and that
    /// quantum's job, and that job really lists the quantum with the dataset among its outputs.
    @Test func inputsNameTheirProducerAndItsJob() throws {
        let dir = try temporaryDirectory()
        let path = try Self.writeSnapshot(dir)
        var checked = 0, overall = 0
        for job in try Snapshot.jobs(path: path) {
            for q in try Snapshot.job(path: path, array: job.array, index: job.index).quanta {
                for input in q.inputs {
                    guard let p = input.producer else { overall += 1; continue }
                    let producer = try Snapshot.job(path: path, array: p.array, index: p.index).quanta.first { $0.id == p.quantum }
                    #expect(producer?.task == p.task && producer?.dataID == p.dataID, "\(p)")
                    #expect(producer?.outputs.contains { $0.id == input.id } == true, "\(input.type) {\(input.dataID)} is not an output of \(p)")
                    checked += 1
                }
            }
        }
        #expect(checked > 0 && overall > 0, "\(checked) in-graph inputs, \(overall) overall inputs")
    }

    /// A QSNAP003 snapshot (planned before producers were recorded) is still read: its jobs get
    /// no producers and fall back to checking their inputs' files.
    @Test func aSnapshotFromBeforeProducersIsStillRead() throws {
        let v3 = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fuzz/corpus/snapshot/seed-synth-v3.bin").path
        let jobs = try Snapshot.jobs(path: v3)
        #expect(!jobs.isEmpty)
        var inputs = 0
        for job in jobs {
            for q in try Snapshot.job(path: v3, array: job.array, index: job.index).quanta {
                inputs += q.inputs.count
                #expect(q.inputs.allSatisfy { $0.producer == nil })
            }
        }
        #expect(inputs > 0)
    }

    /// A QSNAP004 snapshot (data IDs as JSON text, before the binary form the native graph uses)
    /// is still read, to the same jobs, quanta and data IDs as the same graph planned today.
    @Test func aSnapshotWithTextDataIDsIsStillRead() throws {
        let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fuzz/corpus/snapshot").path
        let v4 = corpus + "/seed-synth-v4.bin", v5 = corpus + "/seed-synth.bin"
        #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: v4)).prefix(8)) == Array("QSNAP004".utf8))
        #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: v5)).prefix(8)) == Array("QSNAP005".utf8))
        func shape(_ path: String) throws -> [String] {
            try Snapshot.jobs(path: path).flatMap { job in
                try Snapshot.job(path: path, array: job.array, index: job.index).quanta.map { q in
                    "\(job.array):\(job.index) \(q.task) \(q.dataID.json) in \(q.inputs.map { "\($0.type)\($0.dataID.json)" }.sorted()) out \(q.outputs.map { "\($0.type)\($0.dataID.json)" }.sorted())"
                }
            }
        }
        let old = try shape(v4), new = try shape(v5)
        #expect(!old.isEmpty && old.count == new.count)
        #expect(old == new)
    }

    @Test func writtenReadOnlyUnderItsName() throws {
        let dir = try temporaryDirectory()
        let path = try Self.writeSnapshot(dir)
        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o444)
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(Array(bytes.prefix(8)) == Array("QSNAP005".utf8))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["repo", "snapshot.bin"])
    }
}
