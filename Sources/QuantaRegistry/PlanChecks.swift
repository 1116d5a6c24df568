import Foundation
import QuantaButler
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
    /// for data ingested in place. Scanned as bytes: plan checks every input of a million-quantum graph.
    public static func confined(_ location: String) -> Bool {
        var l = location
        return l.withUTF8 { u in
            if u.isEmpty { return false }
            let dot = UInt8(ascii: "."), slash = UInt8(ascii: "/")
            var start = 0
            for i in 0...u.count where i == u.count || u[i] == slash {
                if i - start == 2 && u[start] == dot && u[start + 1] == dot { return false }
                start = i + 1
            }
            return true
        }
    }

    /// Every overall input stays inside the datastore and, in a Quanta repository, is registered
    /// under its UUID in its run at the graph's path with its file on disk. Returns how many were
    /// checked.
    @discardableResult
    public static func inputs(_ graph: QuantumGraph, repo: Repository, source: String) throws -> Int {
        let inputs = overallInputs(graph).filter { graph.datasets[$0].location != nil }
        for d in inputs where !confined(graph.datasets[d].location!) {
            throw QuantaError(.planning, "\(source): input \(graph.describe(dataset: d)) has location '\(graph.datasets[d].location!)', which climbs out of the datastore; an input is a path inside the datastore or an absolute path")
        }
        guard repo.kind == .quanta, !inputs.isEmpty else { return 0 }
        // One registry connection per core, each stepping through half of the inputs.
        let half = inputs.count / 2
        let expected = { (range: Range<Int>) in
            range.map { k -> (id: String, run: String, path: String) in
                let ds = graph.datasets[inputs[k]]
                return (ds.id.lowercased, graph.runs[Int(ds.run)], ds.location!)
            }
        }
        let (a, b) = try Parallel.both({ try repo.openRegistry().verify(expected(0..<half)) },
                                       { try repo.openRegistry().verify(expected(half..<inputs.count)) })
        var missing: [Int] = [], moved: [(Int, String)] = []
        for (k, why) in a + b.map({ ($0.0 + half, $0.1) }) {
            switch why {
            case .missing: missing.append(inputs[k])
            case .elsewhere(let path): moved.append((inputs[k], path))
            }
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
