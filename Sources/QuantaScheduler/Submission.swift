import Foundation
import QuantaButler
import QuantaCore
import QuantaSlurm

/// One submission as a library: what `submit`, `status`, `restart`, `cancel`, `finalize`, `run`
/// and the wait loop need of a submit directory, for both backends. Commands open one
/// (`SubmissionArgument.open`) and only translate arguments; progress reaches them by callbacks.
/// The steps that change a submission (merge, finalize, cancel, restart, rerun) are in
/// SubmissionSteps.swift.
public struct Submission {
    public let dir: SubmitDirectory
    public let plan: PlanDocument
    /// The site as planned (the copy in the submit directory first).
    public let site: SiteConfig?

    public init(dir: SubmitDirectory, plan: PlanDocument, site: SiteConfig?) {
        self.dir = dir
        self.plan = plan
        self.site = site
    }

    /// Submitted to SLURM, even part-way (slurm.json or its journal).
    public var isOnSlurm: Bool { SlurmRecord.exists(dir) }

    public func submitter(_ backend: any SlurmBackend) -> SlurmSubmitter {
        var s = SlurmSubmitter(dir: dir, plan: plan, site: site, backend: backend)
        // Test hook, not for users: QUANTA_TEST_KILL_AFTER_SUBMITS=N kills this process (SIGKILL, as
        // kill -9 would) right after its N-th sbatch is journaled, so the end-to-end tests can
        // interrupt a round at a known point.
        // QUANTA_TEST_KILL_BEFORE_JOURNAL=N kills it after the N-th sbatch returned, before its id
        // is journaled (a job no record names).
        let env = ProcessInfo.processInfo.environment
        let after = env["QUANTA_TEST_KILL_AFTER_SUBMITS"].flatMap(Int.init), before = env["QUANTA_TEST_KILL_BEFORE_JOURNAL"].flatMap(Int.init)
        if after != nil || before != nil {
            s.afterSubmit = { count, journaled in
                if count >= (journaled ? after : before) ?? .max { raise(SIGKILL) }
            }
        }
        return s
    }

    public func record() throws -> SlurmRecord {
        guard let r = try SlurmRecord.read(dir) else {
            throw QuantaError(.usage, "\(dir.root): not submitted to SLURM (no slurm.json nor slurm-journal.jsonl); submit it with 'quanta submit \(shellQuote(dir.root))' or run it locally with 'quanta run'")
        }
        return r
    }

    /// `cached`: for what a person reads (status, the wait loop), not for decisions.
    public func status(_ backend: (any SlurmBackend)?, backendError: String? = nil, cached: Bool = false,
                       detail: Int = .max, groupFailures: Bool = true) throws -> (SubmissionStatus, SlurmView?) {
        guard let record = try SlurmRecord.read(dir) else {
            return (try SubmissionStatus.read(dir, cached: cached, detail: detail, groupFailures: groupFailures), nil)
        }
        var view = SlurmView.load(dir, plan: plan, record: record, backend: backend)
        if backend == nil {
            view.note = "SLURM not reachable (\(backendError ?? "no backend")); states come from manifests and remembered records"
        }
        return (try SubmissionStatus.read(dir, slurm: view, cached: cached, detail: detail, groupFailures: groupFailures), view)
    }

    /// How far a wait has come, for a progress line.
    public struct WaitProgress: Sendable {
        public var done: Int, total: Int, running: Int, round: Int
    }

    /// Polls until the latest round's final job has ended and no new round was added.
    public func wait(_ backend: any SlurmBackend, poll: Double, progress: (WaitProgress) -> Void = { _ in }) throws -> (SubmissionStatus, SlurmView?) {
        while true {
            let (s, view) = try status(backend, cached: true, detail: 0, groupFailures: false)
            if let view, !view.isActive {
                // The final job may just have submitted a retry round.
                let again = try status(backend, detail: 20)
                if let v2 = again.1, !v2.isActive, v2.record.rounds.count == view.record.rounds.count { return again }
                continue
            }
            let done = s.elements.filter { [.succeeded, .failed, .blocked, .cancelled].contains($0.state) }.count
            let running = s.elements.filter { $0.state == .running }.count
            progress(WaitProgress(done: done, total: s.elements.count, running: running, round: (view?.record.rounds.count ?? 1) - 1))
            usleep(UInt32(poll * 1_000_000))
        }
    }

