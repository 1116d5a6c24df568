import Foundation
import QuantaRegistry
import Testing
import QuantaTestSupport
import QuantaButler
import QuantaCore

/// `status-cache.bin` on real files: what it decodes again, what it trusts, and that it never
/// answers differently from reading every manifest.
@Suite struct ManifestCacheTests {
    let dir: SubmitDirectory
    let jobs: [(array: String, index: Int)]
    let snapshot = ManifestCache.Identity(inode: 1, size: 2, mtimeNS: 3, ctimeNS: 4)

    init() throws {
        dir = SubmitDirectory(try temporaryDirectory())
        jobs = (0..<40).map { ("isr", $0) } + (0..<7).map { ("coadd", $0) }
        for (array, index) in jobs where !(array == "coadd" && index == 6) {
            try manifest(array, index, status: index == 3 ? .failed : .succeeded).write(in: dir)
        }
    }

    func manifest(_ array: String, _ index: Int, status: QuantumStatus, attempt: Int = 1, slurm: String? = nil) -> Manifest {
        let q = QuantumRecord(id: UUID().uuidString, task: array == "isr" ? "isr" : "assembleCoadd", dataID: #"{"visit": 1, "detector": \#(index)}"#,
                              status: status, reason: status == .failed ? "exit 3: it's \"broken\" $(x)" : nil, seconds: 0.25,
                              log: "logs/\(array).\(index).log", outputs: [], exitCode: status == .failed ? 3 : nil)
        return Manifest(submission: "s", array: array, index: index, attempt: attempt, status: status,
                        firstError: status == .failed ? "exit 3: it's \"broken\" $(x)" : nil, startedAt: "2026-11-21T10:00:00Z",
                        endedAt: "2026-11-21T10:00:0\(attempt)Z", seconds: 1.5, host: "node1", slurmJobID: slurm.map { $0 + "_1" },
                        slurmArrayJobID: slurm, maxRSSKB: 1234, quanta: [q], failureClass: status == .failed ? .outOfMemory : nil,
                        memoryLimitMB: 2048)
    }

    func read(_ cache: inout ManifestCache, mustRead: @escaping (Int, Manifest?) -> Bool = { _, _ in false }) throws -> ([Manifest?], Int) {
        let r = try ManifestCache.readAll(dir, jobs: jobs, cache: &cache, mustRead: mustRead)
        return (r.manifests, r.decoded)
    }

    func fresh() throws -> [Manifest?] {
        try Manifest.readAll(paths: jobs.map { dir.manifest(array: $0.array, index: $0.index) }, outputs: false).map { $0?.forStatus }
    }

    /// Directories last changed an hour ago, so the cache may trust them.
    func settle() {
        for a in ["isr", "coadd"] {
            var times = [timespec(tv_sec: time(nil) - 3600, tv_nsec: 0), timespec(tv_sec: time(nil) - 3600, tv_nsec: 0)]
            utimensat(AT_FDCWD, dir.manifests + "/" + a, &times, 0)
        }
    }

    func rewriteInPlace(_ m: Manifest) throws {
        // Same inode, no rename: the directory does not change (something Quanta itself never does).
        let h = try #require(FileHandle(forWritingAtPath: dir.manifest(array: m.array, index: m.index)))
        try h.truncate(atOffset: 0)
        try h.write(contentsOf: try m.encoded())
        try h.close()
    }

