import Foundation
import QuantaButler
import QuantaCore

/// A small synthetic survey and its 3-step pipeline: what `quanta demo` runs with nothing but Quanta.
public struct DemoSurvey: Sendable {
    public var visits: Int
    public var detectors: Int
    /// Image side in pixels (plus overscan).
    public var size: Int
    /// How many raws to write corrupt (for trying failure handling).
    public var corrupt: Int

    public init(visits: Int, detectors: Int, size: Int = 64, corrupt: Int = 0) {
        self.visits = visits
        self.detectors = detectors
        self.size = size
        self.corrupt = corrupt
    }

    public static let instrument = "QuantaCam"
    public static let inputRun = "demo/raw"
    public static let universe = ["instrument", "visit", "detector"]

    public func visitIDs() -> [Int64] { (0..<visits).map { 1000 + Int64($0) * 2 } }

    /// Data IDs of raws written corrupt, spread over the survey.
    public func corruptDataIDs() -> [DataID] {
        let all = visitIDs().flatMap { v in (0..<detectors).map { d in (v, Int64(d)) } }
        guard corrupt > 0, !all.isEmpty else { return [] }
        let step = max(1, all.count / corrupt)
        return stride(from: step / 2, to: all.count, by: step).prefix(corrupt).map { rawID(all[$0].0, all[$0].1) }
    }

    func rawID(_ visit: Int64, _ detector: Int64) -> DataID {
        DataID([("instrument", .string(Self.instrument)), ("visit", .int(visit)), ("detector", .int(detector))])
    }

    /// Writes raws into the repository's datastore and registers them in `demo/raw`.
    /// Returns each raw's data ID with its UUID and datastore path.
    public func ingestRaws(repo: Repository, progress: (Int, Int) -> Void = { _, _ in }) throws -> [(DataID, UUID, String)] {
        let registry = try Registry(path: repo.registryPath)
        try registry.registerDatasetType(name: "raw", dimensions: Self.universe, storageClass: "QuantaImage")
        try registry.registerCollection(Self.inputRun, type: .run)
        let bad = Set(corruptDataIDs())
        var out: [(DataID, UUID, String)] = []
        var records: [DatasetRecord] = []
        let total = visits * detectors
        for v in visitIDs() {
            for d in 0..<Int64(detectors) {
                let id = rawID(v, d)
                let rel = repo.relativePath(run: Self.inputRun, datasetType: "raw", storageClass: "QuantaImage", dataID: id)
                let abs = repo.absolutePath(rel)
                try FileManager.default.createDirectory(atPath: URL(fileURLWithPath: abs).deletingLastPathComponent().path,
                                                        withIntermediateDirectories: true)
                var data = makeRaw(visit: v, detector: d).encoded()
                if bad.contains(id) { data = data.prefix(data.count / 3) }  // a truncated transfer
                try AtomicFile.write(data, to: abs)
                let uuid = UUID.v7()
                records.append(DatasetRecord(id: uuid.lowercased, datasetType: "raw", run: Self.inputRun, dataID: id.json,
                                             path: rel, size: Int64(data.count), checksum: nil))
                out.append((id, uuid, rel))
                progress(out.count, total)
            }
        }
        _ = try registry.insert(records)
        return out
    }

    /// One raw: overscan with the bias, then bias + sky + Gaussian stars + noise.
    public func makeRaw(visit: Int64, detector: Int64) -> QImage {
        var rng = SeededRandom(seed: UInt64(visit) &* 1_000_003 &+ UInt64(detector))
        let w = size + BuiltinTasks.overscan, h = size
        var img = QImage(width: w, height: h)
        let bias: Float = 1000, sky: Float = 50 + Float(detector), noise = 5.0
        let stars = (0..<(5 + Int(rng.next() % 6))).map { _ in
            (x: Double(BuiltinTasks.overscan) + 4 + Double(rng.next() % UInt64(size - 8)), y: 4 + Double(rng.next() % UInt64(size - 8)),
             flux: 2000 + Double(rng.next() % 18000))
        }
        let psf = 1.5
        for y in 0..<h {
            for x in 0..<w {
                var v = Double(bias) + noise * rng.gaussian()
                if x >= BuiltinTasks.overscan {
                    v += Double(sky)
                    for s in stars {
                        let r2 = (Double(x) - s.x) * (Double(x) - s.x) + (Double(y) - s.y) * (Double(y) - s.y)
                        if r2 < 64 { v += s.flux / (2 * .pi * psf * psf) * exp(-r2 / (2 * psf * psf)) }
                    }
                }
                img[x, y] = Float(v)
            }
        }
        return img
    }

