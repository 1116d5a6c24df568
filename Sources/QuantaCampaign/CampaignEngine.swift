import Foundation
import QuantaButler
import QuantaCore
import QuantaDemo
import QuantaGraphIO
import QuantaRegistry
import QuantaScheduler
import QuantaSlurm

/// Advances campaigns: starts runs that are due, starts steps whose `after` steps passed, plans and
/// submits their groups (through `PlanService` and `Submission`), follows them, judges gates, and
/// ends runs. Every change goes to the campaign database first; a group is recorded as intended
/// before it is planned or submitted, and a tick that finds one intended reconciles with its submit
/// directory (and SLURM) instead of submitting it again.
///
/// Steps of every kind (`pipeline`: `pipetask qgraph` per group; `builtin`: `PipelineGraph`;
/// `graph`; `script`), groups by dimension or query, pilots, gates, error rules, the run's
/// collection chain and retention — in a Quanta repository through its registry, in an LSST
/// butler through `LSSTCollections`.
public struct CampaignEngine {
    public let store: CampaignStore
    /// Who acts, for the activity log: `tick`, `run`, or a person.
    public var actor: String
    /// Submit directories go to `<workRoot>/<campaign>/<run>/<step>/<group>`.
    public var workRoot: String
    /// The SLURM backend, opened only when a step runs on a SLURM site.
    public var backend: () throws -> any SlurmBackend
    /// What a person should read as it happens.
    public var note: (String) -> Void

    public init(store: CampaignStore, actor: String, workRoot: String? = nil,
                backend: @escaping () throws -> any SlurmBackend, note: @escaping (String) -> Void = { _ in }) {
        self.store = store
        self.actor = actor
        self.workRoot = workRoot ?? store.directory + "/runs"
        self.backend = backend
        self.note = note
    }

    /// The SLURM controller did not answer: the tick says so and changes nothing (what is
    /// intended stays intended; the next tick goes on).
    public struct Unreachable: Error, CustomStringConvertible {
        public var description: String
    }

    /// The backend, after a cheap question to the controller proves it answers.
    func reachableBackend() throws -> any SlurmBackend {
        do {
            let b = try backend()
            _ = try b.partitions()
            return b
        } catch {
            let why: String
            switch error {
            case let e as SlurmError: why = e.message
            case let e as QuantaError where e.code == .scheduler: why = e.message
            default: throw error
            }
            throw Unreachable(description: "SLURM did not answer (\(why)); nothing changed — the next tick goes on")
        }
    }

    /// The group every ungrouped step has.
    public static let wholeStep = "all"

    // MARK: campaigns and runs

    /// Registers the campaign's file and starts a run unless one is in progress; returns its number.
    public func start(_ spec: CampaignSpec) throws -> Int {
        try store.register(name: spec.name, file: spec.source, actor: actor)
        if let r = try store.runs(campaign: spec.name).last, r.state == .running || r.state == .held { return r.number }
        return try store.startRun(campaign: spec.name, steps: spec.steps.map(\.name), actor: actor).number
    }

    /// One bounded round for every campaign in the database: runs that are due start (`schedule`),
    /// runs in progress advance. Nil when another tick holds the lock.
    public func tick(now: Date = Date(), calendar: Calendar = Calendar(identifier: .gregorian)) throws -> [String]? {
        try store.withTickLock(holder: "\(actor) \(ProcessInfo.processInfo.hostName):\(getpid())") { renew in
            var lines: [String] = []
            for c in try store.campaigns() {
                if c.paused { lines.append("\(c.name): paused"); continue }
                let spec: CampaignSpec
                do { spec = try CampaignFile.load(path: c.file) } catch {
                    lines.append("\(c.name): \(error)")
                    try store.log(campaign: c.name, actor: actor, what: "not advanced: \(error)")
                    continue
                }
                let runs = try store.runs(campaign: c.name)
                if let last = runs.last, last.state == .running {
                    do {
                        let state = try advance(spec, run: last.number)
                        lines.append("\(c.name): run \(last.number) \(state.rawValue)")
                    } catch let e as Unreachable {
                        lines.append("\(c.name): run \(last.number): \(e)")
                    }
                } else if let schedule = spec.schedule {
                    let since = runs.last.map { Timestamp.parse($0.startedAt) } ?? Timestamp.parse(c.registeredAt)
                    if let since, let due = schedule.next(after: since, calendar: calendar), due <= now {
                        let n = try store.startRun(campaign: c.name, steps: spec.steps.map(\.name), actor: actor).number
                        do {
                            let state = try advance(spec, run: n)
                            lines.append("\(c.name): run \(n) started (due \(Timestamp.iso8601(due))), \(state.rawValue)")
                        } catch let e as Unreachable {
                            lines.append("\(c.name): run \(n) started (due \(Timestamp.iso8601(due))); \(e)")
                        }
                    } else {
                        lines.append("\(c.name): \(runs.last.map { "run \($0.number) \($0.state.rawValue)" } ?? "no run yet")")
                    }
                } else {
                    lines.append("\(c.name): \(runs.last.map { "run \($0.number) \($0.state.rawValue)" } ?? "no run yet")")
                }
                try renew()
            }
            return lines
        }
    }

