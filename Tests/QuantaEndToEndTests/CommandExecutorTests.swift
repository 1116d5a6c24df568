import Foundation
import Testing
import QuantaCore
import QuantaGraphIO

/// Graphs built here, written in the native format, run through `quanta plan` and `quanta run`.
@Suite(.serialized) struct CommandExecutorTests {
    static let hostile = [
        "$(touch PWNED_subst)", "`touch PWNED_backtick`", "it's; touch PWNED_semicolon", "say \"hi\" && touch PWNED_and",
        "line1\ntouch PWNED_newline", "with space", "$HOME|touch PWNED_pipe",
    ]
    static let hostileLabel = "it's $(touch PWNED_label)"

    /// One task copying `in` to `out` per hostile visit value; inputs made in a fresh repository.
    func makeGraph(_ cli: CLI, label: String, values: [String]) throws -> String {
        #expect(try cli.run(["repo", "create", "repo"]).status == .exited(0))
        var b = GraphBuilder(universe: ["instrument", "visit"], metadata: ["outputRun": "u/test/run", "output": "u/test", "inputCollections": "in"])
        b.addDatasetType("in", dimensions: ["instrument", "visit"], storageClass: "Text")
        b.addDatasetType("out", dimensions: ["instrument", "visit"], storageClass: "Text")
        b.addTask(TaskNode(label: label, dimensions: ["instrument", "visit"], inputTypes: ["in"], outputTypes: ["out"]))
        for v in values {
            let id = DataID([("instrument", .string("Cam")), ("visit", .string(v))])
            let loc = "in/" + PathSanitizer.component(v) + ".txt"
            let abs = cli.path("repo/datastore/" + loc)
            try FileManager.default.createDirectory(atPath: URL(fileURLWithPath: abs).deletingLastPathComponent().path, withIntermediateDirectories: true)
            try Data("input for \(v)\n".utf8).write(to: URL(fileURLWithPath: abs))
            let input = b.dataset("in", id, run: "in", location: loc)
            b.addQuantum(task: label, dataID: id, inputs: [input], outputs: [b.dataset("out", id, run: "u/test/run")])
        }
        try NativeGraphFormat.write(b.graph, to: cli.path("g.qgn"))
        try cli.registerInputs(b.graph, repo: "repo")
        return cli.path("g.qgn")
    }

    func writeConfig(_ cli: CLI, label: String, command: String, extra: String = "") throws {
        let yaml = """
        project: someone
        pipetask:
          \(JSONText.quote(label)):
            command: \(JSONText.quote(command))
        \(extra)
        """
        try Data(yaml.utf8).write(to: URL(fileURLWithPath: cli.path("submit.yaml")))
    }

    @Test func hostileDataIDsAndLabelsRunNothing() throws {
        let cli = try CLI()
        let graph = try makeGraph(cli, label: Self.hostileLabel, values: Self.hostile)
        try writeConfig(cli, label: Self.hostileLabel,
                        command: "cp {input:in} {output:out} && printf '%s|%s|%s\\n' {dataId} {dim:visit} {task} >> {output:out}")
        let plan = try cli.run(["plan", graph, "--repo", "repo", "--config", "submit.yaml", "--out", "sub"])
        #expect(plan.status == .exited(0), "\(plan.output)")
        // Unknown keys are reported once, as ignored.
        #expect(plan.stderr.components(separatedBy: "ignoring keys Quanta does not use: project").count == 2)
        let syntax = try cli.run(["-n", cli.path("sub/submit.sh")], executable: "/bin/bash")
        #expect(syntax.status == .exited(0), "\(syntax.output)")
        for script in try FileManager.default.contentsOfDirectory(atPath: cli.path("sub/scripts")) {
            #expect(try cli.run(["-n", cli.path("sub/scripts/" + script)], executable: "/bin/bash").status == .exited(0))
        }

        let run = try cli.run(["run", "sub"])
        #expect(run.status == .exited(0), "\(run.output)")
        // `touch PWNED_x` would make a file whose whole name starts with PWNED; the datastore's
        // own files only contain the text inside longer names.
        let ran = cli.allFiles().filter { URL(fileURLWithPath: $0).lastPathComponent.hasPrefix("PWNED") }
        #expect(ran.isEmpty, "a hostile value ran: \(ran)")
        #expect(cli.allFiles().contains { $0.contains("PWNED_subst") }, "the hostile names should reach the datastore as text")
        #expect(!FileManager.default.fileExists(atPath: CLI.repoRoot + "/PWNED_subst"))

        let outputs = try cli.datasets(repo: cli.path("repo"), collection: "u/test/run")
        #expect(outputs.count == Self.hostile.count)
        for d in outputs {
            let id = try DataID(json: d["dataID"] as! String)
            let text = cli.read(cli.path("repo/datastore/") + (d["path"] as! String))
            let visit = id["visit"]!.description
            #expect(text == "input for \(visit)\n\(id.description)|\(visit)|\(Self.hostileLabel)\n")
        }
    }

