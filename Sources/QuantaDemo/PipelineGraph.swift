import Foundation
import QuantaButler
import QuantaCore
import QuantaExec
import QuantaRegistry

/// `quanta graph build`: what `pipetask qgraph` does for a butler, for a Quanta repository and the
/// built-in image pipeline (isr → calibrate → makeWarp → assembleCoadd → detectCoadd). The graph
/// comes from what the input collections hold: every raw with its bias and flat, the sky map, and
/// patch overlaps from each raw's WCS header. A subset of the tasks reads what the tasks left out
/// produced from the input collections (an earlier step's outputs), as pipetask does; a quantum
/// whose input is in neither the graph nor the collections is not made, and a gather
/// (makeWarp, assembleCoadd) takes the inputs that exist.
public enum PipelineGraph {
    /// The built-in pipeline's tasks, in order.
    public static let tasks = BuiltinTaskNames.all

    public struct Request: Sendable {
        /// The tasks to put in the graph (nil: all).
        public var tasks: [String]?
        /// Only data IDs this admits (dimensions of `DemoSurvey.universe`).
        public var query: DataQuery?
        /// Collections to read, in search order (CHAINED ones flattened); empty: the raw, calibration
        /// and sky-map runs `quanta demo` and `quanta repo ingest` write.
        public var inputs: [String] = []
        public var outputRun: String
        /// The output chain the merge puts `outputRun` first in.
        public var output: String

        public init(outputRun: String, output: String) {
            self.outputRun = outputRun
            self.output = output
        }
    }

    /// The instrument's default input collections.
    public static var defaultInputs: [String] {
        let runs = RawIngest.runs(instrument: DemoSurvey.instrument)
        return [runs.raw, runs.calib, DemoSurvey.skymapRun]
    }

    /// Which task makes each dataset type the pipeline writes.
    static let producer: [String: String] = [
        "postISRCCD": "isr", "calexp": "calibrate", "src": "calibrate", "deepCoadd_directWarp": "makeWarp",
        "deepCoadd": "assembleCoadd", "deepCoadd_preview": "assembleCoadd", "deepCoadd_obj": "detectCoadd",
    ]

