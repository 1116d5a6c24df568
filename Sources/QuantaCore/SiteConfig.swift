import Foundation

/// A SLURM partition as the site admin describes it.
public struct Partition: Sendable, Equatable, Codable {
    public var name: String
    public var nodes: Int
    public var coresPerNode: Int
    public var memoryPerNodeMB: Int
    public var maxWalltime: Int?
    public var gres: String?
    /// Nodes are allocated (and billed) whole: jobs are packed into node-sized elements.
    public var exclusive = false

    public init(name: String, nodes: Int, coresPerNode: Int, memoryPerNodeMB: Int, maxWalltime: Int? = nil, gres: String? = nil) {
        self.name = name
        self.nodes = nodes
        self.coresPerNode = coresPerNode
        self.memoryPerNodeMB = memoryPerNodeMB
        self.maxWalltime = maxWalltime
        self.gres = gres
    }

    public var limitsDescription: String {
        "\(name): \(Units.memory(memoryPerNodeMB)), \(coresPerNode) cores per node, max walltime \(maxWalltime.map(Units.slurmTime) ?? "unlimited")"
    }
}

/// `site-configs/NAME.yaml`: where and how jobs run.
public struct SiteConfig: Sendable, Equatable {
    public enum Scheduler: String, Sendable { case local, slurm }

    public var name: String
    public var source: String
    public var scheduler: Scheduler
    public var partitions: [Partition]
    public var defaultPartition: String?
    public var account: String?
    public var qos: String?
    /// SLURM's MaxArraySize: indices 0 ..< maxArraySize.
    public var maxArraySize: Int
    /// `%N` throttle on each array; 0 means none.
    public var maxRunningPerArray: Int
    /// Lines run before `run-quantum` in every job (site environment, LSST set-up).
    public var environment: [String]
    public var umask: String?
    /// `--time` for jobs that set no requestWalltime (a bps site's `walltime`); nil: SLURM's default.
    public var defaultWalltime: Int?
    public var scratch: String?
    public var shared: String?
    /// Extra `#SBATCH` options, e.g. `--constraint=haswell`.
    public var sbatchOptions: [String]
    /// Every partition allocates whole nodes (`exclusive: true`).
    public var exclusive = false
    public var ignoredKeys: [String]

    public init(name: String, source: String = "(built in)", scheduler: Scheduler = .local, partitions: [Partition],
                defaultPartition: String? = nil, account: String? = nil, qos: String? = nil,
                maxArraySize: Int = 1001, maxRunningPerArray: Int = 0, environment: [String] = [],
                umask: String? = nil, scratch: String? = nil, shared: String? = nil, sbatchOptions: [String] = []) {
        self.name = name
        self.source = source
        self.scheduler = scheduler
        self.partitions = partitions
        self.defaultPartition = defaultPartition
        self.account = account
        self.qos = qos
        self.maxArraySize = maxArraySize
        self.maxRunningPerArray = maxRunningPerArray
        self.environment = environment
        self.umask = umask
        self.scratch = scratch
        self.shared = shared
        self.sbatchOptions = sbatchOptions
        ignoredKeys = []
    }

