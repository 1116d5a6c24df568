import Foundation
import Testing
import QuantaButler
import QuantaCore
import QuantaFITS
import QuantaRegistry

/// `quanta graph build` and campaigns of builtin steps on the demo survey (local backend): groups
/// per band, a step reading an earlier step's outputs, pilots, retention, `quanta demo --campaign`.
@Suite struct CampaignBuiltinTests {
    /// A demo repository (`quanta demo --plan-only`) in `d/`: 2 bands × `visits` visits × `detectors`.
    func demo(_ cli: CLI, visits: Int = 1, detectors: Int = 2) throws {
        let r = try cli.run(["demo", "--workdir", "d", "--plan-only", "--visits", String(visits), "--detectors", String(detectors)])
        #expect(r.status == .exited(0), "\(r.output)")
    }

    /// (type, data ID) → what identifies the content: each FITS HDU's DATASUM (cfitsio dates the
    /// CHECKSUM comment, so whole files differ by the second), other files' bytes' checksum.
    func contents(_ cli: CLI, collection: String, types: Set<String>) throws -> [String: String] {
        let repo = try Repository(root: cli.path("d/repo"))
        var out: [String: String] = [:]
        for d in try cli.datasets(repo: "d/repo", collection: collection) {
            guard let type = d["datasetType"] as? String, types.contains(type), let path = d["path"] as? String,
                  let dataID = d["dataID"] as? String, out["\(type) \(dataID)"] == nil else { continue }
            let file = repo.absolutePath(path)
            if file.hasSuffix(".fits") {
                let f = try FITSFile(open: file)
                var sums: [String] = []
                for n in 1...(try f.hduCount) {
                    _ = try f.move(to: n)
                    sums.append((try? f.readString(key: "DATASUM")) ?? "-")
                }
                try f.close()
                out["\(type) \(dataID)"] = sums.joined(separator: ",")
            } else {
                out["\(type) \(dataID)"] = d["checksum"] as? String ?? "?"
            }
        }
        return out
    }

    @Test func graphBuildTakesSubsetsQueriesAndInputs() throws {
        let cli = try CLI()
        try demo(cli, visits: 2)
        let all = try cli.run(["graph", "build", "--repo", "d/repo", "--out", "all.qgn"])
        #expect(all.status == .exited(0) && all.stdout.contains("all.qgn: 32 quanta (isr 8, calibrate 8, makeWarp 8, assembleCoadd 4, detectCoadd 4)"), "\(all.output)")
        // The same graph as the demo built for itself.
        let info = try cli.run(["graph", "info", "d/demo.qgn"]).stdout
        #expect(info.contains("32 quanta"), "\(info)")
        let g = try cli.run(["graph", "build", "--repo", "d/repo", "--tasks", "isr,calibrate", "--where", "band = 'g' AND detector IN (1)", "--out", "g.qgn"])
        #expect(g.stdout.contains("g.qgn: 4 quanta (isr 2, calibrate 2)"), "\(g.output)")
        // Nothing made calexps yet: the coadd tasks alone have nothing to do, and no file is written.
        let empty = try cli.run(["graph", "build", "--repo", "d/repo", "--tasks", "makeWarp,assembleCoadd", "--out", "w.qgn"])
        #expect(empty.status == .exited(1) && empty.stderr.contains("the graph is empty: nothing in QuantaCam/raw/all, QuantaCam/calib, skymaps makes a quantum of makeWarp, assembleCoadd; no file written"), "\(empty.output)")
        #expect(!FileManager.default.fileExists(atPath: cli.path("w.qgn")))
        let typo = try cli.run(["graph", "build", "--repo", "d/repo", "--tasks", "calibrat", "--out", "x.qgn"])
        #expect(typo.stderr.contains("the built-in pipeline has no task 'calibrat'; did you mean 'calibrate'?"), "\(typo.output)")
        let bad = try cli.run(["graph", "build", "--repo", "d/repo", "--where", "bnd = 'g'", "--out", "x.qgn"])
        #expect(bad.stderr.contains("unknown dimension 'bnd'; did you mean 'band'?"), "\(bad.output)")
        let missing = try cli.run(["graph", "build", "--repo", "d/repo", "--input", "u/nobody", "--out", "x.qgn"])
        #expect(missing.stderr.contains("no collection named 'u/nobody'"), "\(missing.output)")
    }

