#if canImport(Glibc)
import Glibc
#endif
import Foundation
import QuantaButler
import QuantaCore

/// One array element: read the job's rows of the snapshot, run its quanta in order, check every
/// output, write the manifest last.
public struct JobRunner: Sendable {
    public let dir: SubmitDirectory
    public let array: String
    public let index: Int
    public let force: Bool
    public let environment: [String: String]
    /// The job's memory limit (MB): a packed job's share, else SLURM's `--mem`; nil = not watched.
    public let memoryLimitMB: Int?

    public init(dir: SubmitDirectory, array: String, index: Int, force: Bool, environment: [String: String],
                memoryLimitMB: Int? = nil) {
        self.dir = dir
        self.array = array
        self.index = index
        self.force = force
        self.environment = environment
        self.memoryLimitMB = memoryLimitMB ?? ChildSupervisor.slurmMemoryLimit(environment)
    }

    public enum Outcome: Sendable {
        case alreadySucceeded(Manifest)
        case ran(Manifest)
    }

    public func run(log: (String) -> Void) throws -> Outcome {
        // An unreadable earlier manifest is no success: the job runs again.
        let previous = force ? nil : (try? Manifest.read(path: dir.manifest(array: array, index: index))) ?? nil
        if let previous, previous.status == .succeeded {
            return .alreadySucceeded(previous)
        }
        let lookupStart = Date()
        let job = try Snapshot.job(path: dir.snapshot, array: array, index: index)
        let lookupSeconds = Date().timeIntervalSince(lookupStart)
        try Repository.checkIdentity(root: job.meta.repo, expected: job.meta.repoID, what: "running job \(array):\(index)")
        // Claimed, not just counted: a run of the same job started meanwhile (SLURM's while a local
        // restart runs it, say) gets the next number instead of overwriting this attempt's manifest.
        let owner = "\(hostName()) pid \(getpid())\(environment["SLURM_JOB_ID"].map { " SLURM job \($0)" } ?? "") at \(Timestamp.iso8601(Date()))\n"
        let attempt = try Manifest.claimAttempt(in: dir, array: array, index: index, owner: owner)
        let started = Date()
        log("job \(array):\(index) attempt \(attempt): \(job.quanta.count) quanta on \(hostName())")
        var records: [QuantumRecord] = []
        var failureClass: FailureClass?
        var upstream = Upstream(dir: dir, array: array, index: index)
        if let first = job.quanta.first, job.tasks[first.task]?.executor == .lsst {
            // LSST quanta: one pipetask run-qbb process for the whole job, then every output checked.
            let r = LSSTJob(runner: self, job: job, attempt: attempt).run(upstream: &upstream, log: log)
            records = r.records
            failureClass = r.failureClass
        }
        // What an earlier attempt of this job made and left intact is kept, not made again
        // (`pipetask run --skip-existing`): the merge may have registered it already.
        let kept = previous?.intactQuanta(root: job.meta.datastoreRoot) ?? [:]
        for (k, q) in job.quanta.enumerated() where records.count < job.quanta.count {
            if let sig = ChildSupervisor.terminatedBy {
                // Told to stop (SLURM's SIGTERM before its SIGKILL): what is left does not start.
                failureClass = failureClass ?? .terminated
                records.append(QuantumRecord(notRun: q.id, task: q.task, dataID: q.dataID, status: .failed,
                                             reason: "not started: the job received signal \(sig) (time limit, scancel or preemption)"))
                continue
            }
            var record: QuantumRecord
            if let earlier = kept[q.id.lowercased] {
                record = earlier
                record.reason = "kept from attempt \(previous!.attempt): its outputs are intact"
                record.seconds = 0
            } else {
                switch upstream.verdict(for: q) {
                case .blocked(let blocker):
                    // FAILED_DEP: not run, no log, nothing written.
                    record = blocker.record(q)
                case .run:
                    // Inputs whose producer had no work are simply not there. pipe_base's rule, with a
                    // dataset type read several times standing for a `multiple` connection: the task
                    // runs on those that were made; a type with none made means no work.
                    let absent = Set(upstream.notProduced(q).map(\.id))
                    let present = q.inputs.filter { !absent.contains($0.id) }
                    if let lost = q.inputs.first(where: { i in absent.contains(i.id) && !present.contains { $0.type == i.type } }) {
                        record = QuantumRecord(notRun: q.id, task: q.task, dataID: q.dataID, status: .noWork,
                                               reason: "no work: no \(lost.type) was made (\(lost.producer.map { "\($0.task) {\($0.dataID)}" } ?? "its producer") ended with no work)")
                    } else {
                        var runnable = q
                        runnable.inputs = present
                        let (r, cls) = runQuantum(runnable, job: job, attempt: attempt)
                        record = r
                        if failureClass == nil { failureClass = cls }
                    }
                }
            }
            upstream.record(record)
            log("[\(k + 1)/\(job.quanta.count)] \(q.task) {\(q.dataID)}: \(record.status.rawValue)\(record.reason.map { " — \($0)" } ?? "") (\(String(format: "%.2f", record.seconds)) s)")
            records.append(record)
        }
        // The job succeeded when every quantum did or had no work (as pipetask counts).
        let status: QuantumStatus = records.contains { $0.status == .failed } ? .failed
            : records.contains { $0.status == .blocked } ? .blocked : .succeeded
        let culprit = records.first { $0.status == .failed } ?? records.first { $0.status == .blocked }
        let ended = Date()
        var manifest = Manifest(submission: job.meta.submission, array: array, index: index, attempt: attempt, status: status,
                                firstError: culprit.map { "\($0.task): \($0.reason ?? $0.status.rawValue)" },
                                startedAt: Timestamp.iso8601(started), endedAt: Timestamp.iso8601(ended),
                                seconds: ended.timeIntervalSince(started), host: hostName(),
                                slurmJobID: environment["SLURM_JOB_ID"], slurmArrayJobID: environment["SLURM_ARRAY_JOB_ID"],
                                maxRSSKB: maxRSS(), quanta: records, failureClass: failureClass, memoryLimitMB: memoryLimitMB)
        let total = ProcessUsage.now()
        manifest.cpuSeconds = total.cpuSeconds
        manifest.readBytes = total.readBytes
        manifest.writtenBytes = total.writtenBytes
        try manifest.write(in: dir)
        if environment["QUANTA_TIMINGS"] == "1" {
            // What the benchmarks read: the job's own costs, apart from process start-up.
            let ms = { (s: Double) in String(format: "%.2f ms", s * 1000) }
            let quantaSeconds = records.reduce(0) { $0 + $1.seconds }
            StandardStreams.error("timings: snapshot lookup \(ms(lookupSeconds)), producers' manifests \(ms(upstream.readSeconds)) (\(upstream.manifestsRead) read), quanta \(ms(quantaSeconds)), manifest \(ms(Date().timeIntervalSince(ended)))\n")
        }
        return .ran(manifest)
    }

