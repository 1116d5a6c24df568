import Foundation
import QuantaButler
import QuantaCore

/// What a person needs to know about a submission: per task label and per array element.
public struct SubmissionStatus: Sendable, Codable {
    public enum State: String, Sendable, Codable, CaseIterable {
        /// `noWork`: quanta only (pipe_base's NoWorkFound, a success); a job is never "no work".
        case succeeded, noWork, failed, blocked, running, pending, cancelled

        /// The column title.
        public var title: String { self == .noWork ? "no work" : rawValue }
    }

    /// A quantum of a job that needs attention: what a person reruns or reads the log of.
    public struct QuantumRow: Sendable, Codable {
        public var task: String
        /// As the graph has it, e.g. `{instrument: 'Cam1', visit: 1002, detector: 1}`.
        public var dataID: String
        public var state: State
        public var reason: String?
        public var log: String?
        /// A blocked quantum: the task and first error line of the failed quantum at its root.
        public var blockedByTask: String?
        public var blockedByReason: String?
        /// Why the job it ran in failed (`outOfMemory`, `timeout`, … or `failed`: the task's own error).
        public var jobFailureClass: FailureClass?

        public init(task: String, dataID: String, state: State, reason: String?, log: String?,
                    blockedByTask: String? = nil, blockedByReason: String? = nil, jobFailureClass: FailureClass? = nil) {
            self.jobFailureClass = jobFailureClass
            self.task = task
            self.dataID = dataID
            self.state = state
            self.reason = reason
            self.log = log
            self.blockedByTask = blockedByTask
            self.blockedByReason = blockedByReason
        }
    }

    public struct TaskRow: Sendable, Codable {
        public var label: String
        public var counts: [String: Int]
        public var total: Int
    }

    public struct ElementRow: Sendable, Codable {
        public var array: String
        public var index: Int
        public var state: State
        public var attempt: Int?
        /// First error line, missing input, or why it never ran.
        public var reason: String?
        /// For failed jobs: failed, outOfMemory, timeout, nodeFailure, preempted, cancelled.
        public var failureClass: FailureClass?
        /// Submissions to SLURM (or runs) of this job so far.
        public var attempts: Int = 0
        public var outOfMemoryCount: Int = 0
        /// Memory of the latest attempt's element (MB).
        public var memoryMB: Int?
        public var exitCode: Int?
        /// `123_4` for SLURM.
        public var slurmJob: String?
        /// Failed, blocked or cancelled jobs: every quantum of it that did not succeed, with its data ID.
        public var quanta: [QuantumRow]?
    }

    public var submission: String
    public var outputRun: String
    public var tasks: [TaskRow]
    public var arrays: [String: [String: Int]]
    public var arrayOrder: [String]
    public var elements: [ElementRow]
    public var merge: String
    /// The last merge failed (`merge-error.json`); `merge` says why.
    public var mergeFailed = false
    public var quanta: [String: Int]
    /// `local`, or the SLURM backend and rounds.
    public var scheduler: String = "local"
    public var note: String?
    /// `10 Dependency, 2 Resources`: why jobs wait.
    public var pendingReasons: String?
    /// Something will still run: a job pending or running, or (SLURM) the final job not ended.
    public var active = false
    /// The failed quanta grouped by task and masked first error line, each with the quanta it
    /// blocked; quanta blocked by something that never ran in groups of their own.
    public var failures: [FailureGroup] = []
    /// Set when more jobs need attention than `read` grouped (`failures` covers this many).
    public var failuresFromJobs: Int?

    /// Jobs that need attention whose manifests `read` groups the failures of, at most.
    public static let groupedJobs = 20_000