    @Test func missingOutputFailsTheQuantum() throws {
        let cli = try CLI()
        let graph = try makeGraph(cli, label: "lazy", values: ["1", "2"])
        try writeConfig(cli, label: "lazy", command: "echo 'pretending to work'")
        #expect(try cli.run(["plan", graph, "--repo", "repo", "--config", "submit.yaml", "--out", "sub"]).status == .exited(0))
        let run = try cli.run(["run", "sub"])
        #expect(run.status == .exited(1))
        #expect(run.stdout.contains("no output out"))
        let manifest = try JSONSerialization.jsonObject(with: Data(cli.read(cli.path("sub/manifests/lazy/0.json")).utf8)) as! [String: Any]
        #expect(manifest["status"] as? String == "failed")
        #expect((manifest["firstError"] as? String)?.contains("no output out") == true)
        #expect(try cli.datasets(repo: cli.path("repo"), collection: "u/test/run").isEmpty)
        // No temporary file is left in the datastore.
        #expect(!cli.allFiles().contains { $0.contains(".tmp-") })
    }

    @Test func failingCommandReportsItsFirstErrorLine() throws {
        let cli = try CLI()
        let graph = try makeGraph(cli, label: "broken", values: ["1"])
        try writeConfig(cli, label: "broken", command: "echo starting; echo 'ERROR: calibration file not found' >&2; exit 3")
        #expect(try cli.run(["plan", graph, "--repo", "repo", "--config", "submit.yaml", "--out", "sub"]).status == .exited(0))
        let run = try cli.run(["run", "sub"])
        #expect(run.status == .exited(1))
        // Exit 3 is not in retryUnlessExit [1, 2]: bps's default five retries, locally as on SLURM.
        #expect(run.stdout.contains("retry 5: broken:0 failed → attempt 6 of 6"), "\(run.stdout)")
        // The merge read every manifest and left them for status.
        #expect(FileManager.default.fileExists(atPath: cli.path("sub/status-cache.bin")))
        let status = try cli.run(["status", "sub"])
        // The row names the quantum by task and data ID, and its log.
        #expect(status.stdout.contains("broken:0  failed (exit 3) [attempt 6]  broken {instrument=Cam, visit=1}: exit code 3: ERROR: calibration file not found"), "\(status.stdout)")
        #expect(status.stdout.contains("log: \(cli.path("sub/logs/quanta/broken/"))"), "\(status.stdout)")
        let rerun = try cli.run(["rerun", "sub", "--job", "broken:0"])
        #expect(rerun.status == .exited(1))
        #expect(rerun.stdout.contains("attempt 7"))
        // status reads through status-cache.bin: the rerun's manifest replaced the cached one, and
        // the answer is the same as reading every manifest afresh.
        let cached = try cli.run(["status", "sub", "--json"]).stdout, fresh = try cli.run(["status", "sub", "--json", "--fresh"]).stdout
        #expect(cached == fresh && cached.contains("\"attempt\" : 7"), "\(cached)")
        // A damaged cache is ignored and written again.
        try Data("QSTAT002 not really".utf8).write(to: URL(fileURLWithPath: cli.path("sub/status-cache.bin")))
        #expect(try cli.run(["status", "sub", "--json"]).stdout == fresh)
        #expect(try Data(contentsOf: URL(fileURLWithPath: cli.path("sub/status-cache.bin"))).count > 100)
    }

