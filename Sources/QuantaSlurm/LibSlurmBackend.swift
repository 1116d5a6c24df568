#if canImport(Glibc)
import Glibc
#endif
import CSlurm
import Foundation
import QuantaCore

/// SLURM through libslurm (slurm.h): one RPC per array submitted, one for every job state.
public final class LibSlurmBackend: SlurmBackend, @unchecked Sendable {
    public let kind = SlurmBackendKind.libslurm
    private let lock = NSLock()
    nonisolated(unsafe) private static var initialized = false

    /// `22.05.8`-style version libslurm was built from.
    public static var libraryVersion: String {
        let v = quanta_slurm_header_version()
        return "\((v >> 16) & 0xff).\(String(format: "%02d", (v >> 8) & 0xff)).\(v & 0xff)"
    }

    public init() {
        Self.initOnce()
    }

    private static func initOnce() {
        // slurm_init reads slurm.conf once per process; every other call needs it first.
        if !initialized {
            slurm_init(nil)
            initialized = true
        }
    }

    public var description: String { "libslurm \(Self.libraryVersion)" }

    /// The controller's configuration (version, MaxArraySize, …) in one call.
    public func controllerConfig() throws -> SlurmControllerConfig {
        lock.lock(); defer { lock.unlock() }
        var conf: UnsafeMutablePointer<slurm_conf_t>?
        guard slurm_load_ctl_conf(0, &conf) == quanta_slurm_success(), let c = conf else {
            throw Self.error("reading the controller's configuration")
        }
        defer { slurm_free_ctl_conf(c) }
        return SlurmControllerConfig(version: c.pointee.version.map { String(cString: $0) } ?? "unknown",
                                     maxArraySize: Int(c.pointee.max_array_sz),
                                     maxJobCount: Int(c.pointee.max_job_cnt),
                                     minJobAge: Int(c.pointee.min_job_age),
                                     clusterName: c.pointee.cluster_name.map { String(cString: $0) } ?? "")
    }

    public func submit(_ s: SlurmSubmission) throws -> UInt32 {
        guard s.request.extraOptions.isEmpty else {
            throw SlurmError("submitting \(s.name)", "the site's sbatchOptions (\(s.request.extraOptions.joined(separator: " "))) have no libslurm field; use --backend cli")
        }
        let script: String
        do { script = try String(contentsOfFile: s.script, encoding: .utf8) } catch {
            throw SlurmError("submitting \(s.name)", "cannot read \(s.script): \(error.localizedDescription)")
        }
        lock.lock(); defer { lock.unlock() }
        var strings: [UnsafeMutablePointer<CChar>] = []
        defer { strings.forEach { free($0) } }
        func c(_ text: String) -> UnsafeMutablePointer<CChar> {
            let p = strdup(text)!
            strings.append(p)
            return p
        }
        let env = SlurmEnvironment.forSubmission(s.environment)
        var envp: [UnsafeMutablePointer<CChar>?] = env.sorted { $0.key < $1.key }.map { c("\($0.key)=\($0.value)") }
        let envCount = envp.count
        envp.append(nil)

        var desc = job_desc_msg_t()
        slurm_init_job_desc_msg(&desc)
        desc.name = c(s.name)
        desc.script = c(script)
        if let a = s.array { desc.array_inx = c(a) }
        if let p = s.request.partition { desc.partition = c(p) }
        if let a = s.request.account { desc.account = c(a) }
        if let q = s.request.qos { desc.qos = c(q) }
        if let d = s.dependency { desc.dependency = c(d) }
        if s.killOnInvalidDependency { desc.bitflags |= quanta_slurm_kill_inv_dep() }
        desc.work_dir = c(s.workDir)
        desc.std_out = c(s.stdout)
        desc.std_err = c(s.stderr)
        desc.user_id = getuid()
        desc.group_id = getgid()
        desc.min_nodes = 1
        desc.max_nodes = 1
        desc.num_tasks = 1
        desc.cpus_per_task = UInt16(clamping: s.request.cpus)
        desc.min_cpus = UInt32(s.request.cpus)
        desc.pn_min_memory = UInt64(s.request.memoryMB)
        if s.request.exclusive { desc.shared = quanta_slurm_job_shared_none() }
        if let t = s.request.timeMinutes { desc.time_limit = UInt32(t) }
        var argv: [UnsafeMutablePointer<CChar>?] = [c(s.script), nil]

        var response: UnsafeMutablePointer<submit_response_msg_t>?
        let rc = envp.withUnsafeMutableBufferPointer { e -> Int32 in
            argv.withUnsafeMutableBufferPointer { a -> Int32 in
                desc.environment = e.baseAddress
                desc.env_size = UInt32(envCount)
                desc.argv = a.baseAddress
                desc.argc = 1
                return slurm_submit_batch_job(&desc, &response)
            }
        }
        guard rc == quanta_slurm_success(), let r = response else {
            throw Self.error("submitting \(s.name)\(s.array.map { " (array \($0))" } ?? "")")
        }
        defer { slurm_free_submit_response_response_msg(r) }
        return r.pointee.job_id
    }

