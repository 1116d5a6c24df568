import Foundation
import Yams

/// The tasks run-quantum's builtin executor knows (QuantaExec.BuiltinTasks), checked at plan time.
public enum BuiltinTaskNames {
    public static let all = ["isr", "calibrate", "makeWarp", "assembleCoadd", "detectCoadd"]
}

/// Per-task settings with bps key names; `nil` means "not set here".
public struct TaskSettings: Sendable, Equatable {
    public var requestMemory: Int?
    public var requestCpus: Int?
    public var requestWalltime: Int?
    public var numberOfRetries: Int?
    public var retryUnlessExit: [Int]?
    public var memoryMultiplier: Double?
    public var memoryLimit: Int?
    /// `builtin` or `command`.
    public var executor: Executor?
    /// Command template for the command executor.
    public var command: String?
    /// Built-in task name for the builtin executor.
    public var builtin: String?
    /// SLURM partition (bps: `queue`).
    public var partition: String?

    public init() {}

    /// Values set here win over `base`.
    public func over(_ base: TaskSettings) -> TaskSettings {
        var r = base
        if let v = requestMemory { r.requestMemory = v }
        if let v = requestCpus { r.requestCpus = v }
        if let v = requestWalltime { r.requestWalltime = v }
        if let v = numberOfRetries { r.numberOfRetries = v }
        if let v = retryUnlessExit { r.retryUnlessExit = v }
        if let v = memoryMultiplier { r.memoryMultiplier = v }
        if let v = memoryLimit { r.memoryLimit = v }
        if let v = executor { r.executor = v }
        if let v = command { r.command = v }
        if let v = builtin { r.builtin = v }
        if let v = partition { r.partition = v }
        return r
    }

    /// bps defaults: 2048 MB, 1 cpu, 5 retries, retry unless exit 1 or 2, ×2 memory on OOM.
    public static let defaults: TaskSettings = {
        var s = TaskSettings()
        s.requestMemory = 2048
        s.requestCpus = 1
        s.numberOfRetries = 5
        s.retryUnlessExit = [1, 2]
        s.memoryMultiplier = 2
        return s
    }()

    static let keys: Set<String> = [
        "requestMemory", "requestCpus", "requestWalltime", "numberOfRetries", "retryUnlessExit",
        "memoryMultiplier", "memoryLimit", "executor", "command", "builtin", "queue", "partition",
    ]
}

/// `cluster.<name>`: which tasks run together in one job, and how to group their quanta.
public struct ClusterSpec: Sendable, Equatable {
    /// Keys of `cluster.<name>` beside the task settings.
    static let keys: Set<String> = ["pipetasks", "dimensions", "equalDimensions", "partitionDimensions",
                                    "partitionMaxClusters", "partitionMaxSize"]
    public var name: String
    public var pipetasks: [String]
    public var dimensions: [String]?
    /// `visit:exposure` — treat these two dimensions as the same key when grouping.
    public var equalDimensions: [(String, String)]
    public var partitionDimensions: [String]
    public var partitionMaxClusters: Int?
    public var partitionMaxSize: Int?
    public var settings: TaskSettings

    public init(name: String, pipetasks: [String], dimensions: [String]? = nil,
                equalDimensions: [(String, String)] = [], partitionDimensions: [String] = [],
                partitionMaxClusters: Int? = nil, partitionMaxSize: Int? = nil, settings: TaskSettings = TaskSettings()) {
        self.name = name
        self.pipetasks = pipetasks
        self.dimensions = dimensions
        self.equalDimensions = equalDimensions
        self.partitionDimensions = partitionDimensions
        self.partitionMaxClusters = partitionMaxClusters
        self.partitionMaxSize = partitionMaxSize
        self.settings = settings
    }

    public static func == (a: ClusterSpec, b: ClusterSpec) -> Bool {
        a.name == b.name && a.pipetasks == b.pipetasks && a.dimensions == b.dimensions
            && a.equalDimensions.map { [$0.0, $0.1] } == b.equalDimensions.map { [$0.0, $0.1] }
            && a.partitionDimensions == b.partitionDimensions && a.partitionMaxClusters == b.partitionMaxClusters
            && a.partitionMaxSize == b.partitionMaxSize && a.settings == b.settings
    }
}

/// A submit config in bps YAML keys.
public struct SubmitConfig: Sendable, Equatable {
    public var source: String
    public var global: TaskSettings
    public var pipetask: [String: TaskSettings]
    public var clusters: [ClusterSpec]
    public var computeSite: String?
    public var payload: [String: String]
    /// LSST graphs: how the final job registers outputs (`transfer-from-graph` or `aggregate-graph`).
    public var lsstMerge: String?
    /// Checks of FITS outputs (`validation`).
    public var validation = ValidationConfig()
    /// bps's `finalJob` section: the final job's requestMemory, requestCpus, requestWalltime and
    /// queue/partition (its other bps keys are about HTCondor and are ignored).
    public var finalJob: TaskSettings?
    /// Keys present in the file that Quanta does not use, as dotted paths.
    public var ignoredKeys: [String]