    public static func build(repo: Repository, _ request: Request) throws -> QuantumGraph {
        let selected = try checkedTasks(request.tasks)
        let registry = try repo.openRegistry()
        let inputs = request.inputs.isEmpty ? defaultInputs : request.inputs
        let runs = try registry.resolveRuns(inputs)
        // What the tasks left out would have made is read from the collections instead.
        let readTypes = ["raw", "bias", "flat", "skyMap"] + producer.filter { !selected.contains($0.value) }.keys.sorted()
        let order = Dictionary(runs.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        var found: [String: DatasetRecord] = [:]
        for r in try registry.datasets(runs: runs, types: readTypes) {
            let key = r.datasetType + " " + r.dataID
            if let old = found[key], order[old.run, default: .max] <= order[r.run, default: .max] { continue }
            found[key] = r
        }
        let rows = found.values.sorted { ($0.datasetType, $0.dataID) < ($1.datasetType, $1.dataID) }
        func uuid(_ r: DatasetRecord) -> UUID { UUID(uuidString: r.id) ?? UUID.v7() }
        guard let mapRow = rows.first(where: { $0.datasetType == "skyMap" }) else {
            throw QuantaError(.planning, "\(repo.root): no skyMap dataset in \(inputs.joined(separator: ", ")); 'quanta demo' registers one in run \(DemoSurvey.skymapRun)")
        }
        let map = try SkyMapFile.read(repo.absolutePath(mapRow.path))
        var metadata = [
            "outputRun": request.outputRun, "output": request.output, "inputCollections": inputs.joined(separator: ","),
            "pipeline": "quanta built-in: " + tasks.filter(selected.contains).joined(separator: " → "),
            "instrument": DemoSurvey.instrument,
        ]
        if let q = request.query { metadata["dataQuery"] = q.description }
        var b = GraphBuilder(universe: DemoSurvey.universe, metadata: metadata)
        let exp = ["instrument", "exposure", "detector"], vis = ["instrument", "visit", "detector"]
        let warpDims = ["skymap", "tract", "patch", "visit"], coaddDims = ["skymap", "tract", "patch", "band"]
        b.addDatasetType("raw", dimensions: RawIngest.rawDimensions, storageClass: "ExposureF")
        b.addDatasetType("bias", dimensions: ["instrument", "detector"], storageClass: "ExposureF")
        b.addDatasetType("flat", dimensions: ["instrument", "detector", "band"], storageClass: "ExposureF")
        b.addDatasetType("skyMap", dimensions: ["skymap"], storageClass: "JSON")
        b.addDatasetType("postISRCCD", dimensions: exp, storageClass: "ExposureF")
        b.addDatasetType("calexp", dimensions: vis, storageClass: "ExposureF")
        b.addDatasetType("src", dimensions: vis, storageClass: "SourceCatalog")
        b.addDatasetType("deepCoadd_directWarp", dimensions: warpDims, storageClass: "ExposureF")
        b.addDatasetType("deepCoadd", dimensions: coaddDims, storageClass: "ExposureF")
        b.addDatasetType("deepCoadd_preview", dimensions: coaddDims, storageClass: "PNG")
        b.addDatasetType("deepCoadd_obj", dimensions: coaddDims, storageClass: "SourceCatalog")
        let nodes = [
            TaskNode(label: "isr", dimensions: exp, inputTypes: ["raw", "bias", "flat"], outputTypes: ["postISRCCD"]),
            TaskNode(label: "calibrate", dimensions: vis, inputTypes: ["postISRCCD"], outputTypes: ["calexp", "src"]),
            TaskNode(label: "makeWarp", dimensions: warpDims, inputTypes: ["calexp", "skyMap"], outputTypes: ["deepCoadd_directWarp"]),
            TaskNode(label: "assembleCoadd", dimensions: coaddDims, inputTypes: ["deepCoadd_directWarp", "skyMap"],
                     outputTypes: ["deepCoadd", "deepCoadd_preview"]),
            TaskNode(label: "detectCoadd", dimensions: coaddDims, inputTypes: ["deepCoadd", "skyMap"], outputTypes: ["deepCoadd_obj"]),
        ]
        for n in nodes where selected.contains(n.label) { b.addTask(n) }

        /// A dataset a task of the graph writes, or the one the collections hold, or nil.
        func output(_ type: String, _ id: DataID) -> Int32? {
            if selected.contains(producer[type]!) { return b.dataset(type, id, run: request.outputRun) }
            guard let r = found[type + " " + id.json] else { return nil }
            return b.dataset(type, id, run: r.run, location: r.path, id: uuid(r))
        }
        func admits(_ id: DataID, _ extra: [String: DimensionValue] = [:]) -> Bool {
            request.query?.admits(id, also: extra) ?? true
        }

        let skyMapID = b.dataset("skyMap", try DataID(json: mapRow.dataID), run: mapRow.run, location: mapRow.path, id: uuid(mapRow))
        var calibs: [String: Int32] = [:]
        for r in rows where r.datasetType == "bias" || r.datasetType == "flat" {
            let id = try DataID(json: r.dataID)
            calibs["\(r.datasetType) \(id.json)"] = b.dataset(r.datasetType, id, run: r.run, location: r.path, id: uuid(r))
        }
        let inst = DimensionValue.string(DemoSurvey.instrument)
        let tractKeys: [(String, DimensionValue)] = [("skymap", .string(DemoSurvey.skymapName)), ("tract", .int(Int64(map.tract)))]
        // (visit, patch) → calexps; (band, patch) → warps.
        var warpInputs: [Int64: [Int: [Int32]]] = [:]
        var visitBand: [Int64: String] = [:]
        for r in rows.filter({ $0.datasetType == "raw" }) {
            let id = try DataID(json: r.dataID)
            guard case .int(let exposure)? = id["exposure"], case .int(let detector)? = id["detector"], let band = id["band"]?.description else {
                throw QuantaError(.planning, "raw \(r.dataID) lacks exposure, detector or band")
            }
            guard admits(id, ["visit": .int(exposure), "skymap": .string(DemoSurvey.skymapName), "tract": .int(Int64(map.tract))]) else { continue }
            let eid = DataID([("instrument", inst), ("exposure", .int(exposure)), ("detector", .int(detector))])
            let vid = DataID([("instrument", inst), ("visit", .int(exposure)), ("detector", .int(detector))])
            var post: Int32?
            if selected.contains("isr") {
                guard let bias = calibs["bias \(DataID([("instrument", inst), ("detector", .int(detector))]).json)"],
                      let flat = calibs["flat \(DataID([("instrument", inst), ("detector", .int(detector)), ("band", .string(band))]).json)"] else {
                    throw QuantaError(.planning, "raw {\(id)} has no bias for detector \(detector) or no flat for band \(band) in \(inputs.joined(separator: ", ")); ingest them first")
                }
                let raw = b.dataset("raw", id, run: r.run, location: r.path, id: uuid(r))
                post = output("postISRCCD", eid)
                b.addQuantum(task: "isr", dataID: eid, inputs: [raw, bias, flat], outputs: [post!])
            } else {
                post = output("postISRCCD", eid)
            }
            var calexp: Int32?
            if selected.contains("calibrate") {
                guard let post else { continue }
                calexp = output("calexp", vid)
                b.addQuantum(task: "calibrate", dataID: vid, inputs: [post], outputs: [calexp!, output("src", vid)!])
            } else {
                calexp = output("calexp", vid)
            }
            guard let calexp, selected.contains(where: { ["makeWarp", "assembleCoadd", "detectCoadd"].contains($0) }) else { continue }
            visitBand[exposure] = band
            let header = try DemoSurvey.rawGeometry(repo.absolutePath(r.path))
            for p in map.patches(overlapping: header.wcs, width: header.width, height: header.height) {
                warpInputs[exposure, default: [:]][p, default: []].append(calexp)
            }
        }
        var coaddInputs: [String: [Int: [Int32]]] = [:]
        for (visit, patches) in warpInputs.sorted(by: { $0.key < $1.key }) {
            for (p, calexps) in patches.sorted(by: { $0.key < $1.key }) {
                let wid = DataID(tractKeys + [("patch", .int(Int64(p))), ("visit", .int(visit))])
                guard admits(wid, ["band": .string(visitBand[visit]!), "instrument": inst]) else { continue }
                let warp = output("deepCoadd_directWarp", wid)
                if selected.contains("makeWarp") { b.addQuantum(task: "makeWarp", dataID: wid, inputs: calexps + [skyMapID], outputs: [warp!]) }
                if let warp { coaddInputs[visitBand[visit]!, default: [:]][p, default: []].append(warp) }
            }
        }
        for (band, patches) in coaddInputs.sorted(by: { $0.key < $1.key }) {
            for (p, warps) in patches.sorted(by: { $0.key < $1.key }) {
                let cid = DataID(tractKeys + [("patch", .int(Int64(p))), ("band", .string(band))])
                guard admits(cid, ["instrument": inst]) else { continue }
                let coadd = output("deepCoadd", cid)
                if selected.contains("assembleCoadd") {
                    b.addQuantum(task: "assembleCoadd", dataID: cid, inputs: warps + [skyMapID], outputs: [coadd!, output("deepCoadd_preview", cid)!])
                }
                if selected.contains("detectCoadd"), let coadd {
                    b.addQuantum(task: "detectCoadd", dataID: cid, inputs: [coadd, skyMapID], outputs: [output("deepCoadd_obj", cid)!])
                }
            }
        }
        return b.graph
    }

    /// The tasks asked for, checked against the pipeline's (nil or empty: all of them).
    public static func checkedTasks(_ asked: [String]?) throws -> Set<String> {
        guard let asked, !asked.isEmpty else { return Set(tasks) }
        for t in asked where !tasks.contains(t) {
            let hint = DidYouMean.suggestion(for: t, among: tasks).map { "did you mean '\($0)'? " } ?? ""
            throw QuantaError(.usage, "the built-in pipeline has no task '\(t)'; \(hint)its tasks are \(tasks.joined(separator: ", "))")
        }
        return Set(asked)
    }
}

extension PipelineGraph {
    /// The values a dimension takes over the raws in `inputs` (visit: the exposures), sorted; nil
    /// for a dimension raws do not carry (tract, patch: list the values).
    public static func values(of dimension: String, repo: Repository, inputs: [String]) throws -> [DimensionValue]? {
        let key = dimension == "visit" ? "exposure" : dimension
        guard RawIngest.rawDimensions.contains(key) else { return nil }
        let registry = try repo.openRegistry()
        let runs = try registry.resolveRuns(inputs.isEmpty ? defaultInputs : inputs)
        var seen = Set<DimensionValue>()
        for r in try registry.datasets(runs: runs, types: ["raw"]) {
            if let v = try DataID(json: r.dataID)[key] { seen.insert(v) }
        }
        return seen.sorted()
    }
}

/// Where each raw of a Quanta repository lands on the sky, from its own WCS header: the four
/// corners (RA, Dec in degrees) of its science area, by exposure and detector. `quanta report`
/// draws the focal plane and the sky from them.
public enum RawFootprints {
    public static func read(repo: Repository) -> [String: [(ra: Double, dec: Double)]] {
        guard let registry = try? repo.openRegistry(),
              let rows = try? registry.datasets(runs: nil, types: ["raw"]) else { return [:] }
        var out: [String: [(ra: Double, dec: Double)]] = [:]
        for r in rows {
            guard let id = try? DataID(json: r.dataID), case .int(let exposure)? = id["exposure"], case .int(let detector)? = id["detector"],
                  out[key(exposure: exposure, detector: detector)] == nil,
                  let g = try? DemoSurvey.rawGeometry(repo.absolutePath(r.path)) else { continue }
            let w = Double(g.width), h = Double(g.height)
            out[key(exposure: exposure, detector: detector)] = [(0.5, 0.5), (w + 0.5, 0.5), (w + 0.5, h + 0.5), (0.5, h + 0.5)].map { g.wcs.pixelToSky(x: $0.0, y: $0.1) }
        }
        return out
    }

    /// `exposure/detector`; a visit's number is its exposure's.
    public static func key(exposure: Int64, detector: Int64) -> String { "\(exposure)/\(detector)" }
}
