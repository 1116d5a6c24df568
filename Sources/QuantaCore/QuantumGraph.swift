import Foundation

/// A task: label, dimensions, and the dataset types it reads and writes.
public struct TaskNode: Sendable, Equatable {
    public var label: String
    public var dimensions: [String]
    public var inputTypes: [String]
    public var outputTypes: [String]

    public init(label: String, dimensions: [String], inputTypes: [String] = [], outputTypes: [String] = []) {
        self.label = label
        self.dimensions = dimensions
        self.inputTypes = inputTypes
        self.outputTypes = outputTypes
    }
}

/// A dataset type: name, dimensions, storage class.
public struct DatasetTypeNode: Sendable, Equatable {
    public var name: String
    public var dimensions: [String]
    public var storageClass: String

    public init(name: String, dimensions: [String], storageClass: String) {
        self.name = name
        self.dimensions = dimensions
        self.storageClass = storageClass
    }
}

/// One dataset: indices into the graph's tables, plus its UUID and, for overall inputs, where it is.
public struct DatasetNode: Sendable, Equatable {
    public var id: UUID
    public var type: Int32
    public var dataID: Int32
    public var run: Int32
    /// Datastore path (relative to the datastore root) of a dataset that exists before the run.
    public var location: String?

    public init(id: UUID, type: Int32, dataID: Int32, run: Int32, location: String?) {
        self.id = id
        self.type = type
        self.dataID = dataID
        self.run = run
        self.location = location
    }
}

/// One quantum: task and data ID indices, and ranges into the graph's flat input/output arrays.
public struct QuantumNode: Sendable, Equatable {
    public var id: UUID
    public var task: Int32
    public var dataID: Int32
    public var inputStart: Int32
    public var inputCount: Int32
    public var outputStart: Int32
    public var outputCount: Int32

    public init(id: UUID, task: Int32, dataID: Int32, inputStart: Int32, inputCount: Int32, outputStart: Int32, outputCount: Int32) {
        self.id = id
        self.task = task
        self.dataID = dataID
        self.inputStart = inputStart
        self.inputCount = inputCount
        self.outputStart = outputStart
        self.outputCount = outputCount
    }
}

/// A quantum graph held in flat arrays with interned data IDs and string tables,
/// so that millions of quanta cost tens of bytes each, not objects.
public struct QuantumGraph: Sendable, Equatable {
    /// Dimension names in universe order.
    public var universe: [String]
    /// Free-form key/values: `outputRun`, `output`, `inputCollections`, `pipeline`, …
    public var metadata: [String: String]
    public var tasks: [TaskNode]
    public var datasetTypes: [DatasetTypeNode]
    public var runs: [String]
    public var dataIDs: [DataID]
    public var datasets: [DatasetNode]
    public var quanta: [QuantumNode]
    public var quantumInputs: [Int32]
    public var quantumOutputs: [Int32]

    public init(universe: [String] = [], metadata: [String: String] = [:], tasks: [TaskNode] = [],
                datasetTypes: [DatasetTypeNode] = [], runs: [String] = [], dataIDs: [DataID] = [],
                datasets: [DatasetNode] = [], quanta: [QuantumNode] = [],
                quantumInputs: [Int32] = [], quantumOutputs: [Int32] = []) {
        self.universe = universe
        self.metadata = metadata
        self.tasks = tasks
        self.datasetTypes = datasetTypes
        self.runs = runs
        self.dataIDs = dataIDs
        self.datasets = datasets
        self.quanta = quanta
        self.quantumInputs = quantumInputs
        self.quantumOutputs = quantumOutputs
    }

    public var outputRun: String? { metadata["outputRun"] }

    public func inputs(of q: Int) -> ArraySlice<Int32> {
        let n = quanta[q]
        return quantumInputs[Int(n.inputStart) ..< Int(n.inputStart + n.inputCount)]
    }

    public func outputs(of q: Int) -> ArraySlice<Int32> {
        let n = quanta[q]
        return quantumOutputs[Int(n.outputStart) ..< Int(n.outputStart + n.outputCount)]
    }

