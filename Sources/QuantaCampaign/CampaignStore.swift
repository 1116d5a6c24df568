import Foundation
import GRDB
import QuantaCore
import QuantaPostgres

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
/// activity log — in SQLite (a path: the one given, `$QUANTA_DB`, or `~/.quanta/campaigns.sqlite`)
/// or on a PostgreSQL server (`postgresql://user@host:port/database`, the password from
/// `PGPASSWORD` or `~/.pgpass`), so several operators and cron on different login nodes share one
/// campaign state. Every change is one transaction; the SQL is written once for both. The tick lock
/// keeps two ticks (overlapping cron) from both acting: a row naming host and pid in SQLite, an
/// advisory lock on PostgreSQL (released by the server when the tick's connection dies).
public final class CampaignStore: Sendable {
    /// Where it is, for messages and `--db`: the file, or the URL without password.
    public let location: String
    /// Where campaign runs' submit directories, the tick script and its log go: beside the SQLite
    /// file, or `$QUANTA_CAMPAIGN_DIR` (default `~/.quanta`) for a server database.
    public let directory: String
    public let kind: CampaignDatabaseKind
    let db: any SQLDatabase
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

    /// Opens (and makes or migrates) the database at `given`: a SQLite path or a postgresql:// URL.
    public init(path given: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        if PostgresTarget.isURL(given) {
            let target = try PostgresTarget(url: given, environment: environment)
            location = target.description
            directory = environment["QUANTA_CAMPAIGN_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory() + "/.quanta"
            kind = .postgresql
            db = PostgresCampaignDatabase(try PostgresSession(target))
            try migrate()
            return
        }
        // Absolute: the runs go beside it, and ticks run from cron in another directory.
        let path = URL(fileURLWithPath: given).standardizedFileURL.path
        location = path
        directory = (path as NSString).deletingLastPathComponent
        kind = .sqlite
        var config = Configuration()
        config.busyMode = .timeout(30)
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let queue = try DatabaseQueue(path: path, configuration: config)
            try queue.writeWithoutTransaction { try $0.execute(sql: "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL") }
            db = SQLiteCampaignDatabase(queue)
            try migrate()
        } catch let e as QuantaError {
            throw e
        } catch {
            throw QuantaError(.io, "\(path): cannot open the campaign database (\(error)); pass --db or set QUANTA_DB to a writable path")
        }
    }

    /// The SQLite file (nil on a server).
    public var path: String? { kind == .sqlite ? location : nil }

    private func migrate() throws {
        try db.transaction { tx in
            if tx.kind == .postgresql {
                // One migration at a time across every process using this database.
                try tx.execute("SELECT pg_advisory_xact_lock(7201201802)")
            }
            let serial = tx.kind == .sqlite ? "INTEGER PRIMARY KEY AUTOINCREMENT" : "BIGSERIAL PRIMARY KEY"
            // Steps and groups are listed in the order they were made: SQLite's rowid, a sequence on PostgreSQL.
            let seq = tx.kind == .sqlite ? "" : ", seq BIGSERIAL"
            for ddl in [
                "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
                """
                CREATE TABLE IF NOT EXISTS campaign (
                    name TEXT PRIMARY KEY, file TEXT NOT NULL, paused INTEGER NOT NULL DEFAULT 0,
                    registered_at TEXT NOT NULL)
                """,
                """
                CREATE TABLE IF NOT EXISTS run (
                    campaign TEXT NOT NULL REFERENCES campaign(name), number INTEGER NOT NULL,
                    state TEXT NOT NULL, started_at TEXT NOT NULL, ended_at TEXT, keep INTEGER NOT NULL DEFAULT 0,
                    PRIMARY KEY (campaign, number))
                """,
                """
                CREATE TABLE IF NOT EXISTS step (
                    campaign TEXT NOT NULL, run INTEGER NOT NULL, step TEXT NOT NULL,
                    state TEXT NOT NULL, detail TEXT, updated_at TEXT NOT NULL\(seq),
                    PRIMARY KEY (campaign, run, step), FOREIGN KEY (campaign, run) REFERENCES run(campaign, number))
                """,
                """
                CREATE TABLE IF NOT EXISTS grp (
                    campaign TEXT NOT NULL, run INTEGER NOT NULL, step TEXT NOT NULL, grp TEXT NOT NULL,
                    state TEXT NOT NULL, submit_dir TEXT NOT NULL, output_run TEXT NOT NULL, updated_at TEXT NOT NULL, detail TEXT,
                    retries INTEGER NOT NULL DEFAULT 0\(seq),
                    PRIMARY KEY (campaign, run, step, grp))
                """,
                """
                CREATE TABLE IF NOT EXISTS event (
                    id \(serial), at TEXT NOT NULL, campaign TEXT NOT NULL,
                    run INTEGER, step TEXT, grp TEXT, actor TEXT NOT NULL, what TEXT NOT NULL)
                """,
                """
                CREATE TABLE IF NOT EXISTS tick_lock (
                    id INTEGER PRIMARY KEY CHECK (id = 1), holder TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
                    expires_at \(tx.kind == .sqlite ? "REAL" : "DOUBLE PRECISION") NOT NULL)
                """,
            ] {
                try tx.execute(ddl)
            }
            if tx.kind == .sqlite {
                try tx.execute("""
                    CREATE TRIGGER IF NOT EXISTS event_append_only BEFORE UPDATE ON event
                        BEGIN SELECT RAISE(ABORT, 'the activity log is append-only'); END
                    """)
            } else {
                try tx.execute("""
                    CREATE OR REPLACE FUNCTION quanta_event_append_only() RETURNS trigger LANGUAGE plpgsql AS
                    $$ BEGIN RAISE EXCEPTION 'the activity log is append-only'; END $$
                    """)
                try tx.execute("CREATE OR REPLACE TRIGGER event_append_only BEFORE UPDATE ON event FOR EACH ROW EXECUTE FUNCTION quanta_event_append_only()")
            }
            let version = try tx.fetch("SELECT value FROM meta WHERE key = 'schema'").first.flatMap { Int($0.text("value")) }
            if let version, version > Self.schemaVersion {
                throw QuantaError(.io, "\(location): a campaign database from a newer Quanta (schema \(version), this one knows \(Self.schemaVersion)); use that Quanta, or another --db")
            }
            try tx.execute("INSERT INTO meta (key, value) VALUES ('schema', ?) ON CONFLICT (key) DO NOTHING", [.text(String(Self.schemaVersion))])
        }
    }

