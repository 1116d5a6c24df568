import Foundation
import QuantaCore

/// A small DRP-shaped graph: isr and calibrate per (visit, detector), gather per visit.
public func pipelineGraph(visits: [Int64], detectors: [Int64]) -> QuantumGraph {
    var b = GraphBuilder(universe: ["instrument", "visit", "detector"], metadata: ["outputRun": "u/test/run1", "output": "u/test"])
    let det = ["instrument", "visit", "detector"], vis = ["instrument", "visit"]
    for (name, dims) in [("raw", det), ("postISR", det), ("calexp", det), ("visitSummary", vis)] {
        b.addDatasetType(name, dimensions: dims, storageClass: "Text")
    }
    b.addTask(TaskNode(label: "isr", dimensions: det, inputTypes: ["raw"], outputTypes: ["postISR"]))
    b.addTask(TaskNode(label: "calibrate", dimensions: det, inputTypes: ["postISR"], outputTypes: ["calexp"]))
    b.addTask(TaskNode(label: "gather", dimensions: vis, inputTypes: ["calexp"], outputTypes: ["visitSummary"]))
    for v in visits {
        var calexps: [Int32] = []
        for d in detectors {
            let id = DataID([("instrument", .string("Cam")), ("visit", .int(v)), ("detector", .int(d))])
            let raw = b.dataset("raw", id, run: "raw/all", location: "raw/\(v)/\(d).txt")
            let post = b.dataset("postISR", id, run: "u/test/run1")
            b.addQuantum(task: "isr", dataID: id, inputs: [raw], outputs: [post])
            let calexp = b.dataset("calexp", id, run: "u/test/run1")
            b.addQuantum(task: "calibrate", dataID: id, inputs: [post], outputs: [calexp])
            calexps.append(calexp)
        }
        let vid = DataID([("instrument", .string("Cam")), ("visit", .int(v))])
        b.addQuantum(task: "gather", dataID: vid, inputs: calexps, outputs: [b.dataset("visitSummary", vid, run: "u/test/run1")])
    }
    return b.graph
}

public func config(_ yaml: String) throws -> SubmitConfig {
    try SubmitConfig.parse(yaml, source: "test.yaml")
}

public let testSite = SiteConfig(name: "test", partitions: [
    Partition(name: "normal", nodes: 10, coresPerNode: 16, memoryPerNodeMB: 64 * 1024, maxWalltime: 86400),
    Partition(name: "bigmem", nodes: 2, coresPerNode: 16, memoryPerNodeMB: 512 * 1024, maxWalltime: 86400),
], defaultPartition: "normal", maxArraySize: 1001)

/// The repository root, from this file's path.
public let repoRoot: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

public func temporaryDirectory() throws -> String {
    let dir = NSTemporaryDirectory() + "quanta-test-" + UUID().uuidString.prefix(8)
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}
