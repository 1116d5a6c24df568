import Foundation
import Testing
import QuantaCore

/// Campaigns over an LSST butler with the real middleware: `pipeline:` steps whose graphs
/// `pipetask qgraph` builds per group when the step starts (step 2 reading step 1's outputs), with
/// pipetask's own `-c`, a quantum failing, the collections chained through the butler.
@Suite(.enabled(if: LSSTKit.enabled, "needs the LSST venv and fixtures"), .serialized)
struct LSSTCampaignTests {
    /// "type {data ID}" of every dataset in the runs whose names start with `prefix`.
    static func outputs(_ cli: CLI, repo: String, prefix: String) throws -> [String] {
        let script = """
        import sys
        from lsst.daf.butler import Butler
        b = Butler.from_config(sys.argv[1])
        runs = [c for c in b.registry.queryCollections() if c.startswith(sys.argv[2])]
        rows = set()
        for r in b.registry.queryDatasets(..., collections=runs, findFirst=False):
            if r.run.startswith(sys.argv[2]):
                rows.add(f"{r.datasetType.name} {dict(r.dataId.required)}")
        print("\\n".join(sorted(rows)))
        """
        let r = try cli.run(["-c", script, repo, prefix], executable: LSSTKit.venv + "/bin/python3")
        #expect(r.status == .exited(0), "\(r.output)")
        return r.stdout.split(separator: "\n").map(String.init)
    }

    /// Without failures the campaign's outputs equal `pipetask run` of the whole pipeline; with a
    /// quantum failing in step 1 they equal `pipetask run` step by step (what the campaign
    /// automates: step 2's graph is built from what step 1 made, as bps's multi-step runs do).
    @Test(arguments: [false, true])
    func aTwoStepCampaignEqualsPipetaskRun(failing: Bool) throws {
        let cli = try CLI()
        let pipeline = try LSSTKit.info("chain")["pipeline"] as? String ?? ""
        let ours = try LSSTKit.copy("chain", into: cli, as: "ours")
        let theirs = try LSSTKit.copy("chain", into: cli, as: "theirs")
        let site = try LSSTKit.site(cli)
        let overrides = ["isr:saveLogOutput=False"] + (failing ? ["calibrate:fail_condition=detector IN (1)"] : [])
        try """
        name: lsst
        repository: ours
        site: \(site)
        config: cluster.yaml
        inputs: [Cam1/defaults]
        output: u/t/camp
        steps:
          - name: sfp
            pipeline: "\(pipeline)#isr,calibrate"
            groups: {dimension: visit, values: ["1001", "1002", "1003"]}
            overrides: [\(overrides.map { "\"\($0)\"" }.joined(separator: ", "))]
            gate: {maxFailedFraction: 0.2, datasetTypes: [calexp_like]}
          - name: gather
            after: sfp
            pipeline: "\(pipeline)#gather"
            gate: {datasetTypes: [visit_summary_like]}
        """.write(toFile: cli.path("c.yaml"), atomically: true, encoding: .utf8)
        // One job per visit in step 1 (each run-qbb start costs seconds); the failures are not transient.
        try "numberOfRetries: 0\ncluster:\n  perVisit:\n    pipetasks: isr, calibrate\n    dimensions: visit\n".write(toFile: cli.path("cluster.yaml"), atomically: true, encoding: .utf8)
        var env = ["PATH": LSSTKit.venv + "/bin:" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")]
        env["VIRTUAL_ENV"] = LSSTKit.venv
        let run = try cli.run(["campaign", "run", "c.yaml", "--db", cli.path("db.sqlite"), "--poll", "0.2"], environment: env)
        #expect(run.status == .exited(0), "\(run.output)")
        let text = CampaignTests.plain(run.stdout)
        #expect(text.contains(failing ? "sfp            passed   21 succeeded, 3 failed, 0 blocked of 24 quanta"
                                      : "sfp            passed   24 succeeded, 0 failed, 0 blocked of 24 quanta"), "\(run.stdout)")
        #expect(text.contains("gather         passed   3 succeeded, 0 failed, 0 blocked of 3 quanta"), "\(run.stdout)")
        #expect(run.stdout.contains("× calibrate failed") == failing, "the failures, grouped: \(run.stdout)")

