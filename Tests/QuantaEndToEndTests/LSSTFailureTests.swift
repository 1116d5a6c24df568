import Foundation
import Testing
import QuantaCore

/// Issue 13: with quanta failing, raising NoWorkFound and recovering, Quanta ends where `pipetask
/// run` ends — the same registered (dataset type, data ID) set and UUIDs, the same output chain,
/// the same per-task outcome counts (pipetask's summary: success / failure / skipped), and datastore
/// records with the files' real sizes. The reference runs are real `pipetask run`s of the same graph
/// in a second copy of the repository.
enum LSSTCompare {
    /// What a run left in a repository (Tests/lsst/outcomes.py).
    struct Outcome: Equatable {
        var registered: [String]
        var ids: [String]
        var chain: [String]?
        var sizes: [String: Int]
        var quanta: [String: [String: Int]]
    }

    static func outcome(_ cli: CLI, repo: String, run: String, chain: String, summary: String? = nil) throws -> Outcome {
        var args = [LSSTKit.scripts + "/outcomes.py", repo, run, chain]
        if let summary { args += ["--summary", summary] }
        let r = try cli.run(args, executable: LSSTKit.venv + "/bin/python")
        #expect(r.status == .exited(0), "\(r.output)")
        let j = (try JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any] ?? [:]
        return Outcome(registered: j["registered"] as? [String] ?? [], ids: j["ids"] as? [String] ?? [],
                       chain: j["chain"] as? [String], sizes: j["sizes"] as? [String: Int] ?? [:],
                       quanta: j["quanta"] as? [String: [String: Int]] ?? [:])
    }

    /// A graph of fixture `shape` built with `-c` overrides (the mock task's failure injection).
    static func graph(_ cli: CLI, shape: String, name: String, configs: [String]) throws -> (graph: String, run: String, chain: String, inputs: String) {
        let info = try LSSTKit.info(shape)
        let inputs = (info["inputCollections"] as? [String])?.joined(separator: ",") ?? (info["inputCollections"] as? String ?? "")
        let chain = "u/quanta/\(name)", run = chain + "/run", graph = cli.path(name + ".qg")
        var args = ["--log-level", "WARNING", "qgraph", "-b", "\(LSSTKit.fixtures)/\(shape)/repo", "-i", inputs, "-o", chain,
                    "--output-run", run, "-p", info["pipeline"] as? String ?? ""]
        for c in configs { args += ["-c", c] }
        args += ["--qgraph-datastore-records", "--save-qgraph", graph]
        let r = try cli.run(args, executable: LSSTKit.venv + "/bin/pipetask")
        #expect(r.status == .exited(0), "\(r.output)")
        return (graph, run, chain, inputs)
    }

    /// `pipetask run -g` into `repo` with a summary; its exit status and the outcome.
    static func pipetask(_ cli: CLI, repo: String, graph: String, run: String, chain: String, inputs: String, extra: [String] = [],
                         summary: String) throws -> (Int32, Outcome) {
        let r = try cli.run(["--log-level", "WARNING", "run", "-b", repo, "-g", graph, "-i", inputs, "-o", chain, "--register-dataset-types",
                             "--summary", summary] + extra, executable: LSSTKit.venv + "/bin/pipetask")
        let code: Int32 = { if case .exited(let c) = r.status { return c }; return -1 }()
        return (code, try outcome(cli, repo: repo, run: run, chain: chain, summary: summary))
    }

    /// Quanta's per-task counts in pipetask's summary words: succeeded and no work are "success"
    /// (NoWorkFound is a success to pipetask), failed is "failure", blocked (FAILED_DEP) is "skipped".
    static func quantaCounts(_ cli: CLI, _ sub: String) throws -> [String: [String: Int]] {
        let r = try cli.run(["status", sub, "--json"])
        let json = (try JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any] ?? [:]
        var out: [String: [String: Int]] = [:]
        for t in json["tasks"] as? [[String: Any]] ?? [] {
            let label = t["label"] as? String ?? "?"
            for (state, n) in t["counts"] as? [String: Int] ?? [:] where n > 0 {
                let word = ["succeeded": "success", "noWork": "success", "failed": "failure", "blocked": "skipped"][state] ?? state
                out[label, default: [:]][word, default: 0] += n
            }
        }
        return out
    }