    public init(source: String = "(defaults)") {
        self.source = source
        global = TaskSettings()
        pipetask = [:]
        clusters = []
        payload = [:]
        ignoredKeys = []
    }

    /// Settings for one task label: defaults < global < `pipetask.<label>`.
    public func settings(forTask label: String) -> TaskSettings {
        let base = global.over(TaskSettings.defaults)
        return pipetask[label].map { $0.over(base) } ?? base
    }

    /// Settings for an array's label: a cluster's own settings, or a task's.
    public func settings(forLabel label: String) -> TaskSettings {
        if let c = clusters.first(where: { $0.name == label }) {
            return c.settings.over(global.over(TaskSettings.defaults))
        }
        return settings(forTask: label)
    }

    /// Ignored keys that look like slips of the keyboard, with the key meant (`requestMemroy` →
    /// `requestMemory`); other ignored keys are bps keys Quanta has no use for.
    public var misspelledKeys: [(key: String, meant: String)] {
        let top = TaskSettings.keys.union(BpsConfig.understoodKeys).union(["pipetask", "cluster", "lsstMerge", "validation", "computeSite", "payload", "finalJob"])
        return ignoredKeys.compactMap { path in
            let parts = path.split(separator: ".").map(String.init)
            let last = parts.last ?? path
            // pipetask.<label>.<key> and top-level keys take task settings; cluster keys add their own.
            let known = parts.count == 1 ? top : parts.first == "cluster" ? TaskSettings.keys.union(ClusterSpec.keys) : TaskSettings.keys
            return DidYouMean.suggestion(for: last, among: known).map { (path, (parts.dropLast() + [$0]).joined(separator: ".")) }
        }
    }

    /// Labels under `pipetask:` and `cluster.*.pipetasks` that name no task of the graph: an error
    /// when the label is a near miss of one (a typo would otherwise drop its settings silently) or
    /// when the graph is Quanta's own; for LSST graphs a bps file's settings for tasks of other
    /// steps are normal, and come back as notes, as are a Quanta graph's settings for built-in
    /// tasks a subset graph (`quanta graph build --tasks`) leaves out.
    public func checkLabels(_ labels: [String], strict: Bool) throws -> [String] {
        let known = Set(labels)
        var notes: [String] = []
        func check(_ label: String, at path: String) throws {
            guard !known.contains(label) else { return }
            if let near = DidYouMean.suggestion(for: label, among: labels) {
                throw QuantaError(.invalidConfig, "\(source): \(path): no task '\(label)' in the graph; did you mean '\(near)'?")
            }
            if strict && !BuiltinTaskNames.all.contains(label) {
                throw QuantaError(.invalidConfig, "\(source): \(path): no task '\(label)' in the graph (its tasks: \(labels.sorted().joined(separator: ", ")))")
            }
            notes.append("\(path): no task '\(label)' in this graph; its settings are not used")
        }
        for label in pipetask.keys.sorted() { try check(label, at: "pipetask.\(label)") }
        for c in clusters { for label in c.pipetasks { try check(label, at: "cluster.\(c.name).pipetasks") } }
        return notes
    }