    static func now() -> String { Timestamp.iso8601(Date()) }

    /// The order rows were made in (steps, groups).
    private var made: String { kind == .sqlite ? "rowid" : "seq" }

    // MARK: campaigns

    /// Registers a campaign's file (or points an existing campaign at it again).
    public func register(name: String, file: String, actor: String) throws {
        try db.transaction { tx in
            let known = try !tx.fetch("SELECT 1 AS one FROM campaign WHERE name = ?", [.text(name)]).isEmpty
            try tx.execute("""
                INSERT INTO campaign (name, file, registered_at) VALUES (?, ?, ?)
                ON CONFLICT (name) DO UPDATE SET file = excluded.file
                """, [.text(name), .text(file), .text(Self.now())])
            try Self.log(tx, campaign: name, actor: actor, what: known ? "file \(file) registered again" : "registered from \(file)")
        }
    }

    public func campaigns() throws -> [Campaign] {
        try db.transaction { tx in
            try tx.fetch("SELECT name, file, paused, registered_at FROM campaign ORDER BY name").map {
                Campaign(name: $0.text("name"), file: $0.text("file"), paused: $0.int("paused") != 0, registeredAt: $0.text("registered_at"))
            }
        }
    }

    public func campaign(_ name: String) throws -> Campaign? {
        try campaigns().first { $0.name == name }
    }

    public func setPaused(_ name: String, _ paused: Bool, actor: String) throws {
        try db.transaction { tx in
            guard try tx.execute("UPDATE campaign SET paused = ? WHERE name = ?", [.int(paused ? 1 : 0), .text(name)]) == 1 else {
                throw QuantaError(.usage, "no campaign '\(name)' in \(location)")
            }
            try Self.log(tx, campaign: name, actor: actor, what: paused ? "paused" : "resumed")
        }
    }

    // MARK: runs, steps, groups

    /// Starts run number N+1 with every step waiting, in one transaction.
    public func startRun(campaign: String, steps: [String], actor: String) throws -> Run {
        try db.transaction { tx in
            if tx.kind == .postgresql {
                // Two operators starting runs at once get N+1 and N+2, not a key clash.
                try tx.execute("SELECT name FROM campaign WHERE name = ? FOR UPDATE", [.text(campaign)])
            }
            let n = (try tx.fetch("SELECT MAX(number) AS n FROM run WHERE campaign = ?", [.text(campaign)]).first?.optionalInt("n") ?? 0) + 1
            let at = Self.now()
            try tx.execute("INSERT INTO run (campaign, number, state, started_at) VALUES (?, ?, ?, ?)",
                           [.text(campaign), SQLValue(n), .text(RunState.running.rawValue), .text(at)])
            for s in steps {
                try tx.execute("INSERT INTO step (campaign, run, step, state, updated_at) VALUES (?, ?, ?, ?, ?)",
                               [.text(campaign), SQLValue(n), .text(s), .text(StepState.waiting.rawValue), .text(at)])
            }
            try Self.log(tx, campaign: campaign, run: n, actor: actor, what: "run \(n) started")
            return Run(campaign: campaign, number: n, state: .running, startedAt: at, endedAt: nil, keep: false)
        }
    }

