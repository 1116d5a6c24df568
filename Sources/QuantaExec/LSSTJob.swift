#if canImport(Glibc)
import Glibc
#endif
import Foundation
import QuantaButler
import QuantaCore

/// One job of an LSST graph: `python/quanta_lsst/run_job.py` runs `pipetask run-qbb` once for all
/// the job's quanta (start-up costs ~1.6 s, so never once per quantum), then reports, for every
/// quantum, whether each predicted output exists — run-qbb exits 0 even when nothing was written.
struct LSSTJob {
    let runner: JobRunner
    let job: JobSpec
    let attempt: Int

    struct Result {
        var records: [QuantumRecord]
        var failureClass: FailureClass?
    }

    func run(upstream: inout Upstream, log: (String) -> Void) -> Result {
        let dir = runner.dir
        let file = { dir.lsstJobFile(array: runner.array, index: runner.index, attempt: attempt, suffix: $0) }
        let reportPath = file("report.json"), logPath = file("log")
        // FAILED_DEP first, as pipetask decides it: a quantum whose producer (in an earlier job, or
        // one of this job's own quanta already held back) failed, was blocked or never ran is not
        // handed to run-qbb at all — run-qbb would run it on what inputs are left, or write its
        // metadata and later skip it as "already successful".
        var held: [String: QuantumRecord] = [:]
        for q in job.quanta {
            if case .blocked(let blocker) = upstream.verdict(for: q) {
                let r = blocker.record(q)
                held[r.id] = r
                upstream.record(r)
            }
        }
        let runnable = job.quanta.filter { held[$0.id.lowercased] == nil }
        if runnable.isEmpty {
            log("every quantum of this job is blocked upstream; run-qbb not started")
            return Result(records: job.quanta.map { held[$0.id.lowercased]! }, failureClass: nil)
        }
        try? FileManager.default.createDirectory(atPath: (reportPath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        unlink(reportPath)
        let driver = job.tasks[job.quanta[0].task]?.command ?? ""
        let ids = runnable.map(\.id.lowercased).joined(separator: ",")
        // python3 is the site environment's (the sbatch script's set-up lines ran before us).
        let args = ["-c", "exec python3 \"$@\"", "python3", driver, job.meta.repo, job.meta.graph, "--ids", ids,
                    "--report", reportPath, "--summary", file("summary.json"), "--init-marker", dir.lsstInitMarker]
        var o = Spawn.Options()
        o.stdoutPath = logPath
        o.stderrPath = logPath
        let started = Date()
        log("pipetask run-qbb for \(runnable.count) quanta\(held.isEmpty ? "" : " (\(held.count) blocked upstream, not run)") (log \(logPath))")
        func all(_ status: QuantumStatus, _ reason: String) -> [QuantumRecord] {
            job.quanta.map { q in
                held[q.id.lowercased] ?? QuantumRecord(id: q.id.lowercased, task: q.task, dataID: q.dataID.json, status: status,
                                                       reason: reason, seconds: 0, log: logPath, outputs: [])
            }
        }
        let outcome: ChildSupervisor.Result
        do {
            outcome = try ChildSupervisor.run("/bin/sh", args, environment: runner.environment, options: o,
                                              memoryLimitMB: runner.memoryLimitMB)
        } catch {
            return Result(records: all(.failed, "\(error)"), failureClass: nil)
        }
        let seconds = Date().timeIntervalSince(started)
        if let oom = outcome.outOfMemory {
            return Result(records: all(.failed, "out of memory: \(oom.usedMB) MB in use, the job's limit is \(oom.limitMB) MB"),
                          failureClass: .outOfMemory)
        }
        if let sig = outcome.terminatedBy {
            return Result(records: all(.failed, "terminated by signal \(sig) (time limit, scancel or preemption)"), failureClass: .terminated)
        }
        guard let data = FileManager.default.contents(atPath: reportPath),
              let report = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            let why = firstErrorLine(logPath) ?? "\(outcome.status)"
            return Result(records: all(.failed, "the LSST driver wrote no report (\(outcome.status)): \(why)"), failureClass: nil)
        }
        if let e = report["initError"] as? String {
            return Result(records: all(.failed, "pre-exec-init-qbb failed: \(e)"), failureClass: nil)
        }
        let quanta = report["quanta"] as? [String: Any] ?? [:]
        let runError = report["runQbbError"] as? String
        let share = seconds / Double(max(1, runnable.count))
        var records: [QuantumRecord] = []
        for q in job.quanta {
            let id = q.id.lowercased
            if let r = held[id] {
                records.append(r)
                continue
            }
            var record = QuantumRecord(id: id, task: q.task, dataID: q.dataID.json, status: .failed, reason: nil,
                                       seconds: share, log: logPath, outputs: [])
            defer { upstream.record(record); records.append(record) }
            guard let rep = quanta[id] as? [String: Any] else {
                record.reason = (report["checkError"] as? String).map { "could not check outputs: \($0)" } ?? "no report for this quantum"
                continue
            }
            let outputs = rep["outputs"] as? [[String: Any]] ?? []
            let present = outputs.filter { ($0["exists"] as? Bool) == true }
            // pipe_base's definition of success: the quantum's metadata was written.
            let metadata = "\(q.task)_metadata"
            let succeeded = present.contains { $0["type"] as? String == metadata }
            let summary = rep["summary"] as? [String: Any]
            if !succeeded, let blocker = upstream.verdict(for: q).blocker {
                // An in-job producer failed: run-qbb held this one back (FAILED_DEP).
                record.status = .blocked
                record.reason = blocker.why
                record.blockedByTask = blocker.rootTask
                record.blockedByReason = blocker.rootReason
                record.log = nil
                continue
            }
            // What it wrote is recorded either way: a failed quantum's log is a dataset too.
            let specs = Dictionary(q.outputs.map { ($0.id.lowercased, $0) }, uniquingKeysWith: { a, _ in a })
            do {
                for out in present {
                    let oid = out["id"] as? String ?? ""
                    let path = out["path"] as? String ?? ""
                    let (size, crc) = try CRC32.file(job.meta.datastoreRoot + "/" + path)
                    let spec = specs[oid]
                    record.outputs.append(OutputRecord(id: oid, type: out["type"] as? String ?? spec?.type ?? "",
                                                       dataID: spec?.dataID.json ?? "[]", run: spec?.run ?? job.meta.outputRun,
                                                       path: path, size: size, checksum: CRC32.text(crc)))
                }
            } catch {
                record.outputs = []
                record.reason = "\(error)"
                continue
            }
            if succeeded {
                let bookkeeping: Set<String> = [metadata, "\(q.task)_log"]
                let data = outputs.filter { !bookkeeping.contains($0["type"] as? String ?? "") }
                let made = data.filter { ($0["exists"] as? Bool) == true }
                if !data.isEmpty && made.isEmpty {
                    // NoWorkFound (raised by the task, or its inputs were not there): a success without data.
                    record.status = .noWork
                    record.reason = "no work" + (Self.exception(summary).map { ": \($0)" } ?? "")
                } else {
                    record.status = .succeeded
                    if made.count < data.count {
                        let missing = data.filter { ($0["exists"] as? Bool) != true }.compactMap { $0["type"] as? String }
                        record.reason = "succeeded without \(missing.joined(separator: ", ")) (the task did not write them)"
                    }
                }
            } else {
                let status = summary?["status"] as? String
                var why = Self.exception(summary) ?? lsstErrorLine(logPath, task: q.task) ?? runError
                    ?? "run-qbb \(status.map { "reported \($0)" } ?? "exited \(report["runQbbExit"] ?? "?")") and wrote no \(metadata)"
                if why.count > 300 { why = String(why.prefix(300)) + "…" }
                record.reason = why
                // The exit code run-qbb had (a quantum that raises makes it exit 1), unless the summary has the quantum's own.
                record.exitCode = summary?["exitCode"] as? Int ?? report["runQbbExit"] as? Int
            }
        }
        return Result(records: validate(records, log: log), failureClass: nil)
    }

    /// "ValueError: message" from a summary entry's exception information, when it has one.
    static func exception(_ summary: [String: Any]?) -> String? {
        guard let info = summary?["exceptionInfo"] as? [String: Any] else { return nil }
        let cls = (info["className"] as? String).map { $0.split(separator: ".").last.map(String.init) ?? $0 }
        let message = info["message"] as? String
        switch (cls, message) {
        case let (c?, m?): return "\(c): \(m)"
        case let (c?, nil): return c
        case let (nil, m?): return m
        default: return nil
        }
    }

    /// run-qbb has already put outputs in place: a FITS output that fails its checks is moved aside
    /// (the merge must not register it) and fails its quantum; quanta of this job that read it are
    /// blocked and their outputs moved aside too. Quanta are in run order, so one pass suffices.
    func validate(_ records: [QuantumRecord], log: (String) -> Void) -> [QuantumRecord] {
        var out = records
        var rejected: [String: String] = [:]  // dataset id → why
        let rejectDir = runner.dir.rejected(array: runner.array, index: runner.index, attempt: attempt)
        let root = job.meta.datastoreRoot
        for (k, q) in job.quanta.enumerated() where out[k].status.isSuccess {
            if let bad = q.inputs.first(where: { rejected[$0.id.lowercased] != nil }) {
                let notes = out[k].outputs.map { OutputValidation.reject(root + "/" + $0.path, into: rejectDir) }
                out[k].status = .blocked
                out[k].reason = "input \(bad.type) {\(bad.dataID)} failed its checks (\(rejected[bad.id.lowercased]!)); outputs set aside: \(notes.joined(separator: "; "))"
                out[k].outputs.forEach { rejected[$0.id] = "its input failed its checks" }
                out[k].outputs = []
                continue
            }
            do {
                for o in out[k].outputs {
                    let path = root + "/" + o.path
                    let spec = q.outputs.first { $0.id.lowercased == o.id }
                    if let summary = try OutputValidation.check(file: path, shownAs: path, type: o.type, dataID: spec?.dataID ?? .empty,
                                                                config: job.meta.validation, rejectDir: rejectDir) {
                        log(summary)
                    }
                }
            } catch {
                // The checked file is already aside; the quantum's other outputs go too (a quantum is all or nothing).
                for o in out[k].outputs where FileManager.default.fileExists(atPath: root + "/" + o.path) {
                    _ = OutputValidation.reject(root + "/" + o.path, into: rejectDir)
                }
                out[k].outputs.forEach { rejected[$0.id] = "\(error)" }
                out[k].status = .failed
                out[k].reason = "\(error)"
                out[k].outputs = []
            }
        }
        return out
    }

    /// The first line of the LSST log that reports an error, preferring one naming the task.
    func lsstErrorLine(_ path: String, task: String) -> String? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        let lines = text.split(separator: "\n").map(String.init)
        let errors = lines.filter { $0.contains(" ERROR") || $0.contains("Error:") || $0.contains("Exception") || $0.hasPrefix("ValueError") }
        let hit = errors.first { $0.contains("'\(task)'") } ?? errors.first
        return hit.map { $0.count > 300 ? String($0.prefix(300)) + "…" : $0 }
    }
}
