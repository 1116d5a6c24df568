import ArgumentParser
import Foundation
import QuantaRegistry
import QuantaButler
import QuantaCore
import QuantaScheduler
import QuantaSlurm

/// `--backend` for every command that talks to SLURM.
struct BackendOption: ParsableArguments {
    @Option(name: .long, help: "SLURM interface: auto (libslurm when its version matches the controller's, else the CLI), libslurm or cli. Default: $QUANTA_SLURM_BACKEND or auto.")
    var backend: String?

    func open(quiet: Bool = false) throws -> any SlurmBackend {
        do {
            return try SlurmBackends.select(backend) { note in
                if !quiet { StandardStreams.error("\(note)\n") }
            }
        } catch let e as SlurmError {
            throw e.quantaError
        }
    }
}

extension Submission {
    /// `wait` with a progress line on a terminal and a plain line per change otherwise.
    func waitShowingProgress(_ backend: any SlurmBackend, poll: Double) throws -> (SubmissionStatus, SlurmView?) {
        let progress = Progress("jobs finished")
        defer { progress.done() }
        return try wait(backend, poll: poll) { p in
            progress.update(p.done, p.total, "\(p.running) running, \(max(0, p.total - p.done - p.running)) pending\(p.round > 0 ? ", retry round \(p.round)" : "")")
        }
    }
}

/// A submission named on the command line: its directory (or bps's run id), its plan, and the site
/// as planned, whose umask this process adopts.
enum SubmissionArgument {
    static func open(_ path: String) throws -> Submission {
        let dir = SubmitDirectory.named(path)
        let plan = try PlanDocument.read(dir)
        return Submission(dir: dir, plan: plan, site: Installation.plannedSite(dir, plan))
    }
}

struct Submit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Submit to SLURM: a submit directory, or a graph (planned first). One sbatch per array, then the final job.",
        discussion: """
        The final job merges what succeeded and resubmits what the retry policy allows (numberOfRetries,
        retryUnlessExit, more memory after out-of-memory), as new arrays with explicit index lists.
        Examples:  quanta submit graph.qgn --repo REPO --site local-slurm --out run1
                   quanta submit run1 --wait
        """)

    @Argument(help: "A submit directory from 'quanta plan', a graph file to plan first, or a bps submit YAML (pipelineYaml or qgraphFile, payload.*, computeSite, site.<name>).")
    var target: String

    @Option(name: .long, help: "With a graph: the repository.") var repo: String?
    @Option(name: .long, help: "With a graph: submit config (bps keys).") var config: String?
    @Option(name: .long, help: "Site config name or path (default: local-slurm; for a bps YAML: quantaSite, site-configs/<computeSite>, or site.<computeSite>).") var site: String?
    @Option(name: .long, help: "Submit directory to create.") var out: String?
    @Option(name: .long, help: "Output RUN collection (bps: payload.outputRun).") var outputRun: String?
    @Option(name: [.customShort("o"), .long], help: "Output CHAINED collection (bps: payload.output).") var output: String?
    // bps submit's own flags, which win over the YAML's values as in bps.
    @Option(name: [.customShort("b"), .customLong("butler-config")], help: "bps YAML: the butler repository (payload.butlerConfig).") var butlerConfig: String?
    @Option(name: [.customShort("p"), .long], help: "bps YAML: the pipeline, e.g. DRP.yaml#step1 (pipelineYaml).") var pipeline: String?
    @Option(name: [.customShort("i"), .long], help: "bps YAML: input collections, comma-separated (payload.inCollection).") var input: String?
    @Option(name: [.customShort("d"), .customLong("data-query")], help: "bps YAML: the data query (payload.dataQuery).") var dataQuery: String?
    @Option(name: [.customShort("c"), .customLong("task-config")], help: "bps YAML: a config override label:key=value for pipetask qgraph (repeatable).") var taskConfig: [String] = []
    @Option(name: [.customShort("C"), .customLong("task-config-file")], help: "bps YAML: a config override file label:file.py for pipetask qgraph (repeatable).") var taskConfigFile: [String] = []
    @Flag(name: .long, help: "Add to an output run that already exists (pipetask's --extend-run); without it an existing run is refused.")
    var extendRun = false
    @OptionGroup var backendOption: BackendOption
    @Flag(name: .long, help: "Stay until the submission (retries included) has ended; exit 1 if a quantum did not succeed.")
    var wait = false
    @Flag(name: .long, help: "Run it here, to the end, merge included (the 'local' site; as 'quanta run').")
    var local = false
    @Option(name: .long, help: "Seconds between polls with --wait.") var poll = 2.0

    func run() throws {
        let started = Date()
        var dirPath = target
        if local && site != nil && site != "local" { throw ValidationError("--local and --site \(site!) disagree; give one") }
        let site = local ? "local" : site
        let isBps = target.hasSuffix(".yaml") || target.hasSuffix(".yml")
        let bpsOnly = [("-b", butlerConfig != nil), ("-p", pipeline != nil), ("-i", input != nil), ("-d", dataQuery != nil),
                       ("-c", !taskConfig.isEmpty), ("-C", !taskConfigFile.isEmpty)].filter(\.1).map(\.0)
        if !isBps, !bpsOnly.isEmpty {
            throw ValidationError("\(bpsOnly.joined(separator: " ")) apply to a bps YAML, which builds its graph; \(target) is not one")
        }
        if isBps {
            // Never silently ignored: these have bps names for a bps YAML.
            if repo != nil { throw ValidationError("with a bps YAML the repository is -b/--butler-config (or payload.butlerConfig), not --repo") }
            if config != nil { throw ValidationError("with a bps YAML the YAML itself is the submit config; --config applies to a graph") }
            let overrides = BpsPlanning.Overrides(butlerConfig: butlerConfig, pipeline: pipeline, input: input, output: output,
                                                outputRun: outputRun, dataQuery: dataQuery, configs: taskConfig, configFiles: taskConfigFile,
                                                extendRun: extendRun)
            dirPath = try BpsPlanning.plan(bpsPath: target, site: site, out: out, overrides: overrides, notice: Plan.show).root
        } else if !SubmitDirectory.named(target).exists {
            guard FileManager.default.fileExists(atPath: target) else {
                throw ValidationError("\(target): neither a submit directory nor a graph file")
            }
            guard let repo, let out else {
                throw ValidationError("\(target) is a graph: pass --repo and --out to plan it (or give a submit directory)")
            }
            let inputs = PlanInputs(repo: repo, config: config, site: site ?? "local-slurm", outputRun: outputRun, output: output,
                                    extendRun: extendRun, claimRun: true)
            let doc = try Plan.plan(graphPath: target, options: inputs, out: out)
            print(doc.summary(maxRows: PlanDocument.screenful), terminator: "")
            dirPath = out
        }
        let ctx = try SubmissionArgument.open(dirPath)
        if let site = ctx.site, site.scheduler != .slurm {
            // A local site: run it here to the end (merge included), as 'quanta run' does — one command.
            print("Site '\(site.name)' runs locally: running \(ctx.plan.jobs) jobs here (quanta run \(shellQuote(ctx.dir.root)))")
            var o = LocalBackend.Options()
            o.parallel = ProcessInfo.processInfo.activeProcessorCount
            let summary = try LocalRun.execute(ctx) { try ctx.runLocally(o, progress: $0) }
            let status = try SubmissionStatus.read(ctx.dir)
            print(status.render(showElements: false), terminator: "")
            try LocalRun.finish(summary, complete: status.isComplete)
            return
        }
        let backend = try backendOption.open()
        let record = try ctx.submitter(backend).submitAll()
        let round = record.rounds[0]
        print("Submitted \(round.arrays.count) arrays (\(ctx.plan.jobs) jobs) and the final job in \(String(format: "%.2f", Date().timeIntervalSince(started))) s with \(backend):")
        for a in round.arrays { print("  \(a.array)  job \(a.jobID)  --array=\(a.elements)") }
        if let f = round.finalJob { print("  final (merge, retries)  job \(f)") }
        print("Follow it with: quanta status \(shellQuote(ctx.dir.root))")
        guard wait else { return }
        let (status, _) = try ctx.waitShowingProgress(backend, poll: poll)
        print(status.render(showElements: false), terminator: "")
        print("Submit to end: \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
        if !status.isComplete || status.mergeFailed { throw ExitCode(1) }
    }
}

