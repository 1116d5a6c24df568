import Foundation
import QuantaButler
import QuantaCore
import QuantaFITS

/// Built-in image tasks run by run-quantum's builtin executor: a small, real pipeline over FITS
/// (isr → calibrate → makeWarp → assembleCoadd → detectCoadd). Inputs and outputs are found by
/// dataset type name; output paths are temporary names run-quantum renames after its checks.
public enum BuiltinTasks {
    public static let names = BuiltinTaskNames.all

    /// Detection settings shared by calibrate and detectCoadd (aperture 6 px: ≤ 0.5 % flux loss for σ ≤ 1.8 px).
    static let threshold = 5.0, apertureRadius = 6.0, backgroundCell = 64

    /// PSF σ in pixels from the header: PSFSIG (ours), else SEEING (FWHM, arcsec) over the pixel scale, else 1.5.
    static func psfSigma(_ h: FITSHeader, _ wcs: TanWCS?) -> Double {
        if let s = h.double("PSFSIG"), s > 0 { return s }
        if let fwhm = h.double("SEEING"), fwhm > 0, let scale = wcs?.pixelScaleArcsec, scale > 0 { return fwhm / 2.3548 / scale }
        return 1.5
    }

    static func run(_ name: String, dataID: DataID, inputs: [String: [String]], outputs: [String: [String]],
                    log: (String) -> Void) throws {
        let io = TaskIO(task: name, inputs: inputs, outputs: outputs)
        switch name {
        case "isr": try isr(io, log: log)
        case "calibrate": try calibrate(io, dataID: dataID, log: log)
        case "makeWarp": try makeWarp(io, dataID: dataID, log: log)
        case "assembleCoadd": try assembleCoadd(io, dataID: dataID, log: log)
        case "detectCoadd": try detectCoadd(io, dataID: dataID, log: log)
        default:
            throw QuantaError(.execution, "unknown built-in task '\(name)'; built-in tasks are \(names.joined(separator: ", "))")
        }
    }

    /// Named inputs and outputs with errors that say what the task needs.
    struct TaskIO {
        let task: String
        let inputs: [String: [String]]
        let outputs: [String: [String]]

        func input(_ type: String) throws -> String {
            let all = try inputs(type)
            guard all.count == 1 else { throw QuantaError(.execution, "\(task) needs one \(type) input, the graph gives \(all.count)") }
            return all[0]
        }

        func inputs(_ type: String) throws -> [String] {
            guard let p = inputs[type], !p.isEmpty else {
                throw QuantaError(.execution, "\(task) needs input \(type); the graph gives \(inputs.keys.sorted().joined(separator: ", "))")
            }
            return p
        }

        func output(_ type: String) throws -> String {
            guard let p = outputs[type], p.count == 1 else {
                throw QuantaError(.execution, "\(task) writes one \(type); the graph asks for \(outputs.keys.sorted().joined(separator: ", "))")
            }
            return p[0]
        }

        func optionalOutput(_ type: String) -> String? { outputs[type]?.first }
    }

    // MARK: Tasks

    /// Overscan and bias subtraction, flat division; image, mask and variance planes.
    static func isr(_ io: TaskIO, log: (String) -> Void) throws {
        let raw = try Exposure.readRaw(io.input("raw"))
        let bias = try Exposure.readPlane(io.input("bias"))
        let flat = try Exposure.readPlane(io.input("flat"))
        let h = raw.header
        func number(_ k: String, _ fallback: Double) -> Double { h.double(k) ?? fallback }
        let overscan = Int(number("OVERSCAN", 0))
        guard bias.width == raw.image.width, bias.height == raw.image.height else {
            throw QuantaError(.execution, "isr: bias is \(bias.width)×\(bias.height) but the raw is \(raw.image.width)×\(raw.image.height)")
        }
        guard flat.width == raw.image.width - overscan, flat.height == raw.image.height else {
            throw QuantaError(.execution, "isr: flat is \(flat.width)×\(flat.height) but the trimmed raw is \(raw.image.width - overscan)×\(raw.image.height)")
        }
        let r = ImagingCore.isr(raw: raw.image, bias: bias, flat: flat, overscan: overscan, gain: number("GAIN", 1),
                                readNoise: number("RDNOISE", 0), saturation: Float(number("SATURATE", 65535)))
        var wcs = raw.wcs
        wcs?.crpix1 -= Double(overscan)
        let bad = r.mask.filter { $0 != 0 }.count
        log("isr: \(raw.image.width)×\(raw.image.height) raw, \(overscan) overscan columns trimmed, \(bad) masked pixels")
        try Exposure(image: r.image, mask: r.mask, variance: r.variance, wcs: wcs, header: h.carried)
            .write(to: io.output("postISRCCD"))
    }

