import Foundation
import QuantaButler
import QuantaCore
import QuantaPostgres
import QuantaRegistry
import QuantaTestSupport
import Testing

/// Many submissions of one campaign merging into one registry at once, and a merge killed with
/// SIGKILL mid-batch then run again (issue 18): on SQLite, which must serialise them without
/// "database is locked", and on PostgreSQL.
struct MergeFixture {
    let cli: CLI
    let repo: String
    let outputsPerSubmission: Int

    /// A repository (SQLite, or PostgreSQL at `url`) with a synthetic graph's raws, and `count`
    /// submissions of that graph — each its own output run, all in the chain `synth` — whose
    /// jobs are marked succeeded without running.
    init(registry url: String?, visits: Int, detectors: Int, submissions count: Int) throws {
        cli = try CLI()
        repo = cli.path("repo")
        var create = ["repo", "create", repo]
        if let url { create += ["--registry", url] }
        try Self.ok(cli.run(create))
        try Self.ok(cli.run(["graph", "synth", "--visits", "\(visits)", "--detectors", "\(detectors)", "--out", cli.path("g.qgn"), "--repo", repo]))
        var outputs = 0
        for i in 0..<count {
            try Self.ok(cli.run(["plan", cli.path("g.qgn"), "--repo", repo, "--config", CLI.repoRoot + "/scripts/synth-commands.yaml",
                                 "--out", cli.path("sub\(i)"), "--output-run", "synth/run\(i)", "--output", "synth"]))
            let sim = try cli.run(["bench", "simulate-run", cli.path("sub\(i)")])
            try Self.ok(sim)
            outputs = Int(sim.stdout.split(separator: ",").last!.split(separator: " ").first { Int($0) != nil }.map { String($0) } ?? "0")!
        }
        outputsPerSubmission = outputs
    }

    @discardableResult
    static func ok(_ r: CLI.Result) throws -> CLI.Result {
        guard r.status == .exited(0) else { throw QuantaError(.usage, "command failed: \(r.output)") }
        return r
    }

    func registry() throws -> any Registry { try Repository(root: repo).openRegistry() }

    /// Merges every submission at once; returns each merge's result.
    func mergeAll(_ count: Int, batch: Int) throws -> [(Int32, String)] {
        var pids: [pid_t] = []
        for i in 0..<count {
            pids.append(try cli.launch(["merge", cli.path("sub\(i)"), "--batch-size", "\(batch)"], log: cli.path("merge\(i).log")))
        }
        return pids.enumerated().map { i, pid in
            var st: Int32 = 0
            waitpid(pid, &st, 0)
            return (st, cli.read(cli.path("merge\(i).log")) + cli.read(cli.path("merge\(i).log.err")))
        }
    }