    public func runs(campaign: String) throws -> [Run] {
        try db.transaction { tx in
            try tx.fetch("SELECT * FROM run WHERE campaign = ? ORDER BY number", [.text(campaign)]).map {
                Run(campaign: $0.text("campaign"), number: $0.int("number"), state: RunState(rawValue: $0.text("state")) ?? .failed,
                    startedAt: $0.text("started_at"), endedAt: $0.optionalText("ended_at"), keep: $0.int("keep") != 0)
            }
        }
    }

    public func setRun(campaign: String, run: Int, _ state: RunState, actor: String, why: String) throws {
        try db.transaction { tx in
            let ended: String? = [.succeeded, .failed].contains(state) ? Self.now() : nil
            try tx.execute("UPDATE run SET state = ?, ended_at = COALESCE(?, ended_at) WHERE campaign = ? AND number = ?",
                           [.text(state.rawValue), SQLValue(ended), .text(campaign), SQLValue(run)])
            try Self.log(tx, campaign: campaign, run: run, actor: actor, what: "run \(run) \(state.rawValue): \(why)")
        }
    }

    /// Marks a run to be kept by retention whatever its age (or not).
    public func setKeep(campaign: String, run: Int, _ keep: Bool, actor: String) throws {
        try db.transaction { tx in
            guard try tx.execute("UPDATE run SET keep = ? WHERE campaign = ? AND number = ?", [.int(keep ? 1 : 0), .text(campaign), SQLValue(run)]) == 1 else {
                throw QuantaError(.usage, "campaign \(campaign) has no run \(run)")
            }
            try Self.log(tx, campaign: campaign, run: run, actor: actor, what: keep ? "run \(run) marked keep" : "run \(run) no longer marked keep")
        }
    }

    public func steps(campaign: String, run: Int) throws -> [StepRow] {
        try db.transaction { tx in
            try tx.fetch("SELECT * FROM step WHERE campaign = ? AND run = ? ORDER BY \(made)", [.text(campaign), SQLValue(run)]).map {
                StepRow(campaign: $0.text("campaign"), run: $0.int("run"), step: $0.text("step"), state: StepState(rawValue: $0.text("state")) ?? .failed,
                        detail: $0.optionalText("detail"), updatedAt: $0.text("updated_at"))
            }
        }
    }

    /// Moves a step from `from` (any state when nil) to `to`; false when it was not in `from`
    /// (someone else moved it first: approve racing a tick, two ticks).
    @discardableResult
    public func moveStep(campaign: String, run: Int, step: String, from: [StepState]? = nil, to: StepState,
                         detail: String? = nil, actor: String) throws -> Bool {
        try db.transaction { tx in
            var sql = "UPDATE step SET state = ?, detail = ?, updated_at = ? WHERE campaign = ? AND run = ? AND step = ?"
            var args: [SQLValue] = [.text(to.rawValue), SQLValue(detail), .text(Self.now()), .text(campaign), SQLValue(run), .text(step)]
            if let from {
                sql += " AND state IN (\(from.map { _ in "?" }.joined(separator: ",")))"
                args += from.map { .text($0.rawValue) }
            }
            guard try tx.execute(sql, args) == 1 else { return false }
            try Self.log(tx, campaign: campaign, run: run, step: step, actor: actor,
                         what: "step \(step) \(to.rawValue)\(detail.map { ": \($0)" } ?? "")")
            return true
        }
    }

    /// Records the intent to submit a group before anything is submitted; a group already known
    /// is left as it is (false).
    @discardableResult
    public func intendGroup(campaign: String, run: Int, step: String, group: String, submitDir: String, outputRun: String,
                            actor: String) throws -> Bool {
        try db.transaction { tx in
            let added = try tx.execute("""
                INSERT INTO grp (campaign, run, step, grp, state, submit_dir, output_run, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING
                """, [.text(campaign), SQLValue(run), .text(step), .text(group), .text(GroupState.intended.rawValue), .text(submitDir), .text(outputRun), .text(Self.now())])
            guard added == 1 else { return false }
            try Self.log(tx, campaign: campaign, run: run, step: step, group: group, actor: actor, what: "group \(group) intended: \(submitDir)")
            return true
        }
    }