    /// The graph: isr and calibrate per (visit, detector), gather per visit.
    public func graph(raws: [(DataID, UUID, String)], outputRun: String, output: String) -> QuantumGraph {
        var b = GraphBuilder(universe: Self.universe, metadata: [
            "outputRun": outputRun, "output": output, "inputCollections": Self.inputRun,
            "pipeline": "quanta demo: isr → calibrate → gather", "instrument": Self.instrument,
        ])
        let det = Self.universe, vis = ["instrument", "visit"]
        b.addDatasetType("raw", dimensions: det, storageClass: "QuantaImage")
        b.addDatasetType("postISR", dimensions: det, storageClass: "QuantaImage")
        b.addDatasetType("calexp", dimensions: det, storageClass: "QuantaImage")
        b.addDatasetType("src", dimensions: det, storageClass: "SourceCatalog")
        b.addDatasetType("visitSrc", dimensions: vis, storageClass: "SourceCatalog")
        b.addTask(TaskNode(label: "isr", dimensions: det, inputTypes: ["raw"], outputTypes: ["postISR"]))
        b.addTask(TaskNode(label: "calibrate", dimensions: det, inputTypes: ["postISR"], outputTypes: ["calexp", "src"]))
        b.addTask(TaskNode(label: "gather", dimensions: vis, inputTypes: ["src"], outputTypes: ["visitSrc"]))
        var srcByVisit: [DimensionValue: [Int32]] = [:]
        var visitOrder: [DimensionValue] = []
        for (id, uuid, path) in raws {
            let raw = b.dataset("raw", id, run: Self.inputRun, location: path, id: uuid)
            let post = b.dataset("postISR", id, run: outputRun)
            b.addQuantum(task: "isr", dataID: id, inputs: [raw], outputs: [post])
            let calexp = b.dataset("calexp", id, run: outputRun)
            let src = b.dataset("src", id, run: outputRun)
            b.addQuantum(task: "calibrate", dataID: id, inputs: [post], outputs: [calexp, src])
            let v = id["visit"]!
            if srcByVisit[v] == nil { visitOrder.append(v) }
            srcByVisit[v, default: []].append(src)
        }
        for v in visitOrder {
            let id = DataID([("instrument", .string(Self.instrument)), ("visit", v)])
            b.addQuantum(task: "gather", dataID: id, inputs: srcByVisit[v]!, outputs: [b.dataset("visitSrc", id, run: outputRun)])
        }
        return b.graph
    }

    /// The demo's submit config, in bps keys; written beside the graph so people can read and edit it.
    public static let submitConfig = """
    # Submit config for the Quanta demo (bps keys). Edit and re-plan with:
    #   quanta plan demo.qgn --repo repo --config demo-submit.yaml --site local --out submit-2
    requestMemory: 512
    requestCpus: 1
    requestWalltime: "00:10:00"
    numberOfRetries: 2
    pipetask:
      isr:
        builtin: isr
      calibrate:
        builtin: calibrate
        requestMemory: 1024
      gather:
        # The command executor: every {placeholder} becomes a shell-quoted path or value.
        command: "cat {input:src} > {output:visitSrc}"
    # Uncomment to run isr and calibrate of one data ID in the same job:
    # cluster:
    #   perDetector:
    #     pipetasks: isr, calibrate
    #     dimensions: visit, detector

    """
}
