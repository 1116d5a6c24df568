import Foundation
import QuantaCore

/// A dataset as a job sees it: where to read it or where to write it.
public struct DatasetSpec: Sendable, Equatable {
    public var id: UUID
    public var type: String
    public var dataID: DataID
    public var run: String
    /// Relative to the datastore root.
    public var path: String
    /// For an input made inside the graph: the quantum that makes it and the job that runs that
    /// quantum (what run-quantum asks before it runs a quantum: did the producer succeed?).
    public var producer: ProducerRef? = nil
}

/// The quantum that produces a dataset, and where its outcome is recorded: job `array:index`'s manifest.
public struct ProducerRef: Sendable, Equatable {
    public var quantum: UUID
    public var task: String
    public var dataID: DataID
    public var array: String
    public var index: Int
}

public struct QuantumSpec: Sendable {
    public var id: UUID
    public var task: String
    public var dataID: DataID
    public var inputs: [DatasetSpec]
    public var outputs: [DatasetSpec]
}

/// How a task is executed, from the submit config.
public struct TaskExecution: Sendable, Equatable {
    public var executor: Executor
    public var command: String?
    public var builtin: String?

    public init(executor: Executor, command: String?, builtin: String?) {
        self.executor = executor
        self.command = command
        self.builtin = builtin
    }
}

/// Everything one array element needs, read from its own rows of the snapshot.
public struct JobSpec: Sendable {
    public var array: String
    public var index: Int
    public var label: String
    public var quanta: [QuantumSpec]
    public var tasks: [String: TaskExecution]
    public var meta: SnapshotMeta
}

public struct SnapshotMeta: Sendable, Equatable {
    public var submission: String
    public var repo: String
    public var datastoreRoot: String
    public var outputRun: String
    public var output: String?
    public var inputCollections: [String]
    public var graph: String
    /// What run-quantum checks in FITS outputs.
    public var validation: ValidationConfig
    /// The repository's identity at plan time (`Repository.id`); empty for butler repositories.
    public var repoID: String = ""

    public init(submission: String, repo: String, datastoreRoot: String, outputRun: String, output: String?,
                inputCollections: [String], graph: String, validation: ValidationConfig = ValidationConfig()) {
        self.validation = validation
        self.submission = submission
        self.repo = repo
        self.datastoreRoot = datastoreRoot
        self.outputRun = outputRun
        self.output = output
        self.inputCollections = inputCollections
        self.graph = graph
    }
}

/// The quantum-butler snapshot: jobs → quanta → input locations and predicted outputs.
/// Written once at plan time, then only read (jobs read only their own rows).
public enum Snapshot {
    public static func write(path: String, meta: SnapshotMeta, graph: QuantumGraph, plan: ArrayPlan,
                             repo: Repository, tasks: [String: TaskExecution]) throws {
        try SnapshotFile.write(path: path, meta: metaPairs(meta), graph: graph, plan: plan, repo: repo, tasks: tasks)
    }

    static func metaPairs(_ meta: SnapshotMeta) -> [String: String] {
        ["submission": meta.submission, "repo": meta.repo, "datastoreRoot": meta.datastoreRoot,
         "outputRun": meta.outputRun, "output": meta.output ?? "",
         "inputCollections": meta.inputCollections.joined(separator: "\n"), "graph": meta.graph,
         "validation": meta.validation.json, "repoID": meta.repoID, "formatVersion": "3"]
    }

    static func meta(from m: [String: String]) -> SnapshotMeta {
        let output = m["output"] ?? ""
        var meta = SnapshotMeta(submission: m["submission"] ?? "", repo: m["repo"] ?? "", datastoreRoot: m["datastoreRoot"] ?? "",
                                outputRun: m["outputRun"] ?? "", output: output.isEmpty ? nil : output,
                                inputCollections: (m["inputCollections"] ?? "").split(separator: "\n").map(String.init),
                                graph: m["graph"] ?? "",
                                validation: m["validation"].flatMap(ValidationConfig.decode(json:)) ?? ValidationConfig())
        meta.repoID = m["repoID"] ?? ""
        return meta
    }

