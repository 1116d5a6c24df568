import Foundation
import QuantaRegistry
import QuantaButler
import QuantaCore

/// Runs the built `quanta` binary like a person at a shell would.
struct CLI {
    static let repoRoot: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// `QUANTA_BIN_DIR` (set by scripts/test.sh from `swift build --show-bin-path`), else .build/debug.
    static let binDir: String = ProcessInfo.processInfo.environment["QUANTA_BIN_DIR"] ?? repoRoot + "/.build/debug"

    static var quanta: String { binDir + "/quanta" }

    struct Result {
        var status: ExitStatus
        var stdout: String
        var stderr: String
        var output: String { stdout + stderr }
    }

    let cwd: String

    init() throws {
        cwd = NSTemporaryDirectory() + "quanta-e2e-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: cwd, withIntermediateDirectories: true)
    }

    @discardableResult
    func run(_ args: [String], executable: String = CLI.quanta, environment: [String: String] = [:]) throws -> Result {
        let tag = UUID().uuidString.prefix(8)
        var o = Spawn.Options()
        o.stdoutPath = "\(cwd)/.out-\(tag)"
        o.stderrPath = "\(cwd)/.err-\(tag)"
        o.workingDirectory = cwd
        var env = ProcessInfo.processInfo.environment
        env["QUANTA_PROGRESS"] = "0"
        env.merge(environment) { $1 }
        let status = try Spawn.run(executable, args, environment: env, options: o)
        defer {
            unlink(o.stdoutPath!)
            unlink(o.stderrPath!)
        }
        return Result(status: status, stdout: read(o.stdoutPath!), stderr: read(o.stderrPath!))
    }

    /// Starts a command in the background; stdout goes to `log`.
    func launch(_ args: [String], log: String, environment: [String: String] = [:]) throws -> pid_t {
        var o = Spawn.Options()
        o.stdoutPath = log
        o.stderrPath = log + ".err"
        o.workingDirectory = cwd
        var env = ProcessInfo.processInfo.environment
        env["QUANTA_PROGRESS"] = "0"
        env.merge(environment) { $1 }
        return try Spawn.launch(CLI.quanta, args, environment: env, options: o)
    }

    func read(_ path: String) -> String {
        String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self)
    }

    func path(_ p: String) -> String { cwd + "/" + p }

    /// Every file below the work directory (to prove nothing unexpected was created).
    func allFiles() -> [String] {
        (FileManager.default.enumerator(atPath: cwd)?.allObjects as? [String]) ?? []
    }

    /// Datasets in a collection, via `quanta repo query --json`.
    func datasets(repo: String, collection: String) throws -> [[String: Any]] {
        let r = try run(["repo", "query", repo, "--collections", collection, "--json"])
        guard r.status.succeeded else { throw QuantaError(.usage, "repo query failed: \(r.output)") }
        return r.stdout.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }
}

extension CLI {
    /// Registers a hand-built graph's overall inputs (already written to the datastore) in the
    /// repository, as ingest would: `quanta plan` checks they are there.
    func registerInputs(_ graph: QuantumGraph, repo: String) throws {
        let r = try Repository(root: path(repo))
        let registry = try r.openRegistry()
        let producers = graph.producers()
        var records: [DatasetRecord] = []
        for (d, ds) in graph.datasets.enumerated() where producers[d] < 0 {
            guard let loc = ds.location else { continue }
            let type = graph.datasetTypes[Int(ds.type)]
            try registry.registerDatasetType(name: type.name, dimensions: type.dimensions, storageClass: type.storageClass)
            try registry.registerCollection(graph.runs[Int(ds.run)], type: .run)
            let size = (try? FileManager.default.attributesOfItem(atPath: r.absolutePath(loc))[.size] as? Int) ?? 0
            records.append(DatasetRecord(id: ds.id.lowercased, datasetType: type.name, run: graph.runs[Int(ds.run)],
                                         dataID: graph.dataIDs[Int(ds.dataID)].json, path: loc, size: Int64(size), checksum: nil))
        }
        _ = try registry.insert(records)
    }
}
