import Foundation
import QuantaCore

/// Failed and blocked quanta grouped by task and first error line with the specifics masked
/// (numbers, paths, data IDs, UUIDs), so 200 "No reference objects in detector 17" read as one
/// line with a count and examples. Campaign status groups them further by the error rule that
/// matched; `quanta status` and reports take the same groups.
public struct FailureGroup: Sendable, Codable, Equatable {
    public var task: String
    /// `failed` or `blocked`.
    public var state: String
    /// The first error line with its specifics masked.
    public var message: String
    public var count: Int
    /// Up to three data IDs.
    public var examples: [String]
    /// One failed quantum's log, to read first.
    public var log: String?
    /// The error rule that matched (campaigns), if any.
    public var rule: String?
}

public enum FailureGroups {
    /// Groups the failed and blocked quanta of these submissions; the largest groups first.
    /// `rule` names the rule that matches a failed quantum (nil: none).
    public static func of(_ statuses: [SubmissionStatus], rule: (_ task: String, _ message: String) -> String? = { _, _ in nil }) -> [FailureGroup] {
        var groups: [String: FailureGroup] = [:]
        var order: [String] = []
        for s in statuses {
            for e in s.elements where e.state == .failed || e.state == .blocked {
                let quanta = e.quanta ?? []
                let rows = quanta.isEmpty ? [SubmissionStatus.QuantumRow(task: e.array, dataID: "", state: e.state, reason: e.reason, log: nil)] : quanta
                for q in rows where q.state == .failed || q.state == .blocked {
                    let text = q.reason ?? e.reason ?? "(no error line)"
                    let masked = mask(text)
                    let matched = q.state == .failed ? rule(q.task, text) : nil
                    let key = [q.task, q.state.rawValue, masked, matched ?? ""].joined(separator: "\u{1F}")
                    if groups[key] == nil {
                        groups[key] = FailureGroup(task: q.task, state: q.state.rawValue, message: masked, count: 0, examples: [], log: nil, rule: matched)
                        order.append(key)
                    }
                    groups[key]!.count += 1
                    if groups[key]!.examples.count < 3, !q.dataID.isEmpty { groups[key]!.examples.append(q.dataID) }
                    if groups[key]!.log == nil { groups[key]!.log = q.log }
                }
            }
        }
        let position = Dictionary(uniqueKeysWithValues: order.enumerated().map { ($1, $0) })
        return order.sorted { a, b in
            let x = groups[a]!, y = groups[b]!
            if x.state != y.state { return x.state == "failed" }
            return x.count != y.count ? x.count > y.count : position[a]! < position[b]!
        }.map { groups[$0]! }
    }

    /// The message with what differs between quanta masked: UUIDs, data IDs in braces, paths,
    /// quoted strings' numbers and numbers become `<uuid>`, `{…}`, `<path>` and `N`.
    public static func mask(_ text: String) -> String {
        var s = String(text.prefix(300))
        let rules: [(String, String)] = [
            ("[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", "<uuid>"),
            ("\\{[^{}]*\\}", "{…}"),
            ("(?<![\\w.])(?:/[^\\s:'\",;()]+)+", "<path>"),
            ("(?<![A-Za-z_])[-+]?[0-9]+(?:\\.[0-9]+)?(?:[eE][-+]?[0-9]+)?", "N"),
        ]
        for (pattern, replacement) in rules {
            s = s.replacingOccurrences(of: pattern, with: replacement, options: .regularExpression)
        }
        return s
    }
}
