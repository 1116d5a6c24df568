import Foundation
import QuantaButler
import QuantaCore
import QuantaSlurm

/// `slurm.json`: every SLURM job a submission is made of, round by round. Round 0 is the plan;
/// later rounds are retries (from the final job) or restarts (from a person), as new arrays with
/// explicit index lists. Built step by step from `slurm-journal.jsonl` (`SlurmJournal`), whose
/// entries `read` folds in, so a round cut short by a kill is still here.
public struct SlurmRecord: Sendable, Codable {
    /// One sbatch a round means to make (the journal's intent), in submission order.
    public struct Planned: Sendable, Codable, Equatable {
        public var array: String
        /// Job slots (status rows) in this submission; nil means the whole array as planned.
        public var jobs: [Int]?
        /// `--array=` to submit.
        public var elements: String
        public var memoryMB: Int
    }

    public struct Submitted: Sendable, Codable, Equatable {
        public var array: String
        public var jobID: UInt32
        /// Job slots (status rows) in this submission; nil means the whole array.
        public var jobs: [Int]?
        /// `--array=` as submitted.
        public var elements: String
        public var memoryMB: Int

        init(_ p: Planned, jobID: UInt32) {
            array = p.array
            self.jobID = jobID
            jobs = p.jobs
            elements = p.elements
            memoryMB = p.memoryMB
        }
    }

    /// Why a round was submitted.
    public enum Reason: String, Sendable, Codable {
        /// `quanta submit`: round 0, everything as planned.
        case submit
        /// The final job's retry policy.
        case retry
        /// A person's `quanta restart` (it resumes a cancelled submission).
        case restart
    }

    public struct Round: Sendable, Codable {
        public var number: Int
        public var reason: Reason
        public var submittedAt: String
        public var arrays: [Submitted]
        public var finalJob: UInt32?
        /// While the round is being submitted: every sbatch it means to make (the final job
        /// aside); `arrays` holds the first of them that were made. Nil once the final job is queued.
        public var planned: [Planned]?

        /// No final job: the round's submission stopped part-way (a kill, a crash).
        public var isInterrupted: Bool { finalJob == nil }
        /// The planned sbatch calls not made yet, in order.
        public var unsubmitted: [Planned] { Array((planned ?? []).dropFirst(arrays.count)) }
    }

    public var formatVersion = 1
    public var backend: String
    public var rounds: [Round]
    /// Set by `quanta cancel`: the final job retries nothing.
    public var cancelled = false
    /// Journal lines that could not be read (not stored).
    public var notes: [String] = []

    enum CodingKeys: String, CodingKey { case formatVersion, backend, rounds, cancelled }

    public init(backend: String, rounds: [Round]) {
        self.backend = backend
        self.rounds = rounds
    }

    /// True when this submission went to SLURM, even if `quanta submit` was killed before slurm.json.
    public static func exists(_ dir: SubmitDirectory) -> Bool {
        FileManager.default.fileExists(atPath: dir.slurmRecord) || FileManager.default.fileExists(atPath: dir.slurmJournal)
    }

    /// slurm.json with the journal folded in; nil when neither exists.
    public static func read(_ dir: SubmitDirectory) throws -> SlurmRecord? {
        var record: SlurmRecord?
        var notes: [String] = []
        if let data = FileManager.default.contents(atPath: dir.slurmRecord) {
            do { record = try JSONDecoder().decode(SlurmRecord.self, from: data) } catch {
                // The journal holds the same job ids: fold it alone rather than stop here.
                guard FileManager.default.fileExists(atPath: dir.slurmJournal) else {
                    throw QuantaError(.io, "\(dir.slurmRecord): unreadable (\(error)); it lists the SLURM job ids of this submission — restore it or cancel the jobs with scancel")
                }
                notes.append("\(dir.slurmRecord): unreadable (\(error)); rounds come from \(dir.slurmJournal) alone")
            }
        }
        let journal = SlurmJournal.read(dir.slurmJournal)
        if record == nil && journal.entries.isEmpty && journal.notes.isEmpty { return nil }
        var folded = record ?? SlurmRecord(backend: "", rounds: [])
        for e in journal.entries { folded.apply(e) }
        folded.notes = notes + journal.notes
        return folded
    }

    public func write(_ dir: SubmitDirectory) throws {
        try AtomicFile.write(try JSONEncoder.pretty.encode(self), to: dir.slurmRecord)
    }

