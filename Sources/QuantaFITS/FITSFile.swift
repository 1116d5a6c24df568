import CFITSIO
import Foundation
import QuantaCore

/// A FITS file through cfitsio. Every cfitsio status becomes a `QuantaError` carrying cfitsio's
/// own message and the file name; the handle closes when the object goes (or on `close()`).
public final class FITSFile {
    public let path: String
    private var handle: UnsafeMutablePointer<fitsfile>?

    public enum Mode { case readOnly, readWrite }

    /// Opens an existing file.
    public init(open path: String, mode: Mode = .readOnly) throws {
        self.path = path
        var status: Int32 = 0
        var f: UnsafeMutablePointer<fitsfile>?
        qf_open(&f, path, mode == .readOnly ? qf_readonly() : qf_readwrite(), &status)
        try Self.check(status, path, "open")
        handle = f
    }

    /// Creates a new file; refuses to overwrite one (cfitsio's own rule).
    public init(create path: String) throws {
        self.path = path
        var status: Int32 = 0
        var f: UnsafeMutablePointer<fitsfile>?
        qf_create(&f, path, &status)
        try Self.check(status, path, "create")
        handle = f
    }

    deinit {
        if handle != nil { var status: Int32 = 0; qf_close(handle, &status) }
    }

    /// Flushes and closes; errors (a full disk) surface here rather than being lost in deinit.
    public func close() throws {
        guard handle != nil else { return }
        var status: Int32 = 0
        qf_close(handle, &status)
        handle = nil
        try Self.check(status, path, "close")
    }

    private func live() throws -> UnsafeMutablePointer<fitsfile> {
        guard let h = handle else { throw QuantaError(.io, "\(path): the FITS file is already closed") }
        return h
    }

    static func check(_ status: Int32, _ path: String, _ what: String) throws {
        guard status != 0 else { return }
        var text = [CChar](repeating: 0, count: 81)
        qf_error_text(status, &text)
        func str(_ a: [CChar]) -> String { String(decoding: a.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        var detail = [CChar](repeating: 0, count: 81)
        var details: [String] = []
        while qf_error_message(&detail) != 0 {
            let line = str(detail).trimmingCharacters(in: .whitespaces)
            if !line.isEmpty { details.append(line) }
        }
        let extra = details.first.map { " (\($0))" } ?? ""
        throw QuantaError(.io, "\(path): cfitsio could not \(what): \(str(text))\(extra) [status \(status)]")
    }

    public var hduCount: Int {
        get throws {
            var n: Int32 = 0, status: Int32 = 0
            qf_num_hdus(try live(), &n, &status)
            try Self.check(status, path, "count HDUs")
            return Int(n)
        }
    }

    /// Moves to HDU `number` (1 is the primary); returns true for an image HDU.
    @discardableResult
    public func move(to number: Int) throws -> Bool {
        var type: Int32 = 0, status: Int32 = 0
        qf_move(try live(), Int32(number), &type, &status)
        try Self.check(status, path, "move to HDU \(number)")
        return type == qf_image_hdu()
    }

    /// A new 2-D float image HDU, written whole.
    public func writeImage(width: Int, height: Int, pixels: [Float]) throws {
        precondition(pixels.count == width * height)
        var status: Int32 = 0
        let h = try live()
        qf_create_float_image(h, width, height, &status)
        try Self.check(status, path, "create a \(width)×\(height) image")
        try writeRows(first: 0, width: width, pixels)
    }

    public func writeRows(first: Int, width: Int, _ pixels: [Float]) throws {
        var status: Int32 = 0
        var data = pixels
        qf_write_rows(try live(), width, first, pixels.count / max(1, width), &data, &status)
        try Self.check(status, path, "write rows \(first)…")
    }

    /// The current HDU's image size (width, height); (0, 0) when it holds no 2-D image.
    public func imageSize() throws -> (width: Int, height: Int) {
        var naxis: Int32 = 0, w = 0, hgt = 0, status: Int32 = 0
        qf_image_size(try live(), &naxis, &w, &hgt, &status)
        try Self.check(status, path, "read the image size")
        return naxis == 2 ? (w, hgt) : (0, 0)
    }

    /// Rows [first, first + count) of the current 2-D image as floats; undefined pixels are NaN.
    public func readRows(first: Int, count: Int) throws -> [Float] {
        let (w, h) = try imageSize()
        guard first >= 0, count >= 0, first + count <= h else {
            throw QuantaError(.io, "\(path): rows \(first)..<\(first + count) are outside the \(w)×\(h) image")
        }
        var out = [Float](repeating: 0, count: w * count)
        var anynul: Int32 = 0, status: Int32 = 0
        qf_read_rows(try live(), w, first, count, &out, &anynul, &status)
        try Self.check(status, path, "read rows \(first)..<\(first + count)")
        return out
    }

    public func readImage() throws -> (width: Int, height: Int, pixels: [Float]) {
        let (w, h) = try imageSize()
        return (w, h, try readRows(first: 0, count: h))
    }

    public enum KeyValue: Equatable { case string(String), integer(Int64), double(Double) }

    public func write(key: String, _ value: KeyValue, comment: String? = nil) throws {
        var status: Int32 = 0
        let h = try live()
        switch value {
        case .string(let s): qf_update_key_str(h, key, s, comment, &status)
        case .integer(let n): qf_update_key_lng(h, key, n, comment, &status)
        case .double(let d): qf_update_key_dbl(h, key, d, comment, &status)
        }
        try Self.check(status, path, "write key \(key)")
    }

    public func readString(key: String) throws -> String {
        var buf = [CChar](repeating: 0, count: 72)
        var status: Int32 = 0
        qf_read_key_str(try live(), key, &buf, &status)
        try Self.check(status, path, "read key \(key)")
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public func readDouble(key: String) throws -> Double {
        var v = 0.0, status: Int32 = 0
        qf_read_key_dbl(try live(), key, &v, &status)
        try Self.check(status, path, "read key \(key)")
        return v
    }

    public func readInteger(key: String) throws -> Int64 {
        var v: Int64 = 0, status: Int32 = 0
        qf_read_key_lng(try live(), key, &v, &status)
        try Self.check(status, path, "read key \(key)")
        return v
    }

    /// CHECKSUM and DATASUM of the current HDU.
    public func writeChecksum() throws {
        var status: Int32 = 0
        qf_write_checksum(try live(), &status)
        try Self.check(status, path, "write CHECKSUM/DATASUM")
    }

    public enum Checksum: Equatable { case verified, absent, wrong }

    /// (data, whole HDU) of the current HDU.
    public func verifyChecksum() throws -> (data: Checksum, hdu: Checksum) {
        var d: Int32 = 0, h: Int32 = 0, status: Int32 = 0
        qf_verify_checksum(try live(), &d, &h, &status)
        try Self.check(status, path, "verify the checksums")
        func c(_ v: Int32) -> Checksum { v == 1 ? .verified : v == 0 ? .absent : .wrong }
        return (c(d), c(h))
    }
}
