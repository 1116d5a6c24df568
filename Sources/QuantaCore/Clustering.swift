import Foundation

/// What one job asks the scheduler for.
public struct ResourceRequest: Hashable, Sendable, Codable {
    public var memoryMB: Int
    public var cpus: Int
    /// Seconds; nil leaves the partition default.
    public var walltime: Int?

    public init(memoryMB: Int, cpus: Int, walltime: Int?) {
        self.memoryMB = memoryMB
        self.cpus = cpus
        self.walltime = walltime
    }
}

/// A job: quanta that run together in one array element, in dependency order.
public struct Job: Sendable, Equatable {
    /// Cluster name, or the task label for one-quantum jobs.
    public var cluster: String
    public var quanta: [Int32]
    /// Grouping values, used to order jobs inside an array.
    public var key: [DimensionValue]
    public var resources: ResourceRequest
    public var partition: String?
}

/// Jobs and the job → upstream-job edges.
public struct ClusteredGraph: Sendable {
    public var jobs: [Job]
    /// For each job, the jobs whose outputs it reads (sorted, unique).
    public var upstream: [[Int32]]
    /// For each quantum, its job.
    public var jobOfQuantum: [Int32]
}

public enum Clustering {
    /// Groups quanta into jobs per the config's `cluster.*` sections; quanta of tasks in no cluster
    /// become one job each. `order` is a topological order of the quanta (from `validate`).
    public static func cluster(_ graph: QuantumGraph, config: SubmitConfig, order: [Int32]) throws -> ClusteredGraph {
        let fail = { (what: String) in QuantaError(.planning, "\(config.source): \(what)") }
        var clusterOfTask = [Int](repeating: -1, count: graph.tasks.count)
        let taskIndex = Dictionary(graph.tasks.enumerated().map { ($1.label, $0) }, uniquingKeysWith: { a, _ in a })
        for (c, spec) in config.clusters.enumerated() {
            for label in spec.pipetasks {
                guard let t = taskIndex[label] else {
                    // bps allows cluster sections for tasks absent from this graph (a pipeline subset).
                    continue
                }
                if clusterOfTask[t] >= 0 {
                    throw fail("task '\(label)' is in both cluster.\(config.clusters[clusterOfTask[t]].name) and cluster.\(spec.name); put it in one")
                }
                clusterOfTask[t] = c
            }
        }
        // Position of each quantum in the topological order, to keep each job's quanta in run order.
        var rank = [Int32](repeating: 0, count: graph.quanta.count)
        for (i, q) in order.enumerated() { rank[Int(q)] = Int32(i) }

        var jobs: [Job] = []
        var jobOfQuantum = [Int32](repeating: -1, count: graph.quanta.count)
        let taskSettings = graph.tasks.map { config.settings(forTask: $0.label) }

        // Quanta of clustered tasks, grouped by cluster then by the cluster's dimension values.
        var groups: [Int: [[DimensionValue]: [Int32]]] = [:]
        var groupOrder: [Int: [[DimensionValue]]] = [:]
        for q in order {
            let t = Int(graph.quanta[Int(q)].task)
            let c = clusterOfTask[t]
            if c < 0 {
                let s = taskSettings[t]
                jobOfQuantum[Int(q)] = Int32(jobs.count)
                jobs.append(Job(cluster: graph.tasks[t].label, quanta: [q], key: graph.dataID(ofQuantum: Int(q)).values,
                                resources: ResourceRequest(memoryMB: s.requestMemory!, cpus: s.requestCpus!, walltime: s.requestWalltime),
                                partition: s.partition))
                continue
            }
            let spec = config.clusters[c]
            let dims = spec.dimensions ?? commonDimensions(spec, graph: graph, taskIndex: taskIndex)
            let key = try values(of: graph.dataID(ofQuantum: Int(q)), dims: dims, spec: spec, task: graph.tasks[t].label, source: config.source)
            if groups[c, default: [:]][key] == nil { groupOrder[c, default: []].append(key) }
            groups[c, default: [:]][key, default: []].append(q)
        }
        for c in groupOrder.keys.sorted() {
            let spec = config.clusters[c]
            for key in groupOrder[c]! {
                for part in try partition(groups[c]![key]!, spec: spec, graph: graph, source: config.source) {
                    var quanta = part
                    quanta.sort { rank[Int($0)] < rank[Int($1)] }
                    var memory = 0, cpus = 0, wall = 0, anyWall = false
                    var partitionName: String?
                    for q in quanta {
                        let s = taskSettings[Int(graph.quanta[Int(q)].task)]
                        memory = max(memory, s.requestMemory!)
                        cpus = max(cpus, s.requestCpus!)
                        if let w = s.requestWalltime { wall += w; anyWall = true }
                        partitionName = partitionName ?? s.partition
                    }
                    var r = ResourceRequest(memoryMB: memory, cpus: cpus, walltime: anyWall ? wall : nil)
                    if let v = spec.settings.requestMemory { r.memoryMB = v }
                    if let v = spec.settings.requestCpus { r.cpus = v }
                    if let v = spec.settings.requestWalltime { r.walltime = v }
                    let partKey = key + partitionKey(quanta.first!, spec: spec, graph: graph)
                    for q in quanta { jobOfQuantum[Int(q)] = Int32(jobs.count) }
                    jobs.append(Job(cluster: spec.name, quanta: quanta, key: partKey, resources: r,
                                    partition: spec.settings.partition ?? partitionName))
                }
            }
        }

        let producers = graph.producers()
        var upstream = [[Int32]](repeating: [], count: jobs.count)
        var ups: [Int32] = []  // reused: most jobs have a handful of upstream jobs
        for (j, job) in jobs.enumerated() {
            ups.removeAll(keepingCapacity: true)
            for q in job.quanta {
                for d in graph.inputs(of: Int(q)) {
                    let p = producers[Int(d)]
                    if p >= 0, jobOfQuantum[Int(p)] != Int32(j), !ups.contains(jobOfQuantum[Int(p)]) { ups.append(jobOfQuantum[Int(p)]) }
                }
            }
            if !ups.isEmpty { upstream[j] = ups.sorted() }
        }
        let clustered = ClusteredGraph(jobs: jobs, upstream: upstream, jobOfQuantum: jobOfQuantum)
        if let cycle = clustered.cycleClusters() {
            throw fail("the clustering makes jobs of \(cycle.joined(separator: ", ")) wait on each other (a cycle); give those tasks dimensions that keep a data ID's chain in one job, or cluster them separately")
        }
        return clustered
    }