    /// One graph run twice into two runs: the second gets new output UUIDs (like LSST's
    /// update-graph-run) and its own datasets, instead of finding them "already registered".
    @Test func oneGraphIntoTwoRunsRegistersBoth() throws {
        let cli = try CLI()
        #expect(try cli.run(["graph", "synth", "--visits", "2", "--detectors", "2", "--out", "g.qgn", "--repo", "repo"]).status == .exited(0))
        var ids: [String: Set<String>] = [:]
        for run in ["u/a", "u/b"] {
            let sub = "sub-" + run.suffix(1)
            let plan = try cli.run(["plan", "g.qgn", "--repo", "repo", "--config", CLI.repoRoot + "/scripts/synth-commands.yaml",
                                    "--output-run", run, "--out", sub])
            #expect(plan.status == .exited(0), "\(plan.output)")
            let r = try cli.run(["run", sub])
            #expect(r.status == .exited(0), "\(r.output)")
            let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: cli.path(sub + "/merge-summary.json")))) as? [String: Any]
            #expect(summary?["alreadyRegistered"] as? Int == 0 && (summary?["registered"] as? Int ?? 0) > 10, "\(summary ?? [:])")
            ids[run] = Set(try cli.datasets(repo: cli.path("repo"), collection: run).compactMap { $0["id"] as? String })
        }
        #expect(ids["u/a"]!.count > 10 && ids["u/a"]!.count == ids["u/b"]!.count, "\(ids.mapValues(\.count))")
        #expect(ids["u/a"]!.isDisjoint(with: ids["u/b"]!))
    }

    /// The binary snapshot: a job reads its own records; a damaged file says so and what to do.
    @Test func snapshotServesJobsAndRefusesWhenDamaged() throws {
        let cli = try CLI()
        let graph = try makeGraph(cli, label: "copy", values: ["1", "2", "3"])
        try writeConfig(cli, label: "copy", command: "cp {input:in} {output:out}")
        #expect(try cli.run(["plan", graph, "--repo", "repo", "--config", "submit.yaml", "--out", "sub"]).status == .exited(0))
        let snapshot = cli.path("sub/snapshot.bin")
        #expect((try FileManager.default.attributesOfItem(atPath: snapshot)[.posixPermissions] as? Int) == 0o444, "read-only")
        let one = try cli.run(["rerun", "sub", "--job", "copy:2"])
        #expect(one.status == .exited(0), "\(one.output)")
        #expect(cli.read(cli.path("repo/datastore/u/test/run/out/out_instrumentCam_visit3.txt")) == "input for 3\n")
        let none = try cli.run(["rerun", "sub", "--job", "copy:7"])
        #expect(none.stderr.contains("array 'copy' has jobs 0-2; 7 is outside"), "\(none.output)")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: snapshot))
        try FileManager.default.removeItem(atPath: snapshot)
        try bytes.prefix(bytes.count - 40).write(to: URL(fileURLWithPath: snapshot))
        let cut = try cli.run(["rerun", "sub", "--job", "copy:0"])
        #expect(cut.status != .exited(0) && cut.output.contains("snapshot.bin: the snapshot is truncated; plan the submission again"), "\(cut.output)")
    }

    /// run-quantum reads its arguments by hand: both spellings work, mistakes get one line and the usage.
    @Test func runQuantumArguments() throws {
        let cli = try CLI()
        let graph = try makeGraph(cli, label: "copy", values: ["1", "2"])
        try writeConfig(cli, label: "copy", command: "cp {input:in} {output:out}")
        #expect(try cli.run(["plan", graph, "--repo", "repo", "--config", "submit.yaml", "--out", "sub"]).status == .exited(0))
        let rq = CLI.binDir + "/run-quantum"
        let ok = try cli.run(["--submit-dir=sub", "--array", "copy", "--index=1"], executable: rq)
        #expect(ok.status == .exited(0) && ok.stdout.contains("job copy:1 succeeded"), "\(ok.output)")
        let viaEnv = try cli.run(["--submit-dir", "sub", "--array", "copy"], executable: rq, environment: ["SLURM_ARRAY_TASK_ID": "0"])
        #expect(viaEnv.status == .exited(0) && viaEnv.stdout.contains("job copy:0 succeeded"), "\(viaEnv.output)")
        let again = try cli.run(["--submit-dir", "sub", "--array", "copy", "--index", "0"], executable: rq)
        #expect(again.stdout.contains("already succeeded"), "\(again.output)")
        for (args, message) in [(["--submit-dir", "sub", "--array", "copy", "--index", "x"], "--index takes a whole number, not 'x'"),
                                (["--array", "copy", "--index", "0"], "missing --submit-dir"),
                                (["--submit-dir", "sub", "--array"], "--array needs a value"),
                                (["--submit-dir", "sub", "--array", "copy", "--bogus"], "unknown argument '--bogus'")] {
            let bad = try cli.run(args, executable: rq)
            #expect(bad.status == .exited(64) && bad.stderr.hasPrefix("run-quantum: \(message)\nusage: run-quantum"), "\(bad.output)")
        }
        let help = try cli.run(["--help"], executable: rq)
        #expect(help.status == .exited(0) && help.stdout.contains("--submit-dir DIR"))
    }

    @Test func planRefusesWhatCannotRun() throws {
        let cli = try CLI()
        let graph = try makeGraph(cli, label: "big", values: ["1"])
        try writeConfig(cli, label: "big", command: "cp {input:in} {output:out}", extra: "requestMemory: 99999T")
        let tooBig = try cli.run(["plan", graph, "--repo", "repo", "--config", "submit.yaml", "--out", "sub"])
        #expect(tooBig.status != .exited(0))
        #expect(tooBig.stderr.contains("task 'big' asks for"), "\(tooBig.output)")
        #expect(tooBig.stderr.contains("no partition fits"))
        #expect(!FileManager.default.fileExists(atPath: cli.path("sub/plan.json")))

        try writeConfig(cli, label: "big", command: "cp {input:nope} {output:out}")
        let badTemplate = try cli.run(["plan", graph, "--repo", "repo", "--config", "submit.yaml", "--out", "sub"])
        #expect(badTemplate.stderr.contains("{input:nope}"), "\(badTemplate.output)")

        try Data("pipetask:\n  big: {builtin: isrr}\nvalidation:\n  maxImageNaNFraction: 5\n".utf8).write(to: URL(fileURLWithPath: cli.path("bad.yaml")))
        let badLimit = try cli.run(["plan", graph, "--repo", "repo", "--config", "bad.yaml", "--out", "sub"])
        #expect(badLimit.stderr.contains("bad.yaml: validation.maxImageNaNFraction: expected a fraction between 0 and 1"), "\(badLimit.output)")
        try Data("pipetask:\n  big: {builtin: isrr}\n".utf8).write(to: URL(fileURLWithPath: cli.path("bad.yaml")))
        let unknown = try cli.run(["plan", graph, "--repo", "repo", "--config", "bad.yaml", "--out", "sub"])
        #expect(unknown.stderr.contains("pipetask.big.builtin: no built-in task 'isrr'; they are isr, calibrate"), "\(unknown.output)")

        try Data("QUANTAGR\u{1}\0\0\0META".utf8).write(to: URL(fileURLWithPath: cli.path("cut.qgn")))
        let truncated = try cli.run(["graph", "info", "cut.qgn"])
        #expect(truncated.status != .exited(0))
        #expect(truncated.stderr.contains("cut.qgn: truncated"), "\(truncated.output)")
    }
}

