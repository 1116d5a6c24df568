import Foundation

/// One dimension value: integers sort numerically, strings lexically, integers before strings.
public enum DimensionValue: Hashable, Sendable, Comparable, CustomStringConvertible {
    case int(Int64)
    case string(String)

    public static func < (lhs: DimensionValue, rhs: DimensionValue) -> Bool {
        switch (lhs, rhs) {
        case let (.int(a), .int(b)): return a < b
        case let (.string(a), .string(b)): return a < b
        case (.int, .string): return true
        case (.string, .int): return false
        }
    }

    public var description: String {
        switch self {
        case .int(let v): return String(v)
        case .string(let s): return s
        }
    }
}

/// A data ID: dimension names with values, kept in universe order.
public struct DataID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public private(set) var keys: [String]
    public private(set) var values: [DimensionValue]

    public init(_ pairs: [(String, DimensionValue)]) {
        keys = pairs.map(\.0)
        values = pairs.map(\.1)
    }

    public init(keys: [String], values: [DimensionValue]) {
        precondition(keys.count == values.count)
        self.keys = keys
        self.values = values
    }

    public static let empty = DataID([])

    /// Values only: a data ID's keys are its dataset type's dimensions, mostly the very same array
    /// (equality still compares them), and hashing the key strings was half of interning data IDs.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(values.count)
        for v in values {
            switch v {
            case .int(let i): hasher.combine(i)
            case .string(let s): hasher.combine(s)
            }
        }
    }

    public subscript(_ key: String) -> DimensionValue? {
        guard let i = keys.firstIndex(of: key) else { return nil }
        return values[i]
    }

    public var pairs: [(String, DimensionValue)] { Array(zip(keys, values)) }

    /// `visit=903334, detector=42` — for people; strings appear as they are.
    public var description: String {
        pairs.map { "\($0.0)=\($0.1)" }.joined(separator: ", ")
    }

    /// A file-name fragment: `visit903334_detector42`. Values are escaped reversibly (`_` included,
    /// it joins the pairs), so two data IDs of one dataset type never share a fragment.
    public var pathFragment: String {
        if keys.isEmpty { return "none" }
        return pairs.map { PathSanitizer.component($0.0) + PathSanitizer.escape($0.1.description, underscore: true) }.joined(separator: "_")
    }

    /// Values compare in key order; equal-length IDs of the same keys sort numerically.
    public static func < (lhs: DataID, rhs: DataID) -> Bool {
        for (a, b) in zip(lhs.values, rhs.values) where a != b { return a < b }
        if lhs.values.count != rhs.values.count { return lhs.values.count < rhs.values.count }
        return lhs.keys.lexicographicallyPrecedes(rhs.keys)
    }

    /// JSON text `[["visit",1],["detector",2]]`: ordered, typed, parseable anywhere.
    public var json: String {
        var bytes: [UInt8] = []
        appendJSON(to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The same text appended as UTF-8, with no intermediate strings (the snapshot writes a
    /// million of these).
    public func appendJSON(to out: inout [UInt8]) {
        out.append(UInt8(ascii: "["))
        for i in keys.indices {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: "["))
            JSONText.appendQuoted(keys[i], to: &out)
            out.append(UInt8(ascii: ","))
            switch values[i] {
            case .int(let n): JSONText.appendInteger(n, to: &out)
            case .string(let str): JSONText.appendQuoted(str, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        }
        out.append(UInt8(ascii: "]"))
    }

    /// The canonical text form back (`json`'s inverse), read by the shared JSON scanner.
    public init(json: String) throws {
        var text = json
        let parsed: [(String, DimensionValue)]? = text.withUTF8 { utf8 in
            var r = JSONReader(UnsafeRawBufferPointer(utf8))
            var pairs: [(String, DimensionValue)] = []
            do {
                try r.array { r in
                    var key: String?, value: DimensionValue?, n = 0
                    try r.array { r in
                        n += 1
                        if n == 1 { key = try r.string() }
                        else if n == 2 { value = r.peekIsString ? .string(try r.string()) : .int(Int64(try r.int())) }
                        else { try r.skip(); key = nil }
                    }
                    guard n == 2, let key, let value else { throw JSONScanError(message: "not a pair") }
                    pairs.append((key, value))
                }
                try r.end()
            } catch { return nil }
            return pairs
        }
        guard let parsed else { throw QuantaError(.io, "not a data ID: \(json)") }
        self.init(parsed)
    }
}

extension DataID {
    /// The binary form, shared by the native graph (`.qgn`) and the snapshot: a u16 pair count,
    /// then per pair a u16 index into the file's dimension table, a u8 kind (0 integer, 1 string)
    /// and the value (i64, or a u32-counted UTF-8 string).
    public func encode(into w: inout ByteWriter, dimensions: [String: UInt32]) throws {
        w.u16(UInt16(truncatingIfNeeded: keys.count))
        for i in keys.indices {
            guard let d = dimensions[keys[i]], d <= UInt32(UInt16.max) else {
                throw QuantaError(.invalidGraph, "data ID {\(self)} uses dimension '\(keys[i])', which is not in the universe")
            }
            w.u16(UInt16(d))
            switch values[i] {
            case .int(let n): w.u8(0); w.i64(n)
            case .string(let str): w.u8(1); w.string(str)
            }
        }
    }
}

/// Reads data IDs in their binary form (`DataID.encode`). Data IDs of one dataset type share one
/// key array, as the graph's do.
public struct DataIDDecoder {
    public let dimensions: [String]
    var keyLists: [[UInt16]: [String]] = [:]
    var indices: [UInt16] = []

    public init(dimensions: [String]) { self.dimensions = dimensions }

    public mutating func decode(_ s: inout ByteReader) throws -> DataID {
        let k = Int(try s.u16())
        indices.removeAll(keepingCapacity: true)
        var values: [DimensionValue] = []
        values.reserveCapacity(k)
        for _ in 0..<k {
            let d = try s.u16()
            guard Int(d) < dimensions.count else { throw s.corrupt("dimension index \(d) outside the universe") }
            indices.append(d)
            switch try s.u8() {
            case 0: values.append(.int(try s.i64()))
            case 1: values.append(.string(try s.string()))
            case let kind: throw s.corrupt("unknown data ID value kind \(kind)")
            }
        }
        let keys: [String]
        if let known = keyLists[indices] { keys = known } else {
            keys = indices.map { dimensions[Int($0)] }
            keyLists[indices] = keys
        }
        return DataID(keys: keys, values: values)
    }
}

public enum JSONText {
    /// A JSON string literal.
    public static func quote(_ s: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count + 2)
        appendQuoted(s, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// A JSON string literal appended as UTF-8: `"` `\\` and control characters escaped, the rest
    /// (multi-byte characters included) copied as they are.
    public static func appendQuoted(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(UInt8(ascii: "\\")); out.append(b)
            case UInt8(ascii: "\\"): out.append(b); out.append(b)
            case UInt8(ascii: "\n"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "n"))
            case UInt8(ascii: "\r"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "r"))
            case UInt8(ascii: "\t"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "t"))
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: Array("\\u00".utf8))
                out.append(hex[Int(b >> 4)]); out.append(hex[Int(b & 0xf)])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// Decimal digits of `n`, as `String(n)` writes them.
    public static func appendInteger(_ n: Int64, to out: inout [UInt8]) {
        if n < 0 { out.append(UInt8(ascii: "-")) }
        var m = n.magnitude
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var k = 0
        withUnsafeMutableBytes(of: &digits) { d in
            repeat { d[k] = UInt8(ascii: "0") + UInt8(m % 10); m /= 10; k += 1 } while m > 0
            while k > 0 { k -= 1; out.append(d[k]) }
        }
    }
}

