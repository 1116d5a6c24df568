import Foundation
import QuantaButler
import QuantaCore
@testable import QuantaPostgres
import QuantaRegistry
import QuantaTestSupport
import Testing

/// One contract, two registries: SQLite always, PostgreSQL against the project's server. Each
/// step's result is recorded, and the PostgreSQL transcript must equal SQLite's word for word
/// (errors included, but for the location they name).
enum Contract {
    static func record(_ id: String, _ type: String, _ run: String, _ dataID: String, size: Int64 = 10) -> DatasetRecord {
        DatasetRecord(id: id, datasetType: type, run: run, dataID: dataID, path: "\(run)/\(type)/\(dataID).txt", size: size, checksum: "crc32:\(size)")
    }

    static func uuid(_ k: Int) -> String { String(format: "00000000-0000-4000-8000-%012d", k) }

    /// Runs every operation of the registry interface; returns what each gave, in order.
    static func transcript(_ r: any Registry) throws -> [String] {
        var out: [String] = []
        func step(_ name: String, _ body: () throws -> String) {
            do { out.append("\(name): \(try body())") } catch {
                out.append("\(name): ERROR \(String(describing: error).replacingOccurrences(of: r.location, with: "<registry>"))")
            }
        }
        step("type") { try r.registerDatasetType(name: "calexp", dimensions: ["visit", "detector"], storageClass: "Exposure"); return "ok" }
        step("type again") { try r.registerDatasetType(name: "calexp", dimensions: ["visit", "detector"], storageClass: "Exposure"); return "ok" }
        step("type clash") { try r.registerDatasetType(name: "calexp", dimensions: ["visit"], storageClass: "Exposure"); return "ok" }
        step("raw type") { try r.registerDatasetType(name: "raw", dimensions: ["exposure", "detector"], storageClass: "Exposure"); return "ok" }
        for run in ["raw/all", "run/1", "run/2"] {
            step("run \(run)") { try r.registerCollection(run, type: .run); return "ok" }
        }
        step("collection clash") { try r.registerCollection("run/1", type: .chained); return "ok" }
        step("chain new") { try r.prependToChain("out", run: "run/1", rest: ["raw/all"]); return try r.chain("out").joined(separator: ",") }
        step("chain again") { try r.prependToChain("out", run: "run/2", rest: ["ignored"]); return try r.chain("out").joined(separator: ",") }
        step("chain repeat") { try r.prependToChain("out", run: "run/1", rest: []); return try r.chain("out").joined(separator: ",") }
        step("chain on a run") { try r.prependToChain("run/2", run: "run/1", rest: []); return "ok" }
        step("resolve") { try r.resolveRuns(["out"]).joined(separator: ",") }
        step("resolve missing") { try r.resolveRuns(["nope"]).joined(separator: ",") }
        // Data IDs whose bytewise order differs from a locale's.
        let batch = ["b", "B", "a", "_x", "Z9", "é"].enumerated().map { record(uuid($0.offset), "calexp", "run/1", $0.element, size: Int64($0.offset)) }
        step("insert") { String(try r.insert(batch)) }
        step("insert again") { String(try r.insert(batch)) }
        step("insert partly new") { String(try r.insert([record(uuid(100), "calexp", "run/1", "new")] + batch.prefix(2))) }
        step("uuid in other run") { String(try r.insert([record(uuid(101), "calexp", "run/2", "fresh"), record(uuid(0), "calexp", "run/2", "b")])) }
        step("after refused batch") { String(try r.count(run: "run/2")) }
        step("data ID clash") { String(try r.insert([record(uuid(102), "calexp", "run/1", "b")])) }
        step("unregistered type") { String(try r.insert([record(uuid(103), "nope", "run/1", "x")])) }
        step("unregistered run") { String(try r.insert([record(uuid(104), "calexp", "run/nope", "x")])) }
        step("raws") { String(try r.insert([record(uuid(200), "raw", "raw/all", "e1"), record(uuid(201), "raw", "raw/all", "e2")])) }
        step("datasets run/1") { try r.datasets(runs: ["run/1"], types: nil).map(\.dataID).joined(separator: " ") }
        step("datasets of type") { try r.datasets(runs: nil, types: ["raw"]).map { "\($0.id) \($0.path) \($0.size) \($0.checksum ?? "-")" }.joined(separator: ";") }
        step("datasets none") { String(try r.datasets(runs: [], types: nil).count) }
        step("locate") {
            try r.locate(ids: [uuid(0), uuid(200), uuid(999)]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.run):\($0.value.path)" }.joined(separator: ",")
        }
        step("verify") {
            try r.verify([(uuid(0), "run/1", "run/1/calexp/b.txt"), (uuid(1), "run/1", "moved"), (uuid(2), "run/2", "x"), (uuid(998), "run/1", "y")])
                .map { "\($0.0):\($0.1)" }.joined(separator: ",")
        }
        step("replace") { String(try r.replace([record(uuid(0), "calexp", "run/1", "b", size: 77), record(uuid(5), "calexp", "run/1", "wrong-path-ok", size: 1)])) }
        step("after replace") { try r.datasets(runs: ["run/1"], types: nil).filter { $0.id == uuid(0) }.map { "\($0.size) \($0.checksum ?? "-")" }.joined() }
        step("parents") { try r.parents(of: "run/1").joined(separator: ",") }
        step("collections") { try r.collections().map { "\($0.name) \($0.type) [\($0.children.joined(separator: ","))]" }.joined(separator: "; ") }
        step("remove chained run") { String(try r.removeCollections(["run/1"])) }
        step("still there") { String(try r.count(run: "run/1")) }
        step("remove chain and run") { String(try r.removeCollections(["out", "run/1"])) }
        step("after removal") { "\(try r.count()) \(try r.collectionType("out").map(\.rawValue) ?? "gone")" }
        return out
    }