    public func taskLabel(ofQuantum q: Int) -> String { tasks[Int(quanta[q].task)].label }
    public func dataID(ofQuantum q: Int) -> DataID { dataIDs[Int(quanta[q].dataID)] }

    /// Describes a dataset for messages: `calexp {visit=1, detector=2}`.
    public func describe(dataset d: Int) -> String {
        let n = datasets[d]
        return "\(datasetTypes[Int(n.type)].name) {\(dataIDs[Int(n.dataID)])}"
    }

    /// Describes a quantum for messages: `isr {visit=1, detector=2}`.
    public func describe(quantum q: Int) -> String {
        "\(taskLabel(ofQuantum: q)) {\(dataID(ofQuantum: q))}"
    }

    /// For each dataset, the quantum that writes it, or -1 for an overall input.
    public func producers() -> [Int32] {
        var producer = [Int32](repeating: -1, count: datasets.count)
        for q in quanta.indices {
            for d in outputs(of: q) { producer[Int(d)] = Int32(q) }
        }
        return producer
    }

    /// Quantum → upstream quanta (deduplicated), in CSR form: `offsets[q] ..< offsets[q+1]`.
    public func upstreamEdges(producers: [Int32]) -> (offsets: [Int32], targets: [Int32]) {
        var offsets = [Int32](repeating: 0, count: quanta.count + 1)
        var targets: [Int32] = []
        targets.reserveCapacity(quantumInputs.count)
        for q in quanta.indices {
            let start = targets.count
            for d in inputs(of: q) {
                let p = producers[Int(d)]
                if p >= 0, !targets[start...].contains(p) { targets.append(p) }
            }
            offsets[q + 1] = Int32(targets.count)
        }
        return (offsets, targets)
    }
}

/// Builds a graph with interning, for generators, readers and tests.
public struct GraphBuilder: Sendable {
    public private(set) var graph: QuantumGraph
    private var dataIDIndex: [DataID: Int32] = [:]
    private var runIndex: [String: Int32] = [:]
    private var typeIndex: [String: Int32] = [:]
    private var taskIndex: [String: Int32] = [:]
    private var datasetIndex: [DatasetKey: Int32] = [:]
    private var uuids = UUIDGenerator()

    private struct DatasetKey: Hashable {
        var type: Int32
        var dataID: Int32
        var run: Int32
    }

    public init(universe: [String], metadata: [String: String] = [:]) {
        graph = QuantumGraph(universe: universe, metadata: metadata)
    }

    /// Room for what a reader knows is coming (growing the dictionaries was ~3 % of reading a `.qg`).
    public mutating func reserve(quanta: Int, datasets: Int) {
        graph.quanta.reserveCapacity(quanta)
        graph.datasets.reserveCapacity(datasets)
        datasetIndex.reserveCapacity(datasets)
        dataIDIndex.reserveCapacity(datasets)
    }

    public mutating func addDatasetType(_ name: String, dimensions: [String], storageClass: String) {
        guard typeIndex[name] == nil else { return }
        typeIndex[name] = Int32(graph.datasetTypes.count)
        graph.datasetTypes.append(DatasetTypeNode(name: name, dimensions: dimensions, storageClass: storageClass))
    }

    public mutating func addTask(_ task: TaskNode) {
        guard taskIndex[task.label] == nil else { return }
        taskIndex[task.label] = Int32(graph.tasks.count)
        graph.tasks.append(task)
    }

    public mutating func intern(_ dataID: DataID) -> Int32 {
        if let i = dataIDIndex[dataID] { return i }
        let i = Int32(graph.dataIDs.count)
        graph.dataIDs.append(dataID)
        dataIDIndex[dataID] = i
        return i
    }

    public mutating func internRun(_ run: String) -> Int32 {
        if let i = runIndex[run] { return i }
        let i = Int32(graph.runs.count)
        graph.runs.append(run)
        runIndex[run] = i
        return i
    }

