import Foundation

/// How one array waits for another.
public enum DependencyKind: String, Sendable, Codable {
    /// Element i waits for element i of the other array.
    case aftercorr
    /// Every element waits for the whole other array, whatever its outcome.
    case afterany
}

public struct ArrayDependency: Sendable, Codable, Equatable {
    public var array: String
    public var kind: DependencyKind

    public init(array: String, kind: DependencyKind) {
        self.array = array
        self.kind = kind
    }
}

/// One SLURM job array.
public struct PlannedArray: Sendable, Codable, Equatable {
    /// Safe for file names and `#SBATCH --job-name`.
    public var name: String
    /// Cluster name or task label, as the user wrote it.
    public var label: String
    public var size: Int
    /// `%N`; 0 means no throttle.
    public var throttle: Int
    public var resources: ResourceRequest
    public var partition: String
    public var quanta: Int
    public var dependencies: [ArrayDependency]
    /// What happens when an element fails (bps keys); nil in plans made before retries existed.
    public var retry: RetryPolicy?
    /// Jobs packed side by side into one element (whole-node packing); nil means 1.
    public var packing: Packing?
    /// The SLURM request its script and every sbatch of it are made from (set by the planner;
    /// nil in plans made before it).
    public var request: SlurmRequest?

    public var jobsPerElement: Int { packing?.jobsPerElement ?? 1 }
    /// Jobs (manifests, status rows) in this array; `size` counts elements (array task ids).
    public var jobCount: Int { packing?.jobs ?? size }
    /// The array task id that runs job slot `job`.
    public func element(ofJob job: Int) -> Int { job / jobsPerElement }

    /// `0-11%4`.
    public var arraySpec: String {
        (size == 1 ? "0" : "0-\(size - 1)") + (throttle > 0 && throttle < size ? "%\(throttle)" : "")
    }
}

/// Whole-node packing of one array: each element takes a node and runs `jobsPerElement` jobs at once.
public struct Packing: Sendable, Codable, Equatable {
    public var jobsPerElement: Int
    /// Jobs in the array (the last element may hold fewer).
    public var jobs: Int
    /// One job's request; the element asks for the whole node.
    public var job: ResourceRequest
    /// What each element asks for: the packed jobs' sum.
    public var node: ResourceRequest
    /// The partition's node, to report idle cores.
    public var nodeCores: Int
    public var nodeMemoryMB: Int

    public init(jobsPerElement: Int, jobs: Int, job: ResourceRequest, node: ResourceRequest, nodeCores: Int, nodeMemoryMB: Int) {
        self.jobsPerElement = jobsPerElement
        self.jobs = jobs
        self.job = job
        self.node = node
        self.nodeCores = nodeCores
        self.nodeMemoryMB = nodeMemoryMB
    }

    /// Cores left idle on the nodes, 0…1, if every job ran as long as the others.
    public var idleFraction: Double {
        let elements = (jobs + jobsPerElement - 1) / jobsPerElement
        return 1 - Double(jobs * job.cpus) / Double(max(1, elements * nodeCores))
    }

    /// Job slots of element `e`.
    public func jobs(ofElement e: Int) -> Range<Int> {
        (e * jobsPerElement) ..< min((e + 1) * jobsPerElement, jobs)
    }
}

/// Retries per the submit config (bps keys): `numberOfRetries`, `retryUnlessExit`, and on out of
/// memory min(m0 · memoryMultiplierⁿ, memoryLimit).
public struct RetryPolicy: Sendable, Codable, Equatable, Hashable {
    public var numberOfRetries: Int
    public var retryUnlessExit: [Int]
    public var memoryMultiplier: Double
    /// The cap; nil means the partition's memory per node.
    public var memoryLimitMB: Int?

    public init(numberOfRetries: Int, retryUnlessExit: [Int], memoryMultiplier: Double, memoryLimitMB: Int?) {
        self.numberOfRetries = numberOfRetries
        self.retryUnlessExit = retryUnlessExit
        self.memoryMultiplier = memoryMultiplier
        self.memoryLimitMB = memoryLimitMB
    }

