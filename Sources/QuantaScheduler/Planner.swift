import Foundation
import QuantaRegistry
import Mustache
import QuantaButler
import QuantaCore

/// Everything `quanta plan` needs, resolved by the command layer.
public struct PlanRequest: Sendable {
    public var graphPath: String
    public var config: SubmitConfig
    public var site: SiteConfig
    public var repo: Repository
    public var submitDir: SubmitDirectory
    public var runQuantumPath: String
    public var quantaPath: String
    public var templatesDir: String
    /// Overrides of the graph's own metadata.
    public var outputRun: String?
    public var output: String?
    /// `python/quanta_lsst/run_job.py`, for LSST graphs.
    public var lsstDriver: String?
    /// Add to an output run that already exists (pipetask's --extend-run).
    public var extendRun = false
    /// Claims the output run in an LSST repository (`RunClaim`) once the plan is known to be good
    /// and before anything is written (`quanta submit`, `quanta plan --claim-run`).
    public var claimRun = false
    /// Requests learned from history, already applied to `config`; listed in plan.txt.
    public var learned: [LearnedRequest] = []

    public init(graphPath: String, config: SubmitConfig, site: SiteConfig, repo: Repository, submitDir: SubmitDirectory,
                runQuantumPath: String, quantaPath: String, templatesDir: String, outputRun: String? = nil, output: String? = nil,
                lsstDriver: String? = nil) {
        self.lsstDriver = lsstDriver
        self.graphPath = graphPath
        self.config = config
        self.site = site
        self.repo = repo
        self.submitDir = submitDir
        self.runQuantumPath = runQuantumPath
        self.quantaPath = quantaPath
        self.templatesDir = templatesDir
        self.outputRun = outputRun
        self.output = output
    }
}

/// graph → clustered jobs → arrays → submit directory.
public enum Planner {
    public enum Stage: String, Sendable {
        case validate, cluster, arrays
        case snapshot = "snapshot + scripts"
        case summary
    }

