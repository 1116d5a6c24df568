import Foundation
import QuantaButler
import QuantaCore

/// A job's outputs that the merge already registered (issue 12): a rerun would replace files the
/// registry vouches for, so it is refused unless asked to replace them, and then the registry
/// follows and the datasets made downstream from the old files are named.
public struct RegisteredOutputs: Sendable {
    /// This job's outputs that are registered.
    public var datasets: [PredictedOutput]
    let dir: SubmitDirectory
    /// The repository, when its registry is Quanta's.
    let repo: Repository?

    /// Nothing registered: a job that will not run replaces nothing.
    public static func none(_ dir: SubmitDirectory) -> RegisteredOutputs {
        RegisteredOutputs(datasets: [], dir: dir, repo: nil)
    }

    /// The registered outputs of job `array:index` (none for a butler repository: its merge is LSST's).
    public static func of(_ dir: SubmitDirectory, array: String, index: Int) throws -> RegisteredOutputs {
        let meta = try Snapshot.meta(path: dir.snapshot)
        let repo = try Repository(root: meta.repo)
        guard repo.kind == .quanta else { return none(dir) }
        try Repository.checkIdentity(root: meta.repo, expected: meta.repoID, what: "replacing registered outputs")
        let predicted = try OutputPredictions(path: dir.snapshot).outputs(array: array, index: index)
        let found = try repo.openRegistry().locate(ids: Array(predicted.keys))
        return RegisteredOutputs(datasets: predicted.values.filter { found[$0.id] != nil }.sorted { $0.path < $1.path },
                                 dir: dir, repo: repo)
    }

    /// Without the datasets a rerun keeps (outputs of quanta that succeeded and are intact).
    public func excluding(kept ids: Set<String>) -> RegisteredOutputs {
        RegisteredOutputs(datasets: datasets.filter { !ids.contains($0.id) }, dir: dir, repo: repo)
    }

    /// Registered datasets made, directly or further down, from these (by the graph in the snapshot).
    public func downstream() throws -> [String] {
        let made = try Snapshot.downstream(path: dir.snapshot, of: datasets.compactMap { UUID(uuidString: $0.id) })
        guard let repo else { return [] }
        let registered = try repo.openRegistry().locate(ids: made.map(\.id))
        return made.filter { registered[$0.id] != nil }.map(\.description)
    }

    /// After a rerun replaced the files: the registry takes each dataset's new size and checksum
    /// from the job's new manifest, for the records that match the plan. Returns how many changed.
    public func adopt(_ manifest: Manifest) throws -> Int {
        let predicted = Dictionary(uniqueKeysWithValues: datasets.map { ($0.id, $0) })
        var seen = Set<String>()
        let records = manifest.quanta.filter { $0.status.isSuccess }.flatMap(\.outputs).filter {
            Merger.refusal($0, predicted[$0.id.lowercased()], seen: &seen) == nil
        }
        guard let repo else { return 0 }
        return try repo.openRegistry().replace(records.map {
            DatasetRecord(id: $0.id, datasetType: $0.type, run: $0.run, dataID: $0.dataID, path: $0.path, size: $0.size, checksum: $0.checksum)
        })
    }
}
