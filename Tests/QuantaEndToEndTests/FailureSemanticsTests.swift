import Foundation
import Testing
import QuantaCore
import QuantaGraphIO
import QuantaButler

/// Issue 13 for the command executor: `pipetask run`'s rules whatever the executor — a quantum
/// whose producer failed is blocked (FAILED_DEP) and never runs, even when it reads its inputs as
/// a group; "no work" is a success, and what reads its outputs has no work either; restart after
/// the cause is fixed reaches a clean run's result without touching what was kept.
@Suite(.serialized) struct FailureSemanticsTests {
    /// calib(visit, detector): raw → calexp; gather(visit): every calexp of the visit → summary.
    /// A file `fail-V-D` makes calib fail for (V, D), `nowork-V-D` makes it end with no work.
    func makeSurvey(_ cli: CLI, visits: Int = 2, detectors: Int = 3, clustered: Bool = false, site: String? = nil, extra: String = "") throws {
        #expect(try cli.run(["repo", "create", "repo"]).status == .exited(0))
        var b = GraphBuilder(universe: ["visit", "detector"], metadata: ["outputRun": "u/f/run", "output": "u/f", "inputCollections": "raw"])
        b.addDatasetType("raw", dimensions: ["visit", "detector"], storageClass: "Text")
        b.addDatasetType("calexp", dimensions: ["visit", "detector"], storageClass: "Text")
        b.addDatasetType("summary", dimensions: ["visit"], storageClass: "Text")
        b.addTask(TaskNode(label: "calib", dimensions: ["visit", "detector"], inputTypes: ["raw"], outputTypes: ["calexp"]))
        b.addTask(TaskNode(label: "gather", dimensions: ["visit"], inputTypes: ["calexp"], outputTypes: ["summary"]))
        try FileManager.default.createDirectory(atPath: cli.path("repo/datastore/raw"), withIntermediateDirectories: true)
        for v in 1...visits {
            var calexps: [Int32] = []
            for d in 0..<detectors {
                let id = DataID([("visit", .int(Int64(v))), ("detector", .int(Int64(d)))])
                let loc = "raw/\(v)-\(d).txt"
                try Data("raw \(v) \(d)\n".utf8).write(to: URL(fileURLWithPath: cli.path("repo/datastore/" + loc)))
                let calexp = b.dataset("calexp", id, run: "u/f/run")
                calexps.append(calexp)
                b.addQuantum(task: "calib", dataID: id, inputs: [b.dataset("raw", id, run: "raw", location: loc)], outputs: [calexp])
            }
            let vid = DataID([("visit", .int(Int64(v)))])
            b.addQuantum(task: "gather", dataID: vid, inputs: calexps, outputs: [b.dataset("summary", vid, run: "u/f/run")])
        }
        try NativeGraphFormat.write(b.graph, to: cli.path("g.qgn"))
        try cli.registerInputs(b.graph, repo: "repo")
        let flags = cli.path("flags")
        try FileManager.default.createDirectory(atPath: flags, withIntermediateDirectories: true)
        let calib = "if [ -e \(flags)/fail-{dim:visit}-{dim:detector} ]; then echo 'ValueError: injected failure' >&2; exit 3; fi; "
            + "if [ -e \(flags)/nowork-{dim:visit}-{dim:detector} ]; then echo 'no sources found' > $QUANTA_NO_WORK; exit 0; fi; "
            + "cp {input:raw} {output:calexp}; if [ -e \(flags)/v2-{dim:visit}-{dim:detector} ]; then echo recalibrated >> {output:calexp}; fi"
        var yaml = """
        pipetask:
          calib: {command: "\(calib)"}
          gather: {command: "cat {input:calexp} > {output:summary}"}

        """
        if clustered { yaml += "cluster:\n  perVisit:\n    pipetasks: calib, gather\n    dimensions: visit\n" }
        yaml += extra
        try Data(yaml.utf8).write(to: URL(fileURLWithPath: cli.path("submit.yaml")))
        let plan = try cli.run(["plan", "g.qgn", "--repo", "repo", "--config", "submit.yaml", "--out", "sub"] + (site.map { ["--site", $0] } ?? []))
        #expect(plan.status == .exited(0), "\(plan.output)")
    }

    func flag(_ cli: CLI, _ name: String) throws {
        try Data().write(to: URL(fileURLWithPath: cli.path("flags/" + name)))
    }

    func statusJSON(_ cli: CLI) throws -> [String: Any] {
        let r = try cli.run(["status", "sub", "--json"])
        return (try JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any] ?? [:]
    }

    func counts(_ status: [String: Any], _ task: String) -> [String: Int] {
        ((status["tasks"] as? [[String: Any]])?.first { $0["label"] as? String == task }?["counts"] as? [String: Int]) ?? [:]
    }

    func registered(_ cli: CLI) throws -> [String] {
        try cli.datasets(repo: cli.path("repo"), collection: "u/f/run").map { "\($0["datasetType"] as? String ?? "?") \($0["dataID"] as? String ?? "?")" }.sorted()
    }