    /// `quanta campaign run`: advances one run, a round at a time under the tick lock (so a cron
    /// tick and this never act on the campaign at once), until it ends or needs a person.
    public func runUntilSettled(_ spec: CampaignSpec, run: Int, poll: Double,
                                progress: (RunProgress) -> Void = { _ in }) throws -> RunState {
        while true {
            if let state = try store.withTickLock(holder: "\(actor) \(spec.name)", { _ in try advance(spec, run: run) }), state != .running {
                return state
            }
            try progress(self.progress(spec, run: run))
            Thread.sleep(forTimeInterval: poll)
        }
    }

    /// How far a run is: steps done of all, groups ended of those started, and the steps at work.
    public struct RunProgress: Sendable {
        public var stepsDone: Int, steps: Int, groupsEnded: Int, groups: Int
        public var working: [String]
    }

    public func progress(_ spec: CampaignSpec, run: Int) throws -> RunProgress {
        let steps = try store.steps(campaign: spec.name, run: run)
        let groups = try store.groups(campaign: spec.name, run: run)
        let ended: Set<GroupState> = [.succeeded, .failed, .empty]
        let working = steps.filter { $0.state == .running || $0.state == .pilot }.map { s -> String in
            let g = groups.filter { $0.step == s.step }
            return "\(s.step)\(s.state == .pilot ? " (pilot)" : ""): \(g.filter { ended.contains($0.state) }.count)/\(g.count) groups ended"
        }
        return RunProgress(stepsDone: steps.filter { [.passed, .failed, .gated, .empty].contains($0.state) }.count, steps: steps.count,
                           groupsEnded: groups.filter { ended.contains($0.state) }.count, groups: groups.count, working: working)
    }

    /// Advances one run as far as it goes without waiting: returns the run's state after.
    @discardableResult
    public func advance(_ spec: CampaignSpec, run: Int) throws -> RunState {
        var rows = Dictionary(uniqueKeysWithValues: try store.steps(campaign: spec.name, run: run).map { ($0.step, $0) })
        for step in spec.steps {
            guard let row = rows[step.name] else { continue }
            switch row.state {
            case .waiting:
                guard step.after.allSatisfy({ rows[$0]?.state == .passed }) else { continue }
                let first: StepState = step.pilot == nil ? .running : .pilot
                guard try store.moveStep(campaign: spec.name, run: run, step: step.name, from: [.waiting], to: first, actor: actor) else { continue }
                note("\(spec.name) run \(run): step \(step.name) starts\(step.pilot.map { " with its pilot (\($0))" } ?? "")")
                try follow(spec, run: run, step: step)
            case .running, .pilot:
                try follow(spec, run: run, step: step)
            case .gated, .passed, .failed, .empty:
                continue
            }
            rows = Dictionary(uniqueKeysWithValues: try store.steps(campaign: spec.name, run: run).map { ($0.step, $0) })
        }
        let states = spec.steps.compactMap { rows[$0.name]?.state }
        let next: RunState
        if states.allSatisfy({ $0 == .passed }) {
            next = .succeeded
        } else if states.contains(.failed) {
            next = .failed
        } else if states.contains(where: { $0 == .gated || $0 == .empty }) && !states.contains(.running) && !states.contains(.pilot) {
            next = .held
        } else {
            return .running
        }
        let why = next == .succeeded ? "every step passed"
            : next == .failed ? "step \(spec.steps.first { rows[$0.name]?.state == .failed }!.name) failed"
            : "waiting for a person: \(spec.steps.filter { rows[$0.name]?.state == .gated || rows[$0.name]?.state == .empty }.map { "\($0.name) (\(rows[$0.name]!.state.rawValue))" }.joined(separator: ", "))"
        try store.setRun(campaign: spec.name, run: run, next, actor: actor, why: why)
        notify(spec, run: run, event: next.rawValue, why: why)
        if next == .succeeded { try prune(spec) }
        return next
    }

    // MARK: retention

    /// `retention: {keep: N}`: the ended runs older than the last N successful ones lose their
    /// collections, files and submit directories, except runs marked keep and runs whose
    /// collections a chain outside the campaign still lists (logged, tried again next time).
    /// A removal cut short is finished by the next.
    @discardableResult
    public func prune(_ spec: CampaignSpec) throws -> [Int] {
        guard let keep = spec.retention?.keep else { return [] }
        let runs = try store.runs(campaign: spec.name)
        let good = runs.filter { $0.state == .succeeded }
        guard good.count > keep else { return [] }
        let cutoff = good[good.count - keep].number
        var removed: [Int] = []
        for r in runs where r.number < cutoff && !r.keep && (r.state == .succeeded || r.state == .failed) {
            let names = try collections(spec, run: r.number)
            if let butler = try butler(spec) {
                // The butler says which exist; a chain listing none of them is left alone.
                let (blockers, datasets) = try butler.remove(names)
                if let why = blockers.first {
                    try store.log(campaign: spec.name, run: r.number, actor: actor, what: "retention: run \(r.number) kept: \(why)")
                    continue
                }
                try store.log(campaign: spec.name, run: r.number, actor: actor, what: "retention: removed the collections of run \(r.number) (\(datasets) datasets)")
            } else if !names.isEmpty {
                let removal = CollectionRemoval(repo: try Repository(root: resolve(spec.repository, spec)))
                if let why = try removal.blockers(names).first {
                    try store.log(campaign: spec.name, run: r.number, actor: actor, what: "retention: run \(r.number) kept: \(why)")
                    continue
                }
                let o = try removal.remove(names)
                try store.log(campaign: spec.name, run: r.number, actor: actor,
                              what: "retention: removed \(o.runs) runs and \(o.chains) chains of run \(r.number) (\(o.datasets) datasets, \(o.files) files)")
            }
            try? FileManager.default.removeItem(atPath: "\(workRoot)/\(spec.name)/\(r.number)")
            try store.setRun(campaign: spec.name, run: r.number, .removed, actor: actor, why: "retention keeps the last \(keep) successful runs")
            note("\(spec.name): run \(r.number) removed (retention keeps the last \(keep) successful runs)")
            removed.append(r.number)
        }
        return removed
    }

