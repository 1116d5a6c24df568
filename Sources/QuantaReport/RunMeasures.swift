import Foundation
import QuantaButler
import QuantaCore
import QuantaScheduler

/// What a submission's jobs did, gathered for `quanta report` (and `quanta tune`): every attempt of
/// every job with its request and what run-quantum measured, the quanta's states by data ID, the
/// status with its failure groups, and what could not be read. Reads only; writes nothing.
public struct RunMeasures: Sendable {
    /// One attempt of one job.
    public struct Attempt: Sendable, Codable {
        public var label: String
        public var array: String
        public var index: Int
        public var attempt: Int
        public var state: String
        public var host: String
        public var start: Date?
        public var end: Date?
        public var wallSeconds: Double
        public var cpuSeconds: Double?
        public var peakMB: Double
        public var readMB: Double?
        public var writtenMB: Double?
        public var requestMemoryMB: Int
        public var requestCpus: Int
        public var requestWalltime: Int?
        /// Seconds between the SLURM round that queued it and its start (nil: not on SLURM).
        public var queueSeconds: Double?
        public var failureClass: String?
        public var quanta: Int
    }

    /// A quantum's state by its data ID (for the map).
    public struct QuantumState: Sendable {
        public var task: String
        public var dataID: DataID
        public var state: String
    }

    public var dir: SubmitDirectory
    public var plan: PlanDocument
    public var status: SubmissionStatus
    public var attempts: [Attempt] = []
    public var quanta: [QuantumState] = []
    /// Jobs whose manifests could not be read, with why.
    public var problems: [String] = []
    /// The SLURM rounds' submission times, when on SLURM.
    public var rounds: [(number: Int, at: Date)] = []
    /// What SLURM's accounting says of the submission's jobs (states counted), or why it cannot.
    public var accounting: String?
    /// Where each (exposure or visit)/detector lands on the sky: four corners (RA, Dec), when the
    /// repository knows (`RawFootprints` for Quanta repositories); keyed `exposure/detector`.
    public var footprints: [String: [(ra: Double, dec: Double)]] = [:]

    public static func collect(_ dir: SubmitDirectory) throws -> RunMeasures {
        let plan = try PlanDocument.read(dir)
        let status = try SubmissionStatus.read(dir)
        var m = RunMeasures(dir: dir, plan: plan, status: status)
        if let record = try? SlurmRecord.read(dir) {
            m.rounds = record.rounds.compactMap { r in Timestamp.parse(r.submittedAt).map { (r.number, $0) } }
            m.accounting = accounting(ids: record.allJobIDs.sorted())
        }
        for a in plan.arrays {
            for job in 0..<a.jobCount {
                for man in Manifest.attempts(in: dir, array: a.name, index: job) {
                    guard man.index == job else {
                        m.problems.append("\(a.name):\(job): \(man.firstError ?? "unreadable manifest")")
                        continue
                    }
                    let start = Timestamp.parse(man.startedAt), end = Timestamp.parse(man.endedAt)
                    // The quanta's own use when measured (the job's totals include run-quantum's start-up).
                    let measured = man.quanta.filter { $0.cpuSeconds != nil }
                    // A job none of whose quanta ran (all blocked) used nothing worth a ratio.
                    let ran = man.quanta.contains { $0.status == .succeeded || $0.status == .failed }
                    let cpu = !measured.isEmpty ? measured.reduce(0) { $0 + $1.cpuSeconds! } : ran ? man.cpuSeconds : nil
                    let read = measured.isEmpty ? man.readBytes : measured.reduce(0) { $0 + ($1.readBytes ?? 0) }
                    let written = measured.isEmpty ? man.writtenBytes : measured.reduce(0) { $0 + ($1.writtenBytes ?? 0) }
                    let queued = start.flatMap { s in m.rounds.last { $0.at <= s }.map { s.timeIntervalSince($0.at) } }
                    m.attempts.append(Attempt(
                        label: a.label, array: a.name, index: job, attempt: man.attempt, state: man.status.rawValue, host: man.host,
                        start: start, end: end, wallSeconds: man.seconds, cpuSeconds: cpu,
                        peakMB: Double(man.quanta.compactMap(\.peakRSSKB).max() ?? man.maxRSSKB) / 1024,
                        readMB: read.map { Double($0) / 1e6 }, writtenMB: written.map { Double($0) / 1e6 },
                        requestMemoryMB: man.memoryLimitMB ?? a.resources.memoryMB, requestCpus: a.resources.cpus,
                        requestWalltime: a.resources.walltime, queueSeconds: queued, failureClass: man.failureClass?.rawValue,
                        quanta: man.quanta.count))
                }
                do {
                    guard let latest = try Manifest.read(path: dir.manifest(array: a.name, index: job), outputs: false) else { continue }
                    for q in latest.quanta {
                        guard let id = try? DataID(json: q.dataID) else { continue }
                        m.quanta.append(QuantumState(task: q.task, dataID: id, state: q.status.rawValue))
                    }
                } catch {
                    m.problems.append("\(a.name):\(job): \(error)")
                }
            }
        }
        return m
    }