    /// Eight merges at once: each exits 0, every dataset is registered exactly once, the chain
    /// lists every run once, newest of them first.
    func checkConcurrent(_ n: Int) throws {
        let started = Date()
        let results = try mergeAll(n, batch: 100)
        let seconds = Date().timeIntervalSince(started)
        for (i, (status, log)) in results.enumerated() {
            #expect(status == 0, "merge \(i): \(log)")
            #expect(!log.contains("locked"), "merge \(i): \(log)")
        }
        let r = try registry()
        for i in 0..<n { #expect(try r.count(run: "synth/run\(i)") == outputsPerSubmission) }
        let chain = try r.chain("synth")
        #expect(chain.count == n + 1 && Set(chain).count == n + 1 && chain.last == "synth/raw", "\(chain)")
        #expect(Set(chain.prefix(n)) == Set((0..<n).map { "synth/run\($0)" }), "\(chain)")
        // Running them all again registers nothing new.
        for (i, (status, log)) in try mergeAll(n, batch: 100).enumerated() {
            #expect(status == 0 && log.contains("0 datasets registered, \(outputsPerSubmission) already registered"), "merge \(i) again: \(log)")
        }
        // Each merge puts its run first again; the chain still lists every run once.
        let after = try r.chain("synth")
        #expect(after.count == chain.count && Set(after) == Set(chain) && after.last == "synth/raw", "\(after)")
        print("\(n) merges at once into \(r.location): \(n * outputsPerSubmission) datasets in \(String(format: "%.2f", seconds)) s")
    }

    /// A merge killed with SIGKILL after its first committed batch: whole batches only are in the
    /// registry; run again, it registers the rest and nothing twice.
    func checkKilled() throws {
        let pid = try cli.launch(["merge", cli.path("sub0"), "--batch-size", "200", "--batch-pause-ms", "150"], log: cli.path("killed.log"))
        let r = try registry()
        let deadline = Date().addingTimeInterval(60)
        var seen = 0
        while Date() < deadline {
            seen = (try? r.count(run: "synth/run0")) ?? 0
            if seen > 0 { break }
            usleep(20_000)
        }
        kill(pid, SIGKILL)
        var st: Int32 = 0
        waitpid(pid, &st, 0)
        let before = try r.count(run: "synth/run0")
        #expect(before > 0 && before < outputsPerSubmission && before % 200 == 0, "\(before) of \(outputsPerSubmission) after the kill")
        let again = try Self.ok(cli.run(["merge", cli.path("sub0")]))
        #expect(again.stdout.contains("\(outputsPerSubmission - before) datasets registered, \(before) already registered"), "\(again.output)")
        #expect(try r.count(run: "synth/run0") == outputsPerSubmission)
        #expect(try r.chain("synth") == ["synth/run0", "synth/raw"])
    }
}

@Suite struct ConcurrentMergeSQLiteTests {
    @Test func eightMergesAtOnceIntoSQLite() throws {
        try MergeFixture(registry: nil, visits: 12, detectors: 10, submissions: 8).checkConcurrent(8)
    }

    @Test func aMergeKilledMidBatchThenRunAgainIntoSQLite() throws {
        try MergeFixture(registry: nil, visits: 40, detectors: 20, submissions: 1).checkKilled()
    }
}

@Suite(.enabled(if: TestPostgres.enabled, Comment(rawValue: TestPostgres.why)))
struct ConcurrentMergePostgresTests {
    @Test func eightMergesAtOnceIntoPostgreSQL() throws {
        let url = TestPostgres.scratchURL("merge8")
        defer { TestPostgres.drop(url) }
        try MergeFixture(registry: url, visits: 12, detectors: 10, submissions: 8).checkConcurrent(8)
    }

    @Test func aMergeKilledMidBatchThenRunAgainIntoPostgreSQL() throws {
        let url = TestPostgres.scratchURL("kill")
        defer { TestPostgres.drop(url) }
        try MergeFixture(registry: url, visits: 40, detectors: 20, submissions: 1).checkKilled()
    }

    /// A whole run on a repository whose registry is on the server — plan (its input checks), the
    /// jobs, the merge, status, report — and the password in none of the files Quanta wrote.
    @Test func aRunOnAPostgreSQLRegistryLeavesNoPasswordBehind() throws {
        let url = TestPostgres.scratchURL("run")
        defer { TestPostgres.drop(url) }
        let cli = try CLI()
        let secret = ProcessInfo.processInfo.environment["PGPASSWORD"] ?? ""
        try MergeFixture.ok(cli.run(["repo", "create", cli.path("repo"), "--registry", url]))
        try MergeFixture.ok(cli.run(["graph", "synth", "--visits", "3", "--detectors", "4", "--out", cli.path("g.qgn"), "--repo", cli.path("repo")]))
        try MergeFixture.ok(cli.run(["plan", cli.path("g.qgn"), "--repo", cli.path("repo"), "--config", CLI.repoRoot + "/scripts/synth-commands.yaml", "--out", cli.path("sub")]))
        let run = try cli.run(["run", cli.path("sub"), "-j", "2"])
        #expect(run.status == .exited(0), "\(run.output)")
        let status = try cli.run(["status", cli.path("sub")])
        #expect(status.stdout.contains("succeeded"), "\(status.output)")
        try MergeFixture.ok(cli.run(["report", cli.path("sub")]))
        let registry = try Repository(root: cli.path("repo")).openRegistry()
        #expect(try registry.count(run: "synth/run") > 0)
        #expect(try registry.chain("synth") == ["synth/run", "synth/raw"])
        #expect(!secret.isEmpty)
        for file in cli.allFiles().map(cli.path) {
            guard let data = FileManager.default.contents(atPath: file) else { continue }
            #expect(data.range(of: Data(secret.utf8)) == nil, "the password is in \(file)")
        }
    }

