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
        /// The largest resident size of the process tree (KB): the watcher's samples of the whole
        /// tree every 0.2 s, or the kernel's peak of its largest single process, whichever is more.
        public var peakTreeKB: Int
    }

    /// Runs and supervises; `memoryLimitMB` nil means no watch (SLURM still enforces its own).
    /// The wait blocks (a signal interrupts it), so a quick command costs no polling latency; a
    /// watcher thread samples memory every 0.2 s and sends the SIGKILL after the grace period.
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String],
                           options: Spawn.Options, memoryLimitMB: Int?, graceSeconds: Double = 2) throws -> Result {
        var o = options
        o.newProcessGroup = true
        let kernelKillsBefore = KernelOOM.kills()
        let pid = try Spawn.launch(executable, arguments, environment: environment, options: o)
        let watch = Watch(pid: pid, limitMB: memoryLimitMB, ownMB: residentMB(getpid()), grace: graceSeconds)
        let thread = Thread { watch.loop() }
        thread.start()
        var status: Int32 = 0
        var usage = rusage()
        while true {
            let r = wait4(pid, &status, 0, &usage)
            if r == pid { break }
            if r < 0 && errno == EINTR {
                if terminationSignal != 0 { watch.forward() }
                continue
            }
            if r < 0 { break }
        }
        var (oom, peak, treeKB) = watch.finish()
        // The kernel may get there first: SLURM's cgroup limit is hit between two samples (a
        // command can allocate hundreds of MB in 0.2 s). Its OOM killer counts what it killed; the
        // victim may be a process inside the command, which then exits 137 rather than by signal.
        if oom == nil, status != 0, KernelOOM.kills() > kernelKillsBefore {
            let kernel = KernelOOM.limitMB()
            oom = (max(peak, kernel ?? 0), kernel ?? memoryLimitMB ?? 0)
        }
        return Result(status: ExitStatus(waitStatus: status), outOfMemory: oom.map { (usedMB: $0.0, limitMB: $0.1) },
                      terminatedBy: terminatedBy, peakRSSMB: peak, peakTreeKB: max(treeKB, usage.ru_maxrss))
    }

    /// Shared between the waiting thread and the watcher; every kill happens under the lock and
    /// only while the child has not been reaped (its pid cannot have been reused).
    private final class Watch: @unchecked Sendable {
        let pid: pid_t
        let limitMB: Int?
        let ownMB: Int
        let grace: Double
        private let lock = NSLock()
        private var done = false
        private var forwardedAt: Date?
        private var oom: (Int, Int)?
        private var peak = 0
        /// The tree's own peak (KB), without run-quantum's share.
        private var treePeakKB = 0

        init(pid: pid_t, limitMB: Int?, ownMB: Int, grace: Double) {
            self.pid = pid
            self.limitMB = limitMB
            self.ownMB = ownMB
            self.grace = grace
        }

        func forward() {
            lock.lock(); defer { lock.unlock() }
            guard !done, forwardedAt == nil else { return }
            kill(-pid, SIGTERM)
            forwardedAt = Date()
        }

        func loop() {
            while true {
                usleep(200_000)
                let treeKB = ChildSupervisor.treeResidentKB(pid)
                let used = limitMB == nil ? 0 : treeKB / 1024 + ownMB
                lock.lock()
                if done { lock.unlock(); return }
                peak = max(peak, used)
                treePeakKB = max(treePeakKB, treeKB)
                if let limit = limitMB, oom == nil, used > limit {
                    kill(-pid, SIGKILL)
                    oom = (used, limit)
                }
                // The signal may have landed on this thread, leaving the wait uninterrupted.
                if terminationSignal != 0 && forwardedAt == nil {
                    kill(-pid, SIGTERM)
                    forwardedAt = Date()
                }
                if let f = forwardedAt, Date().timeIntervalSince(f) > grace { kill(-pid, SIGKILL) }
                lock.unlock()
            }
        }

        func finish() -> ((Int, Int)?, Int, Int) {
            lock.lock(); defer { lock.unlock() }
            done = true
            return (oom, peak, treePeakKB)
        }
    }

    /// Resident memory of a process and all its descendants, in MB.
    static func treeResidentMB(_ root: pid_t) -> Int { treeResidentKB(root) / 1024 }

    /// Resident memory of a process and all its descendants, in KB.
    static func treeResidentKB(_ root: pid_t) -> Int {
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
        return total
    }

    static func residentMB(_ pid: pid_t) -> Int { residentKB(pid) / 1024 }

    private static let pageKB = Int(sysconf(Int32(_SC_PAGESIZE))) / 1024

    static func residentKB(_ pid: pid_t) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/statm", encoding: .utf8) else { return 0 }
        let f = text.split(separator: " ")
        return f.count > 1 ? (Int(f[1]) ?? 0) * pageKB : 0
    }

    /// The kernel's OOM-kill count and memory limit of this process's memory cgroup and its
    /// ancestors (SLURM sets the limit on the job's cgroup, a parent of the step's): cgroup v1
    /// `memory.oom_control`/`memory.limit_in_bytes` or v2 `memory.events`/`memory.max`.
    enum KernelOOM {
        static func cgroupDirs(procCgroup: String = "/proc/self/cgroup", sysfs: String = "/sys/fs/cgroup") -> [String] {
            guard let text = try? String(contentsOfFile: procCgroup, encoding: .utf8) else { return [] }
            var dirs: [String] = []
            for line in text.split(separator: "\n") {
                let f = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
                guard f.count == 3 else { continue }
                let base: String
                if f[1].split(separator: ",").contains("memory") { base = sysfs + "/memory" }
                else if f[0] == "0" && f[1].isEmpty {
                    base = FileManager.default.fileExists(atPath: sysfs + "/cgroup.controllers") ? sysfs : sysfs + "/unified"
                } else { continue }
                var path = String(f[2])
                while true {
                    dirs.append(base + (path == "/" ? "" : path))
                    if path == "/" || path.isEmpty { break }
                    path = (path as NSString).deletingLastPathComponent
                }
            }
            return dirs
        }

        /// Processes the kernel OOM-killed in this cgroup and its ancestors so far.
        /// This process's, read once: a job's cgroup does not change while it runs.
        static let ownDirs = cgroupDirs()

        static func kills(_ dirs: [String] = ownDirs) -> Int {
            var total = 0
            for d in dirs {
                for file in ["memory.oom_control", "memory.events"] {
                    guard let text = try? String(contentsOfFile: d + "/" + file, encoding: .utf8) else { continue }
                    for line in text.split(separator: "\n") where line.hasPrefix("oom_kill ") {
                        total += Int(line.dropFirst(9).trimmingCharacters(in: .whitespaces)) ?? 0
                    }
                }
            }
            return total
        }

        /// The smallest memory limit on the way to the root, in MB; nil when there is none.
        static func limitMB(_ dirs: [String] = ownDirs) -> Int? {
            var best: Int?
            for d in dirs {
                for file in ["memory.limit_in_bytes", "memory.max"] {
                    guard let text = try? String(contentsOfFile: d + "/" + file, encoding: .utf8),
                          let bytes = Int64(text.trimmingCharacters(in: .whitespacesAndNewlines)),
                          bytes < (Int64(1) << 50) else { continue }
                    let mb = Int(bytes / 1_048_576)
                    best = min(best ?? mb, mb)
                }
            }
            return best
        }
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