    /// A run's collections in the repository, children before their chains: the groups' RUN
    /// collections, the steps' chains, the run's chain.
    func collections(_ spec: CampaignSpec, run: Int) throws -> [String] {
        var names = try store.groups(campaign: spec.name, run: run).map(\.outputRun)
        names += spec.steps.map { "\(spec.output)/\(run)/\($0.name)" }
        names.append("\(spec.output)/\(run)")
        guard let registry = try registry(spec) else { return names }
        return try names.filter { try registry.collectionType($0) != nil }
    }

    /// `quanta campaign approve/reject NAME STEP`: a gated (or empty) step of the latest run passes
    /// or fails, and the run goes on.
    public func decide(_ spec: CampaignSpec, step: String, approve: Bool) throws {
        guard let run = try store.runs(campaign: spec.name).last else { throw QuantaError(.usage, "campaign \(spec.name) has no run") }
        guard spec.step(step) != nil else {
            let hint = DidYouMean.suggestion(for: step, among: spec.steps.map(\.name)).map { "; did you mean '\($0)'?" } ?? ""
            throw QuantaError(.usage, "campaign \(spec.name) has no step '\(step)'\(hint)")
        }
        // A pilot's gate, approved: the full step starts.
        let recorded = try store.groups(campaign: spec.name, run: run.number, step: step)
        let inPilot = spec.step(step)?.pilot != nil && recorded.allSatisfy { $0.group == Self.pilotGroup }
        let moved = try store.moveStep(campaign: spec.name, run: run.number, step: step, from: [.gated, .empty],
                                       to: approve ? (inPilot ? .running : .passed) : .failed,
                                       detail: approve ? (inPilot ? "pilot approved; the full step starts" : "approved") : "rejected", actor: actor)
        guard moved else {
            let state = try store.steps(campaign: spec.name, run: run.number).first { $0.step == step }?.state.rawValue ?? "unknown"
            throw QuantaError(.usage, "step \(step) of \(spec.name) run \(run.number) is \(state), not waiting for a person")
        }
        if run.state == .held { try store.setRun(campaign: spec.name, run: run.number, .running, actor: actor, why: "\(step) \(approve ? "approved" : "rejected")") }
        if approve && !inPilot { try collect(spec, run: run.number, step: step) }
    }

    // MARK: steps and groups

    /// The group every pilot runs as.
    public static let pilotGroup = "pilot"

    /// One submission of a step: its name and the data query that picks its part (with the
    /// step's own query and, for the full step after a pilot, NOT the pilot's).
    struct GroupPlan {
        var name: String
        var query: DataQuery?
    }