    /// Records one step in the journal (synced) and in this record.
    public mutating func journal(_ entry: SlurmJournal.Entry, in dir: SubmitDirectory) throws {
        try SlurmJournal.append(entry, to: dir.slurmJournal)
        apply(entry)
    }

    /// The latest round, when its submission stopped part-way.
    public var interrupted: Round? { rounds.last.flatMap { $0.isInterrupted ? $0 : nil } }

    public var allJobIDs: Set<UInt32> {
        Set(rounds.flatMap { $0.arrays.map(\.jobID) + ($0.finalJob.map { [$0] } ?? []) })
    }

    public var sbatchCalls: Int { rounds.reduce(0) { $0 + $1.arrays.count + ($1.finalJob == nil ? 0 : 1) } }
}

/// Job states SLURM reported, kept after the controller forgets finished jobs.
public enum SlurmStateStore {
    public static func read(_ dir: SubmitDirectory) -> [SlurmJobRecord] {
        guard let data = FileManager.default.contents(atPath: dir.slurmStates) else { return [] }
        return (try? JSONDecoder().decode([SlurmJobRecord].self, from: data)) ?? []
    }

    /// Keeps the finished records of `live`, replacing older copies of the same job.
    public static func remember(_ live: [SlurmJobRecord], in dir: SubmitDirectory) throws {
        var byKey: [String: SlurmJobRecord] = [:]
        func key(_ r: SlurmJobRecord) -> String { "\(r.arrayJobID)_\(r.taskIDs.map(String.init).joined(separator: ","))" }
        for r in read(dir) { byKey[key(r)] = r }
        for r in live where r.state.isFinished { byKey[key(r)] = r }
        let list = byKey.values.sorted { ($0.arrayJobID, $0.taskIDs.first ?? -1) < ($1.arrayJobID, $1.taskIDs.first ?? -1) }
        try AtomicFile.write(try JSONEncoder().encode(list), to: dir.slurmStates)
    }
}

/// One submission of one job slot to SLURM, and what SLURM says about it.
public struct SlurmAttempt: Sendable, Codable {
    public var round: Int
    public var arrayJobID: UInt32
    public var element: Int
    public var memoryMB: Int
    public var record: SlurmJobRecord?

    /// `123_4`, what `scancel` and `scontrol` take.
    public var slurmID: String { "\(arrayJobID)_\(element)" }
}

/// The scheduler's side of a submission: the attempts of every job slot.
public struct SlurmView: Sendable {
    public var record: SlurmRecord
    /// array → job slot → attempts, oldest first.
    public var attempts: [String: [Int: [SlurmAttempt]]]
    public var finalJobs: [SlurmJobRecord]
    /// Why live states are missing, if they are.
    public var note: String?

    /// Joins slurm.json with live records (one controller query) and the remembered ones.
    public static func load(_ dir: SubmitDirectory, plan: PlanDocument, record: SlurmRecord,
                            backend: (any SlurmBackend)?) -> SlurmView {
        var live: [SlurmJobRecord] = []
        var note: String?
        if let backend {
            do { live = try backend.jobs(arrayJobIDs: record.allJobIDs) } catch {
                note = "SLURM did not answer (\(error)); states come from manifests and remembered records"
            }
        }
        var byTask: [String: SlurmJobRecord] = [:]
        for r in SlurmStateStore.read(dir) + live {
            if r.taskIDs.isEmpty { byTask["\(r.arrayJobID)"] = r }
            for t in r.taskIDs { byTask["\(r.arrayJobID)_\(t)"] = r }
        }
        let arrays = Dictionary(uniqueKeysWithValues: plan.arrays.map { ($0.name, $0) })
        var attempts: [String: [Int: [SlurmAttempt]]] = [:]
        var finals: [SlurmJobRecord] = []
        for round in record.rounds {
            for s in round.arrays {
                guard let a = arrays[s.array] else { continue }
                for slot in s.jobs ?? Array(0..<a.jobCount) {
                    let e = a.element(ofJob: slot)
                    attempts[s.array, default: [:]][slot, default: []].append(
                        SlurmAttempt(round: round.number, arrayJobID: s.jobID, element: e, memoryMB: s.memoryMB,
                                     record: byTask["\(s.jobID)_\(e)"]))
                }
            }
            if let f = round.finalJob, let r = byTask["\(f)"] { finals.append(r) }
        }
        return SlurmView(record: record, attempts: attempts, finalJobs: finals, note: note)
    }