    /// Dimensions shared by every task of the cluster: a chain of tasks for the same data ID.
    static func commonDimensions(_ spec: ClusterSpec, graph: QuantumGraph, taskIndex: [String: Int]) -> [String] {
        let sets = spec.pipetasks.compactMap { taskIndex[$0] }.map { Set(graph.tasks[$0].dimensions) }
        guard var common = sets.first else { return [] }
        for s in sets.dropFirst() { common.formIntersection(s) }
        return graph.universe.filter { common.contains($0) }
    }

    static func values(of id: DataID, dims: [String], spec: ClusterSpec, task: String, source: String) throws -> [DimensionValue] {
        try dims.map { dim in
            if let v = id[dim] { return v }
            for (a, b) in spec.equalDimensions {
                if a == dim, let v = id[b] { return v }
                if b == dim, let v = id[a] { return v }
            }
            throw QuantaError(.planning, "\(source): cluster.\(spec.name) groups by '\(dim)' but task '\(task)' has no such dimension (its data ID is {\(id)}); remove it from dimensions or add equalDimensions")
        }
    }

    static func partitionKey(_ q: Int32, spec: ClusterSpec, graph: QuantumGraph) -> [DimensionValue] {
        let id = graph.dataID(ofQuantum: Int(q))
        return spec.partitionDimensions.map { id[$0] ?? .string("") }
    }

    /// Splits one group by `partitionDimensions`: quanta with equal partition values stay together;
    /// values sort numerically; at most `partitionMaxClusters` parts or about `partitionMaxSize` quanta each.
    static func partition(_ quanta: [Int32], spec: ClusterSpec, graph: QuantumGraph, source: String) throws -> [[Int32]] {
        guard !spec.partitionDimensions.isEmpty else { return [quanta] }
        var units: [[DimensionValue]: [Int32]] = [:]
        for q in quanta {
            let id = graph.dataID(ofQuantum: Int(q))
            let key = try values(of: id, dims: spec.partitionDimensions, spec: spec, task: graph.taskLabel(ofQuantum: Int(q)), source: source)
            units[key, default: []].append(q)
        }
        let ordered = units.keys.sorted { $0.lexicographicallyPrecedes($1) }.map { units[$0]! }
        var parts: [[Int32]] = []
        if let maxSize = spec.partitionMaxSize {
            var current: [Int32] = []
            for unit in ordered {
                if !current.isEmpty && current.count + unit.count > maxSize {
                    parts.append(current)
                    current = []
                }
                current += unit
            }
            if !current.isEmpty { parts.append(current) }
        } else {
            let k = min(spec.partitionMaxClusters ?? 1, ordered.count)
            for i in 0..<k {
                let lo = i * ordered.count / k, hi = (i + 1) * ordered.count / k
                parts.append(ordered[lo..<hi].flatMap { $0 })
            }
        }
        return parts
    }
}

extension ClusteredGraph {
    /// Job indices in dependency order, or nil with a cycle.
    public func jobOrder() -> [Int32]? {
        let r = TopologicalSort.order(count: jobs.count) { j, visit in for u in upstream[j] { visit(Int(u)) } }
        return r.stuck.isEmpty ? r.order.map(Int32.init) : nil
    }

    func cycleClusters() -> [String]? {
        let stuck = TopologicalSort.order(count: jobs.count) { j, visit in for u in upstream[j] { visit(Int(u)) } }.stuck
        return stuck.isEmpty ? nil : Array(Set(stuck.map { jobs[$0].cluster })).sorted()
    }
}