    static let expected: [String: String] = [
        "insert": "6", "insert again": "0", "insert partly new": "1", "after refused batch": "0", "raws": "2",
        "chain new": "run/1,raw/all", "chain again": "run/2,run/1,raw/all", "chain repeat": "run/1,run/2,raw/all",
        "resolve": "run/1,run/2,raw/all", "datasets run/1": "B Z9 _x a b new é", "datasets none": "0",
        "verify": "1:elsewhere(\"run/1/calexp/B.txt\"),2:missing,3:missing", "replace": "1", "after replace": "77 crc32:77",
        "parents": "out", "still there": "7", "remove chain and run": "7", "after removal": "2 gone",
    ]

    /// Checks a transcript: the expected values, and an error where one belongs.
    static func check(_ t: [String]) {
        for line in t {
            let (name, value) = (String(line.prefix { $0 != ":" }), String(line.drop { $0 != ":" }.dropFirst(2)))
            if let want = expected[name] { #expect(value == want, "\(name)") }
            if ["type clash", "collection clash", "unregistered type", "unregistered run", "chain on a run", "resolve missing", "uuid in other run", "data ID clash", "remove chained run"].contains(name) {
                #expect(value.hasPrefix("ERROR "), "\(name) must fail: \(value)")
            }
        }
        #expect(t.contains { $0.contains("uuid in other run: ERROR") && $0.contains("already registered in run run/1, not run/2") })
        #expect(t.contains { $0.contains("data ID clash: ERROR") && $0.contains("under another UUID") })
        #expect(t.contains { $0.contains("remove chained run: ERROR") && $0.contains("run/1 is in chain out") || $0.contains("is in a chain that is not being removed") })
    }
}

@Suite struct SQLiteRegistryTests {
    @Test func contract() throws {
        let dir = try temporaryDirectory()
        let t = try Contract.transcript(try SQLiteRegistry(path: dir + "/r.sqlite"))
        Contract.check(t)
    }

