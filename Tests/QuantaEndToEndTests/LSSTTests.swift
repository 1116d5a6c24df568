import Foundation
import Testing
import QuantaCore
import QuantaTestSupport

/// Against the real LSST middleware from PyPI (scripts/lsst-env.sh) and real graphs built by
/// `pipetask qgraph` (Tests/lsst/make_fixtures.sh). `.ci/run` sets QUANTA_LSST_TESTS=1,
/// QUANTA_LSST_VENV and QUANTA_LSST_FIXTURES; without them these tests are skipped.
enum LSSTKit {
    static let env = ProcessInfo.processInfo.environment
    static let enabled = env["QUANTA_LSST_TESTS"] == "1" && env["QUANTA_LSST_VENV"] != nil && env["QUANTA_LSST_FIXTURES"] != nil
    static var venv: String { env["QUANTA_LSST_VENV"] ?? "" }
    static var fixtures: String { env["QUANTA_LSST_FIXTURES"] ?? "" }
    static let shapes = ["chain", "prereq", "fanout", "many"]
    static var scripts: String { CLI.repoRoot + "/Tests/lsst" }

    static func info(_ shape: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(fixtures)/\(shape)/info.json"))
        return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
    }

    /// A site config that runs jobs in the LSST venv.
    static func site(_ cli: CLI, scheduler: String = "local") throws -> String {
        let partition = scheduler == "slurm"
            ? "  - name: debug\n    nodes: 1\n    coresPerNode: 8\n    memoryPerNode: 8000\n"
            : "  - name: local\n    nodes: 1\n    coresPerNode: auto\n    memoryPerNode: auto\n"
        let yaml = "name: lsst-\(scheduler)\nscheduler: \(scheduler)\npartitions:\n\(partition)environment:\n  - source \(shellQuote(venv))/bin/activate\n"
        let path = cli.path("lsst-\(scheduler).yaml")
        try Data(yaml.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Parsed JSON lines, as a set of canonical strings (key order and number formats normalised).
    static func lines(_ text: String) -> Set<String> {
        Set(text.split(separator: "\n").compactMap { line -> String? in
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)),
                  let data = try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]) else { return nil }
            return String(decoding: data, as: UTF8.self)
        })
    }

    /// `butler query-datasets` of a run: "type id" lines.
    static func datasets(_ cli: CLI, repo: String, run: String) throws -> Set<String> {
        let r = try cli.run(["query-datasets", repo, "--collections", run, "*"], executable: venv + "/bin/butler")
        #expect(r.status == .exited(0), "\(r.output)")
        var out = Set<String>()
        for line in r.stdout.split(separator: "\n") {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            if f.count >= 3, f[1] == Substring(run), UUID(uuidString: String(f[2])) != nil { out.insert("\(f[0]) \(f[2])") }
        }
        return out
    }

    /// `pipetask run -g` of the same graph in a second copy of the repository registers exactly
    /// what Quanta registered in the first (same dataset types and UUIDs).
    static func expectSameAsPipetaskRun(_ cli: CLI, ours: String, theirs: String, graph: String, outputRun: String) throws {
        let reference = try cli.run(["--log-level", "WARNING", "run", "-b", theirs, "-g", graph, "--register-dataset-types"],
                                    executable: venv + "/bin/pipetask")
        #expect(reference.status == .exited(0), "\(reference.output)")
        let a = try datasets(cli, repo: ours, run: outputRun)
        let b = try datasets(cli, repo: theirs, run: outputRun)
        #expect(!a.isEmpty && a == b, "Quanta registered \(a.count), pipetask run \(b.count); only ours: \(a.subtracting(b).prefix(3)), only theirs: \(b.subtracting(a).prefix(3))")
    }

    /// A private copy of a fixture (repo and graph), so runs never touch the shared fixtures.
    static func copy(_ shape: String, into cli: CLI, as name: String) throws -> String {
        let dest = cli.path(name)
        let r = try cli.run(["-a", "\(fixtures)/\(shape)/repo", dest], executable: "/bin/cp")
        #expect(r.status == .exited(0), "\(r.output)")
        return dest
    }
}