    public static func plan(_ graph: QuantumGraph, _ req: PlanRequest,
                            progress: (Stage) -> Void = { _ in }) throws -> PlanDocument {
        let started = Date()
        let dir = req.submitDir
        let fm = FileManager.default
        if fm.fileExists(atPath: dir.planJSON) || fm.fileExists(atPath: dir.snapshot) {
            throw QuantaError(.usage, "\(dir.root): already holds a submission; a submit directory is never reused — choose a new --out")
        }
        progress(.validate)
        let order = try graph.validate(source: req.graphPath)
        guard let outputRun = req.outputRun ?? graph.outputRun, !outputRun.isEmpty else {
            throw QuantaError(.planning, "\(req.graphPath): the graph names no output run; pass --output-run")
        }
        let lsst = graph.metadata["lsstGraph"] != nil
        if lsst {
            guard req.repo.kind == .butler else {
                throw QuantaError(.planning, "\(req.repo.root): an LSST graph runs against the butler repository it was built from (a directory with butler.yaml), not a Quanta repository")
            }
            if req.outputRun != nil {
                throw QuantaError(.planning, "\(req.graphPath): an LSST graph's output run is fixed when it is built ('pipetask qgraph --output-run'); drop --output-run")
            }
        } else {
            guard req.repo.kind == .quanta else {
                throw QuantaError(.planning, "\(req.repo.root): a butler repository runs LSST graphs (.qg); for this graph use a Quanta repository ('quanta repo create')")
            }
            let existing = try req.repo.openRegistry().count(run: outputRun)
            if existing > 0 && !req.extendRun {
                throw QuantaError(.planning, "\(req.repo.root): output run '\(outputRun)' already holds \(existing) datasets; a submission writes a new run — pass --output-run with a new name, or --extend-run to add to it")
            }
            try PlanChecks.inputs(graph, repo: req.repo, source: req.graphPath)
        }
        var notes = try req.config.checkLabels(graph.tasks.map(\.label), strict: !lsst)
        let executions = try lsst ? lsstExecutions(graph, req) : taskExecutions(graph, req.config)
        progress(.cluster)
        let clustered = try Clustering.cluster(graph, config: req.config, order: order)
        progress(.arrays)
        var plan = try ArrayPlanner.plan(clustered, site: req.site)
        let submission = URL(fileURLWithPath: dir.root).lastPathComponent
        for a in plan.arrays.indices {
            plan.arrays[a].retry = RetryPolicy(req.config.settings(forLabel: plan.arrays[a].label))
            plan.arrays[a].request = SlurmRequest.array(plan.arrays[a], submission: submission, site: req.site)
        }
        let untimed = plan.arrays.filter { $0.resources.walltime == nil }.map(\.label)
        if !untimed.isEmpty && req.site.scheduler == .slurm {
            notes.append("warning: no requestWalltime for \(Array(Set(untimed)).sorted().joined(separator: ", ")): SLURM gives those jobs the partition's default time limit; set requestWalltime (globally, under pipetask.<label> or cluster.<name>)")
        }

        if lsst && req.claimRun { try RunClaim.lsst(repo: req.repo.root, run: outputRun, extend: req.extendRun, site: req.site, driver: req.lsstDriver) }
        for sub in [dir.root, dir.scripts, dir.logs, dir.manifests] {
            do { try fm.createDirectory(atPath: sub, withIntermediateDirectories: true) } catch {
                throw QuantaError(.io, "\(sub): cannot create (\(error.localizedDescription))")
            }
        }
        let output = req.output ?? graph.metadata["output"]
        let inputs = (graph.metadata["inputCollections"] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        progress(.snapshot)
        var meta = SnapshotMeta(submission: submission, repo: req.repo.root, datastoreRoot: req.repo.datastoreRoot,
                                outputRun: outputRun, output: output, inputCollections: inputs,
                                graph: URL(fileURLWithPath: req.graphPath).standardizedFileURL.path,
                                validation: req.config.validation)
        meta.repoID = try req.repo.ensureID() ?? ""
        var runGraph = graph
        if let override = req.outputRun, let old = graph.outputRun, override != old, let i = runGraph.runs.firstIndex(of: old) {
            runGraph.runs[i] = override
            // Outputs in another run are other datasets: new UUIDs, as LSST's `pipetask update-graph-run`
            // gives them. Kept, a second run of the same graph would find its outputs "already
            // registered" (in the first run) and register none in its own.
            let run = Int32(i)
            var uuids = UUIDGenerator()
            for d in runGraph.datasets.indices where runGraph.datasets[d].run == run { runGraph.datasets[d].id = uuids.next() }
        }
        try PlanChecks.outputPaths(runGraph, repo: req.repo, source: req.graphPath)
        // The snapshot and the scripts read the plan and write different files: one core each.
        let mergeDeps = plan.arrays.map { ArrayDependency(array: $0.name, kind: .afterany) }
        let finalPlan = plan
        let finalJob = SlurmRequest.finalJob(submission: submission, site: req.site, settings: req.config.finalJob,
                                             outputs: graph.quantumOutputs.count)
        _ = try Parallel.both({
            try Snapshot.write(path: dir.snapshot, meta: meta, graph: runGraph, plan: finalPlan, repo: req.repo, tasks: executions)
        }, {
            try AtomicFile.write(req.site.yamlText, to: dir.siteCopy)
            try renderScripts(plan: finalPlan, mergeDependencies: mergeDeps, req: req, submission: submission,
                              quantumCount: graph.quanta.count, finalJob: finalJob)
        })
        progress(.summary)

        var doc = PlanDocument(submission: submission, created: Timestamp.iso8601(started),
                               graph: meta.graph, repo: req.repo.root, outputRun: outputRun, output: output,
                               site: req.site.name, siteConfig: req.site.source, submitConfig: req.config.source,
                               quanta: graph.quanta.count, jobs: clustered.jobs.count, arrays: plan.arrays,
                               merge: .init(dependencies: mergeDeps),
                               ignoredConfigKeys: req.config.ignoredKeys + req.site.ignoredKeys.map { "site:\($0)" },
                               planSeconds: Date().timeIntervalSince(started))
        doc.lsstMerge = lsst ? (req.config.lsstMerge ?? "transfer-from-graph") : nil
        for l in req.learned {
            notes.append("requests from history: \(l.label) \(Units.memory(l.memoryMB)), \(l.cpus) cpu\(l.walltime.map { ", \(Units.slurmTime($0))" } ?? "") — \(l.why)")
        }
        doc.notes = notes.isEmpty ? nil : notes
        doc.finalJob = finalJob
        try AtomicFile.write(doc.summary, to: dir.planText)
        try AtomicFile.write(try doc.encoded(), to: dir.planJSON)
        return doc
    }

    /// LSST graphs: every task through the job's one `pipetask run-qbb` (the driver script in
    /// `python/quanta_lsst`, run by the site's Python environment).
    static func lsstExecutions(_ graph: QuantumGraph, _ req: PlanRequest) throws -> [String: TaskExecution] {
        guard let driver = req.lsstDriver else {
            throw QuantaError(.planning, "cannot find python/quanta_lsst/run_job.py next to the quanta executable; set QUANTA_HOME to the Quanta checkout")
        }
        return Dictionary(uniqueKeysWithValues: graph.tasks.map { ($0.label, TaskExecution(executor: .lsst, command: driver, builtin: nil)) })
    }

    /// How each task runs: `builtin` when a built-in task is named, `command` when a command template is.
    static func taskExecutions(_ graph: QuantumGraph, _ config: SubmitConfig) throws -> [String: TaskExecution] {
        var out: [String: TaskExecution] = [:]
        for t in graph.tasks {
            let s = config.settings(forTask: t.label)
            let executor = s.executor ?? (s.builtin != nil ? .builtin : s.command != nil ? .command : nil)
            switch executor {
            case .builtin?:
                guard let b = s.builtin else {
                    throw QuantaError(.invalidConfig, "\(config.source): task '\(t.label)' uses the builtin executor but names no task; set pipetask.\(t.label).builtin")
                }
                guard BuiltinTaskNames.all.contains(b) else {
                    throw QuantaError(.invalidConfig, "\(config.source): pipetask.\(t.label).builtin: no built-in task '\(b)'; they are \(BuiltinTaskNames.all.joined(separator: ", "))")
                }
                out[t.label] = TaskExecution(executor: .builtin, command: nil, builtin: b)
            case .command?:
                guard let c = s.command, !c.isEmpty else {
                    throw QuantaError(.invalidConfig, "\(config.source): task '\(t.label)' uses the command executor but has no command; set pipetask.\(t.label).command")
                }
                try CommandTemplate(c).check(task: t, source: config.source)
                out[t.label] = TaskExecution(executor: .command, command: c, builtin: nil)
            default:
                throw QuantaError(.invalidConfig, "\(config.source): task '\(t.label)' has no way to run; set pipetask.\(t.label).command (a command template) or pipetask.\(t.label).builtin")
            }
        }
        return out
    }

    static func template(_ name: String, in dir: String) throws -> MustacheTemplate {
        let path = "\(dir)/\(name).mustache"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw QuantaError(.io, "\(path): template missing; point --templates (or QUANTA_TEMPLATES) at the project's templates/ folder")
        }
        do { return try MustacheTemplate(string: text) } catch {
            throw QuantaError(.invalidConfig, "\(path): not a valid mustache template (\(error))")
        }
    }

