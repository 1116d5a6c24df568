import Foundation
import Testing
import QuantaButler
import QuantaCore
import QuantaRegistry
import QuantaTestSupport

/// `quanta repo remove-run` and campaign retention on a real SQLite registry and datastore.
@Suite struct CollectionRemovalTests {
    /// Two runs of two files each, chained into `u/x`; `u/y` lists run b only.
    func repository() throws -> Repository {
        let repo = try Repository.create(at: try temporaryDirectory() + "/repo")
        let registry = try repo.openRegistry()
        try registry.registerDatasetType(name: "calexp", dimensions: ["visit"], storageClass: "ExposureF")
        for run in ["u/x/a", "u/x/b"] {
            try registry.registerCollection(run, type: .run)
            var rows: [DatasetRecord] = []
            for v in 1...2 {
                let rel = "\(run)/calexp/calexp_\(v).fits"
                try FileManager.default.createDirectory(atPath: (repo.absolutePath(rel) as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try Data(repeating: 7, count: 100).write(to: URL(fileURLWithPath: repo.absolutePath(rel)))
                rows.append(DatasetRecord(id: UUID().uuidString.lowercased(), datasetType: "calexp", run: run, dataID: "[[\"visit\",\(v)]]", path: rel, size: 100, checksum: nil))
            }
            _ = try registry.insert(rows)
            try registry.prependToChain("u/x", run: run, rest: [])
        }
        try registry.prependToChain("u/y", run: "u/x/b", rest: [])
        return repo
    }

    @Test func runsAndChainsGoTogetherWithTheirFiles() throws {
        let repo = try repository()
        let removal = CollectionRemoval(repo: repo)
        // A run a chain still lists is refused, and nothing goes.
        #expect(try removal.blockers(["u/x/a"]) == ["u/x/a is in chain u/x; remove it from u/x first, or remove u/x too"])
        #expect(throws: QuantaError.self) { try removal.remove(["u/x/a"]) }
        #expect(FileManager.default.fileExists(atPath: repo.absolutePath("u/x/a/calexp/calexp_1.fits")))
        #expect(try removal.blockers(["u/x/a", "u/x/b", "u/x"]) == ["u/x/b is in chain u/y; remove it from u/y first, or remove u/y too"])
        #expect(try removal.blockers(["nope"]).first?.contains("no collection named 'nope'") == true)

        let o = try removal.remove(["u/x/a", "u/x/b", "u/x", "u/y"])
        #expect(o == CollectionRemoval.Outcome(runs: 2, chains: 2, datasets: 4, files: 4, bytes: 400))
        let registry = try repo.openRegistry()
        #expect(try registry.collections().isEmpty && registry.count() == 0)
        #expect(!FileManager.default.fileExists(atPath: repo.absolutePath("u")), "empty directories go too")
        #expect(FileManager.default.fileExists(atPath: repo.datastoreRoot))
    }

    /// Cut short after some files went (as a kill would leave it): the registry still lists the
    /// run, and running the removal again finishes it.
    @Test func aRemovalCutShortIsFinishedByTheNext() throws {
        let repo = try repository()
        unlink(repo.absolutePath("u/x/a/calexp/calexp_1.fits"))
        let o = try CollectionRemoval(repo: repo).remove(["u/x/a", "u/x/b", "u/x", "u/y"])
        #expect(o.datasets == 4 && o.files == 3)
        #expect(try repo.openRegistry().count() == 0)
    }
}