    /// True while any job of the latest round (final job included) is pending or running.
    public var isActive: Bool {
        guard let last = record.rounds.last else { return false }
        guard let f = last.finalJob else {
            // A retry round being submitted by the previous round's final job: active while that
            // job runs (it journals the round's final job before it ends). With no such job
            // running, the submission was cut short (a kill): not active; restart completes it.
            guard let previous = record.rounds.dropLast().last?.finalJob else { return false }
            guard let r = finalJobs.first(where: { $0.jobID == previous }) else { return true }
            return !r.state.isFinished
        }
        if let r = finalJobs.first(where: { $0.jobID == f }), !r.state.isFinished { return true }
        if !finalJobs.contains(where: { $0.jobID == f }) { return true }
        return false
    }
}

/// How an attempt ended, from SLURM's state and what run-quantum recorded.
public enum AttemptClassifier {
    public struct Outcome: Sendable, Equatable {
        public var state: SubmissionStatus.State
        public var failureClass: FailureClass?
        public var reason: String?
        /// The exit code that `retryUnlessExit` is compared with.
        public var exitCode: Int?
    }

    /// `manifest` is the job's latest manifest; it belongs to this attempt only if SLURM's job id matches.
    public static func classify(_ attempt: SlurmAttempt, manifest: Manifest?, stderrTail: () -> String?) -> Outcome {
        let current = manifest.flatMap { m in m.slurmArrayJobID == String(attempt.arrayJobID) ? m : nil }
        guard let r = attempt.record else {
            // The controller forgot it and nothing was remembered: trust the manifest if it is this attempt's.
            if let m = current { return fromManifest(m) }
            return Outcome(state: .pending, failureClass: nil, reason: "no state from SLURM yet", exitCode: nil)
        }
        switch r.state {
        case .pending, .requeued:
            return Outcome(state: .pending, failureClass: nil, reason: r.reason.isEmpty || r.reason == "None" ? nil : r.reason, exitCode: nil)
        case .running, .completing, .suspended, .unknown:
            return Outcome(state: .running, failureClass: nil, reason: nil, exitCode: nil)
        case .completed:
            if let m = current { return fromManifest(m) }
            return Outcome(state: .failed, failureClass: .failed, reason: "exited 0 without writing a manifest", exitCode: 0)
        case .outOfMemory:
            return Outcome(state: .failed, failureClass: .outOfMemory, reason: memoryReason(attempt, current), exitCode: nil)
        case .failed:
            if current?.failureClass == .outOfMemory {
                return Outcome(state: .failed, failureClass: .outOfMemory, reason: memoryReason(attempt, current), exitCode: nil)
            }
            let tail = stderrTail() ?? ""
            if r.signal == 9, tail.contains("Exceeded job memory limit") || tail.lowercased().contains("oom-kill") || tail.contains("Out Of Memory") {
                return Outcome(state: .failed, failureClass: .outOfMemory, reason: memoryReason(attempt, current), exitCode: nil)
            }
            if let m = current, m.status != .succeeded { return fromManifest(m) }
            let line = tail.split(separator: "\n").last { !$0.trimmingCharacters(in: .whitespaces).isEmpty }.map(String.init)
            let how = r.signal != 0 ? "killed by signal \(r.signal)" : "exit code \(r.exitCode)"
            return Outcome(state: .failed, failureClass: .failed, reason: how + (line.map { ": \($0)" } ?? ""),
                           exitCode: r.signal != 0 ? 128 + r.signal : r.exitCode)
        case .timeout, .deadline:
            return Outcome(state: .failed, failureClass: .timeout, reason: "reached its time limit\(current?.firstError.map { "; \($0)" } ?? "")", exitCode: nil)
        case .nodeFail, .bootFail:
            return Outcome(state: .failed, failureClass: .nodeFailure, reason: "its node failed", exitCode: nil)
        case .preempted:
            return Outcome(state: .failed, failureClass: .preempted, reason: "preempted by a higher-priority job", exitCode: nil)
        case .cancelled:
            if r.reason.contains("DependencyNeverSatisfied") || (r.startTime == nil && current == nil && r.reason.contains("Dependency")) {
                return Outcome(state: .blocked, failureClass: nil, reason: "never ran: an upstream job did not succeed (DependencyNeverSatisfied)", exitCode: nil)
            }
            return Outcome(state: .cancelled, failureClass: .cancelled, reason: "cancelled (scancel or quanta cancel)", exitCode: nil)
        }
    }

