#if canImport(Glibc)
import Glibc
#endif
import Foundation

// The one JSON scanner (issue 15): tokens, strings, numbers and skipping, by JSONDecoder's rules
// (swift-foundation's), over borrowed bytes. Two readers build on it: `JSONReader` (a pull reader
// for the files Quanta reads by the hundred thousand: manifests, the snapshot header) and the
// `.qg` quantum-block parser in QuantaGraphIO, which is why everything here is inlinable.
// What it accepts and rejects, as JSONDecoder does:
//  - values that are not decoded (`skipValue`) are only checked the way JSONDecoder's scanner
//    checks them: brackets, quotes, `true`/`false`/`null` and 512 levels of nesting; their strings
//    may hold control characters, bad escapes or bad UTF-8, and their numbers are any run of
//    `0-9 . + - e E` that starts with a digit or '-';
//  - decoded strings are strict: valid escapes (surrogates paired), no control characters, UTF-8;
//  - trailing commas are accepted (`[1,]`, `{"a":1,}`);
//  - an integer may be written as a float if it is integral (`1.0`, `1e2`), through JSONDecoder's
//    Double/Decimal fallbacks, incl. their rounding.

/// Why JSON could not be read: a one-line message with the byte offset, e.g.
/// `expected ',' or '}' at byte 123`.
public struct JSONScanError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong, e.g. `expected ',' or '}'`.
    public var message: String
    /// Offset of the offending byte (the input's length if it ended early); nil for what is wrong
    /// with a value rather than at a place (`unknown status 'x'`).
    public var offset: Int?
    /// True when the input ended where more was expected (truncation).
    public var atEnd: Bool

    public init(message: String, offset: Int? = nil, atEnd: Bool = false) {
        self.message = message
        self.offset = offset
        self.atEnd = atEnd
    }

    public var description: String { "\(message)\(offset.map { " at byte \($0)" } ?? "")\(atEnd ? " (end of input)" : "")" }
}

@usableFromInline let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\"), comma = UInt8(ascii: ",")
@usableFromInline let openBrace = UInt8(ascii: "{"), closeBrace = UInt8(ascii: "}")
@usableFromInline let openBracket = UInt8(ascii: "["), closeBracket = UInt8(ascii: "]")
@usableFromInline let minus = UInt8(ascii: "-"), zero = UInt8(ascii: "0")

/// JSONDecoder's nesting limit (its scanner refuses a 513th level).
@usableFromInline let maxDepth = 512

/// A string as read: either its raw bytes (pure ASCII without escapes, so already valid) or,
/// when decoding was needed, the decoded text.
public struct JSONStringToken {
    public var start: Int
    public var count: Int
    public var text: String?
    @inlinable public init(start: Int, count: Int, text: String?) {
        self.start = start
        self.count = count
        self.text = text
    }
}

public struct JSONScanner {
    public typealias E = JSONScanError

    public let p: UnsafePointer<UInt8>
    public let n: Int
    public var i = 0
    /// Reused for strings with escapes.
    @usableFromInline var scratch: [UInt8] = []

    @inlinable public init(p: UnsafePointer<UInt8>, n: Int) {
        self.p = p
        self.n = n
    }

    /// Over a buffer that may be empty (its base address then nil).
    @inlinable public init(_ bytes: UnsafeRawBufferPointer) {
        self.init(p: bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? JSONScanner.empty, n: bytes.count)
    }

    @usableFromInline nonisolated(unsafe) static let empty = UnsafePointer<UInt8>(UnsafeMutablePointer<UInt8>.allocate(capacity: 1))

    /// The string if `bytes` are valid UTF-8 (what JSONDecoder requires), else nil. (Like
    /// `String(validating:as:)`, which needs macOS 15: decoding repairs any invalid sequence with
    /// U+FFFD, so the bytes come back unchanged exactly when they were valid.)
    @inlinable public static func validUTF8(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        let s = String(decoding: bytes, as: UTF8.self)
        return s.utf8.elementsEqual(bytes) ? s : nil
    }

