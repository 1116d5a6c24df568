import Foundation
import Testing
import QuantaTestSupport
@testable import QuantaButler
import QuantaCore
import QuantaFITS
@testable import QuantaExec

/// LSST jobs: run-qbb has already written outputs in place when run-quantum checks them, so a bad
/// FITS output must be moved aside (the merge's transfer-from-graph then skips it), its quantum
/// failed, and quanta of the same job that read it blocked with their outputs moved aside too.
/// Real files through cfitsio; the job and its report are built by hand (no pipetask needed).
@Suite struct LSSTValidationTests {
    @Test func badOutputFailsItsQuantumAndBlocksItsReaders() throws {
        let root = try temporaryDirectory()
        let store = root + "/repo"
        try FileManager.default.createDirectory(atPath: store + "/run", withIntermediateDirectories: true)
        func image(_ name: String, nan: Int) throws -> String {
            let f = try FITSFile(create: store + "/run/" + name)
            try f.writeImage(width: 10, height: 10, pixels: (0..<100).map { $0 < nan ? .nan : 1 })
            try f.close()
            return "run/" + name
        }
        let good = try image("good.fits", nan: 0), bad = try image("bad.fits", nan: 30), after = try image("after.fits", nan: 0)
        let other = try image("other.fits", nan: 0)
        func ds(_ type: String, _ path: String) -> DatasetSpec {
            DatasetSpec(id: UUID(), type: type, dataID: DataID([("visit", .int(1))]), run: "run", path: path)
        }
        let (dGood, dBad, dAfter, dOther) = (ds("calexp", good), ds("calexp", bad), ds("warp", after), ds("src", other))
        let q1 = QuantumSpec(id: UUID(), task: "calibrate", dataID: .empty, inputs: [], outputs: [dGood])
        let q2 = QuantumSpec(id: UUID(), task: "calibrate", dataID: .empty, inputs: [], outputs: [dBad, dOther])
        let q3 = QuantumSpec(id: UUID(), task: "makeWarp", dataID: .empty, inputs: [dBad], outputs: [dAfter])
        let meta = SnapshotMeta(submission: "s", repo: store, datastoreRoot: store, outputRun: "run", output: nil,
                                inputCollections: [], graph: "g.qg")
        let job = JobSpec(array: "a", index: 0, label: "a", quanta: [q1, q2, q3],
                          tasks: ["calibrate": TaskExecution(executor: .lsst, command: nil, builtin: nil)], meta: meta)
        let runner = JobRunner(dir: SubmitDirectory(root + "/sub"), array: "a", index: 0, force: false, environment: [:])
        let records = [q1, q2, q3].map { q in
            QuantumRecord(id: q.id.lowercased, task: q.task, dataID: "[]", status: .succeeded, reason: nil, seconds: 1, log: nil,
                          outputs: q.outputs.map { OutputRecord(id: $0.id.lowercased, type: $0.type, dataID: "[]", run: "run",
                                                                path: $0.path, size: 1, checksum: "crc32:0") })
        }
        var logged: [String] = []
        let out = LSSTJob(runner: runner, job: job, attempt: 1).validate(records) { logged.append($0) }
        #expect(out[0].status == .succeeded && out[0].outputs.count == 1)
        #expect(out[1].status == .failed && out[1].outputs.isEmpty)
        #expect(out[1].reason?.contains("\(store)/run/bad.fits: HDU 1: 30 % of 100 pixels are NaN") == true, "\(out[1].reason ?? "")")
        #expect(out[2].status == .blocked && out[2].outputs.isEmpty)
        #expect(out[2].reason?.contains("input calexp") == true && out[2].reason?.contains("failed its checks") == true, "\(out[2].reason ?? "")")
        // Moved aside: the bad file, its sibling output, and the reader's output. The good one stays.
        let fm = FileManager.default
        #expect(fm.fileExists(atPath: store + "/run/good.fits"))
        for name in ["bad.fits", "other.fits", "after.fits"] {
            #expect(!fm.fileExists(atPath: store + "/run/" + name), "\(name) still in the datastore")
            #expect(fm.fileExists(atPath: root + "/sub/rejected/a.0.1/" + name), "\(name) not kept")
        }
        #expect(logged.contains { $0.contains("calexp") && $0.contains("FITS checked") })
    }
}
