import Foundation
import QuantaCore

public enum QuantumStatus: String, Sendable, Codable {
    /// `noWork`: a success without (all of) its data outputs, as pipe_base's NoWorkFound — the
    /// quantum ran, decided there was nothing to do, and its metadata and log (LSST) are registered.
    case succeeded, noWork, failed, blocked

    /// Succeeded or ended with no work: what `pipetask run` counts as a success.
    public var isSuccess: Bool { self == .succeeded || self == .noWork }
}

public struct OutputRecord: Sendable, Codable, Equatable {
    public var id: String
    public var type: String
    public var dataID: String
    public var run: String
    /// Relative to the datastore root.
    public var path: String
    public var size: Int64
    public var checksum: String

    public init(id: String, type: String, dataID: String, run: String, path: String, size: Int64, checksum: String) {
        self.id = id
        self.type = type
        self.dataID = dataID
        self.run = run
        self.path = path
        self.size = size
        self.checksum = checksum
    }
}

public struct QuantumRecord: Sendable, Codable, Equatable {
    public var id: String
    public var task: String
    public var dataID: String
    public var status: QuantumStatus
    /// Why it failed or was blocked: `no output calexp …`, `missing input …`, the first error line.
    public var reason: String?
    public var seconds: Double
    public var log: String?
    public var outputs: [OutputRecord]
    /// The command's exit code when it failed with one (what `retryUnlessExit` looks at).
    public var exitCode: Int?
    /// When it started (ISO 8601), and what it used: CPU seconds (user + system, the task's
    /// processes included), the peak resident memory of its process tree (KB; for a built-in task,
    /// run-quantum's own peak so far), and bytes read from and written to storage (the kernel's
    /// block counts: reads served from the page cache are not counted). Nil for a quantum that did
    /// not run on its own (blocked, kept, an LSST job's quanta: see the manifest's totals).
    public var startedAt: String?
    public var cpuSeconds: Double?
    public var peakRSSKB: Int?
    public var readBytes: Int64?
    public var writtenBytes: Int64?
    /// A blocked quantum: the task and first error line of the failed quantum at the root of it
    /// (through any chain of blocked ones); nil when its upstream never ran.
    public var blockedByTask: String?
    public var blockedByReason: String?

    /// A quantum that did not run (blocked upstream, no work, stopped): no time, no log, no outputs.
    public init(notRun id: UUID, task: String, dataID: DataID, status: QuantumStatus, reason: String) {
        self.init(id: id.lowercased, task: task, dataID: dataID.json, status: status, reason: reason, seconds: 0, log: nil, outputs: [])
    }

    public init(id: String, task: String, dataID: String, status: QuantumStatus, reason: String?, seconds: Double,
                log: String?, outputs: [OutputRecord], exitCode: Int? = nil) {
        self.exitCode = exitCode
        self.id = id
        self.task = task
        self.dataID = dataID
        self.status = status
        self.reason = reason
        self.seconds = seconds
        self.log = log
        self.outputs = outputs
    }
}

/// What one job attempt did; written last and atomically. The merge trusts only this and the files.
public struct Manifest: Sendable, Codable, Equatable {
    public var formatVersion = 1
    public var submission: String
    public var array: String
    public var index: Int
    public var attempt: Int
    public var status: QuantumStatus
    public var firstError: String?
    public var startedAt: String
    public var endedAt: String
    public var seconds: Double
    public var host: String
    public var slurmJobID: String?
    public var slurmArrayJobID: String?
    public var maxRSSKB: Int
    public var quanta: [QuantumRecord]
    /// Why the job stopped early, when run-quantum saw it: `outOfMemory` (it killed the command at
    /// the job's limit) or `terminated` (SIGTERM: time limit, scancel or preemption).
    public var failureClass: FailureClass?
    /// The memory limit the job ran under (MB), when known.
    public var memoryLimitMB: Int?
    /// The whole job's use (run-quantum and everything it ran): CPU seconds (user + system) and
    /// bytes read and written from storage. Nil in manifests written before they were measured.
    public var cpuSeconds: Double?
    public var readBytes: Int64?
    public var writtenBytes: Int64?

    public init(submission: String, array: String, index: Int, attempt: Int, status: QuantumStatus, firstError: String?,
                startedAt: String, endedAt: String, seconds: Double, host: String, slurmJobID: String?,
                slurmArrayJobID: String?, maxRSSKB: Int, quanta: [QuantumRecord],
                failureClass: FailureClass? = nil, memoryLimitMB: Int? = nil) {
        self.failureClass = failureClass
        self.memoryLimitMB = memoryLimitMB
        self.submission = submission
        self.array = array
        self.index = index
        self.attempt = attempt
        self.status = status
        self.firstError = firstError
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.seconds = seconds
        self.host = host
        self.slurmJobID = slurmJobID
        self.slurmArrayJobID = slurmArrayJobID
        self.maxRSSKB = maxRSSKB
        self.quanta = quanta
    }

