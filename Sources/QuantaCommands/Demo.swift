import ArgumentParser
import Foundation
import QuantaButler
import QuantaCore
import QuantaExec
import QuantaGraphIO
import QuantaScheduler

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make a small repository and a 3-step graph (isr → calibrate → gather), plan it, run it locally, merge.",
        discussion: "Everything lands in --workdir: repo/, demo.qgn, demo-submit.yaml and submit/.")

    @Option(name: .long, help: "Where to put the demo (replaced if it holds an earlier demo).")
    var workdir = "quanta-demo"

    @Option(name: .long, help: "Number of visits.") var visits = 3
    @Option(name: .long, help: "Detectors per visit.") var detectors = 4
    @Option(name: .long, help: "Image side in pixels.") var size = 64
    @Option(name: .long, help: "Write this many raws corrupt, to see failures and 'restart'.") var corrupt = 0
    @Option(name: .long, help: "Site config to plan for (default: local, or local-slurm with --slurm).") var site: String?
    @Flag(name: .long, help: "Submit to the SLURM cluster (scripts/slurm-cluster.sh start) instead of running locally, and wait for the end.")
    var slurm = false
    @OptionGroup var backendOption: BackendOption
    @Option(name: [.customShort("j"), .customLong("jobs")], help: "Jobs at once (default: the number of cores).") var parallel: Int?
    @Flag(name: .long, help: "Write the repository, graph and submit directory, but do not run.") var planOnly = false

    func validate() throws {
        guard visits > 0, detectors > 0 else { throw ValidationError("--visits and --detectors must be at least 1") }
        guard size >= 16 else { throw ValidationError("--size must be at least 16 pixels") }
        guard corrupt >= 0, corrupt <= visits * detectors else { throw ValidationError("--corrupt must be between 0 and visits × detectors") }
    }

    func run() throws {
        let fm = FileManager.default
        let root = URL(fileURLWithPath: workdir).standardizedFileURL.path
        let marker = root + "/.quanta-demo"
        if fm.fileExists(atPath: root) {
            let contents = (try? fm.contentsOfDirectory(atPath: root)) ?? []
            guard contents.isEmpty || fm.fileExists(atPath: marker) else {
                throw ValidationError("\(root) exists and is not an earlier demo; choose another --workdir")
            }
            try fm.removeItem(atPath: root)
        }
        try fm.createDirectory(atPath: root, withIntermediateDirectories: true)
        try AtomicFile.write("quanta demo workdir; 'quanta demo' replaces it\n", to: marker)

        let survey = DemoSurvey(visits: visits, detectors: detectors, size: size, corrupt: corrupt)
        print("Quanta demo in \(root)")
        let repo = try Repository.create(at: root + "/repo")
        let ingest = Progress("  writing raws")
        let raws = try survey.ingestRaws(repo: repo) { ingest.update($0, $1) }
        ingest.done()
        print("  1. repository \(repo.root): \(raws.count) raws (\(visits) visits × \(detectors) detectors) in \(DemoSurvey.inputRun)\(corrupt > 0 ? ", \(corrupt) corrupt" : "")")

        let stamp = Self.timestamp()
        let graph = survey.graph(raws: raws, outputRun: "demo/out/\(stamp)", output: "demo/out")
        let graphPath = root + "/demo.\(NativeGraphFormat.fileExtension)"
        try NativeGraphFormat.write(graph, to: graphPath)
        let configPath = root + "/demo-submit.yaml"
        try AtomicFile.write(DemoSurvey.submitConfig, to: configPath)
        print("  2. graph \(graphPath): \(graph.quanta.count) quanta of isr, calibrate, gather")

        let siteName = site ?? (slurm ? "local-slurm" : "local")
        var options = try PlanOptions.parse(["--repo", repo.root, "--config", configPath, "--site", siteName])
        options.templates = nil
        let submitDir = SubmitDirectory(root + "/submit")
        let plan = try Plan.plan(graphPath: graphPath, options: options, out: submitDir.root)
        var labels: [String] = []
        var perLabel: [String: (arrays: Int, jobs: Int)] = [:]
        for a in plan.arrays {
            if perLabel[a.label] == nil { labels.append(a.label) }
            perLabel[a.label, default: (0, 0)].arrays += 1
            perLabel[a.label, default: (0, 0)].jobs += a.size
        }
        let arrays = labels.map { l -> String in
            let p = perLabel[l]!
            return p.arrays == 1 ? "\(l)[\(p.jobs)]" : "\(l)[\(p.jobs) in \(p.arrays) arrays]"
        }.joined(separator: ", ")
        print("  3. planned \(plan.jobs) jobs in \(plan.arrays.count) arrays (\(arrays)) + merge in \(String(format: "%.3f", plan.planSeconds)) s → \(submitDir.root)")
        if planOnly {
            print("\nRun it with: quanta run \(shellQuote(submitDir.root))")
            return
        }
        var summary: LocalBackend.Summary?
        let status: SubmissionStatus
        if slurm {
            let started = Date()
            let backend = try backendOption.open()
            let ctx = try SlurmContext(submitDir.root)
            let record = try ctx.submitter(backend).submitAll()
            print("  4. submitted to SLURM with \(backend): \(record.rounds[0].arrays.map { "\($0.array)=\($0.jobID)" }.joined(separator: " ")), final job \(record.rounds[0].finalJob.map(String.init) ?? "-")")
            let (s, view) = try ctx.wait(backend, poll: 0.5)
            status = s
            print("  5. submit to merged: \(String(format: "%.1f", Date().timeIntervalSince(started))) s, \(view?.record.sbatchCalls ?? 0) sbatch calls, \(view?.record.rounds.count ?? 1) round(s)\n")
        } else {
            var o = LocalBackend.Options()
            o.parallel = parallel ?? ProcessInfo.processInfo.activeProcessorCount
            let s = try LocalRun.execute(submitDir, plan: plan, options: o)
            summary = s
            print("  4. ran locally in \(String(format: "%.2f", s.seconds)) s (\(s.elements) jobs, \(o.parallel) at a time) and merged\n")
            status = try SubmissionStatus.read(submitDir)
        }
        print(status.render(showElements: false))
        let registry = try Registry(path: repo.registryPath)
        let count = try registry.count(run: plan.outputRun)
        print("Outputs: \(count) datasets in run \(plan.outputRun), chained into demo/out")
        print("  files:  \(repo.datastoreRoot)/demo/out/\(stamp)/")
        print("  list:   quanta repo query \(shellQuote(repo.root)) --collections demo/out")
        print("  status: quanta status \(shellQuote(submitDir.root))")
        if !status.isComplete {
            print("  some quanta did not succeed: see the table above; after fixing the cause run 'quanta restart \(shellQuote(submitDir.root))'")
        }
        if let summary { try LocalRun.finish(summary, complete: status.isComplete) } else if !status.isComplete { throw ExitCode(1) }
    }

    static func timestamp() -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: Date())
    }
}
