import Foundation
import Testing
import QuantaButler
import QuantaCore
import QuantaGraphIO

/// Issue 12: nothing wrong is ever registered, nothing is silently ignored. Each test reproduces
/// one reported break through the built binaries.
@Suite(.serialized) struct TrustTests {
    /// One task `copy` (in → out) per visit value; inputs at `in/<n>.txt`, registered.
    func makeGraph(_ cli: CLI, values: [String], register: Bool = true) throws -> QuantumGraph {
        #expect(try cli.run(["repo", "create", "repo"]).status == .exited(0))
        var b = GraphBuilder(universe: ["instrument", "visit"], metadata: ["outputRun": "u/t/run", "output": "u/t", "inputCollections": "in"])
        b.addDatasetType("in", dimensions: ["instrument", "visit"], storageClass: "Text")
        b.addDatasetType("out", dimensions: ["instrument", "visit"], storageClass: "Text")
        b.addTask(TaskNode(label: "copy", dimensions: ["instrument", "visit"], inputTypes: ["in"], outputTypes: ["out"]))
        try FileManager.default.createDirectory(atPath: cli.path("repo/datastore/in"), withIntermediateDirectories: true)
        for (n, v) in values.enumerated() {
            let id = DataID([("instrument", .string("Cam")), ("visit", .string(v))])
            let loc = "in/\(n).txt"
            try Data("input \(n)\n".utf8).write(to: URL(fileURLWithPath: cli.path("repo/datastore/" + loc)))
            b.addQuantum(task: "copy", dataID: id, inputs: [b.dataset("in", id, run: "in", location: loc)],
                         outputs: [b.dataset("out", id, run: "u/t/run")])
        }
        try NativeGraphFormat.write(b.graph, to: cli.path("g.qgn"))
        if register { try cli.registerInputs(b.graph, repo: "repo") }
        try Data("pipetask:\n  copy: {command: \"cp {input:in} {output:out}\"}\n".utf8).write(to: URL(fileURLWithPath: cli.path("submit.yaml")))
        return b.graph
    }

    func plan(_ cli: CLI) throws -> CLI.Result {
        try cli.run(["plan", "g.qgn", "--repo", "repo", "--config", "submit.yaml", "--out", "sub"])
    }

    /// Item 2: values that used to sanitise to one file name each get their own file.
    @Test func differentDataIDsNeverShareAFile() throws {
        let cli = try CLI()
        let values = ["a/b", "a_b", "new\nline", "new_line", "..", "%2E%2E"]
        _ = try makeGraph(cli, values: values)
        #expect(try plan(cli).status == .exited(0))
        let run = try cli.run(["run", "sub"])
        #expect(run.status == .exited(0), "\(run.output)")
        let outputs = try cli.datasets(repo: cli.path("repo"), collection: "u/t/run")
        #expect(outputs.count == values.count)
        #expect(Set(outputs.map { $0["path"] as! String }).count == values.count, "\(outputs.map { $0["path"]! })")
        for d in outputs {
            let visit = try DataID(json: d["dataID"] as! String)["visit"]!.description
            let n = values.firstIndex(of: visit)!
            #expect(cli.read(cli.path("repo/datastore/") + (d["path"] as! String)) == "input \(n)\n", "\(visit)")
        }
    }

    /// Item 2, the planner's half: a custom template that drops a dimension is refused at plan
    /// time, naming both data IDs.
    @Test func aTemplateThatMapsTwoOutputsToOneFileIsRefused() throws {
        let cli = try CLI()
        _ = try makeGraph(cli, values: ["1", "2"])
        let config = cli.path("repo/quanta-repo.yaml")
        let text = cli.read(config).replacingOccurrences(of: "{run}/{datasetType}/{datasetType}_{dataId}.{ext}", with: "{run}/{datasetType}/{instrument}.{ext}")
        try Data(text.utf8).write(to: URL(fileURLWithPath: config))
        let r = try plan(cli)
        #expect(r.status != .exited(0))
        #expect(r.stderr.contains("out {instrument=Cam, visit=1} and out {instrument=Cam, visit=2} the same file"), "\(r.stderr)")
        #expect(r.stderr.contains("quanta-repo.yaml"))
    }

