#if canImport(Glibc)
import Glibc
#endif
import Foundation
import QuantaButler
import QuantaCore
import QuantaGraphIO

/// Planning from a bps submit file (`quanta submit bps.yaml`, campaigns): a bps submit file as people already have it. The graph is the file's
/// `qgraphFile`, or is built with `pipetask qgraph` from `pipelineYaml` and the payload; the site is
/// `quantaSite`, `site-configs/<computeSite>.yaml`, or `site.<computeSite>` mapped to SLURM terms.
public enum BpsPlanning {
    /// bps submit's command-line flags: each wins over the YAML's value, as in bps.
    public struct Overrides: Sendable {
        public var butlerConfig: String?, pipeline: String?, input: String?, output: String?, outputRun: String?, dataQuery: String?
        public var configs: [String] = [], configFiles: [String] = []
        public var extendRun = false

        public init(butlerConfig: String? = nil, pipeline: String? = nil, input: String? = nil, output: String? = nil,
                    outputRun: String? = nil, dataQuery: String? = nil, configs: [String] = [], configFiles: [String] = [],
                    extendRun: Bool = false) {
            self.butlerConfig = butlerConfig
            self.pipeline = pipeline
            self.input = input
            self.output = output
            self.outputRun = outputRun
            self.dataQuery = dataQuery
            self.configs = configs
            self.configFiles = configFiles
            self.extendRun = extendRun
        }
    }

    /// Plans a bps submit file (building its graph first unless it names one) into a new submit
    /// directory, claiming the output run; returns the directory.
    public static func plan(bpsPath: String, site siteOverride: String?, out: String?, overrides: Overrides = Overrides(),
                            notice: (PlanNotice) -> Void) throws -> SubmitDirectory {
        var bps = try BpsConfig.load(path: bpsPath, validate: false)
        bps.apply(butlerConfig: overrides.butlerConfig, pipelineYaml: overrides.pipeline, inCollection: overrides.input,
                  output: overrides.output, outputRun: overrides.outputRun, dataQuery: overrides.dataQuery)
        try bps.validate()
        bps.qgraphConfigs += overrides.configs.map { "-c=\($0)" } + overrides.configFiles.map { "-C=\($0)" }
        if bps.qgraphFile != nil && (overrides.pipeline != nil || overrides.dataQuery != nil || !bps.qgraphConfigs.isEmpty) {
            throw QuantaError(.usage, "\(bpsPath): qgraphFile names an existing graph; -p, -d, -c, -C and extraQgraphOptions build one")
        }
        PlanService.reportKeys(bps.submit, notice)
        var repoPath = bps.butlerConfig!
        if repoPath.hasSuffix(".yaml") { repoPath = URL(fileURLWithPath: repoPath).deletingLastPathComponent().path }
        let repo = try Repository(root: repoPath)
        let site = try chooseSite(bps, override: siteOverride, notice: notice)
        if siteOverride == nil, bps.quantaSite == nil, site.source.hasSuffix("(site.\(site.name))") {
            notice(.info(describeSiteMapping(site, source: bps.source)))
        }
        let (outputRun, submitDir) = try claim(bps, out: out)
        let graphPath: String
        if let g = bps.qgraphFile {
            graphPath = g
        } else {
            graphPath = submitDir.root + "/graph.qg"
            try buildGraph(bps, repo: repo.root, outputRun: outputRun, extendRun: overrides.extendRun, into: graphPath,
                           log: submitDir.root + "/qgraph.log", notice: notice)
        }
        let graph = try GraphFile.read(path: graphPath)
        var req = PlanRequest(graphPath: graphPath, config: bps.submit, site: site, repo: repo, submitDir: submitDir,
                              runQuantumPath: Installation.runQuantum, quantaPath: Installation.executable,
                              templatesDir: try Installation.templates(nil),
                              lsstDriver: Installation.lsstDriver)
        req.extendRun = overrides.extendRun
        req.claimRun = true
        let doc = try Planner.plan(graph, req)
        PlanService.reportNotes(doc, notice)
        notice(.summary(doc.summary(maxRows: PlanDocument.screenful)))
        return submitDir
    }

