import Foundation
import GRDB
import Testing
import QuantaCore
import QuantaTestSupport
@testable import QuantaCampaign

/// The campaign database on a real SQLite file: states move in transactions, the activity log only
/// grows, and one tick at a time holds the lock.
@Suite struct CampaignStoreTests {
    func store() throws -> CampaignStore { try CampaignStore(path: try temporaryDirectory() + "/db/campaigns.sqlite") }

    @Test func aRunMovesThroughItsStepsAndEveryChangeIsLogged() throws {
        let s = try store()
        try s.register(name: "demo", file: "/c/demo.yaml", actor: "test")
        let run = try s.startRun(campaign: "demo", steps: ["step1", "step2"], actor: "tick")
        #expect(run.number == 1)
        #expect(try s.steps(campaign: "demo", run: 1).map(\.state) == [.waiting, .waiting])
        #expect(try s.moveStep(campaign: "demo", run: 1, step: "step1", from: [.waiting], to: .running, actor: "tick"))
        // A second mover that expected `waiting` loses: approve racing a tick, two ticks.
        #expect(try !s.moveStep(campaign: "demo", run: 1, step: "step1", from: [.waiting], to: .running, actor: "tick"))
        #expect(try s.intendGroup(campaign: "demo", run: 1, step: "step1", group: "g", submitDir: "/s/g", outputRun: "u/x/1/step1/g", actor: "tick"))
        #expect(try !s.intendGroup(campaign: "demo", run: 1, step: "step1", group: "g", submitDir: "/s/other", outputRun: "x", actor: "tick"))
        try s.setGroup(campaign: "demo", run: 1, step: "step1", group: "g", .submitted, actor: "tick", why: "")
        let g = try s.groups(campaign: "demo", run: 1)
        #expect(g.count == 1 && g[0].state == .submitted && g[0].submitDir == "/s/g")
        try s.setRun(campaign: "demo", run: 1, .succeeded, actor: "tick", why: "every step passed")
        #expect(try s.runs(campaign: "demo").first?.endedAt != nil)
        #expect(try s.startRun(campaign: "demo", steps: ["step1"], actor: "tick").number == 2)
        let log = try s.events(campaign: "demo").map(\.what)
        #expect(log.first == "registered from /c/demo.yaml")
        #expect(log.contains("step step1 running") && log.contains("group g intended: /s/g") && log.contains("run 1 succeeded: every step passed"))
        #expect(log.last == "run 2 started")
    }

    @Test func theActivityLogIsAppendOnly() throws {
        let s = try store()
        try s.register(name: "demo", file: "f", actor: "test")
        let q = try DatabaseQueue(path: s.path!)
        #expect(throws: (any Error).self) { try q.write { try $0.execute(sql: "UPDATE event SET what = 'rewritten'") } }
        #expect(try s.events(campaign: "demo").map(\.what) == ["registered from f"])
    }

    @Test func oneTickHoldsTheLockAtATime() throws {
        let s = try store()
        let q = try DatabaseQueue(path: s.path!)
        // Held: the row names this process; released after, even when the body throws.
        let held = try s.withTickLock(holder: "tick A") { _ in
            try q.read { try Int.fetchOne($0, sql: "SELECT pid FROM tick_lock") }
        }
        #expect(held == .some(Int(getpid())))
        struct Boom: Error {}
        #expect(throws: Boom.self) { try s.withTickLock(holder: "tick A") { _ in throw Boom() } }
        #expect(try q.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM tick_lock") } == 0)
        // Another live process on this host holds it (a tick still running): this one backs off,
        // then takes over once that process is gone.
        let other = try Spawn.launch("/bin/sleep", ["30"], environment: [:])
        try q.write { try $0.execute(sql: "INSERT INTO tick_lock (id, holder, host, pid, expires_at) VALUES (1, 'other', ?, ?, ?)",
                                     arguments: [ProcessInfo.processInfo.hostName, Int(other), Date().timeIntervalSince1970 + 600]) }
        #expect(try s.withTickLock(holder: "tick B") { _ in 1 } == nil)
        kill(other, SIGKILL)
        var status: Int32 = 0
        waitpid(other, &status, 0)
        #expect(try s.withTickLock(holder: "tick B") { _ in 2 } == 2)
    }

    @Test func aDeadHoldersLockIsTakenOver() throws {
        let s = try store()
        // A tick killed with -9 left its row: a pid that no longer exists on this host.
        var dead: pid_t = 0
        let child = try Spawn.launch("/bin/true", [], environment: [:])
        dead = child
        var status: Int32 = 0
        waitpid(child, &status, 0)
        let q = try DatabaseQueue(path: s.path!)
        try q.write { try $0.execute(sql: "INSERT INTO tick_lock (id, holder, host, pid, expires_at) VALUES (1, 'killed', ?, ?, ?)",
                                     arguments: [ProcessInfo.processInfo.hostName, Int(dead), Date().timeIntervalSince1970 + 600]) }
        #expect(try s.withTickLock(holder: "next") { _ in "ran" } == "ran")
        // An expired lease from another host is taken over too.
        try q.write { try $0.execute(sql: "INSERT INTO tick_lock (id, holder, host, pid, expires_at) VALUES (1, 'old', 'login2', 42, ?)",
                                     arguments: [Date().timeIntervalSince1970 - 1]) }
        #expect(try s.withTickLock(holder: "next") { _ in "ran" } == "ran")
        // A live lease from another host is respected.
        try q.write { try $0.execute(sql: "INSERT INTO tick_lock (id, holder, host, pid, expires_at) VALUES (1, 'live', 'login2', 42, ?)",
                                     arguments: [Date().timeIntervalSince1970 + 600]) }
        #expect(try s.withTickLock(holder: "next") { _ in "ran" } == nil)
    }

    @Test func aDatabaseFromANewerQuantaIsRefused() throws {
        let s = try store()
        let q = try DatabaseQueue(path: s.path!)
        try q.write { try $0.execute(sql: "UPDATE meta SET value = '99' WHERE key = 'schema'") }
        #expect {
            try CampaignStore(path: s.path!)
        } throws: { "\($0)".contains("a campaign database from a newer Quanta (schema 99") }
    }
}