    /// 0...15 for a hex digit, 0xFF otherwise.
    @inlinable @inline(__always) public static func hexValue(_ c: UInt8) -> UInt8 {
        let d = c &- 48
        if d < 10 { return d }
        let l = (c | 0x20) &- 97
        return l < 6 ? l &+ 10 : 0xFF
    }

    // MARK: errors (kept out of line)

    @inline(never)
    public func expected(_ what: String, at k: Int) -> E {
        E(message: "expected \(what)", offset: k, atEnd: k >= n)
    }

    @inline(never)
    public func expected(_ what: StaticString, at k: Int) -> E {
        expected("\(what)", at: k)
    }

    @inline(never)
    public func failure(_ message: String, at k: Int) -> E {
        E(message: message, offset: k, atEnd: k >= n)
    }

    @inline(never)
    public func missing(_ key: StaticString, in what: StaticString, at k: Int) -> E {
        E(message: "missing key \"\(key)\" in the \(what) object starting", offset: k, atEnd: false)
    }

    // MARK: tokens

    @inlinable @inline(__always)
    public mutating func skipWhitespace() {
        while i < n {
            let c = p[i]
            guard c <= 0x20, c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 else { return }
            i &+= 1
        }
    }

    /// The next byte after whitespace, not consumed.
    @inlinable @inline(__always)
    public mutating func peek(_ what: StaticString) throws(E) -> UInt8 {
        skipWhitespace()
        guard i < n else { throw expected(what, at: i) }
        return p[i]
    }

    @inlinable @inline(__always)
    public mutating func colon() throws(E) {
        guard try peek("':'") == UInt8(ascii: ":") else { throw expected("':'", at: i) }
        i &+= 1
    }

    /// `{`, then `}` (an empty object: false) or the start of the first key (true).
    @inlinable @inline(__always)
    public mutating func beginObject(_ what: StaticString) throws(E) -> Bool {
        guard try peek(what) == openBrace else { throw expected(what, at: i) }
        i &+= 1
        if try peek("a key or '}'") == closeBrace { i &+= 1; return false }
        return true
    }

    /// After a member: `,` and another key (true), or `}` (false). A trailing comma is accepted.
    @inlinable @inline(__always)
    public mutating func nextMember() throws(E) -> Bool {
        let c = try peek("',' or '}'")
        if c == comma {
            i &+= 1
            if try peek("a key or '}'") == closeBrace { i &+= 1; return false }
            return true
        }
        guard c == closeBrace else { throw expected("',' or '}'", at: i) }
        i &+= 1
        return false
    }

    /// `[`, then `]` (an empty array: false) or the start of the first element (true).
    @inlinable @inline(__always)
    public mutating func beginArray(_ what: StaticString) throws(E) -> Bool {
        guard try peek(what) == openBracket else { throw expected(what, at: i) }
        i &+= 1
        if try peek("a value or ']'") == closeBracket { i &+= 1; return false }
        return true
    }

    /// After an element: `,` and another element (true), or `]` (false). A trailing comma is accepted.
    @inlinable @inline(__always)
    public mutating func nextElement() throws(E) -> Bool {
        let c = try peek("',' or ']'")
        if c == comma {
            i &+= 1
            if try peek("a value or ']'") == closeBracket { i &+= 1; return false }
            return true
        }
        guard c == closeBracket else { throw expected("',' or ']'", at: i) }
        i &+= 1
        return false
    }

    /// `null` (true, consumed) or something else (false, not consumed); whitespace is skipped.
    @inlinable @inline(__always)
    public mutating func null() throws(E) -> Bool {
        guard try peek("a value") == UInt8(ascii: "n") else { return false }
        try literal("null")
        return true
    }

    @inlinable
    public mutating func literal(_ word: StaticString) throws(E) {
        let m = word.utf8CodeUnitCount
        let w = word.utf8Start
        for k in 0..<m {
            guard i &+ k < n, p[i &+ k] == w[k] else { throw expected("'\(word)'", at: i &+ k) }
        }
        i &+= m
    }

