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
        try Self.requireLibrary(path)
        var status: Int32 = 0
        var f: UnsafeMutablePointer<fitsfile>?
        qf_open(&f, path, mode == .readOnly ? qf_readonly() : qf_readwrite(), &status)
        try Self.check(status, path, "open")
        handle = f
    }

    /// Creates a new file; refuses to overwrite one (cfitsio's own rule).
    public init(create path: String) throws {
        self.path = path
        try Self.requireLibrary(path)
        var status: Int32 = 0
        var f: UnsafeMutablePointer<fitsfile>?
        qf_create(&f, path, &status)
        try Self.check(status, path, "create")
        handle = f
    }

    /// cfitsio is loaded on first use (see shim.h); without it, say what to install.
    static func requireLibrary(_ path: String) throws {
        guard qf_available() != 0 else {
            let why = dlerror().map { String(cString: $0) } ?? "libcfitsio.so.10 not found"
            throw QuantaError(.io, "\(path): cannot load cfitsio (\(why)); install it (Debian: apt install libcfitsio10)")
        }
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

    /// An HDU without data: the primary HDU in front of tables.
    public func writeEmptyImage() throws {
        var status: Int32 = 0
        qf_create_empty(try live(), &status)
        try Self.check(status, path, "create an empty HDU")
    }

    /// A new 2-D 32-bit integer image HDU (masks, depth maps), written whole.
    public func writeImage(width: Int, height: Int, integers: [Int32]) throws {
        precondition(integers.count == width * height)
        var status: Int32 = 0
        let h = try live()
        qf_create_int_image(h, width, height, &status)
        try Self.check(status, path, "create a \(width)×\(height) integer image")
        var data = integers
        if height > 0 { qf_write_int_rows(h, width, 0, height, &data, &status) }
        try Self.check(status, path, "write a \(width)×\(height) integer image")
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

    public enum KeyValue: Equatable, Sendable { case string(String), integer(Int64), double(Double) }

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

    public enum Checksum: Equatable, Sendable { case verified, absent, wrong }

    /// (data, whole HDU) of the current HDU.
    public func verifyChecksum() throws -> (data: Checksum, hdu: Checksum) {
        var d: Int32 = 0, h: Int32 = 0, status: Int32 = 0
        qf_verify_checksum(try live(), &d, &h, &status)
        try Self.check(status, path, "verify the checksums")
        func c(_ v: Int32) -> Checksum { v == 1 ? .verified : v == 0 ? .absent : .wrong }
        return (c(d), c(h))
    }

    // MARK: HDUs

    public enum HDUKind: Equatable, Sendable { case image, asciiTable, binaryTable }

    static func kind(_ type: Int32) -> HDUKind {
        type == qf_image_hdu() ? .image : type == qf_ascii_tbl() ? .asciiTable : .binaryTable
    }

    /// The current HDU's number (1 is the primary) and kind.
    public func currentHDU() throws -> (number: Int, kind: HDUKind) {
        var type: Int32 = 0, status: Int32 = 0
        let h = try live()
        qf_hdu_type(h, &type, &status)
        try Self.check(status, path, "read the HDU type")
        return (Int(qf_hdu_number(h)), Self.kind(type))
    }

    /// Moves to the next HDU; nil at the end of the file (the end, not an error).
    public func nextHDU() throws -> HDUKind? {
        var type: Int32 = 0, status: Int32 = 0
        let h = try live()
        let from = qf_hdu_number(h)
        qf_move_rel(h, 1, &type, &status)
        if status == qf_end_of_file() { qf_clear_messages(); return nil }
        try Self.check(status, path, "move past HDU \(from)")
        return Self.kind(type)
    }

    /// EXTNAME of the current HDU, if it has one.
    public func extensionName() -> String? {
        guard let h = handle else { return nil }
        var buf = [CChar](repeating: 0, count: 72)
        var status: Int32 = 0
        qf_read_key_str(h, "EXTNAME", &buf, &status)
        if status != 0 { qf_clear_messages(); return nil }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// BITPIX and axis lengths of the current image HDU (no axes: an empty primary).
    public func imageParameters() throws -> (bitpix: Int, axes: [Int]) {
        var bitpix: Int32 = 0, naxis: Int32 = 0, status: Int32 = 0
        var axes = [Int64](repeating: 0, count: 9)
        qf_image_param(try live(), &bitpix, &naxis, &axes, &status)
        try Self.check(status, path, "read the image parameters")
        return (Int(bitpix), axes.prefix(Int(min(naxis, 9))).map { Int($0) })
    }

    /// `count` pixels of the current image from pixel `first` (0-based, any BITPIX) as floats; NaN = undefined.
    public func readPixels(first: Int, count: Int, into out: inout [Float]) throws {
        if out.count < count { out = [Float](repeating: 0, count: count) }
        var status: Int32 = 0
        let h = try live()
        out.withUnsafeMutableBufferPointer { _ = qf_read_pixels(h, Int64(first) + 1, Int64(count), $0.baseAddress, &status) }
        try Self.check(status, path, "read pixels \(first)..<\(first + count)")
    }

    // MARK: Binary tables

    public enum ColumnValues: Equatable, Sendable {
        case double([Double])
        case integer([Int64])
        case string([String])

        public var count: Int {
            switch self {
            case .double(let v): return v.count
            case .integer(let v): return v.count
            case .string(let v): return v.count
            }
        }
    }

    public struct Column: Equatable, Sendable {
        public var name: String
        public var unit: String
        public var values: ColumnValues

        public init(_ name: String, unit: String = "", _ values: ColumnValues) {
            self.name = name
            self.unit = unit
            self.values = values
        }
    }

    /// A new binary-table HDU named `name`, written column by column (all columns the same length).
    public func writeTable(name: String, columns: [Column]) throws {
        let rows = columns.first?.values.count ?? 0
        if let bad = columns.first(where: { $0.values.count != rows }) {
            throw QuantaError(.io, "\(path): table \(name): column \(bad.name) has \(bad.values.count) values, the first column \(rows)")
        }
        let forms = columns.map { c -> String in
            switch c.values {
            case .double: return "D"
            case .integer: return "K"
            case .string(let v): return "\(max(1, v.map { $0.utf8.count }.max() ?? 1))A"
            }
        }
        var status: Int32 = 0
        let h = try live()
        try withCStrings(columns.map(\.name)) { names in
            try withCStrings(forms) { f in
                try withCStrings(columns.map(\.unit)) { units in
                    qf_create_table(h, Int64(rows), Int32(columns.count), names, f, units, name, &status)
                    try Self.check(status, path, "create table \(name)")
                }
            }
        }
        for (k, c) in columns.enumerated() where rows > 0 {
            let col = Int32(k + 1)
            switch c.values {
            case .double(let v):
                var v = v
                qf_write_col_dbl(h, col, 1, Int64(rows), &v, &status)
            case .integer(let v):
                var v = v
                qf_write_col_lng(h, col, 1, Int64(rows), &v, &status)
            case .string(let v):
                withCStrings(v) { p in _ = qf_write_col_str(h, col, 1, Int64(rows), p, &status) }
            }
            try Self.check(status, path, "write column \(c.name) of table \(name)")
        }
    }

    /// Rows and column names of the current table HDU.
    public func tableShape() throws -> (rows: Int, columns: [String]) {
        var rows: Int64 = 0, cols: Int32 = 0, status: Int32 = 0
        let h = try live()
        qf_num_rows(h, &rows, &status)
        qf_num_cols(h, &cols, &status)
        try Self.check(status, path, "read the table size")
        let names = (0..<Int(cols)).map { (try? readString(key: "TTYPE\($0 + 1)")) ?? "column \($0 + 1)" }
        return (Int(rows), names)
    }

    public enum ColumnKind: Equatable, Sendable { case floating, integer, string, other }

    /// What column `number` (1-based) holds and how many elements per row.
    public func columnKind(_ number: Int) throws -> (kind: ColumnKind, repeat: Int) {
        var code: Int32 = 0, rep: Int64 = 0, width: Int64 = 0, status: Int32 = 0
        qf_col_type(try live(), Int32(number), &code, &rep, &width, &status)
        try Self.check(status, path, "read the type of column \(number)")
        let kind: ColumnKind
        switch code {
        case qf_t_double(), qf_t_float(): kind = .floating
        case qf_t_string(): kind = .string
        case 11, 12, 14, 20, 21, 30, 31, 40, 41, 80, 81, 1: kind = .integer  // TBYTE…TULONGLONG, TBIT
        default: kind = .other  // complex, variable-length
        }
        return (kind, kind == .string ? 1 : Int(rep))
    }

    /// A whole column of the current table, by name.
    public func readColumn(_ name: String) throws -> ColumnValues {
        let shape = try tableShape()
        guard let k = shape.columns.firstIndex(where: { $0.caseInsensitiveCompare(name) == .orderedSame }) else {
            throw QuantaError(.io, "\(path): HDU \(try currentHDU().number) has no column \(name); it has \(shape.columns.joined(separator: ", "))")
        }
        let col = Int32(k + 1)
        let (kind, rep) = try columnKind(k + 1)
        let n = shape.rows * max(1, rep)
        var status: Int32 = 0
        let h = try live()
        switch kind {
        case .floating:
            var v = [Double](repeating: 0, count: n)
            if n > 0 { qf_read_col_dbl(h, col, 1, Int64(n), &v, &status) }
            try Self.check(status, path, "read column \(name)")
            return .double(v)
        case .integer:
            var v = [Int64](repeating: 0, count: n)
            if n > 0 { qf_read_col_lng(h, col, 1, Int64(n), &v, &status) }
            try Self.check(status, path, "read column \(name)")
            return .integer(v)
        case .string:
            let width = 1 + max(1, Int((try? readString(key: "TFORM\(k + 1)")).flatMap { Int($0.filter(\.isNumber)) } ?? 68))
            let buffers = (0..<shape.rows).map { _ in UnsafeMutablePointer<CChar>.allocate(capacity: width) }
            defer { buffers.forEach { $0.deallocate() } }
            var ptrs: [UnsafeMutablePointer<CChar>?] = buffers.map { $0 }
            if shape.rows > 0 { qf_read_col_str(h, col, 1, Int64(shape.rows), &ptrs, &status) }
            try Self.check(status, path, "read column \(name)")
            // Trailing blanks are not significant in FITS strings (cfitsio gives "" back as " ").
            return .string(buffers.map { p in
                var s = String(cString: p)
                while s.last == " " { s.removeLast() }
                return s
            })
        case .other:
            throw QuantaError(.io, "\(path): column \(name) is complex or variable-length; Quanta reads only numbers and strings")
        }
    }

    /// Doubles of column `number` for rows [first, first + count), every element of each row; NaN = undefined.
    public func readDoubles(column number: Int, firstRow: Int, rows: Int, repeat rep: Int, into out: inout [Double]) throws {
        let n = rows * max(1, rep)
        if out.count < n { out = [Double](repeating: 0, count: n) }
        var status: Int32 = 0
        let h = try live()
        out.withUnsafeMutableBufferPointer { _ = qf_read_col_dbl(h, Int32(number), Int64(firstRow) + 1, Int64(n), $0.baseAddress, &status) }
        try Self.check(status, path, "read column \(number) rows \(firstRow + 1)…\(firstRow + rows)")
    }

    /// Raw bytes of rows [first, first + rows) of the current table, to prove the data are there.
    public func readRowBytes(firstRow: Int, rows: Int, into out: inout [UInt8]) throws {
        var width: Int64 = 0, status: Int32 = 0
        let h = try live()
        qf_row_width(h, &width, &status)
        try Self.check(status, path, "read NAXIS1")
        let n = Int(width) * rows
        guard n > 0 else { return }
        if out.count < n { out = [UInt8](repeating: 0, count: n) }
        out.withUnsafeMutableBufferPointer { _ = qf_read_table_bytes(h, Int64(firstRow) + 1, Int64(n), $0.baseAddress, &status) }
        try Self.check(status, path, "read table rows \(firstRow + 1)…\(firstRow + rows)")
    }
}

/// C strings for cfitsio's `char **` arguments, valid inside `body`.
func withCStrings<R>(_ strings: [String], _ body: (UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) throws -> R) rethrows -> R {
    let copies = strings.map { strdup($0) }
    defer { copies.forEach { free($0) } }
    var ptrs: [UnsafeMutablePointer<CChar>?] = copies
    return try ptrs.withUnsafeMutableBufferPointer { try body($0.baseAddress!) }
}
