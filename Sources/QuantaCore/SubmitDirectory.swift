import Foundation

/// Where everything lives inside one submission's directory.
public struct SubmitDirectory: Sendable {
    public let root: String

    public init(_ root: String) {
        self.root = URL(fileURLWithPath: root).standardizedFileURL.path
    }

    public var planJSON: String { root + "/plan.json" }
    public var planText: String { root + "/plan.txt" }
    public var snapshot: String { root + "/snapshot.sqlite" }
    public var scripts: String { root + "/scripts" }
    public var submitScript: String { root + "/submit.sh" }
    public var logs: String { root + "/logs" }
    public var manifests: String { root + "/manifests" }
    /// Append-only record of what the local backend started and how it ended.
    public var localEvents: String { root + "/local-events.log" }
    public var mergeSummary: String { root + "/merge-summary.json" }

    public func script(array: String) -> String { "\(scripts)/\(array).sbatch" }
    /// The latest manifest of a job; the merge reads only these.
    public func manifest(array: String, index: Int) -> String { "\(manifests)/\(array)/\(index).json" }
    /// Every attempt keeps its own manifest.
    public func attemptManifest(array: String, index: Int, attempt: Int) -> String {
        "\(manifests)/\(array)/attempts/\(index).\(attempt).json"
    }
    public func jobLog(array: String, index: Int, stream: String) -> String { "\(logs)/\(array).\(index).\(stream)" }
    public func quantumLog(task: String, quantum: UUID, attempt: Int) -> String {
        "\(logs)/quanta/\(PathSanitizer.safeName(task))/\(quantum.lowercased).\(attempt).log"
    }

    public var exists: Bool { FileManager.default.fileExists(atPath: planJSON) }
}