    // MARK: strings

    /// A string decoded strictly, as JSONDecoder decodes the strings it uses: escapes must be valid
    /// (surrogates paired), no unescaped control characters, valid UTF-8. `i` is at the opening quote
    /// (whitespace already skipped).
    @inlinable @inline(__always)
    public mutating func stringToken(_ what: StaticString) throws(E) -> JSONStringToken {
        guard i < n, p[i] == quote else { throw expected(what, at: i) }
        i &+= 1
        let start = i
        var bits: UInt8 = 0
        // 8 bytes at a time while there is no quote, backslash, control character or non-ASCII byte.
        while i &+ 8 <= n {
            let w = UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self)
            let ones: UInt64 = 0x0101_0101_0101_0101, high: UInt64 = 0x8080_8080_8080_8080
            let q = w ^ (ones &* UInt64(quote)), b = w ^ (ones &* UInt64(backslash))
            let special = (q &- ones) & ~q | (b &- ones) & ~b | (w &- ones &* 0x20) | w
            if special & high != 0 { break }
            i &+= 8
        }
        while i < n {
            let c = p[i]
            if c == quote {
                i &+= 1
                if bits & 0x80 == 0 { return JSONStringToken(start: start, count: i &- 1 &- start, text: nil) }
                return try validated(start: start, count: i &- 1 &- start)
            }
            if c == backslash || c < 0x20 { break }
            bits |= c
            i &+= 1
        }
        return try slowString(start: start)
    }

    @inline(never)
    public func validated(start: Int, count: Int) throws(E) -> JSONStringToken {
        guard let s = JSONScanner.validUTF8(UnsafeBufferPointer(start: p + start, count: count)) else {
            throw failure("invalid UTF-8 in string", at: start)
        }
        return JSONStringToken(start: start, count: count, text: s)
    }

    /// The rest of a string from `i` (at a backslash, a control character or the end): with escapes.
    @inline(never)
    public mutating func slowString(start: Int) throws(E) -> JSONStringToken {
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: UnsafeBufferPointer(start: p + start, count: i &- start))
        var bits: UInt8 = 0
        for c in scratch { bits |= c }
        while true {
            guard i < n else { throw expected("'\"' (end of string)", at: i) }
            let c = p[i]
            if c == quote { i &+= 1; break }
            if c < 0x20 { throw failure("unescaped control character in string", at: i) }
            guard c == backslash else {
                bits |= c
                scratch.append(c)
                i &+= 1
                continue
            }
            guard i &+ 1 < n else { throw expected("an escape sequence", at: i &+ 1) }
            let e = p[i &+ 1]
            switch e {
            case quote, backslash, UInt8(ascii: "/"): scratch.append(e)
            case UInt8(ascii: "b"): scratch.append(0x08)
            case UInt8(ascii: "f"): scratch.append(0x0C)
            case UInt8(ascii: "n"): scratch.append(0x0A)
            case UInt8(ascii: "r"): scratch.append(0x0D)
            case UInt8(ascii: "t"): scratch.append(0x09)
            case UInt8(ascii: "u"):
                let u = try hex4(at: i &+ 2)
                var scalar = u
                if u >= 0xD800 && u <= 0xDBFF {
                    let k = i &+ 6
                    guard k &+ 1 < n, p[k] == backslash, p[k &+ 1] == UInt8(ascii: "u") else {
                        throw failure("expected '\\u' and a low surrogate after a high surrogate", at: k)
                    }
                    let low = try hex4(at: k &+ 2)
                    guard low >= 0xDC00 && low <= 0xDFFF else {
                        throw failure("expected a low surrogate after a high surrogate", at: k)
                    }
                    scalar = 0x10000 &+ ((u &- 0xD800) &<< 10) &+ (low &- 0xDC00)
                    i &+= 6
                } else if u >= 0xDC00 && u <= 0xDFFF {
                    throw failure("unpaired low surrogate in string", at: i)
                }
                appendUTF8(scalar)
                i &+= 4
            default:
                throw failure("invalid escape sequence in string", at: i)
            }
            i &+= 2
        }
        let text: String
        if bits & 0x80 == 0 {
            text = String(decoding: scratch, as: UTF8.self)
        } else {
            let valid = scratch.withUnsafeBufferPointer { JSONScanner.validUTF8($0) }
            guard let s = valid else { throw failure("invalid UTF-8 in string", at: start) }
            text = s
        }
        return JSONStringToken(start: start, count: i &- 1 &- start, text: text)
    }

    /// Four hex digits at `k`.
    @inlinable
    public func hex4(at k: Int) throws(E) -> UInt32 {
        guard k &+ 4 <= n else { throw expected("four hex digits", at: n) }
        var v: UInt32 = 0
        for j in 0..<4 {
            let h = JSONScanner.hexValue(p[k &+ j])
            guard h < 16 else { throw expected("four hex digits", at: k &+ j) }
            v = v &<< 4 | UInt32(h)
        }
        return v
    }

    @inlinable
    public mutating func appendUTF8(_ s: UInt32) {
        if s < 0x80 {
            scratch.append(UInt8(s))
        } else if s < 0x800 {
            scratch.append(UInt8(0xC0 | s >> 6))
            scratch.append(UInt8(0x80 | s & 0x3F))
        } else if s < 0x10000 {
            scratch.append(UInt8(0xE0 | s >> 12))
            scratch.append(UInt8(0x80 | s >> 6 & 0x3F))
            scratch.append(UInt8(0x80 | s & 0x3F))
        } else {
            scratch.append(UInt8(0xF0 | s >> 18))
            scratch.append(UInt8(0x80 | s >> 12 & 0x3F))
            scratch.append(UInt8(0x80 | s >> 6 & 0x3F))
            scratch.append(UInt8(0x80 | s & 0x3F))
        }
    }

    @inlinable @inline(__always)
    public func text(_ t: JSONStringToken) -> String {
        if let s = t.text { return s }
        return String(decoding: UnsafeBufferPointer(start: p + t.start, count: t.count), as: UTF8.self)
    }

    /// A string value (whitespace skipped first).
    @inlinable @inline(__always)
    public mutating func string(_ what: StaticString) throws(E) -> String {
        _ = try peek(what)
        return text(try stringToken(what))
    }


    /// An object key (`i` at it, whitespace skipped) and the colon after it.
    @inlinable @inline(__always)
    public mutating func key() throws(E) -> JSONStringToken {
        let k = try stringToken("a key (a string)")
        try colon()
        return k
    }

    @inlinable @inline(__always)
    public func key(_ k: JSONStringToken, is name: StaticString) -> Bool {
        let m = name.utf8CodeUnitCount
        if let t = k.text { return t.utf8.elementsEqual(UnsafeBufferPointer(start: name.utf8Start, count: m)) }
        return k.count == m && memcmp(p + k.start, name.utf8Start, m) == 0
    }

    // MARK: numbers

    @inlinable @inline(__always)
    public static func isNumberByte(_ c: UInt8) -> Bool {
        // 0-9 . + - e E: JSONDecoder's scanner takes any run of these as a number token.
        (c &- zero) < 10 || c == UInt8(ascii: ".") || c == UInt8(ascii: "+") || c == minus
            || c == UInt8(ascii: "e") || c == UInt8(ascii: "E")
    }

    /// A JSON number token (from a digit or '-') as JSONDecoder decodes an `Int64`.
    @inlinable
    public mutating func int64() throws(E) -> Int64 {
        let start = i
        i &+= 1
        while i < n && Self.isNumberByte(p[i]) { i &+= 1 }
        let end = i
        // Fast path: -?[1-9][0-9]* or -?0, up to 18 digits (no overflow possible).
        var k = start
        let negative = p[k] == minus
        if negative { k &+= 1 }
        let digits = end &- k
        if digits > 0 && digits <= 18 && (p[k] != zero || digits == 1) {
            var v: Int64 = 0
            var j = k
            while j < end {
                let d = p[j] &- zero
                guard d < 10 else { break }
                v = v &* 10 &+ Int64(d)
                j &+= 1
            }
            if j == end { return negative ? 0 &- v : v }
        }
        return try slowInt64(start: start, end: end)
    }

    /// Everything else JSONDecoder does for an Int64: validation, then integer digits with overflow
    /// checks, then an exactly integral Double (below 2^53), then Foundation.Decimal.
    @inline(never)
    public func slowInt64(start: Int, end: Int) throws(E) -> Int64 {
        // JSONScanner.prevalidateJSONNumber
        var firstDigit = start
        func leadingZero(at k: Int) throws(E) {
            guard k < end else { return }
            let c = p[k]
            if c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") { return }
            if (c &- zero) < 10 { throw failure("number with a leading zero", at: k) }
            throw failure("invalid number", at: k)
        }
        let c0 = p[start]
        if c0 == zero {
            try leadingZero(at: start &+ 1)
        } else if c0 == minus {
            guard end &- start > 1 else { throw failure("invalid number", at: start) }
            let c1 = p[start &+ 1]
            if c1 == zero { try leadingZero(at: start &+ 2) }
            else if !((c1 &- zero) < 10) { throw failure("invalid number", at: start &+ 1) }
            firstDigit = start &+ 1
        }
        var k = firstDigit &+ 1
        while k < end {
            let c = p[k]
            if c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
                guard (p[k &- 1] &- zero) < 10 else { throw failure("invalid number", at: k) }
                break
            }
            k &+= 1
        }
        guard (p[end &- 1] &- zero) < 10 else { throw failure("invalid number", at: end &- 1) }

        // Integer digits (the fast path above only skipped long or unusual ones).
        let negative = c0 == minus
        var v: Int64 = 0
        var j = negative ? start &+ 1 : start
        var plain = true
        while j < end {
            let d = p[j] &- zero
            guard d < 10 else { plain = false; break }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = negative ? m.subtractingReportingOverflow(Int64(d)) : m.addingReportingOverflow(Int64(d))
            guard !o1 && !o2 else { plain = false; break }
            v = a
            j &+= 1
        }
        if plain { return v }

        // Double, exactly integral, below 2^53.
        let token = String(decoding: UnsafeBufferPointer(start: p + start, count: end &- start), as: UTF8.self)
        guard let double = Double(token) else { throw failure("invalid number", at: start) }
        guard let exact = Int64(exactly: double) else { throw failure("number is not an Int64", at: start) }
        if double.magnitude < 9_007_199_254_740_992 { return exact }
        // Foundation.Decimal (38 digits), truncated toward zero.
        guard let d = Self.decimalInt64(UnsafeBufferPointer(start: p + start, count: end &- start)) else {
            throw failure("number is not an Int64", at: start)
        }
        return d
    }

    /// `Int64(Decimal(string: token))` the way JSONDecoder converts (swift-foundation's
    /// `Decimal._decimal(from:matchEntireString:)`, `compact()` and `FixedWidthInteger.init?(_: Decimal)`):
    /// a 128-bit mantissa (extra digits dropped), an Int8 exponent, truncation toward zero.
    /// `token` is a number strtod accepted entirely.
    @inlinable
    public static func decimalInt64(_ token: UnsafeBufferPointer<UInt8>) -> Int64? {
        var hi: UInt64 = 0, lo: UInt64 = 0
        var exponent = 0
        var tooBig = false
        var k = 0
        let negative = token[0] == minus
        if negative || token[0] == UInt8(ascii: "+") { k += 1 }
        func times10Plus(_ d: UInt64) -> Bool {
            let (h1, o1) = hi.multipliedReportingOverflow(by: 10)
            let (carry, l1) = lo.multipliedFullWidth(by: 10)
            let (h2, o2) = h1.addingReportingOverflow(carry)
            let (l2, c) = l1.addingReportingOverflow(d)
            let (h3, o3) = h2.addingReportingOverflow(c ? 1 : 0)
            if o1 || o2 || o3 { return false }
            hi = h3; lo = l2
            return true
        }
        while k < token.count, (token[k] &- zero) < 10 {
            if tooBig || !times10Plus(UInt64(token[k] &- zero)) {
                tooBig = true
                if exponent == 127 { return nil }
                exponent += 1
            }
            k += 1
        }
        if k < token.count, token[k] == UInt8(ascii: ".") {
            k += 1
            while k < token.count, (token[k] &- zero) < 10 {
                defer { k += 1 }
                if tooBig { continue }
                if !times10Plus(UInt64(token[k] &- zero)) { tooBig = true; continue }
                if exponent == -128 { return nil }
                exponent -= 1
            }
        }
        if k < token.count, token[k] == UInt8(ascii: "e") || token[k] == UInt8(ascii: "E") {
            k += 1
            var e = 0
            var eNegative = false
            if k < token.count, token[k] == minus || token[k] == UInt8(ascii: "+") { eNegative = token[k] == minus; k += 1 }
            while k < token.count, (token[k] &- zero) < 10 {
                e = 10 * e + Int(token[k] &- zero)
                if e > 254 { return nil }
                k += 1
            }
            e = (eNegative ? -e : e) + exponent
            if e > 127 || e < -128 { return nil }
            exponent = e
        }
        guard k == token.count else { return nil }
        // compact(): strip trailing decimal zeros.
        if hi != 0 || lo != 0 {
            var changed = false
            while true {
                let qh = hi / 10, rh = hi % 10
                let (ql, r) = UInt64(10).dividingFullWidth((rh, lo))
                if r != 0 { break }
                hi = qh; lo = ql
                exponent += 1
                changed = true
            }
            if changed {
                while exponent > 127 { _ = times10Plus(0); exponent -= 1 }
            }
        }
        guard hi == 0 else { return nil }
        var d = lo
        if exponent < 0 {
            for _ in 0 ..< -exponent { d /= 10 }
        } else {
            for _ in 0 ..< exponent {
                let (m, o) = d.multipliedReportingOverflow(by: 10)
                if o { return nil }
                d = m
            }
        }
        guard let v = Int64(exactly: d) else { return nil }
        return negative ? 0 - v : v
    }

    // MARK: skipping (JSONDecoder's scanner rules for values it never decodes)

    /// Skips one value whose enclosing containers number `depth`.
    @inlinable
    public mutating func skipValue(depth: Int) throws(E) {
        // Container kinds, innermost last: bit set = object. The first 64 levels live in `small`.
        var small: UInt64 = 0
        var big: [Bool] = []
        var open = 0
        func push(_ object: Bool) {
            if open < 64 { if object { small |= 1 << UInt64(open) } else { small &= ~(1 << UInt64(open)) } }
            else { big.append(object) }
            open += 1
        }
        func topIsObject() -> Bool {
            open <= 64 ? small & (1 << UInt64(open - 1)) != 0 : big[big.count - 1]
        }
        func pop() {
            open -= 1
            if open >= 64 { big.removeLast() }
        }

        value: while true {
            let c = try peek("a value")
            switch c {
            case quote:
                try skipString()
            case openBrace:
                guard depth &+ open < maxDepth else { throw failure("more than \(maxDepth) levels of nesting", at: i) }
                i &+= 1
                if try peek("a key or '}'") == closeBrace {
                    i &+= 1
                } else {
                    push(true)
                    try skipString()
                    try colon()
                    continue value
                }
            case openBracket:
                guard depth &+ open < maxDepth else { throw failure("more than \(maxDepth) levels of nesting", at: i) }
                i &+= 1
                if try peek("a value or ']'") == closeBracket {
                    i &+= 1
                } else {
                    push(false)
                    continue value
                }
            case UInt8(ascii: "t"): try literal("true")
            case UInt8(ascii: "f"): try literal("false")
            case UInt8(ascii: "n"): try literal("null")
            case minus, zero...UInt8(ascii: "9"):
                i &+= 1
                while i < n && Self.isNumberByte(p[i]) { i &+= 1 }
            default:
                throw expected("a value", at: i)
            }
            // After a value: close containers until one continues.
            while open > 0 {
                if topIsObject() {
                    if try nextMember() {
                        try skipString()
                        try colon()
                        continue value
                    }
                } else {
                    if try nextElement() { continue value }
                }
                pop()
            }
            return
        }
    }

    /// Skips a string the way JSONDecoder's scanner does: it only finds the closing quote (a backslash
    /// takes the next byte; `\u` takes 4 more, none of them a quote).
    @inlinable
    public mutating func skipString() throws(E) {
        guard i < n, p[i] == quote else { throw expected("a string", at: i) }
        let start = i
        i &+= 1
        while i < n {
            // 8 bytes at a time while there is no quote or backslash.
            while i &+ 8 <= n {
                let w = UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self)
                let ones: UInt64 = 0x0101_0101_0101_0101, high: UInt64 = 0x8080_8080_8080_8080
                let q = w ^ (ones &* UInt64(quote)), b = w ^ (ones &* UInt64(backslash))
                if ((q &- ones) & ~q | (b &- ones) & ~b) & high != 0 { break }
                i &+= 8
            }
            guard i < n else { break }
            let c = p[i]
            if c == quote { i &+= 1; return }
            if c == backslash {
                guard i &+ 1 < n else { break }
                if p[i &+ 1] == UInt8(ascii: "u") {
                    guard i &+ 6 <= n else { throw expected("four hex digits", at: n) }
                    for k in 2..<6 where p[i &+ k] == quote { throw expected("four hex digits", at: i &+ k) }
                    i &+= 6
                } else {
                    i &+= 2
                }
                continue
            }
            i &+= 1
        }
        throw expected("'\"' (end of the string started at byte \(start))", at: n)
    }

    // MARK: values `JSONReader` reads

    /// `true` or `false`.
    public mutating func bool() throws(E) -> Bool {
        switch try peek("true or false") {
        case UInt8(ascii: "t"): try literal("true"); return true
        case UInt8(ascii: "f"): try literal("false"); return false
        default: throw expected("true or false", at: i)
        }
    }

    /// A whole number as JSONDecoder decodes an Int64 (an integral `1.0` or `1e2` included).
    public mutating func integer() throws(E) -> Int64 {
        let c = try peek("a number")
        guard c == minus || (c &- zero) < 10 else { throw expected("a number", at: i) }
        return try int64()
    }

    /// A number checked against JSON's grammar (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`), as a Double.
    public mutating func double() throws(E) -> Double {
        _ = try peek("a number")
        let start = i
        if i < n && p[i] == minus { i &+= 1 }
        func digits() -> Int {
            let s = i
            while i < n && (p[i] &- zero) < 10 { i &+= 1 }
            return i &- s
        }
        let first = i
        let whole = digits()
        guard whole > 0 else { throw expected("a number", at: i) }
        guard whole == 1 || p[first] != zero else { throw failure("a number with a leading zero", at: first) }
        if i < n && p[i] == UInt8(ascii: ".") {
            i &+= 1
            guard digits() > 0 else { throw expected("digits after '.'", at: i) }
        }
        if i < n && (p[i] | 0x20) == UInt8(ascii: "e") {
            i &+= 1
            if i < n && (p[i] == UInt8(ascii: "+") || p[i] == minus) { i &+= 1 }
            guard digits() > 0 else { throw expected("an exponent", at: i) }
        }
        guard let v = Double(String(decoding: UnsafeBufferPointer(start: p + start, count: i &- start), as: UTF8.self)) else {
            throw failure("not a number", at: start)
        }
        return v
    }
}
