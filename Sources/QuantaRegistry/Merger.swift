import Foundation
import QuantaButler
import QuantaCore

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
        try Repository.checkIdentity(root: meta.repo, expected: meta.repoID, what: "the merge")
        let registry = try repo.openRegistry()
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
        let predictions = try OutputPredictions(path: dir.snapshot)
        let directories = ManifestCache.directories(dir, arrays: jobs.map(\.array))
        // Reading manifests, holding them to the plan and checking files is one open or stat per
        // file: done on every core. A manifest that cannot be read is reported, not fatal: the
        // other jobs still merge.
        let checked = try Parallel.map(count: jobs.count) { j -> JobCheck in
            let job = jobs[j], manifestPath = dir.manifest(array: job.array, index: job.index)
            let read: (Manifest, ManifestCache.Identity)?
            do { read = try Manifest.readWithIdentity(path: manifestPath) } catch {
                return JobCheck(refused: ["\(job.array):\(job.index): \(error); its outputs are not registered ('quanta rerun \(dir.root) --job \(job.array):\(job.index)' runs it again)"])
            }
            guard let (m, id) = read else { return JobCheck() }
            var check = JobCheck(manifest: m, identity: id)
            guard m.array == job.array, m.index == job.index else {
                check.refused.append("\(job.array):\(job.index): \(manifestPath) says it is job \(m.array):\(m.index); nothing of it is registered")
                check.manifest = nil
                return check
            }
            let predicted: [String: PredictedOutput]
            do { predicted = try predictions.outputs(array: job.array, index: job.index) } catch {
                check.refused.append("\(job.array):\(job.index): \(error)")
                check.manifest = nil
                return check
            }
            var seen = Set<String>()
            for q in m.quanta where q.status == .succeeded {
                for o in q.outputs {
                    if let why = Self.refusal(o, predicted[o.id.lowercased()], seen: &seen) {
                        check.refused.append("\(job.array):\(job.index): \(o.type) \(o.id) at '\(o.path)': \(why); not registered")
                        check.sizes.append(.refused)
                        continue
                    }
                    var st = stat()
                    check.sizes.append(stat(repo.absolutePath(o.path), &st) == 0 ? .size(Int64(st.st_size)) : .missing)
                }
            }
            return check
        }
        let read = Date()
        // What was read serves the next 'quanta status' too (best effort, like status's own writes),
        // written on the other core while this one registers.
        let statusCache = DispatchGroup()
        defer { statusCache.wait() }
        if let snapshot = ManifestCache.Identity.of(path: dir.snapshot) {
            let seen = checked.map { c -> (Manifest, ManifestCache.Identity)? in c.manifest.flatMap { m in c.identity.map { (m, $0) } } }
            let path = dir.statusCache
            DispatchQueue.global().async(group: statusCache) {
                ManifestCache.from(read: seen, directories: directories, snapshot: snapshot).write(path: path)
            }
        }
        let cached = Date()
        for (j, job) in jobs.enumerated() {
            let key = "\(job.array):\(job.index)"
            result.refused += checked[j].refused
            guard let m = checked[j].manifest else {
                if checked[j].refused.isEmpty { result.jobsWithoutManifest.append(key) }
                continue
            }
            var sizes = checked[j].sizes.makeIterator()
            for q in m.quanta {
                switch q.status {
                case .failed: result.quantaFailed.append("\(q.task) \(Self.describe(q.dataID)): \(q.reason ?? "failed")")
                case .blocked: result.quantaBlocked.append("\(q.task) \(Self.describe(q.dataID)): \(q.reason ?? "blocked")")
                case .succeeded, .noWork:
                    // A no-work quantum lists what it did write (an LSST quantum's metadata and log).
                    result.quantaSucceeded += 1
                    for o in q.outputs {
                        result.datasetsInManifests += 1
                        let size = sizes.next() ?? .missing
                        switch size {
                        case .refused: continue
                        case .missing:
                            result.missingFiles.append("\(repo.absolutePath(o.path)) (missing)")
                            continue
                        case .size(let n) where n != o.size:
                            result.missingFiles.append("\(repo.absolutePath(o.path)) (size \(n) ≠ \(o.size))")
                            continue
                        case .size: break
                        }
                        records.append(DatasetRecord(id: o.id, datasetType: o.type, run: o.run, dataID: o.dataID,
                                                     path: o.path, size: o.size, checksum: o.checksum))
                    }
                }
            }
        }
        let registering = Date()
        // Every record now matches the plan, so these are runs the graph names.
        for run in Set(records.map(\.run)) where run != meta.outputRun {
            try registry.registerCollection(run, type: .run)
        }
        var done = 0
        try registry.insertBatches(records, batchSize: batchSize) { count, added in
            result.registered += added
            result.alreadyRegistered += count - added
            done += count
            progress(done, records.count)
            if pauseMilliseconds > 0 { usleep(UInt32(pauseMilliseconds) * 1000) }
        }
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

    /// What one job's reading of its manifest found.
    struct JobCheck: Sendable {
        enum Size: Sendable { case size(Int64), missing, refused }
        var manifest: Manifest?
        var identity: ManifestCache.Identity?
        /// One per output of a succeeded quantum, in manifest order.
        var sizes: [Size] = []
        var refused: [String] = []
    }

    /// Why a manifest's output record is not what the plan predicted for its job (nil: it is).
    static func refusal(_ o: OutputRecord, _ p: PredictedOutput?, seen: inout Set<String>) -> String? {
        guard let p else { return "the plan predicts no such output for this job" }
        guard seen.insert(p.id).inserted else { return "listed twice" }
        if o.type != p.type { return "the plan predicts type \(p.type)" }
        if o.run != p.run { return "the plan predicts run \(p.run)" }
        if o.dataID != p.dataID, (try? DataID(json: o.dataID)) != (try? DataID(json: p.dataID)) {
            return "the plan predicts data ID \(describe(p.dataID))"
        }
        if o.path != p.path { return "the plan predicts path '\(p.path)'" }
        return nil
    }

    public static func describe(_ dataIDJSON: String) -> String { DataID.describe(json: dataIDJSON) }
}
