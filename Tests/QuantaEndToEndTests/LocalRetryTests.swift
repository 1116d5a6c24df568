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

    /// SLURM's cgroup limit can be hit between two of run-quantum's 0.2 s samples (a command can
    /// allocate hundreds of MB in less); the kernel's OOM killer then ends the command, and the
    /// manifest must still say "out of memory", not "killed by signal 9". Seen on the CI machine.
    /// Here run-quantum runs inside a memory cgroup of 64 MB with no limit of its own to watch.
    @Test(.enabled(if: KernelMemoryCgroup.writable, "needs a writable cgroup v1 memory controller"))
    func aKernelOOMKillIsReportedAsOutOfMemory() throws {
        let f = try ChainFixture(visits: 1)
        try f.config(a: "python3 -c 'x = b\"x\" * 400_000_000' && cp {input:in} {output:mid}")
        #expect(try f.cli.run(["plan", "g.qgn", "--repo", "repo", "--config", "submit.yaml", "--out", "sub"]).status == .exited(0))
        let cg = try KernelMemoryCgroup(limitMB: 64)
        defer { cg.remove() }
        var o = Spawn.Options()
        o.workingDirectory = f.cli.cwd
        o.stdoutPath = f.cli.path("rq.out")
        o.stderrPath = f.cli.path("rq.err")
        var env = ProcessInfo.processInfo.environment
        env["SLURM_MEM_PER_NODE"] = nil
        env["SLURM_MEM_PER_CPU"] = nil
        let line = "echo $$ > '\(cg.path)/cgroup.procs' && exec '\(CLI.binDir)/run-quantum' --submit-dir sub --array a --index 0"
        let pid = try Spawn.launch("/bin/sh", ["-c", line], environment: env, options: o)
        _ = Spawn.wait(pid)
        let m = f.cli.read(f.cli.path("sub/manifests/a/0.json"))
        #expect(m.contains("\"failureClass\" : \"outOfMemory\"") && m.contains("out of memory") && m.contains("limit is 64 MB"),
                "\(m)\n\(f.cli.read(f.cli.path("rq.err")))")
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

/// A memory cgroup (v1) under this process's own, for a test that needs the kernel's OOM killer.
struct KernelMemoryCgroup {
    let path: String

    static var ownDir: String? {
        guard let text = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") {
            let f = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            if f.count == 3, f[1].split(separator: ",").contains("memory") { return "/sys/fs/cgroup/memory" + f[2] }
        }
        return nil
    }

    static var writable: Bool {
        guard let d = ownDir else { return false }
        let probe = d + "/quanta-probe-\(getpid())"
        guard mkdir(probe, 0o755) == 0 else { return false }
        rmdir(probe)
        return true
    }

    init(limitMB: Int) throws {
        guard let d = Self.ownDir else { throw QuantaError(.io, "no memory cgroup") }
        path = d + "/quanta-oom-\(UUID().uuidString.prefix(8))"
        guard mkdir(path, 0o755) == 0 else { throw QuantaError(.io, "cannot create \(path)") }
        try "\(limitMB * 1_048_576)".write(toFile: path + "/memory.limit_in_bytes", atomically: false, encoding: .utf8)
    }

    func remove() { rmdir(path) }
}
