import ArgumentParser
import Foundation
import QuantaCampaign
import QuantaCore
import QuantaScheduler

/// `quanta campaign …`: whole productions from one file (docs/campaigns.md).
struct CampaignCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "campaign",
        abstract: "Campaigns: ordered steps, gates and schedules from one file (docs/campaigns.md).",
        subcommands: [CampaignValidate.self, CampaignStart.self, CampaignRun.self, CampaignTick.self, CampaignSchedule.self, CampaignStatus.self, CampaignApprove.self,
                      CampaignReject.self, CampaignPause.self, CampaignResume.self, CampaignKeep.self, CampaignLog.self, CampaignList.self])
}

/// `--db` for every campaign command.
struct CampaignDatabaseOption: ParsableArguments {
    @Option(name: .long, help: "The campaign database (default: $QUANTA_DB, else ~/.quanta/campaigns.sqlite).")
    var db: String?

    func open() throws -> CampaignStore { try CampaignStore(path: db ?? CampaignStore.defaultPath) }

    /// A registered campaign's spec, read from its file.
    func spec(_ name: String, in store: CampaignStore) throws -> CampaignSpec {
        guard let c = try store.campaign(name) else {
            let known = try store.campaigns().map(\.name)
            let hint = DidYouMean.suggestion(for: name, among: known).map { "; did you mean '\($0)'?" } ?? (known.isEmpty ? "" : "; known: \(known.joined(separator: ", "))")
            throw QuantaError(.usage, "no campaign '\(name)' in \(store.location)\(hint)")
        }
        return try CampaignFile.load(path: c.file)
    }

    func engine(_ store: CampaignStore, actor: String, backend: BackendOption) -> CampaignEngine {
        // A note starts on a clean line: `campaign run` may have drawn a progress line.
        CampaignEngine(store: store, actor: actor, backend: { try backend.open(quiet: true) }, note: {
            print((isatty(1) == 1 ? "\r\u{1B}[K" : "") + $0)
            fflush(nil)
        })
    }
}

var person: String { ProcessInfo.processInfo.environment["USER"] ?? NSUserName() }

struct CampaignValidate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "validate", abstract: "Check a campaign file; print its steps.")
    @Argument(help: "Campaign file (YAML).") var file: String

    func run() throws {
        let spec = try CampaignFile.load(path: file)
        print("\(file): campaign \(spec.name) on \(spec.repository) (site \(spec.site)), \(spec.steps.count) steps:")
        for s in spec.steps {
            print("  \(s.name): \(s.work.summary)\(s.after.isEmpty ? "" : " after \(s.after.joined(separator: ", "))")\(s.gate.map { " gate: \($0.summary)" } ?? "")")
        }
        if let c = spec.schedule { print("  schedule: \(c)\(c.next(after: Date()).map { ", next \(Timestamp.iso8601($0))" } ?? "")") }
        if let r = spec.retention { print("  retention: keep \(r.keep)") }
    }
}

struct CampaignRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Register a campaign file and run it here until it finishes or needs a person.",
        discussion: "Starts a run unless one is in progress; exit 0 when the run succeeded, 2 when it waits for a person, 1 when it failed.")
    @Argument(help: "Campaign file (YAML).") var file: String
    @OptionGroup var database: CampaignDatabaseOption
    @OptionGroup var backendOption: BackendOption
    @Option(name: .long, help: "Seconds between looks at SLURM jobs.") var poll = 5.0

    func run() throws {
        let spec = try CampaignFile.load(path: file)
        let store = try database.open()
        let engine = database.engine(store, actor: "run", backend: backendOption)
        let number = try engine.start(spec)
        print("campaign \(spec.name): run \(number) (database \(store.location))")
        let line = Progress("steps done")
        let state = try engine.runUntilSettled(spec, run: number, poll: poll) { p in
            line.update(p.stepsDone, p.steps, p.working.joined(separator: "; "))
        }
        line.done()
        print(try CampaignOverview.build(spec, store: store).text)
        switch state {
        case .succeeded: return
        case .held: throw ExitCode(2)
        default: throw ExitCode(1)
        }
    }
}