    /// The submit directory, claimed with one exclusive `mkdir` before anything is built in it, and
    /// the output run named with it. Four per-band submissions started in the same second get the
    /// same `{timestamp}`: the first takes the name, the others `…-2`, `…-3` (run and directory
    /// alike), so no two share a graph, a directory or a run (issue 14).
    public static func claim(_ bps: BpsConfig, out: String?) throws -> (outputRun: String, dir: SubmitDirectory) {
        let base = bps.outputRun ?? "\(bps.output ?? "u/quanta")/run"
        let cwd = FileManager.default.currentDirectoryPath
        let path = out ?? bps.submitPath ?? cwd + "/submit/" + base
        // Only a name made from {timestamp} is ours to change; a name the person chose is theirs.
        let renameable = out == nil && !bps.timestamp.isEmpty && base.contains(bps.timestamp) && path.contains(base)
        for n in 1...1000 {
            let run = n == 1 ? base : base.replacingOccurrences(of: bps.timestamp, with: "\(bps.timestamp)-\(n)")
            let dir = n == 1 ? path : path.replacingOccurrences(of: base, with: run)
            let parent = URL(fileURLWithPath: dir).deletingLastPathComponent().path
            do { try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true) } catch {
                throw QuantaError(.io, "\(parent): cannot create the directory (\(error.localizedDescription))")
            }
            if mkdir(dir, 0o777) == 0 { return (run, SubmitDirectory(dir)) }
            guard errno == EEXIST else {
                throw QuantaError(.io, "\(dir): cannot create the submit directory (\(String(cString: strerror(errno))))")
            }
            guard renameable else {
                throw QuantaError(.usage, "\(dir): already exists (another submission, or an earlier one); pass --out with a new directory, or leave submitPath and outputRun to bps's {timestamp} defaults")
            }
        }
        throw QuantaError(.usage, "\(path): a thousand submissions of this name in one second; pass --out")
    }

    /// One line per bps site key saying what it became, for the person who wrote `site.<name>`.
    public static func describeSiteMapping(_ site: SiteConfig, source: String) -> String {
        guard let p = site.partitions.first else { return "" }
        var lines = ["site.\(site.name) of \(source) mapped to a \(site.scheduler == .slurm ? "SLURM" : "local") site:"]
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

    public static func chooseSite(_ bps: BpsConfig, override: String?, notice: (PlanNotice) -> Void) throws -> SiteConfig {
        if let name = override ?? bps.quantaSite { return try Installation.site(name) }
        if let name = bps.computeSite, let dir = try? Installation.folder("site-configs", marker: "local.yaml"),
           FileManager.default.fileExists(atPath: "\(dir)/\(name).yaml") {
            return try Installation.site(name)
        }
        let memMB = Int(ProcessInfo.processInfo.physicalMemory / 1_048_576)
        if let s = try bps.site(machine: (ProcessInfo.processInfo.activeProcessorCount, memMB)) {
            if !s.ignoredKeys.isEmpty {
                notice(.note("\(bps.source): site.\(s.name): ignoring \(s.ignoredKeys.joined(separator: ", "))"))
            }
            return s
        }
        throw QuantaError(.invalidConfig, "\(bps.source): no site: set computeSite with a site.<name> section, quantaSite, or pass --site")
    }

    /// `pipetask qgraph` from the bps file's pipeline and payload, with datastore records so jobs
    /// never need the registry.
    public static func buildGraph(_ bps: BpsConfig, repo: String, outputRun: String, extendRun: Bool = false, into path: String, log: String,
                                  notice: (PlanNotice) -> Void) throws {
        guard let inputs = bps.inCollection, let pipeline = bps.pipelineYaml else {
            throw QuantaError(.invalidConfig, "\(bps.source): building the graph needs payload.inCollection and pipelineYaml")
        }
        // -c/-C from the command line ("-c=label:key=value") and extraQgraphOptions, as pipetask takes them.
        var options: [String] = []
        for option in bps.qgraphConfigs {
            if option.hasPrefix("-c=") || option.hasPrefix("-C=") {
                options += [String(option.prefix(2)), String(option.dropFirst(3))]
            } else {
                options.append(option)
            }
        }
        try qgraph(QGraphRequest(repo: repo, inputs: [inputs], pipeline: pipeline, outputRun: outputRun, output: bps.output,
                                 dataQuery: bps.dataQuery.isEmpty ? nil : bps.dataQuery, options: options, extendRun: extendRun),
                   into: path, log: log, source: bps.source, notice: notice)
    }

    /// What `pipetask qgraph` is asked for.
    public struct QGraphRequest: Sendable {
        public var repo: String
        /// Input collections, in search order.
        public var inputs: [String]
        /// A pipeline file, or a subset (`DRP.yaml#step1`, `p.yaml#isr,calibrate`).
        public var pipeline: String
        public var outputRun: String
        public var output: String?
        public var dataQuery: String?
        /// Further arguments as pipetask takes them (`-c label:key=value`, `-C label:file.py`, …).
        public var options: [String]
        public var extendRun: Bool

        public init(repo: String, inputs: [String], pipeline: String, outputRun: String, output: String? = nil, dataQuery: String? = nil,
                    options: [String] = [], extendRun: Bool = false) {
            self.repo = repo
            self.inputs = inputs
            self.pipeline = pipeline
            self.outputRun = outputRun
            self.output = output
            self.dataQuery = dataQuery
            self.options = options
            self.extendRun = extendRun
        }
    }

    /// The LSST command-line tool `name` (`pipetask`, `butler`): on PATH, else in `$QUANTA_LSST_VENV`.
    public static func lsstTool(_ name: String) -> String? {
        Spawn.which(name) ?? ProcessInfo.processInfo.environment["QUANTA_LSST_VENV"].map { "\($0)/bin/\(name)" }.flatMap {
            FileManager.default.isExecutableFile(atPath: $0) ? $0 : nil
        }
    }

    /// Runs `pipetask qgraph` with datastore records (so jobs never need the registry) into `path`,
    /// its whole output into `log`; an error names the last error line and the log. An empty graph
    /// is pipetask's error too.
    public static func qgraph(_ q: QGraphRequest, into path: String, log: String, source: String, notice: (PlanNotice) -> Void) throws {
        guard let pipetask = lsstTool("pipetask") else {
            throw QuantaError(.usage, "\(source): building the graph needs pipetask: activate the LSST environment (or set QUANTA_LSST_VENV), or give a graph file")
        }
        var args = ["--log-level", "WARNING", "qgraph", "-b", q.repo, "-i", q.inputs.joined(separator: ","), "-p", q.pipeline,
                    "--output-run", q.outputRun, "--qgraph-datastore-records", "--save-qgraph", path]
        if let o = q.output { args += ["-o", o] }
        if q.extendRun { args.append("--extend-run") }
        if let d = q.dataQuery, !d.isEmpty { args += ["-d", d] }
        args += q.options
        notice(.info("Building the graph: pipetask \(args.map(shellQuote).joined(separator: " "))"))
        let started = Date()
        let r = try Spawn.capture(pipetask, args)
        try AtomicFile.write("$ pipetask \(args.map(shellQuote).joined(separator: " "))\n\(r.stdout)\(r.stderr)", to: log)
        guard r.status.succeeded, FileManager.default.fileExists(atPath: path) else {
            if r.stderr.contains("QuantumGraph was empty") || r.stderr.contains("QuantumGraph will be empty") {
                throw EmptyGraph(description: "pipetask qgraph made an empty graph: nothing in \(q.inputs.joined(separator: ", ")) matches\(q.dataQuery.map { " \"\($0)\"" } ?? ""); full output in \(log)")
            }
            let line = r.stderr.split(separator: "\n").last { $0.contains("rror") } ?? r.stderr.split(separator: "\n").last ?? "\(r.status)"
            throw QuantaError(.planning, "pipetask qgraph failed: \(line); full output in \(log)")
        }
        notice(.info("  built \(path) in \(String(format: "%.1f", Date().timeIntervalSince(started))) s"))
    }

    /// `pipetask qgraph` found nothing to do (an error for a submission; for a campaign's group, an
    /// empty group).
    public struct EmptyGraph: Error, CustomStringConvertible {
        public var description: String
    }
}
