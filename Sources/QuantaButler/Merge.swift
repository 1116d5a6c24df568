import Foundation
import QuantaCore

/// What a merge did, for people and for `merge-summary.json`.
public struct MergeResult: Sendable, Codable {
    public var outputRun: String
    public var output: String?
    public var registered: Int
    public var alreadyRegistered: Int
    public var datasetsInManifests: Int
    /// Outputs a manifest lists whose file is gone or has another size.
    public var missingFiles: [String]
    public var quantaSucceeded: Int
    public var quantaFailed: [String]
    public var quantaBlocked: [String]
    /// Jobs with no manifest: never ran, killed, or still running.
    public var jobsWithoutManifest: [String]
    public var seconds: Double
    /// Where the time went: setup, manifests and file checks, collect, registry (seconds).
    public var phaseSeconds: [String: Double]?

    public init(outputRun: String, output: String?, registered: Int, alreadyRegistered: Int, datasetsInManifests: Int,
                missingFiles: [String], quantaSucceeded: Int, quantaFailed: [String], quantaBlocked: [String],
                jobsWithoutManifest: [String], seconds: Double) {
        self.outputRun = outputRun
        self.output = output
        self.registered = registered
        self.alreadyRegistered = alreadyRegistered
        self.datasetsInManifests = datasetsInManifests
        self.missingFiles = missingFiles
        self.quantaSucceeded = quantaSucceeded
        self.quantaFailed = quantaFailed
        self.quantaBlocked = quantaBlocked
        self.jobsWithoutManifest = jobsWithoutManifest
        self.seconds = seconds
    }
}

/// Registers the outputs that manifests report into the repository, in idempotent batches.
public struct Merger: Sendable {
    public let dir: SubmitDirectory

    public init(dir: SubmitDirectory) { self.dir = dir }

    /// - Parameters:
    ///   - batchSize: datasets per transaction.
    ///   - pauseMilliseconds: pause between batches, to go easy on a shared registry.
    ///   - progress: called after each committed batch with (done, total).
    public func run(batchSize: Int = 10_000, pauseMilliseconds: Int = 0,
                    progress: (Int, Int) -> Void = { _, _ in }) throws -> MergeResult {
        let start = Date()
        let meta = try Snapshot.meta(path: dir.snapshot)
        let repo = try Repository(root: meta.repo)
        let registry = try Registry(path: repo.registryPath)
        for t in try Snapshot.datasetTypes(path: dir.snapshot) {
            try registry.registerDatasetType(name: t.name, dimensions: t.dimensions, storageClass: t.storageClass)
        }
        try registry.registerCollection(meta.outputRun, type: .run)

        let setUp = Date()
        var result = MergeResult(outputRun: meta.outputRun, output: meta.output, registered: 0, alreadyRegistered: 0,
                                 datasetsInManifests: 0, missingFiles: [], quantaSucceeded: 0, quantaFailed: [],
                                 quantaBlocked: [], jobsWithoutManifest: [], seconds: 0)
        var records: [DatasetRecord] = []
        let jobs = try Snapshot.jobs(path: dir.snapshot)
        let directories = ManifestCache.directories(dir, arrays: jobs.map(\.array))
        // Reading manifests and checking files is one open or stat per file: done on every core.
        let checked = try Parallel.map(count: jobs.count) { j -> (Manifest?, [Int64?], ManifestCache.Identity?) in
            guard let (m, id) = try Manifest.readWithIdentity(path: dir.manifest(array: jobs[j].array, index: jobs[j].index)) else {
                return (nil, [], nil)
            }
            var sizes: [Int64?] = []
            for q in m.quanta where q.status == .succeeded {
                for o in q.outputs {
                    var st = stat()
                    sizes.append(stat(repo.absolutePath(o.path), &st) == 0 ? Int64(st.st_size) : nil)
                }
            }
            return (m, sizes, id)
        }
        let read = Date()
        // What was read serves the next 'quanta status' too (best effort, like status's own writes),
        // written on the other core while this one registers.
        let statusCache = DispatchGroup()
        defer { statusCache.wait() }
        if let snapshot = ManifestCache.Identity.of(path: dir.snapshot) {
            let seen = checked.map { c -> (Manifest, ManifestCache.Identity)? in c.0.flatMap { m in c.2.map { (m, $0) } } }
            let path = dir.statusCache
            DispatchQueue.global().async(group: statusCache) {
                ManifestCache.from(read: seen, directories: directories, snapshot: snapshot).write(path: path)
            }
        }
        let cached = Date()
        for (j, job) in jobs.enumerated() {
            let key = "\(job.array):\(job.index)"
            guard let m = checked[j].0 else {
                result.jobsWithoutManifest.append(key)
                continue
            }
            var sizes = checked[j].1.makeIterator()
            for q in m.quanta {
                switch q.status {
                case .failed: result.quantaFailed.append("\(q.task) \(Self.describe(q.dataID)): \(q.reason ?? "failed")")
                case .blocked: result.quantaBlocked.append("\(q.task) \(Self.describe(q.dataID)): \(q.reason ?? "blocked")")
                case .succeeded:
                    result.quantaSucceeded += 1
                    for o in q.outputs {
                        result.datasetsInManifests += 1
                        let size = sizes.next() ?? nil
                        guard size == o.size else {
                            result.missingFiles.append("\(repo.absolutePath(o.path)) (\(size == nil ? "missing" : "size \(size!) ≠ \(o.size)"))")
                            continue
                        }
                        records.append(DatasetRecord(id: o.id, datasetType: o.type, run: o.run, dataID: o.dataID,
                                                     path: o.path, size: o.size, checksum: o.checksum))
                    }
                }
            }
        }
        let registering = Date()
        for run in Set(records.map(\.run)) where run != meta.outputRun {
            try registry.registerCollection(run, type: .run)
        }
        var done = 0
        try registry.beginBulk()
        for start in stride(from: 0, to: records.count, by: max(1, batchSize)) {
            let batch = Array(records[start ..< min(start + max(1, batchSize), records.count)])
            let added = try registry.insert(batch)
            result.registered += added
            result.alreadyRegistered += batch.count - added
            done += batch.count
            progress(done, records.count)
            if pauseMilliseconds > 0 { usleep(UInt32(pauseMilliseconds) * 1000) }
        }
        try registry.endBulk()
        if let output = meta.output {
            try registry.prependToChain(output, run: meta.outputRun, rest: meta.inputCollections)
        }
        let registered = Date()
        statusCache.wait()
        result.seconds = Date().timeIntervalSince(start)
        result.phaseSeconds = ["manifests and file checks": read.timeIntervalSince(setUp), "status cache": cached.timeIntervalSince(read),
                               "collect": registering.timeIntervalSince(cached), "registry": registered.timeIntervalSince(registering),
                               "status cache wait": Date().timeIntervalSince(registered), "setup": setUp.timeIntervalSince(start)]
        try AtomicFile.write(try JSONEncoder.pretty.encode(result), to: dir.mergeSummary)
        return result
    }

    static func describe(_ dataIDJSON: String) -> String {
        ((try? DataID(json: dataIDJSON)).map { "{\($0)}" }) ?? dataIDJSON
    }
}
