import ArgumentParser
import Foundation
import QuantaCore
import QuantaReport
import QuantaDemo
import QuantaButler
import QuantaCampaign
import QuantaScheduler

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write one self-contained HTML report of a submission: states, failures grouped with log tails, resources per task, timeline, map by data ID, retries, requested vs used.",
        discussion: """
        No script and no network: open it offline, or put it on a web page. A submission still running gives a
        partial report that says so; manifests that cannot be read are named and the rest reported. Nothing in
        the submit directory changes but the report file.
        """)
    @Argument(help: "Submit directory, or with --campaign the campaign's name.") var dir: String
    @Option(name: .long, help: "The HTML file to write (default: report.html in the submit directory, or beside the campaign's runs).") var out: String?
    @Flag(name: .long, help: "Report the campaign named: each submission of its latest run gets its report, and one page links them.") var campaign = false
    @OptionGroup var database: CampaignDatabaseOption

    func run() throws {
        if campaign { return try campaignReport() }
        let submission = try SubmissionArgument.open(dir)
        let started = Date()
        var measures = try RunMeasures.collect(submission.dir)
        measures.footprints = Self.footprints(measures.plan.repo)
        let path = out ?? submission.dir.root + "/report.html"
        try AtomicFile.write(ReportPage.html(measures), to: path)
        let size = ((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0) / 1024
        print("\(path): \(measures.attempts.count) attempts of \(measures.plan.jobs) jobs, \(measures.status.failures.count) failure groups\(measures.status.active ? ", partial (jobs still running)" : "") — \(size) KB in \(String(format: "%.2f", Date().timeIntervalSince(started))) s")
    }

    /// Where the raws land on the sky, for a Quanta repository (a butler's regions: not read).
    static func footprints(_ repo: String) -> [String: [(ra: Double, dec: Double)]] {
        guard let r = try? Repository(root: repo), r.kind == .quanta else { return [:] }
        return RawFootprints.read(repo: r)
    }

    func campaignReport() throws {
        let store = try database.open()
        let spec = try database.spec(dir, in: store)
        guard let run = try store.runs(campaign: spec.name).last else { throw QuantaError(.usage, "campaign \(spec.name) has no run yet") }
        let overview = try CampaignOverview.build(spec, store: store)
        var links: [(name: String, report: String, summary: String)] = []
        var statuses: [SubmissionStatus] = []
        for g in try store.groups(campaign: spec.name, run: run.number) where FileManager.default.fileExists(atPath: SubmitDirectory(g.submitDir).planJSON) {
            var measures = try RunMeasures.collect(SubmitDirectory(g.submitDir))
            measures.footprints = Self.footprints(measures.plan.repo)
            let page = g.submitDir + "/report.html"
            try AtomicFile.write(ReportPage.html(measures), to: page)
            statuses.append(measures.status)
            links.append(("\(g.step)/\(g.group)", page, "\(measures.plan.quanta) quanta, \(measures.status.failures.count) failure groups"))
        }
        let path = out ?? store.directory + "/runs/\(spec.name)/\(run.number)/report.html"
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let failures = FailureGroups.of(statuses, rule: spec.ruleLabel)
        try AtomicFile.write(ReportPage.campaignIndex(title: "Campaign \(spec.name), run \(run.number)", status: overview.text,
                                                      failures: failures, submissions: links), to: path)
        print("\(path): campaign \(spec.name) run \(run.number), \(links.count) submission reports")
    }
}

struct Tune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Suggest requestMemory, requestCpus and requestWalltime per task from what earlier runs used, as a bps-keys YAML to include.",
        discussion: """
        Memory: the percentile of the successful attempts' peaks × the margin, and never below 1.5 × the limit an
        out-of-memory attempt had; CPUs: the percentile of CPU time over wall time, rounded up; walltime: the
        percentile of wall time × 2, at least 5 minutes. Include the file (includeConfigs), or plan with
        'quanta plan --learn-from SUBMIT…' directly. Reads only; writes only --out.
        """)
    @Argument(help: "Submit directories of earlier runs (with --campaign: the campaign's name).") var dirs: [String]
    @Flag(name: .long, help: "Learn from every submission of the campaign's latest successful run.") var campaign = false
    @OptionGroup var database: CampaignDatabaseOption
    @Option(name: .long, help: "YAML file to write (default: print it).") var out: String?
    @Option(name: .long, help: "Percentile of the measured use (0–1).") var percentile = 0.95
    @Option(name: .long, help: "Margin on top of it.") var margin = 1.2

    func run() throws {
        guard percentile > 0, percentile <= 1, margin >= 1 else { throw ValidationError("--percentile is in (0, 1] and --margin at least 1") }
        var options = RequestLearner.Options()
        options.percentile = percentile
        options.margin = margin
        var paths = dirs
        if campaign {
            guard dirs.count == 1 else { throw ValidationError("--campaign takes one campaign name") }
            let store = try database.open()
            let spec = try database.spec(dirs[0], in: store)
            guard let run = try store.runs(campaign: spec.name).last(where: { $0.state == .succeeded }) else {
                throw QuantaError(.usage, "campaign \(spec.name) has no successful run to learn from yet")
            }
            paths = try store.groups(campaign: spec.name, run: run.number).map(\.submitDir)
                .filter { FileManager.default.fileExists(atPath: SubmitDirectory($0).planJSON) }
        }
        let submissions = try paths.map { try SubmissionArgument.open($0) }
        let runs = try submissions.map { try RunMeasures.collect($0.dir) }
        let learned = RequestLearner.learn(runs, options: options)
        guard !learned.isEmpty else { throw QuantaError(.usage, "no job of \(paths.joined(separator: ", ")) has run to the end yet: nothing to learn from") }
        var clusters = Set<String>()
        for s in submissions where !s.plan.submitConfig.isEmpty {
            if let c = try? SubmitConfig.load(path: s.plan.submitConfig) { clusters.formUnion(c.clusters.map(\.name)) }
        }
        let yaml = RequestLearner.yaml(learned, clusters: clusters, sources: submissions.map(\.dir.root), options: options)
        if let out {
            try AtomicFile.write(yaml, to: out)
            let was = Dictionary(runs.flatMap(\.attempts).map { ($0.label, $0.requestMemoryMB) }, uniquingKeysWith: { _, b in b })
            TextTable.render(header: ["task", "memory", "was", "cpus", "walltime"], rows: learned.map {
                [$0.label, Units.memory($0.memoryMB), was[$0.label].map(Units.memory) ?? "-", String($0.cpus), $0.walltime.map(Units.slurmTime) ?? "-"]
            }).forEach { print($0) }
            print("\(out): include it (includeConfigs) or plan with --learn-from \(paths.map(shellQuote).joined(separator: " "))")
        } else {
            print(yaml, terminator: "")
        }
    }
}