    /// Step sfp once per band, step coadd reading sfp's calexps through the run's chain: every
    /// output's data equals what one graph of the whole pipeline made (the reference here).
    @Test func aTwoStepCampaignPerBandEqualsOneGraph() throws {
        let cli = try CLI()
        try demo(cli)
        #expect(try cli.run(["run", "d/submit"]).status == .exited(0))
        try """
        name: twostep
        repository: repo
        output: u/t/two
        steps:
          - name: sfp
            builtin: [isr, calibrate]
            groups: band
            gate: {maxFailedFraction: 0, datasetTypes: [calexp]}
          - name: coadd
            after: sfp
            builtin: [makeWarp, assembleCoadd, detectCoadd]
            gate: {datasetTypes: [deepCoadd_obj]}
        """.write(toFile: cli.path("d/c.yaml"), atomically: true, encoding: .utf8)
        let run = try cli.run(["campaign", "run", "d/c.yaml", "--db", cli.path("db.sqlite"), "--poll", "0.1"])
        #expect(run.status == .exited(0), "\(run.output)")
        let text = CampaignTests.plain(run.stdout)
        #expect(text.contains("sfp            passed   8 succeeded, 0 failed, 0 blocked of 8 quanta"), "\(run.stdout)")
        #expect(text.contains("      g: succeeded  u/t/two/1/sfp/g") && text.contains("      r: succeeded  u/t/two/1/sfp/r"), "\(run.stdout)")
        // The chains: each group's run in the step's chain, the steps newest first in the run's.
        let collections = try cli.run(["repo", "collections", "d/repo"]).stdout
        #expect(collections.contains("u/t/two/1  CHAINED  [u/t/two/1/coadd, u/t/two/1/sfp]"), "\(collections)")
        #expect(collections.contains("u/t/two/1/sfp  CHAINED  [u/t/two/1/sfp/r, u/t/two/1/sfp/g,"), "\(collections)")
        let types: Set = ["postISRCCD", "calexp", "src", "deepCoadd_directWarp", "deepCoadd", "deepCoadd_preview", "deepCoadd_obj"]
        let reference = try contents(cli, collection: "demo/out", types: types)
        let campaign = try contents(cli, collection: "u/t/two/1", types: types)
        #expect(reference.count == 28 && campaign.count == reference.count, "\(reference.count) vs \(campaign.count)")
        let differ = reference.keys.filter { campaign[$0] != reference[$0] }.sorted()
        #expect(differ.isEmpty, "\(differ.count) outputs differ, e.g. \(differ.prefix(3))")
    }

    /// A pilot (detector 0) with a manual gate holds the step; approved, the rest runs, and no
    /// quantum runs twice.
    @Test func aPilotGoesFirstAndItsGateHoldsTheRest() throws {
        let cli = try CLI()
        try demo(cli)
        try """
        name: piloted
        repository: repo
        output: u/t/pilot
        steps:
          - name: sfp
            builtin: [isr, calibrate]
            pilot: "detector = 0"
            gate: manual
        """.write(toFile: cli.path("d/c.yaml"), atomically: true, encoding: .utf8)
        let db = cli.path("db.sqlite")
        let held = try cli.run(["campaign", "run", "d/c.yaml", "--db", db, "--poll", "0.1"])
        #expect(held.status == .exited(2), "\(held.output)")
        #expect(CampaignTests.plain(held.stdout).contains("sfp            gated    pilot: 4 succeeded, 0 failed, 0 blocked of 4 quanta"), "\(held.stdout)")
        #expect(!held.stdout.contains("      all:"), "the full step waits: \(held.stdout)")
        #expect(try cli.run(["campaign", "approve", "piloted", "sfp", "--db", db]).status == .exited(0))
        let rest = try cli.run(["campaign", "tick", "--db", db])
        #expect(rest.stdout.contains("piloted: run 1 held"), "the full step's gate is manual too: \(rest.output)")
        let status = CampaignTests.plain(try cli.run(["campaign", "status", "piloted", "--db", db]).stdout)
        #expect(status.contains("sfp            gated    8 succeeded, 0 failed, 0 blocked of 8 quanta"), "\(status)")
        #expect(try cli.run(["campaign", "approve", "piloted", "sfp", "--db", db]).status == .exited(0))
        #expect(try cli.run(["campaign", "tick", "--db", db]).stdout.contains("piloted: run 1 succeeded"))
        let pilot = try cli.datasets(repo: "d/repo", collection: "u/t/pilot/1/sfp/pilot").filter { ($0["datasetType"] as? String) == "calexp" }
        let full = try cli.datasets(repo: "d/repo", collection: "u/t/pilot/1/sfp/all").filter { ($0["datasetType"] as? String) == "calexp" }
        #expect(pilot.count == 2 && full.count == 2, "\(pilot.count) + \(full.count)")
        #expect(Set(pilot.compactMap { $0["dataID"] as? String }).isDisjoint(with: full.compactMap { $0["dataID"] as? String }))
        // Both in the step's chain, which went into the run's when approved.
        let run = try cli.datasets(repo: "d/repo", collection: "u/t/pilot/1").filter { ($0["datasetType"] as? String) == "calexp" }
        #expect(run.count == 4, "\(run.count)")
    }

