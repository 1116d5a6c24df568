import Foundation

/// Kahn's algorithm over nodes `0..<count` given each node's upstream nodes.
public enum TopologicalSort {
    /// The nodes in dependency order, and the nodes on or behind a cycle (empty when acyclic).
    public static func order(count: Int, upstream: (Int) -> [Int]) -> (order: [Int], stuck: [Int]) {
        order(count: count) { n, visit in upstream(n).forEach(visit) }
    }

    /// The same, for millions of nodes: `forEachUpstream(n, visit)` calls `visit` once per
    /// upstream node of `n` (it is called twice per node). Edges go into flat arrays, not an
    /// array per node.
    public static func order(count: Int, forEachUpstream: (Int, (Int) -> Void) -> Void) -> (order: [Int], stuck: [Int]) {
        var indegree = [Int32](repeating: 0, count: count)
        var offsets = [Int](repeating: 0, count: count + 1)
        for n in 0..<count {
            forEachUpstream(n) { u in
                indegree[n] += 1
                offsets[u + 1] += 1
            }
        }
        for i in 0..<count { offsets[i + 1] += offsets[i] }
        var fill = offsets
        var downstream = [Int32](repeating: 0, count: offsets[count])
        for n in 0..<count {
            forEachUpstream(n) { u in
                downstream[fill[u]] = Int32(n)
                fill[u] += 1
            }
        }
        var queue: [Int] = []
        queue.reserveCapacity(count)
        for n in 0..<count where indegree[n] == 0 { queue.append(n) }
        var head = 0
        while head < queue.count {
            let n = queue[head]; head += 1
            for i in offsets[n] ..< offsets[n + 1] {
                let d = Int(downstream[i])
                indegree[d] -= 1
                if indegree[d] == 0 { queue.append(d) }
            }
        }
        return (queue, queue.count == count ? [] : (0..<count).filter { indegree[$0] > 0 })
    }
}

extension JSONEncoder {
    /// Sorted keys, indented, slashes as they are: for files people read (plan.json, manifests).
    public static var pretty: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return e
    }
}
