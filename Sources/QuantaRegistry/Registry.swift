import Foundation
import QuantaButler
import QuantaCore
import QuantaPostgres

/// One registered (or to-be-registered) dataset.
public struct DatasetRecord: Sendable, Equatable, Codable {
    public var id: String
    public var datasetType: String
    public var run: String
    public var dataID: String
    public var path: String
    public var size: Int64
    public var checksum: String?

    public init(id: String, datasetType: String, run: String, dataID: String, path: String, size: Int64, checksum: String?) {
        self.id = id
        self.datasetType = datasetType
        self.run = run
        self.dataID = dataID
        self.path = path
        self.size = size
        self.checksum = checksum
    }
}

public enum CollectionType: String, Sendable { case run = "RUN", chained = "CHAINED", tagged = "TAGGED" }

/// How a dataset differs from what was expected: no dataset with that UUID in that run, or
/// registered at another path.
public enum RegistryDiscrepancy: Sendable, Equatable { case missing, elsewhere(String) }

/// Quanta's registry: dataset types, RUN and CHAINED collections, datasets. Two stores with one
/// schema, one idempotent batched merge and the same errors: `SQLiteRegistry` (one file, the
/// default) and `PostgresRegistry` (a server, for production). `Repository.openRegistry()` opens
/// the one a repository's quanta-repo.yaml names.
public protocol Registry: AnyObject, Sendable {
    /// Where it is, for messages: the file, or the URL without password.
    var location: String { get }

    func registerDatasetType(name: String, dimensions: [String], storageClass: String) throws
    func registerCollection(_ name: String, type: CollectionType) throws
    func collectionType(_ name: String) throws -> CollectionType?
    /// The children of a CHAINED collection, in search order.
    func chain(_ parent: String) throws -> [String]
    /// The CHAINED collections that list `name`.
    func parents(of name: String) throws -> [String]
    /// Puts `run` first in the CHAINED collection `parent`, creating it with `[run] + rest` if
    /// needed. Concurrent calls on one chain are serialised: each run ends up in it once.
    func prependToChain(_ parent: String, run: String, rest: [String]) throws
    func collections() throws -> [(name: String, type: String, children: [String])]

    /// Inserts one batch in one transaction; datasets whose UUID is already registered in the same
    /// run are skipped. Returns how many were new. A UUID registered in another run, or another
    /// dataset with the same type, run and data ID, is an error and nothing of the batch stays.
    func insert(_ batch: [DatasetRecord]) throws -> Int
    /// A merge's inserts: `records` in batches of `batchSize`, each one `insert` (its own
    /// transaction, all or nothing); after each commits, `committed(batch size, new in it)`.
    func insertBatches(_ records: [DatasetRecord], batchSize: Int, committed: (Int, Int) throws -> Void) throws
    /// Datasets in the given runs (all runs when nil), optionally of some types, ordered by type,
    /// run and data ID (bytewise).
    func datasets(runs: [String]?, types: [String]?) throws -> [DatasetRecord]
    /// Updates size and checksum of datasets already registered under these UUIDs (same type, run,
    /// data ID and path): a deliberate replacement of their files. Returns how many changed.
    func replace(_ records: [DatasetRecord]) throws -> Int
    /// Run and path of each of `ids` that is registered (lower-case UUID text).
    func locate(ids: [String]) throws -> [String: (run: String, path: String)]
    /// The expected datasets that are not registered as expected, by their position in `expected`.
    func verify(_ expected: [(id: String, run: String, path: String)]) throws -> [(Int, RegistryDiscrepancy)]
    func count(run: String?) throws -> Int
    /// Deletes the collections, their datasets' rows and their chains' links in one transaction;
    /// returns the datasets removed. Refused (nothing removed) when a chain outside them lists one.
    func removeCollections(_ names: [String]) throws -> Int
}

extension Registry {
    public func count() throws -> Int { try count(run: nil) }

    /// Runs reached from `collections` (CHAINED ones flattened, in search order).
    public func resolveRuns(_ collections: [String]) throws -> [String] {
        var out: [String] = []
        var seen = Set<String>()
        func visit(_ c: String, depth: Int) throws {
            guard depth < 100, seen.insert(c).inserted else { return }
            switch try collectionType(c) {
            case .chained?: for child in try chain(c) { try visit(child, depth: depth + 1) }
            case .run?, .tagged?: out.append(c)
            case nil: throw QuantaError(.registry, "\(location): no collection named '\(c)'; 'quanta repo collections' lists them")
            }
        }
        for c in collections { try visit(c, depth: 0) }
        return out
    }
}

/// The registry schema's version, recorded in `quanta_schema` by whichever Quanta made or migrated
/// it. A Quanta refuses a registry whose schema is newer than it knows.
public enum RegistrySchema {
    /// 1: dataset_type, collection, collection_chain, dataset (the schema since the first release).
    public static let version = 1

    static func check(found: Int, at location: String) throws {
        if found > version {
            throw QuantaError(.registry, "\(location): the registry's schema is version \(found), made by a newer Quanta; this one reads up to version \(version) — use a newer quanta")
        }
    }
}

/// The errors both registries give, word for word.
enum RegistryError {
    static func datasetTypeClash(_ at: String, name: String, registered: (String, String), wanted: (String, String)) -> QuantaError {
        QuantaError(.registry, "\(at): dataset type '\(name)' is registered as (\(registered.0)) \(registered.1) but the submission has (\(wanted.0)) \(wanted.1); rename the dataset type in the pipeline")
    }

    static func collectionClash(_ at: String, name: String, existing: String, wanted: String) -> QuantaError {
        QuantaError(.registry, "\(at): collection '\(name)' exists as \(existing), not \(wanted); choose another name")
    }

    static func notAChain(_ at: String, parent: String, type: String) -> QuantaError {
        QuantaError(.registry, "\(at): output collection '\(parent)' is a \(type) collection, not CHAINED; choose another output name")
    }

    static func uuidInOtherRun(_ at: String, _ r: DatasetRecord, run: String) -> QuantaError {
        QuantaError(.registry, "\(at): dataset \(r.id) (\(r.datasetType) \(r.dataID)) is already registered in run \(run), not \(r.run): this graph's outputs were run into \(run) before; plan it again with a new --output-run, which gives its outputs new UUIDs")
    }

    static func dataIDClash(_ at: String, _ r: DatasetRecord) -> QuantaError {
        QuantaError(.registry, "\(at): \(r.datasetType) \(r.dataID) is already registered in run \(r.run) under another UUID; this submission's output run was used before — use a new run")
    }

    static func stillChained(_ at: String, _ name: String) -> QuantaError {
        QuantaError(.registry, "\(at): \(name) is in a chain that is not being removed; nothing was removed")
    }
}

extension Repository {
    /// The registry this repository's quanta-repo.yaml names: a SQLite file or a PostgreSQL server.
    public func openRegistry() throws -> any Registry {
        switch registry {
        case .sqlite(let path): return try SQLiteRegistry(path: path)
        case .postgresql(let url): return try PostgresRegistry(target: try PostgresTarget(url: url), repositoryID: id, root: root)
        case .butler:
            throw QuantaError(.registry, "\(root): an LSST butler repository; its registry is reached through the butler's own tools")
        }
    }
}