    @Test func aSchemaFromANewerQuantaIsRefused() throws {
        let dir = try temporaryDirectory()
        let path = dir + "/r.sqlite"
        _ = try SQLiteRegistry(path: path)
        try SQLiteRegistry.execute(path, "UPDATE quanta_schema SET version = 99 WHERE component = 'registry'")
        let e = #expect(throws: QuantaError.self) { try SQLiteRegistry(path: path) }
        #expect(e?.message.contains("schema is version 99, made by a newer Quanta") == true)
    }
}

@Suite(.enabled(if: TestPostgres.enabled, Comment(rawValue: TestPostgres.why)))
struct PostgresRegistryTests {
    @Test func contractEqualsSQLite() throws {
        let dir = try temporaryDirectory()
        let url = TestPostgres.scratchURL("contract")
        defer { TestPostgres.drop(url) }
        let pg = try Contract.transcript(try PostgresRegistry(target: try PostgresTarget(url: url), repositoryID: nil, root: "test"))
        Contract.check(pg)
        let sqlite = try Contract.transcript(try SQLiteRegistry(path: dir + "/r.sqlite"))
        // Word for word, but for the two errors SQLite's foreign keys word themselves.
        let own = ["unregistered type", "unregistered run"]
        let mine = { (t: [String]) in t.filter { line in !own.contains { line.hasPrefix($0 + ":") } } }
        #expect(mine(pg) == mine(sqlite))
    }

    @Test func aSchemaFromANewerQuantaIsRefused() throws {
        let url = TestPostgres.scratchURL("newer")
        defer { TestPostgres.drop(url) }
        let target = try PostgresTarget(url: url)
        _ = try PostgresRegistry(target: target, repositoryID: nil, root: "test")
        try PostgresSession(target).execute("UPDATE quanta_schema SET version = 99 WHERE component = 'registry'", doing: "test")
        let e = #expect(throws: QuantaError.self) { try PostgresRegistry(target: target, repositoryID: nil, root: "test") }
        #expect(e?.message.contains("schema is version 99, made by a newer Quanta; this one reads up to version 1 — use a newer quanta") == true)
    }

    @Test func oneRegistryPerRepository() throws {
        let dir = try temporaryDirectory()
        let url = TestPostgres.scratchURL("owner")
        defer { TestPostgres.drop(url) }
        let a = try Repository.create(at: dir + "/a", registry: url)
        let e = #expect(throws: QuantaError.self) { try Repository.create(at: dir + "/b", registry: url) }
        #expect(e?.message.contains("already the registry of repository \(a.id!)") == true)
        #expect(!FileManager.default.fileExists(atPath: dir + "/b"), "nothing of the refused repository is written")
        // A repository whose config is pointed at another repository's registry is refused on open.
        let c = try Repository.create(at: dir + "/c")
        var text = try String(contentsOfFile: c.root + "/quanta-repo.yaml", encoding: .utf8)
        text = text.replacingOccurrences(of: "registry: registry.sqlite", with: "registry: \"\(url)\"")
        try text.write(toFile: c.root + "/quanta-repo.yaml", atomically: true, encoding: .utf8)
        let f = #expect(throws: QuantaError.self) { try Repository(root: c.root).openRegistry() }
        #expect(f?.message.contains("belongs to repository \(a.id!), not to \(c.root)") == true)
    }

