import Foundation
import QuantaButler
import QuantaCore
import QuantaGraphIO
import QuantaScheduler

/// `quanta submit bps.yaml`: a bps submit file as people already have it. The graph is the file's
/// `qgraphFile`, or is built with `pipetask qgraph` from `pipelineYaml` and the payload; the site is
/// `quantaSite`, `site-configs/<computeSite>.yaml`, or `site.<computeSite>` mapped to SLURM terms.
enum BpsSubmit {
    static func plan(bpsPath: String, site siteOverride: String?, out: String?) throws -> String {
        let bps = try BpsConfig.load(path: bpsPath)
        Plan.reportKeys(bps.submit)
        var repoPath = bps.butlerConfig!
        if repoPath.hasSuffix(".yaml") { repoPath = URL(fileURLWithPath: repoPath).deletingLastPathComponent().path }
        let repo = try Repository(root: repoPath)
        let site = try chooseSite(bps, override: siteOverride)
        if siteOverride == nil, bps.quantaSite == nil, site.source.hasSuffix("(site.\(site.name))") {
            print(BpsSubmit.describeSiteMapping(site, bps: bps))
        }
        let outputRun = bps.outputRun ?? "\(bps.output ?? "u/quanta")/run"
        let submitDir = SubmitDirectory(out ?? bps.submitPath ?? FileManager.default.currentDirectoryPath + "/submit/" + outputRun)
        if submitDir.exists {
            throw QuantaError(.usage, "\(submitDir.root): already holds a submission; pass --out with a new directory")
        }
        try FileManager.default.createDirectory(atPath: submitDir.root, withIntermediateDirectories: true)
        let graphPath: String
        if let g = bps.qgraphFile {
            graphPath = g
        } else {
            graphPath = submitDir.root + "/graph.qg"
            try buildGraph(bps, repo: repo.root, outputRun: outputRun, into: graphPath, log: submitDir.root + "/qgraph.log")
        }
        let graph = try GraphFile.read(path: graphPath)
        let req = PlanRequest(graphPath: graphPath, config: bps.submit, site: site, repo: repo, submitDir: submitDir,
                              runQuantumPath: Resources.runQuantum, quantaPath: Resources.executable,
                              templatesDir: try Resources.templates(nil),
                              lsstDriver: Resources.lsstDriver)
        let doc = try Planner.plan(graph, req)
        Plan.reportNotes(doc)
        print(doc.summary, terminator: "")
        return submitDir.root
    }

    /// One line per bps site key saying what it became, for the person who wrote `site.<name>`.
    static func describeSiteMapping(_ site: SiteConfig, bps: BpsConfig) -> String {
        guard let p = site.partitions.first else { return "" }
        var lines = ["site.\(site.name) of \(bps.source) mapped to a \(site.scheduler == .slurm ? "SLURM" : "local") site:"]
        lines.append("  nodes \(p.nodes), cores_per_node \(p.coresPerNode), mem_per_node \(p.memoryPerNodeMB / 1024) GB → partition '\(p.name.isEmpty ? "(SLURM's default)" : p.name)' of \(p.nodes) nodes × \(p.coresPerNode) cores × \(Units.memory(p.memoryPerNodeMB)): each job asks for its own requestCpus/requestMemory within one node (no pilot jobs)")
        if let wall = p.maxWalltime {
            // Parsl's walltime is its blocks' time limit; here each job is its own SLURM job.
            lines.append("  walltime \(Units.slurmTime(wall)) → the partition's time limit, and --time \(Units.slurmTime(site.defaultWalltime ?? wall)) for jobs without requestWalltime")
        }
        if let q = site.qos { lines.append("  qos \(q) → --qos") }
        if let a = site.account { lines.append("  account \(a) → --account") }
        if !site.sbatchOptions.isEmpty { lines.append("  scheduler_options → \(site.sbatchOptions.joined(separator: " ")) on every sbatch") }
        return lines.joined(separator: "\n")
    }

    static func chooseSite(_ bps: BpsConfig, override: String?) throws -> SiteConfig {
        if let name = override ?? bps.quantaSite { return try Resources.site(name) }
        if let name = bps.computeSite, let dir = try? Resources.folder("site-configs", marker: "local.yaml"),
           FileManager.default.fileExists(atPath: "\(dir)/\(name).yaml") {
            return try Resources.site(name)
        }
        let memMB = Int(ProcessInfo.processInfo.physicalMemory / 1_048_576)
        if let s = try bps.site(machine: (ProcessInfo.processInfo.activeProcessorCount, memMB)) {
            if !s.ignoredKeys.isEmpty {
                StandardStreams.error("note: \(bps.source): site.\(s.name): ignoring \(s.ignoredKeys.joined(separator: ", "))\n")
            }
            return s
        }
        throw QuantaError(.invalidConfig, "\(bps.source): no site: set computeSite with a site.<name> section, quantaSite, or pass --site")
    }

    /// `pipetask qgraph` from the bps file's pipeline and payload, with datastore records so jobs
    /// never need the registry.
    static func buildGraph(_ bps: BpsConfig, repo: String, outputRun: String, into path: String, log: String) throws {
        let env = ProcessInfo.processInfo.environment
        guard let pipetask = Spawn.which("pipetask") ?? env["QUANTA_LSST_VENV"].map({ "\($0)/bin/pipetask" }).flatMap({
            FileManager.default.isExecutableFile(atPath: $0) ? $0 : nil
        }) else {
            throw QuantaError(.usage, "\(bps.source): building the graph needs pipetask: activate the LSST environment (or set QUANTA_LSST_VENV), or give qgraphFile")
        }
        guard let inputs = bps.inCollection, let pipeline = bps.pipelineYaml else {
            throw QuantaError(.invalidConfig, "\(bps.source): building the graph needs payload.inCollection and pipelineYaml")
        }
        var args = ["--log-level", "WARNING", "qgraph", "-b", repo, "-i", inputs, "-p", pipeline,
                    "--output-run", outputRun, "--qgraph-datastore-records", "--save-qgraph", path]
        if let o = bps.output { args += ["-o", o] }
        if !bps.dataQuery.isEmpty { args += ["-d", bps.dataQuery] }
        print("Building the graph: pipetask \(args.map(shellQuote).joined(separator: " "))")
        let started = Date()
        let r = try Spawn.capture(pipetask, args)
        try AtomicFile.write("$ pipetask \(args.map(shellQuote).joined(separator: " "))\n\(r.stdout)\(r.stderr)", to: log)
        guard r.status.succeeded, FileManager.default.fileExists(atPath: path) else {
            let line = r.stderr.split(separator: "\n").last { $0.contains("rror") } ?? r.stderr.split(separator: "\n").last ?? "\(r.status)"
            throw QuantaError(.planning, "pipetask qgraph failed: \(line); full output in \(log)")
        }
        print("  built \(path) in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
    }
}
