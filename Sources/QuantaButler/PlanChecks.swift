import Foundation
import QuantaCore

/// What `quanta plan` checks of a graph against the repository it will run in (issue 12): every
/// overall input is there (registry and file) and stays inside the datastore, and no two outputs
/// would share a file.
public enum PlanChecks {
    /// Overall inputs (datasets no quantum writes) by index.
    static func overallInputs(_ graph: QuantumGraph) -> [Int] {
        let producers = graph.producers()
        return graph.datasets.indices.filter { producers[$0] < 0 }
    }

    /// A location is a path inside the datastore (relative, no `..` component) or an absolute path
    /// for data ingested in place.
    public static func confined(_ location: String) -> Bool {
        if location.hasPrefix("/") { return !location.split(separator: "/").contains("..") }
        return !location.isEmpty && !location.split(separator: "/", omittingEmptySubsequences: false).contains { $0 == ".." }
    }

    public static func inputLocations(_ graph: QuantumGraph, source: String) throws {
        for d in overallInputs(graph) {
            guard let loc = graph.datasets[d].location else { continue }
            guard confined(loc) else {
                throw QuantaError(.planning, "\(source): input \(graph.describe(dataset: d)) has location '\(loc)', which climbs out of the datastore; an input is a path inside the datastore or an absolute path")
            }
        }
    }

    /// Every overall input is registered in `repo` under its UUID, with its run and path, and its
    /// file exists. Returns the number checked.
    @discardableResult
    public static func inputsExist(_ graph: QuantumGraph, repo: Repository, source: String) throws -> Int {
        guard repo.kind == .quanta else { return 0 }
        let inputs = overallInputs(graph).filter { graph.datasets[$0].location != nil }
        guard !inputs.isEmpty else { return 0 }
        let registry = try Registry(path: repo.registryPath)
        let found = try registry.locate(ids: inputs.map { graph.datasets[$0].id.lowercased })
        var missing: [Int] = [], moved: [(Int, String)] = []
        for d in inputs {
            let ds = graph.datasets[d]
            guard let (run, path) = found[ds.id.lowercased], run == graph.runs[Int(ds.run)] else { missing.append(d); continue }
            if path != ds.location { moved.append((d, path)) }
        }
        if let first = missing.first {
            throw QuantaError(.planning, "\(source): \(missing.count) of the graph's \(inputs.count) overall inputs are not registered in \(repo.root) (first: \(graph.describe(dataset: first)), UUID \(graph.datasets[first].id.lowercased)); the graph was built against another repository — build it against this one, or ingest the inputs")
        }
        if let (first, path) = moved.first {
            throw QuantaError(.planning, "\(source): \(moved.count) overall inputs are registered in \(repo.root) at other paths (first: \(graph.describe(dataset: first)) is at '\(path)', the graph says '\(graph.datasets[first].location ?? "")'); build the graph against this repository again")
        }
        let absent = try Parallel.map(count: inputs.count) { k -> Bool in
            let loc = graph.datasets[inputs[k]].location!
            return access(loc.hasPrefix("/") ? loc : repo.absolutePath(loc), F_OK) != 0
        }
        if let k = absent.firstIndex(of: true) {
            let d = inputs[k]
            throw QuantaError(.planning, "\(source): \(absent.filter { $0 }.count) overall inputs are registered but their files are missing from \(repo.datastoreRoot) (first: \(graph.describe(dataset: d)) at '\(graph.datasets[d].location ?? "")'); restore them, or build the graph again")
        }
        return inputs.count
    }

    /// No two outputs share a datastore path. Paths from the default template are injective by
    /// construction (each placeholder escaped reversibly, one directory per run and type); any
    /// other template is checked output by output.
    public static func outputPaths(_ graph: QuantumGraph, repo: Repository, source: String) throws {
        guard repo.kind == .quanta, repo.template != Repository.defaultTemplate else { return }
        let producers = graph.producers()
        let outputs = graph.datasets.indices.filter { producers[$0] >= 0 }
        let paths = try Parallel.map(count: outputs.count) { k -> String in
            let d = graph.datasets[outputs[k]]
            let type = graph.datasetTypes[Int(d.type)]
            return Repository.expand(repo.template, run: graph.runs[Int(d.run)], datasetType: type.name,
                                     storageClass: type.storageClass, dataID: graph.dataIDs[Int(d.dataID)])
        }
        var first: [String: Int] = [:]
        first.reserveCapacity(paths.count)
        for (k, p) in paths.enumerated() {
            if let other = first.updateValue(k, forKey: p) {
                throw QuantaError(.planning, "\(repo.root)/\(Repository.configName): template '\(repo.template)' gives \(graph.describe(dataset: outputs[other])) and \(graph.describe(dataset: outputs[k])) the same file '\(p)'; add {dataId} (or every dimension of the type) and {datasetType} to the template")
            }
        }
    }
}