    /// Wrong password, missing database, server down, a password in the URL: one line each, with
    /// the fix, and never the password.
    @Test func faultsGiveOneClearErrorWithoutThePassword() throws {
        let secret = "s3cret-\(UUID().uuidString.prefix(6))"
        func fails(_ url: String, password: String?, _ expected: String) throws {
            var env = ProcessInfo.processInfo.environment
            env["PGPASSWORD"] = password
            env["PGPASSFILE"] = "/nonexistent"
            let started = Date()
            let e = #expect(throws: QuantaError.self) { try PostgresSession(try PostgresTarget(url: url, environment: env), connectTimeout: 5) }
            let message = e?.message ?? ""
            #expect(message.contains(expected), "\(message)")
            #expect(!message.contains(secret))
            #expect(!message.contains("\n"))
            #expect(Date().timeIntervalSince(started) < 15, "gives up at once, not retrying for ever")
        }
        let t = try PostgresTarget(url: TestPostgres.url)
        try fails(TestPostgres.url, password: secret, "the server refused user quanta")
        try fails(TestPostgres.url, password: nil, "PGPASSWORD")
        try fails("postgresql://quanta@\(t.host):\(t.port)/no_such_db", password: ProcessInfo.processInfo.environment["PGPASSWORD"], "database no_such_db does not exist; create it")
        try fails("postgresql://quanta@127.0.0.1:1/quanta_test", password: secret, "cannot reach the server")
        // A server that requires TLS: refused without it, with the fix; served with it.
        try fails("postgresql://quanta@\(t.host):\(t.port)/quanta_tls?sslmode=disable", password: ProcessInfo.processInfo.environment["PGPASSWORD"], "the server requires TLS: use sslmode=prefer or require")
        for mode in ["prefer", "require"] {
            let s = try PostgresSession(try PostgresTarget(url: "postgresql://quanta@\(t.host):\(t.port)/quanta_tls?sslmode=\(mode)"))
            #expect(try s.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", doing: "test").first?.decode(Bool.self) == true, "\(mode)")
        }
        let e = #expect(throws: QuantaError.self) { try PostgresTarget(url: "postgresql://quanta:\(secret)@127.0.0.1:55432/quanta_test") }
        #expect(e?.message.contains("put no password in the URL") == true)
        #expect(e?.message.contains(secret) == false)
    }
}

@Suite struct PostgresTargetTests {
    @Test func passwordFileFollowsLibpqRules() throws {
        let dir = try temporaryDirectory()
        let file = dir + "/pgpass"
        try "# comment\nother:5432:*:*:no\n127.0.0.1:55432:quanta_test:quanta:pa\\:ss\n*:*:*:*:fallback\n".write(toFile: file, atomically: true, encoding: .utf8)
        chmod(file, 0o600)
        let env = ["PGPASSFILE": file, "USER": "me"]
        #expect(try PostgresTarget(url: "postgresql://quanta@127.0.0.1:55432/quanta_test", environment: env).password == "pa:ss")
        #expect(try PostgresTarget(url: "postgresql://x@h/db", environment: env).password == "fallback")
        #expect(try PostgresTarget(url: "postgresql://h/db", environment: env).user == "me")
        // Readable by others: ignored, as libpq does.
        chmod(file, 0o644)
        #expect(try PostgresTarget(url: "postgresql://quanta@127.0.0.1:55432/quanta_test", environment: env).password == nil)
        // A password file the URL names.
        chmod(file, 0o600)
        #expect(try PostgresTarget(url: "postgresql://quanta@127.0.0.1:55432/quanta_test?passfile=\(file)", environment: [:]).password == "pa:ss")
    }

    @Test func urlsAreCheckedAndShownWithoutPassword() throws {
        for bad in ["postgresql://127.0.0.1/", "mysql://h/db", "postgresql://h/db?schema=Bad-Name", "postgresql://h/db?sslmode=maybe", "postgresql://h/db?options=x"] {
            #expect(throws: QuantaError.self, "\(bad)") { try PostgresTarget(url: bad, environment: [:]) }
        }
        let t = try PostgresTarget(url: "postgresql://u@db.example:6543/prod?schema=repo_a&sslmode=require", environment: ["PGPASSWORD": "pw"])
        #expect(t.description == "postgresql://u@db.example:6543/prod?schema=repo_a")
        #expect(t.tls == .require && t.hasPassword)
        let s = try PostgresTarget(url: "postgresql://u@/prod?host=/var/run/postgresql&port=5433", environment: [:])
        #expect(s.socketPath == "/var/run/postgresql/.s.PGSQL.5433")
    }
}
