import Foundation
import GRDB
import QuantaCore

/// Where a campaign run is.
public enum RunState: String, Sendable, Codable, CaseIterable {
    /// Steps are being started, submitted or collected.
    case running
    /// Held for a person: a manual gate, a `review` rule, an empty graph, a pause.
    case held
    case succeeded
    case failed
    /// Removed by retention (its collections and files are gone).
    case removed
}

/// Where a step of a run is.
public enum StepState: String, Sendable, Codable, CaseIterable {
    /// Its `after` steps are not done yet.
    case waiting
    /// Its pilot is submitted; the full step waits for the pilot's gate.
    case pilot
    /// Its groups are submitted or running.
    case running
    /// All groups ended; a manual gate waits for `approve` or `reject`.
    case gated
    /// Done: every group ended and the gate passed (or was approved).
    case passed
    /// The gate failed, was rejected, or a `fail` rule matched.
    case failed
    /// Its graph came out empty: held for review, never "succeeded".
    case empty
}

/// Where one group's submission is. `intended` is written before anything is submitted, so a tick
/// killed at any point is followed by one that finds the submit directory (or not) and goes on.
public enum GroupState: String, Sendable, Codable, CaseIterable {
    case intended, submitted, succeeded, failed
    /// Its graph came out empty (nothing matched its data query): nothing planned or submitted.
    case empty
}

/// The campaign database: campaigns and their files, runs, steps, groups and the append-only
/// activity log, in SQLite (the path given, `$QUANTA_DB`, or `~/.quanta/campaigns.sqlite`). Every
/// change is one transaction. The tick lock keeps two ticks (overlapping cron) from both acting.
public final class CampaignStore: Sendable {
    public let path: String
    let db: DatabaseQueue
    public static let schemaVersion = 1

    public struct Campaign: Sendable, Equatable {
        public var name: String
        public var file: String
        public var paused: Bool
        public var registeredAt: String
    }

    public struct Run: Sendable, Equatable {
        public var campaign: String
        public var number: Int
        public var state: RunState
        public var startedAt: String
        public var endedAt: String?
        /// Never removed by retention.
        public var keep: Bool
    }

    public struct StepRow: Sendable, Equatable {
        public var campaign: String, run: Int, step: String
        public var state: StepState
        public var detail: String?
        public var updatedAt: String
    }

    public struct GroupRow: Sendable, Equatable {
        public var campaign: String, run: Int, step: String, group: String
        public var state: GroupState
        public var submitDir: String
        public var outputRun: String
        public var updatedAt: String
        /// The last change's reason: quantum counts, or why it could not be submitted.
        public var detail: String?
        /// Times a `retry` rule resubmitted some of its jobs.
        public var retries: Int
    }

    public struct Event: Sendable, Equatable {
        public var id: Int64
        public var at: String
        public var campaign: String
        public var run: Int?
        public var step: String?
        public var group: String?
        /// Who acted: `tick`, `run`, or the person (`$USER`) for approve/reject/pause/resume.
        public var actor: String
        public var what: String
    }

    /// The default database: `$QUANTA_DB`, else `~/.quanta/campaigns.sqlite`.
    public static var defaultPath: String {
        if let p = ProcessInfo.processInfo.environment["QUANTA_DB"], !p.isEmpty { return p }
        return NSHomeDirectory() + "/.quanta/campaigns.sqlite"
    }

    public init(path given: String) throws {
        // Absolute: the runs go beside it, and ticks run from cron in another directory.
        let path = URL(fileURLWithPath: given).standardizedFileURL.path
        self.path = path
        var config = Configuration()
        config.busyMode = .timeout(30)
        do {
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            db = try DatabaseQueue(path: path, configuration: config)
            try db.writeWithoutTransaction { try $0.execute(sql: "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL") }
            try migrate()
        } catch let e as QuantaError {
            throw e
        } catch {
            throw QuantaError(.io, "\(path): cannot open the campaign database (\(error)); pass --db or set QUANTA_DB to a writable path")
        }
    }

