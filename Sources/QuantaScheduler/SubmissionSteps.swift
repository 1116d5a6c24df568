import Foundation
import QuantaButler
import QuantaCore
import QuantaRegistry
import QuantaSlurm

/// What `merge`, `finalize`, `cancel`, `restart` and `rerun` do to a submission, for both backends.
/// The commands translate arguments into these calls and print what they return; `note` callbacks
/// carry what a person should read while the step is still going (before a job's own output).
extension Submission {
    /// The graph is an LSST butler repository's: the butler merges it, and a rerun first removes
    /// the stale outputs of what runs again (`LSSTClobber`).
    public var isLSST: Bool { LSSTMerge.isLSST(plan) }

    // MARK: merge

    /// Registers what the jobs wrote: Quanta's own idempotent batches, or the butler's
    /// `transfer-from-graph`/`aggregate-graph` for an LSST repository. A failure is recorded in
    /// merge-error.json (status shows it) and thrown. `progress(done, total)` in datasets.
    public func merge(batchSize: Int = 10_000, pauseMilliseconds: Int = 0,
                      progress: (Int, Int) -> Void = { _, _ in }) throws -> MergeResult {
        try MergeFailure.recording(dir) {
            isLSST ? try LSSTMerge.run(dir, plan: plan)
                : try Merger(dir: dir).run(batchSize: batchSize, pauseMilliseconds: pauseMilliseconds, progress: progress)
        }
    }

    // MARK: cancel

    public struct Cancellation: Sendable {
        /// A job `quanta submit` queued just before it was killed, found and cancelled with the rest.
        public var adopted: UInt32?
        /// Why such a job could not be looked for (the cancel of the rest went on).
        public var adoptionProblem: String?
        public var jobIDs: [UInt32] = []
    }

    /// Cancels every SLURM job of every round, the final jobs too, and records it so the final job
    /// retries nothing; `restart` resumes.
    public func cancel(_ backend: any SlurmBackend) throws -> Cancellation {
        var record = try self.record()
        var out = Cancellation()
        // A kill mid-round may have left a job that sbatch queued but no record names yet; what
        // cannot be adopted must not stop the cancel of what is on record.
        if record.interrupted != nil, !record.cancelled {
            do { out.adopted = try submitter(backend).adoptUnrecorded(&record) } catch { out.adoptionProblem = "\(error)" }
        }
        try record.journal(.cancelled, in: dir)
        try record.write(dir)
        out.jobIDs = record.allJobIDs.sorted()
        try backend.cancel(out.jobIDs.map(String.init))
        return out
    }

    // MARK: finalize (the final job)

    public struct Finalization: Sendable {
        /// Nil when the submission never went to SLURM (a finalize run by hand on a local one).
        public var status: SubmissionStatus?
        public var cancelled = false
        /// One line per job the retry policy resubmits.
        public var retryLines: [String] = []
        /// The retry round submitted, if any, and how many jobs it holds.
        public var retryRound: SlurmRecord.Round?
        public var retried = 0
    }

    /// The final job: merges what succeeded (`merged` gets the result before anything else can
    /// fail), then resubmits what the arrays' retry policies allow as a new round.
    public func finalize(backend open: () throws -> any SlurmBackend, merged: (MergeResult) -> Void,
                         note: (String) -> Void = { _ in }) throws -> Finalization {
        merged(try merge())
        var out = Finalization()
        guard var record = try SlurmRecord.read(dir) else { return out }
        let backend = try open()
        let live = (try? backend.jobs(arrayJobIDs: record.allJobIDs)) ?? []
        try SlurmStateStore.remember(live, in: dir)
        let (status, _) = try self.status(backend)
        out.status = status
        if record.cancelled {
            out.cancelled = true
            return out
        }
        let decision = RetryPlanner.retries(status: status, plan: plan, site: site)
        out.retryLines = decision.lines
        guard !decision.selection.isEmpty else { return out }
        let number = (record.rounds.last?.number ?? 0) + 1
        if let n = try LSSTClobber.prepare(dir, plan: plan, site: site, jobs: decision.selection.mapValues { Set($0.keys) })?.note { note(n) }
        try submitter(backend).submitRound(&record, number: number, reason: .retry, selection: decision.selection)
        out.retryRound = record.rounds.last
        out.retried = decision.selection.values.reduce(0) { $0 + $1.count }
        return out
    }

