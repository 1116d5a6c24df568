import Foundation
import QuantaPostgres

/// The project's PostgreSQL server for tests (scripts/postgres.sh start): `.ci/run` starts it and
/// sets QUANTA_POSTGRES_TESTS=1 and PGPASSWORD; without them the PostgreSQL tests are skipped.
public enum TestPostgres {
    public static let enabled = ProcessInfo.processInfo.environment["QUANTA_POSTGRES_TESTS"] == "1"
    public static let why = "needs the project's PostgreSQL: scripts/postgres.sh start; QUANTA_POSTGRES_TESTS=1 PGPASSWORD=pg-test-secret-51"
    /// The test database (scripts/postgres.sh url), no password in it.
    public static let url = ProcessInfo.processInfo.environment["QUANTA_POSTGRES_URL"] ?? "postgresql://quanta@127.0.0.1:55432/quanta_test"

    /// The test database with a schema of its own (made on first use), so tests never meet.
    public static func scratchURL(_ tag: String) -> String {
        "\(url)?schema=t_\(tag)_\(UUID().uuidString.prefix(8).lowercased())"
    }

    /// Drops the schema a scratch URL names (a test's own, after it).
    public static func drop(_ url: String) {
        guard var target = try? PostgresTarget(url: url), let schema = target.schema else { return }
        target.schema = nil
        try? PostgresSession(target).execute("DROP SCHEMA IF EXISTS \(schema) CASCADE", doing: "dropping the test schema")
    }
}