    public func setGroup(campaign: String, run: Int, step: String, group: String, _ state: GroupState, actor: String, why: String) throws {
        try db.transaction { tx in
            try tx.execute("UPDATE grp SET state = ?, updated_at = ?, detail = ? WHERE campaign = ? AND run = ? AND step = ? AND grp = ?",
                           [.text(state.rawValue), .text(Self.now()), SQLValue(why.isEmpty ? nil : Redact.urls(why)), .text(campaign), SQLValue(run), .text(step), .text(group)])
            try Self.log(tx, campaign: campaign, run: run, step: step, group: group, actor: actor, what: "group \(group) \(state.rawValue)\(why.isEmpty ? "" : ": \(why)")")
        }
    }

    /// A `retry` rule resubmits some of a group's jobs: counted, and the group is submitted again.
    public func retryGroup(campaign: String, run: Int, step: String, group: String, actor: String, why: String) throws {
        try db.transaction { tx in
            try tx.execute("UPDATE grp SET state = ?, retries = retries + 1, updated_at = ?, detail = ? WHERE campaign = ? AND run = ? AND step = ? AND grp = ?",
                           [.text(GroupState.submitted.rawValue), .text(Self.now()), .text(why), .text(campaign), SQLValue(run), .text(step), .text(group)])
            try Self.log(tx, campaign: campaign, run: run, step: step, group: group, actor: actor, what: "group \(group) retried: \(why)")
        }
    }

    public func groups(campaign: String, run: Int, step: String? = nil) throws -> [GroupRow] {
        try db.transaction { tx in
            var sql = "SELECT * FROM grp WHERE campaign = ? AND run = ?"
            var args: [SQLValue] = [.text(campaign), SQLValue(run)]
            if let step { sql += " AND step = ?"; args.append(.text(step)) }
            return try tx.fetch(sql + " ORDER BY \(made)", args).map {
                GroupRow(campaign: $0.text("campaign"), run: $0.int("run"), step: $0.text("step"), group: $0.text("grp"),
                         state: GroupState(rawValue: $0.text("state")) ?? .failed, submitDir: $0.text("submit_dir"),
                         outputRun: $0.text("output_run"), updatedAt: $0.text("updated_at"), detail: $0.optionalText("detail"), retries: $0.int("retries"))
            }
        }
    }

    // MARK: the activity log

    public func log(campaign: String, run: Int? = nil, step: String? = nil, group: String? = nil, actor: String, what: String) throws {
        try db.transaction { try Self.log($0, campaign: campaign, run: run, step: step, group: group, actor: actor, what: what) }
    }

    static func log(_ tx: SQLTransaction, campaign: String, run: Int? = nil, step: String? = nil, group: String? = nil,
                    actor: String, what: String) throws {
        try tx.execute("INSERT INTO event (at, campaign, run, step, grp, actor, what) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       [.text(now()), .text(campaign), SQLValue(run), SQLValue(step), SQLValue(group), .text(actor), .text(Redact.urls(what))])
    }

    public func events(campaign: String, limit: Int = .max) throws -> [Event] {
        try db.transaction { tx in
            try tx.fetch("SELECT * FROM (SELECT * FROM event WHERE campaign = ? ORDER BY id DESC LIMIT ?) AS recent ORDER BY id",
                         [.text(campaign), .int(Int64(min(limit, Int(Int32.max))))]).map {
                Event(id: Int64($0.int("id")), at: $0.text("at"), campaign: $0.text("campaign"), run: $0.optionalInt("run"), step: $0.optionalText("step"),
                      group: $0.optionalText("grp"), actor: $0.text("actor"), what: $0.text("what"))
            }
        }
    }

    // MARK: the tick lock

    /// Runs `body` holding the tick lock, or returns nil at once when another live tick holds it.
    /// SQLite: a holder that died (kill -9: its pid is gone on this host) or whose lease expired is
    /// taken over; the lease is `lease` seconds and a longer tick renews it through `renew`.
    /// PostgreSQL: a session advisory lock, which the server releases when the holder's connection
    /// ends, on whatever login node it ran; `renew` has nothing to do.
    public func withTickLock<T>(holder: String, lease: Double = 600, _ body: (_ renew: () throws -> Void) throws -> T) throws -> T? {
        try db.withTickLock(holder: holder, lease: lease, body)
    }
}
