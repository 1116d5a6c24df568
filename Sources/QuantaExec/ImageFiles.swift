import Foundation
import QuantaCore
import QuantaFITS

/// Header keys an image carries from task to task (and that raws are read with).
struct FITSHeader: Sendable {
    private(set) var cards: [(key: String, value: FITSFile.KeyValue)] = []

    static let stringKeys = ["INSTRUME", "OBSTYPE", "FILTER"]
    static let numberKeys = ["EXPID", "DETECTOR", "DAYOBS", "EXPTIME", "GAIN", "RDNOISE", "SATURATE", "OVERSCAN", "BGMEAN", "NINPUTS", "SEEING", "PSFSIG"]
    /// What later products keep (not the raw's electronics).
    static let carriedKeys: Set<String> = ["INSTRUME", "FILTER", "EXPID", "DETECTOR", "DAYOBS", "EXPTIME", "SEEING", "PSFSIG"]

    mutating func set(_ key: String, _ value: FITSFile.KeyValue) {
        if let i = cards.firstIndex(where: { $0.key == key }) { cards[i].value = value } else { cards.append((key, value)) }
    }

    func double(_ key: String) -> Double? {
        switch cards.first(where: { $0.key == key })?.value {
        case .double(let d)?: return d
        case .integer(let n)?: return Double(n)
        default: return nil
        }
    }

    var carried: FITSHeader {
        var h = FITSHeader()
        h.cards = cards.filter { Self.carriedKeys.contains($0.key) }
        return h
    }

    /// The known keys present in the current HDU.
    static func read(_ f: FITSFile) -> FITSHeader {
        var h = FITSHeader()
        for k in stringKeys { if let s = try? f.readString(key: k) { h.set(k, .string(s)) } }
        for k in numberKeys {
            if let d = try? f.readDouble(key: k) {
                h.set(k, d == d.rounded() && abs(d) < 1e15 ? .integer(Int64(d)) : .double(d))
            }
        }
        return h
    }

    func write(_ f: FITSFile) throws {
        for (k, v) in cards { try f.write(key: k, v) }
    }
}

extension TanWCS {
    public static func read(_ f: FITSFile) -> TanWCS? {
        TanWCS(number: { try? f.readDouble(key: $0) }, string: { try? f.readString(key: $0) })
    }

    public func write(_ f: FITSFile) throws {
        for (k, v) in headerStrings { try f.write(key: k, .string(v)) }
        for (k, v) in headerNumbers { try f.write(key: k, .double(v)) }
    }
}

/// An image with its mask and variance: HDU 1 IMAGE (with WCS and header keys), HDU 2 MASK (32-bit
/// integers), HDU 3 VARIANCE, then any extra integer planes; every HDU carries CHECKSUM/DATASUM.
struct Exposure {
    var image: Plane
    var mask: [Int32]
    var variance: Plane
    var wcs: TanWCS?
    var header: FITSHeader
    var extra: [(name: String, values: [Int32])] = []

    init(image: Plane, mask: [Int32], variance: Plane, wcs: TanWCS?, header: FITSHeader) {
        self.image = image
        self.mask = mask
        self.variance = variance
        self.wcs = wcs
        self.header = header
    }

    func write(to path: String) throws {
        let f = try FITSFile(create: path)
        let (w, h) = (image.width, image.height)
        try f.writeImage(width: w, height: h, pixels: image.pixels)
        try f.write(key: "EXTNAME", .string("IMAGE"))
        try wcs?.write(f)
        try header.write(f)
        try f.writeChecksum()
        try f.writeImage(width: w, height: h, integers: mask)
        try f.write(key: "EXTNAME", .string("MASK"))
        try f.write(key: "MP_SAT", .integer(Int64(ImagingCore.maskSaturated)), comment: "mask bit: saturated")
        try f.write(key: "MP_BAD", .integer(Int64(ImagingCore.maskBad)), comment: "mask bit: bad pixel")
        try f.write(key: "MP_NODAT", .integer(Int64(ImagingCore.maskNoData)), comment: "mask bit: no data")
        try f.writeChecksum()
        try f.writeImage(width: w, height: h, pixels: variance.pixels)
        try f.write(key: "EXTNAME", .string("VARIANCE"))
        try f.writeChecksum()
        for (name, values) in extra {
            try f.writeImage(width: w, height: h, integers: values)
            try f.write(key: "EXTNAME", .string(name))
            try f.writeChecksum()
        }
        try f.close()
    }

