#if canImport(Glibc)
import Glibc
#endif
import Foundation
import QuantaCore

/// Why the last merge of a submission failed (`merge-error.json`), so `status` can say so
/// instead of "not run": a conflict in the repository, a registry that refused, a killed merge.
public struct MergeFailure: Sendable, Codable, Equatable {
    /// The error, one line (what conflicts, and the log with the rest).
    public var error: String
    public var at: String

    public init(error: String, at: Date = Date()) {
        self.error = error
        self.at = Timestamp.iso8601(at)
    }

    /// The failure recorded for `dir`, unless a merge has succeeded since.
    public static func read(_ dir: SubmitDirectory) -> MergeFailure? {
        guard let data = FileManager.default.contents(atPath: dir.mergeError) else { return nil }
        return try? JSONDecoder().decode(MergeFailure.self, from: data)
    }

    /// Runs a merge: on failure records it (and rethrows), on success clears an older record.
    public static func recording<T>(_ dir: SubmitDirectory, _ merge: () throws -> T) throws -> T {
        do {
            let r = try merge()
            unlink(dir.mergeError)
            return r
        } catch {
            let line = "\(error)".split(separator: "\n").first.map(String.init) ?? "\(error)"
            try? AtomicFile.write(try JSONEncoder.pretty.encode(MergeFailure(error: line)), to: dir.mergeError)
            throw error
        }
    }
}

/// What a merge did, for people and for `merge-summary.json`.
public struct MergeResult: Sendable, Codable {
    public var outputRun: String
    public var output: String?
    public var registered: Int
    public var alreadyRegistered: Int
    public var datasetsInManifests: Int
    /// Outputs a manifest lists whose file is gone or has another size.
    public var missingFiles: [String]
    public var quantaSucceeded: Int
    public var quantaFailed: [String]
    public var quantaBlocked: [String]
    /// Jobs with no manifest: never ran, killed, or still running.
    public var jobsWithoutManifest: [String]
    /// Manifest records the plan did not predict for that job (another UUID, type, run, data ID
    /// or path), never registered; and manifests that could not be read. One line each.
    public var refused: [String] = []
    public var seconds: Double
    /// Where the time went: setup, manifests and file checks, collect, registry (seconds).
    public var phaseSeconds: [String: Double]?

    public init(outputRun: String, output: String?, registered: Int, alreadyRegistered: Int, datasetsInManifests: Int,
                missingFiles: [String], quantaSucceeded: Int, quantaFailed: [String], quantaBlocked: [String],
                jobsWithoutManifest: [String], seconds: Double) {
        self.outputRun = outputRun
        self.output = output
        self.registered = registered
        self.alreadyRegistered = alreadyRegistered
        self.datasetsInManifests = datasetsInManifests
        self.missingFiles = missingFiles
        self.quantaSucceeded = quantaSucceeded
        self.quantaFailed = quantaFailed
        self.quantaBlocked = quantaBlocked
        self.jobsWithoutManifest = jobsWithoutManifest
        self.seconds = seconds
    }
}