struct Cancel: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cancel every SLURM job of a submission (all rounds, the final job too); 'quanta restart' resumes.")

    @Argument(help: "Submit directory.") var dir: String
    @OptionGroup var backendOption: BackendOption

    func run() throws {
        let ctx = try SubmissionArgument.open(dir)
        _ = try ctx.record()
        let done = try ctx.cancel(try backendOption.open())
        if let why = done.adoptionProblem { StandardStreams.error("note: \(why)\n") }
        if let id = done.adopted { print("Found job \(id), queued when the submission was interrupted and on no record yet.") }
        print("Cancelled \(done.jobIDs.count) SLURM jobs (\(done.jobIDs.map(String.init).joined(separator: " "))).")
        print("What finished stays; register it with 'quanta merge \(shellQuote(ctx.dir.root))', resume with 'quanta restart \(shellQuote(ctx.dir.root))'.")
    }
}

struct Finalize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The final job: merge what succeeded, then resubmit what the retry policy allows (SLURM).",
        discussion: "Runs inside SLURM after every array of a round; safe to run again by hand.")

    @Argument(help: "Submit directory.") var dir: String
    @OptionGroup var backendOption: BackendOption

    func run() throws {
        let ctx = try SubmissionArgument.open(dir)
        var refused = 0
        defer { if refused > 0 { StandardStreams.error("quanta finalize: the merge refused \(refused) manifest records (see merge-summary.json)\n") } }
        let done = try ctx.finalize(backend: { try backendOption.open() }, merged: { r in
            Merge.report(r)
            refused = r.refused.count
        }, note: { print($0) })
        guard let status = done.status else { return }
        print(status.render(showElements: true), terminator: "")
        if done.cancelled {
            print("Cancelled: nothing is retried.")
            return
        }
        for line in done.retryLines { print("retry: \(line)") }
        guard let round = done.retryRound else {
            print(status.isComplete ? "Every quantum succeeded." : "Nothing left to retry; 'quanta restart' runs the rest after a fix.")
            return
        }
        print("Round \(round.number): resubmitted \(done.retried) jobs in \(round.arrays.count) arrays (\(round.arrays.map { "\($0.array)[\($0.elements)] job \($0.jobID)" }.joined(separator: ", "))), final job \(round.finalJob.map(String.init) ?? "-")")
    }
}

struct SiteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "site", abstract: "Site configs: compare one with the live cluster.", subcommands: [SiteCheck.self])
}

struct SiteCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Compare a site config with the live SLURM cluster: partitions, cores and memory per node, MaxArraySize, max walltime.",
        discussion: "Exit 1 when something differs in a way that makes jobs fail or wait forever.")

    @Argument(help: "Site config: a name in site-configs/ or a path.") var site: String
    @OptionGroup var backendOption: BackendOption

    func run() throws {
        let config = try Installation.site(site)
        let backend = try backendOption.open()
        let report = try SiteChecker.check(config, backend: backend)
        print(report.text, terminator: "")
        if report.problems > 0 { throw ExitCode(1) }
    }
}
