import Foundation
import PostgresNIO
import QuantaCore

/// Where a PostgreSQL registry or campaign database is: a `postgresql://user@host:port/database`
/// URL with no password in it. The password comes from `$PGPASSWORD`, else `~/.pgpass` (libpq's
/// format and rules), never from a file Quanta writes; `description` never shows it.
/// (Issue 18, work in progress: the first piece, and the insert benchmark below.)
public struct PostgresTarget: Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var user: String
    public var database: String
    var password: String?

    public init(url: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        guard let u = URLComponents(string: url), ["postgresql", "postgres"].contains(u.scheme ?? ""),
              let host = u.host, !host.isEmpty else {
            throw QuantaError(.usage, "'\(Redact.urls(url))' is not a postgresql://user@host:port/database URL")
        }
        if u.password != nil {
            throw QuantaError(.usage, "\(Redact.urls(url)): put no password in the URL; set PGPASSWORD or use ~/.pgpass")
        }
        self.host = host
        port = u.port ?? 5432
        user = u.user ?? environment["USER"] ?? "postgres"
        database = String(u.path.drop { $0 == "/" })
        guard !database.isEmpty else { throw QuantaError(.usage, "\(Redact.urls(url)): the URL names no database (…/DATABASE)") }
        password = environment["PGPASSWORD"] ?? Self.pgpass(host: host, port: port, database: database, user: user, environment: environment)
    }

    /// libpq's ~/.pgpass: `host:port:database:user:password`, `*` matching anything; ignored unless
    /// only its owner can read it.
    static func pgpass(host: String, port: Int, database: String, user: String, environment: [String: String]) -> String? {
        let path = environment["PGPASSFILE"] ?? NSHomeDirectory() + "/.pgpass"
        var st = stat()
        guard stat(path, &st) == 0, st.st_mode & 0o077 == 0, let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let f = line.split(separator: ":", maxSplits: 4, omittingEmptySubsequences: false).map(String.init)
            guard f.count == 5 else { continue }
            let want = [host, String(port), database, user]
            if zip(f.prefix(4), want).allSatisfy({ $0 == "*" || $0 == $1 }) { return f[4] }
        }
        return nil
    }

    public var description: String { "postgresql://\(user)@\(host):\(port)/\(database)" }

    var configuration: PostgresClient.Configuration {
        PostgresClient.Configuration(host: host, port: port, username: user, password: password, database: database, tls: .disable)
    }
}

/// How fast datasets go into PostgreSQL as a merge would put them: one `INSERT … SELECT FROM
/// UNNEST(arrays) ON CONFLICT DO NOTHING` per batch, never a round trip per dataset.
public enum PostgresInsertBench {
    public static func run(_ target: PostgresTarget, count: Int, batch: Int) async throws -> (seconds: Double, inserted: Int) {
        let client = PostgresClient(configuration: target.configuration)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            try await client.query("""
                CREATE TABLE IF NOT EXISTS bench_dataset (
                    id UUID PRIMARY KEY, dataset_type TEXT NOT NULL, run TEXT NOT NULL, data_id TEXT NOT NULL,
                    path TEXT NOT NULL, size BIGINT NOT NULL, checksum TEXT, UNIQUE (dataset_type, run, data_id))
                """)
            try await client.query("TRUNCATE bench_dataset")
            let started = Date()
            var inserted = 0
            var k = 0
            while k < count {
                let n = min(batch, count - k)
                var ids: [String] = [], types: [String] = [], runs: [String] = [], dataIDs: [String] = [], paths: [String] = []
                var sizes: [Int64] = [], sums: [String] = []
                for i in k..<(k + n) {
                    ids.append(UUID().uuidString.lowercased()); types.append(i % 3 == 0 ? "calexp" : "src"); runs.append("bench/run")
                    dataIDs.append("[[\"visit\",\(i / 100)],[\"detector\",\(i % 100)],[\"k\",\(i)]]")
                    paths.append("bench/run/x/\(i).fits"); sizes.append(Int64(1000 + i)); sums.append("crc32:\(String(i, radix: 16))")
                }
                let rows = try await client.query("""
                    INSERT INTO bench_dataset (id, dataset_type, run, data_id, path, size, checksum)
                    SELECT * FROM UNNEST(\(ids)::uuid[], \(types)::text[], \(runs)::text[], \(dataIDs)::text[], \(paths)::text[], \(sizes)::int8[], \(sums)::text[])
                    ON CONFLICT DO NOTHING RETURNING 1
                    """)
                for try await _ in rows { inserted += 1 }
                k += n
            }
            return (Date().timeIntervalSince(started), inserted)
        }
    }
}
