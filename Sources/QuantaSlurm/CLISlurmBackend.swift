import Foundation
import QuantaCore

/// SLURM through its commands (`sbatch`, `scontrol`, `scancel`): the fallback when libslurm is
/// absent or built for another SLURM version than the controller's.
public struct CLISlurmBackend: SlurmBackend {
    public let kind = SlurmBackendKind.cli
    let sbatch: String
    let scontrol: String
    let scancel: String

    public init() throws {
        var found: [String] = []
        for tool in ["sbatch", "scontrol", "scancel"] {
            guard let p = Spawn.which(tool) else {
                throw QuantaError(.scheduler, "\(tool) is not on PATH; install slurm-client (Debian) or load the site's SLURM module")
            }
            found.append(p)
        }
        sbatch = found[0]
        scontrol = found[1]
        scancel = found[2]
    }

    public var description: String { "sbatch/scontrol/scancel CLI" }

    private func call(_ tool: String, _ args: [String], doing: String, environment: [String: String]? = nil) throws -> String {
        let r = try Spawn.capture(tool, args, environment: environment ?? ProcessInfo.processInfo.environment)
        guard r.status.succeeded else {
            let lines = r.stderr.split(separator: "\n").map { String($0) }
            let msg = lines.last { $0.contains("error") } ?? lines.last ?? "\(r.status)"
            throw SlurmError(doing, msg.replacingOccurrences(of: "sbatch: error: ", with: "")
                .replacingOccurrences(of: "scontrol: error: ", with: ""), code: r.status.code)
        }
        return r.stdout
    }

