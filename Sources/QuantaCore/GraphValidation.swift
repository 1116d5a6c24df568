import Foundation

extension QuantumGraph {
    /// Checks the graph is something we can run; `source` names the file in messages.
    /// Returns a topological order of the quanta.
    @discardableResult
    public func validate(source: String) throws -> [Int32] {
        func fail(_ what: String) -> QuantaError {
            QuantaError(.invalidGraph, "\(source): \(what)")
        }
        let nTypes = Int32(datasetTypes.count), nIDs = Int32(dataIDs.count), nRuns = Int32(runs.count)
        for (i, d) in datasets.enumerated() {
            guard d.type >= 0, d.type < nTypes, d.dataID >= 0, d.dataID < nIDs, d.run >= 0, d.run < nRuns else {
                throw fail("dataset #\(i) (\(d.id.lowercased)) refers to a dataset type, data ID or run that is not in the file; the file is damaged — write it again")
            }
        }
        let nDatasets = Int32(datasets.count)
        for (q, n) in quanta.enumerated() {
            guard n.task >= 0, n.task < Int32(tasks.count), n.dataID >= 0, n.dataID < nIDs else {
                throw fail("quantum #\(q) (\(n.id.lowercased)) refers to a task or data ID that is not in the file")
            }
            guard n.inputStart >= 0, n.inputCount >= 0, Int(n.inputStart + n.inputCount) <= quantumInputs.count,
                  n.outputStart >= 0, n.outputCount >= 0, Int(n.outputStart + n.outputCount) <= quantumOutputs.count
            else { throw fail("quantum \(describe(quantum: q)) has input/output ranges outside the file") }
            for d in inputs(of: q) where d < 0 || d >= nDatasets {
                throw fail("quantum \(describe(quantum: q)) reads dataset #\(d), which is not in the file (dangling reference)")
            }
            for d in outputs(of: q) where d < 0 || d >= nDatasets {
                throw fail("quantum \(describe(quantum: q)) writes dataset #\(d), which is not in the file (dangling reference)")
            }
        }
        // The duplicate-UUID check needs nothing the rest does: it runs on the second core.
        let (_, order) = try Parallel.both({
            var seen = UUIDSet(capacity: quanta.count + datasets.count)
            for (q, n) in quanta.enumerated() where !seen.insert(n.id) {
                throw fail("UUID \(n.id.lowercased) is used twice (quantum \(describe(quantum: q))); every quantum and dataset needs its own UUID")
            }
            for (d, n) in datasets.enumerated() where !seen.insert(n.id) {
                throw fail("UUID \(n.id.lowercased) is used twice (dataset \(describe(dataset: d))); every quantum and dataset needs its own UUID")
            }
        }, {
            var producer = [Int32](repeating: -1, count: datasets.count)
            for q in quanta.indices {
                for d in outputs(of: q) {
                    if producer[Int(d)] >= 0 {
                        throw fail("dataset \(describe(dataset: Int(d))) is written by both \(describe(quantum: Int(producer[Int(d)]))) and \(describe(quantum: q))")
                    }
                    producer[Int(d)] = Int32(q)
                }
            }
            for q in quanta.indices {
                for d in inputs(of: q) where producer[Int(d)] < 0 && datasets[Int(d)].location == nil {
                    throw fail("quantum \(describe(quantum: q)) reads \(describe(dataset: Int(d))), which no quantum writes and which has no datastore location (dangling input); add its location or the quantum that writes it")
                }
            }
            return try topologicalOrder(producers: producer, source: source)
        })
        return order
    }

    /// Kahn's algorithm over quantum edges; a cycle is reported by the task labels on it.
    public func topologicalOrder(producers: [Int32], source: String) throws -> [Int32] {
        let (offsets, targets) = upstreamEdges(producers: producers)
        for q in quanta.indices where targets[Int(offsets[q]) ..< Int(offsets[q + 1])].contains(Int32(q)) {
            throw QuantaError(.invalidGraph, "\(source): cycle: quantum \(describe(quantum: q)) reads its own output")
        }
        let (order, stuck) = TopologicalSort.order(count: quanta.count) { q, visit in
            for i in Int(offsets[q]) ..< Int(offsets[q + 1]) { visit(Int(targets[i])) }
        }
        if !stuck.isEmpty {
            let labels = Array(Set(stuck.map { taskLabel(ofQuantum: $0) })).sorted()
            throw QuantaError(.invalidGraph, "\(source): cycle among tasks \(labels.joined(separator: " → ")) (\(stuck.count) quanta never become ready); a task must not read, directly or through others, what it writes")
        }
        return order.map(Int32.init)
    }
}

/// A set of UUIDs in one flat open-addressing table (two words per slot, linear probing), for
/// the duplicate check over millions of IDs: `Set<UUID>` hashed every UUID through SipHash and
/// was 0.6 s of planning a million quanta.
struct UUIDSet {
    private var slots: [UInt64]  // pairs (high, low); (0, 0) marks an empty slot
    private let mask: Int
    private var hasNil = false

    init(capacity: Int) {
        var size = 16
        while size < capacity + capacity / 2 { size <<= 1 }
        slots = [UInt64](repeating: 0, count: 2 * size)
        mask = size - 1
    }

    /// False when the UUID was already there.
    mutating func insert(_ id: UUID) -> Bool {
        let (hi, lo) = withUnsafeBytes(of: id.uuid) { ($0.loadUnaligned(fromByteOffset: 0, as: UInt64.self),
                                                         $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) }
        if hi == 0 && lo == 0 {
            defer { hasNil = true }
            return !hasNil
        }
        // Time-ordered UUIDs differ mostly in their low (random) half; mix both halves.
        var h = (hi ^ (lo &* 0x9E37_79B9_7F4A_7C15))
        h ^= h >> 29
        h = h &* 0xBF58_476D_1CE4_E5B9
        h ^= h >> 32
        var i = Int(truncatingIfNeeded: h) & mask
        return slots.withUnsafeMutableBufferPointer { s in
            while true {
                let a = s[2 * i], b = s[2 * i + 1]
                if a == 0 && b == 0 {
                    s[2 * i] = hi; s[2 * i + 1] = lo
                    return true
                }
                if a == hi && b == lo { return false }
                i = (i + 1) & mask
            }
        }
    }
}
