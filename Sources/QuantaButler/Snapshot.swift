import Foundation
import GRDB
import QuantaCore

/// A dataset as a job sees it: where to read it or where to write it.
public struct DatasetSpec: Sendable, Equatable {
    public var id: UUID
    public var type: String
    public var dataID: DataID
    public var run: String
    /// Relative to the datastore root.
    public var path: String
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
    public var executor: String
    public var command: String?
    public var builtin: String?

    public init(executor: String, command: String?, builtin: String?) {
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
        let tmp = path + ".tmp-\(getpid())"
        try? FileManager.default.removeItem(atPath: tmp)
        do {
            let queue = try DatabaseQueue(path: tmp)
            try queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF") }
            try queue.write { db in
                try db.execute(sql: """
                CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE task (label TEXT PRIMARY KEY, executor TEXT NOT NULL, command TEXT, builtin TEXT);
                CREATE TABLE dataset_type (name TEXT PRIMARY KEY, dimensions TEXT NOT NULL, storage_class TEXT NOT NULL);
                CREATE TABLE job (id INTEGER PRIMARY KEY, array TEXT NOT NULL, idx INTEGER NOT NULL, label TEXT NOT NULL,
                                  UNIQUE (array, idx));
                CREATE TABLE quantum (id INTEGER PRIMARY KEY, job INTEGER NOT NULL, seq INTEGER NOT NULL,
                                      uuid TEXT NOT NULL, task TEXT NOT NULL, data_id TEXT NOT NULL);
                CREATE INDEX quantum_job ON quantum(job, seq);
                CREATE TABLE io (quantum INTEGER NOT NULL, output INTEGER NOT NULL, uuid TEXT NOT NULL, type TEXT NOT NULL,
                                 data_id TEXT NOT NULL, run TEXT NOT NULL, path TEXT NOT NULL);
                CREATE INDEX io_quantum ON io(quantum);
                """)
                let m: [(String, String)] = [
                    ("submission", meta.submission), ("repo", meta.repo), ("datastoreRoot", meta.datastoreRoot),
                    ("outputRun", meta.outputRun), ("output", meta.output ?? ""),
                    ("inputCollections", meta.inputCollections.joined(separator: "\n")), ("graph", meta.graph),
                    ("validation", meta.validation.json), ("formatVersion", "1"),
                ]
                for (k, v) in m { try db.execute(sql: "INSERT INTO meta VALUES (?, ?)", arguments: [k, v]) }
                for (label, t) in tasks.sorted(by: { $0.key < $1.key }) {
                    try db.execute(sql: "INSERT INTO task VALUES (?, ?, ?, ?)", arguments: [label, t.executor, t.command, t.builtin])
                }
                for t in graph.datasetTypes {
                    try db.execute(sql: "INSERT INTO dataset_type VALUES (?, ?, ?)",
                                   arguments: [t.name, t.dimensions.joined(separator: ","), t.storageClass])
                }
                // Paths of every dataset: where inputs are, where outputs will be.
                let dataIDJSON = graph.dataIDs.map(\.json)
                let producers = graph.producers()
                let paths: [String] = graph.datasets.indices.map { d in
                    let n = graph.datasets[d]
                    if producers[d] < 0, let loc = n.location { return loc }
                    let t = graph.datasetTypes[Int(n.type)]
                    return repo.relativePath(run: graph.runs[Int(n.run)], datasetType: t.name, storageClass: t.storageClass,
                                             dataID: graph.dataIDs[Int(n.dataID)])
                }
                let datasetIDs = graph.datasets.map(\.id.lowercased)
                let insJob = try db.makeStatement(sql: "INSERT INTO job (id, array, idx, label) VALUES (?, ?, ?, ?)")
                let insQ = try db.makeStatement(sql: "INSERT INTO quantum (id, job, seq, uuid, task, data_id) VALUES (?, ?, ?, ?, ?, ?)")
                let insIO = try db.makeStatement(sql: "INSERT INTO io VALUES (?, ?, ?, ?, ?, ?, ?)")
                var jobID = 0, quantumID = 0
                for (a, array) in plan.arrays.enumerated() {
                    for (i, j) in plan.elements[a].enumerated() {
                        jobID += 1
                        try insJob.execute(arguments: [jobID, array.name, i, array.label])
                        for (seq, q) in plan.clustered.jobs[Int(j)].quanta.enumerated() {
                            quantumID += 1
                            let qn = graph.quanta[Int(q)]
                            try insQ.execute(arguments: [quantumID, jobID, seq, qn.id.lowercased, graph.tasks[Int(qn.task)].label,
                                                         dataIDJSON[Int(qn.dataID)]])
                            for (isOut, list) in [(0, graph.inputs(of: Int(q))), (1, graph.outputs(of: Int(q)))] {
                                for d in list {
                                    let n = graph.datasets[Int(d)]
                                    try insIO.execute(arguments: [quantumID, isOut, datasetIDs[Int(d)], graph.datasetTypes[Int(n.type)].name,
                                                                  dataIDJSON[Int(n.dataID)], graph.runs[Int(n.run)], paths[Int(d)]])
                                }
                            }
                        }
                    }
                }
            }
            try queue.close()
        } catch let e as QuantaError {
            throw e
        } catch {
            try? FileManager.default.removeItem(atPath: tmp)
            throw QuantaError(.io, "\(path): cannot write the snapshot (\(error)); is the disk full?")
        }
        chmod(tmp, 0o444)
        guard rename(tmp, path) == 0 else {
            throw QuantaError(.io, "\(path): cannot rename the snapshot into place (\(String(cString: strerror(errno))))")
        }
    }

