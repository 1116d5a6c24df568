import Foundation
import QuantaCore

/// Collection work in an LSST butler repository, through `python/quanta_lsst/repo_ops.py` run in
/// the site's environment (as the jobs and the merge run): a chain's first member, the dataset
/// types present in some collections, collections removed (campaigns; `quanta repo remove-run`).
public struct LSSTCollections: Sendable {
    public let repo: String
    public let site: SiteConfig?

    public init(repo: String, site: SiteConfig?) {
        self.repo = repo
        self.site = site
    }

    static var script: String? {
        Installation.lsstDriver.map { (($0 as NSString).deletingLastPathComponent as NSString).appendingPathComponent("repo_ops.py") }
    }

    func call(_ arguments: [String]) throws -> [String: Any] {
        guard let script = Self.script else {
            throw QuantaError(.usage, "this Quanta has no python/quanta_lsst/repo_ops.py; set QUANTA_HOME to the Quanta checkout")
        }
        let r = try LSSTMerge.runDriver(script, arguments, site: site)
        let last = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
        guard r.status.succeeded, let doc = try? JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any] else {
            let why = r.stderr.split(separator: "\n").last.map(String.init) ?? "\(r.status)"
            throw QuantaError(.registry, "\(repo): \(arguments.first ?? "") failed: \(why)")
        }
        return doc
    }

    /// `child` first in the chain `parent` (made if missing); false when `child` does not exist.
    @discardableResult
    public func prepend(_ child: String, to parent: String) throws -> Bool {
        try call(["chain-prepend", repo, parent, child])["skipped"] == nil
    }

    /// Which of `types` have datasets in `collections`.
    public func presentTypes(_ types: [String], in collections: [String]) throws -> Set<String> {
        guard !collections.isEmpty else { return [] }
        let doc = try call(["dataset-types", repo, "--collections", collections.joined(separator: ","), "--types", types.joined(separator: ",")])
        return Set(doc["present"] as? [String] ?? [])
    }

    /// Removes the collections, or returns why not (nothing removed then); `dryRun` only asks.
    public func remove(_ names: [String], dryRun: Bool = false) throws -> (blockers: [String], datasets: Int) {
        let doc = try call(["remove", repo] + names + (dryRun ? ["--dry-run"] : []))
        return (doc["blockers"] as? [String] ?? [], doc["datasets"] as? Int ?? 0)
    }
}