    public func controllerConfig() throws -> SlurmControllerConfig {
        let text = try call(scontrol, ["show", "config"], doing: "reading the controller's configuration")
        var kv: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            kv[line[..<eq].trimmingCharacters(in: .whitespaces)] = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
        }
        func int(_ k: String) -> Int { Int((kv[k] ?? "").split(separator: " ").first ?? "") ?? 0 }
        return SlurmControllerConfig(version: kv["SLURM_VERSION"] ?? "unknown", maxArraySize: int("MaxArraySize"),
                                     maxJobCount: int("MaxJobCount"), minJobAge: int("MinJobAge"),
                                     clusterName: kv["ClusterName"] ?? "")
    }

    /// The sbatch arguments for a submission (options on the command line win over `#SBATCH` lines).
    public static func arguments(_ s: SlurmSubmission) -> [String] {
        // The request's options are the very ones its script's #SBATCH lines hold.
        var a = ["--parsable"] + s.request.sbatchOptions(stdout: s.stdout, stderr: s.stderr) + ["--chdir=\(s.workDir)"]
        if let v = s.array { a.append("--array=\(v)") }
        if let v = s.dependency {
            a.append("--dependency=\(v)")
            if s.killOnInvalidDependency { a.append("--kill-on-invalid-dep=yes") }
        }
        return a + [s.script]
    }

    public func submit(_ s: SlurmSubmission) throws -> UInt32 {
        let env = SlurmEnvironment.forSubmission(s.environment)
        let out = try call(sbatch, Self.arguments(s), doing: "submitting \(s.name)\(s.array.map { " (array \($0))" } ?? "")", environment: env)
        let first = out.split(separator: "\n").last.map(String.init) ?? ""
        guard let id = UInt32(first.split(separator: ";").first ?? "") else {
            throw SlurmError("submitting \(s.name)", "sbatch printed no job id ('\(out.trimmingCharacters(in: .whitespacesAndNewlines))')")
        }
        return id
    }

    public func jobs(_ filter: SlurmJobFilter) throws -> [SlurmJobRecord] {
        // One call for every job the controller knows, filtered here (one RPC, like slurm_load_jobs).
        let text = try call(scontrol, ["-o", "show", "job"], doing: "reading job states")
        var out: [SlurmJobRecord] = []
        for line in text.split(separator: "\n") where line.hasPrefix("JobId=") {
            let f = Self.fields(line)
            guard let jobID = f["JobId"].flatMap({ UInt32($0) }) else { continue }
            let arrayID = f["ArrayJobId"].flatMap { UInt32($0) } ?? jobID
            guard filter.keeps(arrayJobID: arrayID, jobID: jobID, workDir: { f["WorkDir"] }) else { continue }
            let tasks = f["ArrayTaskId"].map(ArrayIndices.parse) ?? []
            let ec = (f["ExitCode"] ?? "0:0").split(separator: ":").map { Int($0) ?? 0 }
            out.append(SlurmJobRecord(
                arrayJobID: arrayID, jobID: jobID, taskIDs: tasks, state: SlurmJobState(text: f["JobState"] ?? ""),
                reason: f["Reason"] ?? "", exitCode: ec.first ?? 0, signal: ec.count > 1 ? ec[1] : 0,
                stderrPath: f["StdErr"], memoryMB: f["MinMemoryNode"].flatMap { Units.megabytes($0) },
                startTime: Self.time(f["StartTime"]), endTime: Self.time(f["EndTime"]), name: filter.wantsIdentity ? f["JobName"] : nil, workDir: filter.wantsIdentity ? f["WorkDir"] : nil))
        }
        return out
    }

    public func cancel(_ ids: [String]) throws {
        guard !ids.isEmpty else { return }
        let r = try Spawn.capture(scancel, ids)
        let errors = r.stderr.split(separator: "\n").filter { !$0.contains("already completing or completed") && !$0.contains("Invalid job id") }
        if !r.status.succeeded && !errors.isEmpty {
            throw SlurmError("cancelling", errors.map { String($0).replacingOccurrences(of: "scancel: error: ", with: "") }.joined(separator: "; "))
        }
    }

    public func partitions() throws -> [SlurmPartitionInfo] {
        let text = try call(scontrol, ["-o", "show", "partition"], doing: "reading partitions")
        return text.split(separator: "\n").filter { $0.hasPrefix("PartitionName=") }.map { line in
            let f = Self.fields(line)
            let mt = f["MaxTime"] ?? "UNLIMITED"
            return SlurmPartitionInfo(name: f["PartitionName"] ?? "",
                                      maxTimeMinutes: mt == "UNLIMITED" ? nil : Units.seconds(mt).map { $0 / 60 },
                                      isDefault: f["Default"] == "YES", up: f["State"] == "UP")
        }
    }

    public func nodes() throws -> [SlurmNodeInfo] {
        let text = try call(scontrol, ["-o", "show", "node"], doing: "reading nodes")
        return text.split(separator: "\n").filter { $0.hasPrefix("NodeName=") }.map { line in
            let f = Self.fields(line)
            return SlurmNodeInfo(name: f["NodeName"] ?? "", cpus: Int(f["CPUTot"] ?? "") ?? 0,
                                 memoryMB: Int(f["RealMemory"] ?? "") ?? 0, state: (f["State"] ?? "").lowercased(),
                                 partitions: (f["Partitions"] ?? "").split(separator: ",").map(String.init))
        }
    }

    /// `Key=value Key2=value two` → dictionary; a word without `=` continues the previous value.
    static func fields(_ line: Substring) -> [String: String] {
        var out: [String: String] = [:]
        var last: String?
        for word in line.split(separator: " ") {
            if let eq = word.firstIndex(of: "="), word[..<eq].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == ":" }) {
                let k = String(word[..<eq])
                out[k] = String(word[word.index(after: eq)...])
                last = k
            } else if let k = last {
                out[k, default: ""] += " " + word
            }
        }
        return out
    }

    static func time(_ s: String?) -> Int? {
        guard let s, s != "Unknown", s != "None" else { return nil }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.dateFormat = "yyyy-MM-dd'T'HH:mm:ss"
        return f.date(from: s).map { Int($0.timeIntervalSince1970) }
    }
}
