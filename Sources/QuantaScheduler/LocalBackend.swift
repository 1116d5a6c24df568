#if canImport(Glibc)
import Glibc
#endif
import Foundation
import QuantaCore

nonisolated(unsafe) private var interruptSignal: sig_atomic_t = 0

private func onInterrupt(_ sig: Int32) { interruptSignal = sig }

/// Runs a submit directory's own sbatch scripts as local processes, with the environment SLURM
/// would give them, honouring the array dependencies: the embedded default backend.
public struct LocalBackend: Sendable {
    public struct Options: Sendable {
        /// How many array elements run at once.
        public var parallel = 1
        /// Only these elements (array name → array task ids, not packed job slots); nil runs everything.
        public var only: [String: Set<Int>]?
        /// Extra arguments for run-quantum (e.g. `--force`).
        /// Redo jobs that already succeeded (run-quantum's `--force`).
        public var force = false
        public var runMerge = true
        /// Memory (MB) per element for a retry after out-of-memory: array → element → MB.
        public var memoryMB: [String: [Int: Int]] = [:]
        public init() {}
    }

    public enum Event: Sendable {
        case started(array: String, index: Int)
        case ended(array: String, index: Int, status: ExitStatus)
        case skipped(array: String, index: Int, reason: String)
        case mergeStarted
        case mergeEnded(ExitStatus)
        case interrupted(signal: Int32, running: Int)
    }

    public struct Summary: Sendable {
        public var elements = 0
        public var exitedZero = 0
        public var exitedNonZero = 0
        public var skipped = 0
        public var cancelled = 0
        public var merge: ExitStatus?
        public var interrupted = false
        public var seconds = 0.0
    }

    public let dir: SubmitDirectory
    public let plan: PlanDocument

    public init(dir: SubmitDirectory, plan: PlanDocument) {
        self.dir = dir
        self.plan = plan
    }

    private struct Element {
        var array: Int
        var index: Int
        var state: State = .waiting
        /// Unfinished things it waits for: correlated elements and whole arrays.
        var pending = 0
        /// Why it can never run (a correlated upstream element did not succeed).
        var invalid: String?
        enum State { case waiting, running, done(ExitStatus), skipped, cancelled }
    }