struct CampaignStart: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start",
        abstract: "Register a campaign file and start a run (unless one is in progress); the next tick advances it.")
    @Argument(help: "Campaign file (YAML).") var file: String
    @OptionGroup var database: CampaignDatabaseOption
    @OptionGroup var backendOption: BackendOption

    func run() throws {
        let spec = try CampaignFile.load(path: file)
        let store = try database.open()
        let n = try database.engine(store, actor: person, backend: backendOption).start(spec)
        print("campaign \(spec.name): run \(n) started; 'quanta campaign tick --db \(shellQuote(store.location))' advances it (see 'quanta campaign schedule')")
    }
}

struct CampaignSchedule: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedule",
        abstract: "The clock for 'campaign tick': print (or --install) a crontab line, or run it as a self-resubmitting SLURM job (--slurm).",
        discussion: "The SLURM job runs one tick, then submits itself again with --begin; '--stop' ends it. Debian's SLURM has no scrontab; where yours has, the crontab line works there too.")
    @OptionGroup var database: CampaignDatabaseOption
    @Option(name: .long, help: "Minutes between ticks.") var every = 5
    @Option(name: .long, help: "SLURM job: seconds between ticks instead (cron cannot go below a minute).") var seconds: Int?
    @Flag(name: .long, help: "Add the line to your crontab (crontab -l / crontab -).") var install = false
    @Flag(name: .long, help: "Submit the self-resubmitting tick job to SLURM.") var slurm = false
    @Option(name: .long, help: "SLURM job: an extra #SBATCH option, e.g. --partition=debug (repeatable).") var sbatchOption: [String] = []
    @Flag(name: .long, help: "SLURM job: stop it (no further resubmission; the pending one is cancelled).") var stop = false

    func validate() throws {
        guard every >= 1 else { throw ValidationError("--every: at least 1 minute") }
        if let s = seconds, s < 1 { throw ValidationError("--seconds: at least 1") }
        if [install, slurm, stop].filter({ $0 }).count > 1 { throw ValidationError("give one of --install, --slurm, --stop") }
    }

    func run() throws {
        let store = try database.open()
        let clock = TickClock(quanta: Installation.executable, database: store.location, everyMinutes: every, everySeconds: seconds)
        let script = store.directory + "/tick.sbatch"
        if stop {
            _ = FileManager.default.createFile(atPath: script + ".stop", contents: Data())
            let r = try Spawn.capture("/bin/sh", ["-c", "scancel --name=\(clock.jobName) --state=PENDING"])
            print("stopped: \(clock.jobName) will not submit itself again\(r.status.succeeded ? "; its pending job is cancelled" : " (scancel: \(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines)))")")
            return
        }
        if slurm {
            try AtomicFile.write(clock.slurmScript(path: script, sbatchOptions: sbatchOption), to: script)
            try? FileManager.default.removeItem(atPath: script + ".stop")
            let queued = try Spawn.capture("/bin/sh", ["-c", "squeue -h -n \(clock.jobName) -o %i"])
            if !queued.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                print("\(clock.jobName) is already queued (job \(queued.stdout.split(separator: "\n").joined(separator: ", "))); it ticks every \(seconds.map { "\($0) s" } ?? "\(every) min") with the script \(script)")
                return
            }
            let r = try Spawn.capture("/bin/sh", ["-c", "sbatch --parsable \(shellQuote(script))"])
            guard r.status.succeeded else {
                throw QuantaError(.scheduler, "sbatch \(script) failed (\(r.status)): \(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines)); is SLURM reachable from here?")
            }
            print("submitted \(clock.jobName) (job \(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines))): one tick now, then every \(seconds.map { "\($0) s" } ?? "\(every) min"); log \(store.directory)/tick.log; stop with 'quanta campaign schedule --stop --db \(shellQuote(store.location))'")
            return
        }
        if install {
            guard let crontab = Spawn.which("crontab") else {
                throw QuantaError(.usage, "no 'crontab' command here; add the line 'quanta campaign schedule' prints where cron runs, or use --slurm")
            }
            let current = try Spawn.capture(crontab, ["-l"])
            let lines = current.status.succeeded ? current.stdout : ""
            if lines.contains(clock.command) { print("already in your crontab: \(clock.crontabLine)"); return }
            let tmp = NSTemporaryDirectory() + "quanta-crontab-\(getpid())"
            try AtomicFile.write(lines + (lines.isEmpty || lines.hasSuffix("\n") ? "" : "\n") + clock.crontabLine + "\n", to: tmp)
            defer { unlink(tmp) }
            let r = try Spawn.capture(crontab, [tmp])
            guard r.status.succeeded else { throw QuantaError(.usage, "crontab refused the new table: \(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines))") }
            print("installed in your crontab: \(clock.crontabLine)")
            return
        }
        print("""
        # crontab (crontab -e), or scrontab where SLURM has it:
        \(clock.crontabLine)
        # or: quanta campaign schedule --install   (adds it to your crontab)
        #     quanta campaign schedule --slurm     (a SLURM job that ticks and resubmits itself)
        """)
    }
}

