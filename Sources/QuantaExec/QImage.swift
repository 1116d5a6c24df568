import Foundation
import QuantaCore

/// The demo's small image format until FITS arrives: `QIMG`, width and height (u32 LE), float32 LE pixels.
public struct QImage: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var pixels: [Float]

    public init(width: Int, height: Int, pixels: [Float]? = nil) {
        self.width = width
        self.height = height
        self.pixels = pixels ?? [Float](repeating: 0, count: width * height)
    }

    public subscript(x: Int, y: Int) -> Float {
        get { pixels[y * width + x] }
        set { pixels[y * width + x] = newValue }
    }

    public func encoded() -> Data {
        var d = Data("QIMG".utf8)
        withUnsafeBytes(of: UInt32(width).littleEndian) { d.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt32(height).littleEndian) { d.append(contentsOf: $0) }
        pixels.withUnsafeBytes { d.append(contentsOf: $0) }
        return d
    }

    public static func read(path: String) throws -> QImage {
        guard let d = FileManager.default.contents(atPath: path) else {
            throw QuantaError(.io, "\(path): cannot read the image")
        }
        guard d.count >= 12, d.prefix(4) == Data("QIMG".utf8) else {
            throw QuantaError(.io, "\(path): corrupt image: it does not start with QIMG")
        }
        let w = d.subdata(in: 4..<8).withUnsafeBytes { Int(UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self))) }
        let h = d.subdata(in: 8..<12).withUnsafeBytes { Int(UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self))) }
        guard w > 0, h > 0, w * h <= 1 << 26, d.count == 12 + 4 * w * h else {
            throw QuantaError(.io, "\(path): corrupt image: \(w)×\(h) pixels need \(12 + 4 * w * h) bytes but the file has \(d.count)")
        }
        var pixels = [Float](repeating: 0, count: w * h)
        _ = pixels.withUnsafeMutableBytes { dst in d.copyBytes(to: dst, from: 12..<d.count) }
        return QImage(width: w, height: h, pixels: pixels)
    }

    public func write(to path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: encoded()) else {
            throw QuantaError(.io, "\(path): cannot write the image (disk full or no permission?)")
        }
    }
}

/// Median of a copy (the demo images are small).
func median(_ values: [Float]) -> Float {
    guard !values.isEmpty else { return .nan }
    let s = values.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// A small deterministic generator (SplitMix64) so demo data is the same on every machine.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Standard normal deviate (Box–Muller).
    public mutating func gaussian() -> Double {
        let u1 = max(Double.random(in: 0..<1, using: &self), 1e-12), u2 = Double.random(in: 0..<1, using: &self)
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }
}
