import Foundation
import GRDB
import PostgresNIO
import QuantaCore
import QuantaPostgres

/// A value going into or coming out of the campaign database, whichever database it is.
enum SQLValue: Sendable, Equatable {
    case null, int(Int64), real(Double), text(String)

    init(_ s: String?) { self = s.map { .text($0) } ?? .null }
    init(_ i: Int?) { self = i.map { .int(Int64($0)) } ?? .null }
}

/// One row by column name.
struct SQLRow {
    var values: [String: SQLValue]

    func text(_ c: String) -> String { if case .text(let s)? = values[c] { return s }; return "" }
    func optionalText(_ c: String) -> String? { if case .text(let s)? = values[c] { return s }; return nil }
    func int(_ c: String) -> Int {
        switch values[c] { case .int(let i)?: return Int(i); case .real(let d)?: return Int(d); default: return 0 }
    }
    func optionalInt(_ c: String) -> Int? { if case .null? = values[c] { return nil }; return values[c] == nil ? nil : int(c) }
    func real(_ c: String) -> Double {
        switch values[c] { case .real(let d)?: return d; case .int(let i)?: return Double(i); default: return 0 }
    }
}

/// The statements of one transaction. SQL is written once for both databases, with `?` for each
/// argument; where the two dialects differ the store asks `kind`.
protocol SQLTransaction {
    var kind: CampaignDatabaseKind { get }
    /// Runs a statement; returns the rows it changed.
    @discardableResult func execute(_ sql: String, _ args: [SQLValue]) throws -> Int
    func fetch(_ sql: String, _ args: [SQLValue]) throws -> [SQLRow]
}

extension SQLTransaction {
    @discardableResult func execute(_ sql: String) throws -> Int { try execute(sql, []) }
    func fetch(_ sql: String) throws -> [SQLRow] { try fetch(sql, []) }
}

public enum CampaignDatabaseKind: Sendable { case sqlite, postgresql }

/// A campaign database connection: each `transaction` all or nothing, and the tick lock, which
/// each database holds its own way (see `CampaignStore.withTickLock`).
protocol SQLDatabase: AnyObject, Sendable {
    var kind: CampaignDatabaseKind { get }
    func transaction<T>(_ body: (SQLTransaction) throws -> T) throws -> T
    func withTickLock<T>(holder: String, lease: Double, _ body: (_ renew: () throws -> Void) throws -> T) throws -> T?
}

// MARK: SQLite

final class SQLiteCampaignDatabase: SQLDatabase, @unchecked Sendable {
    let queue: DatabaseQueue
    var kind: CampaignDatabaseKind { .sqlite }

    init(_ queue: DatabaseQueue) { self.queue = queue }

    struct Transaction: SQLTransaction {
        let db: Database
        var kind: CampaignDatabaseKind { .sqlite }

        func execute(_ sql: String, _ args: [SQLValue]) throws -> Int {
            try db.execute(sql: sql, arguments: Self.arguments(args))
            return db.changesCount
        }

        func fetch(_ sql: String, _ args: [SQLValue]) throws -> [SQLRow] {
            try Row.fetchAll(db, sql: sql, arguments: Self.arguments(args)).map { row in
                var values: [String: SQLValue] = [:]
                for (name, value) in row {
                    switch value.storage {
                    case .null: values[name] = .null
                    case .int64(let i): values[name] = .int(i)
                    case .double(let d): values[name] = .real(d)
                    case .string(let s): values[name] = .text(s)
                    case .blob(let b): values[name] = .text(String(decoding: b, as: UTF8.self))
                    }
                }
                return SQLRow(values: values)
            }
        }

        static func arguments(_ args: [SQLValue]) -> StatementArguments {
            StatementArguments(args.map { v -> DatabaseValue in
                switch v {
                case .null: return .null
                case .int(let i): return i.databaseValue
                case .real(let d): return d.databaseValue
                case .text(let s): return s.databaseValue
                }
            })
        }
    }

    func transaction<T>(_ body: (SQLTransaction) throws -> T) throws -> T {
        try queue.write { db in try body(Transaction(db: db)) }
    }

