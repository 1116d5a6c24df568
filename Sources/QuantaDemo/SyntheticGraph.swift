import Foundation
import QuantaExec
import QuantaRegistry
import QuantaButler
import QuantaCore

/// A DRP-shaped graph of any size, for benchmarks and scale tests (issue 6): per-detector chains
/// (isr → calibrate per visit × detector), a per-visit gather, and per-patch coadds with
/// many-to-many warps (makeWarp per visit × patch from the visit's detectors on that patch;
/// assembleCoadd per patch × band from the band's warps; detectCoadd after it).
public struct SyntheticGraph: Sendable {
    public var visits: Int
    public var detectors: Int
    public var bands: [String]
    /// Patches on the sky: a square-ish grid; each visit lands on `patchesPerVisit` neighbouring ones.
    public var patches: Int
    public var patchesPerVisit: Int
    public var outputRun: String
    public var inputRun: String

    public init(visits: Int, detectors: Int, bands: [String] = ["g", "r"], patches: Int = 0, patchesPerVisit: Int = 4,
                outputRun: String = "synth/run", inputRun: String = "synth/raw") {
        self.visits = visits
        self.detectors = detectors
        self.bands = bands
        self.patches = patches > 0 ? patches : max(1, visits / 10)
        self.patchesPerVisit = max(1, min(patchesPerVisit, self.patches))
        self.outputRun = outputRun
        self.inputRun = inputRun
    }

    /// isr + calibrate per visit×detector, gather per visit, a warp per (visit, patch it lands on),
    /// and two coadd steps per (patch, band) that has warps.
    public var quantaEstimate: Int { 2 * visits * detectors + visits + visits * patchesPerVisit + 2 * patches * bands.count }

    public static let universe = ["instrument", "skymap", "tract", "patch", "band", "visit", "detector"]

    /// Which patches visit `v` lands on: a run of neighbours starting at a pseudo-random patch.
    func patches(ofVisit v: Int) -> [Int] {
        let start = Int((UInt64(v) &* 2_654_435_761) % UInt64(patches))
        return (0..<patchesPerVisit).map { (start + $0) % patches }
    }

    /// The raw of (visit, detector) lives at this datastore path (`--repo` writes it).
    public func rawPath(visit: Int, detector: Int) -> String { "\(inputRun)/raw/v\(visit)/raw_\(visit)_\(detector).txt" }

    public func build() -> QuantumGraph {
        var b = GraphBuilder(universe: Self.universe, metadata: [
            "outputRun": outputRun, "output": "synth", "inputCollections": inputRun,
            "pipeline": "synthetic DRP: isr → calibrate → gather; makeWarp → assembleCoadd → detectCoadd",
        ])
        let det = ["instrument", "visit", "detector"], vis = ["instrument", "visit"]
        let warp = ["skymap", "tract", "patch", "visit"], coadd = ["skymap", "tract", "patch", "band"]
        for (t, d) in [("raw", det), ("postISRCCD", det), ("calexp", det), ("src", det), ("visitSummary", vis),
                       ("deepCoadd_directWarp", warp), ("deepCoadd", coadd), ("deepCoadd_obj", coadd)] {
            b.addDatasetType(t, dimensions: d, storageClass: "Text")
        }
        b.addTask(TaskNode(label: "isr", dimensions: det, inputTypes: ["raw"], outputTypes: ["postISRCCD"]))
        b.addTask(TaskNode(label: "calibrate", dimensions: det, inputTypes: ["postISRCCD"], outputTypes: ["calexp", "src"]))
        b.addTask(TaskNode(label: "gather", dimensions: vis, inputTypes: ["src"], outputTypes: ["visitSummary"]))
        b.addTask(TaskNode(label: "makeWarp", dimensions: warp, inputTypes: ["calexp"], outputTypes: ["deepCoadd_directWarp"]))
        b.addTask(TaskNode(label: "assembleCoadd", dimensions: coadd, inputTypes: ["deepCoadd_directWarp"], outputTypes: ["deepCoadd"]))
        b.addTask(TaskNode(label: "detectCoadd", dimensions: coadd, inputTypes: ["deepCoadd"], outputTypes: ["deepCoadd_obj"]))
        let inst = DimensionValue.string("SynthCam")
        let tract: [(String, DimensionValue)] = [("skymap", .string("synth")), ("tract", .int(0))]
        var warpsByCoadd: [[Int32]] = Array(repeating: [], count: patches * bands.count)
        for v in 0..<visits {
            let visit = DimensionValue.int(Int64(v))
            let band = v % bands.count
            var srcs: [Int32] = [], calexps: [Int32] = []
            srcs.reserveCapacity(detectors)
            calexps.reserveCapacity(detectors)
            for d in 0..<detectors {
                let id = DataID(keys: det, values: [inst, visit, .int(Int64(d))])
                let raw = b.dataset("raw", id, run: inputRun, location: rawPath(visit: v, detector: d))
                let post = b.dataset("postISRCCD", id, run: outputRun)
                b.addQuantum(task: "isr", dataID: id, inputs: [raw], outputs: [post])
                let calexp = b.dataset("calexp", id, run: outputRun), src = b.dataset("src", id, run: outputRun)
                b.addQuantum(task: "calibrate", dataID: id, inputs: [post], outputs: [calexp, src])
                srcs.append(src)
                calexps.append(calexp)
            }
            let vid = DataID(keys: vis, values: [inst, visit])
            b.addQuantum(task: "gather", dataID: vid, inputs: srcs, outputs: [b.dataset("visitSummary", vid, run: outputRun)])
            // Each detector lands on one of the visit's patches (a contiguous share of them).
            let ps = patches(ofVisit: v)
            for (k, p) in ps.enumerated() {
                let lo = k * detectors / ps.count, hi = (k + 1) * detectors / ps.count
                guard hi > lo else { continue }
                let wid = DataID(tract + [("patch", .int(Int64(p))), ("visit", visit)])
                let w = b.dataset("deepCoadd_directWarp", wid, run: outputRun)
                b.addQuantum(task: "makeWarp", dataID: wid, inputs: Array(calexps[lo..<hi]), outputs: [w])
                warpsByCoadd[p * bands.count + band].append(w)
            }
        }
        for p in 0..<patches {
            for (k, band) in bands.enumerated() where !warpsByCoadd[p * bands.count + k].isEmpty {
                let cid = DataID(tract + [("patch", .int(Int64(p))), ("band", .string(band))])
                let c = b.dataset("deepCoadd", cid, run: outputRun)
                b.addQuantum(task: "assembleCoadd", dataID: cid, inputs: warpsByCoadd[p * bands.count + k], outputs: [c])
                b.addQuantum(task: "detectCoadd", dataID: cid, inputs: [c], outputs: [b.dataset("deepCoadd_obj", cid, run: outputRun)])
            }
        }
        return b.graph
    }
}
