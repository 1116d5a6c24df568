import ArgumentParser
import Foundation
import QuantaDemo
import QuantaRegistry
import QuantaButler
import QuantaCampaign
import QuantaCore
import QuantaExec
import QuantaGraphIO
import QuantaScheduler
import QuantaReport

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make a synthetic survey, ingest it, and run a 5-task image pipeline (isr → calibrate → makeWarp → assembleCoadd → detectCoadd) locally or on SLURM.",
        discussion: """
        Everything lands in --workdir: camera/ (the raw, bias and flat FITS files), repo/, truth.fits,
        demo.qgn, demo-submit.yaml and submit/. At the end the objects found on the coadds are matched to
        the injected stars (the science check) and PNG previews of the coadds are listed.
        """)

    @Option(name: .long, help: "Where to put the demo (replaced if it holds an earlier demo).")
    var workdir = "quanta-demo"

    @Option(name: .long, help: "Visits per band (two bands, g and r).") var visits = 3
    @Option(name: .long, help: "Detectors per visit (on a near-square grid).") var detectors = 4
    @Option(name: .long, help: "Detector side in pixels.") var size = 128
    @Option(name: .long, help: "Write this many raws corrupt (cut short). 'check-raws' finds them; they stay out of the graph unless --keep-corrupt.")
    var corrupt = 0
    @Flag(name: .long, help: "Put corrupt raws in the graph anyway, to see failures, 'status' and 'restart'.") var keepCorrupt = false
    @Option(name: .long, help: "Random seed of the survey.") var seed: UInt64 = 42
    @Option(name: .long, help: "Site config to plan for (default: local, or local-slurm with --slurm).") var site: String?
    @Flag(name: .long, help: "Submit to the SLURM cluster (scripts/slurm-cluster.sh start) instead of running locally, and wait for the end.")
    var slurm = false
    @OptionGroup var backendOption: BackendOption
    @Option(name: [.customShort("j"), .customLong("jobs")], help: "Jobs at once (default: the number of cores).") var parallel: Int?
    @Flag(name: .long, help: "Write the repository, graph and submit directory, but do not run.") var planOnly = false
    @Flag(name: .long, help: "Run the pipeline as a campaign instead (demo-campaign.yaml): sfp per band, a gate, coadd, then a second run that retention ({keep: 1}) makes the first one's end.")
    var campaign = false

    func validate() throws {
        guard visits > 0, detectors > 0 else { throw ValidationError("--visits and --detectors must be at least 1") }
        guard size >= 32 else { throw ValidationError("--size must be at least 32 pixels") }
        guard corrupt >= 0, corrupt <= visits * 2 * detectors else { throw ValidationError("--corrupt must be between 0 and the number of raws (2 × visits × detectors)") }
        guard !(campaign && planOnly) else { throw ValidationError("--campaign runs the campaign; leave out --plan-only (or write the file and use 'quanta campaign validate')") }
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

        let survey = DemoSurvey(visitsPerBand: visits, detectors: detectors, size: size, corrupt: corrupt, seed: seed)
        print("Quanta demo in \(root)")
        let started = Date()
        let camera = Progress("  writing raws")
        let written = try survey.writeCameraFiles(to: root + "/camera", detectors: detectors) { camera.update($0, $1) }
        camera.done()
        try survey.writeTruth(to: root + "/truth.fits")
        let raws = written.files.filter { URL(fileURLWithPath: $0).lastPathComponent.hasPrefix("raw_") }
        print("  1. camera: \(raws.count) raws (\(survey.design.visits.count) visits in g and r × \(detectors) detectors of \(size)² pixels), \(written.files.count - raws.count) bias and flat frames, \(survey.design.stars.count) stars in truth.fits (\(String(format: "%.1f", Date().timeIntervalSince(started))) s)")

        let bad = RawIngest.check(written.files)
        var toIngest = written.files
        if bad.isEmpty {
            print("     check-raws: all \(written.files.count) files read to the end")
        } else {
            print("     check-raws: \(bad.count) corrupt — \(keepCorrupt ? "kept in the graph (--keep-corrupt)" : "left out of the graph"):")
            for b in bad { print("       \(b.problem.hasPrefix(b.path) ? b.problem : b.path + ": " + b.problem)") }
            if !keepCorrupt { toIngest.removeAll { p in bad.contains { $0.path == p } } }
        }
        let repo = try Repository.create(at: root + "/repo")
        let ingested = try RawIngest.ingest(toIngest, into: repo)
        try survey.registerSkyMap(repo: repo)
        let map = survey.design.skyMap
        print("  2. repository \(repo.root): ingested \(ingested.added.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")); sky map of \(map.patchCount) patches of \(map.patchSize)² pixels")

        if campaign {
            try runCampaign(root: root, repo: repo, survey: survey, started: started)
            return
        }
        let stamp = Self.timestamp()
        let graph = try DemoSurvey.graph(repo: repo, outputRun: "demo/out/\(stamp)", output: "demo/out")
        let graphPath = root + "/demo.\(NativeGraphFormat.fileExtension)"
        try NativeGraphFormat.write(graph, to: graphPath)
        let configPath = root + "/demo-submit.yaml"
        try AtomicFile.write(DemoSurvey.submitConfig, to: configPath)
        let perTask = graph.tasks.indices.map { t in graph.quanta.filter { Int($0.task) == t }.count }
        print("  3. graph \(graphPath): \(graph.quanta.count) quanta (\(zip(graph.tasks, perTask).map { "\($0.0.label) \($0.1)" }.joined(separator: ", ")))")

        let siteName = site ?? (slurm ? "local-slurm" : "local")
        let options = PlanInputs(repo: repo.root, config: configPath, site: siteName)
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
        print("  4. planned \(plan.jobs) jobs in \(plan.arrays.count) arrays (\(arrays)) + merge in \(String(format: "%.3f", plan.planSeconds)) s → \(submitDir.root)")
        if planOnly {
            print("\nRun it with: quanta run \(shellQuote(submitDir.root))")
            return
        }
        var summary: LocalBackend.Summary?
        let status: SubmissionStatus
        if slurm {
            let started = Date()
            let backend = try backendOption.open()
            let ctx = try SubmissionArgument.open(submitDir.root)
            let record = try ctx.submitter(backend).submitAll()
            print("  5. submitted to SLURM with \(backend): \(record.rounds[0].arrays.map { "\($0.array)=\($0.jobID)" }.joined(separator: " ")), final job \(record.rounds[0].finalJob.map(String.init) ?? "-")")
            let (s, view) = try ctx.waitShowingProgress(backend, poll: 0.5)
            status = s
            print("  6. submit to merged: \(String(format: "%.1f", Date().timeIntervalSince(started))) s, \(view?.record.sbatchCalls ?? 0) sbatch calls, \(view?.record.rounds.count ?? 1) round(s)\n")
        } else {
            var o = LocalBackend.Options()
            o.parallel = parallel ?? ProcessInfo.processInfo.activeProcessorCount
            let ctx = try SubmissionArgument.open(submitDir.root)
            let s = try LocalRun.execute(ctx) { try ctx.runLocally(o, progress: $0) }
            summary = s
            print("  5. ran locally in \(String(format: "%.2f", s.seconds)) s (\(s.elements) jobs, \(o.parallel) at a time) and merged\n")
            status = try SubmissionStatus.read(submitDir)
        }
        print(status.render(showElements: false))
        let registry = try repo.openRegistry()
        let count = try registry.count(run: plan.outputRun)
        print("Outputs: \(count) datasets in run \(plan.outputRun), chained into demo/out")
        print("  files:  \(repo.datastoreRoot)/demo/out/\(stamp)/")
        print("  list:   quanta repo query \(shellQuote(repo.root)) --collections demo/out")
        print("  status: quanta status \(shellQuote(submitDir.root))")
        if status.isComplete {
            let check = try ScienceCheck.run(truth: root + "/truth.fits", repo: repo, run: plan.outputRun, design: survey.design)
            let e = JSONEncoder()
            e.outputFormatting = [.prettyPrinted, .sortedKeys]
            e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            try AtomicFile.write(try e.encode(check), to: root + "/science-check.json")
            let t = check.tolerances
            print("\nScience check: objects on the coadds vs the \(survey.design.stars.count) injected stars (coadd SNR ≥ \(Int(t.minSNR)), match within \(t.matchRadiusArcsec)\")")
            TextTable.render(header: ScienceCheck.header, rows: check.table).forEach { print("  " + $0) }
            print("  tolerances: complete ≥ \(Int(t.minCompleteness * 100)) %, median offset ≤ \(t.maxMedianOffsetArcsec)\", |flux bias| ≤ \(Int(t.maxAbsFluxBias * 100)) %, scatter ≤ \(Int(t.maxFluxScatter * 100)) % → \(check.judgeable ? (check.passed ? "passed" : "FAILED") : "too few stars to judge; make a bigger survey") (science-check.json)")
            let previews = try registry.datasets(runs: [plan.outputRun], types: ["deepCoadd_preview"]).map { repo.absolutePath($0.path) }
            if let first = previews.first {
                print("  coadd previews (PNG): \(previews.count), e.g. \(first)")
            }
            if check.judgeable && !check.passed { throw ExitCode(1) }
        }
        // The run as one page: states, failures, resources, timeline, map.
        let reportPath = submitDir.root + "/report.html"
        if var measures = try? RunMeasures.collect(submitDir) {
            measures.footprints = RawFootprints.read(repo: repo)
            try AtomicFile.write(ReportPage.html(measures), to: reportPath)
            print("\nReport: \(reportPath) (open it in a browser)")
        }
        if !status.isComplete {
            print("  some quanta did not succeed: see the table above; after fixing the cause run 'quanta restart \(shellQuote(submitDir.root))'")
        }
        if let summary { try LocalRun.finish(summary, complete: status.isComplete) } else if !status.isComplete { throw ExitCode(1) }
    }

    /// `--campaign`: the same survey through `DemoCampaign`, then the science check on the last run's coadds.
    func runCampaign(root: String, repo: Repository, survey: DemoSurvey, started: Date) throws {
        let siteName = site ?? (slurm ? "local-slurm" : "local")
        print("  3. campaign \(root)/demo-campaign.yaml on site \(siteName): sfp (isr, calibrate) per band → gate → coadd (makeWarp, assembleCoadd, detectCoadd), twice; retention keeps 1 run")
        let outcome = try DemoCampaign.run(root: root, site: siteName, backend: { try backendOption.open(quiet: true) }, note: { print("     " + $0); fflush(nil) })
        for r in outcome.runs { print("     run \(r.number): \(r.state.rawValue) in \(String(format: "%.1f", r.seconds)) s") }
        if let o = outcome.overview { print("\n" + o.text) }
        print("\n  status: quanta campaign status \(DemoCampaign.name) --db \(shellQuote(root + "/campaigns.sqlite"))")
        print("  log:    quanta campaign log \(DemoCampaign.name) --db \(shellQuote(root + "/campaigns.sqlite"))")
        print("  list:   quanta repo query \(shellQuote(repo.root)) --collections \(DemoCampaign.output)/\(outcome.runs.last?.number ?? 1)")
        guard let coaddRun = outcome.coaddRun, outcome.runs.last?.state == .succeeded else { throw ExitCode(1) }
        let check = try ScienceCheck.run(truth: root + "/truth.fits", repo: repo, run: coaddRun, design: survey.design)
        print("\nScience check of \(coaddRun): objects on the coadds vs the \(survey.design.stars.count) injected stars")
        TextTable.render(header: ScienceCheck.header, rows: check.table).forEach { print("  " + $0) }
        print("  → \(check.judgeable ? (check.passed ? "passed" : "FAILED") : "too few stars to judge; make a bigger survey") (\(String(format: "%.1f", Date().timeIntervalSince(started))) s in all)")
        if check.judgeable && !check.passed { throw ExitCode(1) }
    }

    static func timestamp() -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: Date())
    }
}