    static func renderScripts(plan: ArrayPlan, mergeDependencies: [ArrayDependency], req: PlanRequest,
                              submission: String, quantumCount: Int, finalJob: SlurmRequest) throws {
        let site = req.site
        let arrayT = try template("array.sbatch", in: req.templatesDir)
        let mergeT = try template("merge.sbatch", in: req.templatesDir)
        let submitT = try template("submit.sh", in: req.templatesDir)
        var common: [String: Any] = [
            "submission": shellQuote(submission),
            "runQuantum": shellQuote(req.runQuantumPath),
            "quantaExecutable": shellQuote(req.quantaPath),
            "siteConfig": req.site.source.replacingOccurrences(of: "\n", with: " "),
            "environment": guardedEnvironment(site),
        ]
        if let v = site.umask { common["umask"] = v }

        var variable: [String: String] = [:]
        var submitArrays: [[String: Any]] = []
        for (a, array) in plan.arrays.enumerated() {
            var ctx = common
            ctx["name"] = array.name
            ctx["label"] = PathSanitizer.safeName(array.label)
            let request = array.request ?? SlurmRequest.array(array, submission: submission, site: site)
            ctx["sbatch"] = request.sbatchOptions(stdout: "logs/\(request.logStem).out", stderr: "logs/\(request.logStem).err")
            ctx["arraySpec"] = array.arraySpec
            ctx["size"] = String(array.size)
            ctx["jobs"] = String(array.jobCount)
            ctx["quanta"] = String(array.quanta)
            if let p = array.packing {
                ctx["packArguments"] = "--pack \(p.jobsPerElement) --pack-jobs \(p.jobs) --pack-cpus \(p.job.cpus)"
                ctx["packing"] = "\(p.jobsPerElement) jobs side by side per node, each \(Units.memory(p.job.memoryMB)) and \(p.job.cpus) cpu\(p.job.cpus == 1 ? "" : "s")"
            }
            try writeScript(arrayT.render(ctx), to: req.submitDir.script(array: array.name))
            variable[array.name] = "job_\(a)"
            var entry: [String: Any] = ["name": array.name, "variable": "job_\(a)"]
            if !array.dependencies.isEmpty { entry["dependency"] = dependencyString(array.dependencies, variable) }
            submitArrays.append(entry)
        }
        var mctx = common
        mctx["sbatch"] = finalJob.sbatchOptions(stdout: "logs/\(finalJob.logStem).out", stderr: "logs/\(finalJob.logStem).err")
        try writeScript(mergeT.render(mctx), to: req.submitDir.script(array: "merge"))

        var sctx: [String: Any] = [
            "submission": shellQuote(submission), "arrays": submitArrays, "arrayCount": String(plan.arrays.count),
            "jobCount": String(plan.clustered.jobs.count), "quantumCount": String(quantumCount),
        ]
        if !mergeDependencies.isEmpty { sctx["mergeDependency"] = dependencyString(mergeDependencies, variable) }
        try writeScript(submitT.render(sctx), to: req.submitDir.submitScript)
    }

