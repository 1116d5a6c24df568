import Foundation
import QuantaButler
import QuantaCore

/// Merging an LSST graph's outputs: the butler's own `transfer-from-graph` (default) or
/// `aggregate-graph`, with `--register-dataset-types --update-output-chain`, run in the site's
/// environment; the result lands in merge-summary.json like a native merge's.
public enum LSSTMerge {
    public static func isLSST(_ plan: PlanDocument) -> Bool {
        (try? Repository(root: plan.repo))?.kind == .butler
    }

    public static func run(_ dir: SubmitDirectory, plan: PlanDocument) throws -> MergeResult {
        let started = Date()
        let method = plan.lsstMerge ?? "transfer-from-graph"
        var args = [method, plan.graph, plan.repo, "--register-dataset-types", "--update-output-chain"]
        if method == "aggregate-graph" {
            // Complete: no quantum of this submission runs any more before this merge's next call.
            args += ["-j", "2", "--no-interactive-status"]
            if try Snapshot.storageClasses(path: dir.snapshot).contains(where: { $0.hasPrefix("_mock_") }) { args.append("--mock-storage-classes") }
        }
        guard let butler = Spawn.which("butler") else {
            throw QuantaError(.execution, "'butler' is not on PATH; the site config's environment lines must set up the LSST stack (e.g. source VENV/bin/activate)")
        }
        let r = try Spawn.capture(butler, args)
        let log = dir.lsstMergeLog
        try AtomicFile.write("$ butler \(args.map(shellQuote).joined(separator: " "))\n\(r.stdout)\(r.stderr)", to: log)
        guard r.status.succeeded else {
            let line = r.stderr.split(separator: "\n").last { $0.contains("Error") || $0.contains("error") } ?? r.stderr.split(separator: "\n").last ?? ""
            throw QuantaError(.registry, "butler \(method) failed (\(r.status)): \(line); full output in \(log)")
        }
        // Both record file_size -1 for what they register; pipetask run records the file's size.
        let sizes = try fixSizes(dir, plan: plan)
        AtomicFile.append("$ python3 run_job.py sizes: \(sizes)\n", to: log)
        // "Number of datasets transferred: N" (transfer-from-graph); aggregate-graph says less.
        let text = r.stdout + r.stderr
        let count = text.split(separator: "\n").compactMap { line -> Int? in
            guard line.contains("datasets transferred") || line.contains("datasets ingested") else { return nil }
            return line.split(separator: " ").compactMap { Int($0) }.last
        }.last ?? 0
        let status = try SubmissionStatus.read(dir)
        let failed = status.elements.filter { $0.state == .failed }.map { "\($0.array):\($0.index) \($0.reason ?? "")" }
        let blocked = status.elements.filter { $0.state == .blocked }.map { "\($0.array):\($0.index) \($0.reason ?? "")" }
        let result = MergeResult(outputRun: plan.outputRun, output: plan.output, registered: count, alreadyRegistered: 0,
                                 datasetsInManifests: count, missingFiles: [], quantaSucceeded: (status.quanta["succeeded"] ?? 0) + (status.quanta[SubmissionStatus.State.noWork.rawValue] ?? 0),
                                 quantaFailed: failed, quantaBlocked: blocked, jobsWithoutManifest: [],
                                 seconds: Date().timeIntervalSince(started))
        try AtomicFile.write(try JSONEncoder.pretty.encode(result), to: dir.mergeSummary)
        return result
    }

    /// Runs `python3 DRIVER ARGS…` in the site's environment (its guarded `environment:` lines), as
    /// the jobs run it: the clobber before a rerun and the output-run claim.
    public static func runDriver(_ driver: String, _ arguments: [String], site: SiteConfig?) throws -> (status: ExitStatus, stdout: String, stderr: String) {
        let script = ((site.map(Planner.guardedEnvironment) ?? []) + ["exec python3 \"$@\""]).joined(separator: "\n")
        return try Spawn.capture("/bin/bash", ["-c", script, "bash", driver] + arguments)
    }