    private func migrate() throws {
        try db.write { db in
            try db.execute(sql: """
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS campaign (
                name TEXT PRIMARY KEY, file TEXT NOT NULL, paused INTEGER NOT NULL DEFAULT 0,
                registered_at TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS run (
                campaign TEXT NOT NULL REFERENCES campaign(name), number INTEGER NOT NULL,
                state TEXT NOT NULL, started_at TEXT NOT NULL, ended_at TEXT, keep INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (campaign, number));
            CREATE TABLE IF NOT EXISTS step (
                campaign TEXT NOT NULL, run INTEGER NOT NULL, step TEXT NOT NULL,
                state TEXT NOT NULL, detail TEXT, updated_at TEXT NOT NULL,
                PRIMARY KEY (campaign, run, step), FOREIGN KEY (campaign, run) REFERENCES run(campaign, number));
            CREATE TABLE IF NOT EXISTS grp (
                campaign TEXT NOT NULL, run INTEGER NOT NULL, step TEXT NOT NULL, grp TEXT NOT NULL,
                state TEXT NOT NULL, submit_dir TEXT NOT NULL, output_run TEXT NOT NULL, updated_at TEXT NOT NULL, detail TEXT,
                retries INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (campaign, run, step, grp));
            CREATE TABLE IF NOT EXISTS event (
                id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, campaign TEXT NOT NULL,
                run INTEGER, step TEXT, grp TEXT, actor TEXT NOT NULL, what TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS tick_lock (
                id INTEGER PRIMARY KEY CHECK (id = 1), holder TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
                expires_at REAL NOT NULL);
            CREATE TRIGGER IF NOT EXISTS event_append_only BEFORE UPDATE ON event
                BEGIN SELECT RAISE(ABORT, 'the activity log is append-only'); END;
            """)
            let version = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'schema'").flatMap(Int.init)
            if let version, version > Self.schemaVersion {
                throw QuantaError(.io, "\(path): a campaign database from a newer Quanta (schema \(version), this one knows \(Self.schemaVersion)); use that Quanta, or another --db")
            }
            try db.execute(sql: "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)", arguments: [String(Self.schemaVersion)])
        }
    }

    static func now() -> String { Timestamp.iso8601(Date()) }

    // MARK: campaigns

    /// Registers a campaign's file (or points an existing campaign at it again).
    public func register(name: String, file: String, actor: String) throws {
        try db.write { db in
            let known = try Int.fetchOne(db, sql: "SELECT 1 FROM campaign WHERE name = ?", arguments: [name]) != nil
            try db.execute(sql: """
                INSERT INTO campaign (name, file, registered_at) VALUES (?, ?, ?)
                ON CONFLICT(name) DO UPDATE SET file = excluded.file
                """, arguments: [name, file, Self.now()])
            try Self.log(db, campaign: name, actor: actor, what: known ? "file \(file) registered again" : "registered from \(file)")
        }
    }

    public func campaigns() throws -> [Campaign] {
        try db.read { db in
            try Row.fetchAll(db, sql: "SELECT name, file, paused, registered_at FROM campaign ORDER BY name").map {
                Campaign(name: $0["name"], file: $0["file"], paused: $0["paused"], registeredAt: $0["registered_at"])
            }
        }
    }

    public func campaign(_ name: String) throws -> Campaign? {
        try campaigns().first { $0.name == name }
    }

    public func setPaused(_ name: String, _ paused: Bool, actor: String) throws {
        try db.write { db in
            try db.execute(sql: "UPDATE campaign SET paused = ? WHERE name = ?", arguments: [paused, name])
            guard db.changesCount == 1 else { throw QuantaError(.usage, "no campaign '\(name)' in \(path)") }
            try Self.log(db, campaign: name, actor: actor, what: paused ? "paused" : "resumed")
        }
    }

    // MARK: runs, steps, groups

    /// Starts run number N+1 with every step waiting, in one transaction.
    public func startRun(campaign: String, steps: [String], actor: String) throws -> Run {
        try db.write { db in
            let n = (try Int.fetchOne(db, sql: "SELECT MAX(number) FROM run WHERE campaign = ?", arguments: [campaign]) ?? 0) + 1
            let at = Self.now()
            try db.execute(sql: "INSERT INTO run (campaign, number, state, started_at) VALUES (?, ?, ?, ?)",
                           arguments: [campaign, n, RunState.running.rawValue, at])
            for s in steps {
                try db.execute(sql: "INSERT INTO step (campaign, run, step, state, updated_at) VALUES (?, ?, ?, ?, ?)",
                               arguments: [campaign, n, s, StepState.waiting.rawValue, at])
            }
            try Self.log(db, campaign: campaign, run: n, actor: actor, what: "run \(n) started")
            return Run(campaign: campaign, number: n, state: .running, startedAt: at, endedAt: nil, keep: false)
        }
    }