    public func jobs(_ filter: SlurmJobFilter) throws -> [SlurmJobRecord] {
        lock.lock(); defer { lock.unlock() }
        var msg: UnsafeMutablePointer<job_info_msg_t>?
        guard slurm_load_jobs(0, &msg, quanta_slurm_show_all()) == quanta_slurm_success(), let m = msg else {
            throw Self.error("reading job states")
        }
        defer { slurm_free_job_info_msg(m) }
        var out: [SlurmJobRecord] = []
        let noVal = quanta_slurm_no_val()
        for i in 0..<Int(m.pointee.record_count) {
            let j = m.pointee.job_array[i]
            let arrayID = j.array_job_id != 0 ? j.array_job_id : j.job_id
            guard filter.keeps(arrayJobID: arrayID, jobID: j.job_id, workDir: { j.work_dir.map { String(cString: $0) } }) else { continue }
            var tasks: [Int] = []
            if j.array_job_id != 0 {
                if j.array_task_id != noVal { tasks = [Int(j.array_task_id)] }
                else if let s = j.array_task_str { tasks = ArrayIndices.parse(String(cString: s)) }
            }
            var state = SlurmJobState(base: quanta_slurm_state_base(j.job_state))
            if quanta_slurm_is_completing(j.job_state) != 0 && !state.isFinished { state = .completing }
            let reason = slurm_job_reason_string(Int32(j.state_reason)).map { String(cString: $0) } ?? ""
            let status = Int32(bitPattern: j.exit_code)
            let mem = j.pn_min_memory & ~quanta_slurm_mem_per_cpu_flag()
            out.append(SlurmJobRecord(
                arrayJobID: arrayID, jobID: j.job_id, taskIDs: tasks, state: state, reason: reason,
                exitCode: j.exit_code == noVal ? 0 : Int((status >> 8) & 0xff),
                signal: j.exit_code == noVal ? 0 : Int(status & 0x7f),
                stderrPath: j.std_err.map { String(cString: $0) },
                memoryMB: mem > 0 && mem != quanta_slurm_no_val64() ? Int(mem) : nil,
                startTime: j.start_time > 0 ? Int(j.start_time) : nil,
                endTime: j.end_time > 0 ? Int(j.end_time) : nil,
                name: filter.wantsIdentity ? j.name.map { String(cString: $0) } : nil,
                workDir: filter.wantsIdentity ? j.work_dir.map { String(cString: $0) } : nil))
        }
        return out
    }