struct CampaignTick: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tick",
        abstract: "One bounded round for every campaign: start runs that are due, advance the others; then exit (for cron).")
    @OptionGroup var database: CampaignDatabaseOption
    @OptionGroup var backendOption: BackendOption
    @Option(name: .long, help: "Act as if it were this time (ISO 8601, e.g. 2026-12-01T03:00:00Z): for testing schedules.") var now: String?

    func run() throws {
        let store = try database.open()
        let at = try now.map { t -> Date in
            guard let d = Timestamp.parse(t) else { throw ValidationError("--now: '\(t)' is not a time like 2026-12-01T03:00:00Z") }
            return d
        } ?? Date()
        guard let lines = try database.engine(store, actor: "tick", backend: backendOption).tick(now: at) else {
            print("another tick is running (\(store.location)); nothing done")
            return
        }
        for l in lines { print(l) }
    }
}

struct CampaignStatus: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "A campaign's runs, steps and groups at a glance.")
    @Argument(help: "Campaign name.") var name: String
    @Flag(name: .long, help: "Machine-readable: every run, step and group.") var json = false
    @OptionGroup var database: CampaignDatabaseOption

    func run() throws {
        let store = try database.open()
        let spec = try database.spec(name, in: store)
        if json {
            print(String(decoding: try JSONEncoder.pretty.encode(try CampaignOverview.build(spec, store: store)), as: UTF8.self))
        } else {
            print(try CampaignOverview.build(spec, store: store).text)
        }
    }
}

/// A campaign, one of its steps, and what to reach them with: `approve` and `reject`.
struct CampaignStepArguments: ParsableArguments {
    @Argument(help: "Campaign name.") var name: String
    @Argument(help: "Step name.") var step: String
    @OptionGroup var database: CampaignDatabaseOption
    @OptionGroup var backendOption: BackendOption

    /// A person's decision on the step; returns what it took to make it.
    func decide(approve: Bool) throws -> (CampaignStore, CampaignSpec, CampaignEngine) {
        let store = try database.open()
        let spec = try database.spec(name, in: store)
        let engine = database.engine(store, actor: person, backend: backendOption)
        try engine.decide(spec, step: step, approve: approve)
        return (store, spec, engine)
    }
}

struct CampaignApprove: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "approve", abstract: "Pass a step held at a manual gate (or an empty step); the run goes on at the next tick.")
    @OptionGroup var target: CampaignStepArguments

    func run() throws {
        _ = try target.decide(approve: true)
        print("approved \(target.name) \(target.step); 'quanta campaign tick' (or the next scheduled one) goes on")
    }
}