    /// The comparison every test ends with; `label` says which run.
    static func expectEqual(_ ours: Outcome, _ theirs: Outcome, quanta: [String: [String: Int]], _ label: String) {
        #expect(!ours.registered.isEmpty && ours.registered == theirs.registered,
                "\(label): registered (type, data ID) differ — only Quanta: \(Set(ours.registered).subtracting(theirs.registered).sorted().prefix(4)), only pipetask: \(Set(theirs.registered).subtracting(ours.registered).sorted().prefix(4))")
        #expect(ours.ids == theirs.ids, "\(label): UUIDs differ")
        #expect(ours.chain == theirs.chain, "\(label): chain \(ours.chain ?? []) vs pipetask's \(theirs.chain ?? [])")
        #expect(quanta == theirs.quanta, "\(label): per-task outcomes \(quanta) vs pipetask's \(theirs.quanta)")
        #expect(ours.sizes["negative"] == 0 && ours.sizes["wrong"] == 0 && ours.sizes["records"] == theirs.sizes["records"],
                "\(label): datastore records \(ours.sizes) vs pipetask's \(theirs.sizes)")
    }

    /// Every task of the graph in one job per visit.
    static func perVisitCluster(_ cli: CLI, tasks: [String]) throws -> String {
        let path = cli.path("cluster.yaml")
        try Data("cluster:\n  perVisit:\n    pipetasks: \(tasks.joined(separator: ", "))\n    dimensions: visit\n".utf8)
            .write(to: URL(fileURLWithPath: path))
        return path
    }
}

/// One failure-injection case: the fixture shape, the `-c` overrides, whether Quanta clusters.
struct FailureCase: CustomStringConvertible, Sendable {
    var name: String
    var shape: String
    var configs: [String]
    var clusterTasks: [String]?
    /// The merge: `transfer-from-graph` (default) or `aggregate-graph`.
    var merge: String?
    var description: String { name }

    static let all: [FailureCase] = [
        // A per-detector task fails; the per-visit gather reads its outputs as `multiple=True`.
        FailureCase(name: "calibrate-fails", shape: "chain", configs: ["calibrate:fail_condition='detector IN (1) AND visit IN (1002)'"]),
        // The same inside clustered jobs (isr, calibrate and gather of a visit in one job).
        FailureCase(name: "calibrate-fails-clustered", shape: "chain", configs: ["calibrate:fail_condition='detector IN (1) AND visit IN (1002)'"],
                    clusterTasks: ["isr", "calibrate", "gather"]),
        // NoWorkFound in a task feeding a `multiple` gather: the gather runs on what was made.
        FailureCase(name: "calibrate-no-work", shape: "chain",
                    configs: ["calibrate:fail_condition='detector IN (1) AND visit IN (1002)'", "calibrate:fail_exception='lsst.pipe.base.NoWorkFound'"]),
        // NoWorkFound feeding a single required input: the consumer has no work either.
        FailureCase(name: "isr-no-work", shape: "chain",
                    configs: ["isr:fail_condition='detector IN (2) AND visit IN (1001)'", "isr:fail_exception='lsst.pipe.base.NoWorkFound'"]),
        // A failure inside a clustered job of the fan-out shape (two branches and a gather per visit).
        FailureCase(name: "characterize-fails-clustered", shape: "fanout", configs: ["characterize:fail_condition='detector IN (1) AND visit IN (1001)'"],
                    clusterTasks: ["characterize", "measure", "bkgmodel", "gather"]),
        // Prerequisite inputs (bias, flat, camera from calibration collections) with isr failing.
        FailureCase(name: "isr-fails-prereq", shape: "prereq", configs: ["isr:fail_condition='detector IN (2) AND visit IN (1003)'"]),
        // 984 quanta, per-visit jobs of 41 quanta, two detectors of one visit failing in calibrate.
        FailureCase(name: "calibrate-fails-many-clustered", shape: "many", configs: ["calibrate:fail_condition='detector IN (3, 17) AND visit IN (1010)'"],
                    clusterTasks: ["isr", "calibrate", "gather"]),
    ]

    /// The merge through `butler aggregate-graph` (ctrl_bps v30's default) registers the same.
    static let aggregate = FailureCase(name: "calibrate-fails-aggregate", shape: "chain",
                                       configs: ["calibrate:fail_condition='detector IN (1) AND visit IN (1002)'"], merge: "aggregate-graph")
}