    // MARK: restart

    public enum SlurmRestart: Sendable {
        /// A round that `quanta submit` (or a final job) left part-way was completed: its first
        /// `alreadyQueued` sbatch calls had been made; `adopted` was queued but on no record.
        case completed(round: SlurmRecord.Round, alreadyQueued: Int, adopted: UInt32?)
        /// A new round with every job that did not succeed (`jobs` of them; 0: the merge only).
        case submitted(round: SlurmRecord.Round, jobs: Int)
    }

    /// Resubmits to SLURM what did not succeed (more memory where memory ran out), or completes an
    /// interrupted round; refuses while jobs are still pending or running. (What reading the record
    /// found amiss is in `record().notes`.)
    public func restartOnSlurm(_ backend: any SlurmBackend, note: (String) -> Void = { _ in }) throws -> SlurmRestart {
        var record = try self.record()
        if let cut = record.interrupted, !record.cancelled {
            // `quanta submit` (or a final job) was killed mid-round: finish that round, waiting on what it queued.
            let before = cut.arrays.count
            let adopted = try submitter(backend).completeRound(&record)
            return .completed(round: record.rounds.last!, alreadyQueued: before, adopted: adopted)
        }
        let (status, view) = try self.status(backend)
        // Jobs of a round that was cancelled part-way and never submitted are not SLURM's: they go in this round.
        let busy = status.elements.filter { ($0.state == .running || $0.state == .pending) && $0.slurmJob != nil }
        if !busy.isEmpty || view?.isActive == true {
            throw QuantaError(.usage, "\(dir.root): \(busy.count) jobs are still pending or running (and the final job has not ended); wait, or 'quanta cancel' first")
        }
        let selection = RetryPlanner.restart(status: status, plan: plan, site: site)
        record.cancelled = false
        if let n = try LSSTClobber.prepare(dir, plan: plan, site: site, jobs: selection.mapValues { Set($0.keys) })?.note { note(n) }
        let number = (record.rounds.last?.number ?? 0) + 1
        try submitter(backend).submitRound(&record, number: number, reason: .restart, selection: selection)
        return .submitted(round: record.rounds.last!, jobs: selection.values.reduce(0) { $0 + $1.count })
    }

    /// Runs here what did not succeed (with the retry rounds and the merge of `runLocally`).
    /// A submission that went to SLURM is refused by `runLocally`; use `restartOnSlurm`.
    public func restartLocally(_ options: LocalBackend.Options, note: (String) -> Void = { _ in },
                               progress: (LocalProgress) -> Void = { _ in }) throws -> LocalBackend.Summary {
        let status = try SubmissionStatus.read(dir)
        if status.elements.contains(where: { $0.state == .running }) {
            throw QuantaError(.usage, "\(dir.root): jobs are still running; wait for them or stop them first")
        }
        let arrays = Dictionary(uniqueKeysWithValues: plan.arrays.map { ($0.name, $0) })
        var only: [String: Set<Int>] = [:], jobs: [String: Set<Int>] = [:]
        var count = 0
        for e in status.elements where e.state != .succeeded {
            only[e.array, default: []].insert(arrays[e.array]?.element(ofJob: e.index) ?? e.index)
            jobs[e.array, default: []].insert(e.index)
            count += 1
        }
        if let n = try LSSTClobber.prepare(dir, plan: plan, site: site, jobs: jobs)?.note { note(n) }
        note(count == 0 ? "Every job succeeded; running the merge only." : "Restarting \(count) jobs: \(only.keys.sorted().map { "\($0) ×\(only[$0]!.count)" }.joined(separator: ", "))")
        var o = options
        o.only = only
        return try runLocally(o, progress: progress)
    }

    // MARK: rerun one job