    /// Loads a site config; `auto` for cores/memory is replaced by `machine` (cores, MB).
    public static func load(path: String, machine: (cores: Int, memoryMB: Int)) throws -> SiteConfig {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw QuantaError(.invalidConfig, "\(path): cannot read the site config (\(error.localizedDescription))")
        }
        return try parse(text, source: path, machine: machine)
    }

    public static func parse(_ text: String, source: String, machine: (cores: Int, memoryMB: Int)) throws -> SiteConfig {
        let m = try YAMLInput.mapping(text, source: source)
        let r = YAMLReader(source: source)
        let name = try m["name"].map { try r.string($0, path: "name") }
            ?? URL(fileURLWithPath: source).deletingPathExtension().lastPathComponent
        let schedulerText = try m["scheduler"].map { try r.string($0, path: "scheduler") } ?? "slurm"
        guard let scheduler = Scheduler(rawValue: schedulerText) else {
            throw r.fail("scheduler", "unknown scheduler '\(schedulerText)'; use local or slurm")
        }
        guard let plist = m["partitions"] as? [Any], !plist.isEmpty else {
            throw r.fail("partitions", "list at least one partition (name, nodes, coresPerNode, memoryPerNode, maxWalltime)")
        }
        var partitions: [Partition] = []
        for (i, p) in plist.enumerated() {
            let path = "partitions[\(i)]"
            let pm = try r.mapping(p, path: path)
            guard let pn = pm["name"] else { throw r.fail(path, "needs a name") }
            // "" means the cluster's default partition (no --partition).
            let rawName = try r.string(pn, path: path + ".name")
            let pname = rawName.isEmpty ? "" : try safeSlurmWord(rawName, r: r, path: path + ".name")
            let cores: Int
            if let c = pm["coresPerNode"], (c as? String) == "auto" { cores = machine.cores }
            else if let c = pm["coresPerNode"] { cores = try r.int(c, path: path + ".coresPerNode") }
            else { throw r.fail(path, "needs coresPerNode") }
            let mem: Int
            if let v = pm["memoryPerNode"], (v as? String) == "auto" { mem = machine.memoryMB }
            else if let v = pm["memoryPerNode"] {
                guard let mb = Units.megabytes(v) else { throw r.fail(path + ".memoryPerNode", "expected memory such as 384G or 393216 (MB), got '\(v)'") }
                mem = mb
            } else { throw r.fail(path, "needs memoryPerNode") }
            var wall: Int?
            if let v = pm["maxWalltime"], (v as? String) != "unlimited" {
                guard let s = Units.seconds(v) else { throw r.fail(path + ".maxWalltime", "expected D-HH:MM:SS, got '\(v)'") }
                wall = s
            }
            let nodes = try pm["nodes"].map { try r.int($0, path: path + ".nodes") } ?? 1
            guard cores > 0, mem > 0, nodes > 0 else { throw r.fail(path, "nodes, coresPerNode and memoryPerNode must be positive") }
            let gres = try pm["gres"].map { try safeSlurmWord(try r.string($0, path: path + ".gres"), r: r, path: path + ".gres") }
            var partition = Partition(name: pname, nodes: nodes, coresPerNode: cores, memoryPerNodeMB: mem, maxWalltime: wall, gres: gres)
            if let v = pm["exclusive"] { partition.exclusive = try r.bool(v, path: path + ".exclusive") }
            partitions.append(partition)
        }
        var site = SiteConfig(name: name, source: source, scheduler: scheduler, partitions: partitions)
        if let v = m["defaultPartition"] {
            let d = try r.string(v, path: "defaultPartition")
            guard partitions.contains(where: { $0.name == d }) else {
                throw r.fail("defaultPartition", "'\(d)' is not one of the partitions (\(partitions.map(\.name).joined(separator: ", ")))")
            }
            site.defaultPartition = d
        }
        site.account = try m["account"].map { try safeSlurmWord(try r.string($0, path: "account"), r: r, path: "account") }
        site.qos = try m["qos"].map { try safeSlurmWord(try r.string($0, path: "qos"), r: r, path: "qos") }
        if let v = m["maxArraySize"] {
            site.maxArraySize = try r.int(v, path: "maxArraySize")
            if site.maxArraySize < 1 { throw r.fail("maxArraySize", "must be at least 1 (SLURM's MaxArraySize)") }
        }
        if let v = m["maxRunningPerArray"] { site.maxRunningPerArray = max(0, try r.int(v, path: "maxRunningPerArray")) }
        if let v = m["environment"] { site.environment = try (v as? [Any] ?? [v]).map { try r.string($0, path: "environment") } }
        if let v = m["umask"] {
            let u = try r.string(v, path: "umask")
            guard u.count <= 4, u.allSatisfy({ ("0"..."7").contains($0) }) else { throw r.fail("umask", "expected an octal mask such as 0002, got '\(u)'") }
            site.umask = u.count < 4 ? String(repeating: "0", count: 4 - u.count) + u : u
        }
        site.scratch = try m["scratch"].map { try r.string($0, path: "scratch") }
        site.shared = try m["shared"].map { try r.string($0, path: "shared") }
        if let v = m["sbatchOptions"] {
            site.sbatchOptions = try (v as? [Any] ?? [v]).map {
                let o = try r.string($0, path: "sbatchOptions")
                guard o.hasPrefix("--"), !o.contains("\n") else { throw r.fail("sbatchOptions", "each entry is one option such as --constraint=haswell, got '\(o)'") }
                return o
            }
        }
        if let v = m["exclusive"] { site.exclusive = try r.bool(v, path: "exclusive") }
        if let v = m["defaultWalltime"] {
            guard let s = Units.seconds(v) else { throw r.fail("defaultWalltime", "expected D-HH:MM:SS, got '\(v)'") }
            site.defaultWalltime = s
        }
        let known: Set<String> = ["exclusive", "defaultWalltime", "name", "scheduler", "partitions", "defaultPartition", "account", "qos", "maxArraySize",
                                  "maxRunningPerArray", "environment", "umask", "scratch", "shared", "sbatchOptions"]
        site.ignoredKeys = m.keys.filter { !known.contains($0) }.sorted()
        return site
    }

    /// This site as YAML that `parse` reads back: kept in each submit directory, so a submission
    /// keeps the site it was planned for even if the file changes or came from a bps config.
    public var yamlText: String {
        func q(_ s: String) -> String { JSONText.quote(s) }
        var lines = ["# The site this submission was planned for (from \(source.replacingOccurrences(of: "\n", with: " ")))",
                     "name: \(q(name))", "scheduler: \(scheduler.rawValue)", "partitions:"]
        for p in partitions {
            lines += ["  - name: \(q(p.name))", "    nodes: \(p.nodes)", "    coresPerNode: \(p.coresPerNode)",
                      "    memoryPerNode: \(p.memoryPerNodeMB)", "    maxWalltime: \(q(p.maxWalltime.map(Units.slurmTime) ?? "unlimited"))"]
            if p.exclusive { lines.append("    exclusive: true") }
            if let g = p.gres { lines.append("    gres: \(q(g))") }
        }
        if let d = defaultPartition { lines.append("defaultPartition: \(q(d))") }
        if let a = account { lines.append("account: \(q(a))") }
        if let a = qos { lines.append("qos: \(q(a))") }
        lines += ["maxArraySize: \(maxArraySize)", "maxRunningPerArray: \(maxRunningPerArray)"]
        if exclusive { lines.append("exclusive: true") }
        if let w = defaultWalltime { lines.append("defaultWalltime: \(q(Units.slurmTime(w)))") }
        lines.append("environment:" + (environment.isEmpty ? " []" : ""))
        lines += environment.map { "  - \(q($0))" }
        if let u = umask { lines.append("umask: \(q(u))") }
        if let v = scratch { lines.append("scratch: \(q(v))") }
        if let v = shared { lines.append("shared: \(q(v))") }
        lines.append("sbatchOptions:" + (sbatchOptions.isEmpty ? " []" : ""))
        lines += sbatchOptions.map { "  - \(q($0))" }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The partition that fits a request: the task's chosen one, else the default, else the first that fits.
    public func partition(for request: ResourceRequest, preferred: String?, task: String) throws -> Partition {
        func fits(_ p: Partition) -> Bool {
            request.cpus <= p.coresPerNode && request.memoryMB <= p.memoryPerNodeMB
                && (p.maxWalltime == nil || (request.walltime ?? 0) <= p.maxWalltime!)
        }
        let ask = "\(Units.memory(request.memoryMB)), \(request.cpus) cpu\(request.cpus == 1 ? "" : "s")\(request.walltime.map { ", walltime \(Units.slurmTime($0))" } ?? "")"
        if let preferred {
            guard let p = partitions.first(where: { $0.name == preferred }) else {
                throw QuantaError(.planning, "\(source): task '\(task)' asks for partition '\(preferred)', which this site does not have (\(partitions.map(\.name).joined(separator: ", ")))")
            }
            guard fits(p) else {
                throw QuantaError(.planning, "\(source): task '\(task)' asks for \(ask) but partition \(p.limitsDescription); lower the request or choose another partition")
            }
            return p
        }
        let ordered = partitions.filter { $0.name == defaultPartition } + partitions.filter { $0.name != defaultPartition }
        if let p = ordered.first(where: fits) { return p }
        throw QuantaError(.planning, "\(source): task '\(task)' asks for \(ask) but no partition fits: \(partitions.map(\.limitsDescription).joined(separator: "; ")); lower requestMemory/requestCpus/requestWalltime for it")
    }
}