    static func fromManifest(_ m: Manifest) -> Outcome {
        switch m.status {
        case .succeeded, .noWork: return Outcome(state: .succeeded, failureClass: nil, reason: nil, exitCode: nil)
        case .blocked: return Outcome(state: .blocked, failureClass: nil, reason: m.firstError, exitCode: nil)
        case .failed:
            // Without SLURM's word, a SIGTERM'd job counts as cancelled (Ctrl-C of a local run).
            if m.failureClass == .terminated {
                return Outcome(state: .cancelled, failureClass: .cancelled, reason: m.firstError, exitCode: nil)
            }
            let cls: FailureClass = m.failureClass == .outOfMemory ? .outOfMemory : .failed
            // The exit code a quantum's process had, when it had one; never made up.
            let code = m.quanta.first { $0.status == .failed }?.exitCode
            return Outcome(state: .failed, failureClass: cls, reason: m.firstError, exitCode: code)
        }
    }

    static func memoryReason(_ a: SlurmAttempt, _ m: Manifest?) -> String {
        let detail = m?.quanta.first { $0.reason?.hasPrefix("out of memory") == true }?.reason
        return detail ?? "went over its memory (\(Units.memory(a.memoryMB)), SLURM killed it)"
    }
}

/// Submits rounds of arrays: the plan, retries, restarts. One sbatch per array (per memory size
/// within an array), never one per job; a failed submission cancels what it had queued.
public struct SlurmSubmitter {
    public let dir: SubmitDirectory
    public let plan: PlanDocument
    /// The site as planned, for plans made before requests were kept in plan.json.
    public let plannedSite: SiteConfig?
    public let backend: any SlurmBackend
    /// Called after each sbatch returns (`journaled` false) and again once its id is journaled,
    /// with how many this call has made; the test hooks QUANTA_TEST_KILL_AFTER_SUBMITS and
    /// QUANTA_TEST_KILL_BEFORE_JOURNAL (read by the commands) kill the process here.
    public var afterSubmit: ((_ count: Int, _ journaled: Bool) -> Void)?

    public init(dir: SubmitDirectory, plan: PlanDocument, site: SiteConfig?, backend: any SlurmBackend) {
        self.dir = dir
        self.plan = plan
        plannedSite = site
        self.backend = backend
    }

    /// What to submit: array → job slot → memory MB per element.
    public typealias Selection = [String: [Int: Int]]

    /// Round 0: every array as planned, with aftercorr/afterany between them, then the final job.
    public func submitAll() throws -> SlurmRecord {
        if let existing = try SlurmRecord.read(dir), !existing.rounds.isEmpty {
            if let r = existing.interrupted, !existing.cancelled {
                throw QuantaError(.usage, "\(dir.root): already partly submitted (\(dir.slurmJournal)): round \(r.number) stopped after \(r.arrays.count) of \(r.arrays.count + r.unsubmitted.count + 1) sbatch calls (jobs \(r.arrays.map { String($0.jobID) }.joined(separator: " "))); 'quanta restart \(shellQuote(dir.root))' submits the rest, 'quanta cancel \(shellQuote(dir.root))' cancels what is queued")
            }
            throw QuantaError(.usage, "\(dir.root): already submitted (see slurm.json); follow it with 'quanta status', or 'quanta restart' what failed")
        }
        try preflight()
        var record = try SlurmRecord.read(dir) ?? SlurmRecord(backend: backend.kind.rawValue, rounds: [])
        record.backend = backend.kind.rawValue
        try submitRound(&record, number: 0, reason: .submit, selection: nil)
        return record
    }

    /// The controller's limits, checked before anything is queued: a plan made for another
    /// MaxArraySize fails here with the fix instead of half-way through the arrays.
    public func preflight(warn: (String) -> Void = { StandardStreams.error("note: \($0)\n") }) throws {
        let conf: SlurmControllerConfig
        do { conf = try backend.controllerConfig() } catch let e as SlurmError { throw e.quantaError }
        if let big = plan.arrays.first(where: { $0.size > conf.maxArraySize }) {
            throw QuantaError(.planning, "\(plan.siteConfig): array \(big.name) has \(big.size) elements but this cluster's MaxArraySize is \(conf.maxArraySize); set maxArraySize: \(conf.maxArraySize) in the site config and plan again ('quanta site check' compares the rest)")
        }
        let elements = plan.arrays.reduce(1) { $0 + $1.size }
        if conf.maxJobCount > 0 && elements > conf.maxJobCount {
            warn("\(elements) array elements exceed the cluster's MaxJobCount (\(conf.maxJobCount)); sbatch will wait for earlier jobs to age out (MinJobAge \(conf.minJobAge) s) — cluster more quanta per job to submit fewer elements")
        }
    }