@Suite(.enabled(if: LSSTKit.enabled, "needs the LSST venv and fixtures: scripts/lsst-env.sh, Tests/lsst/make_fixtures.sh"))
struct LSSTGraphTests {
    @Test(arguments: LSSTKit.shapes)
    func readerMatchesPipeBase(shape: String) throws {
        let cli = try CLI()
        let graph = "\(LSSTKit.fixtures)/\(shape)/graph.qg"
        let api = try cli.run([LSSTKit.scripts + "/export_graph.py", graph], executable: LSSTKit.venv + "/bin/python")
        #expect(api.status == .exited(0), "\(api.output)")
        let ours = try cli.run(["graph", "dump", graph])
        #expect(ours.status == .exited(0), "\(ours.output)")
        let a = LSSTKit.lines(api.stdout), b = LSSTKit.lines(ours.stdout)
        #expect(a.count > 1 && a == b, "\(shape): \(a.subtracting(b).count) lines only in pipe_base's view, \(b.subtracting(a).count) only in Quanta's; e.g. \(a.subtracting(b).first ?? "-") vs \(b.subtracting(a).first ?? "-")")
        let info = try cli.run(["graph", "info", graph])
        #expect(info.status == .exited(0) && info.stdout.contains("pipe_base .qg v1"), "\(info.output)")
        let expected = try LSSTKit.info(shape)
        #expect(info.stdout.contains("\(expected["quanta"] as? Int ?? -1) quanta"), "\(info.stdout)")
    }

    @Test func badGraphFilesGiveClearErrors() throws {
        let cli = try CLI()
        let good = try Data(contentsOf: URL(fileURLWithPath: "\(LSSTKit.fixtures)/many/graph.qg"))
        func expectError(_ name: String, _ bytes: Data, _ words: [String]) throws {
            let path = cli.path(name)
            try bytes.write(to: URL(fileURLWithPath: path))
            // validate reads every quantum block (info reads only the header and pipeline).
            let r = try cli.run(["graph", "validate", path])
            #expect(r.status != .exited(0), "\(name) was accepted")
            #expect(r.stderr.contains(path), "\(name): the error names the file: \(r.stderr)")
            for w in words { #expect(r.stderr.contains(w), "\(name): '\(w)' missing from: \(r.stderr)") }
            #expect(!r.stderr.contains("Fatal error"), "\(name) crashed: \(r.stderr)")
        }
        try expectError("half.qg", good.prefix(good.count / 2), ["truncated"])
        var corrupt = good
        let middle = corrupt.count / 2
        for k in 0..<64 { corrupt[middle + k] ^= 0x5a }
        try expectError("corrupt.qg", corrupt, ["corrupt"])
        try expectError("old.qgraph", Data("qgraph4\u{00}\u{01}\u{02}pickled-stuff".utf8), ["old .qgraph format"])
        try expectError("text.qg", Data("PK\u{03}\u{04} not really a zip archive, just text that starts like one".utf8), ["ZIP"])
    }
}

@Suite(.enabled(if: LSSTKit.enabled, "needs the LSST venv and fixtures"), .serialized)
struct LSSTRunTests {
    /// Quanta (local backend, clustered or not) registers exactly what `pipetask run` registers.
    @Test(arguments: [false, true])
    func localRunMatchesPipetaskRun(clustered: Bool) throws {
        let cli = try CLI()
        let shape = clustered ? "fanout" : "chain"
        let info = try LSSTKit.info(shape)
        let graph = "\(LSSTKit.fixtures)/\(shape)/graph.qg"
        let outputRun = info["outputRun"] as? String ?? ""
        let ours = try LSSTKit.copy(shape, into: cli, as: "ours")
        let theirs = try LSSTKit.copy(shape, into: cli, as: "theirs")
        let site = try LSSTKit.site(cli)
        var args = ["plan", graph, "--repo", ours, "--site", site, "--out", "sub"]
        if clustered {
            // Every task of a visit in one job.
            try Data("cluster:\n  perVisit:\n    pipetasks: \(try taskLabels(graph, cli).joined(separator: ", "))\n    dimensions: visit\n".utf8)
                .write(to: URL(fileURLWithPath: cli.path("bps.yaml")))
            args += ["--config", "bps.yaml"]
        }
        let plan = try cli.run(args)
        #expect(plan.status == .exited(0), "\(plan.output)")
        let run = try cli.run(["run", "sub"])
        #expect(run.status == .exited(0), "\(run.output)")
        try LSSTKit.expectSameAsPipetaskRun(cli, ours: ours, theirs: theirs, graph: graph, outputRun: outputRun)
    }

