import Foundation
import GRDB
import GRDBSQLite
import QuantaButler
import QuantaCore

/// The registry in one SQLite file (the default: no server, the demo and a laptop).
public final class SQLiteRegistry: Registry {
    public let path: String
    let db: DatabaseQueue

    public var location: String { path }

    public init(path: String) throws {
        self.path = path
        var config = Configuration()
        config.busyMode = .timeout(30)
        do {
            db = try DatabaseQueue(path: path, configuration: config)
            // WAL with synchronous=NORMAL: a crash can lose the last commit, never corrupt the file;
            // merges are idempotent and resumable, so a lost batch is registered again. A 64 MB page
            // cache (used only as far as needed): with SQLite's 2 MB default, a 150,000-dataset merge
            // re-read and re-wrote index pages ~97,000 times.
            try db.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536")
            }
            try migrate()
        } catch let e as QuantaError {
            throw e
        } catch {
            throw QuantaError(.registry, "\(path): cannot open the registry (\(error))")
        }
    }

    private func migrate() throws {
        try db.write { db in
            try db.execute(sql: "CREATE TABLE IF NOT EXISTS quanta_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
            if let found = try Int.fetchOne(db, sql: "SELECT version FROM quanta_schema WHERE component = 'registry'") {
                try RegistrySchema.check(found: found, at: self.path)
                if found == RegistrySchema.version { return }
            }
            try db.execute(sql: """
            CREATE TABLE IF NOT EXISTS dataset_type (
                name TEXT PRIMARY KEY, dimensions TEXT NOT NULL, storage_class TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS collection (
                name TEXT PRIMARY KEY, type TEXT NOT NULL CHECK (type IN ('RUN','CHAINED','TAGGED')));
            CREATE TABLE IF NOT EXISTS collection_chain (
                parent TEXT NOT NULL REFERENCES collection(name), position INTEGER NOT NULL,
                child TEXT NOT NULL REFERENCES collection(name), PRIMARY KEY (parent, position));
            CREATE TABLE IF NOT EXISTS dataset (
                id TEXT PRIMARY KEY,
                dataset_type TEXT NOT NULL REFERENCES dataset_type(name),
                run TEXT NOT NULL REFERENCES collection(name),
                data_id TEXT NOT NULL,
                path TEXT NOT NULL,
                size INTEGER NOT NULL,
                checksum TEXT,
                ingest_date TEXT NOT NULL DEFAULT (datetime('now')),
                UNIQUE (dataset_type, run, data_id));
            CREATE INDEX IF NOT EXISTS dataset_run ON dataset(run, dataset_type);
            CREATE INDEX IF NOT EXISTS collection_chain_child ON collection_chain(child);
            """)
            try db.execute(sql: "INSERT OR REPLACE INTO quanta_schema (component, version) VALUES ('registry', ?)", arguments: [RegistrySchema.version])
        }
    }

    func wrap<T>(_ what: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as QuantaError { throw e } catch {
            throw QuantaError(.registry, "\(path): \(what) failed: \(error)")
        }
    }

    public func registerDatasetType(name: String, dimensions: [String], storageClass: String) throws {
        try wrap("registering dataset type \(name)") {
            try db.write { db in
                if let row = try Row.fetchOne(db, sql: "SELECT dimensions, storage_class FROM dataset_type WHERE name = ?", arguments: [name]) {
                    let dims: String = row["dimensions"], sc: String = row["storage_class"]
                    guard dims == dimensions.joined(separator: ","), sc == storageClass else {
                        throw RegistryError.datasetTypeClash(self.path, name: name, registered: (dims, sc), wanted: (dimensions.joined(separator: ","), storageClass))
                    }
                    return
                }
                try db.execute(sql: "INSERT INTO dataset_type (name, dimensions, storage_class) VALUES (?, ?, ?)",
                               arguments: [name, dimensions.joined(separator: ","), storageClass])
            }
        }
    }

    public func registerCollection(_ name: String, type: CollectionType) throws {
        try wrap("registering collection \(name)") {
            try db.write { db in
                if let existing = try String.fetchOne(db, sql: "SELECT type FROM collection WHERE name = ?", arguments: [name]) {
                    guard existing == type.rawValue else {
                        throw RegistryError.collectionClash(self.path, name: name, existing: existing, wanted: type.rawValue)
                    }
                    return
                }
                try db.execute(sql: "INSERT INTO collection (name, type) VALUES (?, ?)", arguments: [name, type.rawValue])
            }
        }
    }

    public func collectionType(_ name: String) throws -> CollectionType? {
        try wrap("reading collection \(name)") {
            try db.read { db in
                try String.fetchOne(db, sql: "SELECT type FROM collection WHERE name = ?", arguments: [name]).flatMap(CollectionType.init)
            }
        }
    }

    public func chain(_ parent: String) throws -> [String] {
        try wrap("reading chain \(parent)") {
            try db.read { db in
                try String.fetchAll(db, sql: "SELECT child FROM collection_chain WHERE parent = ? ORDER BY position", arguments: [parent])
            }
        }
    }

    /// Puts `run` first in the CHAINED collection `parent`, creating it with `[run] + rest` if needed.
    public func prependToChain(_ parent: String, run: String, rest: [String]) throws {
        try wrap("updating chain \(parent)") {
            try db.write { db in
                let type = try String.fetchOne(db, sql: "SELECT type FROM collection WHERE name = ?", arguments: [parent])
                if let type, type != CollectionType.chained.rawValue {
                    throw RegistryError.notAChain(self.path, parent: parent, type: type)
                }
                var children = try String.fetchAll(db, sql: "SELECT child FROM collection_chain WHERE parent = ? ORDER BY position", arguments: [parent])
                if type == nil {
                    try db.execute(sql: "INSERT INTO collection (name, type) VALUES (?, 'CHAINED')", arguments: [parent])
                    children = rest
                }
                children.removeAll { $0 == run }
                children.insert(run, at: 0)
                for c in children {
                    try db.execute(sql: "INSERT OR IGNORE INTO collection (name, type) VALUES (?, 'RUN')", arguments: [c])
                }
                try db.execute(sql: "DELETE FROM collection_chain WHERE parent = ?", arguments: [parent])
                for (i, c) in children.enumerated() {
                    try db.execute(sql: "INSERT INTO collection_chain (parent, position, child) VALUES (?, ?, ?)", arguments: [parent, i, c])
                }
            }
        }
    }

    /// No automatic WAL checkpoints while the batches go in, one checkpoint after: checkpointing
    /// every 1,000 pages wrote each index page several times.
    public func insertBatches(_ records: [DatasetRecord], batchSize: Int, committed: (Int, Int) throws -> Void) throws {
        try beginBulk()
        let size = max(1, batchSize)
        for start in stride(from: 0, to: records.count, by: size) {
            let batch = Array(records[start ..< min(start + size, records.count)])
            try committed(batch.count, try insert(batch))
        }
        try endBulk()
    }

    func beginBulk() throws {
        try wrap("setting up the merge") { try db.writeWithoutTransaction { try $0.execute(sql: "PRAGMA wal_autocheckpoint=0") } }
    }

    func endBulk() throws {
        try wrap("checkpointing the registry") {
            try db.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA wal_autocheckpoint=1000")
                _ = try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(PASSIVE)")
            }
        }
    }

    /// Inserts one batch in one transaction; datasets whose UUID is already registered are skipped.
    /// Returns how many were new. A different dataset with the same type, run and data ID is an error.
    public func insert(_ batch: [DatasetRecord]) throws -> Int {
        try wrap("registering \(batch.count) datasets") {
            try db.write { db in
                var added = 0
                let stmt = try db.makeStatement(sql: """
                    INSERT OR IGNORE INTO dataset (id, dataset_type, run, data_id, path, size, checksum)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """)
                // Bound through SQLite's own API: GRDB's argument arrays boxed seven values per row,
                // a third of the insert time at 150,000 datasets.
                let s = stmt.sqliteStatement
                for r in batch {
                    sqlite3_reset(s)
                    Self.bind(s, 1, r.id); Self.bind(s, 2, r.datasetType); Self.bind(s, 3, r.run)
                    Self.bind(s, 4, r.dataID); Self.bind(s, 5, r.path)
                    sqlite3_bind_int64(s, 6, r.size)
                    Self.bind(s, 7, r.checksum)
                    let rc = sqlite3_step(s)
                    guard rc == SQLITE_DONE else {
                        throw QuantaError(.registry, "\(self.path): registering \(r.datasetType) \(r.dataID) failed: \(String(cString: sqlite3_errmsg(db.sqliteConnection)))")
                    }
                    if db.changesCount == 1 {
                        added += 1
                    } else if let run = try String.fetchOne(db, sql: "SELECT run FROM dataset WHERE id = ?", arguments: [r.id]) {
                        // Already registered: fine when it is this very dataset (a resumed merge), not
                        // when the UUID belongs to another run's dataset.
                        guard run == r.run else { throw RegistryError.uuidInOtherRun(self.path, r, run: run) }
                    } else {
                        throw RegistryError.dataIDClash(self.path, r)
                    }
                }
                return added
            }
        }
    }

    /// Text bound as a copy (SQLITE_TRANSIENT): the Swift string's storage is not kept alive.
    private static func bind(_ s: OpaquePointer?, _ i: Int32, _ text: String?) {
        guard let text else { sqlite3_bind_null(s, i); return }
        var t = text
        t.withUTF8 { u in
            _ = sqlite3_bind_text(s, i, UnsafeRawPointer(u.baseAddress!).assumingMemoryBound(to: CChar.self), Int32(u.count),
                                  unsafeBitCast(-1, to: sqlite3_destructor_type.self))
        }
    }

    /// Datasets in the given runs (all runs when nil), optionally of some types.
    public func datasets(runs: [String]?, types: [String]?) throws -> [DatasetRecord] {
        try wrap("querying datasets") {
            try db.read { db in
                var sql = "SELECT id, dataset_type, run, data_id, path, size, checksum FROM dataset"
                var clauses: [String] = []
                var args: [DatabaseValueConvertible] = []
                if let runs {
                    clauses.append("run IN (\(runs.map { _ in "?" }.joined(separator: ",")))")
                    args += runs
                }
                if let types, !types.isEmpty {
                    clauses.append("dataset_type IN (\(types.map { _ in "?" }.joined(separator: ",")))")
                    args += types
                }
                if runs?.isEmpty == true { return [] }
                if !clauses.isEmpty { sql += " WHERE " + clauses.joined(separator: " AND ") }
                sql += " ORDER BY dataset_type, run, data_id"
                return try Row.fetchAll(db, sql: sql, arguments: StatementArguments(args)).map {
                    DatasetRecord(id: $0[0], datasetType: $0[1], run: $0[2], dataID: $0[3], path: $0[4], size: $0[5], checksum: $0[6])
                }
            }
        }
    }

    public func collections() throws -> [(name: String, type: String, children: [String])] {
        try wrap("listing collections") {
            try db.read { db in
                try Row.fetchAll(db, sql: "SELECT name, type FROM collection ORDER BY name").map { row in
                    let name: String = row[0]
                    let children = try String.fetchAll(db, sql: "SELECT child FROM collection_chain WHERE parent = ? ORDER BY position", arguments: [name])
                    return (name, row[1], children)
                }
            }
        }
    }

    /// Updates size and checksum of datasets already registered under these UUIDs (same type, run,
    /// data ID and path): a deliberate replacement of their files. Returns how many changed.
    public func replace(_ records: [DatasetRecord]) throws -> Int {
        try wrap("replacing \(records.count) dataset records") {
            try db.write { db in
                var changed = 0
                for r in records {
                    try db.execute(sql: """
                        UPDATE dataset SET size = ?, checksum = ?, ingest_date = datetime('now')
                        WHERE id = ? AND dataset_type = ? AND run = ? AND path = ?
                        """, arguments: [r.size, r.checksum, r.id, r.datasetType, r.run, r.path])
                    changed += db.changesCount
                }
                return changed
            }
        }
    }

    /// Run and path of each of `ids` that is registered (lower-case UUID text), in batches.
    public func locate(ids: [String]) throws -> [String: (run: String, path: String)] {
        try wrap("looking up \(ids.count) datasets") {
            try db.read { db in
                var out: [String: (run: String, path: String)] = [:]
                out.reserveCapacity(ids.count)
                let batch = 500
                for start in stride(from: 0, to: ids.count, by: batch) {
                    let slice = Array(ids[start..<min(start + batch, ids.count)])
                    let sql = "SELECT id, run, path FROM dataset WHERE id IN (\(slice.map { _ in "?" }.joined(separator: ",")))"
                    for row in try Row.fetchAll(db, sql: sql, arguments: StatementArguments(slice)) {
                        out[row[0] as String] = (row[1] as String, row[2] as String)
                    }
                }
                return out
            }
        }
    }

    /// The expected datasets that are not registered as expected, by their position in
    /// `expected`. One prepared statement stepped per dataset, compared as bytes (plan checks
    /// 500,000 inputs: the batched `locate` took 3.5 s building strings and rows).
    public func verify(_ expected: [(id: String, run: String, path: String)]) throws -> [(Int, RegistryDiscrepancy)] {
        try wrap("checking \(expected.count) datasets") {
            try db.read { db in
                // Pages through a memory map: a B-tree descent per dataset otherwise cost a read() per page.
                try db.execute(sql: "PRAGMA mmap_size = 1073741824")
                let statement = try db.makeStatement(sql: "SELECT run, path FROM dataset WHERE id = ?")
                // The Statement owns the sqlite3_stmt: it must outlive every use of the raw handle.
                defer { withExtendedLifetime(statement) {} }
                let s = statement.sqliteStatement
                var out: [(Int, RegistryDiscrepancy)] = []
                func equal(_ column: Int32, _ text: String) -> Bool {
                    guard let p = sqlite3_column_text(s, column) else { return false }
                    let n = Int(sqlite3_column_bytes(s, column))
                    var t = text
                    return t.withUTF8 { u in u.count == n && (n == 0 || memcmp(u.baseAddress!, p, n) == 0) }
                }
                for (k, e) in expected.enumerated() {
                    sqlite3_reset(s)
                    Self.bind(s, 1, e.id)
                    let rc = sqlite3_step(s)
                    if rc == SQLITE_DONE { out.append((k, .missing)); continue }
                    guard rc == SQLITE_ROW else {
                        throw QuantaError(.registry, "\(self.path): looking up \(e.id) failed: \(String(cString: sqlite3_errmsg(db.sqliteConnection)))")
                    }
                    if !equal(0, e.run) { out.append((k, .missing)); continue }
                    if !equal(1, e.path) { out.append((k, .elsewhere(String(cString: sqlite3_column_text(s, 1))))) }
                }
                return out
            }
        }
    }

    public func count(run: String?) throws -> Int {
        try wrap("counting datasets") {
            try db.read { db in
                if let run { return try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM dataset WHERE run = ?", arguments: [run]) ?? 0 }
                return try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM dataset") ?? 0
            }
        }
    }

    public func parents(of name: String) throws -> [String] {
        try wrap("reading the chains of \(name)") {
            try db.read { db in
                try String.fetchAll(db, sql: "SELECT DISTINCT parent FROM collection_chain WHERE child = ? ORDER BY parent", arguments: [name])
            }
        }
    }

    public func removeCollections(_ names: [String]) throws -> Int {
        try wrap("removing \(names.joined(separator: ", "))") {
            try db.write { db in
                var datasets = 0
                for n in names {
                    try db.execute(sql: "DELETE FROM dataset WHERE run = ?", arguments: [n])
                    datasets += db.changesCount
                    try db.execute(sql: "DELETE FROM collection_chain WHERE parent = ?", arguments: [n])
                }
                for n in names {
                    if try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM collection_chain WHERE child = ?", arguments: [n])! > 0 {
                        throw RegistryError.stillChained(self.path, n)
                    }
                    try db.execute(sql: "DELETE FROM collection WHERE name = ?", arguments: [n])
                }
                return datasets
            }
        }
    }
}

extension SQLiteRegistry {
    /// Runs one statement on a registry file outside the registry's checks (tests that stage a
    /// damaged or newer registry).
    public static func execute(_ path: String, _ sql: String) throws {
        try DatabaseQueue(path: path).write { try $0.execute(sql: sql) }
    }
}