    /// The sbatch calls of a round, in submission order (upstream arrays first); `selection` nil
    /// means every array as planned.
    public func planRound(selection: Selection?) -> [SlurmRecord.Planned] {
        var out: [SlurmRecord.Planned] = []
        for array in plan.arrays {
            guard let selection else {
                out.append(.init(array: array.name, jobs: nil, elements: array.arraySpec, memoryMB: array.resources.memoryMB))
                continue
            }
            guard let chosen = selection[array.name], !chosen.isEmpty else { continue }
            // One sbatch per memory size; job slots → elements.
            var byMemory: [Int: [Int]] = [:]
            for (slot, mem) in chosen { byMemory[mem, default: []].append(slot) }
            for mem in byMemory.keys.sorted() {
                let slots = byMemory[mem]!.sorted()
                let throttle = array.throttle > 0 ? "%\(array.throttle)" : ""
                out.append(.init(array: array.name, jobs: slots, elements: ArrayIndices.format(slots.map(array.element(ofJob:))) + throttle, memoryMB: mem))
            }
        }
        return out
    }

    /// An array's request as planned (plans made before requests were kept: made as the planner makes it).
    func arrayRequest(_ array: PlannedArray) -> SlurmRequest {
        array.request ?? SlurmRequest.array(array, submission: plan.submission, site: plannedSite)
    }

    /// The final job's request as planned (or as the planner would make it).
    var finalRequest: SlurmRequest {
        plan.finalJob ?? SlurmRequest.finalJob(submission: plan.submission, site: plannedSite, settings: nil, outputs: 0)
    }

    /// `<submission>.<array>`, `<submission>.merge`: what squeue shows, and how `adoptUnrecorded` finds a job.
    public func jobName(_ array: String?) -> String {
        guard let array, let a = plan.arrays.first(where: { $0.name == array }) else { return finalRequest.jobName }
        return arrayRequest(a).jobName
    }

    /// A kill between slurmctld accepting an sbatch and its id reaching the journal leaves a job
    /// no record names. Before an interrupted round goes on, the controller is asked for this
    /// submit directory's jobs: one newer than every id ever journaled, named as the round's next
    /// sbatch, is that sbatch's job, and is journaled as if sbatch had returned — so it is not
    /// submitted (and run) twice. Several such jobs are not guessed between: that throws.
    @discardableResult
    public func adoptUnrecorded(_ record: inout SlurmRecord) throws -> UInt32? {
        guard let round = record.rounds.last, round.isInterrupted else { return nil }
        let next = round.unsubmitted.first
        let name = jobName(next?.array)
        var known = record.allJobIDs
        for e in SlurmJournal.read(dir.slurmJournal).entries {
            if let id = e.submitted?.jobID ?? e.jobID { known.insert(id) }
        }
        let live: [SlurmJobRecord]
        do { live = try backend.jobs(.workDirectory(dir.root)) } catch let e as SlurmError { throw e.quantaError }
        let newest = known.max() ?? 0
        let strays = Set(live.filter { !known.contains($0.arrayJobID) && $0.arrayJobID > newest && $0.name == name }.map(\.arrayJobID))
        guard let id = strays.first else { return nil }
        guard strays.count == 1 else {
            throw QuantaError(.usage, "\(dir.slurmJournal): SLURM holds jobs \(strays.sorted().map(String.init).joined(separator: " ")) named \(name) from this directory that no record names; 'scancel' the ones you do not want, then 'quanta restart \(shellQuote(dir.root))' again")
        }
        try record.journal(next.map { .array(round.number, .init($0, jobID: id)) } ?? .final(round.number, jobID: id), in: dir)
        return id
    }

    /// Submits one round and records it; `selection` nil means everything as planned. The intent
    /// goes to the journal first, then each job id as sbatch returns it.
    public func submitRound(_ record: inout SlurmRecord, number: Int, reason: SlurmRecord.Reason, selection: Selection?) throws {
        try record.journal(.round(number, reason: reason, backend: backend.kind.rawValue, planned: planRound(selection: selection)), in: dir)
        try submitRest(&record)
    }