@Suite(.enabled(if: LSSTKit.enabled, "needs the LSST venv and fixtures"), .serialized)
struct LSSTFailureTests {
    @Test(arguments: FailureCase.all)
    func failuresEndAsPipetaskRunEnds(_ c: FailureCase) throws {
        try expectSameEnd(c)
    }

    @Test func aggregateGraphMergeEndsAsPipetaskRunEnds() throws {
        try expectSameEnd(FailureCase.aggregate)
    }

    func expectSameEnd(_ c: FailureCase) throws {
        let cli = try CLI()
        let (graph, run, chain, inputs) = try LSSTCompare.graph(cli, shape: c.shape, name: c.name, configs: c.configs)
        let ours = try LSSTKit.copy(c.shape, into: cli, as: "ours")
        let theirs = try LSSTKit.copy(c.shape, into: cli, as: "theirs")
        let (refCode, reference) = try LSSTCompare.pipetask(cli, repo: theirs, graph: graph, run: run, chain: chain, inputs: inputs, summary: cli.path("ref.json"))
        var args = ["plan", graph, "--repo", ours, "--site", try LSSTKit.site(cli), "--out", "sub"]
        // The default retry policy: a quantum that raised exits 1, which it does not retry
        // (pipetask run does not retry either).
        var config = ""
        if let tasks = c.clusterTasks { config += "cluster:\n  perVisit:\n    pipetasks: \(tasks.joined(separator: ", "))\n    dimensions: visit\n" }
        if let merge = c.merge { config += "lsstMerge: \(merge)\n" }
        try Data(config.utf8).write(to: URL(fileURLWithPath: cli.path("submit.yaml")))
        args += ["--config", cli.path("submit.yaml")]
        let plan = try cli.run(args)
        #expect(plan.status == .exited(0), "\(plan.output)")
        let r = try cli.run(["run", "sub"])
        // Same verdict as pipetask's exit status: 1 when a quantum failed, 0 when only NoWorkFound.
        #expect(r.status == .exited(refCode), "\(c.name): quanta run \(r.status), pipetask run exit \(refCode): \(r.output.suffix(2500))")
        let mine = try LSSTCompare.outcome(cli, repo: ours, run: run, chain: chain)
        LSSTCompare.expectEqual(mine, reference, quanta: try LSSTCompare.quantaCounts(cli, "sub"), c.name)
        let status = try cli.run(["status", "sub"]).stdout
        if reference.quanta.values.contains(where: { $0["failure"] != nil }) {
            // Each failed and blocked quantum is named with its task and data ID; a blocked one names its upstream.
            #expect(status.contains("failed") && status.contains("visit="), "\(status)")
            #expect(status.contains("upstream "), "\(status)")
        } else {
            #expect(status.contains("no work"), "\(status)")
        }
        print("\(c.name): pipetask \(reference.quanta), Quanta \(try LSSTCompare.quantaCounts(cli, "sub")); \(reference.registered.count) datasets registered by each")
    }

    /// A corrupt raw makes isr fail and blocks what follows; with the raw restored, `quanta
    /// restart` reaches what `pipetask run --extend-run --skip-existing --clobber-outputs` reaches,
    /// and no file registered before the restart is rewritten (a stale one is unregistered first).
    @Test(arguments: [false, true])
    func restartRecoversAsPipetaskExtendRun(clustered: Bool) throws {
        try recover(clustered: clustered, onSlurm: false)
    }

    /// The same on the real SLURM cluster, clustered: `quanta submit --wait` (one sbatch per
    /// array, retry rounds, the final job merges), then `quanta restart --wait`, whose clobber
    /// runs before the new round is queued.
    @Test(.enabled(if: SlurmCluster.enabled, "needs the local SLURM cluster too"))
    func restartOnSlurmRecoversAsPipetaskExtendRun() throws {
        try recover(clustered: true, onSlurm: true)
    }

