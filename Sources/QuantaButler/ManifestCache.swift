#if canImport(Glibc)
import Glibc
#endif
import Foundation
import QuantaCore

/// `status-cache.bin`: what `quanta status` last read of every job's manifest (its status
/// projection, `Manifest.forStatus`) with the identity of the file it came from, and of each
/// `manifests/<array>/` directory. Status then decodes only the manifests that changed instead of
/// opening and parsing 100,000 JSON files each time:
/// - a directory whose identity is unchanged and whose last change was at least `settle` seconds
///   before the cache looked at it has no new or replaced manifest (they arrive by rename, which
///   changes the directory), so its jobs need no system call at all;
/// - in any other directory each cached manifest is checked with one `stat`;
/// - `mustRead` forces an `open` for jobs the scheduler knows a newer attempt of (on NFS a `stat`
///   may lag a rename by the attribute cache's timeout; an `open` revalidates).
/// A cache that is missing, damaged, from another plan or another version is ignored and rewritten;
/// the manifests stay the only truth.
///
/// Layout (little-endian): `QSTAT002`, snapshot identity, job count, directory count, directories
/// (name, identity, u64 time the cache looked at it), then per job: u8 present, and if present
/// the file identity and the projection, strings as u32 length + UTF-8 (0xFFFFFFFF for nil).
public struct ManifestCache: Sendable {
    /// What changes whenever a file is replaced or rewritten: a new manifest arrives by rename, so
    /// it has its own inode and ctime.
    public struct Identity: Equatable, Sendable {
        public var inode: UInt64, size: UInt64, mtimeNS: UInt64, ctimeNS: UInt64

        init(_ st: stat) {
            inode = UInt64(st.st_ino)
            size = UInt64(st.st_size)
            mtimeNS = UInt64(bitPattern: Int64(st.st_mtim.tv_sec) &* 1_000_000_000 &+ Int64(st.st_mtim.tv_nsec))
            ctimeNS = UInt64(bitPattern: Int64(st.st_ctim.tv_sec) &* 1_000_000_000 &+ Int64(st.st_ctim.tv_nsec))
        }

        public init(inode: UInt64, size: UInt64, mtimeNS: UInt64, ctimeNS: UInt64) {
            self.inode = inode; self.size = size; self.mtimeNS = mtimeNS; self.ctimeNS = ctimeNS
        }

        public static func of(path: String) -> Identity? {
            var st = stat()
            return stat(path, &st) == 0 ? Identity(st) : nil
        }

        static func of(_ dirFD: Int32, _ name: String) -> Identity? {
            var st = stat()
            return fstatat(dirFD, name, &st, 0) == 0 ? Identity(st) : nil
        }
    }

    public struct Entry: Sendable {
        public var identity: Identity
        public var manifest: Manifest
    }

    /// A manifests directory as the cache last saw it, and when (ns since 1970).
    public struct Directory: Sendable, Equatable {
        public var identity: Identity
        public var seenAt: UInt64
    }

    static let magic = Array("QSTAT002".utf8)
    /// How long a directory must have been unchanged before its jobs go unchecked (clock
    /// granularity, and a file server's clock a little off from this one).
    public static let settle: UInt64 = 10_000_000_000

    public var entries: [Entry?]
    public var directories: [String: Directory] = [:]
    /// Identity of the snapshot the job positions come from.
    public var snapshot: Identity

    public init(snapshot: Identity, jobs: Int) {
        self.snapshot = snapshot
        entries = Array(repeating: nil, count: jobs)
    }