    /// A step's groups. In the pilot phase the pilot alone; after it, the groups the database
    /// recorded (so values the repository gains while a step runs make no new group), else the
    /// file's groups, a dimension's values read from the repository when the file lists none.
    func groupPlans(_ spec: CampaignSpec, run: Int, step: Step, pilot: Bool, recorded: [String]) throws -> [GroupPlan] {
        var base: DataQuery?
        if case .builtin(_, let q?) = step.work { base = try DataQuery.parse(q) }
        if case .pipeline(_, let q?) = step.work { base = try DataQuery.parse(q) }
        func and(_ a: DataQuery?, _ b: DataQuery?) -> DataQuery? {
            guard let a else { return b }
            guard let b else { return a }
            return .and(a, b)
        }
        let pilotQuery = try step.pilot.map { try DataQuery.parse($0) }
        if pilot { return [GroupPlan(name: Self.pilotGroup, query: and(base, pilotQuery))] }
        // The full step: what the pilot did not cover.
        base = and(base, pilotQuery.map { .not($0) })
        switch (step.work, step.groups) {
        case (_, nil):
            return [GroupPlan(name: Self.wholeStep, query: base)]
        case (.graph, _?), (.script, _?):
            throw QuantaError(.usage, "step \(step.name): groups split a builtin or pipeline step by data query; a \(step.work.kind) step cannot be split (a script step takes 'over:')")
        case (_, .queries(let list)?):
            let names = recorded.isEmpty ? list.map(\.name) : recorded
            return try names.map { n in
                guard let q = list.first(where: { $0.name == n }) else {
                    throw QuantaError(.usage, "step \(step.name): group \(n) was started but the file no longer has it; put it back, or reject the step")
                }
                return GroupPlan(name: n, query: and(base, try DataQuery.parse(q.query)))
            }
        case (_, .dimension(let d, let listed)?):
            var values = recorded
            if values.isEmpty, let listed { values = listed }
            if values.isEmpty {
                guard case .builtin = step.work else {
                    throw QuantaError(.usage, "step \(step.name): list the values of \(d) (groups: {dimension: \(d), values: [...]}); reading them from an LSST butler is not built yet")
                }
                let repo = try Repository(root: resolve(spec.repository, spec))
                guard let found = try PipelineGraph.values(of: d, repo: repo, inputs: try inputs(spec, run: run)) else {
                    throw QuantaError(.usage, "step \(step.name): the raws carry no \(d); list its values (groups: {dimension: \(d), values: [...]})")
                }
                values = found.map(\.description)
                for v in values where !v.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) {
                    throw QuantaError(.usage, "step \(step.name): \(d) value '\(v)' cannot name a group; list the values with names, or use groups: {queries: {name: \"\(d) = '...'\"}}")
                }
                if values.isEmpty { return [GroupPlan(name: Self.wholeStep, query: and(base, .member(d, [], negated: false)))] }
            }
            return values.map { v in
                GroupPlan(name: v, query: and(base, .compare(d, .eq, Int64(v).map { .int($0) } ?? .string(v))))
            }
        }
    }

    /// What a builtin step reads: the chains of the steps that passed (newest first, as the run's
    /// chain holds them; the run's chain itself would make a cycle once this step joins it), then
    /// the campaign's inputs (or the instrument's raw, calibration and sky-map runs).
    func inputs(_ spec: CampaignSpec, run: Int) throws -> [String] {
        guard let registry = try registry(spec) else {
            // An LSST butler: the chains of the steps that passed, newest (latest in the file) first.
            let passed = Set(try store.steps(campaign: spec.name, run: run).filter { $0.state == .passed }.map(\.step))
            let chains = spec.steps.reversed().filter { passed.contains($0.name) }.map { "\(spec.output)/\(run)/\($0.name)" }
            guard !spec.inputs.isEmpty else {
                throw QuantaError(.usage, "\(spec.source): pipeline steps need inputs: (the input collections, e.g. [HSC/RC2/defaults])")
            }
            return chains + spec.inputs
        }
        let rest = spec.inputs.isEmpty ? PipelineGraph.defaultInputs : spec.inputs
        guard try registry.collectionType("\(spec.output)/\(run)") == .chained else { return rest }
        return try registry.chain("\(spec.output)/\(run)") + rest
    }

    func directory(_ spec: CampaignSpec, run: Int, step: String, group: String) -> SubmitDirectory {
        SubmitDirectory("\(workRoot)/\(spec.name)/\(run)/\(step)/\(group)")
    }

    /// `<output>/<run>/<step>/<group>` (the RUN collection) and `<output>/<run>/<step>` (the step's chain).
    func collections(_ spec: CampaignSpec, run: Int, step: String, group: String) -> (run: String, chain: String) {
        ("\(spec.output)/\(run)/\(step)/\(group)", "\(spec.output)/\(run)/\(step)")
    }

    /// Plans and submits what is not yet, follows what is, and judges the gate once every group ended.
    func follow(_ spec: CampaignSpec, run: Int, step: Step) throws {
        let inPilot = try store.steps(campaign: spec.name, run: run).first { $0.step == step.name }?.state == .pilot
        var known = Dictionary(uniqueKeysWithValues: try store.groups(campaign: spec.name, run: run, step: step.name).map { ($0.group, $0) })
        let plans: [GroupPlan]
        do {
            let recorded = try store.groups(campaign: spec.name, run: run, step: step.name).map(\.group).filter { $0 != Self.pilotGroup }
            plans = try groupPlans(spec, run: run, step: step, pilot: inPilot, recorded: recorded)
        } catch {
            try store.moveStep(campaign: spec.name, run: run, step: step.name, to: .failed, detail: "\(error)", actor: actor)
            note("\(spec.name) run \(run): step \(step.name) failed: \(error)")
            return
        }
        // Every group is recorded as intended before any is planned, so a tick killed between two
        // finds them all and the groups are the same whatever the repository holds by then.
        for p in plans where known[p.name] == nil {
            let dir = directory(spec, run: run, step: step.name, group: p.name)
            let (outputRun, _) = collections(spec, run: run, step: step.name, group: p.name)
            try store.intendGroup(campaign: spec.name, run: run, step: step.name, group: p.name, submitDir: dir.root, outputRun: outputRun, actor: actor)
        }
        known = Dictionary(uniqueKeysWithValues: try store.groups(campaign: spec.name, run: run, step: step.name).map { ($0.group, $0) })
        for p in plans where known[p.name]?.state == .intended {
            let dir = directory(spec, run: run, step: step.name, group: p.name)
            do {
                try submit(spec, run: run, step: step, group: p, dir: dir)
            } catch let e as Unreachable {
                throw e
            } catch {
                try store.setGroup(campaign: spec.name, run: run, step: step.name, group: p.name, .failed, actor: actor, why: "\(error)")
                note("\(spec.name) run \(run): step \(step.name) group \(p.name) could not be submitted: \(error)")
            }
        }
        // The gate counts the pilot with the full step.
        let names = (!inPilot && known[Self.pilotGroup] != nil ? [Self.pilotGroup] : []) + plans.map(\.name)
        known = Dictionary(uniqueKeysWithValues: try store.groups(campaign: spec.name, run: run, step: step.name).map { ($0.group, $0) })
        var counts = QuantumCounts()
        var allEnded = true
        var problems: [String] = []
        var ended: [(row: CampaignStore.GroupRow, status: SubmissionStatus)] = []
        for g in names {
            guard let row = known[g] else { allEnded = false; continue }
            switch row.state {
            case .intended: allEnded = false
            case .submitted:
                guard let status = try self.ended(SubmitDirectory(row.submitDir), spec: spec) else { allEnded = false; continue }
                let ok = status.isComplete && !status.mergeFailed
                try store.setGroup(campaign: spec.name, run: run, step: step.name, group: g, ok ? .succeeded : .failed, actor: actor,
                                   why: QuantumCounts(status).description)
                counts.add(status)
                ended.append((row, status))
            case .empty:
                continue
            case .succeeded, .failed:
                if let status = try? SubmissionStatus.read(SubmitDirectory(row.submitDir)) {
                    counts.add(status)
                    ended.append((row, status))
                } else {
                    counts.unreadable += 1
                    problems.append("group \(g): \(row.detail ?? "no status")")
                }
            }
        }
        guard allEnded else { return }
        // Error rules, on every failed quantum: accept, retry (then the step goes on running),
        // review (a person decides) or fail.
        var verdict = RuleVerdict()
        for (row, status) in ended {
            for e in status.elements where e.state == .failed {
                for q in e.quanta ?? [] where q.state == .failed {
                    let text = q.reason ?? e.reason ?? ""
                    guard let rule = spec.rules.first(where: { $0.matches(task: q.task, message: text) }) else { continue }
                    switch rule.action {
                    case .accept: verdict.accepted += 1
                    case .retry where row.retries < rule.retries: verdict.retry[row.group, default: [:]][e.array, default: []].insert(e.index)
                    case .retry: continue
                    case .review: verdict.review.append("\(q.task) {\(q.dataID)}: \(text)")
                    case .fail: verdict.fail.append("\(q.task) {\(q.dataID)}: \(text)")
                    }
                }
            }
        }
        if !verdict.retry.isEmpty {
            for (g, jobs) in verdict.retry.sorted(by: { $0.key < $1.key }) {
                guard let row = known[g] else { continue }
                let n = jobs.values.reduce(0) { $0 + $1.count }
                try store.retryGroup(campaign: spec.name, run: run, step: step.name, group: g, actor: actor,
                                     why: "\(n) jobs whose failures a retry rule matches (retry \(row.retries + 1))")
                note("\(spec.name) run \(run): step \(step.name) group \(g): retrying \(n) jobs (a retry rule matched)")
                try resubmit(SubmitDirectory(row.submitDir), jobs: jobs)
            }
            return
        }
        counts.accepted = verdict.accepted
        try judge(spec, run: run, step: step, counts: counts, problems: problems, verdict: verdict, pilot: inPilot)
    }

    /// Runs again the jobs a retry rule named: on SLURM as a new round, locally here.
    func resubmit(_ dir: SubmitDirectory, jobs: [String: Set<Int>]) throws {
        let plan = try PlanDocument.read(dir)
        let submission = Submission(dir: dir, plan: plan, site: Installation.plannedSite(dir, plan))
        let arrays = Dictionary(uniqueKeysWithValues: plan.arrays.map { ($0.name, $0) })
        if submission.isOnSlurm {
            var record = try submission.record()
            var selection: SlurmSubmitter.Selection = [:]
            for (a, slots) in jobs { for s in slots { selection[a, default: [:]][s] = arrays[a]?.resources.memoryMB ?? 0 } }
            try submission.submitter(try backend()).submitRound(&record, number: (record.rounds.last?.number ?? 0) + 1, reason: .retry, selection: selection)
        } else {
            var o = LocalBackend.Options()
            o.parallel = ProcessInfo.processInfo.activeProcessorCount
            o.only = Dictionary(uniqueKeysWithValues: jobs.map { a, slots in (a, Set(slots.map { arrays[a]?.element(ofJob: $0) ?? $0 })) })
            _ = try submission.runLocally(o)
        }
    }

    /// Plans (unless planned) and submits (unless submitted) one group; on a local site runs it here
    /// to the end. Safe to call again for a group a killed tick left intended.
    func submit(_ spec: CampaignSpec, run: Int, step: Step, group plan: GroupPlan, dir: SubmitDirectory) throws {
        let group = plan.name
        let (outputRun, chain) = collections(spec, run: run, step: step.name, group: group)
        if !FileManager.default.fileExists(atPath: dir.planJSON) {
            // A tick killed while planning leaves a directory without plan.json: planned again, into
            // the run it may already have claimed (the campaign owns the name).
            let again = FileManager.default.fileExists(atPath: dir.root)
            try? FileManager.default.removeItem(atPath: dir.root)
            try FileManager.default.createDirectory(atPath: (dir.root as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            guard let (graph, config) = try work(spec, run: run, step: step, group: plan, again: again) else {
                try store.setGroup(campaign: spec.name, run: run, step: step.name, group: group, .empty, actor: actor,
                                   why: "its graph is empty: nothing matches \(plan.query.map { "\"\($0)\"" } ?? "its query")")
                return
            }
            // An LSST graph names its output run and chain itself (pipetask qgraph was given them).
            let lsst = graph.hasSuffix(".qg")
            var inputs = PlanInputs(repo: resolve(spec.repository, spec), config: config, site: spec.site,
                                    outputRun: lsst ? nil : outputRun, output: lsst ? nil : chain, extendRun: again)
            inputs.claimRun = true
            _ = try PlanService.plan(graphPath: graph, inputs, out: dir.root)
        }
        let plan = try PlanDocument.read(dir)
        let submission = Submission(dir: dir, plan: plan, site: Installation.plannedSite(dir, plan))
        if submission.site?.scheduler == .slurm {
            let slurm = try reachableBackend()
            if !submission.isOnSlurm {
                _ = try submission.submitter(slurm).submitAll()
            } else if var record = try SlurmRecord.read(dir), record.interrupted != nil, !record.cancelled {
                // A tick killed between two sbatch calls: the job of one in flight is adopted, the rest submitted.
                try submission.submitter(slurm).completeRound(&record)
                try store.log(campaign: spec.name, run: run, step: step.name, group: group, actor: actor, what: "group \(group): completed a submission a killed tick left part-way")
            }
            try store.setGroup(campaign: spec.name, run: run, step: step.name, group: group, .submitted, actor: actor, why: "on SLURM")
        } else {
            try store.setGroup(campaign: spec.name, run: run, step: step.name, group: group, .submitted, actor: actor, why: "running here")
            var o = LocalBackend.Options()
            o.parallel = ProcessInfo.processInfo.activeProcessorCount
            _ = try submission.runLocally(o)
        }
    }

    /// The graph file and submit config of a group's work; nil when a builtin or pipeline group's
    /// graph comes out empty.
    func work(_ spec: CampaignSpec, run: Int, step: Step, group plan: GroupPlan, again: Bool = false) throws -> (graph: String, config: String?)? {
        let group = plan.name
        let config = step.config ?? spec.config
        switch step.work {
        case .graph(let path):
            return (resolve(path, spec), config.map { resolve($0, spec) })
        case .script(let command, let over):
            // A graph of one task whose quanta are the values (one element each), and a submit
            // config that runs the command with {value} filled in.
            let base = groupBase(spec, run: run, step: step.name, group: group) + ".script"
            var b = GraphBuilder(universe: ["value"], metadata: ["pipeline": "campaign \(spec.name) script step \(step.name)"])
            b.addTask(TaskNode(label: step.name, dimensions: ["value"], inputTypes: [], outputTypes: []))
            for v in over ?? ["-"] { b.addQuantum(task: step.name, dataID: DataID([("value", .string(v))]), inputs: [], outputs: []) }
            try NativeGraphFormat.write(b.graph, to: base + ".qgn")
            // Run from the campaign file's directory, as the person wrote the command there.
            let template = command.replacingOccurrences(of: "{value}", with: "{dim:value}")
            let here = (spec.source as NSString).deletingLastPathComponent
            let line = "cd \(shellQuote(here)) && QUANTA_VALUE={dim:value}; export QUANTA_VALUE; " + template
            try AtomicFile.write("pipetask:\n  \(step.name):\n    command: \(JSONText.quote(line))\n", to: base + ".yaml")
            return (base + ".qgn", base + ".yaml")
        case .builtin(let tasks, _):
            // `quanta graph build` over what the repository holds now (earlier steps' outputs
            // included), restricted to the group's query.
            let repo = try repository(spec, .quanta, for: step, "builtin steps run Quanta's pipeline on a Quanta repository; %@ is an LSST butler (use pipeline:)")
            let (outputRun, chain) = collections(spec, run: run, step: step.name, group: group)
            var request = PipelineGraph.Request(outputRun: outputRun, output: chain)
            request.tasks = tasks
            request.query = plan.query
            request.inputs = try inputs(spec, run: run)
            let base = groupBase(spec, run: run, step: step.name, group: group) + ".builtin"
            let graph = try PipelineGraph.build(repo: repo, request)
            if graph.quanta.isEmpty { return nil }
            try NativeGraphFormat.write(graph, to: base + ".qgn")
            // The built-in tasks and their defaults, under the campaign's (or step's) own config.
            try AtomicFile.write(DemoSurvey.submitConfig, to: base + ".defaults.yaml")
            let includes = [base + ".defaults.yaml"] + (config.map { [resolve($0, spec)] } ?? [])
            try AtomicFile.write("includeConfigs: [\(includes.map(JSONText.quote).joined(separator: ", "))]\n", to: base + ".yaml")
            return (base + ".qgn", base + ".yaml")
        case .pipeline(let pipeline, _):
            // pipetask qgraph when the group starts, reading what the steps before it made, with
            // pipetask's own -c/-C (the step's, then the group's).
            let repo = try repository(spec, .butler, for: step, "pipeline steps build LSST graphs with pipetask and need an LSST butler; %@ is a Quanta repository (use builtin:)")
            let (outputRun, chain) = collections(spec, run: run, step: step.name, group: group)
            let overrides = (step.overrides + (step.groupOverrides[group] ?? [])).flatMap { o -> [String] in
                if case .file(let label, let path) = o { return ["-C", "\(label):\(resolve(path, spec))"] }
                return o.arguments
            }
            let here = (spec.source as NSString).deletingLastPathComponent
            let file = pipeline.hasPrefix("/") || pipeline.hasPrefix("$") ? pipeline : (here as NSString).appendingPathComponent(pipeline)
            let request = BpsPlanning.QGraphRequest(repo: repo.root, inputs: try inputs(spec, run: run), pipeline: file, outputRun: outputRun,
                                                    output: chain, dataQuery: plan.query?.description, options: overrides, extendRun: again)
            let base = groupBase(spec, run: run, step: step.name, group: group) + ".pipeline"
            do {
                try BpsPlanning.qgraph(request, into: base + ".qg", log: base + ".qgraph.log", source: spec.source) { _ in }
            } catch is BpsPlanning.EmptyGraph {
                return nil
            }
            return (base + ".qg", config.map { resolve($0, spec) })
        }
    }

    /// Where a group's generated graph and config go, beside its submit directory.
    func groupBase(_ spec: CampaignSpec, run: Int, step: String, group: String) -> String {
        directory(spec, run: run, step: step, group: group).root
    }

    /// The campaign's repository, which must be of `kind` for this step (`%@` in `why`: its path).
    func repository(_ spec: CampaignSpec, _ kind: Repository.Kind, for step: Step, _ why: String) throws -> Repository {
        let repo = try Repository(root: resolve(spec.repository, spec))
        guard repo.kind == kind else { throw QuantaError(.usage, "step \(step.name): " + why.replacingOccurrences(of: "%@", with: repo.root)) }
        return repo
    }

    func resolve(_ path: String, _ spec: CampaignSpec) -> String {
        path.hasPrefix("/") ? path : ((spec.source as NSString).deletingLastPathComponent as NSString).appendingPathComponent(path)
    }

    /// The group's status once it has ended (nil while it runs).
    func ended(_ dir: SubmitDirectory, spec: CampaignSpec) throws -> SubmissionStatus? {
        let plan = try PlanDocument.read(dir)
        let submission = Submission(dir: dir, plan: plan, site: Installation.plannedSite(dir, plan))
        if submission.isOnSlurm {
            let slurm = try reachableBackend()
            if var record = try SlurmRecord.read(dir), record.interrupted != nil, !record.cancelled {
                // A tick killed while a retry round was being submitted.
                try submission.submitter(slurm).completeRound(&record)
            }
            let (status, view) = try submission.status(slurm)
            return view?.isActive == true ? nil : status
        }
        let status = try SubmissionStatus.read(dir)
        if status.elements.contains(where: { $0.state == .pending || $0.state == .running }) {
            // A tick killed during a local run: run the rest here (what succeeded is skipped).
            var o = LocalBackend.Options()
            o.parallel = ProcessInfo.processInfo.activeProcessorCount
            _ = try submission.runLocally(o)
            return try SubmissionStatus.read(dir)
        }
        return status
    }

    /// Every group ended: the gate decides. A pilot that passes starts the full step.
    func judge(_ spec: CampaignSpec, run: Int, step: Step, counts: QuantumCounts, problems: [String], verdict: RuleVerdict, pilot: Bool) throws {
        let what = pilot ? "pilot: " : ""
        @discardableResult
        func move(_ to: StepState, _ detail: String) throws -> Bool {
            try store.moveStep(campaign: spec.name, run: run, step: step.name, from: [.running, .pilot], to: to, detail: detail, actor: actor)
        }
        if counts.total == 0 && counts.unreadable == 0 {
            try move(.empty, "\(what)the step's graph has no quanta; review it, then approve or reject")
            return
        }
        let gate = step.gate ?? Gate()
        let allowed = gate.maxFailedFraction ?? 0
        if !problems.isEmpty {
            try move(.failed, problems.joined(separator: "; "))
            return
        }
        if !verdict.fail.isEmpty {
            try move(.failed, "a fail rule matched \(verdict.fail.count) failures, e.g. \(verdict.fail[0])")
            return
        }
        if !verdict.review.isEmpty {
            try move(.gated, "review: a rule matched \(verdict.review.count) failures, e.g. \(verdict.review[0]); approve to go on, reject to stop")
            note("\(spec.name) run \(run): step \(step.name) needs review: quanta campaign approve|reject \(spec.name) \(step.name)")
            return
        }
        if counts.fraction > allowed {
            try move(.failed, "\(counts); allowed \(String(format: "%.1f", allowed * 100)) % failed")
            return
        }
        let (_, chain) = collections(spec, run: run, step: step.name, group: Self.wholeStep)
        if let command = gate.command {
            var env = ProcessInfo.processInfo.environment
            env["QUANTA_COLLECTION"] = chain
            env["QUANTA_CAMPAIGN"] = spec.name
            env["QUANTA_RUN"] = String(run)
            var o = Spawn.Options()
            o.workingDirectory = (spec.source as NSString).deletingLastPathComponent
            let status = try Spawn.run("/bin/sh", ["-c", command], environment: env, options: o)
            if !status.succeeded {
                try move(.failed, "gate command '\(command)' \(status)")
                return
            }
        }
        if !gate.datasetTypes.isEmpty {
            let missing = try missingTypes(gate.datasetTypes, spec: spec, run: run, step: step.name)
            if !missing.isEmpty {
                try move(.failed, "gate: no \(missing.joined(separator: ", ")) in \(chain)")
                return
            }
        }
        if gate.outputsValidated {
            guard let repo = try? Repository(root: resolve(spec.repository, spec)), repo.kind == .quanta else {
                try move(.failed, "gate: outputsValidated reads outputs back from a Quanta repository; for an LSST butler it is not built yet — use a command: gate")
                return
            }
            let groups = try store.groups(campaign: spec.name, run: run, step: step.name)
            let runs = groups.map { g -> (run: String, validation: ValidationConfig) in
                let config = (try? PlanDocument.read(SubmitDirectory(g.submitDir))).flatMap { $0.submitConfig.isEmpty ? nil : try? SubmitConfig.load(path: $0.submitConfig) }
                return (g.outputRun, config?.validation ?? ValidationConfig())
            }
            let audit = try OutputsAudit.run(repo: repo, runs: runs)
            if !audit.findings.isEmpty {
                try move(.failed, "gate: " + audit.summary)
                return
            }
            try store.log(campaign: spec.name, run: run, step: step.name, actor: actor, what: "gate outputsValidated: \(audit.summary)")
        }
        if gate.manual {
            try move(.gated, "\(what)\(counts); waiting for 'quanta campaign approve \(spec.name) \(step.name)'")
            note("\(spec.name) run \(run): step \(step.name) waits for a person: quanta campaign approve \(spec.name) \(step.name)")
            return
        }
        if pilot {
            if try move(.running, "pilot passed: \(counts)") { note("\(spec.name) run \(run): step \(step.name): the pilot passed its gate; the full step starts") }
            return
        }
        if try move(.passed, counts.description) { try collect(spec, run: run, step: step.name) }
    }

    /// The Quanta repository's registry, or nil for an LSST butler (see `butler`).
    func registry(_ spec: CampaignSpec) throws -> Registry? {
        let repo = try Repository(root: resolve(spec.repository, spec))
        return repo.kind == .quanta ? try repo.openRegistry() : nil
    }

    /// An LSST butler repository's collections, through the LSST stack; nil for a Quanta repository.
    func butler(_ spec: CampaignSpec) throws -> LSSTCollections? {
        let repo = try Repository(root: resolve(spec.repository, spec))
        guard repo.kind == .butler else { return nil }
        return LSSTCollections(repo: repo.root, site: try? Installation.site(spec.site))
    }

    /// Dataset types of `wanted` with no dataset in the step's runs.
    func missingTypes(_ wanted: [String], spec: CampaignSpec, run: Int, step: String) throws -> [String] {
        guard let registry = try registry(spec) else {
            let runs = try store.groups(campaign: spec.name, run: run, step: step).map(\.outputRun)
            let present = try butler(spec)!.presentTypes(wanted, in: [collections(spec, run: run, step: step, group: Self.wholeStep).chain] + runs)
            return wanted.filter { !present.contains($0) }
        }
        let runs = try store.groups(campaign: spec.name, run: run, step: step).map(\.outputRun)
            .filter { (try? registry.collectionType($0)) != nil }
        let present = runs.isEmpty ? Set<String>() : Set(try registry.datasets(runs: runs, types: wanted).map(\.datasetType))
        return wanted.filter { !present.contains($0) }
    }

    /// A step passed: its chain goes first into the run's chain `<output>/<run>`, so the run's
    /// collection finds the newest step's outputs first (in a butler through `butler`).
    func collect(_ spec: CampaignSpec, run: Int, step: String) throws {
        let stepChain = collections(spec, run: run, step: step, group: Self.wholeStep).chain
        guard let registry = try registry(spec) else {
            if try butler(spec)!.prepend(stepChain, to: "\(spec.output)/\(run)") {
                try store.log(campaign: spec.name, run: run, step: step, actor: actor, what: "collected \(stepChain) into \(spec.output)/\(run)")
            }
            return
        }
        guard try registry.collectionType(stepChain) != nil else { return }
        try registry.prependToChain("\(spec.output)/\(run)", run: stepChain, rest: [])
        try store.log(campaign: spec.name, run: run, step: step, actor: actor, what: "collected \(stepChain) into \(spec.output)/\(run)")
    }

    /// Runs the campaign's `notify` command, if any; its failure is logged, never fatal.
    func notify(_ spec: CampaignSpec, run: Int, event: String, why: String) {
        guard let command = spec.notify else { return }
        var env = ProcessInfo.processInfo.environment
        env["QUANTA_CAMPAIGN"] = spec.name
        env["QUANTA_RUN"] = String(run)
        env["QUANTA_CAMPAIGN_EVENT"] = event
        env["QUANTA_CAMPAIGN_WHY"] = why
        let status = try? Spawn.run("/bin/sh", ["-c", command], environment: env)
        if status?.succeeded != true { try? store.log(campaign: spec.name, run: run, actor: actor, what: "notify command failed (\(status.map { "\($0)" } ?? "not started"))") }
    }
}