    /// Submissions planned before the binary snapshot kept `snapshot.sqlite`; that reader is gone
    /// (it made run-quantum link SQLite): such a directory gets one clear error.
    static func refuseLegacy(_ path: String) throws {
        guard !FileManager.default.fileExists(atPath: path), path.hasSuffix(".bin") else { return }
        let old = String(path.dropLast(4)) + ".sqlite"
        if FileManager.default.fileExists(atPath: old) {
            throw QuantaError(.usage, "\(old): a submission planned by an older Quanta (snapshot.sqlite); plan the graph again with this version ('quanta plan'), into a new directory")
        }
    }

    /// The graph's storage class names (an LSST graph of pipe_base's mock tasks has `_mock_…` ones,
    /// which `butler aggregate-graph` reads only with `--mock-storage-classes`).
    public static func storageClasses(path: String) throws -> [String] {
        try refuseLegacy(path)
        return try SnapshotFile.Reader(path).header.storageClasses
    }

    public static func meta(path: String) throws -> SnapshotMeta {
        try refuseLegacy(path)
        return try SnapshotFile.Reader(path).meta
    }

    /// One job's rows: its quanta in run order with their inputs and outputs.
    public static func job(path: String, array: String, index: Int) throws -> JobSpec {
        try refuseLegacy(path)
        let r = try SnapshotFile.Reader(path)
        guard let a = r.header.arrays.firstIndex(where: { $0[0] == array }), index >= 0, index < (try r.jobCount(array: a)) else {
            let known = try r.header.arrays.indices.map { "\(r.header.arrays[$0][0]) (0-\(try r.jobCount(array: $0) - 1))" }.joined(separator: ", ")
            throw QuantaError(.usage, "\(path): no job \(array):\(index); arrays are \(known)")
        }
        // The reader's errors name the file, the damage and the fix.
        let quanta = try r.quanta(array: a, index: index).map { try r.quantum($0) }
        var tasks: [String: TaskExecution] = [:]
        for label in Set(quanta.map(\.task)) {
            if let t = r.header.tasks[label], t.count == 3, let executor = t[0].flatMap(Executor.init(rawValue:)) {
                tasks[label] = TaskExecution(executor: executor, command: t[1], builtin: t[2])
            }
        }
        return JobSpec(array: array, index: index, label: r.header.arrays[a][1], quanta: quanta, tasks: tasks, meta: r.meta)
    }

    /// Every job's quanta (inputs and outputs resolved), in plan order, read once: for tools that
    /// walk a whole submission (the benchmarks' simulated run). Returns the snapshot's metadata.
    @discardableResult
    public static func forEachJob(path: String, _ body: (_ array: String, _ index: Int, _ quanta: [QuantumSpec], _ meta: SnapshotMeta) throws -> Void) throws -> SnapshotMeta {
        try refuseLegacy(path)
        let r = try SnapshotFile.Reader(path)
        let meta = r.meta
        for (a, names) in r.header.arrays.enumerated() {
            for index in 0..<(try r.jobCount(array: a)) {
                try body(names[0], index, try r.quanta(array: a, index: index).map { try r.quantum($0) }, meta)
            }
        }
        return meta
    }

    /// How many jobs the plan has.
    public static func jobCount(path: String) throws -> Int {
        try refuseLegacy(path)
        let r = try SnapshotFile.Reader(path)
        return try r.header.arrays.indices.reduce(0) { $0 + (try r.jobCount(array: $1)) }
    }

    public struct JobSummary: Sendable {
        public var array: String
        public var index: Int
        public var label: String
        public var tasks: [String]
    }

    /// Every job with the task label of each of its quanta (for status and merge reports).
    public static func jobs(path: String) throws -> [JobSummary] {
        try refuseLegacy(path)
        let r = try SnapshotFile.Reader(path)
        var out: [JobSummary] = []
        for (a, names) in r.header.arrays.enumerated() {
            for i in 0..<(try r.jobCount(array: a)) {
                out.append(JobSummary(array: names[0], index: i, label: names[1], tasks: try r.quanta(array: a, index: i).map(r.taskLabel)))
            }
        }
        return out
    }

    public static func datasetTypes(path: String) throws -> [(name: String, dimensions: [String], storageClass: String)] {
        try refuseLegacy(path)
        return try SnapshotFile.Reader(path).header.datasetTypes.sorted { $0[0] < $1[0] }.map {
            ($0[0], $0[1].split(separator: ",").map(String.init), $0[2])
        }
    }
}

