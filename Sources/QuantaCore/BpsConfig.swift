import Foundation
import Yams

/// A bps submit YAML, taken as it is: `includeConfigs` merged (the including file wins),
/// `${ENV}` and bps's `{key}` placeholders expanded, the payload (repo, collections, query),
/// the pipeline or an existing graph, and `computeSite` + `site.<name>` mapped to a SLURM site.
public struct BpsConfig: Sendable {
    /// Keys Quanta reads from a bps file beyond the resource/cluster keys of `SubmitConfig`.
    public static let understoodKeys: Set<String> = [
        "includeConfigs", "pipelineYaml", "qgraphFile", "site", "submitPath", "operator", "wmsServiceClass",
        "quantaSite", "timestamp", "uniqProcName", "extraQgraphOptions",
    ]

    public var source: String
    public var submit: SubmitConfig
    public var pipelineYaml: String?
    public var qgraphFile: String?
    public var butlerConfig: String?
    public var inCollection: String?
    public var output: String?
    public var outputRun: String?
    public var dataQuery: String
    public var submitPath: String?
    public var computeSite: String?
    /// `site.<computeSite>` as written, for `site(…)`.
    public var siteSection: [String: String]
    /// `quantaSite`: a Quanta site config name or path that wins over `site.<name>`.
    public var quantaSite: String?
    /// bps's `{timestamp}` as filled in (second resolution): a submission that finds its run name
    /// taken makes it unique with a suffix when the name holds it.
    public var timestamp = ""
    /// Extra `pipetask qgraph` arguments: `extraQgraphOptions` (split as a shell splits words), and
    /// the command line's `-c`/`-C` (kept as `-c=VALUE`).
    public var qgraphConfigs: [String] = []
    /// payload.outputRun was written (else it is `{output}/{timestamp}` and follows -o).
    var outputRunWritten = false

    /// bps submit's flags, which win over the file (-b -p -i -o --output-run -d).
    public mutating func apply(butlerConfig: String?, pipelineYaml: String?, inCollection: String?, output: String?,
                               outputRun: String?, dataQuery: String?) {
        if let v = butlerConfig { self.butlerConfig = v }
        if let v = pipelineYaml { self.pipelineYaml = v; qgraphFile = nil }
        if let v = inCollection { self.inCollection = v }
        if let v = dataQuery { self.dataQuery = v }
        if let v = output {
            let old = self.outputRun
            self.output = v
            if !outputRunWritten {
                self.outputRun = "\(v)/\(timestamp)"
                if let o = old, let p = submitPath { submitPath = p.replacingOccurrences(of: o, with: self.outputRun!) }
            }
        }
        if let v = outputRun {
            if let o = self.outputRun, let p = submitPath { submitPath = p.replacingOccurrences(of: o, with: v) }
            self.outputRun = v
            outputRunWritten = true
        }
    }