    public func runs(campaign: String) throws -> [Run] {
        try db.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM run WHERE campaign = ? ORDER BY number", arguments: [campaign]).map {
                Run(campaign: $0["campaign"], number: $0["number"], state: RunState(rawValue: $0["state"]) ?? .failed,
                    startedAt: $0["started_at"], endedAt: $0["ended_at"], keep: $0["keep"])
            }
        }
    }

    public func setRun(campaign: String, run: Int, _ state: RunState, actor: String, why: String) throws {
        try db.write { db in
            let ended: String? = [.succeeded, .failed].contains(state) ? Self.now() : nil
            try db.execute(sql: "UPDATE run SET state = ?, ended_at = COALESCE(?, ended_at) WHERE campaign = ? AND number = ?",
                           arguments: [state.rawValue, ended, campaign, run])
            try Self.log(db, campaign: campaign, run: run, actor: actor, what: "run \(run) \(state.rawValue): \(why)")
        }
    }

    /// Marks a run to be kept by retention whatever its age (or not).
    public func setKeep(campaign: String, run: Int, _ keep: Bool, actor: String) throws {
        try db.write { db in
            try db.execute(sql: "UPDATE run SET keep = ? WHERE campaign = ? AND number = ?", arguments: [keep, campaign, run])
            guard db.changesCount == 1 else { throw QuantaError(.usage, "campaign \(campaign) has no run \(run)") }
            try Self.log(db, campaign: campaign, run: run, actor: actor, what: keep ? "run \(run) marked keep" : "run \(run) no longer marked keep")
        }
    }

    public func steps(campaign: String, run: Int) throws -> [StepRow] {
        try db.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM step WHERE campaign = ? AND run = ? ORDER BY rowid", arguments: [campaign, run]).map {
                StepRow(campaign: $0["campaign"], run: $0["run"], step: $0["step"], state: StepState(rawValue: $0["state"]) ?? .failed,
                        detail: $0["detail"], updatedAt: $0["updated_at"])
            }
        }
    }

    /// Moves a step from `from` (any state when nil) to `to`; false when it was not in `from`
    /// (someone else moved it first: approve racing a tick, two ticks).
    @discardableResult
    public func moveStep(campaign: String, run: Int, step: String, from: [StepState]? = nil, to: StepState,
                         detail: String? = nil, actor: String) throws -> Bool {
        try db.write { db in
            var sql = "UPDATE step SET state = ?, detail = ?, updated_at = ? WHERE campaign = ? AND run = ? AND step = ?"
            var args: [DatabaseValueConvertible?] = [to.rawValue, detail, Self.now(), campaign, run, step]
            if let from {
                sql += " AND state IN (\(from.map { _ in "?" }.joined(separator: ",")))"
                args += from.map(\.rawValue)
            }
            try db.execute(sql: sql, arguments: StatementArguments(args.map { $0?.databaseValue ?? .null }))
            guard db.changesCount == 1 else { return false }
            try Self.log(db, campaign: campaign, run: run, step: step, actor: actor,
                         what: "step \(step) \(to.rawValue)\(detail.map { ": \($0)" } ?? "")")
            return true
        }
    }

    /// Records the intent to submit a group before anything is submitted; a group already known
    /// is left as it is (false).
    @discardableResult
    public func intendGroup(campaign: String, run: Int, step: String, group: String, submitDir: String, outputRun: String,
                            actor: String) throws -> Bool {
        try db.write { db in
            try db.execute(sql: """
                INSERT OR IGNORE INTO grp (campaign, run, step, grp, state, submit_dir, output_run, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [campaign, run, step, group, GroupState.intended.rawValue, submitDir, outputRun, Self.now()])
            guard db.changesCount == 1 else { return false }
            try Self.log(db, campaign: campaign, run: run, step: step, group: group, actor: actor, what: "group \(group) intended: \(submitDir)")
            return true
        }
    }

    public func setGroup(campaign: String, run: Int, step: String, group: String, _ state: GroupState, actor: String, why: String) throws {
        try db.write { db in
            try db.execute(sql: "UPDATE grp SET state = ?, updated_at = ?, detail = ? WHERE campaign = ? AND run = ? AND step = ? AND grp = ?",
                           arguments: [state.rawValue, Self.now(), why.isEmpty ? nil : Redact.urls(why), campaign, run, step, group])
            try Self.log(db, campaign: campaign, run: run, step: step, group: group, actor: actor, what: "group \(group) \(state.rawValue)\(why.isEmpty ? "" : ": \(why)")")
        }
    }

    /// A `retry` rule resubmits some of a group's jobs: counted, and the group is submitted again.
    public func retryGroup(campaign: String, run: Int, step: String, group: String, actor: String, why: String) throws {
        try db.write { db in
            try db.execute(sql: "UPDATE grp SET state = ?, retries = retries + 1, updated_at = ?, detail = ? WHERE campaign = ? AND run = ? AND step = ? AND grp = ?",
                           arguments: [GroupState.submitted.rawValue, Self.now(), why, campaign, run, step, group])
            try Self.log(db, campaign: campaign, run: run, step: step, group: group, actor: actor, what: "group \(group) retried: \(why)")
        }
    }

    public func groups(campaign: String, run: Int, step: String? = nil) throws -> [GroupRow] {
        try db.read { db in
            var sql = "SELECT * FROM grp WHERE campaign = ? AND run = ?"
            var args: [DatabaseValueConvertible] = [campaign, run]
            if let step { sql += " AND step = ?"; args.append(step) }
            return try Row.fetchAll(db, sql: sql + " ORDER BY rowid", arguments: StatementArguments(args.map(\.databaseValue))).map {
                GroupRow(campaign: $0["campaign"], run: $0["run"], step: $0["step"], group: $0["grp"],
                         state: GroupState(rawValue: $0["state"]) ?? .failed, submitDir: $0["submit_dir"],
                         outputRun: $0["output_run"], updatedAt: $0["updated_at"], detail: $0["detail"], retries: $0["retries"])
            }
        }
    }

    // MARK: the activity log

    public func log(campaign: String, run: Int? = nil, step: String? = nil, group: String? = nil, actor: String, what: String) throws {
        try db.write { try Self.log($0, campaign: campaign, run: run, step: step, group: group, actor: actor, what: what) }
    }

    static func log(_ db: Database, campaign: String, run: Int? = nil, step: String? = nil, group: String? = nil,
                    actor: String, what: String) throws {
        try db.execute(sql: "INSERT INTO event (at, campaign, run, step, grp, actor, what) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       arguments: [now(), campaign, run, step, group, actor, Redact.urls(what)])
    }

    public func events(campaign: String, limit: Int = .max) throws -> [Event] {
        try db.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM (SELECT * FROM event WHERE campaign = ? ORDER BY id DESC LIMIT ?) ORDER BY id",
                             arguments: [campaign, min(limit, Int(Int32.max))]).map {
                Event(id: $0["id"], at: $0["at"], campaign: $0["campaign"], run: $0["run"], step: $0["step"], group: $0["grp"],
                      actor: $0["actor"], what: $0["what"])
            }
        }
    }

    // MARK: the tick lock

    /// Runs `body` holding the tick lock, or returns nil at once when another live tick holds it.
    /// A holder that died (kill -9: its pid is gone on this host) or whose lease expired is taken
    /// over. The lease is `lease` seconds; a tick longer than that renews it through `renew`.
    public func withTickLock<T>(holder: String, lease: Double = 600, _ body: (_ renew: () throws -> Void) throws -> T) throws -> T? {
        let host = ProcessInfo.processInfo.hostName, pid = Int(getpid())
        let acquired: Bool = try db.write { db in
            if let row = try Row.fetchOne(db, sql: "SELECT host, pid, expires_at FROM tick_lock WHERE id = 1") {
                let h: String = row["host"], p: Int = row["pid"], expires: Double = row["expires_at"]
                let alive = h != host || (kill(pid_t(p), 0) == 0 || errno == EPERM)
                if alive && expires > Date().timeIntervalSince1970 && !(h == host && p == pid) { return false }
            }
            try db.execute(sql: "INSERT OR REPLACE INTO tick_lock (id, holder, host, pid, expires_at) VALUES (1, ?, ?, ?, ?)",
                           arguments: [holder, host, pid, Date().timeIntervalSince1970 + lease])
            return true
        }
        guard acquired else { return nil }
        defer { try? db.write { try $0.execute(sql: "DELETE FROM tick_lock WHERE id = 1 AND host = ? AND pid = ?", arguments: [host, pid]) } }
        return try body {
            try db.write { try $0.execute(sql: "UPDATE tick_lock SET expires_at = ? WHERE id = 1 AND host = ? AND pid = ?",
                                          arguments: [Date().timeIntervalSince1970 + lease, host, pid]) }
        }
    }
}