    /// `ARRAY:INDEX` as status lists it, or `LABEL:INDEX` counting across the label's arrays.
    public func job(_ name: String, _ index: Int) throws -> (array: PlannedArray, slot: Int) {
        if let array = plan.arrays.first(where: { $0.name == name }) {
            guard index < array.jobCount else {
                throw QuantaError(.usage, "array '\(array.name)' has jobs 0-\(array.jobCount - 1); \(index) is outside")
            }
            return (array, index)
        }
        var offset = index
        for array in plan.arrays where array.label == name {
            if offset < array.jobCount { return (array, offset) }
            offset -= array.jobCount
        }
        guard Set(plan.arrays.map(\.label)).contains(name) else {
            throw QuantaError(.usage, "no array or task label '\(name)' in \(dir.root); arrays are \(plan.arrays.map(\.name).joined(separator: ", "))")
        }
        throw QuantaError(.usage, "task '\(name)' has \(plan.arrays.filter { $0.label == name }.reduce(0) { $0 + $1.jobCount }) jobs; \(index) is outside")
    }

    public struct Rerun: Sendable {
        /// The job script's exit status.
        public var exit: ExitStatus
        public var manifest: Manifest?
        /// With `replace`: how many registered datasets now carry the new files' size and checksum.
        public var replaced: Int?
        /// Registered datasets downstream made from the replaced files (not when they were rerun).
        public var stale: [String] = []
        /// With `downstream`: the jobs run again after this one, in run order, each with its own
        /// outcome; the first that did not succeed ends the list.
        public var downstream: [(job: JobSlot, rerun: Rerun)] = []
        /// Downstream jobs not run because one before them did not succeed.
        public var notRun: [JobSlot] = []
        /// The script exited 0 and the manifest says every quantum succeeded or had no work.
        public var succeeded: Bool { exit.succeeded && (manifest?.status.isSuccess ?? false) }
    }

    /// Runs one job in the foreground with the script SLURM runs (its output on this terminal).
    /// Refuses a job SLURM holds (`backend` is asked only for a submission that went to SLURM; nil:
    /// SLURM does not answer, and the person decides), and outputs the merge registered unless
    /// `replace`: then their registry records follow the new files. With `downstream`, every job
    /// with a quantum made, directly or further down, from this job's outputs runs again after it
    /// (in run order, forced): what was made from the old files is made again from the new ones.
    public func rerun(array: PlannedArray, slot: Int, force: Bool, replace: Bool, downstream: Bool = false,
                      backend: () -> (any SlurmBackend)?, note: (String) -> Void = { _ in }) throws -> Rerun {
        let job = JobSlot(array: array.name, index: slot)
        let after = downstream ? try downstreamJobs(of: job) : []
        if downstream, isLSST, !after.isEmpty {
            throw QuantaError(.usage, "--downstream: \(plan.repo) is an LSST butler repository, whose reruns skip quanta that succeeded (pipetask's --skip-existing), so the \(after.count) jobs downstream would not be made again; plan the graph again with a new --output-run")
        }
        if isOnSlurm, let backend = backend() {
            let (status, view) = try self.status(backend)
            if view?.note == nil {
                // Looked up once for all the jobs to run, not by a scan of the status per job.
                let queued = Dictionary(status.elements.filter { $0.state == .pending || $0.state == .running }
                    .map { (JobSlot(array: $0.array, index: $0.index), $0) }, uniquingKeysWith: { a, _ in a })
                for j in [job] + after {
                    if let row = queued[j], let held = row.slurmJob {
                        throw QuantaError(.usage, "\(dir.root): SLURM holds job \(j) (\(held), \(row.state.rawValue)); wait for it, or 'scancel \(held)' first, then rerun it")
                    }
                }
            }
        }
        // Every job to run is checked before the first runs: a refusal leaves everything as it was.
        // Without --force a job that succeeded is left alone (run-quantum says so).
        let runs = force || latest(job)?.status != .succeeded
        var registered = [try registeredOutputs(job, runs: runs, force: force)]
        for j in after { registered.append(try registeredOutputs(j, runs: true, force: true)) }
        for (j, r) in zip([job] + after, registered) where !r.datasets.isEmpty && !replace {
            let first = r.datasets[0]
            throw QuantaError(.usage, "job \(j): \(r.datasets.count) of its outputs are registered already (first: \(first.description) at \(first.path)); a rerun would replace them. Pass --replace to replace them and update the registry\(downstream ? "" : " (datasets made from them downstream are listed; --downstream makes them again)"), or plan the graph again with a new --output-run")
        }
        var out = try runOne(job, force: force, runs: runs, registered: registered[0], note: note)
        if !downstream, out.replaced != nil { out.stale = try registered[0].downstream() }
        guard out.succeeded else {
            out.notRun = after
            return out
        }
        for (k, j) in after.enumerated() {
            note("downstream \(k + 1)/\(after.count): job \(j)")
            let r = try runOne(j, force: true, runs: true, registered: registered[k + 1], note: note)
            out.downstream.append((j, r))
            guard r.succeeded else {
                out.notRun = Array(after.dropFirst(k + 1))
                break
            }
        }
        return out
    }