    @Test func agreesWithReadingEveryManifestAndSurvivesAWriteAndReload() throws {
        var cache = ManifestCache(snapshot: snapshot, jobs: jobs.count)
        let (first, decoded) = try read(&cache)
        #expect(decoded == 46)
        try #expect(first == fresh())
        #expect(first[46] == nil && first[3]?.status == .failed && first[3]?.quanta.first?.reason == "exit 3: it's \"broken\" $(x)")
        let path = dir.root + "/status-cache.bin"
        cache.write(path: path)
        var loaded = ManifestCache.load(path: path, snapshot: snapshot, jobs: jobs.count)
        let (again, decodedAgain) = try read(&loaded)
        #expect(decodedAgain == 0, "nothing changed, yet \(decodedAgain) manifests were decoded")
        #expect(again == first)
        // Another plan (snapshot), another job count or a damaged file: an empty cache, not an error.
        let other = ManifestCache.Identity(inode: 9, size: 2, mtimeNS: 3, ctimeNS: 4)
        #expect(ManifestCache.load(path: path, snapshot: other, jobs: jobs.count).entries.allSatisfy { $0 == nil })
        #expect(ManifestCache.load(path: path, snapshot: snapshot, jobs: 46).entries.allSatisfy { $0 == nil })
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        for cut in [bytes.count - 1, bytes.count / 2, 9] {
            try bytes.prefix(cut).write(to: URL(fileURLWithPath: path))
            #expect(ManifestCache.load(path: path, snapshot: snapshot, jobs: jobs.count).entries.allSatisfy { $0 == nil }, "cut at \(cut)")
        }
        bytes[bytes.count - 3] = 7  // a quantum status byte that is no status
        try bytes.write(to: URL(fileURLWithPath: path))
        #expect(ManifestCache.load(path: path, snapshot: snapshot, jobs: jobs.count).entries.allSatisfy { $0 == nil })
    }

    @Test func aReplacedManifestIsReadAgainAndOnlyThatOne() throws {
        var cache = ManifestCache(snapshot: snapshot, jobs: jobs.count)
        _ = try read(&cache)
        // A retry's manifest arrives by rename, like run-quantum writes it; a new job's manifest too.
        try manifest("isr", 3, status: .succeeded, attempt: 2).write(in: dir)
        try manifest("coadd", 6, status: .succeeded).write(in: dir)
        let (after, decoded) = try read(&cache)
        #expect(decoded == 2)
        #expect(after[3]?.attempt == 2 && after[3]?.status == .succeeded && after[46]?.status == .succeeded)
        try #expect(after == fresh())
        // A manifest removed (a re-planned job, or by hand) is gone from the answer too.
        unlink(dir.manifest(array: "isr", index: 5))
        let (removed, _) = try read(&cache)
        try #expect(removed[5] == nil && removed == fresh())
        // An array whose directory is gone (or not made yet): nothing opened, even when asked.
        try FileManager.default.removeItem(atPath: dir.manifests + "/coadd")
        let (gone, goneDecoded) = try read(&cache) { _, _ in true }
        #expect(goneDecoded == 39 && gone[40...].allSatisfy { $0 == nil })
        try #expect(gone == fresh())
    }

    @Test func aSettledDirectoryIsTrustedUnlessTheSchedulerKnowsANewerAttempt() throws {
        settle()
        var cache = ManifestCache(snapshot: snapshot, jobs: jobs.count)
        _ = try read(&cache)
        // Edited in place, the directory unchanged: a trusted directory is not looked into, which
        // shows the cache takes the shortcut (no stat per manifest)...
        try rewriteInPlace(manifest("isr", 7, status: .failed, attempt: 2, slurm: "900"))
        let (trusted, decoded) = try read(&cache)
        #expect(decoded == 0 && trusted[7]?.status == .succeeded)
        // ...unless the scheduler has an attempt the cached manifest is not from: then it is opened.
        let (forced, forcedDecoded) = try read(&cache) { j, m in j == 7 && m?.slurmArrayJobID != "900" }
        #expect(forcedDecoded == 1 && forced[7]?.status == .failed && forced[7]?.slurmArrayJobID == "900")
        // A directory changed just now is not trusted: each manifest is checked with a stat.
        try manifest("isr", 8, status: .failed, attempt: 2).write(in: dir)
        try rewriteInPlace(manifest("isr", 9, status: .blocked, attempt: 2))
        let (checked, checkedDecoded) = try read(&cache)
        #expect(checkedDecoded == 2 && checked[8]?.status == .failed && checked[9]?.status == .blocked)
        try #expect(checked == fresh())
    }

