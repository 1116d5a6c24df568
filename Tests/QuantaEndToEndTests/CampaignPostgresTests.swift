import Foundation
import Testing
import QuantaButler
import QuantaCore
import QuantaDemo
import QuantaRegistry
import QuantaTestSupport

/// A campaign whose database is on the PostgreSQL server (`QUANTA_DB=postgresql://…`) and whose
/// repository's registry is too: two runs, retention, status and log read back from the server —
/// and the password in none of the files written.
@Suite(.enabled(if: TestPostgres.enabled, Comment(rawValue: TestPostgres.why)))
struct CampaignPostgresTests {
    @Test func aCampaignWithItsDatabaseAndRegistryOnTheServer() throws {
        let cli = try CLI()
        let dbURL = TestPostgres.scratchURL("cdb"), repoURL = TestPostgres.scratchURL("crepo")
        defer { TestPostgres.drop(dbURL); TestPostgres.drop(repoURL) }
        let env = ["QUANTA_DB": dbURL, "QUANTA_CAMPAIGN_DIR": cli.path("work")]
        // The demo survey's raws, ingested into a repository whose registry is on the server.
        try MergeFixture.ok(cli.run(["demo", "--workdir", "d", "--plan-only", "--visits", "1", "--detectors", "2"]))
        try MergeFixture.ok(cli.run(["repo", "create", cli.path("pgrepo"), "--registry", repoURL]))
        try MergeFixture.ok(cli.run(["repo", "ingest", cli.path("pgrepo"), cli.path("d/camera")]))
        try DemoSurvey(visitsPerBand: 1, detectors: 2).registerSkyMap(repo: try Repository(root: cli.path("pgrepo")))
        try """
        name: nightly
        repository: \(cli.path("pgrepo"))
        output: u/t/nightly
        retention: {keep: 1}
        steps:
          - name: sfp
            builtin: [isr, calibrate]
        """.write(toFile: cli.path("c.yaml"), atomically: true, encoding: .utf8)
        for n in 1...2 {
            let run = try cli.run(["campaign", "run", "c.yaml", "--poll", "0.1"], environment: env)
            #expect(run.status == .exited(0), "run \(n): \(run.output)")
        }
        let status = try cli.run(["campaign", "status", "nightly"], environment: env)
        #expect(status.stdout.contains("run 1: removed by retention") && status.stdout.contains("run 2: succeeded"), "\(status.output)")
        let log = try cli.run(["campaign", "log", "nightly"], environment: env).stdout
        #expect(log.contains("run 2 started") && log.contains("run 1 removed"), "\(log)")
        let registry = try Repository(root: cli.path("pgrepo")).openRegistry()
        #expect(try registry.collectionType("u/t/nightly/1") == nil && registry.count(run: "u/t/nightly/2/sfp/all") > 0)
        #expect(FileManager.default.fileExists(atPath: cli.path("work/runs/nightly/2/sfp/all/plan.json")))
        let secret = ProcessInfo.processInfo.environment["PGPASSWORD"] ?? ""
        #expect(!secret.isEmpty)
        for file in cli.allFiles().map(cli.path) {
            guard let data = FileManager.default.contents(atPath: file) else { continue }
            #expect(data.range(of: Data(secret.utf8)) == nil, "the password is in \(file)")
        }
    }
}