    /// keep: 1 — each successful run removes the older ones (collections, files, submit dirs),
    /// except a run marked keep and one whose collections a chain outside the campaign lists.
    @Test func retentionRemovesOlderRunsAndSparesKeptAndReferencedOnes() throws {
        let cli = try CLI()
        try demo(cli)
        try """
        name: nightly
        repository: repo
        output: u/t/nightly
        retention: {keep: 1}
        steps:
          - name: sfp
            builtin: [isr, calibrate]
        """.write(toFile: cli.path("d/c.yaml"), atomically: true, encoding: .utf8)
        let db = cli.path("db.sqlite")
        func run() throws -> CLI.Result { try cli.run(["campaign", "run", "d/c.yaml", "--db", db, "--poll", "0.1"]) }
        #expect(try run().status == .exited(0))
        #expect(try cli.run(["campaign", "keep", "nightly", "1", "--db", db]).status == .exited(0))
        #expect(try run().status == .exited(0))
        let repo = try Repository(root: cli.path("d/repo"))
        let registry = try repo.openRegistry()
        #expect(try registry.collectionType("u/t/nightly/1") != nil, "run 1 is marked keep")
        // Someone chains run 2's output into their own collection: retention leaves run 2 alone.
        try registry.prependToChain("u/someone/favourite", run: "u/t/nightly/2/sfp/all", rest: [])
        #expect(try cli.run(["campaign", "keep", "nightly", "1", "--no", "--db", db]).status == .exited(0))
        let third = try run()
        #expect(third.status == .exited(0), "\(third.output)")
        #expect(third.stdout.contains("run 1 removed (retention keeps the last 1 successful runs)"), "\(third.stdout)")
        #expect(try registry.collectionType("u/t/nightly/1") == nil && registry.collectionType("u/t/nightly/1/sfp/all") == nil)
        #expect(try registry.count(run: "u/t/nightly/2/sfp/all") > 0 && registry.count(run: "u/t/nightly/3/sfp/all") > 0)
        #expect(!FileManager.default.fileExists(atPath: repo.datastoreRoot + "/u/t/nightly/1"), "run 1's files are gone")
        #expect(FileManager.default.fileExists(atPath: repo.datastoreRoot + "/u/t/nightly/3"))
        #expect(!FileManager.default.fileExists(atPath: cli.path("runs/nightly/1")) && FileManager.default.fileExists(atPath: cli.path("runs/nightly/3/sfp/all/plan.json")))
        let log = try cli.run(["campaign", "log", "nightly", "--db", db]).stdout
        #expect(log.contains("retention: run 2 kept: u/t/nightly/2/sfp/all is in chain u/someone/favourite"), "\(log)")
        #expect(log.contains("run 1 marked keep") && log.contains("run 1 no longer marked keep"), "\(log)")
        let status = try cli.run(["campaign", "status", "nightly", "--db", db]).stdout
        #expect(status.contains("run 1: removed by retention") && status.contains("run 2: succeeded") && status.contains("run 3: succeeded"), "\(status)")
        // By hand: refused while the chain lists it, then removed with the chain.
        let refused = try cli.run(["repo", "remove-run", "d/repo", "u/t/nightly/2/sfp/all"])
        #expect(refused.status != .exited(0) && refused.stderr.contains("is in chain u/someone/favourite"), "\(refused.output)")
        let removed = try cli.run(["repo", "remove-run", "d/repo", "u/t/nightly/2/sfp/all", "u/t/nightly/2/sfp", "u/t/nightly/2", "u/someone/favourite"])
        #expect(removed.status == .exited(0) && removed.stdout.contains("Removed 1 runs and 3 chains: 12 datasets"), "\(removed.output)")
    }