    /// The jobs with a quantum made, directly or further down, from `job`'s outputs, in run order.
    public func downstreamJobs(of job: JobSlot) throws -> [JobSlot] {
        let outputs = try Snapshot.job(path: dir.snapshot, array: job.array, index: job.index).quanta.flatMap { $0.outputs.map(\.id) }
        var jobs = try Snapshot.downstreamJobs(path: dir.snapshot, of: outputs)
        jobs.remove(job)
        let order = Dictionary(uniqueKeysWithValues: plan.arrays.enumerated().map { ($1.name, $0) })
        return jobs.sorted { (order[$0.array] ?? .max, $0.index) < (order[$1.array] ?? .max, $1.index) }
    }

    func latest(_ job: JobSlot) -> Manifest? {
        (try? Manifest.read(path: dir.manifest(array: job.array, index: job.index))) ?? nil
    }

    /// The registered outputs a run of `job` would write over — files the registry vouches for
    /// (size, checksum), never replaced silently: none when it will not run; without `force`, not
    /// those an earlier attempt made and left intact (run-quantum keeps them: --skip-existing).
    func registeredOutputs(_ job: JobSlot, runs: Bool, force: Bool) throws -> RegisteredOutputs {
        guard runs else { return .none(dir) }
        var registered = try RegisteredOutputs.of(dir, array: job.array, index: job.index)
        if !force, let latest = latest(job) {
            let kept = latest.intactQuanta(root: try Snapshot.meta(path: dir.snapshot).datastoreRoot).values.flatMap(\.outputs)
            registered = registered.excluding(kept: Set(kept.map(\.id)))
        }
        return registered
    }

    /// One job through its script, then the registry follows the files it replaced. `runs`: the
    /// job will run (forced, or its latest attempt did not succeed), so LSST's stale outputs go first.
    func runOne(_ job: JobSlot, force: Bool, runs: Bool, registered: RegisteredOutputs, note: (String) -> Void) throws -> Rerun {
        if runs, let n = try LSSTClobber.prepare(dir, plan: plan, site: site, jobs: [job.array: [job.index]])?.note { note(n) }
        guard let array = plan.arrays.first(where: { $0.name == job.array }) else {
            throw QuantaError(.usage, "no array '\(job.array)' in \(dir.root)")
        }
        var env = ProcessInfo.processInfo.environment
        env["SLURM_ARRAY_TASK_ID"] = String(array.element(ofJob: job.index))
        env["SLURM_SUBMIT_DIR"] = dir.root
        env["QUANTA_BACKEND"] = "rerun"
        var o = Spawn.Options()
        o.workingDirectory = dir.root
        let exit = try Spawn.run("/bin/bash", [dir.script(array: job.array), "--index", String(job.index)] + (force ? ["--force"] : []),
                                 environment: env, options: o)
        var out = Rerun(exit: exit)
        guard exit.succeeded else { return out }
        out.manifest = try Manifest.read(path: dir.manifest(array: job.array, index: job.index))
        if !registered.datasets.isEmpty, let m = out.manifest {
            out.replaced = try registered.adopt(m)
        }
        return out
    }
}
