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
}