    func recover(clustered: Bool, onSlurm: Bool) throws {
        let cli = try CLI()
        let name = (clustered ? "recover-clustered" : "recover") + (onSlurm ? "-slurm" : "")
        let (graph, run, chain, inputs) = try LSSTCompare.graph(cli, shape: "chain", name: name, configs: [])
        let ours = try LSSTKit.copy("chain", into: cli, as: "ours")
        let theirs = try LSSTKit.copy("chain", into: cli, as: "theirs")
        // One raw of visit 1002, detector 1, garbled in both copies.
        let find = try cli.run([ours, "-name", "raw_like_Cam1_1_1002.json", "-o", "-name", "raw_like_Cam1_1002_1.json"], executable: "/usr/bin/find")
        let rawOurs = find.stdout.split(separator: "\n").first.map(String.init) ?? ""
        #expect(!rawOurs.isEmpty, "no raw file found: \(find.output)")
        let rawTheirs = theirs + rawOurs.dropFirst(ours.count)
        let good = try Data(contentsOf: URL(fileURLWithPath: rawOurs))
        for path in [rawOurs, rawTheirs] { try Data("{ not json".utf8).write(to: URL(fileURLWithPath: path)) }

        let (code1, ref1) = try LSSTCompare.pipetask(cli, repo: theirs, graph: graph, run: run, chain: chain, inputs: inputs, summary: cli.path("ref1.json"))
        #expect(code1 != 0)
        let wait = ["--wait", "--poll", "0.5"]
        var args = [onSlurm ? "submit" : "plan", graph, "--repo", ours, "--site", try LSSTKit.site(cli, scheduler: onSlurm ? "slurm" : "local"), "--out", "sub"]
        if clustered { args += ["--config", try LSSTCompare.perVisitCluster(cli, tasks: ["isr", "calibrate", "gather"])] }
        if onSlurm {
            let r = try cli.run(args + wait)
            #expect(r.status == .exited(1), "a quantum failed: \(r.output.suffix(2500))")
        } else {
            #expect(try cli.run(args).status == .exited(0))
            #expect(try cli.run(["run", "sub"]).status == .exited(1))
        }
        let mine1 = try LSSTCompare.outcome(cli, repo: ours, run: run, chain: chain)
        let counts1 = try LSSTCompare.quantaCounts(cli, "sub")
        // A quantum that raised is not retried under the default policy (retryUnlessExit: [1, 2]):
        // run-qbb's exit code 1 is the quantum's. (It was read as 0, and retried five times.)
        let status1 = (try JSONSerialization.jsonObject(with: Data(try cli.run(["status", "sub", "--json", "--exit-zero"]).stdout.utf8))) as? [String: Any] ?? [:]
        let failedJobs = (status1["elements"] as? [[String: Any]] ?? []).filter { $0["state"] as? String == "failed" }
        #expect(failedJobs.count == 1 && failedJobs.allSatisfy { $0["attempts"] as? Int == 1 }, "\(failedJobs)")
        LSSTCompare.expectEqual(mine1, ref1, quanta: counts1, "\(name), first run")

        // Every registered file as it is now.
        func files() throws -> [String: (inode: Int, mtime: Date)] {
            var out: [String: (Int, Date)] = [:]
            let listing = try cli.run(["-c", """
                import sqlite3, sys
                for i, p in sqlite3.connect(sys.argv[1] + '/gen3.sqlite3').execute('select dataset_id, path from file_datastore_records'):
                    print((i.hex() if isinstance(i, bytes) else str(i)).replace('-', ''), p)
                """, ours], executable: LSSTKit.venv + "/bin/python")
            for line in listing.stdout.split(separator: "\n") {
                let f = line.split(separator: " ", maxSplits: 1).map(String.init)
                guard f.count == 2, !f[1].hasPrefix("/"), f[1].hasPrefix("u/") else { continue }
                let a = try FileManager.default.attributesOfItem(atPath: ours + "/" + f[1])
                out[f[0]] = ((a[.systemFileNumber] as? Int) ?? 0, (a[.modificationDate] as? Date) ?? .distantPast)
            }
            return out
        }
        let before = try files()

        try good.write(to: URL(fileURLWithPath: rawOurs))
        try good.write(to: URL(fileURLWithPath: rawTheirs))
        let (code2, ref2) = try LSSTCompare.pipetask(cli, repo: theirs, graph: graph, run: run, chain: chain, inputs: inputs,
                                                         extra: ["--output-run", run, "--extend-run", "--skip-existing", "--clobber-outputs"],
                                                         summary: cli.path("ref2.json"))
        #expect(code2 == 0)
        let restart = try cli.run(["restart", "sub"] + (onSlurm ? wait : []))
        #expect(restart.status == .exited(0), "\(restart.output.suffix(2500))")
        let mine2 = try LSSTCompare.outcome(cli, repo: ours, run: run, chain: chain)
        // The registry after recovery: pipetask's, and a clean run's (every quantum succeeded).
        #expect(mine2.registered == ref2.registered && mine2.ids == ref2.ids && mine2.chain == ref2.chain,
                "after restart: only Quanta \(Set(mine2.registered).subtracting(ref2.registered).sorted().prefix(4)), only pipetask \(Set(ref2.registered).subtracting(mine2.registered).sorted().prefix(4))")
        #expect(mine2.sizes["negative"] == 0 && mine2.sizes["wrong"] == 0, "\(mine2.sizes)")
        let counts = try LSSTCompare.quantaCounts(cli, "sub")
        #expect(counts.values.allSatisfy { $0.keys.sorted() == ["success"] }, "\(counts)")
        // Nothing registered before was rewritten while registered: each file is the same file,
        // or its dataset was unregistered (clobbered) before the rerun wrote a new one.
        let clobbered = (try? FileManager.default.contentsOfDirectory(atPath: cli.path("sub/logs/lsst")))?
            .filter { $0.hasPrefix("clobber.") && $0.hasSuffix(".log") }
            .map { cli.read(cli.path("sub/logs/lsst/" + $0)) }.joined() ?? ""
        let after = try files()
        var rewritten: [String] = []
        for (id, was) in before {
            guard let now = after[id], now.inode != was.inode || now.mtime != was.mtime else { continue }
            let uuid = [8, 4, 4, 4, 12].reduce(into: (String(), id[...])) { acc, n in
                acc.0 += (acc.0.isEmpty ? "" : "-") + acc.1.prefix(n); acc.1 = acc.1.dropFirst(n)
            }.0
            if !clobbered.contains(uuid) { rewritten.append(uuid) }
        }
        #expect(rewritten.isEmpty, "registered files rewritten in place by the restart: \(rewritten)")
        if !clustered && !onSlurm {
            // Remaking what is downstream of a succeeded job: an LSST butler's rerun would skip it
            // (--skip-existing), so it is refused with one line before anything runs.
            let down = try cli.run(["rerun", "sub", "--job", "isr:0", "--force", "--downstream"])
            #expect(down.status != .exited(0) && down.stderr.contains("LSST butler repository"), "\(down.output)")
            #expect(try files().mapValues(\.inode) == after.mapValues(\.inode), "a refused rerun changed a file")
        }
        print("\(name): first run pipetask \(ref1.quanta) / Quanta \(counts1); after recovery \(ref2.registered.count) datasets each")
    }
}

