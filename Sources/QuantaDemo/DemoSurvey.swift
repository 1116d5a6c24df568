#if canImport(Glibc)
import Glibc
#endif
import Foundation
import QuantaExec
import QuantaRegistry
import QuantaButler
import QuantaCore
import QuantaFITS

/// The demo survey: what a small camera would hand over (raw, bias and flat FITS files with
/// headers and a TAN WCS), the sky map, the truth catalogue, and the five-task image pipeline's
/// graph built from what a repository holds.
public struct DemoSurvey: Sendable {
    public let design: SurveyDesign
    /// How many raws to write corrupt (cut short, like an interrupted transfer).
    public let corrupt: Int

    public static let instrument = "QuantaCam"
    public static let skymapName = "demo"
    public static let skymapRun = "skymaps"
    public static let universe = ["instrument", "skymap", "tract", "patch", "band", "day_obs", "exposure", "visit", "detector"]

    /// `detectors` fill a grid as square as their count allows (4 → 2×2, 6 → 3×2, 3 → 3×1).
    public init(visitsPerBand: Int, detectors: Int, size: Int = 128, corrupt: Int = 0, seed: UInt64 = 42) {
        let ny = (1...max(1, detectors)).last { detectors % $0 == 0 && $0 * $0 <= detectors } ?? 1
        let nx = max(1, detectors) / ny
        design = SurveyDesign(visitsPerBand: visitsPerBand, detectorsX: nx, detectorsY: ny, detectorSize: size, seed: seed)
        self.corrupt = corrupt
    }

    /// Every (visit, detector) pair that has a detector (the grid may have more slots than detectors).
    func exposures(detectors: Int) -> [(visit: SurveyDesign.Visit, detector: Int)] {
        design.visits.flatMap { v in (0..<min(detectors, design.detectorCount)).map { (v, $0) } }
    }

    /// Writes raws, one bias per detector and one flat per detector and band into `dir`; returns the
    /// files and which raws were cut short.
    public func writeCameraFiles(to dir: String, detectors: Int, progress: (Int, Int) -> Void = { _, _ in }) throws
        -> (files: [String], corrupt: [String]) {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let d = design
        var files: [String] = []
        let n = min(detectors, d.detectorCount)
        for det in 0..<n {
            let bias = dir + "/bias_det\(det).fits"
            try writeImage(d.makeBias(detector: det), to: bias) { f in
                try common(f, type: "bias", detector: det)
                try f.write(key: "OVERSCAN", .integer(Int64(d.overscan)), comment: "overscan columns at the left")
            }
            files.append(bias)
            for band in d.bands {
                let flat = dir + "/flat_\(band)_det\(det).fits"
                try writeImage(d.makeFlat(detector: det), to: flat) { f in
                    try common(f, type: "flat", detector: det)
                    try f.write(key: "FILTER", .string(band))
                }
                files.append(flat)
            }
        }
        let all = exposures(detectors: detectors)
        let cut = Set(corruptIndices(all.count))
        var corruptFiles: [String] = []
        for (k, e) in all.enumerated() {
            let path = dir + "/raw_\(e.visit.id)_det\(e.detector).fits"
            var wcs = d.detectorWCS(visit: e.visit.id, detector: e.detector)
            wcs.crpix1 += Double(d.overscan)  // the raw's columns include the overscan
            try writeImage(d.makeRaw(visit: e.visit.id, detector: e.detector), to: path) { f in
                try common(f, type: "science", detector: e.detector)
                try f.write(key: "EXPID", .integer(Int64(e.visit.id)), comment: "exposure id")
                try f.write(key: "FILTER", .string(e.visit.band))
                try f.write(key: "DAYOBS", .integer(Int64(e.visit.dayObs)))
                try f.write(key: "EXPTIME", .double(30))
                try f.write(key: "SEEING", .double(e.visit.psfSigma * 2.3548 * d.pixelScaleArcsec), comment: "PSF FWHM (arcsec)")
                try f.write(key: "GAIN", .double(d.gain), comment: "e-/ADU")
                try f.write(key: "RDNOISE", .double(d.readNoise), comment: "ADU")
                try f.write(key: "SATURATE", .double(Double(d.saturation)))
                try f.write(key: "OVERSCAN", .integer(Int64(d.overscan)), comment: "overscan columns at the left")
                try wcs.write(f)
            }
            if cut.contains(k) {
                // An interrupted transfer: the header and part of the data.
                let data = try Data(contentsOf: URL(fileURLWithPath: path))
                try AtomicFile.write(data.prefix(2880 + (data.count - 2880) / 3), to: path)
                corruptFiles.append(path)
            }
            files.append(path)
            progress(k + 1, all.count)
        }
        return (files, corruptFiles)
    }

    func corruptIndices(_ total: Int) -> [Int] {
        guard corrupt > 0, total > 0 else { return [] }
        let step = max(1, total / corrupt)
        return Array(stride(from: step / 2, to: total, by: step).prefix(corrupt))
    }