extension Snapshot {
    /// The outputs made, directly or further down, from the datasets with these UUIDs
    /// (`rerun --replace` names them).
    public static func downstream(path: String, of ids: [UUID]) throws -> [PredictedOutput] {
        try refuseLegacy(path)
        let r = try SnapshotFile.Reader(path)
        let repo = (r.header.template, r.header.repoKind == Repository.Kind.butler.rawValue)
        let start = try r.datasetIndices(of: Set(ids))
        return try r.downstream(of: start).map { PredictedOutput(try r.dataset($0, repo: repo)) }
    }

    /// The jobs that make those outputs: every job with a quantum that reads, directly or further
    /// down, the datasets with these UUIDs (`rerun --downstream` runs them again), each once, in
    /// no particular order. Needs a snapshot that records producers (QSNAP004).
    public static func downstreamJobs(path: String, of ids: [UUID]) throws -> Set<JobSlot> {
        try refuseLegacy(path)
        let r = try SnapshotFile.Reader(path)
        guard r.hasProducers else {
            throw QuantaError(.usage, "\(path) was planned by an older Quanta and does not record which job makes each dataset; plan the graph again to rerun downstream")
        }
        var jobs = Set<JobSlot>()
        for d in try r.downstream(of: try r.datasetIndices(of: Set(ids))) {
            if let p = try r.producer(ofDataset: d) { jobs.insert(JobSlot(array: p.array, index: p.index)) }
        }
        return jobs
    }
}

/// One job of a submission: an array and an index in it, as status lists them (`isr_0:3`).
public struct JobSlot: Hashable, Sendable, CustomStringConvertible {
    public var array: String
    public var index: Int
    public init(array: String, index: Int) {
        self.array = array
        self.index = index
    }
    public var description: String { "\(array):\(index)" }
}

/// One output the plan predicts a job writes: what the merge compares a manifest's record with.
public struct PredictedOutput: Sendable, Equatable {
    /// Lower-case UUID text, as manifests and the registry spell it.
    public var id: String
    public var type: String
    public var run: String
    /// `DataID.json`.
    public var dataID: String
    /// Relative to the datastore root.
    public var path: String

    init(_ d: DatasetSpec) {
        self.init(id: d.id.lowercased, type: d.type, run: d.run, dataID: d.dataID.json, path: d.path)
    }

    init(id: String, type: String, run: String, dataID: String, path: String) {
        self.id = id
        self.type = type
        self.run = run
        self.dataID = dataID
        self.path = path
    }

    /// `calexp {visit=1, detector=2}`, for messages.
    public var description: String { "\(type) \(DataID.describe(json: dataID))" }
}

/// The plan's predicted outputs, job by job (issue 12: the merge registers nothing else).
/// Shared by the merge's threads: the reader memoises verified chunks, so reads take a lock.
public final class OutputPredictions: @unchecked Sendable {
    let path: String
    let reader: SnapshotFile.Reader?
    let arrays: [String: Int]
    let lock = NSLock()

    public init(path: String) throws {
        self.path = path
        try Snapshot.refuseLegacy(path)
        let r = try SnapshotFile.Reader(path)
        reader = r
        arrays = Dictionary(r.header.arrays.enumerated().map { ($1[0], $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// Every output of job `array:index`'s quanta, by UUID.
    public func outputs(array: String, index: Int) throws -> [String: PredictedOutput] {
        var out: [String: PredictedOutput] = [:]
        func add(_ d: DatasetSpec) { out[d.id.lowercased] = PredictedOutput(d) }
        guard let r = reader, let a = arrays[array] else {
            for q in try Snapshot.job(path: path, array: array, index: index).quanta { q.outputs.forEach(add) }
            return out
        }
        lock.lock()
        defer { lock.unlock() }
        guard index >= 0, index < (try r.jobCount(array: a)) else {
            throw QuantaError(.usage, "\(path): no job \(array):\(index)")
        }
        // The reader's errors name the file, the damage and the fix.
        for q in try r.quanta(array: a, index: index) { try r.datasets(.qOut, of: q).forEach(add) }
        return out
    }
}
