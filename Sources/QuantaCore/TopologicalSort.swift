import Foundation

/// Kahn's algorithm over nodes `0..<count` given each node's upstream nodes.
public enum TopologicalSort {
    /// The nodes in dependency order, and the nodes on or behind a cycle (empty when acyclic).
    public static func order(count: Int, upstream: (Int) -> [Int]) -> (order: [Int], stuck: [Int]) {
        var indegree = [Int](repeating: 0, count: count)
        var downstream = [[Int]](repeating: [], count: count)
        for n in 0..<count {
            for u in upstream(n) {
                indegree[n] += 1
                downstream[u].append(n)
            }
        }
        var queue = (0..<count).filter { indegree[$0] == 0 }
        queue.reserveCapacity(count)
        var head = 0
        while head < queue.count {
            let n = queue[head]; head += 1
            for d in downstream[n] {
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