    /// Reads plan, snapshot, manifests and either the local backend's events or SLURM's view.
    /// `cached`: manifests through `status-cache.bin` (what a person's `quanta status` and the wait
    /// loop use); decisions (retries, restart, merge) read every manifest afresh.
    /// `detail`: how many jobs that need attention get their quanta listed (each costs a read of
    /// the job's full manifest; a person's terminal shows 20).
    /// `groupFailures`: group the failures of every job that needs attention (up to
    /// `groupedJobs`), reading their manifests; a poll that only counts leaves it off.
    public static func read(_ dir: SubmitDirectory, slurm: SlurmView? = nil, cached: Bool = false, detail: Int = .max,
                            groupFailures: Bool = true) throws -> SubmissionStatus {
        let plan = try PlanDocument.read(dir)
        let planned = Dictionary(uniqueKeysWithValues: plan.arrays.map { ($0.name, $0) })
        let jobs = try Snapshot.jobs(path: dir.snapshot)
        let events = LocalEvent.latest(dir)
        var taskCounts: [String: [String: Int]] = [:]
        var taskOrder: [String] = []
        var elements: [ElementRow] = []
        var arrays: [String: [String: Int]] = [:]
        var quanta: [String: Int] = [:]
        // `isr\t3`: a job's slot in the local backend's events (its element when jobs are packed).
        let keys = jobs.map { LocalEvent.JobKey(array: $0.array, index: planned[$0.array]?.element(ofJob: $0.index) ?? $0.index) }
        // A start the local backend recorded after the job's manifest was written: that run is newer.
        // Only jobs whose latest event is a start are asked, so the stat is rare.
        func startedSinceManifest(_ j: Int, _ event: LocalEvent?) -> Bool {
            guard let event, event.kind == .start else { return false }
            var st = stat()
            guard stat(dir.manifest(array: jobs[j].array, index: jobs[j].index), &st) == 0 else { return true }
            return event.time > Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9
        }
        let manifests: [Manifest?]
        if cached, let snapshot = ManifestCache.Identity.of(path: dir.snapshot) {
            var cache = ManifestCache.load(path: dir.statusCache, snapshot: snapshot, jobs: jobs.count)
            // A job SLURM or the local backend has a newer attempt of than the cached manifest is read afresh.
            let read = try ManifestCache.readAll(dir, jobs: jobs.map { ($0.array, $0.index) }, cache: &cache) { j, m in
                let job = jobs[j]
                if let last = slurm?.attempts[job.array]?[job.index]?.last { return m?.slurmArrayJobID != String(last.arrayJobID) }
                // The local backend: it ran (a manifest may be new), or started again after this manifest.
                if let event = events[keys[j]] {
                    guard m != nil else { return true }
                    return startedSinceManifest(j, event)
                }
                return false
            }
            if read.changed { cache.write(path: dir.statusCache) }
            manifests = read.manifests
        } else {
            manifests = try Manifest.readAll(paths: jobs.map { dir.manifest(array: $0.array, index: $0.index) }, outputs: false)
        }
        for (j, job) in jobs.enumerated() {
            let manifest = manifests[j]
            let event = events[keys[j]]
            var row = ElementRow(array: job.array, index: job.index, state: .pending, attempt: manifest?.attempt, reason: nil)
            var perQuantum: [(String, State)] = []
            if let slurm {
                let list = slurm.attempts[job.array]?[job.index] ?? []
                let packed = planned[job.array]?.packing != nil
                // Earlier attempts are judged by their own manifests (attempts/), the latest by the job's.
                let earlier = list.count > 1 ? Manifest.attempts(in: dir, array: job.array, index: job.index) : []
                let outcomes = list.enumerated().map { k, a in
                    let own = k == list.count - 1 ? manifest : earlier.last { $0.slurmArrayJobID == String(a.arrayJobID) }
                    return AttemptClassifier.classify(a, manifest: own) {
                        tail(dir.elementLog(array: job.array, element: a.element, packed: packed, round: a.round, stream: "err"))
                    }
                }
                row.attempts = list.count
                row.outOfMemoryCount = outcomes.filter { $0.failureClass == .outOfMemory }.count
                if let m = manifest, let last = outcomes.last, last.state != .running, last.state != .pending,
                   !list.contains(where: { String($0.arrayJobID) == m.slurmArrayJobID }) {
                    // Run by hand after SLURM's attempts ('quanta rerun'): the newest outcome is that run's.
                    let o = AttemptClassifier.fromManifest(m)
                    row.state = o.state
                    row.reason = o.reason.map { "\($0) (rerun by hand)" } ?? (o.state == .succeeded ? nil : "rerun by hand")
                    row.failureClass = o.failureClass
                    row.exitCode = o.exitCode
                    row.attempts = list.count + 1
                    row.memoryMB = list.last?.memoryMB
                    perQuantum = m.quanta.map { ($0.task, State(rawValue: $0.status.rawValue) ?? .failed) }
                } else if let a = list.last, let o = outcomes.last {
                    row.state = o.state
                    row.reason = o.reason
                    row.failureClass = o.failureClass
                    row.exitCode = o.exitCode
                    row.memoryMB = a.memoryMB
                    row.slurmJob = a.slurmID
                    if o.state == .succeeded || o.state == .blocked || (o.state == .failed && manifest?.slurmArrayJobID == String(a.arrayJobID)),
                       let m = manifest {
                        // This attempt's manifest says what became of each quantum: a blocked or
                        // no-work quantum of a failed job stays blocked or no work.
                        perQuantum = m.quanta.map { ($0.task, State(rawValue: $0.status.rawValue) ?? .failed) }
                    }
                } else {
                    row.reason = "not submitted"
                }
            } else if let event, manifest == nil ? event.kind == .start : startedSinceManifest(j, event) {
                row.state = event.processAlive ? .running : .failed
                if !event.processAlive { row.reason = "ended without writing a manifest (killed?)" }
            } else if let manifest {
                let o = AttemptClassifier.fromManifest(manifest)
                row.state = o.state
                row.reason = manifest.firstError
                row.attempts = manifest.attempt
                row.memoryMB = manifest.memoryLimitMB
                if manifest.attempt > 1 {
                    row.outOfMemoryCount = Manifest.attempts(in: dir, array: job.array, index: job.index)
                        .filter { $0.failureClass == .outOfMemory }.count
                } else if manifest.failureClass == .outOfMemory {
                    row.outOfMemoryCount = 1
                }
                row.failureClass = o.failureClass
                row.exitCode = o.exitCode
                perQuantum = manifest.quanta.map { q in
                    let st = State(rawValue: q.status.rawValue) ?? .failed
                    return (q.task, o.state == .cancelled && st != .succeeded ? .cancelled : st)
                }
            } else if let event {
                switch event.kind {
                case .end: row.state = .failed; row.reason = "\(event.detail), no manifest written"
                case .skipped: row.state = .blocked; row.reason = event.detail
                case .cancelled: row.state = .cancelled; row.reason = event.detail
                case .start, .merged: break
                }
            }
            if perQuantum.isEmpty { perQuantum = job.tasks.map { ($0, row.state) } }
            for (task, state) in perQuantum {
                if taskCounts[task] == nil { taskOrder.append(task) }
                taskCounts[task, default: [:]][state.rawValue, default: 0] += 1
                quanta[state.rawValue, default: 0] += 1
            }
            arrays[job.array, default: [:]][row.state.rawValue, default: 0] += 1
            elements.append(row)
        }
        var merge = "not run"
        if let data = FileManager.default.contents(atPath: dir.mergeSummary),
           let m = try? JSONDecoder().decode(MergeResult.self, from: data) {
            merge = "\(m.registered + m.alreadyRegistered) datasets registered in \(m.outputRun)"
        }
        let mergeFailure = MergeFailure.read(dir)
        if let f = mergeFailure {
            merge = "FAILED at \(f.at): \(f.error) — fix that, then 'quanta merge \(shellQuote(dir.root))' (safe to repeat)"
        }
        var status = SubmissionStatus(
            submission: plan.submission, outputRun: plan.outputRun,
            tasks: taskOrder.map { TaskRow(label: $0, counts: taskCounts[$0]!, total: taskCounts[$0]!.values.reduce(0, +)) },
            arrays: arrays, arrayOrder: plan.arrays.map(\.name), elements: elements, merge: merge, quanta: quanta)
        status.mergeFailed = mergeFailure != nil
        if let slurm {
            let r = slurm.record
            status.scheduler = "SLURM (\(r.backend)), \(r.rounds.count) round\(r.rounds.count == 1 ? "" : "s"), \(r.sbatchCalls) sbatch calls\(r.interrupted.map { ", round \($0.number) interrupted" } ?? "")\(r.cancelled ? ", cancelled" : "")"
            var notes = [slurm.note].compactMap { $0 } + r.notes
            if let cut = r.interrupted {
                let root = shellQuote(dir.root)
                notes.append(r.cancelled
                    ? "round \(cut.number) was interrupted part-way and then cancelled; 'quanta restart \(root)' resubmits what did not succeed"
                    : "round \(cut.number) was interrupted after \(cut.arrays.count) of \(cut.arrays.count + cut.unsubmitted.count + 1) sbatch calls (\(dir.slurmJournal)); 'quanta restart \(root)' submits the rest, 'quanta cancel \(root)' cancels what is queued")
            }
            status.note = notes.isEmpty ? nil : notes.joined(separator: "; ")
            // The final job of the latest round: what a person needs when the merge did not happen.
            if let last = r.rounds.last, let id = last.finalJob {
                let log = "logs/\(SubmitDirectory.mergeLogStem(round: last.number)).err"
                if let f = slurm.finalJobs.first(where: { $0.jobID == id }) {
                    switch f.state {
                    case .pending: status.merge += " (final job \(id) pending: \(f.reason))"
                    case .running, .completing: status.merge += " (final job \(id) running)"
                    case .completed: break
                    case .cancelled where r.cancelled:
                        status.merge += " (cancelled: 'quanta merge \(shellQuote(dir.root))' registers what finished, 'quanta restart \(shellQuote(dir.root))' resumes)"
                    default:
                        status.merge += " — final job \(id) ended \(f.state.rawValue)\(f.exitCode != 0 ? " (exit \(f.exitCode))" : ""); see \(log), then run 'quanta finalize \(shellQuote(dir.root))' by hand"
                    }
                }
            }
        }
        // The quanta behind each job that needs attention, with their data IDs: read from the full
        // manifest (the status cache keeps states only), one per such job.
        // Every such job's quanta feed the failure groups (up to `groupedJobs` of them); the first
        // `detail` jobs keep theirs for listing.
        let attention = status.elements.indices.filter { [.failed, .blocked, .cancelled].contains(status.elements[$0].state) }
        let problems = Array(attention.prefix(max(detail, groupFailures ? Self.groupedJobs : 0)))
        let full = try Manifest.readAll(paths: problems.map { dir.manifest(array: status.elements[$0].array, index: status.elements[$0].index) },
                                        outputs: false)
        var rows: [QuantumRow] = []
        for (k, e) in problems.enumerated() {
            guard let m = full[k], m.index == status.elements[e].index else {
                rows.append(QuantumRow(task: status.elements[e].array, dataID: "", state: status.elements[e].state, reason: status.elements[e].reason, log: nil))
                continue
            }
            let quanta = m.quanta.filter { !$0.status.isSuccess }.map {
                QuantumRow(task: $0.task, dataID: DataID.describe(json: $0.dataID), state: State(rawValue: $0.status.rawValue) ?? .failed,
                           reason: $0.reason, log: $0.log, blockedByTask: $0.blockedByTask, blockedByReason: $0.blockedByReason,
                           jobFailureClass: $0.status == .failed ? (m.failureClass ?? .failed) : nil)
            }
            rows += quanta
            if k < detail { status.elements[e].quanta = quanta }
        }
        if groupFailures {
            status.failures = FailureGroups.of(rows: rows)
            if problems.count < attention.count { status.failuresFromJobs = problems.count }
        }
        status.active = elements.contains { $0.state == .pending || $0.state == .running } || (slurm?.isActive ?? false)
        let pending = elements.filter { $0.state == .pending }
        if !pending.isEmpty {
            let why = Dictionary(grouping: pending) { $0.reason ?? "queued" }.mapValues(\.count)
            status.pendingReasons = why.keys.sorted().map { "\(why[$0]!) \($0)" }.joined(separator: ", ")
        }
        return status
    }