    /// Completes a round a kill interrupted: adopts the job of an sbatch in flight at the kill, then
    /// submits the rest. Returns the adopted job's id.
    @discardableResult
    public func completeRound(_ record: inout SlurmRecord) throws -> UInt32? {
        let adopted = try adoptUnrecorded(&record)
        try submitRest(&record)
        return adopted
    }

    /// Submits what the latest round planned and has not submitted yet (all of it for a new round;
    /// the rest after a kill), with dependencies on the arrays already queued, then its final job.
    /// A failed sbatch cancels every array of the round, so nothing runs half-submitted.
    func submitRest(_ record: inout SlurmRecord) throws {
        guard let round = record.rounds.last, round.isInterrupted else { return try record.write(dir) }
        let number = round.number
        let arrays = Dictionary(uniqueKeysWithValues: plan.arrays.map { ($0.name, $0) })
        var idsOf: [String: [UInt32]] = [:]
        for s in round.arrays { idsOf[s.array, default: []].append(s.jobID) }
        var queued = round.arrays.map(\.jobID)
        var submittedHere = 0
        // A time limit the partition can never grant is rejected by sbatch (EnforcePartLimits) or
        // pends for ever: ask for the partition's MaxTime instead, and say so (a bps site's
        // walltime is written for another cluster's limits as often as not).
        let limits = (try? backend.partitions()) ?? []
        var capNotes = Set<String>()
        func time(_ minutes: Int?, partition: String?) -> Int? {
            guard let minutes else { return nil }
            let p = partition.flatMap { n in limits.first { $0.name == n } } ?? limits.first { $0.isDefault }
            guard let p, let max = p.maxTimeMinutes, minutes > max else { return minutes }
            if capNotes.insert(p.name).inserted {
                StandardStreams.error("note: --time \(Units.slurmTime(minutes * 60)) is more than partition \(p.name)'s MaxTime \(Units.slurmTime(max * 60)); asked for \(Units.slurmTime(max * 60))\n")
            }
            return max
        }
        do {
            for p in round.unsubmitted {
                guard let array = arrays[p.array] else {
                    throw QuantaError(.usage, "\(dir.slurmJournal): round \(number) plans array \(p.array), which plan.json does not have; 'quanta cancel \(shellQuote(dir.root))' and plan again")
                }
                var deps: [String] = []
                for d in array.dependencies {
                    guard let ids = idsOf[d.array] else { continue }
                    // Retry rounds wait for whole upstream arrays: their index lists differ.
                    let kind = p.jobs == nil ? d.kind.rawValue : DependencyKind.afterany.rawValue
                    deps += ids.map { "\(kind):\($0)" }
                }
                // The plan's request; a retry round may ask for more memory, and the live partition's
                // MaxTime caps the time.
                var request = arrayRequest(array)
                request.memoryMB = p.memoryMB
                request.timeMinutes = time(request.timeMinutes, partition: request.partition)
                let stem = dir.logs + "/" + request.logStem(round: number)
                var s = SlurmSubmission(script: dir.script(array: array.name), request: request, array: p.elements,
                                        stdout: stem + ".out", stderr: stem + ".err", workDir: dir.root)
                s.dependency = deps.isEmpty ? nil : deps.joined(separator: ",")
                s.environment = ["QUANTA_ROUND": String(number), "QUANTA_BACKEND": "slurm"]
                let id = try backend.submit(s)
                queued.append(id)
                idsOf[array.name, default: []].append(id)
                submittedHere += 1
                afterSubmit?(submittedHere, false)
                // Synced before the next sbatch: a kill from here on leaves this job on record.
                try record.journal(.array(number, .init(p, jobID: id)), in: dir)
                afterSubmit?(submittedHere, true)
            }
            var final = finalRequest
            final.timeMinutes = time(final.timeMinutes, partition: final.partition)
            var f = SlurmSubmission(script: dir.script(array: "merge"), request: final, array: nil,
                                    stdout: dir.mergeLog(round: number, stream: "out"),
                                    stderr: dir.mergeLog(round: number, stream: "err"), workDir: dir.root)
            f.killOnInvalidDependency = false
            f.dependency = queued.isEmpty ? nil : queued.map { "afterany:\($0)" }.joined(separator: ",")
            f.environment = ["QUANTA_ROUND": String(number), "QUANTA_BACKEND": "slurm", "QUANTA_PROGRESS": "0"]
            let finalID = try backend.submit(f)
            queued.append(finalID)
            submittedHere += 1
            afterSubmit?(submittedHere, false)
            try record.journal(.final(number, jobID: finalID), in: dir)
            afterSubmit?(submittedHere, true)
        } catch {
            // Nothing half-submitted: take back what this round queued, then void the round.
            let what = (error as? SlurmError)?.description ?? "\(error)"
            do {
                try backend.cancel(queued.map(String.init))
            } catch {
                throw QuantaError(.scheduler, "\(what); cancelling the round's \(queued.count) queued jobs failed too (\(error)): they stay in \(dir.slurmJournal), so 'quanta cancel \(shellQuote(dir.root))' can retry")
            }
            try? record.journal(.abandoned(number), in: dir)
            throw QuantaError(.scheduler, "\(what); cancelled the \(queued.count) jobs this round had queued, so nothing runs half-submitted")
        }
        try record.write(dir)
    }
}

