import Foundation
import QuantaCore

/// `quanta tune` and `quanta plan --learn-from`: per task label (or cluster), requests from what
/// earlier runs used. Memory: a high percentile of the successful attempts' peaks × a margin, and
/// never below what an out-of-memory attempt proved too little (its limit × 1.5); CPUs: the
/// percentile of CPU time over wall time, rounded up; walltime: the percentile of wall time × 2,
/// at least 5 minutes. Rounded up to 64 MB and whole minutes.
public enum RequestLearner {
    public struct Options: Sendable {
        public var percentile = 0.95
        public var margin = 1.2
        public init() {}
    }

    public static func learn(_ runs: [RunMeasures], options: Options = Options()) -> [LearnedRequest] {
        var order: [String] = []
        var byLabel: [String: [RunMeasures.Attempt]] = [:]
        for r in runs {
            for a in r.attempts {
                if byLabel[a.label] == nil { order.append(a.label) }
                byLabel[a.label, default: []].append(a)
            }
        }
        return order.compactMap { label in
            let all = byLabel[label]!
            let good = all.filter { $0.state == "succeeded" }
            let ooms = all.filter { $0.failureClass == FailureClass.outOfMemory.rawValue }
            guard !good.isEmpty || !ooms.isEmpty else { return nil }
            func pct(_ v: [Double]) -> Double? {
                guard !v.isEmpty else { return nil }
                let s = v.sorted()
                return s[min(s.count - 1, Int((Double(s.count - 1) * options.percentile).rounded(.up)))]
            }
            let peak = pct(good.map(\.peakMB)) ?? 0
            let oomLimit = ooms.map(\.requestMemoryMB).max() ?? 0
            var memory = max(peak * options.margin, Double(oomLimit) * 1.5)
            memory = max(128, (memory / 64).rounded(.up) * 64)
            let ratio = pct(good.compactMap { a in a.cpuSeconds.map { $0 / max(0.001, a.wallSeconds) } }) ?? 1
            let cpus = max(1, Int((ratio - 0.15).rounded(.up)))
            let wall = pct(good.map(\.wallSeconds)).map { max(300, Int(($0 * 2 / 60).rounded(.up)) * 60) }
            let p = Int((options.percentile * 100).rounded())
            var why = "p\(p) of \(good.count) successful attempts' peaks (\(String(format: "%.0f", peak)) MB) × \(options.margin)"
            if !ooms.isEmpty { why += "; \(ooms.count) out-of-memory attempts, at most \(Units.memory(oomLimit))" }
            if let was = all.filter({ $0.attempt == 1 }).map(\.requestMemoryMB).max() { why += "; was \(Units.memory(was))" }
            return LearnedRequest(label: label, memoryMB: Int(memory), cpus: cpus, walltime: wall, why: why)
        }
    }

    /// The learned requests as bps keys, for `includeConfigs`.
    public static func yaml(_ learned: [LearnedRequest], clusters: Set<String>, sources: [String], options: Options) -> String {
        var out = "# Requests learned by 'quanta tune' from \(sources.joined(separator: ", "))\n"
        out += "# (p\(Int((options.percentile * 100).rounded())) × \(options.margin) of measured use). Include it in a submit config:\n"
        out += "#   includeConfigs: [this file]\n"
        func entry(_ l: LearnedRequest) -> String {
            "  \(l.label): {requestMemory: \(l.memoryMB), requestCpus: \(l.cpus)\(l.walltime.map { ", requestWalltime: \"\(Units.slurmTime($0))\"" } ?? "")}   # \(l.why)\n"
        }
        let tasks = learned.filter { !clusters.contains($0.label) }, grouped = learned.filter { clusters.contains($0.label) }
        if !tasks.isEmpty { out += "pipetask:\n" + tasks.map(entry).joined() }
        if !grouped.isEmpty { out += "cluster:\n" + grouped.map(entry).joined() }
        return out
    }
}