/// Words that land in `#SBATCH` lines, which no shell quotes: letters, digits and `_.-:,+=` only.
private func safeSlurmWord(_ s: String, r: YAMLReader, path: String) throws -> String {
    let ok = !s.isEmpty && s.unicodeScalars.allSatisfy {
        ($0 >= "a" && $0 <= "z") || ($0 >= "A" && $0 <= "Z") || ($0 >= "0" && $0 <= "9") || "_.-:,+=".unicodeScalars.contains($0)
    }
    guard ok else { throw r.fail(path, "'\(s)' may only hold letters, digits and _.-:,+= (it goes into #SBATCH lines)") }
    return s
}

extension SiteConfig {
    /// Where the final job runs: the default partition, else the first.
    public var finalJobPartition: String? { defaultPartition ?? partitions.first?.name }

    /// The final job's time limit (seconds): ten minutes plus a second per hundred outputs to
    /// register (a merge registers ~100,000 a second into SQLite; LSST's aggregate-graph ~500), at
    /// most twelve hours and within the partition's maximum. Every final job has one (issue 12):
    /// without `--time` it got the partition's default, which may be its maximum and delays backfill.
    public func finalJobWalltime(partition: String?, outputs: Int) -> Int {
        let cap = partitions.first { $0.name == partition }?.maxWalltime
        return min(600 + outputs / 100, 12 * 3600, cap ?? .max)
    }
}
