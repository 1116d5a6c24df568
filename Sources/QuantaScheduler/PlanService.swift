import Foundation
import QuantaButler
import QuantaCore
import QuantaGraphIO

/// What planning a graph takes, typed: the flags of `quanta plan`, and what `submit`, `demo` and
/// campaigns pass when they plan (nobody builds another command's argv).
public struct PlanInputs: Sendable {
    public var repo: String
    public var config: String?
    public var site = "local"
    public var bpsSite: String?
    public var outputRun: String?
    public var output: String?
    public var templates: String?
    public var extendRun = false
    public var claimRun = false
    /// Requests learned from earlier runs (`--learn-from`), in place of the config's for their labels.
    public var learned: [LearnedRequest] = []

    public init(repo: String, config: String? = nil, site: String = "local", bpsSite: String? = nil, outputRun: String? = nil,
                output: String? = nil, templates: String? = nil, extendRun: Bool = false, claimRun: Bool = false) {
        self.repo = repo
        self.config = config
        self.site = site
        self.bpsSite = bpsSite
        self.outputRun = outputRun
        self.output = output
        self.templates = templates
        self.extendRun = extendRun
        self.claimRun = claimRun
    }
}

/// What planning tells a person on the way: warnings and notes (stderr), information and the plan's
/// summary (stdout).
public enum PlanNotice: Sendable {
    case warning(String)
    case note(String)
    case info(String)
    case summary(String)
}

/// Where planning is: reading the graph, the graph read, then the planner's stages.
public enum PlanProgress: Sendable {
    case reading(String)
    case read
    case stage(Planner.Stage)
}

/// Planning as a library call: a graph file and typed inputs in, a submit directory and its
/// `PlanDocument` out. The site, templates and executables come from `Installation`.
public enum PlanService {
    public static func plan(graphPath: String, _ inputs: PlanInputs, out: String,
                            notice: (PlanNotice) -> Void = { _ in }, progress: (PlanProgress) -> Void = { _ in }) throws -> PlanDocument {
        progress(.reading(graphPath))
        let graph = try GraphFile.read(path: graphPath)
        progress(.read)
        let given = try inputs.config.map { try SubmitConfig.load(path: $0) } ?? SubmitConfig()
        reportKeys(given, notice)
        let config = given.applying(inputs.learned)
        let site = try Installation.site(inputs.site, bpsSite: inputs.bpsSite) { notice(.info($0)) }
        let repo = try Repository(root: inputs.repo)
        var req = PlanRequest(graphPath: graphPath, config: config, site: site, repo: repo,
                              submitDir: SubmitDirectory(out), runQuantumPath: Installation.runQuantum,
                              quantaPath: Installation.executable, templatesDir: try Installation.templates(inputs.templates),
                              outputRun: inputs.outputRun, output: inputs.output,
                              lsstDriver: Installation.lsstDriver)
        req.extendRun = inputs.extendRun
        req.claimRun = inputs.claimRun
        req.learned = inputs.learned
        let doc = try Planner.plan(graph, req) { progress(.stage($0)) }
        reportNotes(doc, notice)
        return doc
    }

    /// Keys Quanta does not use, once; the ones that look misspelled as warnings with the key meant.
    public static func reportKeys(_ config: SubmitConfig, _ notice: (PlanNotice) -> Void) {
        let misspelled = config.misspelledKeys
        for (key, meant) in misspelled {
            notice(.warning("\(config.source): \(key) is not a key Quanta knows; did you mean \(meant)? (ignored)"))
        }
        let rest = config.ignoredKeys.filter { k in !misspelled.contains { $0.key == k } }
        if !rest.isEmpty {
            notice(.note("\(config.source): ignoring keys Quanta does not use: \(rest.joined(separator: ", "))"))
        }
    }

    /// The plan's own notes ("warning: …" ones as warnings).
    public static func reportNotes(_ doc: PlanDocument, _ notice: (PlanNotice) -> Void) {
        for n in doc.notes ?? [] {
            notice(n.hasPrefix("warning: ") ? .warning(String(n.dropFirst("warning: ".count))) : .note(n))
        }
    }
}
