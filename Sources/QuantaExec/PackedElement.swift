#if canImport(Glibc)
import Glibc
#endif
import Foundation
import QuantaCore

/// Whole-node packing: one array element runs several jobs side by side, each as its own
/// run-quantum with its own cpus (affinity), memory limit, manifest and log.
public struct PackedElement: Sendable {
    public let dir: SubmitDirectory
    public let array: String
    public let element: Int
    public let jobsPerElement: Int
    public let jobCount: Int
    public let cpusPerJob: Int
    public let memoryPerJobMB: Int
    public let extraArguments: [String]

    public init(dir: SubmitDirectory, array: String, element: Int, jobsPerElement: Int, jobCount: Int,
                cpusPerJob: Int, memoryPerJobMB: Int, extraArguments: [String]) {
        self.dir = dir
        self.array = array
        self.element = element
        self.jobsPerElement = jobsPerElement
        self.jobCount = jobCount
        self.cpusPerJob = cpusPerJob
        self.memoryPerJobMB = memoryPerJobMB
        self.extraArguments = extraArguments
    }

    public var slots: Range<Int> {
        (element * jobsPerElement) ..< min((element + 1) * jobsPerElement, jobCount)
    }

    /// Starts every job of the element and waits for all; true when each wrote its manifest.
    public func run(executable: String, environment: [String: String], log: (String) -> Void) throws -> Bool {
        let allowed = Self.allowedCPUs()
        var children: [pid_t: Int] = [:]
        for (k, slot) in slots.enumerated() {
            let cpus = (0..<cpusPerJob).map { allowed[(k * cpusPerJob + $0) % max(1, allowed.count)] }
            var args = ["--submit-dir", dir.root, "--array", array, "--index", String(slot),
                        "--memory-mb", String(memoryPerJobMB)]
            if !allowed.isEmpty { args += ["--cpus-allowed", cpus.map(String.init).joined(separator: ",")] }
            var o = Spawn.Options()
            o.stdoutPath = dir.jobLog(array: array, index: slot, stream: "out")
            o.stderrPath = dir.jobLog(array: array, index: slot, stream: "err")
            var env = environment
            env["QUANTA_PACKED_SLOT"] = String(k)
            let pid = try Spawn.launch(executable, args + extraArguments, environment: env, options: o)
            children[pid] = slot
            log("element \(element): job \(array):\(slot) started (pid \(pid), cpus \(cpus.map(String.init).joined(separator: ",")), \(memoryPerJobMB) MB)")
        }
        var allWrote = true
        var forwarded = false
        while !children.isEmpty {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, 0)
            if pid < 0 {
                if errno == EINTR, let sig = ChildSupervisor.terminatedBy, !forwarded {
                    // Each job writes its own manifest on SIGTERM.
                    children.keys.forEach { kill($0, sig) }
                    forwarded = true
                    continue
                }
                if errno == ECHILD { break }
                continue
            }
            guard let slot = children.removeValue(forKey: pid) else { continue }
            let s = ExitStatus(waitStatus: status)
            if !s.succeeded { allWrote = false }
            log("element \(element): job \(array):\(slot) ended (\(s))")
        }
        return allWrote
    }

    /// CPUs this process may run on (its SLURM allocation), in order.
    public static func allowedCPUs() -> [Int] {
        var set = cpu_set_t()
        guard let get = affinityCall("sched_getaffinity"), get(0, MemoryLayout<cpu_set_t>.size, &set) == 0 else { return [] }
        var out: [Int] = []
        withUnsafeBytes(of: &set) { raw in
            for (byte, value) in raw.enumerated() where value != 0 {
                for bit in 0..<8 where value & (1 << bit) != 0 { out.append(byte * 8 + bit) }
            }
        }
        return out
    }

    /// Restricts this process (and what it starts) to `cpus`.
    public static func restrict(to cpus: [Int]) {
        var set = cpu_set_t()
        withUnsafeMutableBytes(of: &set) { raw in
            for c in cpus where c / 8 < raw.count { raw[c / 8] |= UInt8(1 << (c % 8)) }
        }
        _ = affinityCall("sched_setaffinity")?(0, MemoryLayout<cpu_set_t>.size, &set)
    }

    private typealias AffinityCall = @convention(c) (pid_t, Int, UnsafeMutableRawPointer) -> Int32

    /// glibc's sched_{get,set}affinity are GNU extensions Swift's Glibc module does not declare.
    private static func affinityCall(_ name: String) -> AffinityCall? {
        guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }
        return unsafeBitCast(sym, to: AffinityCall.self)
    }
}
