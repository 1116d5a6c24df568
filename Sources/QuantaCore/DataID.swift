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

    public subscript(_ key: String) -> DimensionValue? {
        guard let i = keys.firstIndex(of: key) else { return nil }
        return values[i]
    }

    public var pairs: [(String, DimensionValue)] { Array(zip(keys, values)) }

    /// `visit=903334, detector=42` — for people; strings appear as they are.
    public var description: String {
        pairs.map { "\($0.0)=\($0.1)" }.joined(separator: ", ")
    }

    /// A file-name fragment: `visit903334_detector42`; `/`, NUL and control characters become `_`.
    public var pathFragment: String {
        if keys.isEmpty { return "none" }
        return pairs.map { PathSanitizer.component("\($0.0)\($0.1)") }.joined(separator: "_")
    }

    /// Values compare in key order; equal-length IDs of the same keys sort numerically.
    public static func < (lhs: DataID, rhs: DataID) -> Bool {
        for (a, b) in zip(lhs.values, rhs.values) where a != b { return a < b }
        if lhs.values.count != rhs.values.count { return lhs.values.count < rhs.values.count }
        return lhs.keys.lexicographicallyPrecedes(rhs.keys)
    }

    /// JSON text `[["visit",1],["detector",2]]`: ordered, typed, parseable anywhere.
    public var json: String {
        let items = pairs.map { key, value -> String in
            let v: String
            switch value {
            case .int(let n): v = String(n)
            case .string(let s): v = JSONText.quote(s)
            }
            return "[\(JSONText.quote(key)),\(v)]"
        }
        return "[" + items.joined(separator: ",") + "]"
    }

    public init(json: String) throws {
        guard let data = json.data(using: .utf8),
              let array = try JSONSerialization.jsonObject(with: data) as? [[Any]]
        else { throw QuantaError(.io, "not a data ID: \(json)") }
        var pairs: [(String, DimensionValue)] = []
        for item in array {
            guard item.count == 2, let key = item[0] as? String else {
                throw QuantaError(.io, "not a data ID: \(json)")
            }
            if let s = item[1] as? String {
                pairs.append((key, .string(s)))
            } else if let n = item[1] as? NSNumber {
                pairs.append((key, .int(n.int64Value)))
            } else {
                throw QuantaError(.io, "not a data ID: \(json)")
            }
        }
        self.init(pairs)
    }
}

public enum JSONText {
    /// A JSON string literal.
    public static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

public enum PathSanitizer {
    /// One path component: `/`, NUL and control characters become `_`; `.` and `..` are escaped.
    public static func component(_ s: String) -> String {
        var out = String.UnicodeScalarView()
        for scalar in s.unicodeScalars {
            if scalar == "/" || scalar.value < 0x20 || scalar.value == 0x7f {
                out.append("_")
            } else {
                out.append(scalar)
            }
        }
        let result = String(out)
        if result.isEmpty || result == "." || result == ".." { return "_" + result }
        return result
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
