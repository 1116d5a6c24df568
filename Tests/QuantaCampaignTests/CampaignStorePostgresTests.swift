import Foundation
import Synchronization
import Testing
import QuantaCore
import QuantaPostgres
import QuantaTestSupport
@testable import QuantaCampaign

/// The campaign database on the project's PostgreSQL server (issue 18): the same store as on
/// SQLite, the tick lock an advisory lock that dies with its holder's connection, two operators
/// starting runs at once.
@Suite(.enabled(if: TestPostgres.enabled, Comment(rawValue: TestPostgres.why)))
struct CampaignStorePostgresTests {
    /// A store in a schema of its own, dropped after.
    func withStore(_ body: (CampaignStore, String) throws -> Void) throws {
        let url = TestPostgres.scratchURL("campaign")
        defer { TestPostgres.drop(url) }
        try body(try CampaignStore(path: url, environment: ProcessInfo.processInfo.environment.merging(["QUANTA_CAMPAIGN_DIR": try temporaryDirectory()]) { $1 }), url)
    }

    @Test func aRunMovesThroughItsStepsAsOnSQLite() throws {
        try withStore { pg, url in
            let sqlite = try CampaignStore(path: try temporaryDirectory() + "/db/campaigns.sqlite")
            #expect(pg.kind == .postgresql && pg.path == nil && !pg.location.contains(ProcessInfo.processInfo.environment["PGPASSWORD"] ?? "\u{0}"))
            // The same story on both; what each then says must be the same.
            func story(_ s: CampaignStore) throws -> [String] {
                try s.register(name: "demo", file: "/c/demo.yaml", actor: "test")
                _ = try s.startRun(campaign: "demo", steps: ["step1", "step2"], actor: "tick")
                #expect(try s.moveStep(campaign: "demo", run: 1, step: "step1", from: [.waiting], to: .running, actor: "tick"))
                #expect(try !s.moveStep(campaign: "demo", run: 1, step: "step1", from: [.waiting], to: .running, actor: "tick"))
                #expect(try s.intendGroup(campaign: "demo", run: 1, step: "step1", group: "g", submitDir: "/s/g", outputRun: "u/x/1/step1/g", actor: "tick"))
                #expect(try !s.intendGroup(campaign: "demo", run: 1, step: "step1", group: "g", submitDir: "/s/other", outputRun: "x", actor: "tick"))
                #expect(try s.intendGroup(campaign: "demo", run: 1, step: "step1", group: "a", submitDir: "/s/a", outputRun: "u/x/1/step1/a", actor: "tick"))
                try s.setGroup(campaign: "demo", run: 1, step: "step1", group: "g", .submitted, actor: "tick", why: "")
                try s.retryGroup(campaign: "demo", run: 1, step: "step1", group: "g", actor: "tick", why: "oom")
                try s.setPaused("demo", true, actor: "me")
                try s.setKeep(campaign: "demo", run: 1, true, actor: "me")
                try s.setRun(campaign: "demo", run: 1, .succeeded, actor: "tick", why: "every step passed")
                #expect(throws: QuantaError.self) { try s.setKeep(campaign: "demo", run: 9, true, actor: "me") }
                var out = try s.campaigns().map { "\($0.name) \($0.file) paused=\($0.paused)" }
                out += try s.runs(campaign: "demo").map { "run \($0.number) \($0.state) keep=\($0.keep) ended=\($0.endedAt != nil)" }
                out += try s.steps(campaign: "demo", run: 1).map { "\($0.step) \($0.state) \($0.detail ?? "-")" }
                out += try s.groups(campaign: "demo", run: 1).map { "\($0.group) \($0.state) \($0.submitDir) retries=\($0.retries) \($0.detail ?? "-")" }
                out += try s.events(campaign: "demo").map { "\($0.actor): \($0.what)" }
                out += try s.events(campaign: "demo", limit: 2).map { "last: \($0.what)" }
                return out
            }
            let a = try story(pg), b = try story(sqlite)
            #expect(a == b)
            #expect(a.contains("g submitted /s/g retries=1 oom") && a.first == "demo /c/demo.yaml paused=true", "\(a)")
            // The activity log only grows, on the server too.
            let session = try PostgresSession(try PostgresTarget(url: url))
            #expect(throws: QuantaError.self) { try session.execute("UPDATE event SET what = 'rewritten'", doing: "test") }
        }
    }

    @Test func theTickLockIsAnAdvisoryLockThatDiesWithItsHolder() throws {
        try withStore { s, url in
            // Another login node's tick (another connection) holds it: this one backs off.
            let other = try CampaignStore(path: url)
            let inner = try s.withTickLock(holder: "tick A") { _ in try other.withTickLock(holder: "tick B") { _ in 1 } }
            #expect(inner == .some(nil))
            #expect(try other.withTickLock(holder: "tick B") { _ in 2 } == 2, "released after the body")
            // Released when the body throws.
            struct Boom: Error {}
            #expect(throws: Boom.self) { try s.withTickLock(holder: "tick A") { _ in throw Boom() } }
            #expect(try other.withTickLock(holder: "tick B") { _ in 3 } == 3)
            // A holder killed mid-tick: its connection ends, the server frees the lock.
            var bare = try PostgresTarget(url: url)
            bare.schema = nil
            let dying = try PostgresSession(bare)
            try dying.execute("SELECT pg_advisory_lock(7201201803)", doing: "test")
            #expect(try s.withTickLock(holder: "tick C") { _ in 4 } == nil)
            dying.close()
            var got: Int?
            for _ in 0..<50 where got == nil {
                got = try s.withTickLock(holder: "tick C") { _ in 5 }
                if got == nil { usleep(100_000) }
            }
            #expect(got == 5)
        }
    }

    @Test func twoOperatorsStartingRunsAtOnceGetDistinctNumbers() throws {
        try withStore { s, url in
            try s.register(name: "demo", file: "f", actor: "test")
            let stores = [s, try CampaignStore(path: url), try CampaignStore(path: url), try CampaignStore(path: url)]
            let errors = Mutex<[String]>([])
            DispatchQueue.concurrentPerform(iterations: stores.count) { k in
                for _ in 0..<5 {
                    do { _ = try stores[k].startRun(campaign: "demo", steps: ["a", "b"], actor: "op\(k)") } catch {
                        errors.withLock { $0.append("\(error)") }
                    }
                }
            }
            #expect(errors.withLock { $0 } == [])
            #expect(try s.runs(campaign: "demo").map(\.number) == Array(1...20))
        }
    }

    @Test func aDatabaseFromANewerQuantaIsRefused() throws {
        try withStore { s, url in
            try PostgresSession(try PostgresTarget(url: url)).execute("UPDATE meta SET value = '99' WHERE key = 'schema'", doing: "test")
            #expect { try CampaignStore(path: url) } throws: { "\($0)".contains("a campaign database from a newer Quanta (schema 99") }
        }
    }
}
