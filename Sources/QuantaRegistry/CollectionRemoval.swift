import Foundation
import GRDB
import QuantaButler
import QuantaCore

/// `quanta repo remove-run` and campaign retention: removes collections from a Quanta repository —
/// a RUN with its datasets' files, a CHAINED one with its links — as `butler remove-runs` and
/// `butler remove-collections` do. A collection that a chain outside the removal still lists is
/// refused (remove it from that chain, or remove the chain too), so nothing anyone reads goes
/// missing. The files go first and the registry rows after, in one transaction: a removal killed
/// half way leaves rows whose files are gone, and running it again finishes it.
public struct CollectionRemoval: Sendable {
    public let repo: Repository

    public init(repo: Repository) { self.repo = repo }

    public struct Outcome: Sendable, Equatable {
        public var runs = 0, chains = 0, datasets = 0, files = 0
        public var bytes: Int64 = 0

        public init(runs: Int = 0, chains: Int = 0, datasets: Int = 0, files: Int = 0, bytes: Int64 = 0) {
            (self.runs, self.chains, self.datasets, self.files, self.bytes) = (runs, chains, datasets, files, bytes)
        }
    }

    /// Why each collection cannot be removed together with the others; empty when all can.
    public func blockers(_ names: [String]) throws -> [String] {
        try blockers(names, in: try repo.openRegistry())
    }

    func blockers(_ names: [String], in registry: any Registry) throws -> [String] {
        let removing = Set(names)
        var out: [String] = []
        for n in names {
            guard try registry.collectionType(n) != nil else {
                out.append("\(repo.root): no collection named '\(n)'; 'quanta repo collections \(repo.root)' lists them")
                continue
            }
            for p in try registry.parents(of: n) where !removing.contains(p) {
                out.append("\(n) is in chain \(p); remove it from \(p) first, or remove \(p) too")
            }
        }
        return out
    }

    /// Removes them all, or nothing when any cannot go (the first reason, as the error).
    @discardableResult
    public func remove(_ names: [String], progress: (Int, Int) -> Void = { _, _ in }) throws -> Outcome {
        let registry = try repo.openRegistry()
        if let why = try blockers(names, in: registry).first { throw QuantaError(.registry, why) }
        var outcome = Outcome()
        var runs: [String] = []
        for n in names {
            switch try registry.collectionType(n) {
            case .run?, .tagged?: runs.append(n); outcome.runs += 1
            case .chained?: outcome.chains += 1
            case nil: continue
            }
        }
        let rows = runs.isEmpty ? [] : try registry.datasets(runs: runs, types: nil)
        var directories = Set<String>()
        for (i, r) in rows.enumerated() where !r.path.isEmpty {
            let path = repo.absolutePath(r.path)
            if unlink(path) == 0 {
                outcome.files += 1
                outcome.bytes += max(0, r.size)
            } else if errno != ENOENT {
                throw QuantaError(.io, "\(path): cannot remove (\(String(cString: strerror(errno)))); nothing was removed from the registry — fix the permission and run it again")
            }
            directories.insert((path as NSString).deletingLastPathComponent)
            if i % 1000 == 0 { progress(i, rows.count) }
        }
        progress(rows.count, rows.count)
        outcome.datasets = try registry.removeCollections(names)
        // Directories the files leave empty, deepest first, up to the datastore's root.
        let root = repo.datastoreRoot
        for dir in directories.sorted(by: { $0.count > $1.count }) {
            var d = dir
            while d.hasPrefix(root + "/"), rmdir(d) == 0 { d = (d as NSString).deletingLastPathComponent }
        }
        return outcome
    }
}
