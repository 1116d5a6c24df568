/// A data query in the butler's expression language, the part people write in `dataQuery:` and
/// `pipetask -d`: comparisons of dimensions with numbers or quoted strings (`band = 'g'`,
/// `visit >= 10`), `IN (…)` lists with ranges (`detector IN (0..3, 7)`), `AND`, `OR`, `NOT` and
/// parentheses. Keywords in any case.
///
/// A query is judged against what is known so far: a dimension it names that a data ID lacks makes
/// that comparison *unknown* (nil), so a graph builder can filter raws by `band` now and patches
/// by `patch` later. Parsing any bytes gives a query or a `QuantaError`, never a trap.
public indirect enum DataQuery: Sendable, Equatable, CustomStringConvertible {
    public enum Comparison: String, Sendable {
        case eq = "=", ne = "!=", lt = "<", le = "<=", gt = ">", ge = ">="
    }

    /// One member of an `IN` list: a value, or an integer range `a..b` (with a stride `:s`).
    public enum Member: Sendable, Equatable {
        case value(DimensionValue)
        case range(Int64, Int64, stride: Int64)
    }

    case compare(String, Comparison, DimensionValue)
    case member(String, [Member], negated: Bool)
    case and(DataQuery, DataQuery)
    case or(DataQuery, DataQuery)
    case not(DataQuery)

    /// The dimensions the query names.
    public var dimensions: Set<String> {
        switch self {
        case .compare(let d, _, _), .member(let d, _, _): return [d]
        case .and(let a, let b), .or(let a, let b): return a.dimensions.union(b.dimensions)
        case .not(let a): return a.dimensions
        }
    }

    /// True or false when `value` knows every dimension that decides it; nil when it does not yet.
    public func matches(_ value: (String) -> DimensionValue?) -> Bool? {
        switch self {
        case let .compare(d, op, v):
            guard let x = value(d) else { return nil }
            return Self.compare(x, op, v)
        case let .member(d, members, negated):
            guard let x = value(d) else { return nil }
            let found = members.contains { m in
                switch m {
                case .value(let v): return Self.compare(x, .eq, v)
                case let .range(lo, hi, s):
                    guard case .int(let i) = x, i >= lo, i <= hi else { return false }
                    return (i - lo) % s == 0
                }
            }
            return found != negated
        case let .and(a, b):
            let l = a.matches(value), r = b.matches(value)
            if l == false || r == false { return false }
            return l == true && r == true ? true : nil
        case let .or(a, b):
            let l = a.matches(value), r = b.matches(value)
            if l == true || r == true { return true }
            return l == false && r == false ? false : nil
        case .not(let a):
            return a.matches(value).map { !$0 }
        }
    }

    /// Whether a data ID may match: false only when it certainly does not.
    public func admits(_ id: DataID, also extra: [String: DimensionValue] = [:]) -> Bool {
        matches { id[$0] ?? extra[$0] } != false
    }

    static func compare(_ x: DimensionValue, _ op: Comparison, _ v: DimensionValue) -> Bool {
        let order: Int
        switch (x, v) {
        case let (.int(a), .int(b)): order = a < b ? -1 : a == b ? 0 : 1
        // A number held as text (or the other way round) compares as text: `detector = '3'`.
        default:
            let a = x.description, b = v.description
            order = a < b ? -1 : a == b ? 0 : 1
        }
        switch op {
        case .eq: return order == 0
        case .ne: return order != 0
        case .lt: return order < 0
        case .le: return order <= 0
        case .gt: return order > 0
        case .ge: return order >= 0
        }
    }

    public var description: String {
        func value(_ v: DimensionValue) -> String {
            if case .string(let s) = v { return "'" + s.replacingOccurrences(of: "'", with: "''") + "'" }
            return v.description
        }
        switch self {
        case let .compare(d, op, v): return "\(d) \(op.rawValue) \(value(v))"
        case let .member(d, ms, neg):
            let list = ms.map { m -> String in
                switch m {
                case .value(let v): return value(v)
                case let .range(a, b, s): return s == 1 ? "\(a)..\(b)" : "\(a)..\(b):\(s)"
                }
            }
            return "\(d)\(neg ? " NOT" : "") IN (\(list.joined(separator: ", ")))"
        case let .and(a, b): return "(\(a) AND \(b))"
        case let .or(a, b): return "(\(a) OR \(b))"
        case let .not(a): return "NOT \(a)"
        }
    }

    // MARK: parsing

    /// Parses `text`; `known` (if given) are the dimensions the query may name, for a did-you-mean.
    public static func parse(_ text: String, known: [String]? = nil) throws -> DataQuery {
        var p = Parser(tokens: try tokenize(text), text: text)
        let q = try p.orExpr()
        if p.i < p.tokens.count { throw p.error("unexpected '\(p.tokens[p.i].text)'") }
        if let known {
            for d in q.dimensions.sorted() where !known.contains(d) {
                let hint = DidYouMean.suggestion(for: d, among: known).map { "; did you mean '\($0)'?" } ?? ""
                throw QuantaError(.usage, "data query \"\(text)\": unknown dimension '\(d)'\(hint) (known: \(known.joined(separator: ", ")))")
            }
        }
        return q
    }

    struct Token {
        enum Kind { case word, number, string, symbol }
        var kind: Kind
        var text: String
    }

    static func tokenize(_ text: String) throws -> [Token] {
        func fail(_ why: String) -> QuantaError { QuantaError(.usage, "data query \"\(text)\": \(why)") }
        guard text.utf8.count <= 100_000 else { throw fail("longer than 100000 bytes") }
        let s = Array(text.unicodeScalars)
        var out: [Token] = []
        var i = 0
        while i < s.count {
            let c = s[i]
            if c == " " || c == "\t" || c == "\n" || c == "\r" { i += 1; continue }
            if c.properties.isAlphabetic || c == "_" {
                var j = i
                while j < s.count, s[j].properties.isAlphabetic || s[j] == "_" || ("0"..."9").contains(s[j]) || s[j] == "." { j += 1 }
                var word = String(String.UnicodeScalarView(s[i..<j]))
                // `visit.id` style qualifiers name the dimension itself.
                if word.hasSuffix(".id") || word.hasSuffix(".name") { word = String(word.prefix { $0 != "." }) }
                out.append(Token(kind: .word, text: word))
                i = j
            } else if ("0"..."9").contains(c) || (c == "-" && i + 1 < s.count && ("0"..."9").contains(s[i + 1])) {
                var j = i + 1
                while j < s.count, ("0"..."9").contains(s[j]) { j += 1 }
                out.append(Token(kind: .number, text: String(String.UnicodeScalarView(s[i..<j]))))
                i = j
            } else if c == "'" || c == "\"" {
                var j = i + 1
                var value = String.UnicodeScalarView()
                while true {
                    guard j < s.count else { throw fail("a string opened with \(c) is not closed") }
                    if s[j] == c {
                        if j + 1 < s.count, s[j + 1] == c { value.append(c); j += 2; continue }
                        break
                    }
                    value.append(s[j])
                    j += 1
                }
                out.append(Token(kind: .string, text: String(value)))
                i = j + 1
            } else {
                let two = i + 1 < s.count ? String(String.UnicodeScalarView([c, s[i + 1]])) : ""
                if ["!=", "<=", ">=", "..", "<>", "=="].contains(two) {
                    out.append(Token(kind: .symbol, text: two == "<>" ? "!=" : two == "==" ? "=" : two))
                    i += 2
                } else if "=<>(),:".unicodeScalars.contains(c) {
                    out.append(Token(kind: .symbol, text: String(c)))
                    i += 1
                } else {
                    throw fail("unexpected character '\(c.escaped(asASCII: true))'")
                }
            }
        }
        return out
    }

    struct Parser {
        var tokens: [Token]
        var text: String
        var i = 0
        var depth = 0

        func error(_ why: String) -> QuantaError { QuantaError(.usage, "data query \"\(text)\": \(why)") }

        func peekKeyword(_ k: String) -> Bool {
            i < tokens.count && tokens[i].kind == .word && tokens[i].text.uppercased() == k
        }

        func peekSymbol(_ s: String) -> Bool { i < tokens.count && tokens[i].kind == .symbol && tokens[i].text == s }

        mutating func expect(_ s: String) throws {
            guard peekSymbol(s) else { throw error(i < tokens.count ? "expected '\(s)' before '\(tokens[i].text)'" : "expected '\(s)' at the end") }
            i += 1
        }

        mutating func orExpr() throws -> DataQuery {
            depth += 1
            defer { depth -= 1 }
            guard depth < 200 else { throw error("nested too deeply") }
            var l = try andExpr()
            while peekKeyword("OR") { i += 1; l = .or(l, try andExpr()) }
            return l
        }

        mutating func andExpr() throws -> DataQuery {
            var l = try notExpr()
            while peekKeyword("AND") { i += 1; l = .and(l, try notExpr()) }
            return l
        }

        mutating func notExpr() throws -> DataQuery {
            if peekKeyword("NOT") {
                i += 1
                depth += 1
                defer { depth -= 1 }
                guard depth < 200 else { throw error("nested too deeply") }
                return .not(try notExpr())
            }
            if peekSymbol("(") {
                i += 1
                let e = try orExpr()
                try expect(")")
                return e
            }
            guard i < tokens.count else { throw error(tokens.isEmpty ? "empty" : "ends where a comparison should follow") }
            let t = tokens[i]
            guard t.kind == .word, !["AND", "OR", "IN"].contains(t.text.uppercased()) else {
                throw error("expected a dimension name, found '\(t.text)'")
            }
            i += 1
            let name = t.text
            var negated = false
            if peekKeyword("NOT") { negated = true; i += 1 }
            if peekKeyword("IN") {
                i += 1
                try expect("(")
                var members: [Member] = []
                repeat {
                    if !members.isEmpty { i += 1 }
                    members.append(try member(of: name))
                } while peekSymbol(",")
                try expect(")")
                return .member(name, members, negated: negated)
            }
            if negated { throw error("'NOT' after \(name) must be followed by IN") }
            guard i < tokens.count, tokens[i].kind == .symbol, let op = Comparison(rawValue: tokens[i].text) else {
                throw error(i < tokens.count ? "expected =, !=, <, <=, >, >= or IN after \(name), found '\(tokens[i].text)'" : "\(name) needs a comparison")
            }
            i += 1
            return .compare(name, op, try value(of: name))
        }

        mutating func value(of name: String) throws -> DimensionValue {
            guard i < tokens.count else { throw error("\(name) needs a value") }
            let t = tokens[i]
            i += 1
            switch t.kind {
            case .number:
                guard let v = Int64(t.text) else { throw error("\(t.text) is too large a number") }
                return .int(v)
            case .string: return .string(t.text)
            case .word:
                throw error("\(t.text) is not a value; quote strings: \(name) = '\(t.text)'")
            case .symbol:
                throw error("expected a value after \(name), found '\(t.text)'")
            }
        }

        mutating func member(of name: String) throws -> Member {
            let v = try value(of: name)
            guard peekSymbol("..") else { return .value(v) }
            i += 1
            guard case .int(let lo) = v, case .int(let hi) = try value(of: name) else { throw error("a range needs numbers: \(name) IN (1..10)") }
            var stride: Int64 = 1
            if peekSymbol(":") {
                i += 1
                guard case .int(let s) = try value(of: name), s > 0 else { throw error("a range's stride is a number above 0: 1..10:2") }
                stride = s
            }
            guard lo <= hi else { throw error("the range \(lo)..\(hi) is empty") }
            return .range(lo, hi, stride: stride)
        }
    }
}