    /// The cache at `path` when it belongs to this snapshot and job count, else an empty one.
    public static func load(path: String, snapshot: Identity, jobs: Int) -> ManifestCache {
        let empty = ManifestCache(snapshot: snapshot, jobs: jobs)
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) else { return empty }
        return data.withUnsafeBytes { raw in
            var r = Reader(ByteReader(raw: raw, source: path, section: "status cache"))
            guard let cache = try? r.cache(snapshot: snapshot, jobs: jobs) else { return empty }
            return cache
        }
    }

    /// Writes the cache atomically; a read-only or full submit directory just goes without one.
    public func write(path: String) {
        var w = Writer()
        w.out.bytes.reserveCapacity(64 * entries.count)
        w.out.append(Self.magic)
        w.identity(snapshot)
        w.u64(UInt64(entries.count))
        w.u64(UInt64(directories.count))
        for (name, d) in directories.sorted(by: { $0.key < $1.key }) {
            w.string(name)
            w.identity(d.identity)
            w.u64(d.seenAt)
        }
        for e in entries {
            guard let e else { w.u8(0); continue }
            w.u8(1)
            w.identity(e.identity)
            w.manifest(e.manifest)
        }
        try? AtomicFile.write(Data(w.out.bytes), to: path)
    }

    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// The cache of manifests someone else has just read (the merge reads every one): `directories`
    /// must have been taken before the first manifest was read, so a manifest arriving meanwhile
    /// leaves its directory untrusted.
    public static func from(read: [(Manifest, Identity)?], directories: [String: Directory], snapshot: Identity) -> ManifestCache {
        var cache = ManifestCache(snapshot: snapshot, jobs: read.count)
        cache.entries = read.map { $0.map { Entry(identity: $0.1, manifest: $0.0.forStatus) } }
        cache.directories = directories
        return cache
    }

    /// Each array's manifest directory as it is now (arrays without one are left out).
    public static func directories(_ dir: SubmitDirectory, arrays: [String]) -> [String: Directory] {
        let seenAt = now()
        var out: [String: Directory] = [:]
        for a in arrays where out[a] == nil {
            if let id = Identity.of(path: dir.manifestDirectory(array: a)) { out[a] = Directory(identity: id, seenAt: seenAt) }
        }
        return out
    }

    /// Every job's manifest projection (`Manifest.forStatus`), through the cache. `jobs` are in
    /// snapshot order (an array's jobs together); `mustRead(j, cached)` is true when job j's file
    /// must be opened whatever the cache says. Returns the manifests, how many files were decoded,
    /// and whether the cache changed.
    public static func readAll(_ dir: SubmitDirectory, jobs: [(array: String, index: Int)], cache: inout ManifestCache,
                               mustRead: (Int, Manifest?) -> Bool) throws -> (manifests: [Manifest?], decoded: Int, changed: Bool) {
        let old = cache
        // Per array: the range of its jobs, whether its directory exists (run-quantum makes it with the
        // array's first manifest) and can be trusted as is, else a descriptor to stat its files through.
        struct Group { var name: String; var range: Range<Int>; var trusted = false; var absent = false; var fd: Int32 = -1 }
        var groups: [Group] = []
        var start = 0
        for j in 0...jobs.count where j == jobs.count || (j > start && jobs[j].array != jobs[start].array) {
            if j > start { groups.append(Group(name: jobs[start].array, range: start..<j)) }
            start = j
        }
        var directories = Self.directories(dir, arrays: groups.map(\.name))
        for g in groups.indices {
            let name = groups[g].name
            guard let now = directories[name] else { groups[g].absent = true; continue }
            if let seen = old.directories[name], seen.identity == now.identity, seen.seenAt >= now.identity.mtimeNS &+ settle {
                groups[g].trusted = true
                directories[name] = seen
            } else {
                groups[g].fd = open(dir.manifestDirectory(array: name), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            }
        }
        defer { for g in groups where g.fd >= 0 { close(g.fd) } }
        let groupOf = groups.indices.flatMap { g in groups[g].range.map { _ in g } }

        // Pass 1, on both cores: which jobs need their file decoded.
        let plan = try withoutActuallyEscaping(mustRead) { mustRead in
            let check = UncheckedReuse(f: mustRead)
            return try Parallel.map(count: jobs.count) { j -> Bool in
                let g = groups[groupOf[j]], cached = old.entries[j]
                if g.absent { return cached != nil }
                if check.f(j, cached?.manifest) { return true }
                if g.trusted { return false }
                guard let e = cached else { return true }
                return Identity.of(g.fd, SubmitDirectory.manifestName(index: jobs[j].index)) != e.identity
            }
        }
        // Pass 2: decode those.
        let stale = plan.indices.filter { plan[$0] }
        let fresh = try Parallel.map(count: stale.count) { k -> Entry? in
            let j = stale[k]
            let path = dir.manifest(array: jobs[j].array, index: jobs[j].index)
            do {
                guard let (m, id) = try Manifest.readWithIdentity(path: path, outputs: false) else { return nil }
                return Entry(identity: id, manifest: m.forStatus)
            } catch {
                // Kept with the file's identity: shown as failed until the file changes.
                guard let id = Identity.of(path: path) else { return nil }
                return Entry(identity: id, manifest: Manifest.unreadable(path: path, error: error).forStatus)
            }
        }
        var changed = false
        for (k, j) in stale.enumerated() {
            if old.entries[j] != nil || fresh[k] != nil { changed = true }
            cache.entries[j] = fresh[k]
        }
        if directories != old.directories { changed = true }
        cache.directories = directories
        return (cache.entries.map { $0?.manifest }, fresh.filter { $0 != nil }.count, changed)
    }

    private struct UncheckedReuse: @unchecked Sendable {
        let f: (Int, Manifest?) -> Bool
    }

    /// The cache's fields on top of the shared byte writer. Appends go to `out` directly: a
    /// computed `bytes` property copied the whole buffer on every append (quadratic: 27 s at 41k jobs).
    struct Writer {
        var out = ByteWriter()
        mutating func u8(_ v: UInt8) { out.u8(v) }
        mutating func u32(_ v: UInt32) { out.u32(v) }
        mutating func u64(_ v: UInt64) { out.u64(v) }
        mutating func int(_ v: Int?) {
            u8(v == nil ? 0 : 1)
            out.i64(Int64(v ?? 0))
        }
        mutating func double(_ v: Double) { out.double(v) }
        mutating func string(_ s: String?) { out.optionalString(s) }
        mutating func identity(_ i: Identity) { u64(i.inode); u64(i.size); u64(i.mtimeNS); u64(i.ctimeNS) }
        mutating func status(_ s: QuantumStatus) { u8(s == .succeeded ? 0 : s == .failed ? 1 : s == .blocked ? 2 : 3) }
        /// The fields `Manifest.forStatus` keeps.
        mutating func manifest(_ m: Manifest) {
            int(m.formatVersion); int(m.index); int(m.attempt); int(m.maxRSSKB); int(m.memoryLimitMB)
            status(m.status)
            double(m.seconds)
            for s in [m.array, m.firstError, m.endedAt, m.slurmArrayJobID, m.failureClass?.rawValue] { string(s) }
            u32(UInt32(m.quanta.count))
            for q in m.quanta {
                status(q.status)
                double(q.seconds)
                int(q.exitCode)
                string(q.task)
                string(q.reason)
            }
        }
    }

    struct Damaged: Error {}

    /// The cache's fields on top of the shared byte reader; anything amiss is `Damaged` (the
    /// cache is then rebuilt from the manifests).
    struct Reader {
        var r: ByteReader

        init(_ r: ByteReader) { self.r = r }
        init(bytes: UnsafeRawBufferPointer) { self.init(ByteReader(raw: bytes, source: "status-cache.bin", section: "status cache")) }

        mutating func u8() throws -> UInt8 { try r.u8() }
        mutating func u32() throws -> UInt32 { try r.u32() }
        mutating func u64() throws -> UInt64 { try r.u64() }
        mutating func int() throws -> Int? {
            let present = try u8()
            let v = Int(Int64(bitPattern: try u64()))
            return present == 1 ? v : nil
        }
        mutating func need() throws -> Int {
            guard let v = try int() else { throw Damaged() }
            return v
        }
        mutating func double() throws -> Double { try r.double() }
        mutating func identity() throws -> Identity {
            Identity(inode: try u64(), size: try u64(), mtimeNS: try u64(), ctimeNS: try u64())
        }
        mutating func status() throws -> QuantumStatus {
            switch try u8() {
            case 0: return .succeeded
            case 1: return .failed
            case 2: return .blocked
            case 3: return .noWork
            default: throw Damaged()
            }
        }
        mutating func string() throws -> String? { try r.optionalString() }
        mutating func text() throws -> String {
            guard let s = try string() else { throw Damaged() }
            return s
        }

        mutating func cache(snapshot: Identity, jobs: Int) throws -> ManifestCache {
            guard r.raw.count >= 8, Array(r.raw[0..<8]) == ManifestCache.magic else { throw Damaged() }
            r.offset = 8
            guard try identity() == snapshot, try u64() == UInt64(jobs) else { throw Damaged() }
            var cache = ManifestCache(snapshot: snapshot, jobs: jobs)
            let dirs = try u64()
            guard dirs <= UInt64(r.raw.count) else { throw Damaged() }
            for _ in 0..<dirs {
                let name = try text()
                cache.directories[name] = Directory(identity: try identity(), seenAt: try u64())
            }
            for j in 0..<jobs {
                guard try u8() == 1 else { continue }
                let id = try identity()
                cache.entries[j] = Entry(identity: id, manifest: try manifest())
            }
            guard r.atEnd else { throw Damaged() }
            return cache
        }

        mutating func manifest() throws -> Manifest {
            let formatVersion = try need(), index = try need(), attempt = try need(), maxRSS = try need()
            let memoryLimit = try int()
            let status = try status()
            let seconds = try double()
            let array = try text(), firstError = try string(), endedAt = try text(), slurmArrayJobID = try string()
            let failureClass = try string().map(FailureClass.init(manifestValue:))
            let n = Int(try u32())
            guard n <= r.end - r.offset else { throw Damaged() }
            var quanta: [QuantumRecord] = []
            quanta.reserveCapacity(n)
            for _ in 0..<n {
                let st = try self.status(), secs = try double(), exitCode = try int()
                quanta.append(QuantumRecord(id: "", task: try text(), dataID: "", status: st, reason: try string(), seconds: secs,
                                            log: nil, outputs: [], exitCode: exitCode))
            }
            var m = Manifest(submission: "", array: array, index: index, attempt: attempt, status: status,
                             firstError: firstError, startedAt: "", endedAt: endedAt, seconds: seconds, host: "",
                             slurmJobID: nil, slurmArrayJobID: slurmArrayJobID, maxRSSKB: maxRSS, quanta: quanta,
                             failureClass: failureClass, memoryLimitMB: memoryLimit)
            m.formatVersion = formatVersion
            return m
        }
    }
}

extension Manifest {
    /// What status reads of a manifest, and all `status-cache.bin` keeps: states, attempt, the first
    /// error, when it ended, the SLURM array job, failure class, memory, and per quantum its task,
    /// state, reason and exit code. Identifiers, data IDs, hosts, logs and outputs are blank.
    public var forStatus: Manifest {
        var m = Manifest(submission: "", array: array, index: index, attempt: attempt, status: status, firstError: firstError,
                         startedAt: "", endedAt: endedAt, seconds: seconds, host: "", slurmJobID: nil,
                         slurmArrayJobID: slurmArrayJobID, maxRSSKB: maxRSSKB,
                         quanta: quanta.map { QuantumRecord(id: "", task: $0.task, dataID: "", status: $0.status, reason: $0.reason,
                                                            seconds: $0.seconds, log: nil, outputs: [], exitCode: $0.exitCode) },
                         failureClass: failureClass, memoryLimitMB: memoryLimitMB)
        m.formatVersion = formatVersion
        return m
    }
}