        let c = overrides.flatMap { ["-c", $0] }
        let pipetask = LSSTKit.venv + "/bin/pipetask"
        if failing {
            // What the campaign automates, by hand: pipetask run of step 1's subset with the same -c,
            // then of step 2's on step 1's outputs.
            let one = try cli.run(["--log-level", "WARNING", "run", "-b", theirs, "-i", "Cam1/defaults", "-o", "u/ref/sfp",
                                   "-p", "\(pipeline)#isr,calibrate", "--register-dataset-types"] + c, executable: pipetask)
            #expect(one.status != .exited(0), "three calibrate quanta fail: \(one.output.suffix(300))")
            let two = try cli.run(["--log-level", "WARNING", "run", "-b", theirs, "-i", "u/ref/sfp", "-o", "u/ref/gather",
                                   "-p", "\(pipeline)#gather", "--register-dataset-types"], executable: pipetask)
            #expect(two.status == .exited(0), "\(two.output.suffix(500))")
        } else {
            // The whole pipeline in one pipetask run.
            let whole = try cli.run(["--log-level", "WARNING", "run", "-b", theirs, "-i", "Cam1/defaults", "-o", "u/ref/whole",
                                     "-p", pipeline, "--register-dataset-types"] + c, executable: pipetask)
            #expect(whole.status == .exited(0), "\(whole.output.suffix(500))")
        }
        let a = try Self.outputs(cli, repo: ours, prefix: "u/t/camp/1/")
        let b = try Self.outputs(cli, repo: theirs, prefix: "u/ref/")
        #expect(!a.isEmpty && a == b, "ours \(a.count), pipetask \(b.count); only ours: \(Set(a).subtracting(b).prefix(4)); only theirs: \(Set(b).subtracting(a).prefix(4))")
        #expect(!a.contains { $0.hasPrefix("isr_log ") } && a.contains { $0.hasPrefix("calibrate_log ") }, "-c isr:saveLogOutput=False was applied")

        // The chains, through the butler: each group's run in its step's, the steps (newest first) in the run's.
        let chains = try cli.run(["query-collections", ours, "u/t/camp/1", "--chains", "TREE"], executable: LSSTKit.venv + "/bin/butler")
        let lines = chains.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        let gather = lines.firstIndex { $0.hasPrefix("u/t/camp/1/gather ") }, sfp = lines.firstIndex { $0.hasPrefix("u/t/camp/1/sfp ") }
        #expect(gather != nil && sfp != nil && gather! < sfp!, "\(chains.stdout)")
        #expect(lines.contains { $0.hasPrefix("u/t/camp/1/sfp/1002 ") }, "\(chains.stdout)")
    }

    /// `quanta repo remove-run` on a butler: refused while a chain outside lists the run, then the
    /// run and its chain go, with their files (retention's way of removing a run).
    @Test func removeRunWorksOnAButlerToo() throws {
        let cli = try CLI()
        let repo = try LSSTKit.copy("chain", into: cli, as: "repo")
        let site = try LSSTKit.site(cli)
        let refused = try cli.run(["repo", "remove-run", repo, "Cam1/raw/all", "--site", site])
        #expect(refused.status != .exited(0) && refused.stderr.contains("Cam1/raw/all is in chain Cam1/defaults"), "\(refused.output)")
        let files = {
            (FileManager.default.enumerator(atPath: repo)?.allObjects as? [String] ?? []).filter { p in
                var dir: ObjCBool = false
                return p.contains("raw_like") && FileManager.default.fileExists(atPath: repo + "/" + p, isDirectory: &dir) && !dir.boolValue
            }
        }
        #expect(!files().isEmpty)
        let removed = try cli.run(["repo", "remove-run", repo, "Cam1/raw/all", "Cam1/defaults", "--site", site])
        #expect(removed.status == .exited(0) && removed.stdout.contains("Removed Cam1/raw/all, Cam1/defaults (12 datasets)"), "\(removed.output)")
        let left = try cli.run(["query-collections", repo], executable: LSSTKit.venv + "/bin/butler")
        #expect(!left.stdout.contains("Cam1/raw/all") && !left.stdout.contains("Cam1/defaults"), "\(left.output)")
        #expect(files().isEmpty, "the raws' files went with them: \(files().prefix(3))")
    }
}
