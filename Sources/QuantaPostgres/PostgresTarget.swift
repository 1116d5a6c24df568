import Foundation
import QuantaCore

/// Where a PostgreSQL registry or campaign database is: a
/// `postgresql://user@host:port/database[?schema=…&sslmode=…&passfile=…]` URL with no password in
/// it. The password comes from `$PGPASSWORD`, else the password file (`passfile=` in the URL, else
/// `$PGPASSFILE`, else `~/.pgpass`, in libpq's format and with its rules), never from a file Quanta
/// writes; `description` never shows it.
///
/// - `host` may be a directory (`?host=/var/run/postgresql`, as libpq): the server's Unix socket
///   `.s.PGSQL.<port>` in it.
/// - `schema=NAME` keeps the tables in that schema (made when missing), so several repositories
///   or a test per schema share one database.
/// - `sslmode=disable|prefer|require|verify-full` as libpq; `prefer` (the default) uses TLS when the
///   server offers it.
public struct PostgresTarget: Sendable, CustomStringConvertible, Equatable {
    public enum TLSMode: String, Sendable, Equatable { case disable, prefer, require, verifyFull = "verify-full" }

    public var host: String
    public var port: Int
    public var user: String
    public var database: String
    public var schema: String?
    public var tls: TLSMode
    /// The Unix socket's path when `host` is a directory.
    public var socketPath: String? { host.hasPrefix("/") ? "\(host)/.s.PGSQL.\(port)" : nil }
    var password: String?

    public static func isURL(_ text: String) -> Bool {
        text.hasPrefix("postgresql://") || text.hasPrefix("postgres://")
    }

    public init(url: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        let shown = Redact.urls(url)
        guard let u = URLComponents(string: url), ["postgresql", "postgres"].contains(u.scheme ?? "") else {
            throw QuantaError(.usage, "'\(shown)' is not a postgresql://user@host:port/database URL")
        }
        if u.password != nil {
            throw QuantaError(.usage, "\(shown): put no password in the URL; set PGPASSWORD or use ~/.pgpass (host:port:database:user:password, mode 600)")
        }
        var query: [String: String] = [:]
        for item in u.queryItems ?? [] {
            guard ["host", "schema", "sslmode", "passfile", "port", "user"].contains(item.name) else {
                throw QuantaError(.usage, "\(shown): unknown URL parameter '\(item.name)'; Quanta takes host, port, user, schema, sslmode and passfile")
            }
            query[item.name] = item.value ?? ""
        }
        guard let host = query["host"] ?? u.host.flatMap({ $0.isEmpty ? nil : $0.removingPercentEncoding }) else {
            throw QuantaError(.usage, "\(shown): the URL names no host (postgresql://user@HOST:port/database, or ?host=/socket/directory)")
        }
        self.host = host
        if let p = query["port"] {
            guard let n = Int(p), (1...65535).contains(n) else { throw QuantaError(.usage, "\(shown): port '\(p)' is not a port number") }
            port = n
        } else {
            port = u.port ?? 5432
        }
        user = query["user"] ?? u.user ?? environment["PGUSER"] ?? environment["USER"] ?? "postgres"
        database = String(u.path.drop { $0 == "/" })
        guard !database.isEmpty else {
            throw QuantaError(.usage, "\(shown): the URL names no database (postgresql://user@host:port/DATABASE)")
        }
        if let s = query["schema"] {
            guard Self.isIdentifier(s) else {
                throw QuantaError(.usage, "\(shown): schema '\(s)' is not a plain name (lower-case letters, digits, _; not starting with a digit)")
            }
            schema = s
        }
        let mode = query["sslmode"] ?? environment["PGSSLMODE"] ?? "prefer"
        guard let tls = TLSMode(rawValue: mode) ?? (mode == "allow" ? .prefer : nil) else {
            throw QuantaError(.usage, "\(shown): sslmode '\(mode)' is not one of disable, prefer, require, verify-full")
        }
        self.tls = tls
        let passfile = query["passfile"] ?? environment["PGPASSFILE"] ?? NSHomeDirectory() + "/.pgpass"
        password = environment["PGPASSWORD"] ?? Self.pgpass(path: passfile, host: host, port: port, database: database, user: user)
    }

    /// SQL identifiers Quanta accepts in URLs (quoted nowhere, so nothing to escape).
    static func isIdentifier(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, s.count <= 63, !("0"..."9").contains(Character(first)) else { return false }
        return s.unicodeScalars.allSatisfy { ("a"..."z").contains(Character($0)) || ("0"..."9").contains(Character($0)) || $0 == "_" }
    }

    /// libpq's password file: `host:port:database:user:password`, `*` matching anything, `\:` and
    /// `\\` escaped; ignored unless only its owner can read it (as libpq does).
    static func pgpass(path: String, host: String, port: Int, database: String, user: String) -> String? {
        var st = stat()
        guard stat(path, &st) == 0, st.st_mode & 0o077 == 0, let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        let want = [host.hasPrefix("/") ? "localhost" : host, String(port), database, user]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            var fields: [String] = [], current = "", escaped = false
            for c in line {
                if escaped { current.append(c); escaped = false } else if c == "\\" { escaped = true } else if c == ":" && fields.count < 4 {
                    fields.append(current); current = ""
                } else { current.append(c) }
            }
            fields.append(current)
            guard fields.count == 5 else { continue }
            if zip(fields.prefix(4), want).allSatisfy({ $0 == "*" || $0 == $1 }) { return fields[4] }
        }
        return nil
    }

    /// Whether a password was found (for messages; never the password).
    public var hasPassword: Bool { password != nil }

    /// The URL without password, as Quanta shows it.
    public var description: String {
        let h = host.hasPrefix("/") ? "localhost" : host
        var params: [String] = []
        if host.hasPrefix("/") { params.append("host=\(host)") }
        if let schema { params.append("schema=\(schema)") }
        return "postgresql://\(user)@\(h):\(port)/\(database)" + (params.isEmpty ? "" : "?" + params.joined(separator: "&"))
    }
}