    public static func load(path: String) throws -> SubmitConfig {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw QuantaError(.invalidConfig, "\(path): cannot read the submit config (\(error.localizedDescription))")
        }
        // bps's includeConfigs: the included files first, deep-merged, the including file winning.
        if text.contains("includeConfigs") {
            var seen = Set<String>()
            var merged = try BpsConfig.loadMerged(path: path, environment: [:], seen: &seen, expand: false)
            merged["includeConfigs"] = nil
            return try parse(mapping: merged, source: path)
        }
        return try parse(text, source: path)
    }

    public static func parse(_ text: String, source: String) throws -> SubmitConfig {
        try parse(mapping: try YAMLInput.mapping(text, source: source), source: source)
    }

    public static func parse(mapping root: [String: Any], source: String) throws -> SubmitConfig {
        var config = SubmitConfig(source: source)
        var reader = YAMLReader(source: source)
        config.global = try reader.settings(root, path: "")
        for (key, value) in root {
            switch key {
            case _ where TaskSettings.keys.contains(key):
                continue
            case "pipetask":
                for (label, v) in try reader.mapping(value, path: "pipetask") {
                    let m = try reader.mapping(v, path: "pipetask.\(label)")
                    config.pipetask[label] = try reader.settings(m, path: "pipetask.\(label).")
                    for k in m.keys.sorted() where !TaskSettings.keys.contains(k) {
                        reader.ignored.append("pipetask.\(label).\(k)")
                    }
                }
            case "cluster":
                let m = try reader.mapping(value, path: "cluster")
                for name in m.keys.sorted() {
                    config.clusters.append(try reader.cluster(name: name, try reader.mapping(m[name]!, path: "cluster.\(name)")))
                }
            case _ where BpsConfig.understoodKeys.contains(key):
                continue
            case "lsstMerge":
                let m = try reader.string(value, path: key)
                guard ["transfer-from-graph", "aggregate-graph"].contains(m) else {
                    throw reader.fail(key, "use transfer-from-graph or aggregate-graph, got '\(m)'")
                }
                config.lsstMerge = m
            case "validation":
                config.validation = try reader.validation(value)
            case "finalJob":
                let m = try reader.mapping(value, path: "finalJob")
                config.finalJob = try reader.settings(m, path: "finalJob.")
                for k in m.keys.sorted() where !["requestMemory", "requestCpus", "requestWalltime", "queue", "partition"].contains(k) {
                    reader.ignored.append("finalJob.\(k)")
                }
            case "computeSite":
                config.computeSite = try reader.string(value, path: key)
            case "payload":
                for (k, v) in try reader.mapping(value, path: "payload") {
                    config.payload[k] = try reader.string(v, path: "payload.\(k)")
                }
            default:
                reader.ignored.append(key)
            }
        }
        config.ignoredKeys = reader.ignored.sorted()
        return config
    }
}

enum YAMLInput {
    static func mapping(_ text: String, source: String) throws -> [String: Any] {
        let any: Any?
        do { any = try Yams.load(yaml: text) } catch {
            throw QuantaError(.invalidConfig, "\(source): not valid YAML: \(error)")
        }
        if any == nil { return [:] }
        guard let m = any as? [String: Any] else {
            throw QuantaError(.invalidConfig, "\(source): expected a mapping of keys at the top level")
        }
        return m
    }
}

/// Typed access to loaded YAML with errors that name the file and the key.
struct YAMLReader {
    let source: String
    var ignored: [String] = []

    func fail(_ path: String, _ what: String) -> QuantaError {
        QuantaError(.invalidConfig, "\(source): \(path): \(what)")
    }

    func mapping(_ any: Any, path: String) throws -> [String: Any] {
        guard let m = any as? [String: Any] else { throw fail(path, "expected a mapping of keys") }
        return m
    }

    func string(_ any: Any, path: String) throws -> String {
        if let s = any as? String { return s }
        if let n = any as? Int { return String(n) }
        if let d = any as? Double { return String(d) }
        if let b = any as? Bool { return String(b) }
        throw fail(path, "expected a single value")
    }

    func int(_ any: Any, path: String) throws -> Int {
        if let n = any as? Int { return n }
        if let s = any as? String, let n = Int(s.trimmingCharacters(in: .whitespaces)) { return n }
        throw fail(path, "expected a whole number, got '\(any)'")
    }

    func bool(_ any: Any, path: String) throws -> Bool {
        if let b = any as? Bool { return b }
        throw fail(path, "expected true or false, got '\(any)'")
    }

