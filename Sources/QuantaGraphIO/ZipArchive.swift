import Foundation
import QuantaCore

/// Read-only ZIP with *stored* members (what pipe_base writes): the central directory, zip64
/// sizes and offsets, and each member's bytes as a slice of the memory-mapped file.
struct ZipArchive {
    struct Member {
        var name: String
        var method: UInt16
        var size: Int
        var dataOffset: Int
    }

    let path: String
    let bytes: Data
    private(set) var members: [String: Member] = [:]
    private(set) var order: [String] = []

    init(path: String) throws {
        let bytes: Data
        do { bytes = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw QuantaError(.invalidGraph, "\(path): cannot read (\(error.localizedDescription))")
        }
        try self.init(bytes: bytes, path: path)
    }

    /// An archive already in memory; `path` names it in errors.
    init(bytes: Data, path: String) throws {
        self.path = path
        self.bytes = bytes
        try readCentralDirectory()
    }

    private func fail(_ what: String) -> QuantaError {
        QuantaError(.invalidGraph, "\(path): \(what)")
    }

    /// `count` bytes at `at` lie inside the file (offsets read as u64 can be negative or huge).
    func inside(_ at: Int, _ count: Int) -> Bool { at >= 0 && count >= 0 && at <= bytes.count - count }

    func u16(_ at: Int) -> Int { Int(bytes[bytes.startIndex + at]) | Int(bytes[bytes.startIndex + at + 1]) << 8 }
    func u32(_ at: Int) -> Int { u16(at) | u16(at + 2) << 16 }
    func u64(_ at: Int) -> Int { u32(at) | u32(at + 4) << 32 }

    private mutating func readCentralDirectory() throws {
        let n = bytes.count
        guard n >= 22 else { throw fail("too short to be a .qg file (\(n) bytes); truncated?") }
        // End of central directory: the last PK\x05\x06 within the 64 KB comment window.
        var eocd = -1
        var i = n - 22
        while i >= max(0, n - 22 - 65_535) {
            if u32(i) == 0x0605_4b50 { eocd = i; break }
            i -= 1
        }
        guard eocd >= 0 else {
            throw fail("not a ZIP archive (no end-of-central-directory record): truncated, or not a .qg file")
        }
        var count = u16(eocd + 10)
        var cdSize = u32(eocd + 12)
        var cdOffset = u32(eocd + 16)
        // zip64: the locator sits just before the EOCD and points at the zip64 EOCD record.
        if eocd >= 20, u32(eocd - 20) == 0x0706_4b50 {
            let z = u64(eocd - 20 + 8)
            guard inside(z, 56), u32(z) == 0x0606_4b50 else { throw fail("corrupt zip64 end record; truncated?") }
            count = u64(z + 32)
            cdSize = u64(z + 40)
            cdOffset = u64(z + 48)
        }
        guard count >= 0, inside(cdOffset, cdSize) else { throw fail("central directory runs past the end of the file; truncated?") }
        var p = cdOffset
        for _ in 0..<count {
            guard inside(p, 46), u32(p) == 0x0201_4b50 else { throw fail("corrupt central directory entry at byte \(p)") }
            let method = UInt16(u16(p + 10))
            var size = u32(p + 24)
            var local = u32(p + 42)
            let nameLen = u16(p + 28), extraLen = u16(p + 30), commentLen = u16(p + 32)
            guard p + 46 + nameLen + extraLen <= n else { throw fail("corrupt central directory entry at byte \(p)") }
            let name = String(decoding: bytes[(bytes.startIndex + p + 46)..<(bytes.startIndex + p + 46 + nameLen)], as: UTF8.self)
            // zip64 extended information: the 0xffffffff fields, in order (uncompressed, compressed, offset).
            var e = p + 46 + nameLen
            let extraEnd = e + extraLen
            while e + 4 <= extraEnd {
                let id = u16(e), len = u16(e + 2)
                if id == 0x0001 {
                    var f = e + 4
                    let fieldEnd = min(extraEnd, f + len)
                    if u32(p + 24) == 0xffff_ffff, f + 8 <= fieldEnd { size = u64(f); f += 8 }
                    if u32(p + 20) == 0xffff_ffff { f += 8 }
                    if u32(p + 42) == 0xffff_ffff, f + 8 <= fieldEnd { local = u64(f) }
                }
                e += 4 + len
            }
            guard inside(local, 30), u32(local) == 0x0403_4b50 else { throw fail("member \(name): corrupt local header") }
            let data = local + 30 + u16(local + 26) + u16(local + 28)
            guard inside(data, size) else { throw fail("member \(name) runs past the end of the file (truncated)") }
            members[name] = Member(name: name, method: method, size: size, dataOffset: data)
            order.append(name)
            p += 46 + nameLen + extraLen + commentLen
        }
    }

    /// A member's bytes (stored members only: pipe_base never deflates).
    func data(_ name: String) throws -> Data {
        guard let m = members[name] else { throw fail("no member '\(name)'; not a pipe_base .qg file, or an unsupported version") }
        guard m.method == 0 else { throw fail("member \(name) is compressed with ZIP method \(m.method); pipe_base writes stored members") }
        let start = bytes.startIndex + m.dataOffset
        return bytes[start..<(start + m.size)]
    }
}
