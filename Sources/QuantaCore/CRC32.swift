import CZlib
import Foundation

/// CRC-32 (IEEE), for the native graph trailer and output checksums: zlib's `crc32`, which
/// reads several bytes per step (a byte-wise table was 0.4 s of reading a 145 MB graph).
public struct CRC32: Sendable {
    public private(set) var value: UInt32 = 0

    public init() {}

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard var p = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
        var left = bytes.count
        var c = UInt(value)
        while left > 0 {  // zlib takes a 32-bit length
            let n = min(left, 1 << 30)
            c = crc32(c, p, UInt32(n))
            p += n
            left -= n
        }
        value = UInt32(truncatingIfNeeded: c)
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// `crc32:0a1b2c3d`, as manifests and the registry record checksums.
    public static func text(_ value: UInt32) -> String {
        let hex = String(value, radix: 16)
        return "crc32:" + String(repeating: "0", count: 8 - hex.count) + hex
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var c = CRC32()
        c.update(bytes)
        return c.value
    }
}

extension CRC32 {
    /// A file's size and CRC-32, read in 1 MiB chunks (what manifests record of an output).
    public static func file(_ path: String) throws -> (Int64, UInt32) {
        guard let h = FileHandle(forReadingAtPath: path) else { throw QuantaError(.io, "\(path): cannot read back the output") }
        defer { try? h.close() }
        var crc = CRC32()
        var size: Int64 = 0
        while let chunk = try h.read(upToCount: 1 << 20), !chunk.isEmpty {
            size += Int64(chunk.count)
            chunk.withUnsafeBytes { crc.update($0) }
        }
        return (size, crc.value)
    }
}