    /// One quantum, timed and measured; the failure class is set when the job itself was stopped
    /// (memory, signal).
    func runQuantum(_ q: QuantumSpec, job: JobSpec, attempt: Int) -> (QuantumRecord, FailureClass?) {
        let start = Date()
        let before = ProcessUsage.now()
        var failureClass: FailureClass?
        var record = execute(q, job: job, attempt: attempt, start: start, failureClass: &failureClass)
        record.seconds = Date().timeIntervalSince(start)
        let after = ProcessUsage.now(), used = after - before
        record.startedAt = Timestamp.iso8601(start)
        record.cpuSeconds = used.cpuSeconds
        record.readBytes = used.readBytes
        record.writtenBytes = used.writtenBytes
        // A command's tree was measured by its supervisor; a built-in task ran in this process.
        if record.peakRSSKB == nil { record.peakRSSKB = after.selfPeakKB }
        return (record, failureClass)
    }

    private func execute(_ q: QuantumSpec, job: JobSpec, attempt: Int, start: Date,
                         failureClass: inout FailureClass?) -> QuantumRecord {
        let logPath = dir.quantumLog(task: q.task, quantum: q.id, dataID: q.dataID, attempt: attempt)
        var record = QuantumRecord(id: q.id.lowercased, task: q.task, dataID: q.dataID.json, status: .blocked, reason: nil,
                                   seconds: 0, log: logPath, outputs: [])
        let root = job.meta.datastoreRoot
        for input in q.inputs {
            let path = root + "/" + input.path
            // Its producer succeeded (Upstream said so), yet the file is gone: removed since, or a
            // snapshot from before producers were recorded.
            if !FileManager.default.fileExists(atPath: path) {
                record.reason = "missing input \(input.type) {\(input.dataID)} (\(path)); \(input.producer == nil ? "its producer failed or did not run" : "it was made, then removed")"
                record.log = nil
                return record
            }
        }
        guard let execution = job.tasks[q.task] else {
            record.status = .failed
            record.reason = "the snapshot has no execution settings for task '\(q.task)'"
            return record
        }
        // One temporary name per output, the same for every attempt: an attempt killed outright
        // leaves it behind, and the next attempt of the job removes it before it starts.
        let outputs = q.outputs.map { o -> (spec: DatasetSpec, final: String, tmp: String) in
            let final = root + "/" + o.path
            let url = URL(fileURLWithPath: final)
            return (o, final, url.deletingLastPathComponent().path + "/." + url.lastPathComponent + ".tmp-quanta")
        }
        let logFile = LogFile(path: logPath)
        logFile.write("# quantum \(q.id.lowercased) \(q.task) {\(q.dataID)} attempt \(attempt) on \(hostName()) at \(Timestamp.iso8601(start))\n")
        do {
            for o in outputs {
                try FileManager.default.createDirectory(atPath: URL(fileURLWithPath: o.final).deletingLastPathComponent().path,
                                                        withIntermediateDirectories: true)
                unlink(o.tmp)
            }
            let inputs = q.inputs.map { (type: $0.type, path: root + "/" + $0.path) }
            let tmpOutputs = outputs.map { (type: $0.spec.type, path: $0.tmp) }
            switch execution.executor {
            case .command:
                let template = try CommandTemplate(execution.command ?? "")
                let line = template.render(task: q.task, dataID: q.dataID, inputs: inputs, outputs: tmpOutputs)
                logFile.write("# command: \(line)\n")
                var env = environment
                env["QUANTA_QUANTUM_ID"] = q.id.lowercased
                env["QUANTA_TASK"] = q.task
                env["QUANTA_DATA_ID"] = q.dataID.json
                // A command that finds nothing to do writes its reason here and exits 0 (pipe_base's NoWorkFound).
                let noWorkFile = logPath + ".no-work"
                unlink(noWorkFile)
                env["QUANTA_NO_WORK"] = noWorkFile
                var o = Spawn.Options()
                o.stdoutPath = logPath
                o.stderrPath = logPath
                let r = try ChildSupervisor.run("/bin/sh", ["-c", line], environment: env, options: o,
                                                memoryLimitMB: memoryLimitMB)
                record.peakRSSKB = r.peakTreeKB
                if let oom = r.outOfMemory {
                    failureClass = .outOfMemory
                    logFile.write("# out of memory: \(oom.usedMB) MB in use, the job's limit is \(oom.limitMB) MB; killed\n")
                    throw QuantaError(.execution, "out of memory: \(oom.usedMB) MB in use, the job's limit is \(oom.limitMB) MB")
                }
                if let sig = r.terminatedBy {
                    failureClass = .terminated
                    logFile.write("# terminated: run-quantum received signal \(sig); the command was stopped (\(r.status))\n")
                    throw QuantaError(.execution, "terminated by signal \(sig) (time limit, scancel or preemption); the command ended with \(r.status)")
                }
                guard r.status.succeeded else {
                    if case .exited(let c) = r.status { record.exitCode = Int(c) }
                    throw QuantaError(.execution, "\(r.status)\(firstErrorLine(logPath).map { ": \($0)" } ?? "")")
                }
                if let said = try? String(contentsOfFile: noWorkFile, encoding: .utf8) {
                    unlink(noWorkFile)
                    throw NoWork(reason: said.split(separator: "\n").first.map(String.init) ?? "")
                }
            case .builtin:
                try BuiltinTasks.run(execution.builtin ?? "", dataID: q.dataID,
                                     inputs: Dictionary(grouping: inputs, by: \.type).mapValues { $0.map(\.path) },
                                     outputs: Dictionary(grouping: tmpOutputs, by: \.type).mapValues { $0.map(\.path) },
                                     log: { logFile.write($0 + "\n") })
            case .lsst:
                throw QuantaError(.execution, "an LSST quantum reached the per-quantum executor; LSST jobs run through run_job.py")
            }
            for o in outputs {
                guard FileManager.default.fileExists(atPath: o.tmp) else {
                    throw QuantaError(.execution, "no output \(o.spec.type) {\(o.spec.dataID)}: the task exited 0 but did not write \(o.tmp)")
                }
            }
            // Data, not exit codes: every FITS output reads to its end within its type's limits.
            let rejectDir = dir.rejected(array: array, index: index, attempt: attempt)
            for o in outputs {
                if let summary = try OutputValidation.check(file: o.tmp, shownAs: o.final, type: o.spec.type, dataID: o.spec.dataID,
                                                            config: job.meta.validation, rejectDir: rejectDir) {
                    logFile.write("# \(summary)\n")
                }
            }
            for o in outputs {
                guard rename(o.tmp, o.final) == 0 else {
                    throw QuantaError(.io, "cannot rename \(o.tmp) to \(o.final): \(String(cString: strerror(errno)))")
                }
                let (size, crc) = try CRC32.file(o.final)
                record.outputs.append(OutputRecord(id: o.spec.id.lowercased, type: o.spec.type, dataID: o.spec.dataID.json,
                                                   run: o.spec.run, path: o.spec.path, size: size, checksum: CRC32.text(crc)))
            }
            record.status = .succeeded
        } catch let noWork as NoWork {
            // Nothing it wrote is kept: downstream quanta see these outputs as not made.
            for o in outputs { unlink(o.tmp) }
            record.outputs = []
            record.status = .noWork
            record.reason = "no work\(noWork.reason.isEmpty ? "" : ": \(noWork.reason)")"
            logFile.write("# no work: \(noWork.reason)\n")
        } catch {
            for o in outputs { unlink(o.tmp) }
            record.outputs = []
            record.status = .failed
            record.reason = "\(error)"
            logFile.write("# failed: \(error)\n")
        }
        return record
    }
}

