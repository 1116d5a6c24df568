import Foundation
import QuantaCore

/// Failed and blocked quanta grouped by task and first error line with the specifics masked
/// (numbers, paths, data IDs, UUIDs), so 200 "No reference objects in detector 17" read as one
/// line with a count and examples. Campaign status groups them further by the error rule that
/// matched; `quanta status` and reports take the same groups.
public struct FailureGroup: Sendable, Codable, Equatable {
    public var task: String
    /// `failed`, or `blocked` for quanta blocked by something that never ran (or a job with no
    /// readable manifest).
    public var state: String
    /// The first error line with its specifics masked.
    public var message: String
    /// Quanta in the group (0 for failures outside what was read, that still block some).
    public var count: Int
    /// Quanta blocked (FAILED_DEP) by the failures of this group, through any chain.
    public var blocked: Int = 0
    /// Up to three data IDs.
    public var examples: [String]
    /// One failed quantum's log, to read first.
    public var log: String?
    /// One unmasked first line (what error rules are matched against).
    public var sample: String
    /// The error rule that matched (campaigns), if any.
    public var rule: String?
    /// What ended the failed quanta's jobs, as counted: `payload` (the task's own error) or
    /// `infrastructure: out of memory` and the like.
    public var classes: [String: Int] = [:]
}

public enum FailureGroups {
    /// Groups failed quanta by task and masked first line, and counts each blocked quantum under the
    /// failure at its root; the largest groups first. `rule` names the rule that matches a failed
    /// quantum's first line (nil: none).
    public static func of(rows: [SubmissionStatus.QuantumRow], rule: (_ task: String, _ message: String) -> String? = { _, _ in nil }) -> [FailureGroup] {
        var groups: [String: FailureGroup] = [:]
        var order: [String] = []
        func key(_ task: String, _ state: String, _ masked: String, _ rule: String?) -> String {
            [task, state, masked, rule ?? ""].joined(separator: "\u{1F}")
        }
        func group(_ k: String, _ make: @autoclosure () -> FailureGroup) {
            if groups[k] == nil { groups[k] = make(); order.append(k) }
        }
        for q in rows where q.state == .failed || (q.state == .blocked && q.blockedByTask == nil) {
            let text = q.reason ?? "(no error line)"
            let masked = mask(text)
            let matched = q.state == .failed ? rule(q.task, text) : nil
            let k = key(q.task, q.state.rawValue, masked, matched)
            group(k, FailureGroup(task: q.task, state: q.state.rawValue, message: masked, count: 0, examples: [], log: nil, sample: text, rule: matched))
            groups[k]!.count += 1
            if let c = q.jobFailureClass { groups[k]!.classes[c == .failed ? c.origin : "\(c.origin): \(c.words)", default: 0] += 1 }
            if groups[k]!.examples.count < 3, !q.dataID.isEmpty { groups[k]!.examples.append(q.dataID) }
            if groups[k]!.log == nil { groups[k]!.log = q.log }
        }
        for q in rows where q.state == .blocked {
            guard let task = q.blockedByTask else { continue }
            let text = q.blockedByReason ?? "(no error line)"
            let matched = rule(task, text)
            let k = key(task, "failed", mask(text), matched)
            group(k, FailureGroup(task: task, state: "failed", message: mask(text), count: 0, examples: [], log: nil, sample: text, rule: matched))
            groups[k]!.blocked += 1
        }
        let position = Dictionary(uniqueKeysWithValues: order.enumerated().map { ($1, $0) })
        return order.sorted { a, b in
            let x = groups[a]!, y = groups[b]!
            if x.state != y.state { return x.state == "failed" }
            return x.count + x.blocked != y.count + y.blocked ? x.count + x.blocked > y.count + y.blocked : position[a]! < position[b]!
        }.map { groups[$0]! }
    }

    /// The groups of several submissions' failures (a campaign step's groups), with rules.
    public static func of(_ statuses: [SubmissionStatus], rule: (_ task: String, _ message: String) -> String? = { _, _ in nil }) -> [FailureGroup] {
        var rows: [SubmissionStatus.QuantumRow] = []
        for s in statuses {
            for e in s.elements where e.state == .failed || e.state == .blocked {
                rows += e.quanta ?? [SubmissionStatus.QuantumRow(task: e.array, dataID: "", state: e.state, reason: e.reason, log: nil)]
            }
        }
        return of(rows: rows, rule: rule)
    }

    /// Lines for a terminal: `3 × isr failed: <message>` with what it blocked, examples and a log.
    public static func render(_ groups: [FailureGroup], limit: Int) -> [String] {
        var lines: [String] = []
        for g in groups.prefix(limit) {
            let rule = g.rule.map { " [\($0)]" } ?? ""
            let blocked = g.blocked > 0 ? " — blocked \(g.blocked) downstream" : ""
            let classes = g.classes.isEmpty ? "" : " (" + g.classes.keys.sorted().map { g.classes.count > 1 ? "\(g.classes[$0]!) \($0)" : $0 }.joined(separator: ", ") + ")"
            let head = g.count == 0 ? "    failed elsewhere, \(g.task)\(rule)" : "  \(String(g.count).leftPadded(5)) × \(g.task) \(g.state)\(classes)\(rule)"
            lines.append("\(head)\(blocked): \(g.message)")
            if !g.examples.isEmpty { lines.append("          e.g. \(g.examples.joined(separator: "; "))") }
            if let log = g.log { lines.append("          log: \(log)") }
        }
        if groups.count > limit { lines.append("  … \(groups.count - limit) more groups (--all or --json lists them)") }
        return lines
    }

    /// The message with what differs between quanta masked: UUIDs, data IDs in braces, paths and
    /// numbers become `<uuid>`, `{…}`, `<path>` and `N`.
    public static func mask(_ text: String) -> String {
        var s = String(text.prefix(300))
        for (pattern, replacement) in maskRules {
            s = pattern.stringByReplacingMatches(in: s, range: NSRange(s.startIndex..., in: s), withTemplate: replacement)
        }
        return s
    }

    /// Compiled once: `quanta status` masks one line per failed quantum (10,000 in a bad night).
    static let maskRules: [(NSRegularExpression, String)] = [
        ("[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", "<uuid>"),
        ("\\{[^{}]*\\}", "{…}"),
        ("(?<![\\w.])(?:/[^\\s:'\",;()]+)+", "<path>"),
        ("(?<![A-Za-z_])[-+]?[0-9]+(?:\\.[0-9]+)?(?:[eE][-+]?[0-9]+)?", "N"),
    ].map { (try! NSRegularExpression(pattern: $0.0), $0.1) }
}

extension String {
    func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}