    static func read(_ path: String) throws -> Exposure {
        let f = try FITSFile(open: path)
        defer { try? f.close() }
        let img = try f.readImage()
        let wcs = TanWCS.read(f), header = FITSHeader.read(f)
        guard try f.hduCount >= 3 else {
            throw QuantaError(.execution, "\(path): expected IMAGE, MASK and VARIANCE HDUs, found \(try f.hduCount) HDU(s)")
        }
        try f.move(to: 2)
        let mask = try f.readImage()
        try f.move(to: 3)
        let variance = try f.readImage()
        guard mask.width == img.width, variance.width == img.width, mask.height == img.height, variance.height == img.height else {
            throw QuantaError(.execution, "\(path): IMAGE, MASK and VARIANCE differ in size")
        }
        return Exposure(image: Plane(width: img.width, height: img.height, pixels: img.pixels),
                        mask: mask.pixels.map { $0.isFinite ? Int32($0) : ImagingCore.maskBad },
                        variance: Plane(width: img.width, height: img.height, pixels: variance.pixels), wcs: wcs, header: header)
    }

    /// A raw (or any single image): the primary HDU's image, its WCS and header keys.
    static func readRaw(_ path: String) throws -> (image: Plane, wcs: TanWCS?, header: FITSHeader) {
        let f = try FITSFile(open: path)
        defer { try? f.close() }
        let img = try f.readImage()
        guard img.width > 0, img.height > 0 else { throw QuantaError(.execution, "\(path): the primary HDU holds no 2-D image") }
        return (Plane(width: img.width, height: img.height, pixels: img.pixels), TanWCS.read(f), FITSHeader.read(f))
    }

    static func readPlane(_ path: String) throws -> Plane { try readRaw(path).image }
}

/// Sources or objects as a FITS binary table (positions 0-based pixels and degrees, fluxes in the image's units).
enum SourceTable {
    static func write(_ sources: [ImagingCore.Source], wcs: TanWCS?, to path: String, name: String, inner: [Bool]? = nil) throws {
        let sky = sources.map { s in wcs.map { $0.pixelToSky(x: s.x, y: s.y) } ?? (ra: .nan, dec: .nan) }
        var columns: [FITSFile.Column] = [
            .init("id", .integer(sources.indices.map { Int64($0 + 1) })),
            .init("x", unit: "pixel", .double(sources.map(\.x))),
            .init("y", unit: "pixel", .double(sources.map(\.y))),
            .init("ra", unit: "deg", .double(sky.map(\.ra))),
            .init("dec", unit: "deg", .double(sky.map(\.dec))),
            .init("flux", unit: "adu", .double(sources.map(\.flux))),
            .init("fluxErr", unit: "adu", .double(sources.map(\.fluxErr))),
            .init("peak", unit: "adu", .double(sources.map(\.peak))),
            .init("significance", .double(sources.map(\.significance))),
            .init("npix", .integer(sources.map { Int64($0.npix) })),
            .init("flags", .integer(sources.map { Int64($0.flags) })),
        ]
        if let inner { columns.append(.init("inner", .integer(inner.map { $0 ? 1 : 0 }))) }
        let f = try FITSFile(create: path)
        try f.writeEmptyImage()
        try f.writeChecksum()
        try f.writeTable(name: name, columns: columns)
        try f.writeChecksum()
        try f.close()
    }
}

/// The sky map dataset: one tract's tangent plane and its patches, as JSON.
public enum SkyMapFile {
    struct Fields: Codable {
        var ra: Double, dec: Double, pixelScaleArcsec: Double, patchesX: Int, patchesY: Int, patchSize: Int, overlap: Int
    }

    public static func encode(_ m: SkyMap) -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return (try? e.encode(Fields(ra: m.ra, dec: m.dec, pixelScaleArcsec: m.pixelScaleArcsec, patchesX: m.patchesX,
                                     patchesY: m.patchesY, patchSize: m.patchSize, overlap: m.overlap))) ?? Data()
    }

    public static func read(_ path: String) throws -> SkyMap {
        guard let data = FileManager.default.contents(atPath: path) else { throw QuantaError(.io, "\(path): cannot read the sky map") }
        let f: Fields
        do { f = try JSONDecoder().decode(Fields.self, from: data) } catch {
            throw QuantaError(.execution, "\(path): not a Quanta sky map (\(error))")
        }
        guard f.patchesX > 0, f.patchesY > 0, f.patchSize > 0, f.overlap >= 0 else {
            throw QuantaError(.execution, "\(path): the sky map needs positive patch counts and size")
        }
        return SkyMap(ra: f.ra, dec: f.dec, pixelScaleArcsec: f.pixelScaleArcsec, patchesX: f.patchesX, patchesY: f.patchesY,
                      patchSize: f.patchSize, overlap: f.overlap)
    }
}