    /// Background subtraction, detection, centroids and aperture fluxes → calexp + source table.
    static func calibrate(_ io: TaskIO, dataID: DataID, log: (String) -> Void) throws {
        var exp = try Exposure.read(io.input("postISRCCD"))
        let bg = ImagingCore.estimateBackground(exp.image, mask: exp.mask, cell: backgroundCell)
        exp.image = exp.image.subtracting(bg)
        let sigma = psfSigma(exp.header, exp.wcs)
        let sources = ImagingCore.detect(image: exp.image, variance: exp.variance, mask: exp.mask, threshold: threshold,
                                         apertureRadius: apertureRadius, psfSigma: sigma)
        exp.header.set("PSFSIG", .double(sigma))
        let level = bg.pixels.filter(\.isFinite).reduce(0, +) / Float(max(1, bg.pixels.count))
        exp.header.set("BGMEAN", .double(Double(level)))
        log("calibrate: background \(String(format: "%.1f", level)), PSF σ \(String(format: "%.2f", sigma)) px, \(sources.count) sources above \(threshold)σ")
        try exp.write(to: io.output("calexp"))
        try SourceTable.write(sources, wcs: exp.wcs, to: io.output("src"), name: "SOURCES")
    }

    /// Every calexp of the visit resampled onto the patch grid (NaN where no detector lands).
    static func makeWarp(_ io: TaskIO, dataID: DataID, log: (String) -> Void) throws {
        let map = try SkyMapFile.read(io.input("skyMap"))
        let patch = try patchIndex(dataID, map)
        let target = map.patchWCS(patch), n = map.patchOuterSize
        var image = Plane(width: n, height: n, fill: .nan), variance = image
        var covered = 0
        var header = FITSHeader()
        for path in try io.inputs("calexp") {
            let exp = try Exposure.read(path)
            guard let wcs = exp.wcs else { throw QuantaError(.execution, "makeWarp: \(path) has no TAN WCS in its IMAGE header") }
            let w = ImagingCore.warp(image: exp.image, variance: exp.variance, mask: exp.mask, from: wcs, to: target, width: n, height: n)
            for i in 0..<(n * n) where w.image.pixels[i].isFinite && !image.pixels[i].isFinite {
                image.pixels[i] = w.image.pixels[i]
                variance.pixels[i] = w.variance.pixels[i]
                covered += 1
            }
            header = exp.header.carried
            header.set("PSFSIG", .double(psfSigma(exp.header, exp.wcs)))
        }
        guard covered > 0 else {
            throw QuantaError(.execution, "makeWarp: no pixel of the visit's \(try io.inputs("calexp").count) calexps lands on patch \(patch); the graph's overlap is wrong")
        }
        let mask = image.pixels.map { $0.isFinite ? Int32(0) : ImagingCore.maskNoData }
        log("makeWarp: patch \(patch): \(covered) of \(n * n) pixels covered (\(String(format: "%.1f", 100 * Double(covered) / Double(n * n))) %)")
        try Exposure(image: image, mask: mask, variance: variance, wcs: target, header: header).write(to: io.output("deepCoadd_directWarp"))
    }

