import Foundation
import QuantaButler
import QuantaCore
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
/// Built so far (issue 16, first part): `graph` and `script` steps, script arrays over values,
/// gates (failed fraction, dataset types in a Quanta repository, a command, manual), empty graphs
/// held for review. Not yet: `pipeline` and `builtin` steps, groups by dimension or query, pilots,
/// error rules, collection chains, retention.
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
        self.workRoot = workRoot ?? (store.path as NSString).deletingLastPathComponent + "/runs"
        self.backend = backend
        self.note = note
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
                    let state = try advance(spec, run: last.number)
                    lines.append("\(c.name): run \(last.number) \(state.rawValue)")
                } else if let schedule = spec.schedule {
                    let since = runs.last.map { Timestamp.parse($0.startedAt) } ?? Timestamp.parse(c.registeredAt)
                    if let since, let due = schedule.next(after: since, calendar: calendar), due <= now {
                        let n = try store.startRun(campaign: c.name, steps: spec.steps.map(\.name), actor: actor).number
                        let state = try advance(spec, run: n)
                        lines.append("\(c.name): run \(n) started (due \(Timestamp.iso8601(due))), \(state.rawValue)")
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

    /// Advances one run as far as it goes without waiting: returns the run's state after.
    @discardableResult
    public func advance(_ spec: CampaignSpec, run: Int) throws -> RunState {
        var rows = Dictionary(uniqueKeysWithValues: try store.steps(campaign: spec.name, run: run).map { ($0.step, $0) })
        for step in spec.steps {
            guard let row = rows[step.name] else { continue }
            switch row.state {
            case .waiting:
                guard step.after.allSatisfy({ rows[$0]?.state == .passed }) else { continue }
                guard try store.moveStep(campaign: spec.name, run: run, step: step.name, from: [.waiting], to: .running, actor: actor) else { continue }
                note("\(spec.name) run \(run): step \(step.name) starts")
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
        return next
    }

    /// `quanta campaign approve/reject NAME STEP`: a gated (or empty) step of the latest run passes
    /// or fails, and the run goes on.
    public func decide(_ spec: CampaignSpec, step: String, approve: Bool) throws {
        guard let run = try store.runs(campaign: spec.name).last else { throw QuantaError(.usage, "campaign \(spec.name) has no run") }
        guard spec.step(step) != nil else {
            let hint = DidYouMean.suggestion(for: step, among: spec.steps.map(\.name)).map { "; did you mean '\($0)'?" } ?? ""
            throw QuantaError(.usage, "campaign \(spec.name) has no step '\(step)'\(hint)")
        }
        let moved = try store.moveStep(campaign: spec.name, run: run.number, step: step, from: [.gated, .empty],
                                       to: approve ? .passed : .failed, detail: approve ? "approved" : "rejected", actor: actor)
        guard moved else {
            let state = try store.steps(campaign: spec.name, run: run.number).first { $0.step == step }?.state.rawValue ?? "unknown"
            throw QuantaError(.usage, "step \(step) of \(spec.name) run \(run.number) is \(state), not waiting for a person")
        }
        if run.state == .held { try store.setRun(campaign: spec.name, run: run.number, .running, actor: actor, why: "\(step) \(approve ? "approved" : "rejected")") }
    }

    // MARK: steps and groups

    /// A step's groups: their names and, for script steps, the values of their array.
    func groups(_ step: Step) throws -> [String] {
        switch (step.work, step.groups) {
        case (_, nil): return [Self.wholeStep]
        default:
            throw QuantaError(.usage, "step \(step.name): groups are not supported yet for this kind of step (issue 16 continues); remove 'groups:' or split the step")
        }
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
        let names: [String]
        do { names = try groups(step) } catch {
            try store.moveStep(campaign: spec.name, run: run, step: step.name, to: .failed, detail: "\(error)", actor: actor)
            return
        }
        var known = Dictionary(uniqueKeysWithValues: try store.groups(campaign: spec.name, run: run, step: step.name).map { ($0.group, $0) })
        for g in names where known[g] == nil || known[g]!.state == .intended {
            let dir = directory(spec, run: run, step: step.name, group: g)
            let (outputRun, _) = collections(spec, run: run, step: step.name, group: g)
            try store.intendGroup(campaign: spec.name, run: run, step: step.name, group: g, submitDir: dir.root, outputRun: outputRun, actor: actor)
            do {
                try submit(spec, run: run, step: step, group: g, dir: dir)
            } catch {
                try store.setGroup(campaign: spec.name, run: run, step: step.name, group: g, .failed, actor: actor, why: "\(error)")
                note("\(spec.name) run \(run): step \(step.name) group \(g) could not be submitted: \(error)")
            }
        }
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
        try judge(spec, run: run, step: step, counts: counts, problems: problems, verdict: verdict)
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
    func submit(_ spec: CampaignSpec, run: Int, step: Step, group: String, dir: SubmitDirectory) throws {
        let (outputRun, chain) = collections(spec, run: run, step: step.name, group: group)
        if !FileManager.default.fileExists(atPath: dir.planJSON) {
            // A tick killed while planning leaves a directory without plan.json: planned again.
            try? FileManager.default.removeItem(atPath: dir.root)
            try FileManager.default.createDirectory(atPath: (dir.root as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            let (graph, config) = try work(spec, run: run, step: step, group: group)
            var inputs = PlanInputs(repo: resolve(spec.repository, spec), config: config, site: spec.site, outputRun: outputRun, output: chain)
            inputs.claimRun = true
            _ = try PlanService.plan(graphPath: graph, inputs, out: dir.root)
        }
        let plan = try PlanDocument.read(dir)
        let submission = Submission(dir: dir, plan: plan, site: Installation.plannedSite(dir, plan))
        if submission.site?.scheduler == .slurm {
            if !submission.isOnSlurm { _ = try submission.submitter(try backend()).submitAll() }
            try store.setGroup(campaign: spec.name, run: run, step: step.name, group: group, .submitted, actor: actor, why: "on SLURM")
        } else {
            try store.setGroup(campaign: spec.name, run: run, step: step.name, group: group, .submitted, actor: actor, why: "running here")
            var o = LocalBackend.Options()
            o.parallel = ProcessInfo.processInfo.activeProcessorCount
            _ = try submission.runLocally(o)
        }
    }

    /// The graph file and submit config of a group's work.
    func work(_ spec: CampaignSpec, run: Int, step: Step, group: String) throws -> (graph: String, config: String?) {
        let config = step.config ?? spec.config
        switch step.work {
        case .graph(let path):
            return (resolve(path, spec), config.map { resolve($0, spec) })
        case .script(let command, let over):
            // A graph of one task whose quanta are the values (one element each), and a submit
            // config that runs the command with {value} filled in.
            let base = "\(workRoot)/\(spec.name)/\(run)/\(step.name)/\(group).script"
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
        case .pipeline, .builtin:
            throw QuantaError(.usage, "step \(step.name): \(step.work.kind) steps are not built yet (issue 16 continues); use a graph: or script: step")
        }
    }

    func resolve(_ path: String, _ spec: CampaignSpec) -> String {
        path.hasPrefix("/") ? path : ((spec.source as NSString).deletingLastPathComponent as NSString).appendingPathComponent(path)
    }

    /// The group's status once it has ended (nil while it runs).
    func ended(_ dir: SubmitDirectory, spec: CampaignSpec) throws -> SubmissionStatus? {
        let plan = try PlanDocument.read(dir)
        let submission = Submission(dir: dir, plan: plan, site: Installation.plannedSite(dir, plan))
        if submission.isOnSlurm {
            let (status, view) = try submission.status(try backend())
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

    /// Every group ended: the gate decides.
    func judge(_ spec: CampaignSpec, run: Int, step: Step, counts: QuantumCounts, problems: [String], verdict: RuleVerdict) throws {
        @discardableResult
        func move(_ to: StepState, _ detail: String) throws -> Bool {
            try store.moveStep(campaign: spec.name, run: run, step: step.name, from: [.running, .pilot], to: to, detail: detail, actor: actor)
        }
        if counts.total == 0 && counts.unreadable == 0 {
            try move(.empty, "the step's graph has no quanta; review it, then approve or reject")
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
        if gate.manual {
            try move(.gated, "\(counts); waiting for 'quanta campaign approve \(spec.name) \(step.name)'")
            note("\(spec.name) run \(run): step \(step.name) waits for a person: quanta campaign approve \(spec.name) \(step.name)")
            return
        }
        if try move(.passed, counts.description) { try collect(spec, run: run, step: step.name) }
    }

    /// The Quanta repository's registry, or nil for an LSST butler (collections there: not yet).
    func registry(_ spec: CampaignSpec) throws -> Registry? {
        let repo = try Repository(root: resolve(spec.repository, spec))
        return repo.kind == .quanta ? try Registry(path: repo.registryPath) : nil
    }

    /// Dataset types of `wanted` with no dataset in the step's runs.
    func missingTypes(_ wanted: [String], spec: CampaignSpec, run: Int, step: String) throws -> [String] {
        guard let registry = try registry(spec) else {
            throw QuantaError(.usage, "step \(step): the datasetTypes gate needs a Quanta repository for now (LSST butlers: issue 16 continues)")
        }
        let runs = try store.groups(campaign: spec.name, run: run, step: step).map(\.outputRun)
            .filter { (try? registry.collectionType($0)) != nil }
        let present = runs.isEmpty ? Set<String>() : Set(try registry.datasets(runs: runs, types: wanted).map(\.datasetType))
        return wanted.filter { !present.contains($0) }
    }

    /// A step passed: its chain goes first into the run's chain `<output>/<run>`, so the run's
    /// collection finds the newest step's outputs first (Quanta repositories; LSST: not yet).
    func collect(_ spec: CampaignSpec, run: Int, step: String) throws {
        guard let registry = try registry(spec) else { return }
        let stepChain = collections(spec, run: run, step: step, group: Self.wholeStep).chain
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