    /// A clustered job's quanta that did not succeed: each one (task, data ID, why, log), or past
    /// eight, grouped by task and state with a few data IDs each.
    static func renderQuanta(_ quanta: [QuantumRow], all: Bool) -> [String] {
        if quanta.count <= 8 || all {
            return quanta.flatMap { q in
                ["      \(q.task) \(q.dataID)  \(q.state.rawValue)\(q.reason.map { ": \($0)" } ?? "")"] + (q.log.map { ["        log: \($0)"] } ?? [])
            }
        }
        var order: [String] = []
        var groups: [String: [QuantumRow]] = [:]
        for q in quanta {
            let key = "\(q.task) \(q.state.rawValue)"
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(q)
        }
        return order.map { key in
            let g = groups[key]!
            let first = g[0]
            return "      \(first.task) ×\(g.count) \(first.state.rawValue), e.g. \(g.prefix(3).map(\.dataID).joined(separator: ", "))\(first.reason.map { " — \($0)" } ?? "")\(first.log.map { " (log \($0))" } ?? "")"
        }
    }

    /// The last 4 KB of a file (SLURM's stderr of an element).
    static func tail(_ path: String) -> String? {
        guard let h = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? h.close() }
        let size = (try? h.seekToEnd()) ?? 0
        try? h.seek(toOffset: size > 4096 ? size - 4096 : 0)
        return (try? h.readToEnd()).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Every quantum succeeded or had no work (what `pipetask run` counts as success).
    public var isComplete: Bool { (quanta["succeeded"] ?? 0) + (quanta[State.noWork.rawValue] ?? 0) == quanta.values.reduce(0, +) }