/// Issue 14: a survey team's per-band (here per-visit) bps submissions, started at the same
/// instant into one output, never share a submit directory, a graph or a run; each registers its
/// own datasets, and together exactly what one `pipetask run` of the union query registers.
@Suite(.enabled(if: LSSTKit.enabled, "needs the LSST venv and fixtures"), .serialized)
struct LSSTSubmitTests {
    /// The survey team's bps config as written for the Parsl plugin (site.slurm: nodes 7,
    /// cores_per_node 20, mem_per_node 100, walltime 48:00:00) and their bps command line, with
    /// `quanta submit` on the local SLURM cluster: the site is mapped with a line saying how,
    /// -b -p -i -o -d and -c reach the graph, the 48 h walltime is capped to the partition's
    /// MaxTime with a note, and the run ends as it should (a -c injected failure included).
    @Test(.enabled(if: SlurmCluster.enabled, "needs the local SLURM cluster too"))
    func theTeamsConfigAndCommandLineRunUnchanged() throws {
        let cli = try CLI()
        let info = try LSSTKit.info("chain")
        let repo = try LSSTKit.copy("chain", into: cli, as: "repo")
        try Data("""
        wmsServiceClass: lsst.ctrl.bps.parsl.ParslService
        computeSite: slurm
        site:
          slurm:
            class: lsst.ctrl.bps.parsl.sites.Slurm
            nodes: 7
            cores_per_node: 20
            mem_per_node: 100
            walltime: "48:00:00"
        payload:
          payloadName: step1
        """.utf8).write(to: URL(fileURLWithPath: cli.path("team.yaml")))
        var env = ["PATH": LSSTKit.venv + "/bin:" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")]
        env["VIRTUAL_ENV"] = LSSTKit.venv
        let r = try cli.run(["submit", "-b", repo, "-p", info["pipeline"] as? String ?? "", "-i", "Cam1/defaults", "-o", "u/team/step1",
                             "-d", "visit IN (1001, 1002)", "-c", "calibrate:fail_condition='detector IN (0) AND visit IN (1002)'",
                             "team.yaml", "--wait", "--poll", "0.5"], environment: env)
        #expect(r.status == .exited(1), "the -c failure makes the run fail: \(r.output.suffix(3000))")
        #expect(r.stdout.contains("site.slurm of") && r.stdout.contains("walltime 2-00:00:00"), "\(r.stdout)")
        #expect(r.stderr.contains("MaxTime"), "\(r.stderr)")
        let plans = (FileManager.default.enumerator(atPath: cli.path("submit"))?.allObjects as? [String] ?? []).filter { $0.hasSuffix("/plan.json") }
        #expect(plans.count == 1, "\(plans)")
        let sub = cli.path("submit/" + (plans.first ?? "").dropLast("/plan.json".count))
        let st = try cli.run(["status", sub, "--json"])
        #expect(st.status == .exited(1))
        let status = (try JSONSerialization.jsonObject(with: Data(st.stdout.utf8))) as? [String: Any] ?? [:]
        #expect((status["outputRun"] as? String ?? "").hasPrefix("u/team/step1/"), "\(status["outputRun"] ?? "-")")
        let counts = try LSSTCompare.quantaCounts(cli, sub)
        #expect(counts == ["isr": ["success": 8], "calibrate": ["success": 7, "failure": 1], "gather": ["success": 1, "skipped": 1]], "\(counts)")
    }

    @Test func submissionsStartedTogetherNeverCollide() throws {
        try startTogether(scheduler: "local")
    }

    /// The same on the local SLURM cluster: three submissions' arrays and final jobs in the queue at
    /// once, each merging into its own run of the one output chain.
    @Test(.enabled(if: SlurmCluster.enabled, "needs the local SLURM cluster too"))
    func submissionsStartedTogetherNeverCollideOnSlurm() throws {
        try startTogether(scheduler: "slurm")
    }

    /// Two submissions given one explicit run name at the same instant: the run is claimed in the
    /// butler registry before any job starts, so exactly one runs and the other is refused with the
    /// way out, writing nothing into the repository.
    @Test func oneRunNameGivenTwiceIsClaimedByOne() throws {
        let cli = try CLI()
        let info = try LSSTKit.info("chain")
        let repo = try LSSTKit.copy("chain", into: cli, as: "repo")
        let site = try LSSTKit.site(cli)
        for v in [1001, 1002] {
            try Data("""
            pipelineYaml: \(info["pipeline"] as? String ?? "")
            payload:
              payloadName: same
              butlerConfig: \(repo)
              inCollection: Cam1/defaults
              dataQuery: "visit = \(v)"
            """.utf8).write(to: URL(fileURLWithPath: cli.path("bps-\(v).yaml")))
        }
        let pids = try [1001, 1002].map { try cli.launch(["submit", "bps-\($0).yaml", "--site", site, "-o", "u/ci/same", "--output-run", "u/ci/same/run", "--out", "sub-\($0)"], log: cli.path("submit-\($0).log")) }
        var codes: [Int32] = []
        for pid in pids { var st: Int32 = 0; waitpid(pid, &st, 0); codes.append(st) }
        let logs = [1001, 1002].map { cli.read(cli.path("submit-\($0).log")) + cli.read(cli.path("submit-\($0).log.err")) }
        #expect(codes.filter { $0 == 0 }.count == 1, "exactly one runs: \(codes) \(logs.map { $0.suffix(1200) })")
        let refused = logs.first { $0.contains("output run 'u/ci/same/run' already exists") }
        #expect(refused?.contains("another submission has claimed it") == true && refused?.contains("--extend-run") == true, "\(logs.map { $0.suffix(1200) })")
        let loser = codes[0] == 0 ? 1002 : 1001
        #expect(!FileManager.default.fileExists(atPath: cli.path("sub-\(loser)/plan.json")), "the refused submission planned nothing")
        // The run holds the winner's visit only.
        let mine = try LSSTCompare.outcome(cli, repo: repo, run: "u/ci/same/run", chain: "u/ci/same")
        let visitsSeen = Set(mine.registered.compactMap { line -> String? in
            guard let r = line.range(of: "visit=") else { return nil }
            return String(line[r.upperBound...].prefix(4))
        })
        #expect(visitsSeen == [codes[0] == 0 ? "1001" : "1002"], "\(visitsSeen)")
        // A third, asking to extend the run, is let in (pipetask qgraph --extend-run builds it).
        let extend = try cli.run(["submit", "bps-\(loser).yaml", "--site", site, "-o", "u/ci/same", "--output-run", "u/ci/same/run", "--out", "sub-extend", "--extend-run"])
        #expect(extend.status == .exited(0), "\(extend.output.suffix(2000))")
        let both = try LSSTCompare.outcome(cli, repo: repo, run: "u/ci/same/run", chain: "u/ci/same")
        #expect(both.registered.count > mine.registered.count, "\(both.registered.count) vs \(mine.registered.count)")
    }

    func startTogether(scheduler: String) throws {
        let cli = try CLI()
        let info = try LSSTKit.info("chain")
        let repo = try LSSTKit.copy("chain", into: cli, as: "repo")
        let site = try LSSTKit.site(cli, scheduler: scheduler)
        let visits = [1001, 1002, 1003]
        for v in visits {
            try Data("""
            pipelineYaml: \(info["pipeline"] as? String ?? "")
            operator: ci
            numberOfRetries: 0
            payload:
              payloadName: pervisit
              butlerConfig: \(repo)
              inCollection: Cam1/defaults
              dataQuery: "visit = \(v)"
            """.utf8).write(to: URL(fileURLWithPath: cli.path("bps-\(v).yaml")))
        }
        // All at once: the same second, so the same {timestamp} in every default run name.
        let wait = scheduler == "slurm" ? ["--wait", "--poll", "0.5"] : []
        let pids = try visits.map { try cli.launch(["submit", "bps-\($0).yaml", "--site", site] + wait, log: cli.path("submit-\($0).log")) }
        for (v, pid) in zip(visits, pids) {
            var st: Int32 = 0
            waitpid(pid, &st, 0)
            #expect(st == 0, "visit \(v): exit \(st): \(cli.read(cli.path("submit-\(v).log")).suffix(1500)) \(cli.read(cli.path("submit-\(v).log.err")).suffix(1500))")
        }
        let plans = (FileManager.default.enumerator(atPath: cli.path("submit"))?.allObjects as? [String] ?? []).filter { $0.hasSuffix("/plan.json") }
        #expect(plans.count == visits.count, "\(plans)")
        var union = Set<String>()
        var runs = Set<String>()
        for plan in plans {
            let sub = cli.path("submit/" + plan.dropLast("/plan.json".count))
            let status = (try JSONSerialization.jsonObject(with: Data(try cli.run(["status", sub, "--json"]).stdout.utf8))) as? [String: Any] ?? [:]
            let run = status["outputRun"] as? String ?? ""
            runs.insert(run)
            let mine = try LSSTCompare.outcome(cli, repo: repo, run: run, chain: "u/ci/pervisit")
            // Only one visit's data IDs in each run (init-outputs have none).
            let visitsSeen = Set(mine.registered.compactMap { line -> String? in
                guard let r = line.range(of: "visit=") else { return nil }
                return String(line[r.upperBound...].prefix(4))
            })
            #expect(visitsSeen.count == 1, "\(run) holds visits \(visitsSeen)")
            #expect(mine.sizes["negative"] == 0)
            union.formUnion(mine.registered)
        }
        #expect(runs.count == visits.count, "run names collided: \(runs)")
        // The union is one pipetask run of the union query.
        let (graph, run, chain, inputs) = try LSSTCompare.graph(cli, shape: "chain", name: "union", configs: [])
        let theirs = try LSSTKit.copy("chain", into: cli, as: "theirs")
        let (code, reference) = try LSSTCompare.pipetask(cli, repo: theirs, graph: graph, run: run, chain: chain, inputs: inputs, summary: cli.path("ref.json"))
        #expect(code == 0)
        #expect(union == Set(reference.registered), "only Quanta: \(union.subtracting(reference.registered).sorted().prefix(4)), only pipetask: \(Set(reference.registered).subtracting(union).sorted().prefix(4))")
    }
}
