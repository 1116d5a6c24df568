#if canImport(Glibc)
import Glibc
#endif
import Foundation
import QuantaCore

nonisolated(unsafe) private var terminationSignal: sig_atomic_t = 0

private func onTermination(_ sig: Int32) { terminationSignal = sig }

/// Runs a quantum's command in its own process group while watching two things SLURM would
/// otherwise decide alone: a SIGTERM to run-quantum (time limit, scancel, preemption) is forwarded
/// to the whole group, and the group's memory is held to the job's limit, so the manifest can say
/// why the quantum stopped before SLURM's SIGKILL arrives.
public enum ChildSupervisor {
    /// Installs the SIGTERM/SIGINT handler once per process (no SA_RESTART, so waits return).
    public static func installSignalHandlers() {
        var sa = sigaction()
        sa.__sigaction_handler.sa_handler = onTermination
        sigemptyset(&sa.sa_mask)
        sa.sa_flags = 0
        sigaction(SIGTERM, &sa, nil)
        sigaction(SIGINT, &sa, nil)
    }

    /// The signal that asked this process to stop, or nil.
    public static var terminatedBy: Int32? { terminationSignal == 0 ? nil : Int32(terminationSignal) }

    public struct Result: Sendable {
        public var status: ExitStatus
        /// Set when the group went over its memory limit and was killed: (MB in use, limit MB).
        public var outOfMemory: (usedMB: Int, limitMB: Int)?
        /// Set when run-quantum was told to stop while the command ran.
        public var terminatedBy: Int32?
        public var peakRSSMB: Int
    }

    /// Runs and supervises; `memoryLimitMB` nil means no watch (SLURM still enforces its own).
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String],
                           options: Spawn.Options, memoryLimitMB: Int?, graceSeconds: Double = 2) throws -> Result {
        var o = options
        o.newProcessGroup = true
        let pid = try Spawn.launch(executable, arguments, environment: environment, options: o)
        var status: Int32 = 0
        var forwardedAt: Date?
        var oom: (Int, Int)?
        var peak = 0
        var sleepMicros: UInt32 = 1000
        var nextMemoryCheck = Date()
        let ownRSS = residentMB(getpid())
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid || (r < 0 && errno == ECHILD) { break }
            if terminationSignal != 0 {
                if forwardedAt == nil {
                    kill(-pid, SIGTERM)
                    forwardedAt = Date()
                } else if Date().timeIntervalSince(forwardedAt!) > graceSeconds {
                    kill(-pid, SIGKILL)
                }
            }
            if let limit = memoryLimitMB, oom == nil, Date() >= nextMemoryCheck {
                let used = treeResidentMB(pid) + ownRSS
                peak = max(peak, used)
                if used > limit {
                    kill(-pid, SIGKILL)
                    oom = (used, limit)
                }
                nextMemoryCheck = Date().addingTimeInterval(0.2)
            }
            usleep(sleepMicros)
            sleepMicros = min(sleepMicros * 2, 50_000)
        }
        return Result(status: ExitStatus(waitStatus: status), outOfMemory: oom.map { (usedMB: $0.0, limitMB: $0.1) },
                      terminatedBy: terminatedBy, peakRSSMB: peak)
    }

    /// Resident memory of a process and all its descendants, in MB.
    static func treeResidentMB(_ root: pid_t) -> Int {
        var total = 0
        var stack = [root]
        var seen = Set<pid_t>()
        while let p = stack.popLast(), seen.insert(p).inserted {
            total += residentKB(p)
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(p)/task")) ?? []
            for t in tasks {
                guard let text = try? String(contentsOfFile: "/proc/\(p)/task/\(t)/children", encoding: .utf8) else { continue }
                stack += text.split(separator: " ").compactMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            }
        }
        return total / 1024
    }

    static func residentMB(_ pid: pid_t) -> Int { residentKB(pid) / 1024 }

    private static let pageKB = Int(sysconf(Int32(_SC_PAGESIZE))) / 1024

    static func residentKB(_ pid: pid_t) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/statm", encoding: .utf8) else { return 0 }
        let f = text.split(separator: " ")
        return f.count > 1 ? (Int(f[1]) ?? 0) * pageKB : 0
    }

    /// The memory limit SLURM gave this job (MB), from its environment.
    public static func slurmMemoryLimit(_ env: [String: String]) -> Int? {
        if let v = env["SLURM_MEM_PER_NODE"].flatMap({ Int($0) }), v > 0 { return v }
        if let per = env["SLURM_MEM_PER_CPU"].flatMap({ Int($0) }), per > 0 {
            return per * (env["SLURM_CPUS_ON_NODE"].flatMap { Int($0) } ?? 1)
        }
        return nil
    }
}