    public func encoded() throws -> Data {
        try JSONEncoder.pretty.encode(self)
    }

    public static func read(path: String, outputs: Bool = true) throws -> Manifest? {
        try readWithIdentity(path: path, outputs: outputs)?.manifest
    }

    /// The manifest and the identity of the file it was read from (what `ManifestCache` checks).
    public static func readWithIdentity(path: String, outputs: Bool = true) throws -> (manifest: Manifest, identity: ManifestCache.Identity)? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        // One read of the file's size (plus room to notice growth), instead of a zeroed fixed buffer.
        var st = stat()
        let size = fstat(fd, &st) == 0 ? Int(st.st_size) : 0
        let identity = ManifestCache.Identity(st)
        var bytes = [UInt8](repeating: 0, count: max(4096, size + 1024))
        var count = 0
        while true {
            if count == bytes.count { bytes += [UInt8](repeating: 0, count: bytes.count) }
            let n = bytes.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress! + count, $0.count - count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw QuantaError(.io, "\(path): cannot read the manifest (\(String(cString: strerror(errno))))") }
            if n == 0 { break }
            count += n
        }
        do { return (try bytes.withUnsafeBytes { try decode(UnsafeRawBufferPointer(rebasing: $0[0..<count]), outputs: outputs) }, identity) } catch {
            throw QuantaError(.io, "\(path): unreadable manifest (\(error)); rerun that job with 'quanta rerun --force'")
        }
    }

    /// Many manifests at once (status and merge read one per job), on every core; nil where a
    /// job has none. The first unreadable one, in path order, is the error.
    /// `outputs: false` leaves every quantum's output list empty (status needs only the states).
    /// Every manifest of `paths`; one that cannot be read comes back as `unreadable`, so a single
    /// bad file never stops status or restart of the whole submission (issue 12).
    public static func readAll(paths: [String], outputs: Bool = true) throws -> [Manifest?] {
        try Parallel.map(count: paths.count) { k in
            do { return try read(path: paths[k], outputs: outputs) } catch { return unreadable(path: paths[k], error: error) }
        }
    }

    /// Stands in for a manifest that exists but cannot be read: the job counts as failed, with
    /// the reason, so status shows it and restart runs it again.
    public static func unreadable(path: String, error: Error) -> Manifest {
        let why = "\(error)".hasPrefix(path) ? "\(error)" : "\(path): \(error)"
        return Manifest(submission: "", array: "", index: -1, attempt: 0, status: .failed,
                        firstError: "unreadable manifest (\(why)); 'quanta rerun' or 'quanta restart' runs the job again",
                        startedAt: "", endedAt: "", seconds: 0, host: "", slurmJobID: nil, slurmArrayJobID: nil, maxRSSKB: 0, quanta: [])
    }

    struct MissingKey: Error, CustomStringConvertible {
        let key: String, of: String
        var description: String { "no \"\(key)\" in \(of)" }
    }

    /// The manifest from its JSON text, read by hand: status and merge read one per job (100,000
    /// of them), where Foundation's JSONDecoder was 56 % of `quanta status`. Same rules as the
    /// Codable form: every non-optional key is required, unknown keys are ignored.
    public static func decode(_ bytes: UnsafeRawBufferPointer, outputs: Bool = true) throws -> Manifest {
        var r = JSONReader(bytes)
        var formatVersion = 1, index: Int?, attempt: Int?, maxRSSKB: Int?, memoryLimitMB: Int?
        var submission: String?, array: String?, firstError: String?, startedAt: String?, endedAt: String?, host: String?
        var slurmJobID: String?, slurmArrayJobID: String?, failureClass: FailureClass?
        var status: QuantumStatus?, seconds: Double?, quanta: [QuantumRecord]?
        var cpuSeconds: Double?, readBytes: Int64?, writtenBytes: Int64?
        try r.object { key, r in
            switch key {
            case "formatVersion": formatVersion = try r.int()
            case "submission": submission = try r.string()
            case "array": array = try r.string()
            case "index": index = try r.int()
            case "attempt": attempt = try r.int()
            case "status": status = try quantumStatus(&r)
            case "firstError": firstError = try r.null() ? nil : try r.string()
            case "startedAt": startedAt = try r.string()
            case "endedAt": endedAt = try r.string()
            case "seconds": seconds = try r.double()
            case "host": host = try r.string()
            case "slurmJobID": slurmJobID = try r.null() ? nil : try r.string()
            case "slurmArrayJobID": slurmArrayJobID = try r.null() ? nil : try r.string()
            case "maxRSSKB": maxRSSKB = try r.int()
            case "failureClass": failureClass = try r.null() ? nil : FailureClass(manifestValue: try r.string())
            case "memoryLimitMB": memoryLimitMB = try r.null() ? nil : try r.int()
            case "cpuSeconds": cpuSeconds = try r.null() ? nil : try r.double()
            case "readBytes": readBytes = try r.null() ? nil : Int64(try r.int())
            case "writtenBytes": writtenBytes = try r.null() ? nil : Int64(try r.int())
            case "quanta":
                var list: [QuantumRecord] = []
                try r.array { list.append(try quantumRecord(&$0, outputs: outputs)) }
                quanta = list
            default: try r.skip()
            }
        }
        try r.end()
        func need<T>(_ v: T?, _ key: String) throws -> T {
            guard let v else { throw MissingKey(key: key, of: "the manifest") }
            return v
        }
        var m = Manifest(submission: try need(submission, "submission"), array: try need(array, "array"), index: try need(index, "index"),
                         attempt: try need(attempt, "attempt"), status: try need(status, "status"), firstError: firstError,
                         startedAt: try need(startedAt, "startedAt"), endedAt: try need(endedAt, "endedAt"),
                         seconds: try need(seconds, "seconds"), host: try need(host, "host"), slurmJobID: slurmJobID,
                         slurmArrayJobID: slurmArrayJobID, maxRSSKB: try need(maxRSSKB, "maxRSSKB"), quanta: try need(quanta, "quanta"),
                         failureClass: failureClass, memoryLimitMB: memoryLimitMB)
        m.formatVersion = formatVersion
        m.cpuSeconds = cpuSeconds
        m.readBytes = readBytes
        m.writtenBytes = writtenBytes
        return m
    }

    static func quantumStatus(_ r: inout JSONReader) throws -> QuantumStatus {
        let text = try r.string()
        guard let s = QuantumStatus(rawValue: text) else { throw JSONReader.Failure(message: "unknown status '\(text)'") }
        return s
    }

    static func quantumRecord(_ r: inout JSONReader, outputs wanted: Bool) throws -> QuantumRecord {
        var id: String?, task: String?, dataID: String?, status: QuantumStatus?, reason: String?, seconds: Double?
        var log: String?, outputs: [OutputRecord]?, exitCode: Int?
        var startedAt: String?, cpuSeconds: Double?, peakRSSKB: Int?, readBytes: Int64?, writtenBytes: Int64?
        var blockedByTask: String?, blockedByReason: String?
        try r.object { key, r in
            switch key {
            case "id": id = try r.string()
            case "task": task = try r.string()
            case "dataID": dataID = try r.string()
            case "status": status = try quantumStatus(&r)
            case "reason": reason = try r.null() ? nil : try r.string()
            case "seconds": seconds = try r.double()
            case "log": log = try r.null() ? nil : try r.string()
            case "exitCode": exitCode = try r.null() ? nil : try r.int()
            case "startedAt": startedAt = try r.null() ? nil : try r.string()
            case "cpuSeconds": cpuSeconds = try r.null() ? nil : try r.double()
            case "peakRSSKB": peakRSSKB = try r.null() ? nil : try r.int()
            case "readBytes": readBytes = try r.null() ? nil : Int64(try r.int())
            case "writtenBytes": writtenBytes = try r.null() ? nil : Int64(try r.int())
            case "blockedByTask": blockedByTask = try r.null() ? nil : try r.string()
            case "blockedByReason": blockedByReason = try r.null() ? nil : try r.string()
            case "outputs":
                var list: [OutputRecord] = []
                if wanted { try r.array { list.append(try outputRecord(&$0)) } } else { try r.skip() }
                outputs = list
            default: try r.skip()
            }
        }
        guard let id, let task, let dataID, let status, let seconds, let outputs else {
            throw MissingKey(key: [id == nil ? "id" : nil, task == nil ? "task" : nil, dataID == nil ? "dataID" : nil,
                                   status == nil ? "status" : nil, seconds == nil ? "seconds" : nil,
                                   outputs == nil ? "outputs" : nil].compactMap { $0 }.first!, of: "a quantum record")
        }
        var q = QuantumRecord(id: id, task: task, dataID: dataID, status: status, reason: reason, seconds: seconds, log: log,
                              outputs: outputs, exitCode: exitCode)
        q.startedAt = startedAt
        q.cpuSeconds = cpuSeconds
        q.peakRSSKB = peakRSSKB
        q.readBytes = readBytes
        q.writtenBytes = writtenBytes
        q.blockedByTask = blockedByTask
        q.blockedByReason = blockedByReason
        return q
    }

    static func outputRecord(_ r: inout JSONReader) throws -> OutputRecord {
        var id: String?, type: String?, dataID: String?, run: String?, path: String?, size: Int?, checksum: String?
        try r.object { key, r in
            switch key {
            case "id": id = try r.string()
            case "type": type = try r.string()
            case "dataID": dataID = try r.string()
            case "run": run = try r.string()
            case "path": path = try r.string()
            case "size": size = try r.int()
            case "checksum": checksum = try r.string()
            default: try r.skip()
            }
        }
        guard let id, let type, let dataID, let run, let path, let size, let checksum else {
            throw MissingKey(key: [id == nil ? "id" : nil, type == nil ? "type" : nil, dataID == nil ? "dataID" : nil,
                                   run == nil ? "run" : nil, path == nil ? "path" : nil, size == nil ? "size" : nil,
                                   checksum == nil ? "checksum" : nil].compactMap { $0 }.first!, of: "an output record")
        }
        return OutputRecord(id: id, type: type, dataID: dataID, run: run, path: path, size: Int64(size), checksum: checksum)
    }

    /// The quanta of this attempt that succeeded (or had no work) and whose outputs are all still
    /// under `root` with their recorded sizes: id → record. What a rerun keeps (`--skip-existing`).
    public func intactQuanta(root: String) -> [String: QuantumRecord] {
        var out: [String: QuantumRecord] = [:]
        for r in quanta where r.status.isSuccess {
            let whole = r.outputs.allSatisfy { o in
                var st = stat()
                return stat(root + "/" + o.path, &st) == 0 && Int64(st.st_size) == o.size
            }
            if whole { out[r.id] = r }
        }
        return out
    }

    /// Writes the attempt's own manifest, then the job's latest one, each atomically; then drops
    /// the attempt's claim (the manifest now holds its number).
    public func write(in dir: SubmitDirectory) throws {
        let data = try encoded()
        try AtomicFile.write(data, to: dir.attemptManifest(array: array, index: index, attempt: attempt))
        try AtomicFile.write(data, to: dir.manifest(array: array, index: index))
        unlink(dir.attemptClaim(array: array, index: index, attempt: attempt))
    }

    /// Attempt numbers of a job found in its attempts directory (manifests, and claims if asked).
    static func attemptNumbers(in dir: SubmitDirectory, array: String, index: Int, claims: Bool) -> [Int] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.attemptDirectory(array: array))) ?? []
        return names.compactMap { SubmitDirectory.attemptNumber(fileName: $0, index: index, claims: claims) }.sorted()
    }

    /// Every attempt's manifest of a job, oldest first (unreadable ones skipped).
    public static func attempts(in dir: SubmitDirectory, array: String, index: Int) -> [Manifest] {
        attemptNumbers(in: dir, array: array, index: index, claims: false).compactMap {
            try? read(path: dir.attemptManifest(array: array, index: index, attempt: $0)) ?? nil
        }
    }

    /// The next attempt number for a job: one more than any recorded or claimed.
    public static func nextAttempt(in dir: SubmitDirectory, array: String, index: Int) -> Int {
        (attemptNumbers(in: dir, array: array, index: index, claims: true).last ?? 0) + 1
    }

    /// Takes the next attempt number for a job by creating its claim file with O_EXCL: a number
    /// another run claimed or recorded first is never reused, so no attempt manifest is overwritten.
    /// `owner` goes into the claim (host, pid, SLURM job) for a person who finds one left by a kill.
    public static func claimAttempt(in dir: SubmitDirectory, array: String, index: Int, owner: String) throws -> Int {
        let folder = dir.attemptDirectory(array: array)
        do { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
            throw QuantaError(.io, "\(folder): cannot create the directory (\(error.localizedDescription)); check the submit directory's permissions and free space")
        }
        var attempt = nextAttempt(in: dir, array: array, index: index)
        while true {
            let path = dir.attemptClaim(array: array, index: index, attempt: attempt)
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            if fd >= 0 {
                _ = owner.withCString { Foundation.write(fd, $0, strlen($0)) }
                close(fd)
                return attempt
            }
            guard errno == EEXIST else {
                throw QuantaError(.io, "\(path): cannot claim attempt \(attempt) (\(String(cString: strerror(errno)))); check the submit directory's permissions and free space")
            }
            // Someone else took it between our listing and our open: take the next.
            attempt += 1
        }
    }
}
