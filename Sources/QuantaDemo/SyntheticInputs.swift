import Foundation
import QuantaExec
import QuantaRegistry
import QuantaButler
import QuantaCore

/// The raws a synthetic graph reads, as tiny files registered in its input run.
public enum SyntheticInputs {
    public static func write(_ synth: SyntheticGraph, graph: QuantumGraph, repo: Repository) throws -> Int {
        let registry = try repo.openRegistry()
        try registry.registerDatasetType(name: "raw", dimensions: ["instrument", "visit", "detector"], storageClass: "Text")
        try registry.registerCollection(synth.inputRun, type: .run)
        let producers = graph.producers()
        var records: [DatasetRecord] = []
        var madeDirs = Set<String>()
        for (i, d) in graph.datasets.enumerated() where producers[i] < 0 {
            guard let loc = d.location else { continue }
            let path = repo.absolutePath(loc)
            let dir = (path as NSString).deletingLastPathComponent
            if madeDirs.insert(dir).inserted { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
            let data = Data("raw \(graph.dataIDs[Int(d.dataID)])\n".utf8)
            guard FileManager.default.createFile(atPath: path, contents: data) else { throw QuantaError(.io, "\(path): cannot write") }
            records.append(DatasetRecord(id: d.id.lowercased, datasetType: "raw", run: synth.inputRun, dataID: graph.dataIDs[Int(d.dataID)].json,
                                         path: loc, size: Int64(data.count), checksum: nil))
        }
        return try registry.insert(records)
    }
}
