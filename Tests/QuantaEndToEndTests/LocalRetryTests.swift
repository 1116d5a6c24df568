import Foundation
import Testing
import QuantaCore

/// The local backend applies the same retry policy as SLURM's final job; run-quantum enforces the
/// job's memory (SLURM_MEM_PER_NODE, which the local backend sets like SLURM) itself.
@Suite struct LocalRetryTests {
    @Test func outOfMemoryRetriesLocallyWithMoreMemory() throws {
        let f = try ChainFixture(visits: 2)
        try f.config(a: "if [ {dim:visit} = v1 ]; then x=$(head -c 100000000 /dev/zero | tr '\\0' x); sleep 1; fi; cp {input:in} {output:mid}",
                     extra: "requestMemory: 100\nmemoryMultiplier: 4\nnumberOfRetries: 2")
        #expect(try f.cli.run(["plan", "g.qgn", "--repo", "repo", "--config", "submit.yaml", "--out", "sub"]).status == .exited(0))
        let run = try f.cli.run(["run", "sub"])
        #expect(run.status == .exited(0), "\(run.output)")
        #expect(run.stdout.contains("retry 1: a:1 out of memory → attempt 2 of 3 with 400 MB"), "\(run.stdout)")
        let first = f.cli.read(f.cli.path("sub/manifests/a/attempts/1.1.json"))
        #expect(first.contains("\"failureClass\" : \"outOfMemory\"") && first.contains("the job's limit is 100 MB"), "\(first)")
        #expect(f.cli.read(f.cli.path("sub/manifests/a/1.json")).contains("\"memoryLimitMB\" : 400"))
        #expect(try f.registered().count == 4)
    }

    /// Issue 12 item 3: two runs of one job at once (SLURM's and a local restart's, say) each keep
    /// their own attempt manifest; before, both took attempt 1 and the later overwrote the earlier.
    @Test func twoRunsOfOneJobNeverShareAnAttemptManifest() throws {
        let f = try ChainFixture(visits: 1)
        try f.config(a: "sleep 1; cp {input:in} {output:mid}")
        #expect(try f.cli.run(["plan", "g.qgn", "--repo", "repo", "--config", "submit.yaml", "--out", "sub"]).status == .exited(0))
        var o = Spawn.Options()
        o.workingDirectory = f.cli.cwd
        o.stdoutPath = f.cli.path("rq.out")
        o.stderrPath = f.cli.path("rq.err")
        let args = ["--submit-dir", f.cli.path("sub"), "--array", "a", "--index", "0"]
        let env = ProcessInfo.processInfo.environment
        // Both start before either has written a manifest (the command sleeps 1 s).
        let first = try Spawn.launch(CLI.binDir + "/run-quantum", args, environment: env, options: o)
        let second = try Spawn.launch(CLI.binDir + "/run-quantum", args, environment: env, options: o)
        #expect(Spawn.wait(first) == .exited(0), "\(f.cli.read(f.cli.path("rq.err")))")
        #expect(Spawn.wait(second) == .exited(0), "\(f.cli.read(f.cli.path("rq.err")))")
        let attempts = try FileManager.default.contentsOfDirectory(atPath: f.cli.path("sub/manifests/a/attempts")).sorted()
        #expect(attempts == ["0.1.json", "0.2.json"], "one manifest per attempt, no claim left behind: \(attempts)")
        let numbers = Set(attempts.map { f.cli.read(f.cli.path("sub/manifests/a/attempts/" + $0)) }.compactMap { text in
            text.split(separator: "\n").first { $0.contains("\"attempt\"") }.map(String.init)
        })
        #expect(numbers.count == 2, "each manifest carries its own attempt number: \(numbers)")
    }
}