    /// Inverse-variance stack of the band's warps; a PNG preview when asked for.
    static func assembleCoadd(_ io: TaskIO, dataID: DataID, log: (String) -> Void) throws {
        let map = try SkyMapFile.read(io.input("skyMap"))
        let patch = try patchIndex(dataID, map)
        let warps = try io.inputs("deepCoadd_directWarp").map(Exposure.read)
        let n = map.patchOuterSize
        if let bad = warps.first(where: { $0.image.width != n || $0.image.height != n }) {
            throw QuantaError(.execution, "assembleCoadd: a warp is \(bad.image.width)×\(bad.image.height), patch \(patch) is \(n)×\(n)")
        }
        let c = ImagingCore.coadd(warps.map { ($0.image, $0.variance) })
        let empty = c.depth.filter { $0 == 0 }.count
        log("assembleCoadd: patch \(patch): \(warps.count) warps, \(empty) of \(n * n) pixels without data")
        var header = FITSHeader()
        header.set("NINPUTS", .integer(Int64(warps.count)))
        // The stack's PSF: mean σ² of the inputs plus the blur of pixel integration and bilinear resampling.
        let sigmas = warps.map { psfSigma($0.header, $0.wcs) }
        header.set("PSFSIG", .double((sigmas.map { $0 * $0 }.reduce(0, +) / Double(sigmas.count) + 0.25).squareRoot()))
        if let band = dataID["band"] { header.set("FILTER", .string(band.description)) }
        var exp = Exposure(image: c.image, mask: c.depth.map { $0 == 0 ? ImagingCore.maskNoData : 0 }, variance: c.variance,
                           wcs: map.patchWCS(patch), header: header)
        exp.extra = [("DEPTH", c.depth)]
        try exp.write(to: io.output("deepCoadd"))
        if let png = io.optionalOutput("deepCoadd_preview") {
            guard FileManager.default.createFile(atPath: png, contents: Data(PNGPreview.encode(c.image))) else {
                throw QuantaError(.io, "\(png): cannot write the PNG preview")
            }
        }
    }

    /// Objects on the coadd: detection, centroids and aperture fluxes → object table.
    static func detectCoadd(_ io: TaskIO, dataID: DataID, log: (String) -> Void) throws {
        let map = try SkyMapFile.read(io.input("skyMap"))
        let patch = try patchIndex(dataID, map)
        var exp = try Exposure.read(io.input("deepCoadd"))
        let bg = ImagingCore.estimateBackground(exp.image, mask: exp.mask, cell: backgroundCell)
        exp.image = exp.image.subtracting(bg)
        let sources = ImagingCore.detect(image: exp.image, variance: exp.variance, mask: exp.mask, threshold: threshold,
                                         apertureRadius: apertureRadius, psfSigma: psfSigma(exp.header, exp.wcs))
        // Inner: the patch's own area (not the overlap border), so each object belongs to one patch.
        let o = map.overlap, inner = map.patchSize
        let isInner = sources.map { s in
            s.x >= Double(o) - 0.5 && s.x < Double(o + inner) - 0.5 && s.y >= Double(o) - 0.5 && s.y < Double(o + inner) - 0.5
        }
        log("detectCoadd: patch \(patch): \(sources.count) objects, \(isInner.filter { $0 }.count) in the inner area")
        try SourceTable.write(sources, wcs: exp.wcs, to: io.output("deepCoadd_obj"), name: "OBJECTS", inner: isInner)
    }

    static func patchIndex(_ dataID: DataID, _ map: SkyMap) throws -> Int {
        guard case .int(let p)? = dataID["patch"], p >= 0, Int(p) < map.patchCount else {
            throw QuantaError(.execution, "data ID {\(dataID)} has no patch between 0 and \(map.patchCount - 1)")
        }
        return Int(p)
    }
}

extension ImagingCore {
    /// Mask bit for pixels no input covers (warps, coadds).
    public static let maskNoData: Int32 = 4
}