    static func open(_ path: String) throws -> DatabaseQueue {
        guard FileManager.default.fileExists(atPath: path) else {
            throw QuantaError(.io, "\(path): no snapshot; is this a submit directory written by 'quanta plan'?")
        }
        var config = Configuration()
        config.readonly = true
        do { return try DatabaseQueue(path: path, configuration: config) } catch {
            throw QuantaError(.io, "\(path): cannot open the snapshot (\(error))")
        }
    }

    static func readMeta(_ db: Database) throws -> SnapshotMeta {
        let m = Dictionary(try Row.fetchAll(db, sql: "SELECT key, value FROM meta").map { (($0[0] as String), ($0[1] as String)) },
                           uniquingKeysWith: { a, _ in a })
        let output = m["output"] ?? ""
        return SnapshotMeta(submission: m["submission"] ?? "", repo: m["repo"] ?? "", datastoreRoot: m["datastoreRoot"] ?? "",
                            outputRun: m["outputRun"] ?? "", output: output.isEmpty ? nil : output,
                            inputCollections: (m["inputCollections"] ?? "").split(separator: "\n").map(String.init),
                            graph: m["graph"] ?? "",
                            validation: m["validation"].flatMap(ValidationConfig.decode(json:)) ?? ValidationConfig())
    }

    public static func meta(path: String) throws -> SnapshotMeta {
        try open(path).read { try readMeta($0) }
    }

    /// One job's rows: its quanta in run order with their inputs and outputs.
    public static func job(path: String, array: String, index: Int) throws -> JobSpec {
        let queue = try open(path)
        do {
            return try queue.read { db in
                guard let job = try Row.fetchOne(db, sql: "SELECT id, label FROM job WHERE array = ? AND idx = ?", arguments: [array, index]) else {
                    let sizes = try Row.fetchAll(db, sql: "SELECT array, COUNT(*) FROM job GROUP BY array ORDER BY MIN(id)")
                    let known = sizes.map { "\($0[0] as String) (0-\(($0[1] as Int) - 1))" }.joined(separator: ", ")
                    throw QuantaError(.usage, "\(path): no job \(array):\(index); arrays are \(known)")
                }
                let jobID: Int = job[0]
                var quanta: [QuantumSpec] = []
                var rowIDs: [Int] = []
                for row in try Row.fetchAll(db, sql: "SELECT id, uuid, task, data_id FROM quantum WHERE job = ? ORDER BY seq", arguments: [jobID]) {
                    rowIDs.append(row[0])
                    quanta.append(QuantumSpec(id: UUID(uuidString: row[1])!, task: row[2], dataID: try DataID(json: row[3]), inputs: [], outputs: []))
                }
                for (k, rid) in rowIDs.enumerated() {
                    for row in try Row.fetchAll(db, sql: "SELECT output, uuid, type, data_id, run, path FROM io WHERE quantum = ? ORDER BY rowid", arguments: [rid]) {
                        let spec = DatasetSpec(id: UUID(uuidString: row[1])!, type: row[2], dataID: try DataID(json: row[3]), run: row[4], path: row[5])
                        if (row[0] as Int) == 1 { quanta[k].outputs.append(spec) } else { quanta[k].inputs.append(spec) }
                    }
                }
                var tasks: [String: TaskExecution] = [:]
                for label in Set(quanta.map(\.task)) {
                    if let row = try Row.fetchOne(db, sql: "SELECT executor, command, builtin FROM task WHERE label = ?", arguments: [label]) {
                        tasks[label] = TaskExecution(executor: row[0], command: row[1], builtin: row[2])
                    }
                }
                return JobSpec(array: array, index: index, label: job[1], quanta: quanta, tasks: tasks, meta: try readMeta(db))
            }
        } catch let e as QuantaError { throw e } catch {
            throw QuantaError(.io, "\(path): cannot read job \(array):\(index) (\(error))")
        }
    }

    public struct JobSummary: Sendable {
        public var array: String
        public var index: Int
        public var label: String
        public var tasks: [String]
    }

    /// Every job with the task label of each of its quanta (for status and merge reports).
    public static func jobs(path: String) throws -> [JobSummary] {
        try open(path).read { db in
            var out: [JobSummary] = []
            var current: Int = -1
            for row in try Row.fetchAll(db, sql: "SELECT job.id, job.array, job.idx, job.label, quantum.task FROM job JOIN quantum ON quantum.job = job.id ORDER BY job.id, quantum.seq") {
                let id: Int = row[0]
                if id != current {
                    out.append(JobSummary(array: row[1], index: row[2], label: row[3], tasks: []))
                    current = id
                }
                out[out.count - 1].tasks.append(row[4])
            }
            return out
        }
    }

    public static func datasetTypes(path: String) throws -> [(name: String, dimensions: [String], storageClass: String)] {
        try open(path).read { db in
            try Row.fetchAll(db, sql: "SELECT name, dimensions, storage_class FROM dataset_type ORDER BY name").map {
                (($0[0] as String), ($0[1] as String).split(separator: ",").map(String.init), ($0[2] as String))
            }
        }
    }
}