/// What the error rules made of a step's failed quanta.
struct RuleVerdict {
    var accepted = 0
    /// group → array → job slots to run again.
    var retry: [String: [String: Set<Int>]] = [:]
    var review: [String] = []
    var fail: [String] = []
}

/// Quanta counted over a step's groups.
struct QuantumCounts: CustomStringConvertible {
    var succeeded = 0, failed = 0, blocked = 0, other = 0, unreadable = 0
    /// Failed quanta an `accept` rule matched: done, for gates and status.
    var accepted = 0

    init() {}

    init(_ s: SubmissionStatus) { add(s) }

    mutating func add(_ s: SubmissionStatus) {
        for (state, n) in s.quanta {
            switch state {
            case SubmissionStatus.State.succeeded.rawValue, SubmissionStatus.State.noWork.rawValue: succeeded += n
            case SubmissionStatus.State.failed.rawValue: failed += n
            case SubmissionStatus.State.blocked.rawValue: blocked += n
            default: other += n
            }
        }
    }

    var total: Int { succeeded + failed + blocked + other }
    /// Quanta that did not succeed, of all.
    var fraction: Double { total == 0 ? 0 : Double(failed - accepted + blocked + other) / Double(total) }

    var description: String {
        "\(succeeded) succeeded, \(failed) failed\(accepted > 0 ? " (\(accepted) accepted by a rule)" : ""), \(blocked) blocked\(other > 0 ? ", \(other) never ran" : "") of \(total) quanta"
            + (unreadable > 0 ? "; \(unreadable) groups unreadable" : "")
    }
}

extension Work {
    var kind: String {
        switch self {
        case .pipeline: return "pipeline"
        case .builtin: return "builtin"
        case .graph: return "graph"
        case .script: return "script"
        }
    }
}