    /// A row naming the holder's host and pid, with a lease: a holder that died (its pid is gone on
    /// this host) or whose lease expired is taken over; a longer tick renews through `renew`.
    func withTickLock<T>(holder: String, lease: Double, _ body: (_ renew: () throws -> Void) throws -> T) throws -> T? {
        let host = ProcessInfo.processInfo.hostName, pid = Int(getpid())
        let acquired: Bool = try transaction { tx in
            if let row = try tx.fetch("SELECT host, pid, expires_at FROM tick_lock WHERE id = 1").first {
                let h = row.text("host"), p = row.int("pid"), expires = row.real("expires_at")
                let alive = h != host || (kill(pid_t(p), 0) == 0 || errno == EPERM)
                if alive && expires > Date().timeIntervalSince1970 && !(h == host && p == pid) { return false }
            }
            try tx.execute("INSERT OR REPLACE INTO tick_lock (id, holder, host, pid, expires_at) VALUES (1, ?, ?, ?, ?)",
                           [.text(holder), .text(host), SQLValue(pid), .real(Date().timeIntervalSince1970 + lease)])
            return true
        }
        guard acquired else { return nil }
        defer { _ = try? transaction { try $0.execute("DELETE FROM tick_lock WHERE id = 1 AND host = ? AND pid = ?", [.text(host), SQLValue(pid)]) } }
        return try body {
            _ = try transaction { try $0.execute("UPDATE tick_lock SET expires_at = ? WHERE id = 1 AND host = ? AND pid = ?",
                                                 [.real(Date().timeIntervalSince1970 + lease), .text(host), SQLValue(pid)]) }
        }
    }
}

// MARK: PostgreSQL

final class PostgresCampaignDatabase: SQLDatabase, @unchecked Sendable {
    let session: PostgresSession
    private let lock = NSLock()
    var kind: CampaignDatabaseKind { .postgresql }

    init(_ session: PostgresSession) { self.session = session }

    struct Transaction: SQLTransaction {
        let session: PostgresSession
        var kind: CampaignDatabaseKind { .postgresql }

        /// `?` → `$1`, `$2`, … (the store's SQL has no `?` inside string literals).
        static func query(_ sql: String, _ args: [SQLValue]) -> PostgresQuery {
            var out = "", n = 0
            for c in sql {
                if c == "?" { n += 1; out += "$\(n)" } else { out.append(c) }
            }
            var binds = PostgresBindings(capacity: args.count)
            for a in args {
                switch a {
                case .null: binds.appendNull()
                case .int(let i): binds.append(i)
                case .real(let d): binds.append(d)
                case .text(let s): binds.append(s)
                }
            }
            return PostgresQuery(unsafeSQL: out, binds: binds)
        }

        func execute(_ sql: String, _ args: [SQLValue]) throws -> Int {
            try session.query(Self.query(sql, args), doing: "updating the campaign database").metadata.rows ?? 0
        }

        func fetch(_ sql: String, _ args: [SQLValue]) throws -> [SQLRow] {
            try session.query(Self.query(sql, args), doing: "reading the campaign database").map { row in
                var values: [String: SQLValue] = [:]
                for cell in row {
                    guard cell.bytes != nil else { values[cell.columnName] = .null; continue }
                    switch cell.dataType {
                    case .int2, .int4, .int8: values[cell.columnName] = .int(try cell.decode(Int64.self))
                    case .float4, .float8: values[cell.columnName] = .real(try cell.decode(Double.self))
                    case .bool: values[cell.columnName] = .int(try cell.decode(Bool.self) ? 1 : 0)
                    default: values[cell.columnName] = .text(try cell.decode(String.self))
                    }
                }
                return SQLRow(values: values)
            }
        }
    }

    func transaction<T>(_ body: (SQLTransaction) throws -> T) throws -> T {
        // One connection: one transaction at a time on it.
        lock.lock(); defer { lock.unlock() }
        return try session.transaction("updating the campaign database") { try body(Transaction(session: session)) }
    }

    /// A session advisory lock, which the server frees when the holder's connection ends, on
    /// whatever login node it ran; `renew` has nothing to do.
    func withTickLock<T>(holder: String, lease: Double, _ body: (_ renew: () throws -> Void) throws -> T) throws -> T? {
        let key: Int64 = 7_201_201_803
        guard try session.query("SELECT pg_try_advisory_lock(\(key)) AS held", doing: "taking the tick lock").first?.decode(Bool.self) == true else {
            return nil
        }
        defer { _ = try? session.query("SELECT pg_advisory_unlock(\(key))", doing: "releasing the tick lock") }
        return try body {}
    }
}
