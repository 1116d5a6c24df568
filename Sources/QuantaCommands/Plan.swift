import ArgumentParser
import Foundation
import QuantaButler
import QuantaCore
import QuantaGraphIO
import QuantaScheduler
import QuantaReport

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

    @Option(name: .long, parsing: .singleValue,
            help: "A submit directory of an earlier run: requests per task from what its jobs used ('quanta tune'), in place of the config's; repeat for more.")
    var learnFrom: [String] = []

    var inputs: PlanInputs {
        get throws {
            var i = PlanInputs(repo: repo, config: config, site: site, bpsSite: bpsSite, outputRun: outputRun, output: output,
                               templates: templates, extendRun: extendRun, claimRun: claimRun)
            if !learnFrom.isEmpty {
                i.learned = RequestLearner.learn(try learnFrom.map { try RunMeasures.collect(SubmissionArgument.open($0).dir) })
            }
            return i
        }
    }
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
        let doc = try Self.plan(graphPath: graph, options: try options.inputs, out: out, quiet: json)
        if json {
            print(String(decoding: try doc.encoded(), as: UTF8.self))
        } else {
            print(doc.summary(maxRows: PlanDocument.screenful), terminator: "")
            print("\nSubmit directory: \(SubmitDirectory(out).root)")
            print("Run it here:      quanta run \(shellQuote(SubmitDirectory(out).root))")
            print("Or on SLURM:      bash \(shellQuote(SubmitDirectory(out).submitScript))")
        }
    }

    /// Plans with progress on a terminal, notices on stderr (info on stdout), and with
    /// QUANTA_TIMINGS=1 seconds per stage on stderr (the benchmarks read them). `quiet`: no notices.
    static func plan(graphPath: String, options: PlanInputs, out: String, quiet: Bool = false) throws -> PlanDocument {
        let progress = Progress("planning")
        let timings = StageTimer(enabled: ProcessInfo.processInfo.environment["QUANTA_TIMINGS"] == "1")
        var last = "config"
        let doc = try PlanService.plan(graphPath: graphPath, options, out: out, notice: { if !quiet { show($0) } }) { p in
            switch p {
            case .reading(let path): progress.stage("reading \(path)")
            case .read: timings.mark("read")
            case .stage(let stage):
                timings.mark(last)
                last = stage.rawValue
                progress.stage(stage.rawValue)
            }
        }
        timings.mark(last)
        timings.report()
        progress.done()
        return doc
    }

    /// A planning notice as a person reads it.
    static func show(_ notice: PlanNotice) {
        switch notice {
        case .warning(let text): StandardStreams.error("warning: \(text)\n")
        case .note(let text): StandardStreams.error("note: \(text)\n")
        case .info(let text): print(text)
        case .summary(let text): print(text, terminator: "")
        }
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
