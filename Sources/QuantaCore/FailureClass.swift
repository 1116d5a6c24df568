import Foundation

/// Why a job or quantum did not succeed: written by run-quantum and the LSST job into the
/// manifest, derived from SLURM's job state by the attempt classifier, read by status and the
/// retry policy. The raw values are the manifest's `failureClass` spellings.
public enum FailureClass: String, Sendable, Codable, CaseIterable {
    case failed, outOfMemory, timeout, nodeFailure, preempted, cancelled
    /// run-quantum was sent SIGTERM while the command ran (time limit, scancel or preemption;
    /// SLURM's state says which).
    case terminated

    /// `payload` (the task's own error) or `infrastructure` (memory, time, node, preemption, a
    /// signal): which side should act, in failure groups and reports.
    public var origin: String { self == .failed ? "payload" : "infrastructure" }

    public var words: String {
        switch self {
        case .failed: return "failed"
        case .outOfMemory: return "out of memory"
        case .timeout: return "timeout"
        case .nodeFailure: return "node failure"
        case .preempted: return "preempted"
        case .cancelled: return "cancelled"
        case .terminated: return "terminated"
        }
    }

    /// A manifest's spelling; one this version does not know (a newer writer's) reads as `.failed`.
    public init(manifestValue: String) {
        self = FailureClass(rawValue: manifestValue) ?? .failed
    }
}