public enum PathSanitizer {
    /// One path component, escaped reversibly (percent-encoding): `%`, `/`, NUL, control
    /// characters and DEL become `%XX`; a component that is `.` or `..` has its dots escaped; the
    /// empty string is `%`. Different values never give the same component (issue 12: `a/b` and
    /// `a_b` used to share one file).
    public static func component(_ s: String) -> String {
        escape(s, underscore: false)
    }

    /// `component`, also escaping `_` when the result is joined to others with `_`.
    public static func escape(_ s: String, underscore: Bool) -> String {
        if s.isEmpty { return "%" }
        if s == "." { return "%2E" }
        if s == ".." { return "%2E%2E" }
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count)
        let hex = Array("0123456789ABCDEF".utf8)
        for b in s.utf8 {
            if b == UInt8(ascii: "%") || b == UInt8(ascii: "/") || b < 0x20 || b == 0x7f || (underscore && b == UInt8(ascii: "_")) {
                out += [UInt8(ascii: "%"), hex[Int(b >> 4)], hex[Int(b & 15)]]
            } else {
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The inverse of `component`/`escape` (nil for text no escape produces).
    public static func unescape(_ s: String) -> String? {
        if s == "%" { return "" }
        var out: [UInt8] = []
        var it = Array(s.utf8)[...]
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        while let b = it.popFirst() {
            guard b == UInt8(ascii: "%") else { out.append(b); continue }
            guard let h = it.popFirst().flatMap(nibble), let l = it.popFirst().flatMap(nibble) else { return nil }
            out.append(h << 4 | l)
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A name safe in file names, SLURM job names and `#SBATCH` lines: `[A-Za-z0-9_.-]` only.
    public static func safeName(_ s: String) -> String {
        let mapped = s.unicodeScalars.map { c -> Character in
            let ok = (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9")
                || c == "_" || c == "-" || c == "."
            return ok ? Character(c) : "_"
        }
        var name = String(mapped)
        if name.isEmpty || name.hasPrefix(".") || name.hasPrefix("-") { name = "x" + name }
        return name
    }
}

extension DataID {
    /// `{visit: 903334, detector: 42}` from a manifest's or registry's JSON text; the text itself
    /// when it is not a data ID.
    public static func describe(json: String) -> String {
        ((try? DataID(json: json)).map { "{\($0)}" }) ?? json
    }
}
