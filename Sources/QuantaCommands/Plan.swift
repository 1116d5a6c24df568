import ArgumentParser
import Foundation
import QuantaButler
import QuantaCore
import QuantaGraphIO
import QuantaScheduler

/// Flags shared by every command that plans.
struct PlanOptions: ParsableArguments {
    @Option(name: .long, help: "The repository the graph's inputs are in and its outputs go to.")
    var repo: String

    @Option(name: .long, help: "Submit config in bps YAML keys (requestMemory, pipetask.<label>.*, cluster.<name>.*).")
    var config: String?

    @Option(name: .long, help: "Site config: a name in site-configs/ (local, …) or a path.")
    var site: String = "local"

    @Option(name: .long, help: "A bps config with computeSite and its site.<computeSite> section, mapped as 'quanta submit bps.yaml' maps it; used when --site names no Quanta site config (the bps plugin passes it).")
    var bpsSite: String?

    @Option(name: .long, help: "Output RUN collection (default: the graph's).")
    var outputRun: String?

    @Option(name: .long, help: "Output CHAINED collection (default: the graph's).")
    var output: String?

    @Option(name: .long, help: "Folder with the sbatch/submit.sh mustache templates (default: the project's templates/).")
    var templates: String?

    @Flag(name: .long, help: "Add to an output run that already exists (as pipetask --extend-run).")
    var extendRun = false

    @Flag(name: .long, help: "LSST graph: register the output run in the butler now, refusing one that exists unless --extend-run ('quanta submit' always does; costs a Python start, ~3 s).")
    var claimRun = false

    var inputs: PlanInputs {
        PlanInputs(repo: repo, config: config, site: site, bpsSite: bpsSite, outputRun: outputRun, output: output,
                   templates: templates, extendRun: extendRun, claimRun: claimRun)
    }
}

/// What planning a graph takes, typed: the flags of `quanta plan`, and what `submit` and `demo`
/// pass when they plan (they never build another command's argv).
struct PlanInputs {
    var repo: String
    var config: String?
    var site = "local"
    var bpsSite: String?
    var outputRun: String?
    var output: String?
    var templates: String?
    var extendRun = false
    var claimRun = false
}

struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cluster a graph into SLURM job arrays and write a submit directory.",
        discussion: "The directory holds plan.json/plan.txt, snapshot.bin (what each job reads), scripts/*.sbatch and submit.sh (run it with bash on a login node).")

    @Argument(help: "Graph file: pipe_base's .qg (from 'pipetask qgraph') or Quanta's native .qgn.")
    var graph: String

    @OptionGroup var options: PlanOptions

    @Option(name: .long, help: "Submit directory to create (must not hold a submission).")
    var out: String

    @Flag(name: .long, help: "Print plan.json instead of the summary.")
    var json = false

    func run() throws {
        let doc = try Self.plan(graphPath: graph, options: options.inputs, out: out, quiet: json)
        if json {
            print(String(decoding: try doc.encoded(), as: UTF8.self))
        } else {
            print(doc.summary, terminator: "")
            print("\nSubmit directory: \(SubmitDirectory(out).root)")
            print("Run it here:      quanta run \(shellQuote(SubmitDirectory(out).root))")
            print("Or on SLURM:      bash \(shellQuote(SubmitDirectory(out).submitScript))")
        }
    }

    /// Keys Quanta does not use, once; the ones that look misspelled as warnings with the key meant.
    static func reportKeys(_ config: SubmitConfig) {
        let misspelled = config.misspelledKeys
        for (key, meant) in misspelled {
            StandardStreams.error("warning: \(config.source): \(key) is not a key Quanta knows; did you mean \(meant)? (ignored)\n")
        }
        let rest = config.ignoredKeys.filter { k in !misspelled.contains { $0.key == k } }
        if !rest.isEmpty {
            StandardStreams.error("note: \(config.source): ignoring keys Quanta does not use: \(rest.joined(separator: ", "))\n")
        }
    }

    static func reportNotes(_ doc: PlanDocument) {
        for n in doc.notes ?? [] { StandardStreams.error(n.hasPrefix("warning: ") ? "\(n)\n" : "note: \(n)\n") }
    }

    static func plan(graphPath: String, options: PlanInputs, out: String, quiet: Bool = false) throws -> PlanDocument {
        let progress = Progress("planning")
        progress.stage("reading \(graphPath)")
        // QUANTA_TIMINGS=1: seconds per stage on stderr (the benchmarks read them).
        let timings = StageTimer(enabled: ProcessInfo.processInfo.environment["QUANTA_TIMINGS"] == "1")
        let graph = try GraphFile.read(path: graphPath)
        timings.mark("read")
        let config = try options.config.map { try SubmitConfig.load(path: $0) } ?? SubmitConfig()
        if !quiet { Self.reportKeys(config) }
        let site = try Resources.site(options.site, bpsSite: options.bpsSite)
        let repo = try Repository(root: options.repo)
        var req = PlanRequest(graphPath: graphPath, config: config, site: site, repo: repo,
                              submitDir: SubmitDirectory(out), runQuantumPath: Resources.runQuantum,
                              quantaPath: Resources.executable, templatesDir: try Resources.templates(options.templates),
                              outputRun: options.outputRun, output: options.output,
                              lsstDriver: Resources.lsstDriver)
        req.extendRun = options.extendRun
        req.claimRun = options.claimRun
        var last = "config"
        let doc = try Planner.plan(graph, req) { stage in
            timings.mark(last)
            last = stage.rawValue
            progress.stage(stage.rawValue)
        }
        timings.mark(last)
        timings.report()
        progress.done()
        if !quiet { reportNotes(doc) }
        return doc
    }
}

/// Wall time per stage, printed once on stderr as `timings: read 1.20 s, validate 0.10 s, …`.
final class StageTimer {
    let enabled: Bool
    private var last = Date()
    private var parts: [String] = []

    init(enabled: Bool) { self.enabled = enabled }

    func mark(_ stage: String) {
        guard enabled else { return }
        let now = Date()
        parts.append("\(stage) \(String(format: "%.2f", now.timeIntervalSince(last))) s")
        last = now
    }

    func report() {
        guard enabled else { return }
        StandardStreams.error("timings: \(parts.joined(separator: ", "))\n")
    }
}
