import Foundation
import Testing
import QuantaCore

/// Issue 14: an output run is written by one submission unless the person asks to extend it, and
/// a merge that fails on a conflict leaves status honest (it said "Merge: not run", exit 0).
@Suite struct OutputRunTests {
    @Test func anExistingRunIsRefusedAndAConflictingMergeFailsLoudly() throws {
        let f = try ChainFixture(visits: 2)
        try f.config(a: "cp {input:in} {output:mid}")
        let plan = { (out: String, extra: [String]) in
            try f.cli.run(["plan", "g.qgn", "--repo", "repo", "--config", "submit.yaml", "--output-run", "u/x/shared", "--out", out] + extra)
        }
        #expect(try plan("sub1", []).status == .exited(0))
        #expect(try f.cli.run(["run", "sub1"]).status == .exited(0))
        let first = try f.cli.datasets(repo: f.cli.path("repo"), collection: "u/x/shared")
        #expect(first.count == 4)

        // The same run again: refused before anything is written, with the way out.
        let again = try plan("sub2", [])
        #expect(again.status == .exited(1))
        #expect(again.stderr.contains("output run 'u/x/shared' already holds 4 datasets") && again.stderr.contains("--extend-run"), "\(again.output)")
        #expect(!FileManager.default.fileExists(atPath: f.cli.path("sub2/plan.json")))

        // Asked to extend it, with the same data IDs: the jobs run, the merge conflicts and says so.
        #expect(try plan("sub2", ["--extend-run"]).status == .exited(0))
        let run = try f.cli.run(["run", "sub2"])
        #expect(run.status == .exited(1), "\(run.output)")
        #expect(run.stderr.contains("the merge failed"), "\(run.output)")
        let status = try f.cli.run(["status", "sub2"])
        #expect(status.status == .exited(1), "a failed merge is a failure: \(status.output)")
        #expect(status.stdout.contains("Merge: FAILED") && status.stdout.contains("already registered in run u/x/shared under another UUID"), "\(status.stdout)")
        let json = try f.cli.run(["status", "sub2", "--json", "--exit-zero"])
        #expect(json.status == .exited(0))
        #expect(((try JSONSerialization.jsonObject(with: Data(json.stdout.utf8))) as? [String: Any])?["mergeFailed"] as? Bool == true, "\(json.stdout)")
        // The first submission's datasets are untouched.
        let after = try f.cli.datasets(repo: f.cli.path("repo"), collection: "u/x/shared")
        #expect(after.count == 4 && Set(after.compactMap { $0["id"] as? String }) == Set(first.compactMap { $0["id"] as? String }))

    }

    /// `bps submit` prints its own submit directory as the run id; the plugin's Quanta submission
    /// is in its `quanta/`. Every command takes either (it said "not a submit directory").
    @Test func commandsTakeBpsRunIdForItsQuantaSubmission() throws {
        let f = try ChainFixture(visits: 1)
        try f.config(a: "cp {input:in} {output:mid}")
        #expect(try f.cli.run(["plan", "g.qgn", "--repo", "repo", "--config", "submit.yaml", "--out", "bps-run/quanta"]).status == .exited(0))
        let run = try f.cli.run(["run", "bps-run"])
        #expect(run.status == .exited(0), "\(run.output)")
        let status = try f.cli.run(["status", "bps-run"])
        #expect(status.status == .exited(0) && status.stdout.contains("datasets registered in u/slurm/run"), "\(status.output)")
        let none = try f.cli.run(["status", "repo"])
        #expect(none.status == .exited(1) && none.stderr.contains("not a submit directory") && none.stderr.contains("quanta/plan.json"), "\(none.output)")
    }
}