@Suite(.serialized) struct InterruptTests {
    @Test func ctrlCStopsRunningJobsAndRestartFinishes() throws {
        let cli = try CLI()
        let suite = CommandExecutorTests()
        let graph = try suite.makeGraph(cli, label: "slow", values: (1...6).map(String.init))
        let marker = cli.path("slow-marker")
        try Data().write(to: URL(fileURLWithPath: marker))
        try suite.writeConfig(cli, label: "slow", command: "if [ -e \(shellQuote(marker)) ]; then sleep 119; fi; cp {input:in} {output:out}")
        #expect(try cli.run(["plan", graph, "--repo", "repo", "--config", "submit.yaml", "--out", "sub"]).status == .exited(0))

        let pid = try cli.launch(["run", "sub", "-j", "2"], log: cli.path("run.log"))
        let deadline = Date().addingTimeInterval(30)
        while cli.read(cli.path("sub/local-events.log")).components(separatedBy: "\tstart\t").count < 3 && Date() < deadline {
            usleep(20_000)
        }
        let started = Date()
        kill(pid, SIGINT)
        #expect(Spawn.wait(pid) == .exited(130))
        #expect(Date().timeIntervalSince(started) < 10, "cancelling took too long")
        // The jobs' process groups are gone: no sleep of ours is left.
        let left = try cli.run(["-c", "pgrep -f '[s]leep 119' | wc -l"], executable: "/bin/sh")
        #expect(left.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0")
        let status = try cli.run(["status", "sub"])
        let rows = status.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(rows.contains(["slow", "6", "0", "0", "0", "0", "4", "2"]), "\(status.stdout)")

        try FileManager.default.removeItem(atPath: marker)
        let restart = try cli.run(["restart", "sub"])
        #expect(restart.status == .exited(0), "\(restart.output)")
        #expect(try cli.datasets(repo: cli.path("repo"), collection: "u/test/run").count == 6)

        // A second submission may not write into the same run.
        let reuse = try cli.run(["plan", graph, "--repo", "repo", "--config", "submit.yaml", "--out", "sub2"])
        #expect(reuse.status != .exited(0))
        #expect(reuse.stderr.contains("output run 'u/test/run' already holds 6 datasets"), "\(reuse.output)")
    }
}

