import Foundation
import QuantaCore
import QuantaScheduler

/// `quanta campaign status`: the sequence at a glance — runs, steps with their state, quanta and
/// elapsed time, groups with their submission — and the latest run's failures grouped by rule and
/// message with counts and example data IDs. `--json` encodes the same value.
public struct CampaignOverview: Encodable, Sendable {
    public struct Group: Encodable, Sendable {
        public var name: String, state: GroupState, outputRun: String, submitDir: String, detail: String?, retries: Int
    }

    public struct StepRow: Encodable, Sendable {
        public var name: String, state: StepState, detail: String?
        /// From the step's start to its end (or now).
        public var elapsedSeconds: Double?
        public var groups: [Group]
    }

    public struct RunRow: Encodable, Sendable {
        public var number: Int, state: RunState, startedAt: String, endedAt: String?, keep: Bool
        public var steps: [StepRow]
        /// The latest run's failed and blocked quanta, grouped (empty for older runs).
        public var failures: [FailureGroup]
    }

    public var campaign: String, file: String, repository: String, site: String, paused: Bool
    public var runs: [RunRow]

    /// Older runs shown in full in the text (every run is in the JSON).
    static let shownRuns = 5

    public static func build(_ spec: CampaignSpec, store: CampaignStore, now: Date = Date()) throws -> CampaignOverview {
        let all = try store.runs(campaign: spec.name)
        let events = try store.events(campaign: spec.name)
        var runs: [RunRow] = []
        for r in all {
            let groups = try store.groups(campaign: spec.name, run: r.number)
            let steps = try store.steps(campaign: spec.name, run: r.number).map { s -> StepRow in
                let starts = [StepState.running, .pilot].map { "step \(s.step) \($0.rawValue)" }
                let started = events.first { e in e.run == r.number && e.step == s.step && starts.contains { e.what.hasPrefix($0) } }
                    .flatMap { Timestamp.parse($0.at) }
                let ended = [.passed, .failed, .gated, .empty].contains(s.state) ? Timestamp.parse(s.updatedAt) : (s.state == .waiting ? nil : now)
                let elapsed = started.flatMap { a in ended.map { $0.timeIntervalSince(a) } }
                return StepRow(name: s.step, state: s.state, detail: s.detail, elapsedSeconds: elapsed, groups: groups.filter { $0.step == s.step }.map {
                    Group(name: $0.group, state: $0.state, outputRun: $0.outputRun, submitDir: $0.submitDir, detail: $0.detail, retries: $0.retries)
                })
            }
            var failures: [FailureGroup] = []
            if r.number == all.last?.number {
                let statuses = groups.compactMap { g -> SubmissionStatus? in
                    guard g.state != .intended, FileManager.default.fileExists(atPath: SubmitDirectory(g.submitDir).planJSON) else { return nil }
                    return try? SubmissionStatus.read(SubmitDirectory(g.submitDir), cached: true)
                }
                failures = FailureGroups.of(statuses, rule: spec.ruleLabel)
            }
            runs.append(RunRow(number: r.number, state: r.state, startedAt: r.startedAt, endedAt: r.endedAt, keep: r.keep, steps: steps, failures: failures))
        }
        return CampaignOverview(campaign: spec.name, file: spec.source, repository: spec.repository, site: spec.site,
                                paused: try store.campaign(spec.name)?.paused ?? false, runs: runs)
    }

    enum CodingKeys: String, CodingKey { case campaign, file, repository, site, paused, runs }

    /// What a person reads.
    public var text: String {
        var lines = ["Campaign \(campaign) (\(file)), repository \(repository), site \(site)\(paused ? " — PAUSED ('quanta campaign resume \(campaign)')" : "")"]
        if runs.isEmpty { lines.append("  no run yet") }
        let older = runs.dropLast(Self.shownRuns)
        if !older.isEmpty {
            let states = Dictionary(grouping: older, by: \.state).map { "\($0.value.count) \($0.key.rawValue)" }.sorted()
            lines.append("runs \(older.first!.number)–\(older.last!.number): \(states.joined(separator: ", ")) ('--json' lists them)")
        }
        for r in runs.suffix(Self.shownRuns) {
            let span = r.endedAt.map { e in Timestamp.parse(e).flatMap { a in Timestamp.parse(r.startedAt).map { " (\(Self.duration(a.timeIntervalSince($0))))" } } ?? "" } ?? ""
            let when = "started \(r.startedAt)\(r.endedAt.map { ", ended \($0)" } ?? "")\(span)"
            if r.state == .removed {
                lines.append("run \(r.number): removed by retention (\(when))")
                continue
            }
            lines.append("run \(r.number): \(r.state.rawValue)\(r.keep ? " (kept)" : ""), \(when)")
            for s in r.steps {
                let name = s.name.padding(toLength: 14, withPad: " ", startingAt: 0)
                let state = s.state.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
                let elapsed = s.elapsedSeconds.map { Self.duration($0).padding(toLength: 8, withPad: " ", startingAt: 0) } ?? "        "
                lines.append("  \(name) \(state) \(elapsed)\(s.detail ?? "")")
                for g in s.groups {
                    let retried = g.retries > 0 ? " (retried \(g.retries)×)" : ""
                    lines.append("      \(g.name): \(g.state.rawValue)\(retried)  \(g.outputRun)  \(g.submitDir)")
                    if g.name != "all" || s.groups.count > 1 || g.state == .failed, let d = g.detail, d != s.detail { lines.append("        \(d)") }
                }
            }
            if !r.failures.isEmpty {
                lines.append("  failures of run \(r.number), grouped:")
                lines += FailureGroups.render(r.failures, limit: 20).map { "  " + $0 }
            }
        }
        return lines.joined(separator: "\n")
    }

    static func duration(_ s: Double) -> String {
        s < 60 ? String(format: "%.1f s", s) : s < 3600 ? String(format: "%d min", Int(s / 60)) : String(format: "%.1f h", s / 3600)
    }
}