    /// Item 1: records appended to a manifest are refused; what the plan predicted is registered.
    @Test func theMergeRegistersOnlyWhatThePlanPredicted() throws {
        let cli = try CLI()
        _ = try makeGraph(cli, values: ["1", "2"])
        #expect(try plan(cli).status == .exited(0))
        #expect(try cli.run(["run", "sub", "--no-merge"]).status == .exited(0))
        let manifestPath = cli.path("sub/manifests/copy/0.json")
        var manifest = try JSONSerialization.jsonObject(with: Data(cli.read(manifestPath).utf8)) as! [String: Any]
        var quanta = manifest["quanta"] as! [[String: Any]]
        var outputs = quanta[0]["outputs"] as! [[String: Any]]
        let good = outputs[0]
        let hostnameSize = (try FileManager.default.attributesOfItem(atPath: "/etc/hostname")[.size] as! Int)
        var escape = good
        escape["id"] = UUID().uuidString.lowercased()
        escape["path"] = "../../../../../../../../../etc/hostname"
        escape["size"] = hostnameSize
        var newRun = good
        newRun["id"] = UUID().uuidString.lowercased()
        newRun["run"] = "evil/run"
        var intoInputs = good
        intoInputs["id"] = UUID().uuidString.lowercased()
        intoInputs["type"] = "in"
        intoInputs["run"] = "in"
        intoInputs["dataID"] = DataID([("instrument", .string("Cam")), ("visit", .string("9"))]).json
        var otherPath = good
        otherPath["path"] = "in/1.txt"
        otherPath["size"] = 8
        outputs += [escape, newRun, intoInputs, otherPath]
        quanta[0]["outputs"] = outputs
        manifest["quanta"] = quanta
        try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: manifestPath))

        let merge = try cli.run(["merge", "sub"])
        #expect(merge.status == .exited(1), "\(merge.output)")
        #expect(merge.stdout.contains("4 refused"), "\(merge.stdout)")
        #expect(merge.stdout.contains("etc/hostname': the plan predicts no such output for this job"), "\(merge.stdout)")
        #expect(merge.stdout.contains("at 'in/1.txt': listed twice"), "\(merge.stdout)")
        // The two predicted outputs are registered, nothing else: no new run, nothing in "in".
        #expect(try cli.datasets(repo: cli.path("repo"), collection: "u/t/run").count == 2)
        #expect(try cli.datasets(repo: cli.path("repo"), collection: "in").count == 2)
        let collections = try cli.run(["repo", "collections", "repo"]).stdout
        #expect(collections.contains("u/t/run"), "\(collections)")
        #expect(!collections.contains("evil/run"), "\(collections)")
        let registered = try cli.datasets(repo: cli.path("repo"), collection: "u/t/run").map { $0["path"] as! String }
        #expect(!registered.contains { $0.contains("..") })
    }

    /// Item 8: inputs the repository does not hold stop the plan; a repository replaced after the
    /// plan is refused by every job and by the merge.
    @Test func planningChecksInputsAndJobsRefuseAReplacedRepository() throws {
        let cli = try CLI()
        let graph = try makeGraph(cli, values: ["1", "2"], register: false)
        let r = try plan(cli)
        #expect(r.status != .exited(0))
        #expect(r.stderr.contains("2 of the graph's 2 overall inputs are not registered in"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: cli.path("sub/plan.json")))

        try cli.registerInputs(graph, repo: "repo")
        try FileManager.default.removeItem(atPath: cli.path("repo/datastore/in/1.txt"))
        let gone = try plan(cli)
        #expect(gone.status != .exited(0))
        #expect(gone.stderr.contains("1 overall inputs are registered but their files are missing"), "\(gone.stderr)")
        try Data("input 1\n".utf8).write(to: URL(fileURLWithPath: cli.path("repo/datastore/in/1.txt")))
        let ok = try plan(cli)
        #expect(ok.status == .exited(0), "\(ok.output)")

        // The repository is replaced by another with the same inputs at the same path.
        try FileManager.default.moveItem(atPath: cli.path("repo"), toPath: cli.path("old-repo"))
        #expect(try cli.run(["repo", "create", "repo"]).status == .exited(0))
        try FileManager.default.copyItem(atPath: cli.path("old-repo/datastore/in"), toPath: cli.path("repo/datastore/in"))
        try cli.registerInputs(graph, repo: "repo")
        let run = try cli.run(["run", "sub"])
        #expect(run.status != .exited(0))
        let log = cli.read(cli.path("sub/logs/copy.0.err"))
        #expect(log.contains("is not the repository this submission was planned against"), "\(log)")
        let merge = try cli.run(["merge", "sub"])
        #expect(merge.status != .exited(0))
        #expect(merge.stderr.contains("is not the repository this submission was planned against"), "\(merge.stderr)")
        #expect(((try? cli.datasets(repo: cli.path("repo"), collection: "u/t/run")) ?? []).isEmpty)
    }

    /// Item 8: an input location that climbs out of the datastore is refused at plan time.
    @Test func inputLocationsStayInsideTheDatastore() throws {
        let cli = try CLI()
        #expect(try cli.run(["repo", "create", "repo"]).status == .exited(0))
        var b = GraphBuilder(universe: ["visit"], metadata: ["outputRun": "u/t/run"])
        b.addDatasetType("in", dimensions: ["visit"], storageClass: "Text")
        b.addDatasetType("out", dimensions: ["visit"], storageClass: "Text")
        b.addTask(TaskNode(label: "copy", dimensions: ["visit"], inputTypes: ["in"], outputTypes: ["out"]))
        let id = DataID([("visit", .int(1))])
        b.addQuantum(task: "copy", dataID: id, inputs: [b.dataset("in", id, run: "in", location: "../../../etc/hostname")],
                     outputs: [b.dataset("out", id, run: "u/t/run")])
        try NativeGraphFormat.write(b.graph, to: cli.path("g.qgn"))
        try Data("pipetask:\n  copy: {command: \"cp {input:in} {output:out}\"}\n".utf8).write(to: URL(fileURLWithPath: cli.path("submit.yaml")))
        let r = try plan(cli)
        #expect(r.status != .exited(0))
        #expect(r.stderr.contains("climbs out of the datastore"), "\(r.stderr)")
    }

    /// Item 10: one unreadable manifest is reported; the rest still shows, merges and restarts.
    @Test func oneBadManifestDoesNotStopTheRest() throws {
        let cli = try CLI()
        _ = try makeGraph(cli, values: ["1", "2", "3"])
        #expect(try plan(cli).status == .exited(0))
        #expect(try cli.run(["run", "sub", "--no-merge"]).status == .exited(0))
        try Data("{\"formatVersion\": 1, \"quanta\": [".utf8).write(to: URL(fileURLWithPath: cli.path("sub/manifests/copy/1.json")))
        for fresh in [false, true] {
            let status = try cli.run(["status", "sub"] + (fresh ? ["--fresh"] : []))
            #expect(status.status == .exited(0) || status.status == .exited(1), "\(status.output)")
            #expect(status.stdout.contains("copy:1  failed"), "\(status.stdout)")
            #expect(status.stdout.contains("unreadable manifest"), "\(status.stdout)")
            let rows = status.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
            #expect(rows.contains(["copy", "3", "2", "1", "0", "0", "0", "0"]), "\(status.stdout)")
        }
        let merge = try cli.run(["merge", "sub"])
        #expect(merge.status == .exited(1))
        #expect(merge.stdout.contains("2 datasets registered"), "\(merge.stdout)")
        #expect(merge.stdout.contains("copy:1: ") && merge.stdout.contains("1.json"), "\(merge.stdout)")
        let restart = try cli.run(["restart", "sub"])
        #expect(restart.status == .exited(0), "\(restart.output)")
        #expect(try cli.datasets(repo: cli.path("repo"), collection: "u/t/run").count == 3)
    }

    /// Item 7: `rerun --force` of a merged job would overwrite registered files: refused; with
    /// `--replace` the registry follows the new file and the stale downstream dataset is named.
    @Test func aRerunNeverSilentlyReplacesARegisteredFile() throws {
        let cli = try CLI()
        #expect(try cli.run(["repo", "create", "repo"]).status == .exited(0))
        var b = GraphBuilder(universe: ["visit"], metadata: ["outputRun": "u/t/run", "output": "u/t"])
        for t in ["in", "mid", "out"] { b.addDatasetType(t, dimensions: ["visit"], storageClass: "Text") }
        b.addTask(TaskNode(label: "a", dimensions: ["visit"], inputTypes: ["in"], outputTypes: ["mid"]))
        b.addTask(TaskNode(label: "b", dimensions: ["visit"], inputTypes: ["mid"], outputTypes: ["out"]))
        let id = DataID([("visit", .int(1))])
        try FileManager.default.createDirectory(atPath: cli.path("repo/datastore/in"), withIntermediateDirectories: true)
        try Data("input\n".utf8).write(to: URL(fileURLWithPath: cli.path("repo/datastore/in/1.txt")))
        let mid = b.dataset("mid", id, run: "u/t/run")
        b.addQuantum(task: "a", dataID: id, inputs: [b.dataset("in", id, run: "in", location: "in/1.txt")], outputs: [mid])
        b.addQuantum(task: "b", dataID: id, inputs: [mid], outputs: [b.dataset("out", id, run: "u/t/run")])
        try NativeGraphFormat.write(b.graph, to: cli.path("g.qgn"))
        try cli.registerInputs(b.graph, repo: "repo")
        let marker = cli.path("changed")
        try Data("""
        pipetask:
          a: {command: "cp {input:in} {output:mid}; if [ -e \(marker) ]; then echo changed >> {output:mid}; fi"}
          b: {command: "cp {input:mid} {output:out}"}
        cluster:
          a: {pipetasks: a}
          b: {pipetasks: b}
        """.utf8).write(to: URL(fileURLWithPath: cli.path("submit.yaml")))
        #expect(try plan(cli).status == .exited(0))
        #expect(try cli.run(["run", "sub"]).status == .exited(0))
        func midRecord() throws -> [String: Any] {
            try cli.datasets(repo: cli.path("repo"), collection: "u/t/run").first { $0["datasetType"] as? String == "mid" }!
        }
        let before = try midRecord()
        let midFile = cli.path("repo/datastore/") + (before["path"] as! String)
        try Data().write(to: URL(fileURLWithPath: marker))

        let refused = try cli.run(["rerun", "sub", "--job", "a:0", "--force"])
        #expect(refused.status != .exited(0))
        #expect(refused.stderr.contains("of its outputs are registered already"), "\(refused.output)")
        #expect(cli.read(midFile) == "input\n", "the registered file was replaced")

        let replaced = try cli.run(["rerun", "sub", "--job", "a:0", "--force", "--replace"])
        #expect(replaced.status == .exited(0), "\(replaced.output)")
        #expect(cli.read(midFile) == "input\nchanged\n")
        #expect(replaced.stdout.contains("replaced 1 registered datasets"), "\(replaced.stdout)")
        #expect(replaced.stdout.contains("1 registered datasets downstream were made from the old files"), "\(replaced.stdout)")
        #expect(replaced.stdout.contains("out {visit=1}"), "\(replaced.stdout)")
        let after = try midRecord()
        #expect((after["size"] as? NSNumber)?.intValue == 14 && after["checksum"] as? String != before["checksum"] as? String, "\(after) \(before)")
    }

    /// Item 6: run-quantum with its stdout and stderr on a full disk (/dev/full) still records the
    /// quantum's failure in the manifest instead of dying by a trap.
    @Test func runQuantumSurvivesAFullDiskOnItsOutputStreams() throws {
        let cli = try CLI()
        _ = try makeGraph(cli, values: ["1"])
        try Data("pipetask:\n  copy: {command: \"echo 'ERROR: broken' >&2; exit 3\"}\n".utf8).write(to: URL(fileURLWithPath: cli.path("submit.yaml")))
        #expect(try plan(cli).status == .exited(0))
        var o = Spawn.Options()
        o.stdoutPath = "/dev/full"
        o.stderrPath = "/dev/full"
        let status = try Spawn.run(CLI.binDir + "/run-quantum", ["--submit-dir", cli.path("sub"), "--array", "copy", "--index", "0"],
                                   environment: ProcessInfo.processInfo.environment, options: o)
        #expect(status == .exited(0), "\(status)")
        let manifest = cli.read(cli.path("sub/manifests/copy/0.json"))
        #expect(manifest.contains("ERROR: broken"), "\(manifest)")
    }

    /// Item 9: a misspelled label stops the plan, a misspelled key is a warning naming the key
    /// meant, a failing site environment line fails the job quoting the line, and every final job
    /// has a time limit.
    @Test func mistakesAreNotSilent() throws {
        let cli = try CLI()
        _ = try makeGraph(cli, values: ["1"])
        try Data("requestMemroy: 4G\npipetask:\n  copy: {command: \"cp {input:in} {output:out}\"}\n  cpy: {requestCpus: 2}\n".utf8)
            .write(to: URL(fileURLWithPath: cli.path("submit.yaml")))
        let typo = try plan(cli)
        #expect(typo.status != .exited(0))
        #expect(typo.stderr.contains("submit.yaml: pipetask.cpy: no task 'cpy' in the graph; did you mean 'copy'?"), "\(typo.stderr)")
        #expect(typo.stderr.contains("warning: submit.yaml: requestMemroy is not a key Quanta knows; did you mean requestMemory?"), "\(typo.stderr)")

        try Data("pipetask:\n  copy: {command: \"cp {input:in} {output:out}\"}\n".utf8).write(to: URL(fileURLWithPath: cli.path("submit.yaml")))
        let site = cli.read(CLI.repoRoot + "/site-configs/local.yaml")
            .replacingOccurrences(of: "environment: []", with: "environment:\n  - export QUANTA_TEST_SITE=1\n  - source /nonexistent/loadLSST.bash\n  - if true; then\n  - true\n  - fi")
        try Data(site.utf8).write(to: URL(fileURLWithPath: cli.path("site.yaml")))
        let p = try cli.run(["plan", "g.qgn", "--repo", "repo", "--config", "submit.yaml", "--site", cli.path("site.yaml"), "--out", "sub"])
        #expect(p.status == .exited(0), "\(p.output)")
        let script = cli.read(cli.path("sub/scripts/copy.sbatch"))
        #expect(script.contains("source /nonexistent/loadLSST.bash || {"), "\(script)")
        #expect(script.contains("\nif true; then\n"), "a compound line is left as it is: \(script)")
        let syntax = try cli.run(["-n", cli.path("sub/scripts/copy.sbatch")], executable: "/bin/bash")
        #expect(syntax.status == .exited(0), "\(syntax.output)")
        #expect(cli.read(cli.path("sub/scripts/merge.sbatch")).contains("#SBATCH --time=00:10:00"))
        let run = try cli.run(["run", "sub"])
        #expect(run.status != .exited(0))
        let err = cli.read(cli.path("sub/logs/copy.0.err"))
        #expect(err.contains("quanta: the site environment line failed (exit 1): source /nonexistent/loadLSST.bash (fix environment: in "), "\(err)")
        #expect(!FileManager.default.fileExists(atPath: cli.path("sub/manifests/copy/0.json")), "the job must not have run")
        #expect(((try? cli.datasets(repo: cli.path("repo"), collection: "u/t/run")) ?? []).isEmpty)
    }

    /// Item 12: a copied submit directory runs itself, not the directory it was copied from; the
    /// site's umask (0027 here) holds for what plan and the local backend write.
    @Test func aCopiedSubmitDirectoryRunsItselfUnderTheSiteUmask() throws {
        let cli = try CLI()
        _ = try makeGraph(cli, values: ["1", "2"])
        let site = cli.read(CLI.repoRoot + "/site-configs/local.yaml").replacingOccurrences(of: "umask: \"0002\"", with: "umask: \"0027\"")
        try Data(site.utf8).write(to: URL(fileURLWithPath: cli.path("site.yaml")))
        let p = try cli.run(["plan", "g.qgn", "--repo", "repo", "--config", "submit.yaml", "--site", cli.path("site.yaml"), "--out", "sub"])
        #expect(p.status == .exited(0), "\(p.output)")
        #expect(try cli.run(["-c", "cp -a sub sub2"], executable: "/bin/sh").status == .exited(0))
        let run = try cli.run(["run", "sub2"])
        #expect(run.status == .exited(0), "\(run.output)")
        #expect(FileManager.default.fileExists(atPath: cli.path("sub2/manifests/copy/0.json")))
        #expect(!FileManager.default.fileExists(atPath: cli.path("sub/manifests/copy/0.json")), "the copy ran the original")
        func mode(_ path: String) throws -> Int { (try FileManager.default.attributesOfItem(atPath: cli.path(path))[.posixPermissions] as! NSNumber).intValue }
        #expect(try mode("sub/plan.json") & 0o007 == 0, "plan.json is world-readable")
        #expect(try mode("sub/scripts/copy.sbatch") & 0o007 == 0, "scripts are world-readable")
        #expect(try mode("sub2/logs/copy.0.out") & 0o007 == 0, "local logs are world-readable")
        #expect(try mode("sub2/manifests/copy/0.json") & 0o007 == 0)
    }

    /// Item 12: versions, and help that names what is written today.
    @Test func versionsAndHelp() throws {
        let cli = try CLI()
        #expect(try cli.run(["--version"]).stdout == "quanta \(QuantaVersion.number)\n")
        #expect(try cli.run(["--version"], executable: CLI.binDir + "/run-quantum").stdout == "run-quantum \(QuantaVersion.number)\n")
        let help = try cli.run(["plan", "--help"]).stdout
        #expect(help.contains("snapshot.bin") && !help.contains("snapshot.sqlite"), "\(help)")
        #expect(ValidationConfig.key("", "maxImageNaNFraction") == "validation.maxImageNaNFraction")
        #expect(ValidationConfig.key("calexp", "columns") == "validation.datasetTypes.calexp.columns")
    }

    /// Item 12: kill -9 of run-quantum on the local backend leaves no command running and, once
    /// the job runs again, no temporary file in the datastore.
    @Test func aKilledRunQuantumLeavesNothingBehind() throws {
        let cli = try CLI()
        _ = try makeGraph(cli, values: ["1"])
        let marker = cli.path("kill-marker")
        try Data().write(to: URL(fileURLWithPath: marker))
        // The command writes part of its output, starts a background sleep, then kills its run-quantum.
        try Data("pipetask:\n  copy: {command: \"cp {input:in} {output:out}; if [ -e \(marker) ]; then (sleep 117 &); kill -9 $PPID; sleep 116; fi\"}\n".utf8)
            .write(to: URL(fileURLWithPath: cli.path("submit.yaml")))
        #expect(try plan(cli).status == .exited(0))
        let run = try cli.run(["run", "sub"])
        #expect(run.status != .exited(0))
        let left = try cli.run(["-c", "pgrep -f '^sleep 11[67]$' | wc -l"], executable: "/bin/sh")
        #expect(left.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0", "commands outlived their run-quantum")
        #expect(cli.allFiles().contains { $0.hasPrefix("repo/datastore/") && $0.contains(".tmp-") }, "the kill should leave a partial output")
        try FileManager.default.removeItem(atPath: marker)
        let restart = try cli.run(["restart", "sub"])
        #expect(restart.status == .exited(0), "\(restart.output)")
        #expect(!cli.allFiles().contains { $0.contains(".tmp-") }, "\(cli.allFiles().filter { $0.contains(".tmp-") })")
        #expect(try cli.datasets(repo: cli.path("repo"), collection: "u/t/run").count == 1)
    }
}