    public func cancel(_ ids: [String]) throws {
        lock.lock(); defer { lock.unlock() }
        var failures: [String] = []
        for id in ids {
            // SIGKILL through slurmctld: SLURM sends SIGTERM first and SIGKILL after KillWait.
            if slurm_kill_job2(id, UInt16(SIGKILL), 0, nil) != quanta_slurm_success() {
                let e = slurm_get_errno()
                // Already finished is not an error for a cancel.
                if e != ESLURM_ALREADY_DONE.rawValue && e != ESLURM_INVALID_JOB_ID.rawValue {
                    failures.append("\(id): \(String(cString: slurm_strerror(e)))")
                }
            }
        }
        if !failures.isEmpty { throw SlurmError("cancelling", failures.joined(separator: "; ")) }
    }

    public func partitions() throws -> [SlurmPartitionInfo] {
        try eachPartition { p in
            SlurmPartitionInfo(
                name: p.name.map { String(cString: $0) } ?? "",
                maxTimeMinutes: p.max_time == quanta_slurm_infinite() || p.max_time == quanta_slurm_no_val() ? nil : Int(p.max_time),
                isDefault: quanta_slurm_partition_default(p.flags) != 0,
                up: quanta_slurm_partition_up(p.state_up) != 0)
        }
    }

    /// One `slurm_load_partitions`, each record mapped while the message is alive.
    private func eachPartition<T>(_ body: (partition_info_t) -> T) throws -> [T] {
        lock.lock(); defer { lock.unlock() }
        var msg: UnsafeMutablePointer<partition_info_msg_t>?
        guard slurm_load_partitions(0, &msg, quanta_slurm_show_all()) == quanta_slurm_success(), let m = msg else {
            throw Self.error("reading partitions")
        }
        defer { slurm_free_partition_info_msg(m) }
        return (0..<Int(m.pointee.record_count)).map { body(m.pointee.partition_array[$0]) }
    }

    public func nodes() throws -> [SlurmNodeInfo] {
        // node_info_t.partitions is not filled for clients: expand each partition's host list.
        let memberOf = try partitionMembers()
        lock.lock(); defer { lock.unlock() }
        var msg: UnsafeMutablePointer<node_info_msg_t>?
        guard slurm_load_node(0, &msg, quanta_slurm_show_all()) == quanta_slurm_success(), let m = msg else {
            throw Self.error("reading nodes")
        }
        defer { slurm_free_node_info_msg(m) }
        return (0..<Int(m.pointee.record_count)).compactMap { i in
            let n = m.pointee.node_array[i]
            guard let name = n.name else { return nil }
            let names = ["unknown", "down", "idle", "allocated", "error", "mixed", "future"]
            let base = Int(quanta_slurm_node_state_base(n.node_state))
            var state = base < names.count ? names[base] : "unknown"
            if quanta_slurm_node_drain(n.node_state) != 0 { state += "+drain" }
            let nodeName = String(cString: name)
            return SlurmNodeInfo(name: nodeName, cpus: Int(n.cpus), memoryMB: Int(n.real_memory),
                                 state: state, partitions: memberOf[nodeName] ?? [])
        }
    }

    /// node name → partitions holding it.
    private func partitionMembers() throws -> [String: [String]] {
        var out: [String: [String]] = [:]
        let lists = try eachPartition { p -> (String, [String]) in
            guard let name = p.name, let nodes = p.nodes, let list = slurm_hostlist_create(nodes) else { return ("", []) }
            defer { slurm_hostlist_destroy(list) }
            var hosts: [String] = []
            while let host = slurm_hostlist_shift(list) {
                hosts.append(String(cString: host))
                free(host)
            }
            return (String(cString: name), hosts)
        }
        for (partition, hosts) in lists { for h in hosts { out[h, default: []].append(partition) } }
        return out
    }

    /// The error libslurm left behind, with its own message.
    private static func error(_ operation: String) -> SlurmError {
        let e = slurm_get_errno()
        let text = slurm_strerror(e).map { String(cString: $0) } ?? "error \(e)"
        return SlurmError(operation, text, code: e)
    }
}