    /// The same on the real SLURM cluster: one sbatch per array, the final job merges with the butler.
    @Test(.enabled(if: SlurmCluster.enabled, "needs the local SLURM cluster too"))
    func slurmRunMatchesPipetaskRun() throws {
        let cli = try CLI()
        let shape = "chain"
        let info = try LSSTKit.info(shape)
        let graph = "\(LSSTKit.fixtures)/\(shape)/graph.qg"
        let outputRun = info["outputRun"] as? String ?? ""
        let ours = try LSSTKit.copy(shape, into: cli, as: "ours")
        let theirs = try LSSTKit.copy(shape, into: cli, as: "theirs")
        let site = try LSSTKit.site(cli, scheduler: "slurm")
        let r = try cli.run(["submit", graph, "--repo", ours, "--site", site, "--out", "sub", "--wait", "--poll", "0.5"])
        #expect(r.status == .exited(0), "\(r.output)")
        #expect(r.stdout.contains("Merge: ") && !r.stdout.contains("Merge: not run"), "\(r.stdout)")
        try LSSTKit.expectSameAsPipetaskRun(cli, ours: ours, theirs: theirs, graph: graph, outputRun: outputRun)
    }

    /// A bps submit YAML as people have it (pipelineYaml, payload, computeSite + site.<name>,
    /// ${ENV}): Quanta builds the graph with pipetask qgraph and runs it on SLURM.
    @Test(.enabled(if: SlurmCluster.enabled, "needs the local SLURM cluster too"))
    func bpsYAMLRunsUnchanged() throws {
        let cli = try CLI()
        let info = try LSSTKit.info("chain")
        let repo = try LSSTKit.copy("chain", into: cli, as: "repo")
        let yaml = """
        pipelineYaml: \(info["pipeline"] as? String ?? "")
        wmsServiceClass: lsst.ctrl.bps.parsl.ParslService
        computeSite: slurm
        site:
          slurm:
            class: lsst.ctrl.bps.parsl.sites.Slurm
            nodes: 1
            cores_per_node: 8
            mem_per_node: 7
            walltime: "01:00:00"
            scheduler_options: "#SBATCH --partition=debug"
        operator: tester
        payload:
          payloadName: bpstest
          butlerConfig: ${BPSTEST_REPO}
          inCollection: Cam1/defaults
          dataQuery: "detector IN (0, 1)"
        requestMemory: 1024
        cluster:
          perDetector:
            pipetasks: isr, calibrate
            dimensions: visit, detector
        """
        try Data(yaml.utf8).write(to: URL(fileURLWithPath: cli.path("bps.yaml")))
        var env = ["BPSTEST_REPO": repo]
        env["PATH"] = LSSTKit.venv + "/bin:" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        env["VIRTUAL_ENV"] = LSSTKit.venv
        let r = try cli.run(["submit", "bps.yaml", "--out", "sub", "--wait", "--poll", "0.5"], environment: env)
        #expect(r.status == .exited(0), "\(r.output)")
        #expect(r.stdout.contains("Building the graph: pipetask"), "\(r.stdout)")
        #expect(r.stdout.contains("partition") && r.stdout.contains("debug"), "\(r.stdout)")
        let status = try cli.run(["status", "sub", "--json"])
        let json = (try JSONSerialization.jsonObject(with: Data(status.stdout.utf8))) as? [String: Any] ?? [:]
        let outputRun = json["outputRun"] as? String ?? ""
        #expect(outputRun.hasPrefix("u/tester/bpstest/"), "\(outputRun)")
        let quanta = (json["quanta"] as? [String: Int]) ?? [:]
        #expect(quanta["succeeded"] == 2 * 3 * 2 + 3 && quanta.values.reduce(0, +) == quanta["succeeded"], "\(quanta)")
        let registered = try LSSTKit.datasets(cli, repo: repo, run: outputRun)
        #expect(registered.filter { $0.hasPrefix("calexp_like ") }.count == 6, "\(registered.count) registered")
    }