@Suite struct KilledJobTests {
    /// A job killed outright (as by the OOM killer) writes no manifest; its correlated downstream
    /// element never runs (SLURM's kill-on-invalid-dep) and shows as blocked; the merge still runs.
    @Test func killedJobBlocksItsCorrelatedDownstream() throws {
        let cli = try CLI()
        #expect(try cli.run(["repo", "create", "repo"]).status == .exited(0))
        var b = GraphBuilder(universe: ["visit"], metadata: ["outputRun": "r/1", "output": "r"])
        for t in ["in", "mid", "out"] { b.addDatasetType(t, dimensions: ["visit"], storageClass: "Text") }
        b.addTask(TaskNode(label: "first", dimensions: ["visit"], inputTypes: ["in"], outputTypes: ["mid"]))
        b.addTask(TaskNode(label: "second", dimensions: ["visit"], inputTypes: ["mid"], outputTypes: ["out"]))
        for v in 1...3 {
            let id = DataID([("visit", .int(Int64(v)))])
            let loc = "in/\(v).txt"
            try FileManager.default.createDirectory(atPath: cli.path("repo/datastore/in"), withIntermediateDirectories: true)
            try Data("\(v)\n".utf8).write(to: URL(fileURLWithPath: cli.path("repo/datastore/" + loc)))
            let mid = b.dataset("mid", id, run: "r/1")
            b.addQuantum(task: "first", dataID: id, inputs: [b.dataset("in", id, run: "in", location: loc)], outputs: [mid])
            b.addQuantum(task: "second", dataID: id, inputs: [mid], outputs: [b.dataset("out", id, run: "r/1")])
        }
        try NativeGraphFormat.write(b.graph, to: cli.path("g.qgn"))
        try cli.registerInputs(b.graph, repo: "repo")
        // Visit 2's first step kills run-quantum itself (its parent), leaving no manifest.
        try Data("""
        pipetask:
          first: {command: "if [ {dim:visit} = 2 ]; then kill -9 $PPID; sleep 5; fi; cp {input:in} {output:mid}"}
          second: {command: "cp {input:mid} {output:out}"}
        """.utf8).write(to: URL(fileURLWithPath: cli.path("submit.yaml")))
        let plan = try cli.run(["plan", "g.qgn", "--repo", "repo", "--config", "submit.yaml", "--out", "sub"])
        #expect(plan.status == .exited(0), "\(plan.output)")
        #expect(plan.stdout.contains("aftercorr:first"))

        let run = try cli.run(["run", "sub"])
        #expect(run.status == .exited(1))
        let status = try cli.run(["status", "sub"]).stdout
        #expect(status.contains("first:1  failed  killed by signal 9 (SIGKILL), no manifest written"), "\(status)")
        #expect(status.contains("second:1  blocked  dependency never satisfied: first:1 ended with killed by signal 9"), "\(status)")
        #expect(!FileManager.default.fileExists(atPath: cli.path("sub/manifests/second/1.json")))
        #expect(try cli.datasets(repo: cli.path("repo"), collection: "r").count == 4)
    }
}