    /// `sacct` of the jobs: from the accounting database, else from the job completion log
    /// (`sacct -c`, where a site keeps no database), else why neither answers.
    static func accounting(ids: [UInt32]) -> String {
        guard !ids.isEmpty else { return "no SLURM job recorded" }
        guard let sacct = Spawn.which("sacct") else { return "SLURM accounting not available (no sacct here); the figures are run-quantum's own" }
        let list = ids.map(String.init).joined(separator: ",")
        var why = ""
        for (flags, source) in [([], "the accounting database"), (["-c"], "the job completion log (sacct -c)")] {
            guard let r = try? Spawn.capture(sacct, flags + ["-n", "-P", "-X", "-o", "JobID,JobName,State,Elapsed", "-j", list]) else { continue }
            let rows = r.stdout.split(separator: "\n").map { $0.split(separator: "|", omittingEmptySubsequences: false).map(String.init) }.filter { $0.count == 4 }
            if r.status.succeeded, !rows.isEmpty {
                func state(_ row: [String]) -> String { row[2].split(separator: " ").first.map(String.init) ?? row[2] }
                let states = Dictionary(grouping: rows, by: state).mapValues(\.count)
                var text = "SLURM's accounting (\(source)): " + states.keys.sorted().map { "\(states[$0]!) \($0)" }.joined(separator: ", ")
                // Jobs SLURM ended otherwise (time limit, memory, node, cancel): a manifest may not say.
                let odd = rows.filter { !["COMPLETED", "RUNNING", "PENDING"].contains(state($0)) }
                if !odd.isEmpty {
                    text += "; not completed: " + odd.prefix(10).map { "\($0[0]) \($0[1]) \(state($0)) after \($0[3])" }.joined(separator: "; ")
                        + (odd.count > 10 ? "; … \(odd.count - 10) more" : "")
                }
                return text
            }
            if why.isEmpty { why = r.stderr.split(separator: "\n").first.map(String.init) ?? "\(r.status)" }
        }
        return "SLURM accounting not available (sacct: \(why)); the figures are run-quantum's own"
    }

    /// The latest attempt of each job.
    public var latest: [Attempt] {
        var best: [String: Attempt] = [:]
        for a in attempts {
            let k = "\(a.array):\(a.index)"
            if best[k].map({ $0.attempt < a.attempt }) ?? true { best[k] = a }
        }
        return best.values.sorted { ($0.array, $0.index) < ($1.array, $1.index) }
    }

    /// Requested and used core-hours and memory-hours (GB-hours) over every attempt.
    public var totals: (coreHoursAsked: Double, coreHoursUsed: Double, memoryAsked: Double, memoryUsed: Double) {
        var t = (0.0, 0.0, 0.0, 0.0)
        for a in attempts {
            t.0 += a.wallSeconds * Double(a.requestCpus) / 3600
            t.1 += (a.cpuSeconds ?? 0) / 3600
            t.2 += a.wallSeconds * Double(a.requestMemoryMB) / 1024 / 3600
            t.3 += a.wallSeconds * a.peakMB / 1024 / 3600
        }
        return t
    }
}