    /// What a local run reports as it goes: a pass over the jobs starts (`total` of them), a
    /// backend event, or a retry line.
    public enum LocalProgress {
        case pass(total: Int)
        case event(LocalBackend.Event)
        case retry(round: Int, line: String)
    }

    /// Runs here with the local backend, then retries what the arrays' retry policies allow (as the
    /// final job does on SLURM: not for exit codes in retryUnlessExit, more memory after
    /// out-of-memory), then merges. Refuses a submission that went to SLURM.
    public func runLocally(_ options: LocalBackend.Options, progress: (LocalProgress) -> Void = { _ in }) throws -> LocalBackend.Summary {
        if isOnSlurm {
            // Its jobs may be queued or running under SLURM: running them here too would do the work twice.
            let file = FileManager.default.fileExists(atPath: dir.slurmRecord) ? dir.slurmRecord : dir.slurmJournal
            throw QuantaError(.usage, "\(file): this submission went to SLURM, which may hold its jobs; follow it with 'quanta status \(shellQuote(dir.root))', resume it with 'quanta restart \(shellQuote(dir.root))' (on SLURM), or 'quanta cancel' it first")
        }
        if options.force, let data = FileManager.default.contents(atPath: dir.mergeSummary),
           let merged = try? JSONDecoder().decode(MergeResult.self, from: data), merged.registered + merged.alreadyRegistered > 0 {
            // Redoing every job would write over files the registry vouches for (issue 13).
            throw QuantaError(.usage, "\(dir.root): the merge registered \(merged.registered + merged.alreadyRegistered) of its outputs; --force would rewrite them in place. Rerun one job with 'quanta rerun \(shellQuote(dir.root)) --job ARRAY:INDEX --force --replace', or plan the graph again with a new --output-run")
        }
        var o = options
        let merge = o.runMerge
        o.runMerge = false
        func pass(_ o: LocalBackend.Options) throws -> LocalBackend.Summary {
            progress(.pass(total: o.only?.values.reduce(0) { $0 + $1.count } ?? plan.arrays.reduce(0) { $0 + $1.size }))
            return try LocalBackend(dir: dir, plan: plan).run(o) { progress(.event($0)) }
        }
        var total = try pass(o)
        let arrays = Dictionary(uniqueKeysWithValues: plan.arrays.map { ($0.name, $0) })
        var round = 0
        while !total.interrupted {
            let decision = RetryPlanner.retries(status: try SubmissionStatus.read(dir), plan: plan, site: site)
            if decision.selection.isEmpty { break }
            round += 1
            for line in decision.lines { progress(.retry(round: round, line: line)) }
            o.only = [:]
            o.memoryMB = [:]
            for (array, slots) in decision.selection {
                for (slot, memory) in slots {
                    let element = arrays[array]?.element(ofJob: slot) ?? slot
                    o.only![array, default: []].insert(element)
                    o.memoryMB[array, default: [:]][element] = memory
                }
            }
            let again = try pass(o)
            total.elements += again.elements
            total.exitedZero += again.exitedZero
            total.exitedNonZero += again.exitedNonZero
            total.skipped += again.skipped
            total.cancelled += again.cancelled
            total.interrupted = again.interrupted
            total.seconds += again.seconds
        }
        if merge && !total.interrupted {
            o.only = [:]
            o.runMerge = true
            let m = try pass(o)
            total.merge = m.merge
            total.seconds += m.seconds
        }
        return total
    }
}
