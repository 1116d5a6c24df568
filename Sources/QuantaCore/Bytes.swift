import Foundation

// The one byte writer and reader (issue 15) for Quanta's binary files: the native graph (`.qgn`),
// the snapshot's sections (`snapshot.bin`) and status's cache (`status-cache.bin`). Little-endian
// fixed-width fields; a string is a u32 byte count and its UTF-8 (0xFFFFFFFF: nil). Inlinable, as
// the readers run once per record of a million-quantum graph.

/// Little-endian fields appended to bytes.
public struct ByteWriter {
    public var bytes: [UInt8] = []

    @inlinable public init() {}

    @inlinable public mutating func append(_ b: [UInt8]) { bytes.append(contentsOf: b) }
    @inlinable public mutating func u8(_ v: UInt8) { bytes.append(v) }
    @inlinable public mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    @inlinable public mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    @inlinable public mutating func u32(_ v: Int) { u32(UInt32(truncatingIfNeeded: v)) }
    @inlinable public mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    @inlinable public mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
    @inlinable public mutating func double(_ v: Double) { u64(v.bitPattern) }
    @inlinable public mutating func uuid(_ id: UUID) { withUnsafeBytes(of: id.uuid) { bytes.append(contentsOf: $0) } }
    /// A u32 byte count, then the UTF-8.
    @inlinable public mutating func string(_ s: String) { u32(UInt32(s.utf8.count)); bytes.append(contentsOf: s.utf8) }
    /// As `string`, with 0xFFFFFFFF for nil.
    @inlinable public mutating func optionalString(_ s: String?) {
        guard let s else { u32(0xFFFF_FFFF); return }
        string(s)
    }
    /// A u32 count, then the values.
    @inlinable public mutating func u32s(_ a: [UInt32]) { u32(UInt32(a.count)); a.forEach { u32($0) } }

    /// A 4-byte tag, a u64 length, then what `body` writes.
    public mutating func section(_ tag: String, _ body: (inout ByteWriter) -> Void) {
        try! trySection(tag) { body(&$0) }
    }

    public mutating func trySection(_ tag: String, _ body: (inout ByteWriter) throws -> Void) throws {
        append(Array(tag.utf8))
        let lengthAt = bytes.count
        u64(0)
        let start = bytes.count
        try body(&self)
        let length = UInt64(bytes.count - start).littleEndian
        withUnsafeBytes(of: length) { for (i, b) in $0.enumerated() { bytes[lengthAt + i] = b } }
    }
}

/// Little-endian values from a borrowed buffer, bounds-checked against its section: any bytes
/// give a value or an error naming the file, never a trap.
public struct ByteReader {
    public let raw: UnsafeRawBufferPointer
    public let source: String
    public var offset: Int
    public let end: Int
    public let section: String

    @inlinable
    public init(raw: UnsafeRawBufferPointer, source: String, offset: Int = 0, end: Int? = nil, section: String = "header") {
        self.raw = raw
        self.source = source
        self.offset = offset
        self.end = end ?? raw.count
        self.section = section
    }

    @inline(never)
    public func corrupt(_ what: String) -> QuantaError {
        QuantaError(.invalidGraph, "\(source): corrupt section \(section) at byte \(offset): \(what)")
    }

    @inline(never)
    public func truncated(_ n: Int) -> QuantaError {
        if end == raw.count {
            return QuantaError(.invalidGraph, "\(source): truncated: needed \(n) more bytes at byte \(offset) of \(raw.count); the file was cut short — copy or write it again")
        }
        return corrupt("a value runs past the end of the section")
    }

    @inlinable @inline(__always) public func need(_ n: Int) throws {
        guard n >= 0, n <= end - offset else { throw truncated(n) }
    }

    @inlinable @inline(__always) public var atEnd: Bool { offset == end }

    @inlinable @inline(__always) public mutating func load<T: FixedWidthInteger>(_: T.Type) throws -> T {
        try need(MemoryLayout<T>.size)
        defer { offset += MemoryLayout<T>.size }
        return T(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    @inlinable public mutating func skip(_ n: Int) throws { try need(n); offset += n }
    @inlinable public mutating func bytes(_ n: Int) throws -> UnsafeRawBufferPointer {
        try need(n)
        defer { offset += n }
        return UnsafeRawBufferPointer(rebasing: raw[offset ..< offset + n])
    }
    @inlinable public mutating func u8() throws -> UInt8 { try load(UInt8.self) }
    @inlinable public mutating func u16() throws -> UInt16 { try load(UInt16.self) }
    @inlinable public mutating func u32() throws -> UInt32 { try load(UInt32.self) }
    @inlinable public mutating func u64() throws -> UInt64 { try load(UInt64.self) }
    @inlinable public mutating func i64() throws -> Int64 { try load(Int64.self) }
    @inlinable public mutating func double() throws -> Double { Double(bitPattern: try u64()) }
    @inlinable public mutating func string() throws -> String { String(decoding: try bytes(Int(try u32())), as: UTF8.self) }
    /// As `string`, 0xFFFFFFFF being nil.
    @inlinable public mutating func optionalString() throws -> String? {
        let n = try u32()
        if n == 0xFFFF_FFFF { return nil }
        return String(decoding: try bytes(Int(n)), as: UTF8.self)
    }
    /// A u32 count of records of at least `minBytes` each, checked against what is left of the
    /// section: a damaged count is an error, not a request for gigabytes (`map` reserves it).
    @inlinable public mutating func count(minBytes: Int) throws -> Int {
        let n = Int(try u32())
        guard n <= (end - offset) / minBytes else { throw corrupt("\(n) entries cannot fit in the \(end - offset) bytes left of the section") }
        return n
    }
    @inlinable public mutating func u32s() throws -> [UInt32] {
        let n = try count(minBytes: 4)
        return try (0..<n).map { _ in try u32() }
    }
    /// A u32-counted list appended as `Int32`s, without a temporary array.
    @inlinable public mutating func appendU32s(to out: inout [Int32]) throws {
        let n = Int(try u32())
        guard n <= (end - offset) / 4 else { throw corrupt("a list of \(n) entries runs past the end of the section") }
        for i in 0..<n { out.append(raw.loadUnaligned(fromByteOffset: offset + 4 * i, as: Int32.self).littleEndian) }
        offset += 4 * n
    }
    @inlinable public mutating func uuid() throws -> UUID {
        try need(16)
        defer { offset += 16 }
        return UUID(uuid: raw.loadUnaligned(fromByteOffset: offset, as: uuid_t.self))
    }
}