/// A command said it had nothing to do (wrote `$QUANTA_NO_WORK` and exited 0).
struct NoWork: Error { let reason: String }

/// Appends to a quantum's log, creating its directory on first use.
final class LogFile: @unchecked Sendable {
    let path: String
    init(path: String) {
        self.path = path
        try? FileManager.default.createDirectory(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path,
                                                 withIntermediateDirectories: true)
    }
    func write(_ text: String) { AtomicFile.append(text, to: path) }
}

/// The first line that looks like an error, else the last line (what a person wants in `status`).
func firstErrorLine(_ path: String) -> String? {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
    let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && !$0.hasPrefix("# ") }
    let markers = ["error", "fatal", "exception", "traceback", "failed", "no such file"]
    let hit = lines.first { l in markers.contains { l.lowercased().contains($0) } } ?? lines.last
    return hit.map { $0.count > 300 ? String($0.prefix(300)) + "…" : $0 }
}

func hostName() -> String {
    var buf = [CChar](repeating: 0, count: 256)
    gethostname(&buf, 255)
    return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// What this process and the children it has waited for used so far (getrusage).
struct ProcessUsage {
    var cpuSeconds: Double
    var readBytes: Int64
    var writtenBytes: Int64
    /// This process's own peak resident size (KB).
    var selfPeakKB: Int

    static func now() -> ProcessUsage {
        var me = rusage(), children = rusage()
        getrusage(RUSAGE_SELF.rawValue, &me)
        getrusage(RUSAGE_CHILDREN.rawValue, &children)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return ProcessUsage(cpuSeconds: seconds(me.ru_utime) + seconds(me.ru_stime) + seconds(children.ru_utime) + seconds(children.ru_stime),
                            readBytes: Int64(me.ru_inblock + children.ru_inblock) * 512,
                            writtenBytes: Int64(me.ru_oublock + children.ru_oublock) * 512,
                            selfPeakKB: me.ru_maxrss)
    }

    static func - (a: ProcessUsage, b: ProcessUsage) -> ProcessUsage {
        ProcessUsage(cpuSeconds: max(0, a.cpuSeconds - b.cpuSeconds), readBytes: max(0, a.readBytes - b.readBytes),
                     writtenBytes: max(0, a.writtenBytes - b.writtenBytes), selfPeakKB: a.selfPeakKB)
    }
}

func maxRSS() -> Int {
    var selfUsage = rusage(), children = rusage()
    getrusage(RUSAGE_SELF.rawValue, &selfUsage)
    getrusage(RUSAGE_CHILDREN.rawValue, &children)
    return max(selfUsage.ru_maxrss, children.ru_maxrss)
}
