import Foundation
import QuantaCore

public enum QuantumStatus: String, Sendable, Codable {
    case succeeded, failed, blocked
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
    public var failureClass: String?
    /// The memory limit the job ran under (MB), when known.
    public var memoryLimitMB: Int?

    public init(submission: String, array: String, index: Int, attempt: Int, status: QuantumStatus, firstError: String?,
                startedAt: String, endedAt: String, seconds: Double, host: String, slurmJobID: String?,
                slurmArrayJobID: String?, maxRSSKB: Int, quanta: [QuantumRecord],
                failureClass: String? = nil, memoryLimitMB: Int? = nil) {
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

    public static func read(path: String) throws -> Manifest? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        do { return try JSONDecoder().decode(Manifest.self, from: data) } catch {
            throw QuantaError(.io, "\(path): unreadable manifest (\(error)); rerun that job with 'quanta rerun --force'")
        }
    }

    /// Writes the attempt's own manifest, then the job's latest one, each atomically.
    public func write(in dir: SubmitDirectory) throws {
        let data = try encoded()
        try AtomicFile.write(data, to: dir.attemptManifest(array: array, index: index, attempt: attempt))
        try AtomicFile.write(data, to: dir.manifest(array: array, index: index))
    }

    /// Every attempt's manifest of a job, oldest first (unreadable ones skipped).
    public static func attempts(in dir: SubmitDirectory, array: String, index: Int) -> [Manifest] {
        let attemptsDir = "\(dir.manifests)/\(array)/attempts"
        let prefix = "\(index)."
        let names = (try? FileManager.default.contentsOfDirectory(atPath: attemptsDir)) ?? []
        let numbered = names.compactMap { n -> (Int, String)? in
            guard n.hasPrefix(prefix), n.hasSuffix(".json"), let k = Int(n.dropFirst(prefix.count).dropLast(5)) else { return nil }
            return (k, "\(attemptsDir)/\(n)")
        }.sorted { $0.0 < $1.0 }
        return numbered.compactMap { try? read(path: $0.1) ?? nil }
    }

    /// The next attempt number for a job: one more than the attempts recorded.
    public static func nextAttempt(in dir: SubmitDirectory, array: String, index: Int) -> Int {
        let attemptsDir = "\(dir.manifests)/\(array)/attempts"
        let prefix = "\(index)."
        let names = (try? FileManager.default.contentsOfDirectory(atPath: attemptsDir)) ?? []
        let used = names.compactMap { n -> Int? in
            guard n.hasPrefix(prefix), n.hasSuffix(".json") else { return nil }
            return Int(n.dropFirst(prefix.count).dropLast(5))
        }
        return (used.max() ?? 0) + 1
    }
}