    /// A list written as YAML list or bps's comma-separated string.
    func list(_ any: Any, path: String) throws -> [String] {
        if let a = any as? [Any] { return try a.map { try string($0, path: path) } }
        return try string(any, path: path).split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func settings(_ m: [String: Any], path: String) throws -> TaskSettings {
        var s = TaskSettings()
        if let v = m["requestMemory"] {
            guard let mb = Units.megabytes(v), mb > 0 else { throw fail(path + "requestMemory", "expected memory in MB (e.g. 4096 or 4G), got '\(v)'") }
            s.requestMemory = mb
        }
        if let v = m["requestCpus"] {
            s.requestCpus = try int(v, path: path + "requestCpus")
            if s.requestCpus! < 1 { throw fail(path + "requestCpus", "must be at least 1") }
        }
        if let v = m["requestWalltime"] {
            guard let secs = Units.seconds(v), secs > 0 else { throw fail(path + "requestWalltime", "expected seconds or HH:MM:SS, got '\(v)'") }
            s.requestWalltime = secs
        }
        if let v = m["numberOfRetries"] { s.numberOfRetries = try int(v, path: path + "numberOfRetries") }
        if let v = m["retryUnlessExit"] {
            if let a = v as? [Any] { s.retryUnlessExit = try a.map { try int($0, path: path + "retryUnlessExit") } }
            else { s.retryUnlessExit = [try int(v, path: path + "retryUnlessExit")] }
        }
        if let v = m["memoryMultiplier"] {
            guard let d = (v as? Double) ?? (v as? Int).map(Double.init), d >= 1 else {
                throw fail(path + "memoryMultiplier", "expected a number ≥ 1, got '\(v)'")
            }
            s.memoryMultiplier = d
        }
        if let v = m["memoryLimit"] {
            guard let mb = Units.megabytes(v) else { throw fail(path + "memoryLimit", "expected memory in MB, got '\(v)'") }
            s.memoryLimit = mb
        }
        if let v = m["executor"] {
            let e = try string(v, path: path + "executor")
            guard let x = Executor(rawValue: e), Executor.configurable.contains(x) else {
                throw fail(path + "executor", "unknown executor '\(e)'; use \(Executor.configurable.map(\.rawValue).joined(separator: " or "))")
            }
            s.executor = x
        }
        if let v = m["command"] { s.command = try string(v, path: path + "command") }
        if let v = m["builtin"] { s.builtin = try string(v, path: path + "builtin") }
        if let v = m["queue"] ?? m["partition"] { s.partition = try string(v, path: path + "partition") }
        return s
    }

    mutating func cluster(name: String, _ m: [String: Any]) throws -> ClusterSpec {
        let path = "cluster.\(name)"
        guard let tasks = m["pipetasks"] else { throw fail(path, "needs 'pipetasks' (the task labels it groups)") }
        var spec = ClusterSpec(name: name, pipetasks: try list(tasks, path: path + ".pipetasks"))
        if spec.pipetasks.isEmpty { throw fail(path + ".pipetasks", "lists no task") }
        if let v = m["dimensions"] { spec.dimensions = try list(v, path: path + ".dimensions") }
        if let v = m["equalDimensions"] {
            spec.equalDimensions = try list(v, path: path + ".equalDimensions").map { pair in
                let p = pair.split(separator: ":").map { $0.trimmingCharacters(in: .whitespaces) }
                guard p.count == 2 else { throw fail(path + ".equalDimensions", "expected 'a:b' pairs, got '\(pair)'") }
                return (p[0], p[1])
            }
        }
        if let v = m["partitionDimensions"] { spec.partitionDimensions = try list(v, path: path + ".partitionDimensions") }
        if let v = m["partitionMaxClusters"] { spec.partitionMaxClusters = try int(v, path: path + ".partitionMaxClusters") }
        if let v = m["partitionMaxSize"] { spec.partitionMaxSize = try int(v, path: path + ".partitionMaxSize") }
        if spec.partitionMaxClusters != nil && spec.partitionMaxSize != nil {
            throw fail(path, "set partitionMaxClusters or partitionMaxSize, not both")
        }
        if !spec.partitionDimensions.isEmpty && spec.partitionMaxClusters == nil && spec.partitionMaxSize == nil {
            throw fail(path, "partitionDimensions needs partitionMaxClusters or partitionMaxSize")
        }
        if let n = spec.partitionMaxClusters ?? spec.partitionMaxSize, n < 1 {
            throw fail(path, "partitionMaxClusters/partitionMaxSize must be at least 1")
        }
        spec.settings = try settings(m, path: path + ".")
        for k in m.keys.sorted() where !ClusterSpec.keys.contains(k) && !TaskSettings.keys.contains(k) {
            ignored.append("\(path).\(k)")
        }
        return spec
    }
}

/// Requests for one task label (or cluster) learned from what earlier runs used (`quanta tune`,
/// `quanta plan --learn-from`): they take the place of the submit config's for that label.
public struct LearnedRequest: Sendable, Codable, Equatable {
    public var label: String
    public var memoryMB: Int
    public var cpus: Int
    /// Seconds.
    public var walltime: Int?
    /// What it came from, for plan.txt: `p95 of 24 jobs' peaks (48 MB) × 1.2; 2 OOM attempts at 128 MB`.
    public var why: String

    public init(label: String, memoryMB: Int, cpus: Int, walltime: Int?, why: String) {
        self.label = label
        self.memoryMB = memoryMB
        self.cpus = cpus
        self.walltime = walltime
        self.why = why
    }
}

extension SubmitConfig {
    /// The config with learned requests in place of its own (a cluster's settings for a cluster's
    /// name, else the task label's `pipetask` settings).
    public func applying(_ learned: [LearnedRequest]) -> SubmitConfig {
        var c = self
        for l in learned {
            if let k = c.clusters.firstIndex(where: { $0.name == l.label }) {
                c.clusters[k].settings.requestMemory = l.memoryMB
                c.clusters[k].settings.requestCpus = l.cpus
                if let w = l.walltime { c.clusters[k].settings.requestWalltime = w }
            } else {
                var s = c.pipetask[l.label] ?? TaskSettings()
                s.requestMemory = l.memoryMB
                s.requestCpus = l.cpus
                if let w = l.walltime { s.requestWalltime = w }
                c.pipetask[l.label] = s
            }
        }
        return c
    }
}