    /// The outputsValidated gate reads every output back: a calexp cut short after the jobs ran
    /// (here by the gate's own command, as a failing disk would) fails the step, naming the file.
    @Test func theOutputsGateReadsEveryFileBack() throws {
        let cli = try CLI()
        try demo(cli)
        try """
        name: audited
        repository: repo
        output: u/t/audit
        steps:
          - name: good
            builtin: [isr]
            gate: {outputsValidated: true}
          - name: damaged
            after: good
            builtin: [calibrate]
            gate:
              command: 'f=$(ls repo/datastore/u/t/audit/1/damaged/all/calexp/*.fits | head -1); truncate -s 4000 "$f"'
              outputsValidated: true
        """.write(toFile: cli.path("d/c.yaml"), atomically: true, encoding: .utf8)
        let db = cli.path("db.sqlite")
        let run = try cli.run(["campaign", "run", "d/c.yaml", "--db", db, "--poll", "0.1"])
        #expect(run.status == .exited(1), "\(run.output)")
        let text = CampaignTests.plain(run.stdout)
        #expect(text.contains("good           passed"), "\(run.stdout)")
        #expect(text.contains("damaged        failed   gate: 1 of 8 outputs fail their checks, e.g. ") && text.contains("4000 bytes, registered with"), "\(run.stdout)")
        let log = try cli.run(["campaign", "log", "audited", "--db", db]).stdout
        #expect(log.contains("gate outputsValidated: all 4 outputs read back and valid"), "\(log)")
    }

    /// A group whose graph comes out empty is reported as such (nothing planned); a step all of
    /// whose groups are empty is held for a person, not called a success.
    @Test func emptyGroupsAreSaidAndAnEmptyStepIsHeld() throws {
        let cli = try CLI()
        try demo(cli)
        try """
        name: sparse
        repository: repo
        output: u/t/sparse
        steps:
          - name: some
            builtin: [isr]
            groups: {queries: {none: "visit = 1", gband: "band = 'g'"}}
          - name: nothing
            after: some
            builtin: [isr]
            dataQuery: "detector = 99"
        """.write(toFile: cli.path("d/c.yaml"), atomically: true, encoding: .utf8)
        let run = try cli.run(["campaign", "run", "d/c.yaml", "--db", cli.path("db.sqlite"), "--poll", "0.1"])
        #expect(run.status == .exited(2), "\(run.output)")
        let text = CampaignTests.plain(run.stdout)
        #expect(text.contains("some           passed   2 succeeded, 0 failed, 0 blocked of 2 quanta"), "\(run.stdout)")
        #expect(text.contains("      none: empty") && text.contains("its graph is empty: nothing matches \"visit = 1\""), "\(run.stdout)")
        #expect(text.contains("nothing        empty    the step's graph has no quanta; review it, then approve or reject"), "\(run.stdout)")
        #expect(!FileManager.default.fileExists(atPath: cli.path("runs/sparse/1/some/none")), "nothing planned for an empty group")
    }

    @Test func theDemoRunsAsACampaign() throws {
        let cli = try CLI()
        let r = try cli.run(["demo", "--workdir", "dc", "--campaign", "--visits", "1", "--detectors", "2"])
        #expect(r.status == .exited(0), "\(r.output)")
        let text = CampaignTests.plain(r.stdout)
        #expect(text.contains("run 1: removed by retention") && text.contains("run 2: succeeded"), "\(r.stdout)")
        #expect(text.contains("sfp            passed   8 succeeded, 0 failed, 0 blocked of 8 quanta"), "\(r.stdout)")
        #expect(text.contains("      g: succeeded  demo/campaign/2/sfp/g"), "\(r.stdout)")
        #expect(r.stdout.contains("Science check of demo/campaign/2/coadd/all"), "\(r.stdout)")
        let repo = try Repository(root: cli.path("dc/repo")).openRegistry()
        #expect(try repo.collectionType("demo/campaign/1") == nil && repo.collectionType("demo/campaign/2") == .chained)
        // One page for the campaign's latest run, linking each submission's report.
        let report = try cli.run(["report", "demo", "--campaign", "--db", cli.path("dc/campaigns.sqlite")])
        #expect(report.status == .exited(0) && report.stdout.contains("campaign demo run 2, 3 submission reports"), "\(report.output)")
        let index = cli.read(cli.path("dc/runs/demo/2/report.html"))
        #expect(index.contains("<a href=\"\(cli.path("dc/runs/demo/2/sfp/g/report.html"))\">") && index.contains("run 2: succeeded"), "\(index.prefix(1500))")
        #expect(FileManager.default.fileExists(atPath: cli.path("dc/runs/demo/2/coadd/all/report.html")))
        // Requests learned from the campaign's latest successful run, every task of both steps.
        let tune = try cli.run(["tune", "demo", "--campaign", "--db", cli.path("dc/campaigns.sqlite")])
        #expect(tune.status == .exited(0) && ["isr", "calibrate", "makeWarp", "assembleCoadd", "detectCoadd"].allSatisfy { tune.stdout.contains("  \($0): {requestMemory: ") }, "\(tune.output)")
    }
}