    /// The LSST driver (`python/quanta_lsst/run_job.py`) the plan's jobs run.
    public static func driver(_ dir: SubmitDirectory, plan: PlanDocument) throws -> String {
        guard let array = plan.arrays.first else { return "" }
        let job = try Snapshot.job(path: dir.snapshot, array: array.name, index: 0)
        return job.quanta.first.flatMap { job.tasks[$0.task]?.command } ?? ""
    }

    /// Sets the datastore records' file sizes of the run's datasets (`run_job.py sizes`).
    public static func fixSizes(_ dir: SubmitDirectory, plan: PlanDocument) throws -> String {
        let driver = try driver(dir, plan: plan)
        guard !driver.isEmpty, let python = Spawn.which("python3") else { return "skipped (no LSST driver or python3)" }
        let r = try Spawn.capture(python, [driver, "sizes", plan.repo, plan.outputRun])
        guard r.status.succeeded else {
            throw QuantaError(.registry, "the merge registered the datasets but could not record their file sizes (\(r.status)): \(r.stderr.split(separator: "\n").last ?? ""); run 'quanta merge' again")
        }
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// Before an LSST job runs again (restart, rerun, a retry round): what `pipetask run --extend-run
/// --skip-existing --clobber-outputs` does. Quanta that succeeded are kept (run-qbb skips a quantum
/// whose metadata exists); every other quantum of the jobs has its outputs removed — pruned from
/// the butler with their files when the merge registered them (a failed quantum's log is), deleted
/// when only on disk — so the rerun writes fresh files and no registered file is rewritten in place.
public enum LSSTClobber {
    /// What was removed before a rerun, for a person to read.
    public struct Outcome: Sendable {
        public var quanta: Int, pruned: Int, deleted: Int, log: String
        /// Nil when nothing was removed.
        public var note: String? {
            pruned + deleted == 0 ? nil
                : "Removed the stale outputs of \(quanta) quanta to rerun (as pipetask's --clobber-outputs): \(pruned) unregistered from the butler, \(deleted) files deleted; list in \(log)"
        }
    }

    /// `jobs`: array → job slots about to run again. Nil when there was nothing to do (no Python ran).
    @discardableResult
    public static func prepare(_ dir: SubmitDirectory, plan: PlanDocument, site: SiteConfig?, jobs: [String: Set<Int>]) throws -> Outcome? {
        guard LSSTMerge.isLSST(plan), !jobs.isEmpty else { return nil }
        var failed: [String] = [], unknown: [String] = []
        let driver = try LSSTMerge.driver(dir, plan: plan)
        for (array, slots) in jobs {
            for slot in slots.sorted() {
                if let m = (try? Manifest.read(path: dir.manifest(array: array, index: slot), outputs: false)) ?? nil, m.index == slot {
                    failed += m.quanta.filter { !$0.status.isSuccess }.map(\.id)
                } else {
                    // No manifest: the snapshot says which quanta the job has.
                    unknown += try Snapshot.job(path: dir.snapshot, array: array, index: slot).quanta.map(\.id.lowercased)
                }
            }
        }
        guard !(failed.isEmpty && unknown.isEmpty), !driver.isEmpty else { return nil }
        let stamp = Timestamp.iso8601(Date()).replacingOccurrences(of: ":", with: "")
        let idsFile = dir.lsstClobberFile(stamp: stamp, suffix: "ids.json"), log = dir.lsstClobberFile(stamp: stamp, suffix: "log")
        try FileManager.default.createDirectory(atPath: (log as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try AtomicFile.write(try JSONSerialization.data(withJSONObject: ["failed": failed, "unknown": unknown]), to: idsFile)
        let r = try LSSTMerge.runDriver(driver, ["clobber", plan.repo, plan.graph, idsFile], site: site)
        try AtomicFile.write(r.stderr + r.stdout, to: log)
        guard r.status.succeeded else {
            throw QuantaError(.registry, "could not remove the stale outputs of the quanta to rerun (\(r.status)); nothing was rerun; see \(log)")
        }
        let removed = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: [String]] ?? [:]
        return Outcome(quanta: failed.count + unknown.count, pruned: removed["pruned"]?.count ?? 0, deleted: removed["deleted"]?.count ?? 0, log: log)
    }
}