    /// The dataset of this type, data ID and run, created on first use.
    public mutating func dataset(_ type: String, _ dataID: DataID, run: String, location: String? = nil,
                                 id: UUID? = nil) -> Int32 {
        guard let t = typeIndex[type] else { preconditionFailure("unknown dataset type \(type)") }
        let key = DatasetKey(type: t, dataID: intern(dataID), run: internRun(run))
        if let i = datasetIndex[key] {
            if let location { graph.datasets[Int(i)].location = location }
            return i
        }
        let i = Int32(graph.datasets.count)
        graph.datasets.append(DatasetNode(id: id ?? uuids.next(), type: t, dataID: key.dataID, run: key.run,
                                          location: location))
        datasetIndex[key] = i
        return i
    }

    @discardableResult
    public mutating func addQuantum(task: String, dataID: DataID, inputs: [Int32], outputs: [Int32],
                                    id: UUID? = nil) -> Int {
        guard let t = taskIndex[task] else { preconditionFailure("unknown task \(task)") }
        let q = QuantumNode(id: id ?? uuids.next(), task: t, dataID: intern(dataID),
                            inputStart: Int32(graph.quantumInputs.count), inputCount: Int32(inputs.count),
                            outputStart: Int32(graph.quantumOutputs.count), outputCount: Int32(outputs.count))
        graph.quantumInputs.append(contentsOf: inputs)
        graph.quantumOutputs.append(contentsOf: outputs)
        graph.quanta.append(q)
        return graph.quanta.count - 1
    }
}

/// Version 7 UUIDs by the million (graph building, new output UUIDs at plan time): one clock read,
/// and xoshiro256** seeded once from the system's randomness. `UUID.v7()` asks the system for
/// its random bits every time; ten calls per UUID made a million of them take 4.5 s.
public struct UUIDGenerator: Sendable {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64
    private let ms: UInt64

    public init() {
        var rng = SystemRandomNumberGenerator()
        s0 = rng.next(); s1 = rng.next(); s2 = rng.next(); s3 = rng.next() | 1
        ms = UInt64(Date().timeIntervalSince1970 * 1000)
    }

    @inline(__always) private mutating func word() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t
        s3 = s3 << 45 | s3 >> 19
        return result
    }

    public mutating func next() -> UUID {
        let a = word(), b = word()
        return UUID.v7(ms: ms, a, b)
    }
}

extension UUID {
    /// A time-ordered UUID (version 7), as LSST uses for datasets and quanta.
    public static func v7() -> UUID {
        var rng = SystemRandomNumberGenerator()
        return v7(ms: UInt64(Date().timeIntervalSince1970 * 1000), rng.next(), rng.next())
    }

    /// Version 7 from a millisecond time and 74 random bits taken from `a` and `b`.
    @inline(__always) static func v7(ms: UInt64, _ a: UInt64, _ b: UInt64) -> UUID {
        let hi = (ms << 16) | 0x7000 | (a & 0x0fff)
        let lo = 0x8000_0000_0000_0000 | (b & 0x3fff_ffff_ffff_ffff)
        return withUnsafeBytes(of: (hi.bigEndian, lo.bigEndian)) { UUID(uuid: $0.loadUnaligned(as: uuid_t.self)) }
    }

    /// Lower-case text form, as LSST writes UUIDs. Hex-encoded by hand: `uuidString.lowercased()`
    /// (snprintf, then a second string) was a visible share of writing a 1M-quantum snapshot.
    public var lowercased: String {
        let hex: StaticString = "0123456789abcdef"
        return withUnsafeBytes(of: uuid) { raw in
            String(unsafeUninitializedCapacity: 36) { out in
                hex.withUTF8Buffer { h in
                    var k = 0
                    for (i, b) in raw.enumerated() {
                        if i == 4 || i == 6 || i == 8 || i == 10 { out[k] = UInt8(ascii: "-"); k += 1 }
                        out[k] = h[Int(b >> 4)]; out[k + 1] = h[Int(b & 0x0f)]; k += 2
                    }
                    return k
                }
            }
        }
    }
}