    /// One line for a log: quanta by state, then what the jobs are doing.
    public var oneLine: String {
        let total = quanta.values.reduce(0, +)
        let states = State.allCases.compactMap { st in quanta[st.rawValue].flatMap { $0 > 0 ? "\($0) \(st.title)" : nil } }
        let running = elements.filter { $0.state == .running }.count, pending = elements.filter { $0.state == .pending }.count
        return "\(submission): \(total) quanta — \(states.joined(separator: ", ")); jobs: \(running) running, \(pending) pending\(active ? "" : "; done")"
    }

    /// Tables for a terminal.
    public func render(showElements: Bool) -> String {
        let states = State.allCases.map(\.rawValue)
        var lines = ["Submission \(submission) → run \(outputRun) · \(scheduler)"] + (note.map { ["note: \($0)"] } ?? []) + [""]
        lines += TextTable.render(header: ["task", "quanta"] + State.allCases.map(\.title), rows: tasks.map { t in
            [t.label, String(t.total)] + states.map { String(t.counts[$0] ?? 0) }
        })
        lines.append("")
        let jobStates = State.allCases.filter { $0 != .noWork }.map(\.rawValue)
        lines += TextTable.render(header: ["array", "elements"] + jobStates, rows: arrayOrder.map { a in
            let c = arrays[a] ?? [:]
            return [a, String(c.values.reduce(0, +))] + jobStates.map { String(c[$0] ?? 0) }
        })
        if let p = pendingReasons {
            lines.append("")
            lines.append("Pending: \(p)")
        }
        let classes = Dictionary(grouping: elements.filter { $0.state == .failed }) { $0.failureClass ?? .failed }
        if !classes.isEmpty {
            lines.append("")
            lines.append("Failed jobs by class: " + classes.keys.sorted { $0.rawValue < $1.rawValue }.map { "\(classes[$0]!.count) \($0.words)" }.joined(separator: ", "))
        }
        if !failures.isEmpty {
            lines.append("")
            lines.append("Failures, grouped\(failuresFromJobs.map { " (from the first \($0) jobs that need attention)" } ?? ""):")
            lines += FailureGroups.render(failures, limit: showElements ? failures.count : 12)
        }
        let problems = elements.filter { [.failed, .blocked, .cancelled].contains($0.state) }
        if !problems.isEmpty {
            lines.append("")
            lines.append("Jobs that need attention (rerun one with: quanta rerun DIR --job ARRAY:INDEX):")
            for e in problems.prefix(showElements ? problems.count : 20) {
                var what = e.state.rawValue
                if let c = e.failureClass, c != .cancelled || e.state != .cancelled, c != .failed || e.exitCode != nil {
                    what += c == .failed ? " (exit \(e.exitCode!))" : " (\(c.words))"
                }
                var facts: [String] = []
                if e.attempts > 1 { facts.append("attempt \(e.attempts)") }
                if let m = e.memoryMB, e.slurmJob != nil { facts.append(Units.memory(m)) }
                if let j = e.slurmJob { facts.append("job \(j)") }
                let single = e.quanta?.count == 1 ? e.quanta![0] : nil
                let reason = single.map { "\($0.task) \($0.dataID): \($0.reason ?? $0.state.rawValue)" } ?? e.reason
                lines.append("  \(e.array):\(e.index)  \(what)\(facts.isEmpty ? "" : " [\(facts.joined(separator: ", "))]")\(reason.map { "  \($0)" } ?? "")")
                if let log = single?.log { lines.append("      log: \(log)") }
                if let quanta = e.quanta, quanta.count > 1 { lines += Self.renderQuanta(quanta, all: showElements) }
            }
            if !showElements && problems.count > 20 { lines.append("  … \(problems.count - 20) more (--all lists them)") }
        }
        lines.append("")
        lines.append("Merge: \(merge)")
        return lines.joined(separator: "\n") + "\n"
    }
}

