import Foundation
import QuantaExec
import QuantaRegistry
import QuantaButler
import QuantaCore

/// For benchmarks of `status` and `merge` at sizes no machine here can run for real (100,000
/// jobs would take ~17 minutes of run-quantum): every job of a submission "succeeds" the way a
/// trivial command would — each output written as a small file, its size and CRC recorded — and
/// gets the manifest run-quantum would write, through the same `Manifest` type and writer.
/// Nothing is executed; `quanta bench simulate-run` says so on every use.
public enum SimulatedRun {
    public static func run(_ dir: SubmitDirectory, progress: (Int, Int) -> Void = { _, _ in }) throws -> (jobs: Int, outputs: Int) {
        let host = ProcessInfo.processInfo.hostName
        let now = Timestamp.iso8601(Date())
        var jobs = 0, outputs = 0
        let total = try Snapshot.jobCount(path: dir.snapshot)
        var madeDirs = Set<String>()
        try Snapshot.forEachJob(path: dir.snapshot) { array, index, quanta, meta in
            var records: [QuantumRecord] = []
            for spec in quanta {
                var outs: [OutputRecord] = []
                for o in spec.outputs {
                    let path = meta.datastoreRoot + "/" + o.path
                    let parent = (path as NSString).deletingLastPathComponent
                    if madeDirs.insert(parent).inserted {
                        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
                    }
                    let bytes = Array("\(o.type) \(o.dataID)\n".utf8)
                    try AtomicFile.write(Data(bytes), to: path)
                    outs.append(OutputRecord(id: o.id.lowercased, type: o.type, dataID: o.dataID.json, run: o.run, path: o.path,
                                             size: Int64(bytes.count), checksum: CRC32.text(CRC32.checksum(bytes))))
                }
                outputs += outs.count
                records.append(QuantumRecord(id: spec.id.lowercased, task: spec.task, dataID: spec.dataID.json, status: .succeeded,
                                             reason: nil, seconds: 0.004,
                                             log: dir.quantumLog(task: spec.task, quantum: spec.id, dataID: spec.dataID, attempt: 1), outputs: outs))
            }
            let m = Manifest(submission: meta.submission, array: array, index: index, attempt: 1, status: .succeeded,
                             firstError: nil, startedAt: now, endedAt: now, seconds: 0.005, host: host, slurmJobID: nil,
                             slurmArrayJobID: nil, maxRSSKB: 20_000, quanta: records)
            try m.write(in: dir)
            jobs += 1
            if jobs % 10_000 == 0 { progress(jobs, total) }
        }
        return (jobs, outputs)
    }
}
