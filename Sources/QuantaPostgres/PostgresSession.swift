import Foundation
import Logging
import NIOCore
import NIOSSL
import PostgresNIO
import QuantaCore

/// One connection to a PostgreSQL server, used synchronously: Quanta's registry and campaign code
/// is synchronous, so each call waits on postgres-nio's event loop (never on Swift's cooperative
/// pool, so it cannot starve it). A single connection, not a pool: a pool retries a refused
/// password for ever, and the issue wants one clear error at once.
///
/// Every error is a `QuantaError` of one line naming the server (host, port, database, user — never
/// the password) and the fix.
public final class PostgresSession: @unchecked Sendable {
    public let target: PostgresTarget
    let connection: PostgresConnection
    let logger = Logger(label: "quanta.postgres", factory: { _ in SwiftLogNoOpLogHandler() })
    private let lock = NSLock()
    private var closed = false

    /// Connects (10 s at most) and, when the target names a schema, makes it and puts it first in
    /// the search path.
    public init(_ target: PostgresTarget, connectTimeout: Int64 = 10) throws {
        self.target = target
        var configuration: PostgresConnection.Configuration
        if let socket = target.socketPath {
            configuration = .init(unixSocketPath: socket, username: target.user, password: target.password, database: target.database)
        } else {
            let tls: PostgresConnection.Configuration.TLS
            do {
                switch target.tls {
                case .disable: tls = .disable
                case .prefer, .require:
                    // libpq's prefer/require encrypt without checking the certificate; verify-full checks it.
                    var c = TLSConfiguration.makeClientConfiguration()
                    c.certificateVerification = .none
                    let context = try NIOSSLContext(configuration: c)
                    tls = target.tls == .prefer ? .prefer(context) : .require(context)
                case .verifyFull:
                    tls = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
                }
            } catch {
                throw QuantaError(.registry, "\(target): cannot set up TLS (\(error))")
            }
            configuration = .init(host: target.host, port: target.port, username: target.user, password: target.password,
                                  database: target.database, tls: tls)
        }
        configuration.options.connectTimeout = .seconds(connectTimeout)
        do {
            connection = try PostgresConnection.connect(on: PostgresConnection.defaultEventLoopGroup.any(), configuration: configuration,
                                                        id: 1, logger: logger).wait()
        } catch {
            throw Self.explain(error, target: target, doing: "connecting")
        }
        if let schema = target.schema {
            // The name was checked to be a plain identifier, so it needs no quoting.
            try execute("CREATE SCHEMA IF NOT EXISTS \(schema)", doing: "making schema \(schema)")
            try execute("SET search_path TO \(schema)", doing: "using schema \(schema)")
        }
    }

    deinit { close() }

    public func close() {
        lock.lock(); defer { lock.unlock() }
        guard !closed else { return }
        closed = true
        _ = try? connection.close().wait()
    }

    /// Runs one statement and returns its rows.
    @discardableResult
    public func query(_ query: PostgresQuery, doing what: @autoclosure () -> String) throws -> PostgresQueryResult {
        do { return try connection.query(query, logger: logger).wait() } catch {
            throw Self.explain(error, target: target, doing: what())
        }
    }

    /// Sends one statement and returns at once: the caller prepares the next while the server
    /// works, then `wait`s (a merge's batches).
    public func send(_ query: PostgresQuery) -> EventLoopFuture<PostgresQueryResult> {
        connection.query(query, logger: logger)
    }

    public func wait(_ pending: EventLoopFuture<PostgresQueryResult>, doing what: @autoclosure () -> String) throws -> PostgresQueryResult {
        do { return try pending.wait() } catch { throw Self.explain(error, target: target, doing: what()) }
    }

    /// As `wait`, but a failure with SQLSTATE `state` (e.g. 23505, a unique key already taken)
    /// gives nil: the caller has another way.
    public func wait(_ pending: EventLoopFuture<PostgresQueryResult>, doing what: @autoclosure () -> String,
                     unless state: String) throws -> PostgresQueryResult? {
        do { return try pending.wait() } catch {
            if Self.sqlState(error) == state { return nil }
            throw Self.explain(error, target: target, doing: what())
        }
    }

    /// Runs one statement without parameters.
    public func execute(_ sql: String, doing what: @autoclosure () -> String) throws {
        try query(PostgresQuery(unsafeSQL: sql), doing: what())
    }