    /// `validate: false` leaves the checks to the caller (after bps's command-line flags).
    public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment,
                            now: Date = Date(), validate: Bool = true) throws -> BpsConfig {
        var seen = Set<String>()
        let merged = try loadMerged(path: path, environment: environment, seen: &seen)
        let config = try BpsConfig(merged: merged, source: path, now: now)
        if validate { try config.validate() }
        return config
    }

    /// The file and its includes, deep-merged; later (including) files win.
    /// `expand: false` keeps `${NAME}` as written (a submit config's commands expand them at run time).
    static func loadMerged(path: String, environment: [String: String], seen: inout Set<String>, expand: Bool = true) throws -> [String: Any] {
        let full = URL(fileURLWithPath: path).standardizedFileURL.path
        guard seen.insert(full).inserted else {
            throw QuantaError(.invalidConfig, "\(path): includeConfigs includes itself (a cycle)")
        }
        let text: String
        do { text = try String(contentsOfFile: full, encoding: .utf8) } catch {
            throw QuantaError(.invalidConfig, "\(path): cannot read the bps config (\(error.localizedDescription))")
        }
        let parsed = try YAMLInput.mapping(text, source: path)
        let mine = (expand ? try expandEnvironment(parsed, environment: environment, source: path) : parsed) as? [String: Any] ?? [:]
        var result: [String: Any] = [:]
        let includes = (mine["includeConfigs"] as? [Any] ?? (mine["includeConfigs"].map { [$0] } ?? [])).compactMap { $0 as? String }
        for inc in includes {
            let incPath = inc.hasPrefix("/") ? inc : URL(fileURLWithPath: full).deletingLastPathComponent().path + "/" + inc
            result = deepMerge(result, try loadMerged(path: incPath, environment: environment, seen: &seen, expand: expand))
        }
        return deepMerge(result, mine)
    }

    static func deepMerge(_ a: [String: Any], _ b: [String: Any]) -> [String: Any] {
        var out = a
        for (k, v) in b {
            if let bv = v as? [String: Any], let av = out[k] as? [String: Any] { out[k] = deepMerge(av, bv) } else { out[k] = v }
        }
        return out
    }

    /// `${NAME}` from the environment; an unset variable is an error naming it.
    static func expandEnvironment(_ any: Any, environment: [String: String], source: String) throws -> Any {
        if let s = any as? String {
            var out = ""
            var rest = Substring(s)
            while let open = rest.range(of: "${") {
                out += rest[..<open.lowerBound]
                guard let close = rest[open.upperBound...].firstIndex(of: "}") else { out += rest[open.lowerBound...]; rest = ""; break }
                let name = String(rest[open.upperBound..<close])
                guard let value = environment[name] else {
                    throw QuantaError(.invalidConfig, "\(source): ${\(name)} is not set in the environment; export it or write the value")
                }
                out += value
                rest = rest[rest.index(after: close)...]
            }
            return out + rest
        }
        if let m = any as? [String: Any] {
            var r: [String: Any] = [:]
            for (k, v) in m { r[k] = try expandEnvironment(v, environment: environment, source: source) }
            return r
        }
        if let a = any as? [Any] { return try a.map { try expandEnvironment($0, environment: environment, source: source) } }
        return any
    }

    init(merged: [String: Any], source: String, now: Date) throws {
        self.source = source
        let payload = merged["payload"] as? [String: Any] ?? [:]
        let r = YAMLReader(source: source)
        func str(_ m: [String: Any], _ k: String, _ path: String) throws -> String? {
            try m[k].map { try r.string($0, path: path) }
        }
        // bps's placeholders: {operator}, {payloadName}, {output}, {timestamp}, any top-level or payload key.
        let stamp: String = {
            let f = DateFormatter()
            f.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
            f.timeZone = TimeZone(identifier: "UTC")
            return f.string(from: now)
        }()
        timestamp = stamp
        var values: [String: String] = ["timestamp": stamp, "operator": NSUserName()]
        for (k, v) in merged where !(v is [String: Any]) && !(v is [Any]) { values[k] = try? r.string(v, path: k) }
        for (k, v) in payload { values[k] = try? r.string(v, path: "payload.\(k)") }
        if let t = values["timestamp"], t.isEmpty { values["timestamp"] = stamp }
        func fill(_ s: String, depth: Int = 0) -> String {
            guard depth < 5, s.contains("{") else { return s }
            var out = s
            for (k, v) in values where out.contains("{\(k)}") { out = out.replacingOccurrences(of: "{\(k)}", with: v) }
            return out == s ? s : fill(out, depth: depth + 1)
        }
        let output = fill(try str(payload, "output", "payload.output") ?? "u/{operator}/{payloadName}")
        values["output"] = output
        submit = try SubmitConfig.parse(mapping: merged, source: source)
        pipelineYaml = try str(merged, "pipelineYaml", "pipelineYaml").map { fill($0) }
        qgraphFile = try str(merged, "qgraphFile", "qgraphFile").map { fill($0) }
        butlerConfig = try str(payload, "butlerConfig", "payload.butlerConfig").map { fill($0) }
        inCollection = try str(payload, "inCollection", "payload.inCollection").map { fill($0) }
        self.output = output
        outputRunWritten = payload["outputRun"] != nil
        outputRun = fill(try str(payload, "outputRun", "payload.outputRun") ?? "{output}/{timestamp}")
        values["outputRun"] = outputRun  // bps's default submitPath is ${PWD}/submit/{outputRun}
        if let extra = try str(merged, "extraQgraphOptions", "extraQgraphOptions").map({ fill($0) }) {
            qgraphConfigs = try ShellWords.split(extra, source: "\(source): extraQgraphOptions")
        }
        dataQuery = fill(try str(payload, "dataQuery", "payload.dataQuery") ?? "")
        submitPath = try str(merged, "submitPath", "submitPath").map { fill($0) }
        computeSite = try str(merged, "computeSite", "computeSite")
        quantaSite = try str(merged, "quantaSite", "quantaSite")
        siteSection = [:]
        if let name = computeSite, let sites = merged["site"] as? [String: Any], let mine = sites[name] as? [String: Any] {
            for (k, v) in mine { siteSection[k] = try? r.string(v, path: "site.\(name).\(k)") }
        }
    }

    /// What a submission needs, once the command line's flags are applied.
    public func validate() throws {
        if butlerConfig == nil {
            throw QuantaError(.invalidConfig, "\(source): payload.butlerConfig is not set (nor -b); it names the butler repository")
        }
        if qgraphFile == nil && pipelineYaml == nil {
            throw QuantaError(.invalidConfig, "\(source): neither pipelineYaml nor qgraphFile is set (nor -p); bps needs one of them")
        }
    }

    /// `site.<computeSite>` as a Quanta site: nodes, cores_per_node (or cores), mem_per_node (GB,
    /// as the parsl sites take it), walltime, qos, account, `#SBATCH` lines of scheduler_options.
    public func site(machine: (cores: Int, memoryMB: Int)) throws -> SiteConfig? {
        guard let name = computeSite, !siteSection.isEmpty else { return nil }
        return try Self.site(name: name, section: siteSection, source: source, machine: machine)
    }

    /// The `site.<name>` section of a bps config file (computeSite names it), as `quanta submit`
    /// maps it: what the bps plugin hands `quanta plan --bps-site` so both map it the same way.
    public static func site(file path: String, machine: (cores: Int, memoryMB: Int)) throws -> SiteConfig {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw QuantaError(.invalidConfig, "\(path): cannot read the bps site (\(error.localizedDescription))")
        }
        let m = try YAMLInput.mapping(text, source: path)
        guard let name = m["computeSite"] as? String, let sites = m["site"] as? [String: Any], let mine = sites[name] as? [String: Any] else {
            throw QuantaError(.invalidConfig, "\(path): expected computeSite: NAME and a site: NAME: section")
        }
        var section: [String: String] = [:]
        for (k, v) in mine where !(v is [String: Any]) && !(v is [Any]) { section[k] = "\(v)" }
        return try site(name: name, section: section, source: path, machine: machine)
    }

    static func site(name: String, section siteSection: [String: String], source: String,
                     machine: (cores: Int, memoryMB: Int)) throws -> SiteConfig {
        let cls = siteSection["class"] ?? ""
        let path = "site.\(name)"
        let scheduler: SiteConfig.Scheduler = cls.lowercased().contains("slurm") ? .slurm : .local
        var options: [String] = []
        var partitionName = scheduler == .local ? "local" : ""
        for line in (siteSection["scheduler_options"] ?? "").split(separator: "\n") {
            let t = line.trimmingCharacters(in: .whitespaces)
            guard t.hasPrefix("#SBATCH") else { continue }
            for o in t.dropFirst(7).split(separator: " ").map(String.init) where o.hasPrefix("-") {
                if o.hasPrefix("--partition=") { partitionName = String(o.dropFirst(12)) }
                else if o.hasPrefix("-p") && o.count > 2 { partitionName = String(o.dropFirst(2)) }
                else { options.append(o) }
            }
        }
        func int(_ k: String) throws -> Int? {
            guard let v = siteSection[k] else { return nil }
            guard let n = Int(v) else { throw QuantaError(.invalidConfig, "\(source): \(path).\(k): expected a whole number, got '\(v)'") }
            return n
        }
        let cores = try int("cores_per_node") ?? int("cores") ?? machine.cores
        let memory = try int("mem_per_node").map { $0 * 1024 } ?? machine.memoryMB
        var wall: Int?
        if let w = siteSection["walltime"] {
            guard let s = Units.seconds(w) else { throw QuantaError(.invalidConfig, "\(source): \(path).walltime: expected HH:MM:SS, got '\(w)'") }
            wall = s
        }
        var site = SiteConfig(name: name, source: "\(source) (site.\(name))", scheduler: scheduler,
                              partitions: [Partition(name: partitionName, nodes: try int("nodes") ?? 1, coresPerNode: cores,
                                                     memoryPerNodeMB: memory, maxWalltime: wall)],
                              defaultPartition: partitionName)
        site.defaultWalltime = wall
        site.account = siteSection["account"]
        site.qos = siteSection["qos"]
        site.sbatchOptions = options
        let known: Set<String> = ["class", "nodes", "cores_per_node", "cores", "mem_per_node", "walltime", "qos", "account", "scheduler_options"]
        site.ignoredKeys = siteSection.keys.filter { !known.contains($0) }.sorted()
        return site
    }
}
