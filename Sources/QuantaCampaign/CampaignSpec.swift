import Foundation
import QuantaCore

/// A campaign as its file describes it (`docs/campaigns.md`): a whole production — ordered steps,
/// each one submission or one per group, gates between them, error rules, a schedule, retention.
/// Parsed and checked by `CampaignFile.load`; pure values, no I/O.
public struct CampaignSpec: Sendable, Equatable {
    public var name: String
    /// The repository every step reads and writes (a Quanta repository or an LSST butler).
    public var repository: String
    /// Site config name or path (default `local`).
    public var site: String = "local"
    /// Base submit config (bps keys) every step starts from; a step may add its own.
    public var config: String?
    /// Input collections of the first step (later steps also read earlier steps' outputs).
    public var inputs: [String] = []
    /// Output collection prefix: run N of step S, group G writes `<output>/<N>/<S>/<G>` and the
    /// step's chain is `<output>/<N>/<S>`, the run's `<output>/<N>`.
    public var output: String
    public var steps: [Step] = []
    public var rules: [ErrorRule] = []
    public var schedule: CronSchedule?
    public var retention: Retention?
    /// A shell command run when a run ends or needs a person (`$QUANTA_CAMPAIGN_EVENT` says why).
    public var notify: String?
    /// The file it came from.
    public var source: String = ""

    public init(name: String, repository: String, output: String) {
        self.name = name
        self.repository = repository
        self.output = output
    }

    public func step(_ name: String) -> Step? { steps.first { $0.name == name } }

    /// `rule 2 (accept)`: the first error rule a failed quantum matches, for status and reports.
    public func ruleLabel(task: String, message: String) -> String? {
        rules.firstIndex { $0.matches(task: task, message: message) }.map { "rule \($0 + 1) (\(rules[$0].action.rawValue))" }
    }
}

/// One step: its work, what it waits for, how it splits into submissions, and its gate.
public struct Step: Sendable, Equatable {
    public var name: String
    public var work: Work
    /// Steps that must be done (gates passed) before this one starts; always earlier in the file.
    public var after: [String] = []
    /// One submission per group; nil: one submission for the whole step.
    public var groups: Groups?
    /// A submit config (bps keys) on top of the campaign's.
    public var config: String?
    /// pipetask's `-c label:key=value` and `-C label:file.py`, for every group.
    public var overrides: [ConfigOverride] = []
    /// Extra overrides for one group's value (a reference catalog per band).
    public var groupOverrides: [String: [ConfigOverride]] = [:]
    public var gate: Gate?
    /// A data query the step first runs on alone; its gate must pass before the full step.
    public var pilot: String?

    public init(name: String, work: Work) {
        self.name = name
        self.work = work
    }
}

/// What a step runs.
public enum Work: Sendable, Equatable {
    /// An LSST pipeline (or subset, `DRP.yaml#step1`) over a data query; the graph is built with
    /// `pipetask qgraph` when the step starts, so it sees earlier steps' outputs.
    case pipeline(String, dataQuery: String?)
    /// Quanta's built-in image pipeline (all tasks, or these) over what the repository holds and
    /// the data query admits, through `quanta graph build` (`PipelineGraph`).
    case builtin(tasks: [String]?, dataQuery: String?)
    /// A graph file built beforehand.
    case graph(String)
    /// A command run as one job, or as an array with one element per value (`{value}` in the
    /// command, and `$QUANTA_VALUE`).
    case script(command: String, over: [String]?)
}

/// How a step splits into submissions.
public enum Groups: Sendable, Equatable {
    /// One group per value of a dimension (`band`); the values listed, or every value the
    /// repository holds when the step starts.
    case dimension(String, values: [String]?)
    /// One group per data query, named `q0`, `q1`, … unless named in the file.
    case queries([(name: String, query: String)])

    public static func == (a: Groups, b: Groups) -> Bool {
        switch (a, b) {
        case let (.dimension(d1, v1), .dimension(d2, v2)): return d1 == d2 && v1 == v2
        case let (.queries(q1), .queries(q2)): return q1.map(\.name) == q2.map(\.name) && q1.map(\.query) == q2.map(\.query)
        default: return false
        }
    }
}

/// pipetask's own config override forms, which bps cannot take.
public enum ConfigOverride: Sendable, Equatable, CustomStringConvertible {
    /// `-c label:key=value`
    case value(label: String, key: String, value: String)
    /// `-C label:file.py`
    case file(label: String, path: String)

    /// pipetask's arguments for it.
    public var arguments: [String] {
        switch self {
        case let .value(l, k, v): return ["-c", "\(l):\(k)=\(v)"]
        case let .file(l, p): return ["-C", "\(l):\(p)"]
        }
    }

    public var description: String { arguments.joined(separator: " ") }
}

/// When a step counts as done and the next may start.
public struct Gate: Sendable, Equatable {
    /// At most this fraction of the step's quanta failed (accepted failures do not count).
    public var maxFailedFraction: Double?
    /// These dataset types exist in the step's outputs.
    public var datasetTypes: [String] = []
    /// Every FITS output passed its checks (the submit config's `validation`).
    public var outputsValidated = false
    /// A command whose exit status 0 passes the gate (`$QUANTA_COLLECTION` names the step's chain).
    public var command: String?
    /// A person approves (`quanta campaign approve NAME STEP`) or rejects.
    public var manual = false

    public init() {}

    public var isEmpty: Bool { maxFailedFraction == nil && datasetTypes.isEmpty && !outputsValidated && command == nil && !manual }
}

/// A rule for failed quanta: which ones (task and message as regular expressions), what kind of
/// failure they are, and what to do.
public struct ErrorRule: Sendable, Equatable {
    public enum Origin: String, Sendable, CaseIterable {
        case infrastructure, configuration, pipeline
    }

    public enum Action: String, Sendable, CaseIterable {
        /// Transient: resubmit those jobs.
        case retry
        /// Known and unprocessable: counts as done for gates and status.
        case accept
        /// Pause the campaign for a person.
        case review
        /// Stop the campaign.
        case fail
    }

    public var task: String?
    public var message: String
    public var origin: Origin
    public var action: Action
    /// How often `retry` resubmits a job before the failure counts (default 2).
    public var retries = 2

    public init(task: String?, message: String, origin: Origin, action: Action) {
        self.task = task
        self.message = message
        self.origin = origin
        self.action = action
    }

    /// Whether a failed quantum of `task` whose first error line is `text` matches.
    public func matches(task label: String, message text: String) -> Bool {
        if let task, label.range(of: "^(?:\(task))$", options: .regularExpression) == nil { return false }
        return text.range(of: message, options: .regularExpression) != nil
    }
}

/// `retention: {keep: N}`: after the newest run succeeds, the runs older than the last N successful
/// ones are removed (RUN collections, files, submit directories), except runs marked `keep` and
/// collections a chain outside the campaign still references.
public struct Retention: Sendable, Equatable {
    public var keep: Int

    public init(keep: Int) { self.keep = keep }
}