    /// Server down at merge time: one line naming the server (no password), exit non-zero, nothing
    /// registered; with the server back, the same merge finishes.
    @Test func serverDownAtMergeTimeThenBack() throws {
        let url = TestPostgres.scratchURL("down")
        defer { TestPostgres.drop(url) }
        let f = try MergeFixture(registry: url, visits: 4, detectors: 5, submissions: 1)
        // The server "goes down": the repository is pointed at a port where nothing listens.
        let config = f.repo + "/quanta-repo.yaml"
        let text = try String(contentsOfFile: config, encoding: .utf8)
        let target = try PostgresTarget(url: url)
        try text.replacingOccurrences(of: ":\(target.port)/", with: ":1/").write(toFile: config, atomically: true, encoding: .utf8)
        let down = try f.cli.run(["merge", f.cli.path("sub0")])
        #expect(down.status != .exited(0))
        #expect(down.stderr.contains("PostgreSQL postgresql://\(target.user)@\(target.host):1/\(target.database)") && down.stderr.contains("cannot reach the server"), "\(down.output)")
        #expect(!down.output.contains(ProcessInfo.processInfo.environment["PGPASSWORD"] ?? "\u{0}"))
        try text.write(toFile: config, atomically: true, encoding: .utf8)
        #expect(try f.registry().count(run: "synth/run0") == 0)
        let back = try MergeFixture.ok(f.cli.run(["merge", f.cli.path("sub0")]))
        #expect(back.stdout.contains("\(f.outputsPerSubmission) datasets registered, 0 already registered"), "\(back.output)")
    }
}

extension ConcurrentMergePostgresTests {
    /// The final job of a real run meets a server that is down: `quanta run` says so in one line and
    /// exits non-zero with nothing registered; with the server back, `quanta restart` runs no job
    /// again and finishes the merge.
    @Test func theFinalJobMeetsAServerThatIsDownThenRestartFinishes() throws {
        let url = TestPostgres.scratchURL("final")
        defer { TestPostgres.drop(url) }
        let cli = try CLI()
        try MergeFixture.ok(cli.run(["repo", "create", cli.path("repo"), "--registry", url]))
        try MergeFixture.ok(cli.run(["graph", "synth", "--visits", "2", "--detectors", "3", "--out", cli.path("g.qgn"), "--repo", cli.path("repo")]))
        try MergeFixture.ok(cli.run(["plan", cli.path("g.qgn"), "--repo", cli.path("repo"), "--config", CLI.repoRoot + "/scripts/synth-commands.yaml", "--out", cli.path("sub")]))
        let config = cli.path("repo/quanta-repo.yaml")
        let text = try String(contentsOfFile: config, encoding: .utf8)
        let target = try PostgresTarget(url: url)
        try text.replacingOccurrences(of: ":\(target.port)/", with: ":1/").write(toFile: config, atomically: true, encoding: .utf8)
        let down = try cli.run(["run", cli.path("sub")])
        #expect(down.status != .exited(0), "\(down.output)")
        #expect(down.output.contains("cannot reach the server"), "\(down.output)")
        try text.write(toFile: config, atomically: true, encoding: .utf8)
        let registry = try Repository(root: cli.path("repo")).openRegistry()
        #expect(try registry.count(run: "synth/run") == 0, "nothing registered while the server was down")
        let restart = try cli.run(["restart", cli.path("sub")])
        #expect(restart.status == .exited(0), "\(restart.output)")
        #expect(try registry.count(run: "synth/run") > 0)
        #expect(try registry.chain("synth") == ["synth/run", "synth/raw"])
    }
}