    public func run(_ options: Options, onEvent: (Event) -> Void = { _ in }) throws -> Summary {
        let started = Date()
        var summary = Summary()
        var elements: [Element] = []
        var position: [String: [Int: Int]] = [:]
        var arrayRemaining = [Int](repeating: 0, count: plan.arrays.count)
        for (a, array) in plan.arrays.enumerated() {
            for i in 0..<array.size where options.only?[array.name]?.contains(i) ?? (options.only == nil) {
                position[array.name, default: [:]][i] = elements.count
                elements.append(Element(array: a, index: i))
                arrayRemaining[a] += 1
            }
        }
        let arrayIndex = Dictionary(uniqueKeysWithValues: plan.arrays.enumerated().map { ($1.name, $0) })
        // Who waits on what: element → correlated waiters; array → whole-array waiters. Counting
        // keeps each event O(its waiters), not O(all elements).
        var corrWaiters = [[Int]](repeating: [], count: elements.count)
        var arrayWaiters = [[Int]](repeating: [], count: plan.arrays.count)
        for e in elements.indices {
            for dep in plan.arrays[elements[e].array].dependencies {
                guard let upstream = position[dep.array], let ua = arrayIndex[dep.array] else { continue }
                switch dep.kind {
                case .aftercorr:
                    if let u = upstream[elements[e].index] {
                        corrWaiters[u].append(e)
                        elements[e].pending += 1
                    }
                case .afterany:
                    arrayWaiters[ua].append(e)
                    elements[e].pending += 1
                }
            }
        }
        summary.elements = elements.count

        var sa = sigaction()
        sa.__sigaction_handler.sa_handler = onInterrupt
        sigemptyset(&sa.sa_mask)
        sa.sa_flags = 0  // no SA_RESTART: waitpid returns EINTR so we can cancel
        var oldInt = sigaction(), oldTerm = sigaction()
        sigaction(SIGINT, &sa, &oldInt)
        sigaction(SIGTERM, &sa, &oldTerm)
        defer {
            sigaction(SIGINT, &oldInt, nil)
            sigaction(SIGTERM, &oldTerm, nil)
        }
        interruptSignal = 0

        let baseEnv = ProcessInfo.processInfo.environment
        let jobBase = Int(getpid()) * 1000
        var running: [pid_t: Int] = [:]
        let parallel = max(1, options.parallel)
        var ready = elements.indices.filter { elements[$0].pending == 0 }
        var readyHead = 0

        func record(_ e: Int, _ kind: LocalEvent.Kind, _ detail: String = "") {
            let el = elements[e]
            LocalEvent.append(LocalEvent(array: plan.arrays[el.array].name, index: el.index, kind: kind, detail: detail), to: dir)
        }

        func name(_ e: Int) -> String { "\(plan.arrays[elements[e].array].name):\(elements[e].index)" }

        /// An element has finished one way or another: release what waited on it.
        func finished(_ e: Int, succeeded: Bool, how: String) {
            for w in corrWaiters[e] {
                if !succeeded { elements[w].invalid = "\(name(e)) \(how)" }
                elements[w].pending -= 1
                if elements[w].pending == 0 { ready.append(w) }
            }
            let a = elements[e].array
            arrayRemaining[a] -= 1
            if arrayRemaining[a] == 0 {
                for w in arrayWaiters[a] {
                    elements[w].pending -= 1
                    if elements[w].pending == 0 { ready.append(w) }
                }
            }
        }

        func startReady() throws {
            while readyHead < ready.count {
                let e = ready[readyHead]
                let arrayName = plan.arrays[elements[e].array].name
                if let invalid = elements[e].invalid {
                    // What SLURM does with --kill-on-invalid-dep=yes: the element never runs.
                    readyHead += 1
                    elements[e].state = .skipped
                    summary.skipped += 1
                    record(e, .skipped, "dependency never satisfied: \(invalid)")
                    onEvent(.skipped(array: arrayName, index: elements[e].index, reason: invalid))
                    finished(e, succeeded: false, how: "did not run")
                    continue
                }
                guard running.count < parallel else { return }
                readyHead += 1
                let array = plan.arrays[elements[e].array]
                var env = baseEnv
                env["SLURM_JOB_ID"] = String(jobBase + e)
                env["SLURM_ARRAY_JOB_ID"] = String(jobBase + elements[e].array)
                env["SLURM_ARRAY_TASK_ID"] = String(elements[e].index)
                env["SLURM_ARRAY_TASK_COUNT"] = String(array.size)
                env["SLURM_ARRAY_TASK_MIN"] = "0"
                env["SLURM_ARRAY_TASK_MAX"] = String(array.size - 1)
                env["SLURM_JOB_NAME"] = "\(plan.submission).\(array.name)"
                env["SLURM_CPUS_PER_TASK"] = String(array.resources.cpus)
                env["SLURM_MEM_PER_NODE"] = String(options.memoryMB[arrayName]?[elements[e].index] ?? array.resources.memoryMB)
                env["SLURM_JOB_PARTITION"] = array.partition
                env["SLURM_SUBMIT_DIR"] = dir.root
                env["QUANTA_BACKEND"] = "local"
                var o = Spawn.Options()
                let packed = array.packing != nil
                o.stdoutPath = dir.elementLog(array: arrayName, element: elements[e].index, packed: packed, round: 0, stream: "out")
                o.stderrPath = dir.elementLog(array: arrayName, element: elements[e].index, packed: packed, round: 0, stream: "err")
                // Its own session, as SLURM gives a job its own cgroup: whatever it leaves running
                // (a command whose run-quantum was killed outright) is ended with it.
                o.newSession = true
                o.workingDirectory = dir.root
                let pid = try Spawn.launch("/bin/bash", [dir.script(array: arrayName)] + (options.force ? ["--force"] : []), environment: env, options: o)
                elements[e].state = .running
                running[pid] = e
                record(e, .start, "pid \(pid)")
                onEvent(.started(array: arrayName, index: elements[e].index))
            }
        }

        try startReady()
        while !running.isEmpty {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, 0)
            if pid < 0 {
                if errno == EINTR, interruptSignal != 0 { break }
                if errno == ECHILD { break }
                continue
            }
            guard let e = running.removeValue(forKey: pid) else { continue }
            Spawn.killSession(pid)
            let s = ExitStatus(waitStatus: status)
            elements[e].state = .done(s)
            if s.succeeded { summary.exitedZero += 1 } else { summary.exitedNonZero += 1 }
            record(e, .end, s.description)
            onEvent(.ended(array: plan.arrays[elements[e].array].name, index: elements[e].index, status: s))
            finished(e, succeeded: s.succeeded, how: "ended with \(s)")
            if interruptSignal != 0 { break }
            try startReady()
        }

        if interruptSignal != 0 {
            summary.interrupted = true
            onEvent(.interrupted(signal: interruptSignal, running: running.count))
            for pid in running.keys { kill(-pid, SIGTERM) }
            let deadline = Date().addingTimeInterval(10)
            while !running.isEmpty {
                var status: Int32 = 0
                let pid = waitpid(-1, &status, WNOHANG)
                if pid > 0, let e = running.removeValue(forKey: pid) {
                    Spawn.killSession(pid)
                    elements[e].state = .cancelled
                    summary.cancelled += 1
                    record(e, .cancelled, "interrupted (\(ExitStatus(waitStatus: status)))")
                } else if pid < 0 && errno == ECHILD {
                    break
                } else {
                    if Date() > deadline { for pid in running.keys { kill(-pid, SIGKILL) } }
                    usleep(50_000)
                }
            }
            summary.seconds = Date().timeIntervalSince(started)
            return summary
        }

        if options.runMerge {
            onEvent(.mergeStarted)
            var o = Spawn.Options()
            o.stdoutPath = dir.mergeLog(round: 0, stream: "out")
            o.stderrPath = dir.mergeLog(round: 0, stream: "err")
            o.newProcessGroup = true
            o.workingDirectory = dir.root
            var env = baseEnv
            env["SLURM_JOB_ID"] = String(jobBase + 999)
            env["SLURM_SUBMIT_DIR"] = dir.root
            env["QUANTA_BACKEND"] = "local"
            env["QUANTA_PROGRESS"] = "0"
            let s = try Spawn.run("/bin/bash", [dir.script(array: "merge")], environment: env, options: o)
            summary.merge = s
            LocalEvent.append(LocalEvent(array: "merge", index: 0, kind: .merged, detail: s.description), to: dir)
            onEvent(.mergeEnded(s))
        }
        summary.seconds = Date().timeIntervalSince(started)
        return summary
    }
}