    /// Runs `body` in a transaction: committed when it returns, rolled back when it throws.
    public func transaction<T>(_ what: @autoclosure () -> String, _ body: () throws -> T) throws -> T {
        try execute("BEGIN", doing: what())
        do {
            let result = try body()
            try execute("COMMIT", doing: what())
            return result
        } catch {
            try? execute("ROLLBACK", doing: what())
            throw error
        }
    }

    /// NIO's connection errors nest several layers of description; the reason a person needs.
    static func shortReason(_ text: String) -> String {
        for (needle, reason) in [("Connection refused", "connection refused: nothing listens there"),
                                 ("connectTimeout", "no answer within the connect timeout"), ("timed out", "no answer within the connect timeout"),
                                 ("No such file or directory", "no server socket there"), ("resolve", "the host name does not resolve"),
                                 ("Network is unreachable", "network unreachable"), ("No route to host", "no route to host")]
        where text.contains(needle) { return reason }
        return text
    }

    /// The SQLSTATE of a server error, if the error is one.
    public static func sqlState(_ error: Error) -> String? {
        (error as? PSQLError)?.serverInfo?[.sqlState]
    }

    /// One line for a failure of the connection or a statement: the server as a URL without
    /// password, what was being done, the server's message, and the fix where there is one.
    static func explain(_ error: Error, target: PostgresTarget, doing what: String) -> QuantaError {
        if let e = error as? QuantaError { return e }
        let server = "PostgreSQL \(target)"
        guard let p = error as? PSQLError else {
            return QuantaError(.registry, "\(server): \(what) failed: \(Redact.urls(String(describing: error)))")
        }
        if let info = p.serverInfo {
            let state = info[.sqlState] ?? "", message = info[.message] ?? "error"
            switch state {
            case "28000":
                // pg_hba.conf has no line letting this connection in (e.g. "no encryption").
                let hint = message.contains("no encryption") ? "the server requires TLS: use sslmode=prefer or require" : "ask the server's administrator for a pg_hba.conf line for this user, database and host"
                return QuantaError(.registry, "\(server): the server refused the connection (\(message)); \(hint)")
            case "28P01":
                let how = target.hasPassword ? "the password from PGPASSWORD or the password file was refused" : "no password was found in PGPASSWORD or the password file"
                return QuantaError(.registry, "\(server): the server refused user \(target.user) (\(message)); \(how) — set PGPASSWORD or put host:port:database:user:password in ~/.pgpass (mode 600)")
            case "3D000":
                return QuantaError(.registry, "\(server): database \(target.database) does not exist; create it (createdb -h \(target.host) -p \(target.port) -O \(target.user) \(target.database)) or fix the URL")
            case "42501":
                return QuantaError(.registry, "\(server): \(what): permission denied (\(message)); grant user \(target.user) the rights, or use the database's owner")
            case "57P01", "57P02", "57P03":
                return QuantaError(.registry, "\(server): \(what): the server is shutting down or starting (\(message)); run it again when the server is up")
            case "53300":
                return QuantaError(.registry, "\(server): \(what): too many connections (\(message)); raise max_connections or run fewer merges at once")
            default:
                let detail = info[.detail].map { " (\($0))" } ?? ""
                return QuantaError(.registry, "\(server): \(what) failed: \(message)\(detail) [SQLSTATE \(state)]")
            }
        }
        switch p.code {
        case .connectionError:
            let why = p.underlying.map { Self.shortReason(Redact.urls(String(describing: $0))) } ?? "no connection"
            return QuantaError(.registry, "\(server): cannot reach the server (\(why)); start it, or check host and port in the URL — nothing was written")
        case .serverClosedConnection, .clientClosedConnection, .uncleanShutdown:
            return QuantaError(.registry, "\(server): the connection was lost while \(what); what was not committed was rolled back — run it again when the server is up")
        case .sslUnsupported:
            return QuantaError(.registry, "\(server): the server does not offer TLS but sslmode requires it; set sslmode=prefer or enable ssl on the server")
        case .authMechanismRequiresPassword:
            return QuantaError(.registry, "\(server): the server asks for a password and none was found; set PGPASSWORD or put host:port:database:user:password in ~/.pgpass (mode 600)")
        default:
            return QuantaError(.registry, "\(server): \(what) failed (\(p.code))")
        }
    }
}
