import Foundation
import QuantaCore

/// SLURM's job states (base state, without flags), named as `scontrol` prints them.
public enum SlurmJobState: String, Sendable, Codable, CaseIterable {
    case pending = "PENDING", running = "RUNNING", suspended = "SUSPENDED", completed = "COMPLETED"
    case cancelled = "CANCELLED", failed = "FAILED", timeout = "TIMEOUT", nodeFail = "NODE_FAIL"
    case preempted = "PREEMPTED", bootFail = "BOOT_FAIL", deadline = "DEADLINE", outOfMemory = "OUT_OF_MEMORY"
    case completing = "COMPLETING", requeued = "REQUEUED", unknown = "UNKNOWN"

    /// From `enum job_states` (libslurm).
    public init(base: UInt32) {
        let table: [SlurmJobState] = [.pending, .running, .suspended, .completed, .cancelled, .failed, .timeout,
                                      .nodeFail, .preempted, .bootFail, .deadline, .outOfMemory]
        self = Int(base) < table.count ? table[Int(base)] : .unknown
    }

    /// From `scontrol`/`squeue` text, e.g. `CANCELLED` or `CANCELLED+`.
    public init(text: String) {
        let t = text.uppercased().trimmingCharacters(in: CharacterSet(charactersIn: "+ "))
        if let s = SlurmJobState(rawValue: t) { self = s; return }
        switch t {
        case "OOM": self = .outOfMemory
        case "CA": self = .cancelled
        default: self = t.hasPrefix("CANCELLED") ? .cancelled : .unknown
        }
    }

    public var isFinished: Bool {
        ![.pending, .running, .suspended, .completing, .requeued, .unknown].contains(self)
    }
}

/// One job or array element as the controller reports it.
public struct SlurmJobRecord: Sendable, Codable, Equatable {
    /// The array's job id (the id sbatch printed), or the job's own id.
    public var arrayJobID: UInt32
    /// This record's own job id.
    public var jobID: UInt32
    /// Array task ids this record stands for: one for a split element, several for a pending
    /// record SLURM has not split yet, empty for a job that is not an array.
    public var taskIDs: [Int]
    public var state: SlurmJobState
    /// Pending/failure reason (`Dependency`, `DependencyNeverSatisfied`, `OutOfMemory`, …).
    public var reason: String
    public var exitCode: Int
    public var signal: Int
    public var stderrPath: String?
    public var memoryMB: Int?
    public var startTime: Int?
    public var endTime: Int?
    /// `--job-name` and `--chdir` as submitted: how a job no record names is found again.
    public var name: String?
    public var workDir: String?

    public init(arrayJobID: UInt32, jobID: UInt32, taskIDs: [Int], state: SlurmJobState, reason: String,
                exitCode: Int, signal: Int, stderrPath: String?, memoryMB: Int?, startTime: Int?, endTime: Int?,
                name: String? = nil, workDir: String? = nil) {
        self.arrayJobID = arrayJobID
        self.jobID = jobID
        self.taskIDs = taskIDs
        self.state = state
        self.reason = reason
        self.exitCode = exitCode
        self.signal = signal
        self.stderrPath = stderrPath
        self.memoryMB = memoryMB
        self.startTime = startTime
        self.endTime = endTime
        self.name = name
        self.workDir = workDir
    }
}

/// What one `sbatch` of one array needs; both backends honour every field.
/// One sbatch: a planned request (`SlurmRequest`, from plan.json) and what this submission adds —
/// the elements, the dependencies, where its logs go this round, the environment.
public struct SlurmSubmission: Sendable {
    public var script: String
    public var request: SlurmRequest
    /// `0-9%4` or `1,4,7`; nil for a plain job.
    public var array: String?
    public var stdout: String
    public var stderr: String
    public var workDir: String
    /// `aftercorr:12,afterany:13`.
    public var dependency: String?
    public var killOnInvalidDependency = true
    /// Extra variables on top of the submitting environment.
    public var environment: [String: String] = [:]

    public var name: String { request.jobName }

    public init(script: String, request: SlurmRequest, array: String?, stdout: String, stderr: String, workDir: String) {
        self.script = script
        self.request = request
        self.array = array
        self.stdout = stdout
        self.stderr = stderr
        self.workDir = workDir
    }
}

public struct SlurmPartitionInfo: Sendable, Equatable {
    public var name: String
    public var maxTimeMinutes: Int?
    public var isDefault: Bool
    public var up: Bool
}

public struct SlurmNodeInfo: Sendable, Equatable {
    public var name: String
    public var cpus: Int
    public var memoryMB: Int
    public var state: String
    public var partitions: [String]
}

/// A SLURM error, converted once at the boundary: what was attempted and SLURM's own message.
public struct SlurmError: Error, CustomStringConvertible, Sendable {
    public var operation: String
    public var message: String
    public var code: Int32

    public init(_ operation: String, _ message: String, code: Int32 = 0) {
        self.operation = operation
        self.message = message
        self.code = code
    }

    public var description: String { "\(operation): \(message)" }

    public var quantaError: QuantaError { QuantaError(.scheduler, description) }
}

/// SLURM array index expressions: `0-9`, `1,3,5-7`, `[0-3]`, `0-9%4`, `3`.
public enum ArrayIndices {
    public static func parse(_ text: String) -> [Int] {
        var t = Substring(text)
        if let pct = t.firstIndex(of: "%") { t = t[..<pct] }
        t = t.drop { $0 == "[" }
        if t.last == "]" { t = t.dropLast() }
        var out: [Int] = []
        for part in t.split(separator: ",") {
            let r = part.split(separator: "-", maxSplits: 1)
            // `0-9:2` (step) is SLURM syntax too.
            let stepParts = r.count == 2 ? r[1].split(separator: ":") : []
            if r.count == 2, let a = Int(r[0]), let b = Int(stepParts.first ?? r[1]), a <= b {
                let step = stepParts.count == 2 ? max(1, Int(stepParts[1]) ?? 1) : 1
                out += Array(stride(from: a, through: b, by: step))
            } else if let a = Int(part) {
                out.append(a)
            }
        }
        return out
    }

    /// Compact form: `0-3,7,9-10`.
    public static func format(_ indices: [Int]) -> String {
        let s = Array(Set(indices)).sorted()
        var parts: [String] = []
        var i = 0
        while i < s.count {
            var j = i
            while j + 1 < s.count && s[j + 1] == s[j] + 1 { j += 1 }
            parts.append(i == j ? "\(s[i])" : "\(s[i])-\(s[j])")
            i = j + 1
        }
        return parts.joined(separator: ",")
    }
}