struct CampaignReject: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "reject", abstract: "Fail a step held at a manual gate; its run fails.")
    @OptionGroup var target: CampaignStepArguments

    func run() throws {
        let (store, spec, engine) = try target.decide(approve: false)
        if let run = try store.runs(campaign: spec.name).last {
            _ = try store.withTickLock(holder: "reject \(spec.name)") { _ in try engine.advance(spec, run: run.number) }
        }
        print("rejected \(target.name) \(target.step)")
    }
}

struct CampaignPause: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pause", abstract: "Ticks leave the campaign alone until 'resume' (what is submitted keeps running).")
    @Argument(help: "Campaign name.") var name: String
    @OptionGroup var database: CampaignDatabaseOption

    func run() throws { try database.open().setPaused(name, true, actor: person) }
}

struct CampaignResume: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "resume", abstract: "Ticks advance the campaign again.")
    @Argument(help: "Campaign name.") var name: String
    @OptionGroup var database: CampaignDatabaseOption

    func run() throws { try database.open().setPaused(name, false, actor: person) }
}

struct CampaignKeep: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "keep", abstract: "Retention never removes this run (--no: it may again).")
    @Argument(help: "Campaign name.") var name: String
    @Argument(help: "Run number.") var number: Int
    @Flag(name: .long, help: "Undo: retention may remove the run again.") var no = false
    @OptionGroup var database: CampaignDatabaseOption

    func run() throws { try database.open().setKeep(campaign: name, run: number, !no, actor: person) }
}

struct CampaignLog: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "log", abstract: "The activity log: who or what changed what, when.")
    @Argument(help: "Campaign name.") var name: String
    @Option(name: .long, help: "Only the last N entries.") var last: Int?
    @OptionGroup var database: CampaignDatabaseOption

    func run() throws {
        let store = try database.open()
        for e in try store.events(campaign: name, limit: last ?? .max) {
            print("\(e.at)  \(e.actor.padding(toLength: 8, withPad: " ", startingAt: 0))  \(e.run.map { "run \($0)  " } ?? "")\(e.what)")
        }
    }
}

struct CampaignList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Campaigns in the database with their latest run.")
    @OptionGroup var database: CampaignDatabaseOption

    func run() throws {
        let store = try database.open()
        let rows = try store.campaigns().map { c -> [String] in
            let last = try store.runs(campaign: c.name).last
            return [c.name, last.map { "run \($0.number)" } ?? "-", last?.state.rawValue ?? "-", c.paused ? "paused" : "", c.file]
        }
        print((TextTable.render(header: ["campaign", "latest", "state", "", "file"], rows: rows)).joined(separator: "\n"))
    }
}

extension Work {
    var summary: String {
        switch self {
        case let .pipeline(p, q): return "pipeline \(p)\(q.map { " where \($0)" } ?? "")"
        case let .builtin(tasks, query): return "built-in pipeline\(tasks.map { " (\($0.joined(separator: ", ")))" } ?? "")\(query.map { " where \($0)" } ?? "")"
        case let .graph(g): return "graph \(g)"
        case let .script(c, over): return "script '\(c)'\(over.map { " over \($0.joined(separator: ", "))" } ?? "")"
        }
    }
}

extension Gate {
    var summary: String {
        var parts: [String] = []
        if let f = maxFailedFraction { parts.append("≤ \(String(format: "%g", f * 100)) % failed") }
        if !datasetTypes.isEmpty { parts.append("has \(datasetTypes.joined(separator: ", "))") }
        if outputsValidated { parts.append("outputs validated") }
        if let c = command { parts.append("'\(c)' exits 0") }
        if manual { parts.append("approved by a person") }
        return parts.joined(separator: ", ")
    }
}