    /// A failed calib blocks its visit's gather, which reads its calexps as a group and would
    /// otherwise have run on the other detectors' and been called a success.
    @Test(arguments: [false, true])
    func aFailedProducerBlocksAGatherOfManyInputs(clustered: Bool) throws {
        let cli = try CLI()
        try makeSurvey(cli, clustered: clustered)
        try flag(cli, "fail-2-1")
        let run = try cli.run(["run", "sub"])
        #expect(run.status == .exited(1), "\(run.output)")
        let status = try statusJSON(cli)
        #expect(counts(status, "calib") == ["succeeded": 5, "failed": 1], "\(counts(status, "calib"))")
        #expect(counts(status, "gather") == ["succeeded": 1, "blocked": 1], "\(counts(status, "gather"))")
        // Nothing of visit 2's gather was made or registered; visit 1 is complete.
        let reg = try registered(cli)
        #expect(reg.filter { $0.hasPrefix("summary ") }.count == 1, "\(reg)")
        #expect(reg.filter { $0.hasPrefix("calexp ") }.count == 5, "\(reg)")
        // Status names the quanta and their data IDs: the failed calib and the gather it blocked;
        // it exits 1 (for scripts), 0 with --exit-zero.
        let st = try cli.run(["status", "sub"])
        #expect(st.status == .exited(1))
        #expect(try cli.run(["status", "sub", "--exit-zero"]).status == .exited(0))
        let text = st.stdout
        #expect(text.contains("calib {visit=2, detector=1}"), "\(text)")
        // Its log, named by task and data ID.
        #expect(text.contains("log: \(cli.path("sub/logs/quanta/calib/visit2_detector1."))"), "\(text)")
        #expect(text.contains("gather {visit=2}") && text.contains("upstream calib {visit=2, detector=1} failed"), "\(text)")
        // The command's own exit code is shown, not a made-up one.
        #expect(text.contains("failed (exit 3)"), "\(text)")

        // Fix the cause, restart: the result equals a clean run's, and nothing kept is rewritten.
        let kept = cli.path("repo/datastore/") + ((try cli.datasets(repo: cli.path("repo"), collection: "u/f/run")
            .first { ($0["datasetType"] as? String) == "calexp" }?["path"] as? String) ?? "")
        let before = try FileManager.default.attributesOfItem(atPath: kept)
        try FileManager.default.removeItem(atPath: cli.path("flags/fail-2-1"))
        let restart = try cli.run(["restart", "sub"])
        #expect(restart.status == .exited(0), "\(restart.output)")
        let after = try FileManager.default.attributesOfItem(atPath: kept)
        #expect(before[.systemFileNumber] as? Int == after[.systemFileNumber] as? Int && before[.modificationDate] as? Date == after[.modificationDate] as? Date,
                "a registered output was rewritten by the restart: \(kept)")
        let clean = try CLI()
        try makeSurvey(clean, clustered: clustered)
        #expect(try clean.run(["run", "sub"]).status == .exited(0))
        #expect(try registered(cli) == registered(clean))
        let summary = try String(contentsOfFile: cli.path("repo/datastore/") + ((try cli.datasets(repo: cli.path("repo"), collection: "u/f/run")
            .first { ($0["datasetType"] as? String) == "summary" && ($0["dataID"] as? String ?? "").contains("2") }?["path"] as? String) ?? ""), encoding: .utf8)
        #expect(summary == "raw 2 0\nraw 2 1\nraw 2 2\n", "visit 2's summary is built from every detector: \(summary)")
    }

    /// The same on the real SLURM cluster, in clustered jobs: the job with the failed quantum
    /// ends "failed", and status still counts what its manifest says of each quantum: the
    /// blocked gather is blocked, not failed (it was counted failed before). Retries are off to
    /// keep it to one round.
    @Test(.enabled(if: SlurmCluster.enabled, "needs the local SLURM cluster"))
    func aFailedProducerBlocksItsConsumersInAClusteredJobOnSlurm() throws {
        let cli = try CLI()
        try makeSurvey(cli, clustered: true, site: "local-slurm", extra: "numberOfRetries: 0\n")
        try flag(cli, "fail-2-1")
        let submit = try cli.run(["submit", "sub", "--wait", "--poll", "0.5"])
        #expect(submit.status == .exited(1), "\(submit.output)")
        let status = try statusJSON(cli)
        #expect(counts(status, "calib") == ["succeeded": 5, "failed": 1], "\(counts(status, "calib"))")
        #expect(counts(status, "gather") == ["succeeded": 1, "blocked": 1], "\(counts(status, "gather"))")
        let reg = try registered(cli)
        #expect(reg.filter { $0.hasPrefix("summary ") }.count == 1 && reg.filter { $0.hasPrefix("calexp ") }.count == 5, "\(reg)")
    }

    /// A job that succeeded made a wrong file (its cause fixed since): `rerun --force --replace
    /// --downstream` makes it again and everything made from it, and the repository ends as a
    /// clean run of the fixed pipeline would — same datasets, same bytes, registry records that
    /// match the files. Without --replace nothing is touched.
    @Test func rerunDownstreamRemakesWhatWasMadeFromTheOldFiles() throws {
        let cli = try CLI()
        try makeSurvey(cli)
        #expect(try cli.run(["run", "sub"]).status == .exited(0))
        let m = try Manifest.read(path: SubmitDirectory(cli.path("sub")).manifest(array: "calib", index: 4))
        #expect(m?.quanta.first?.dataID == #"[["visit",2],["detector",1]]"#, "calib:4 is \(m?.quanta.first?.dataID ?? "?")")
        let summaryPath = { () throws -> String in
            cli.path("repo/datastore/") + ((try cli.datasets(repo: cli.path("repo"), collection: "u/f/run")
                .first { ($0["datasetType"] as? String) == "summary" && ($0["dataID"] as? String ?? "").contains("2") }?["path"] as? String) ?? "")
        }
        let before = try FileManager.default.attributesOfItem(atPath: try summaryPath())
        try flag(cli, "v2-2-1")

        // Registered outputs downstream: refused without --replace, before anything runs.
        let refused = try cli.run(["rerun", "sub", "--job", "calib:4", "--force", "--downstream"])
        #expect(refused.status != .exited(0) && refused.stderr.contains("--replace"), "\(refused.output)")
        let still = try FileManager.default.attributesOfItem(atPath: try summaryPath())
        #expect(still[.modificationDate] as? Date == before[.modificationDate] as? Date, "a refused rerun touched a file")

        // Without --downstream the stale summary is named, and --downstream is offered.
        let one = try cli.run(["rerun", "sub", "--job", "calib:4", "--force", "--replace"])
        #expect(one.status == .exited(0), "\(one.output)")
        #expect(one.stdout.contains("summary {visit=2}") && one.stdout.contains("--downstream"), "\(one.stdout)")

        // The same job, already rerun, is left alone; its downstream runs again.
        let down = try cli.run(["rerun", "sub", "--job", "calib:4", "--replace", "--downstream"])
        #expect(down.status == .exited(0), "\(down.output)")
        #expect(down.stdout.contains("downstream: 1 of 1 jobs run again, 1 registered datasets replaced"), "\(down.stdout)")
        #expect(try String(contentsOfFile: try summaryPath(), encoding: .utf8) == "raw 2 0\nraw 2 1\nrecalibrated\nraw 2 2\n")

        // What a clean run of the fixed pipeline registers, with the same sizes and checksums.
        let clean = try CLI()
        try makeSurvey(clean)
        try flag(clean, "v2-2-1")
        #expect(try clean.run(["run", "sub"]).status == .exited(0))
        func rows(_ c: CLI) throws -> [String] {
            try c.datasets(repo: c.path("repo"), collection: "u/f/run").map {
                "\($0["datasetType"] as? String ?? "?") \($0["dataID"] as? String ?? "?") \($0["size"] as? Int ?? -1) \($0["checksum"] as? String ?? "-")"
            }.sorted()
        }
        #expect(try rows(cli) == rows(clean))
        #expect(try rows(cli).allSatisfy { !$0.hasSuffix(" -") && !$0.contains(" -1 ") })
        // The registry vouches for the files on disk.
        for d in try cli.datasets(repo: cli.path("repo"), collection: "u/f/run") {
            let path = cli.path("repo/datastore/") + (d["path"] as? String ?? "")
            let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? -2
            #expect(size == d["size"] as? Int, "\(path): \(size) bytes, registered as \(d["size"] ?? "?")")
        }
    }

    /// "No work" is a success (the run exits 0); a quantum whose only input was not made has no
    /// work either; a gather with some inputs made runs on those, as pipe_base does.
    @Test func noWorkIsASuccessAndPropagates() throws {
        let cli = try CLI()
        try makeSurvey(cli, visits: 2, detectors: 2)
        try flag(cli, "nowork-1-0")
        try flag(cli, "nowork-2-0")
        try flag(cli, "nowork-2-1")
        let run = try cli.run(["run", "sub"])
        #expect(run.status == .exited(0), "\(run.output)")
        let status = try statusJSON(cli)
        #expect(counts(status, "calib") == ["succeeded": 1, "noWork": 3], "\(counts(status, "calib"))")
        // Visit 1's gather has one calexp and runs; visit 2's has none: no work.
        #expect(counts(status, "gather") == ["succeeded": 1, "noWork": 1], "\(counts(status, "gather"))")
        let st = try cli.run(["status", "sub"])
        #expect(st.status == .exited(0), "no work is no failure")
        let text = st.stdout
        #expect(text.contains("no work"), "the column is shown: \(text)")
        let reg = try registered(cli)
        #expect(reg.count == 2, "one calexp and one summary: \(reg)")
        // Redoing every job would write over registered files: refused, nothing run.
        let again = try cli.run(["run", "sub", "--force"])
        #expect(again.status == .exited(2) || again.status == .exited(1), "\(again.output)")
        #expect(again.stderr.contains("would rewrite them in place"), "\(again.stderr)")
    }
}