    func common(_ f: FITSFile, type: String, detector: Int) throws {
        try f.write(key: "INSTRUME", .string(Self.instrument))
        try f.write(key: "OBSTYPE", .string(type))
        try f.write(key: "DETECTOR", .integer(Int64(detector)))
    }

    func writeImage(_ p: Plane, to path: String, header: (FITSFile) throws -> Void) throws {
        let tmp = path + ".tmp-\(getpid())"
        unlink(tmp)
        let f = try FITSFile(create: tmp)
        try f.writeImage(width: p.width, height: p.height, pixels: p.pixels)
        try header(f)
        try f.writeChecksum()
        try f.close()
        guard rename(tmp, path) == 0 else { throw QuantaError(.io, "cannot rename \(tmp) to \(path)") }
    }

    /// The injected stars: id, ra, dec and a flux per band (ADU in the flat-fielded image).
    public func writeTruth(to path: String) throws {
        let s = design.stars
        var columns: [FITSFile.Column] = [
            .init("id", .integer(s.map { Int64($0.id) })),
            .init("ra", unit: "deg", .double(s.map(\.ra))),
            .init("dec", unit: "deg", .double(s.map(\.dec))),
        ]
        for b in design.bands { columns.append(.init("flux_\(b)", unit: "adu", .double(s.map { $0.flux[b] ?? .nan }))) }
        unlink(path)
        let f = try FITSFile(create: path)
        try f.writeEmptyImage()
        try f.writeTable(name: "TRUTH", columns: columns)
        try f.writeChecksum()
        try f.close()
    }

    /// Registers the sky map dataset ({skymap}) in run `skymaps`.
    public func registerSkyMap(repo: Repository) throws {
        let id = DataID([("skymap", .string(Self.skymapName))])
        let rel = repo.relativePath(run: Self.skymapRun, datasetType: "skyMap", storageClass: "JSON", dataID: id)
        let abs = repo.absolutePath(rel)
        try FileManager.default.createDirectory(atPath: URL(fileURLWithPath: abs).deletingLastPathComponent().path,
                                                withIntermediateDirectories: true)
        let data = SkyMapFile.encode(design.skyMap)
        try AtomicFile.write(data, to: abs)
        let registry = try repo.openRegistry()
        try registry.registerDatasetType(name: "skyMap", dimensions: ["skymap"], storageClass: "JSON")
        try registry.registerCollection(Self.skymapRun, type: .run)
        var crc = CRC32()
        data.withUnsafeBytes { crc.update($0) }
        _ = try registry.insert([DatasetRecord(id: UUID.v7().lowercased, datasetType: "skyMap", run: Self.skymapRun, dataID: id.json,
                                               path: rel, size: Int64(data.count), checksum: CRC32.text(crc.value))])
    }

    /// The whole pipeline's graph from what `repo` holds (`PipelineGraph`).
    public static func graph(repo: Repository, outputRun: String, output: String) throws -> QuantumGraph {
        try PipelineGraph.build(repo: repo, PipelineGraph.Request(outputRun: outputRun, output: output))
    }

    /// The trimmed science area's WCS and size, from a raw's header.
    static func rawGeometry(_ path: String) throws -> (wcs: TanWCS, width: Int, height: Int) {
        let f = try FITSFile(open: path)
        defer { try? f.close() }
        let size = try f.imageSize()
        let overscan = Int((try? f.readInteger(key: "OVERSCAN")) ?? 0)
        guard var wcs = TanWCS.read(f) else {
            throw QuantaError(.planning, "\(path): no TAN WCS (CTYPE1/2, CRVAL, CRPIX, CD) in the header; the pipeline needs one to find patches")
        }
        wcs.crpix1 -= Double(overscan)
        return (wcs, size.width - overscan, size.height)
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
      isr: {builtin: isr}
      calibrate: {builtin: calibrate}
      makeWarp: {builtin: makeWarp}
      assembleCoadd: {builtin: assembleCoadd, requestMemory: 1024}
      detectCoadd: {builtin: detectCoadd}
    # run-quantum reads every FITS output to its end, verifies checksums and holds NaN fractions to
    # these limits (defaults: 1 % NaN pixels per image HDU; no table column entirely NaN).
    validation:
      datasetTypes:
        # A warp covers only what one visit lands on (makeWarp itself fails when nothing does).
        deepCoadd_directWarp: {maxImageNaNFraction: 1.0}
        # The sky map reaches past the field: 25–41 % of each demo patch lies outside every visit.
        deepCoadd: {maxImageNaNFraction: 0.5}
    # Uncomment to run isr and calibrate of one detector in the same job:
    # cluster:
    #   perDetector:
    #     pipetasks: isr, calibrate
    #     dimensions: visit, detector
    #     equalDimensions: visit:exposure

    """
}