    /// `bps submit` through the ctrl_bps plugin (one line in the bps YAML) to merged outputs on the
    /// local cluster: Tests/lsst/bps_submit.sh does it with the real ctrl_bps and checks every
    /// predicted output is registered. `parsl`: a config written for the Parsl plugin (its
    /// site.slurm block, no quantaSite) with only wmsServiceClass changed (issue 14).
    @Test(.enabled(if: SlurmCluster.enabled, "needs the local SLURM cluster too"), arguments: ["clustered", "parsl"])
    func bpsSubmitWithThePlugin(variant: String) throws {
        let cli = try CLI()
        let r = try cli.run(["--only", variant, LSSTKit.venv, LSSTKit.fixtures, cli.path("bps-work")],
                            executable: LSSTKit.scripts + "/bps_submit.sh", environment: ["QUANTA_BIN": CLI.quanta, "QUANTA_BPS_POLL": "2"])
        #expect(r.status == .exited(0), "\(r.output.suffix(3000))")
        #expect(r.stdout.contains("SUCCEEDED"), "\(r.stdout.suffix(2000))")
    }

    func taskLabels(_ graph: String, _ cli: CLI) throws -> [String] {
        let dump = try cli.run(["graph", "dump", graph]).stdout
        let last = dump.split(separator: "\n").last.map(String.init) ?? "{}"
        let summary = (try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any])?["summary"] as? [String: Any]
        return ((summary?["tasks"] as? [String: Any]) ?? [:]).keys.sorted()
    }
}

/// A butler whose registry is on the project's PostgreSQL server (issue 18): the chain fixture
/// copied into it (same UUIDs), run by Quanta — jobs through `pipetask run-qbb`, the merge through
/// `butler transfer-from-graph` or `aggregate-graph` — registers what `pipetask run` registers in
/// the SQLite fixture.
@Suite(.enabled(if: LSSTKit.enabled && TestPostgres.enabled, "needs the LSST venv and fixtures and the project's PostgreSQL"))
struct LSSTPostgresTests {
    @Test(arguments: ["transfer-from-graph", "aggregate-graph"])
    func localRunOnAPostgreSQLButlerMatchesPipetaskRun(merge: String) throws {
        let cli = try CLI()
        let info = try LSSTKit.info("chain")
        let graph = "\(LSSTKit.fixtures)/chain/graph.qg"
        let outputRun = info["outputRun"] as? String ?? ""
        let namespace = "butler_\(UUID().uuidString.prefix(8).lowercased())"
        defer { TestPostgres.drop("\(TestPostgres.url)?schema=\(namespace)") }
        let copy = try cli.run([LSSTKit.scripts + "/copy_to_postgres.py", "\(LSSTKit.fixtures)/chain/repo", cli.path("ours"), TestPostgres.url, namespace],
                               executable: LSSTKit.venv + "/bin/python")
        #expect(copy.status == .exited(0), "\(copy.output)")
        let butlerYAML = try String(contentsOfFile: cli.path("ours/butler.yaml"), encoding: .utf8)
        #expect(butlerYAML.contains("postgresql://") && butlerYAML.contains(namespace), "\(butlerYAML)")
        let theirs = try LSSTKit.copy("chain", into: cli, as: "theirs")
        try Data("lsstMerge: \(merge)\n".utf8).write(to: URL(fileURLWithPath: cli.path("bps.yaml")))
        let plan = try cli.run(["plan", graph, "--repo", cli.path("ours"), "--site", try LSSTKit.site(cli), "--out", "sub", "--config", "bps.yaml"])
        #expect(plan.status == .exited(0), "\(plan.output)")
        let run = try cli.run(["run", "sub"])
        #expect(run.status == .exited(0), "\(run.output)")
        try LSSTKit.expectSameAsPipetaskRun(cli, ours: cli.path("ours"), theirs: theirs, graph: graph, outputRun: outputRun)
        let secret = ProcessInfo.processInfo.environment["PGPASSWORD"] ?? ""
        for file in cli.allFiles().map(cli.path) where !file.hasPrefix(cli.path("theirs")) {
            guard let data = FileManager.default.contents(atPath: file) else { continue }
            #expect(data.range(of: Data(secret.utf8)) == nil, "the password is in \(file)")
        }
    }
}
