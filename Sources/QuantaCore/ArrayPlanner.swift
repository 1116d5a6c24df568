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

    /// `0-11%4`.
    public var arraySpec: String {
        (size == 1 ? "0" : "0-\(size - 1)") + (throttle > 0 && throttle < size ? "%\(throttle)" : "")
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
        var partitionOf: [Int32: String] = [:]
        for (j, job) in jobs.enumerated() {
            let key = FitKey(resources: job.resources, preferred: job.partition, cluster: job.cluster)
            if fitted[key] == nil {
                fitted[key] = try site.partition(for: job.resources, preferred: job.partition, task: job.cluster).name
            }
            partitionOf[Int32(j)] = fitted[key]
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
                let k = GroupKey(cluster: job.cluster, resources: job.resources, partition: partitionOf[j]!, level: level[Int(j)])
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
            let chunks = stride(from: 0, to: list.count, by: site.maxArraySize).map {
                Array(list[$0 ..< min($0 + site.maxArraySize, list.count)])
            }
            for chunk in chunks {
                var name = PathSanitizer.safeName(key.cluster)
                if perCluster[key.cluster]! > 1 || chunks.count > 1 { name += "-\(arrays.filter { $0.label == key.cluster }.count + 1)" }
                var unique = name, n = 2
                while usedNames.contains(unique) { unique = "\(name)-\(n)"; n += 1 }
                usedNames.insert(unique)
                arrays.append(PlannedArray(name: unique, label: key.cluster, size: chunk.count,
                                           throttle: site.maxRunningPerArray, resources: key.resources,
                                           partition: key.partition,
                                           quanta: chunk.reduce(0) { $0 + jobs[Int($1)].quanta.count },
                                           dependencies: []))
                elements.append(chunk)
            }
        }

        // Where each job landed.
        var arrayOf = [Int32](repeating: -1, count: jobs.count)
        var indexOf = [Int32](repeating: -1, count: jobs.count)
        for (a, list) in elements.enumerated() {
            for (i, j) in list.enumerated() { arrayOf[Int(j)] = Int32(a); indexOf[Int(j)] = Int32(i) }
        }
        for a in arrays.indices {
            var corr: [Int32: Bool] = [:]
            for (i, j) in elements[a].enumerated() {
                for u in clustered.upstream[Int(j)] {
                    let ua = arrayOf[Int(u)]
                    let aligned = indexOf[Int(u)] == Int32(i) && arrays[Int(ua)].size == arrays[a].size
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