    /// The merge's cache: what it read, with the directories as they were before it read them.
    @Test func aCacheFromTheMergeServesTheNextStatus() throws {
        settle()
        let directories = ManifestCache.directories(dir, arrays: jobs.map(\.array))
        let seen = try jobs.map { try Manifest.readWithIdentity(path: dir.manifest(array: $0.array, index: $0.index)) }
        let path = dir.root + "/status-cache.bin"
        ManifestCache.from(read: seen.map { $0.map { ($0.manifest, $0.identity) } }, directories: directories, snapshot: snapshot).write(path: path)
        var cache = ManifestCache.load(path: path, snapshot: snapshot, jobs: jobs.count)
        let (got, decoded) = try read(&cache)
        #expect(decoded == 0)
        try #expect(got == fresh())
    }
}

/// The registry on a real SQLite file: a UUID belongs to one run.
@Suite struct RegistryRunTests {
    @Test func aUUIDRegisteredInAnotherRunIsRefusedNotCountedAsDone() throws {
        let dir = try temporaryDirectory()
        let registry = try SQLiteRegistry(path: dir + "/registry.sqlite3")
        try registry.registerDatasetType(name: "calexp", dimensions: ["visit"], storageClass: "Exposure")
        for run in ["u/a", "u/b"] { try registry.registerCollection(run, type: .run) }
        let id = UUID().uuidString.lowercased()
        func record(_ run: String) -> DatasetRecord {
            DatasetRecord(id: id, datasetType: "calexp", run: run, dataID: #"{"visit": 1}"#, path: "\(run)/calexp/1.fits", size: 10, checksum: nil)
        }
        #expect(try registry.insert([record("u/a")]) == 1)
        #expect(try registry.insert([record("u/a")]) == 0, "the same dataset again: a resumed merge, not an error")
        let error = #expect(throws: QuantaError.self) { try registry.insert([record("u/b")]) }
        #expect(error?.message.contains("already registered in run u/a, not u/b") == true, "\(String(describing: error))")
        #expect(try registry.count(run: "u/b") == 0)
    }
}

/// Issue 12: an input location stays inside the datastore; the registry check finds what is
/// missing or elsewhere (real SQLite).
@Suite struct PlanCheckTests {
    @Test func locationsThatClimbOutAreRefused() {
        for ok in ["a/b.fits", "/abs/raw.fits", "a/..b", "...", "a//b", "x/.hidden"] { #expect(PlanChecks.confined(ok), "\(ok)") }
        for bad in ["", "..", "../x", "x/..", "a/../b", "/a/../../etc/hostname"] { #expect(!PlanChecks.confined(bad), "\(bad)") }
    }

    @Test func registryVerifyNamesMissingAndMovedDatasets() throws {
        let dir = NSTemporaryDirectory() + "quanta-verify-" + UUID().uuidString
        let repo = try Repository.create(at: dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let registry = try repo.openRegistry()
        try registry.registerDatasetType(name: "raw", dimensions: ["visit"], storageClass: "Text")
        try registry.registerCollection("in", type: .run)
        let ids = (0..<3).map { _ in UUID().uuidString.lowercased() }
        _ = try registry.insert(ids.enumerated().map { k, id in
            DatasetRecord(id: id, datasetType: "raw", run: "in", dataID: "[[\"visit\",\(k)]]", path: "raw/\(k).txt", size: 1, checksum: nil)
        })
        let expected = [(ids[0], "in", "raw/0.txt"), (ids[1], "in", "raw/other.txt"), (ids[2], "elsewhere", "raw/2.txt"),
                        (UUID().uuidString.lowercased(), "in", "raw/3.txt")]
        let found = try registry.verify(expected.map { (id: $0.0, run: $0.1, path: $0.2) })
        #expect(found.map(\.0) == [1, 2, 3])
        #expect(found.map(\.1) == [.elsewhere("raw/1.txt"), .missing, .missing])
    }
}