    /// The site's `environment:` lines, each of which stops the job when it fails, quoting the
    /// line (issue 12: a missing loadLSST.bash went unnoticed and the job "succeeded"). Exit 2:
    /// not retried by bps's default retryUnlessExit, since the set-up, not the node, is wrong. A
    /// line that is only part of a compound command (`if …; then`) cannot be guarded alone and is
    /// left as it is.
    public static func guardedEnvironment(_ site: SiteConfig) -> [String] {
        site.environment.map { line in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#"), let check = try? Spawn.run("/bin/bash", ["-n", "-c", line], environment: [:]),
                  check.succeeded, !trimmed.hasSuffix("&") else { return line }
            let where_ = site.source.replacingOccurrences(of: "\n", with: " ")
            return "\(line) || { printf 'quanta: the site environment line failed (exit %s): %s (fix environment: in %s)\\n' \"$?\" \(shellQuote(line)) \(shellQuote(where_)) >&2; exit 2; }"
        }
    }

    /// `aftercorr:${job_0},afterany:${job_1}` — only generated variable names, never user text.
    static func dependencyString(_ deps: [ArrayDependency], _ variable: [String: String]) -> String {
        deps.map { "\($0.kind.rawValue):${\(variable[$0.array]!)}" }.joined(separator: ",")
    }

    static func writeScript(_ text: String, to path: String) throws {
        try AtomicFile.write(text, to: path)
        // Executable, within the process umask (the site's): not world-readable where it says so.
        let mask = umask(0)
        umask(mask)
        chmod(path, 0o755 & ~mask)
    }
}