/// Decides what a round of retries resubmits, per the arrays' retry policies.
public enum RetryPlanner {
    public struct Decision: Sendable {
        public var selection: SlurmSubmitter.Selection
        /// One line per retried job, for the final job's log.
        public var lines: [String]
    }

    /// Retries what the policy allows; when anything is retried, jobs left blocked by it run again too.
    public static func retries(status: SubmissionStatus, plan: PlanDocument, site: SiteConfig?) -> Decision {
        let arrays = Dictionary(uniqueKeysWithValues: plan.arrays.map { ($0.name, $0) })
        var selection: SlurmSubmitter.Selection = [:]
        var lines: [String] = []
        for e in status.elements where e.state == .failed {
            guard let a = arrays[e.array], let policy = a.retry, let cls = e.failureClass else { continue }
            guard e.attempts < 1 + policy.numberOfRetries else { continue }
            let last = e.memoryMB ?? a.resources.memoryMB
            var memory = last
            switch cls {
            case .cancelled: continue
            case .failed:
                // A quantum that failed without an exit code of its own (an output that failed its
                // checks, an output not written) failed on its data, as exit 1 says: the same policy.
                if policy.retryUnlessExit.contains(e.exitCode ?? 1) { continue }
            case .outOfMemory:
                let nodeMemory = site?.partitions.first { $0.name == a.partition }?.memoryPerNodeMB ?? Int.max
                memory = policy.memory(initial: a.resources.memoryMB, outOfMemoryCount: e.outOfMemoryCount, nodeMemoryMB: nodeMemory)
                guard memory > last else {
                    lines.append("\(e.array):\(e.index) out of memory at the limit (\(Units.memory(last))); not retried — raise memoryLimit or requestMemory")
                    continue
                }
            case .timeout, .nodeFailure, .preempted, .terminated: break
            }
            selection[e.array, default: [:]][e.index] = memory
            lines.append("\(e.array):\(e.index) \(cls.words) → attempt \(e.attempts + 1) of \(1 + policy.numberOfRetries)\(memory != last ? " with \(Units.memory(memory))" : "")")
        }
        if !selection.isEmpty {
            for e in status.elements where e.state == .blocked && selection[e.array]?[e.index] == nil {
                selection[e.array, default: [:]][e.index] = e.memoryMB ?? arrays[e.array]?.resources.memoryMB ?? 0
            }
        }
        return Decision(selection: selection, lines: lines)
    }

    /// A person's restart: every job that did not succeed, with more memory where memory ran out.
    public static func restart(status: SubmissionStatus, plan: PlanDocument, site: SiteConfig?) -> SlurmSubmitter.Selection {
        let arrays = Dictionary(uniqueKeysWithValues: plan.arrays.map { ($0.name, $0) })
        var selection: SlurmSubmitter.Selection = [:]
        for e in status.elements where e.state != .succeeded {
            guard let a = arrays[e.array] else { continue }
            var memory = e.memoryMB ?? a.resources.memoryMB
            if e.failureClass == .outOfMemory, let policy = a.retry {
                let nodeMemory = site?.partitions.first { $0.name == a.partition }?.memoryPerNodeMB ?? Int.max
                memory = max(memory, policy.memory(initial: a.resources.memoryMB, outOfMemoryCount: e.outOfMemoryCount, nodeMemoryMB: nodeMemory))
            }
            selection[e.array, default: [:]][e.index] = memory
        }
        return selection
    }
}