    public init(_ s: TaskSettings) {
        self.init(numberOfRetries: max(0, s.numberOfRetries ?? 0), retryUnlessExit: s.retryUnlessExit ?? [],
                  memoryMultiplier: s.memoryMultiplier ?? 1, memoryLimitMB: s.memoryLimit)
    }

    /// Memory after `outOfMemoryCount` out-of-memory failures, starting from `initial`, never above the cap.
    public func memory(initial: Int, outOfMemoryCount n: Int, nodeMemoryMB: Int) -> Int {
        let cap = min(memoryLimitMB ?? nodeMemoryMB, nodeMemoryMB)
        let grown = Double(initial) * pow(memoryMultiplier, Double(n))
        return max(initial, min(cap, Int(grown.rounded(.up))))
    }
}

/// Arrays in submission order, and which job each element runs.
public struct ArrayPlan: Sendable {
    public var arrays: [PlannedArray]
    /// `elements[a][i]` is the job run by element i of array a.
    public var elements: [[Int32]]
    public var clustered: ClusteredGraph
}

public enum ArrayPlanner {
    /// Packs jobs into arrays: same cluster label and resources → one array, ordered by data ID,
    /// split at the site's MaxArraySize, with dependencies that never leave a job waiting forever.
    public static func plan(_ clustered: ClusteredGraph, site: SiteConfig) throws -> ArrayPlan {
        let jobs = clustered.jobs
        guard let order = clustered.jobOrder() else {
            throw QuantaError(.planning, "jobs form a cycle; check the cluster settings")
        }
        struct FitKey: Hashable {
            var resources: ResourceRequest
            var preferred: String?
            var cluster: String
        }
        var fitted: [FitKey: String] = [:]
        var partitionOf = [String](repeating: "", count: jobs.count)
        var last: (key: FitKey, partition: String)?
        for (j, job) in jobs.enumerated() {
            let key = FitKey(resources: job.resources, preferred: job.partition, cluster: job.cluster)
            if let last, last.key == key { partitionOf[j] = last.partition; continue }
            if fitted[key] == nil {
                fitted[key] = try site.partition(for: job.resources, preferred: job.partition, task: job.cluster).name
            }
            partitionOf[j] = fitted[key]!
            last = (key, partitionOf[j])
        }
        struct GroupKey: Hashable {
            var cluster: String
            var resources: ResourceRequest
            var partition: String
            var level: Int
        }
        func group(byLevel: Bool) -> (keys: [GroupKey], members: [GroupKey: [Int32]]) {
            var level = [Int](repeating: 0, count: jobs.count)
            if byLevel {
                for j in order { for u in clustered.upstream[Int(j)] { level[Int(j)] = max(level[Int(j)], level[Int(u)] + 1) } }
            }
            var keys: [GroupKey] = []
            var members: [GroupKey: [Int32]] = [:]
            for j in order {
                let job = jobs[Int(j)]
                let k = GroupKey(cluster: job.cluster, resources: job.resources, partition: partitionOf[Int(j)], level: level[Int(j)])
                if members[k] == nil { keys.append(k) }
                members[k, default: []].append(j)
            }
            return (keys, members)
        }
        var (keys, members) = group(byLevel: false)
        if !arraysAcyclic(keys.map { members[$0]! }, clustered: clustered) {
            (keys, members) = group(byLevel: true)
        }

        var arrays: [PlannedArray] = []
        var elements: [[Int32]] = []
        var usedNames = Set<String>(["merge"])
        let perCluster = Dictionary(grouping: keys, by: \.cluster).mapValues(\.count)
        for key in keys {
            var list = members[key]!
            list.sort { a, b in
                let ka = jobs[Int(a)].key, kb = jobs[Int(b)].key
                return ka != kb ? ka.lexicographicallyPrecedes(kb) : a < b
            }
            // Whole nodes: as many jobs per element as the node's cores and memory hold.
            let part = site.partitions.first { $0.name == key.partition }!
            let exclusive = site.exclusive || part.exclusive
            let perNode = exclusive ? max(1, min(part.coresPerNode / max(1, key.resources.cpus),
                                                 part.memoryPerNodeMB / max(1, key.resources.memoryMB))) : 1
            let jobsPerArray = site.maxArraySize * perNode
            let chunks = stride(from: 0, to: list.count, by: jobsPerArray).map {
                Array(list[$0 ..< min($0 + jobsPerArray, list.count)])
            }
            for chunk in chunks {
                var name = PathSanitizer.safeName(key.cluster)
                if perCluster[key.cluster]! > 1 || chunks.count > 1 { name += "-\(arrays.filter { $0.label == key.cluster }.count + 1)" }
                var unique = name, n = 2
                while usedNames.contains(unique) { unique = "\(name)-\(n)"; n += 1 }
                usedNames.insert(unique)
                let k = min(perNode, chunk.count)
                var array = PlannedArray(name: unique, label: key.cluster, size: (chunk.count + k - 1) / k,
                                         throttle: site.maxRunningPerArray, resources: key.resources,
                                         partition: key.partition,
                                         quanta: chunk.reduce(0) { $0 + jobs[Int($1)].quanta.count },
                                         dependencies: [])
                if exclusive {
                    let node = ResourceRequest(memoryMB: k * key.resources.memoryMB, cpus: k * key.resources.cpus,
                                               walltime: key.resources.walltime)
                    array.packing = Packing(jobsPerElement: k, jobs: chunk.count, job: key.resources, node: node,
                                            nodeCores: part.coresPerNode, nodeMemoryMB: part.memoryPerNodeMB)
                    array.resources = node
                }
                if array.resources.walltime == nil, let d = site.defaultWalltime {
                    // No requestWalltime: the site's default time (a bps site's walltime), within the partition's limit.
                    array.resources.walltime = min(d, part.maxWalltime ?? d)
                }
                arrays.append(array)
                elements.append(chunk)
            }
        }

        // Where each job landed: its array and its element (the array task id).
        var arrayOf = [Int32](repeating: -1, count: jobs.count)
        var indexOf = [Int32](repeating: -1, count: jobs.count)
        for (a, list) in elements.enumerated() {
            let k = arrays[a].jobsPerElement
            for (i, j) in list.enumerated() { arrayOf[Int(j)] = Int32(a); indexOf[Int(j)] = Int32(i / k) }
        }
        for a in arrays.indices {
            var corr: [Int32: Bool] = [:]
            let k = arrays[a].jobsPerElement
            for (i, j) in elements[a].enumerated() {
                for u in clustered.upstream[Int(j)] {
                    let ua = arrayOf[Int(u)]
                    let aligned = indexOf[Int(u)] == Int32(i / k) && arrays[Int(ua)].size == arrays[a].size
                    corr[ua] = (corr[ua] ?? true) && aligned
                }
            }
            arrays[a].dependencies = corr.keys.sorted().map {
                ArrayDependency(array: arrays[Int($0)].name, kind: corr[$0]! ? .aftercorr : .afterany)
            }
        }
        // Submission order: every array after the arrays it waits for (stable otherwise).
        var placed = Set<String>()
        var orderIdx: [Int] = []
        while orderIdx.count < arrays.count {
            for a in arrays.indices where !placed.contains(arrays[a].name)
                && arrays[a].dependencies.allSatisfy({ placed.contains($0.array) }) {
                placed.insert(arrays[a].name)
                orderIdx.append(a)
            }
        }
        return ArrayPlan(arrays: orderIdx.map { arrays[$0] }, elements: orderIdx.map { elements[$0] }, clustered: clustered)
    }

    /// True when no array waits on itself and the arrays form no cycle.
    static func arraysAcyclic(_ groups: [[Int32]], clustered: ClusteredGraph) -> Bool {
        var groupOf = [Int](repeating: 0, count: clustered.jobs.count)
        for (g, list) in groups.enumerated() { for j in list { groupOf[Int(j)] = g } }
        var edges = [Set<Int>](repeating: [], count: groups.count)
        for (j, ups) in clustered.upstream.enumerated() {
            for u in ups {
                if groupOf[Int(u)] == groupOf[j] { return false }
                edges[groupOf[j]].insert(groupOf[Int(u)])
            }
        }
        return TopologicalSort.order(count: groups.count) { Array(edges[$0]) }.stuck.isEmpty
    }
}
