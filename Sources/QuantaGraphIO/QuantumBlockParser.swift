import Foundation
import QuantaCore

// A hand-written, single-pass reader for the quantum blocks of a pipe_base `.qg`
// (`quantum_datasets.mb`: one zstd frame per quantum, each a small JSON object). It builds exactly
// the `QuantumBlock` that `JSONDecoder().decode(QuantumBlock.self, from:)` builds, and accepts and
// rejects the same inputs, matching Foundation's (swift-foundation's) JSONDecoder, including its
// quirks:
//  - duplicate keys: the FIRST occurrence wins (JSONDecoder keeps the first; later ones are only
//    scanned, never decoded);
//  - values that are not decoded (unknown keys, later duplicates) are only checked the way
//    JSONDecoder's scanner checks them: brackets, quotes, `true`/`false`/`null` and 512 levels of
//    nesting; their strings may hold control characters, bad escapes or bad UTF-8, and their numbers
//    are any run of `0-9 . + - e E` that starts with a digit or '-';
//  - every key of a decoded object (including unknown keys) must be a valid JSON string;
//  - trailing commas are accepted (`[1,]`, `{"a":1,}`), like JSONDecoder;
//  - an integer dimension value may be written as a float if it is integral: `1.0`, `1e2`,
//    `-0.0` → `.int`; through JSONDecoder's Double/Decimal fallbacks, incl. their rounding;
//  - a leading UTF-8 byte-order mark is skipped.
// The one deliberate difference: UTF-16/UTF-32 input (which JSONDecoder detects and transcodes) is
// rejected; pipe_base always writes UTF-8.

/// Why a quantum block could not be read: a one-line message with the byte offset in the block,
/// e.g. `expected ',' or '}' at byte 123`.
struct QuantumBlockParseError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong, e.g. `expected ',' or '}'`.
    var message: String
    /// Offset in the block of the offending byte (the block's length if it ended early).
    var offset: Int
    /// True when the block ended where more was expected (truncation).
    var atEnd: Bool

    var description: String { "\(message) at byte \(offset)\(atEnd ? " (end of input)" : "")" }
}

enum QuantumBlockParser {
    /// Reads one decompressed quantum block.
    static func parse(_ bytes: UnsafeRawBufferPointer) throws(QuantumBlockParseError) -> QuantumBlock {
        guard let base = bytes.baseAddress, bytes.count > 0 else {
            throw QuantumBlockParseError(message: "expected '{' (a quantum block)", offset: 0, atEnd: true)
        }
        var r = Reader(p: base.assumingMemoryBound(to: UInt8.self), n: bytes.count)
        // A UTF-8 byte-order mark is skipped, as JSONDecoder does.
        if r.n >= 3 && r.p[0] == 0xEF && r.p[1] == 0xBB && r.p[2] == 0xBF { r.i = 3 }
        let block = try r.quantumBlock()
        r.skipWhitespace()
        guard r.i == r.n else { throw r.expected("end of input after the quantum block", at: r.i) }
        return block
    }

    /// Reads one decompressed quantum block.
    static func parse(_ data: Data) throws(QuantumBlockParseError) -> QuantumBlock {
        var result: QuantumBlock?
        var failure: QuantumBlockParseError?
        data.withUnsafeBytes { bytes in
            do throws(QuantumBlockParseError) { result = try parse(bytes) } catch { failure = error }
        }
        if let failure { throw failure }
        guard let result else { throw QuantumBlockParseError(message: "expected a quantum block", offset: 0, atEnd: true) }
        return result
    }

    /// A UUID from its 36-byte text form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (hex digits in either
    /// case, dashes at 8, 13, 18 and 23); nil for anything else. Same results as
    /// `UUID(uuidString:)` on such input, much faster.
    static func parseUUID(_ bytes: UnsafeRawBufferPointer) -> UUID? {
        guard bytes.count == 36, let p = bytes.baseAddress else { return nil }
        let dash = UInt8(ascii: "-")
        guard p.load(fromByteOffset: 8, as: UInt8.self) == dash, p.load(fromByteOffset: 13, as: UInt8.self) == dash,
              p.load(fromByteOffset: 18, as: UInt8.self) == dash, p.load(fromByteOffset: 23, as: UInt8.self) == dash
        else { return nil }
        // Four chunks of 8 hex digits (little-endian loads: the first digit in the low byte).
        func load8(_ k: Int) -> UInt64 { UInt64(littleEndian: p.loadUnaligned(fromByteOffset: k, as: UInt64.self)) }
        func load4(_ k: Int) -> UInt64 { UInt64(UInt32(littleEndian: p.loadUnaligned(fromByteOffset: k, as: UInt32.self))) }
        let c0 = load8(0), c1 = load4(9) | load4(14) << 32, c2 = load4(19) | load4(24) << 32, c3 = load8(28)
        guard let b0 = hexChunk(c0), let b1 = hexChunk(c1), let b2 = hexChunk(c2), let b3 = hexChunk(c3) else { return nil }
        // Each chunk's 4 bytes are in text order from the low byte up; store them little-endian.
        let hi = (UInt64(b1) << 32 | UInt64(b0)).littleEndian, lo = (UInt64(b3) << 32 | UInt64(b2)).littleEndian
        return UUID(uuid: unsafeBitCast((hi, lo), to: uuid_t.self))
    }

    /// 8 ASCII hex digits (first digit in the low byte) → 4 bytes (first byte in the low byte), or nil.
    @inline(__always)
    static func hexChunk(_ w: UInt64) -> UInt32? {
        let ones: UInt64 = 0x0101_0101_0101_0101, high: UInt64 = 0x8080_8080_8080_8080
        guard w & high == 0 else { return nil }
        // Per byte (all < 0x80, so no carries cross bytes): high bit set iff lo <= byte <= hi.
        func inRange(_ x: UInt64, _ lo: UInt64, _ hi: UInt64) -> UInt64 {
            (x &+ ones &* (0x80 &- lo)) & ~(x &+ ones &* (0x7F &- hi)) & high
        }
        let lower = w | ones &* 0x20
        guard inRange(w, 0x30, 0x39) | inRange(lower, 0x61, 0x66) == high else { return nil }
        // '0'-'9' → low nibble; 'A'-'F' / 'a'-'f' (bit 6 set) → low nibble + 9.
        let v = (w & (ones &* 0x0F)) &+ ((w >> 6) & ones) &* 9
        let pairs = (v << 4 | v >> 8) & 0x00FF_00FF_00FF_00FF
        let quads = (pairs | pairs >> 8) & 0x0000_FFFF_0000_FFFF
        return UInt32(truncatingIfNeeded: quads | quads >> 16)
    }

    /// `UUID(uuidString:)` for the canonical 36-character form only (see `parseUUID(_:)`).
    static func parseUUID(_ text: String) -> UUID? {
        var text = text
        return text.withUTF8 { parseUUID(UnsafeRawBufferPointer($0)) }
    }

    /// `UUID(uuidString:)` for the canonical 36-character form only (see `parseUUID(_:)`).
    static func parseUUID(_ text: Substring) -> UUID? {
        var text = text
        return text.withUTF8 { parseUUID(UnsafeRawBufferPointer($0)) }
    }

    /// `UUID(uuidString:)` for the canonical 36-character form only (see `parseUUID(_:)`).
    static func parseUUID(_ text: some StringProtocol) -> UUID? {
        if let u = text.utf8.withContiguousStorageIfAvailable({ parseUUID(UnsafeRawBufferPointer($0)) }) { return u }
        var s = String(text)
        return s.withUTF8 { parseUUID(UnsafeRawBufferPointer($0)) }
    }

    /// The string if `bytes` are valid UTF-8 (what JSONDecoder requires), else nil. (Like
    /// `String(validating:as:)`, which needs macOS 15: decoding repairs any invalid sequence with
    /// U+FFFD, so the bytes come back unchanged exactly when they were valid.)
    static func validUTF8(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        let s = String(decoding: bytes, as: UTF8.self)
        return s.utf8.elementsEqual(bytes) ? s : nil
    }

    /// 0...15 for a hex digit, 0xFF otherwise.
    @inline(__always) static func hexValue(_ c: UInt8) -> UInt8 {
        let d = c &- 48
        if d < 10 { return d }
        let l = (c | 0x20) &- 97
        return l < 6 ? l &+ 10 : 0xFF
    }
}

extension UUID {
    /// The canonical 36-character form only (hex digits in either case, dashes at 8, 13, 18, 23).
    init?(lsstText text: String) {
        guard let u = QuantumBlockParser.parseUUID(text) else { return nil }
        self = u
    }

    /// The canonical 36-character form only (hex digits in either case, dashes at 8, 13, 18, 23).
    init?(lsstText text: some StringProtocol) {
        guard let u = QuantumBlockParser.parseUUID(text) else { return nil }
        self = u
    }
}

// MARK: - Reader

private let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\"), comma = UInt8(ascii: ",")
private let openBrace = UInt8(ascii: "{"), closeBrace = UInt8(ascii: "}")
private let openBracket = UInt8(ascii: "["), closeBracket = UInt8(ascii: "]")
private let minus = UInt8(ascii: "-"), zero = UInt8(ascii: "0")

/// JSONDecoder's nesting limit (its scanner refuses a 513th level).
private let maxDepth = 512

/// A string as read: either its raw bytes (pure ASCII without escapes, so already valid) or,
/// when decoding was needed, the decoded text.
private struct StringToken {
    var start: Int
    var count: Int
    var text: String?
}

/// The last few values read, each with the span of raw text it came from.
private struct Memo<Value> {
    var entries: [(start: Int, count: Int, value: Value)] = []
    var next = 0

    /// The value whose text is at `i` (compared with the earlier spans of the same block).
    @inline(__always)
    func lookup(_ p: UnsafePointer<UInt8>, _ i: Int, _ n: Int) -> (count: Int, value: Value)? {
        for e in entries where e.count <= n &- i && memcmp(p + i, p + e.start, e.count) == 0 {
            return (e.count, e.value)
        }
        return nil
    }

    @inline(__always)
    mutating func remember(start: Int, count: Int, _ value: Value) {
        if entries.count < 4 { entries.append((start, count, value)) } else { entries[next] = (start, count, value); next = (next &+ 1) & 3 }
    }
}

private struct Reader {
    typealias E = QuantumBlockParseError

    let p: UnsafePointer<UInt8>
    let n: Int
    var i = 0
    /// Reused for strings with escapes.
    var scratch: [UInt8] = []
    /// Values already read in this block, by the raw text they came from (equal text, equal value):
    /// refs repeat their quantum's data coordinate, run and dataset type; reusing them saves
    /// allocations.
    var coordinateMemo = Memo<[DimensionValue]>(), runMemo = Memo<String>(), typeMemo = Memo<String>()

    init(p: UnsafePointer<UInt8>, n: Int) {
        self.p = p
        self.n = n
    }

    // MARK: errors (kept out of line)

    @inline(never)
    func expected(_ what: String, at k: Int) -> E {
        E(message: "expected \(what)", offset: k, atEnd: k >= n)
    }

    @inline(never)
    func expected(_ what: StaticString, at k: Int) -> E {
        expected("\(what)", at: k)
    }

    @inline(never)
    func failure(_ message: String, at k: Int) -> E {
        E(message: message, offset: k, atEnd: k >= n)
    }

    @inline(never)
    func missing(_ key: StaticString, in what: StaticString, at k: Int) -> E {
        E(message: "missing key \"\(key)\" in the \(what) object starting", offset: k, atEnd: false)
    }

    // MARK: tokens

    @inline(__always)
    mutating func skipWhitespace() {
        while i < n {
            let c = p[i]
            guard c <= 0x20, c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 else { return }
            i &+= 1
        }
    }

    /// The next byte after whitespace, not consumed.
    @inline(__always)
    mutating func peek(_ what: StaticString) throws(E) -> UInt8 {
        skipWhitespace()
        guard i < n else { throw expected(what, at: i) }
        return p[i]
    }

    @inline(__always)
    mutating func colon() throws(E) {
        guard try peek("':'") == UInt8(ascii: ":") else { throw expected("':'", at: i) }
        i &+= 1
    }

    /// `{`, then `}` (an empty object: false) or the start of the first key (true).
    @inline(__always)
    mutating func beginObject(_ what: StaticString) throws(E) -> Bool {
        guard try peek(what) == openBrace else { throw expected(what, at: i) }
        i &+= 1
        if try peek("a key or '}'") == closeBrace { i &+= 1; return false }
        return true
    }

    /// After a member: `,` and another key (true), or `}` (false). A trailing comma is accepted.
    @inline(__always)
    mutating func nextMember() throws(E) -> Bool {
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
    @inline(__always)
    mutating func beginArray(_ what: StaticString) throws(E) -> Bool {
        guard try peek(what) == openBracket else { throw expected(what, at: i) }
        i &+= 1
        if try peek("a value or ']'") == closeBracket { i &+= 1; return false }
        return true
    }

    /// After an element: `,` and another element (true), or `]` (false). A trailing comma is accepted.
    @inline(__always)
    mutating func nextElement() throws(E) -> Bool {
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
    @inline(__always)
    mutating func null() throws(E) -> Bool {
        guard try peek("a value") == UInt8(ascii: "n") else { return false }
        try literal("null")
        return true
    }

    mutating func literal(_ word: StaticString) throws(E) {
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
    @inline(__always)
    mutating func stringToken(_ what: StaticString) throws(E) -> StringToken {
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
                if bits & 0x80 == 0 { return StringToken(start: start, count: i &- 1 &- start, text: nil) }
                return try validated(start: start, count: i &- 1 &- start)
            }
            if c == backslash || c < 0x20 { break }
            bits |= c
            i &+= 1
        }
        return try slowString(start: start)
    }

    @inline(never)
    func validated(start: Int, count: Int) throws(E) -> StringToken {
        guard let s = QuantumBlockParser.validUTF8(UnsafeBufferPointer(start: p + start, count: count)) else {
            throw failure("invalid UTF-8 in string", at: start)
        }
        return StringToken(start: start, count: count, text: s)
    }

    /// The rest of a string from `i` (at a backslash, a control character or the end): with escapes.
    @inline(never)
    mutating func slowString(start: Int) throws(E) -> StringToken {
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
            let valid = scratch.withUnsafeBufferPointer { QuantumBlockParser.validUTF8($0) }
            guard let s = valid else { throw failure("invalid UTF-8 in string", at: start) }
            text = s
        }
        return StringToken(start: start, count: i &- 1 &- start, text: text)
    }

    /// Four hex digits at `k`.
    func hex4(at k: Int) throws(E) -> UInt32 {
        guard k &+ 4 <= n else { throw expected("four hex digits", at: n) }
        var v: UInt32 = 0
        for j in 0..<4 {
            let h = QuantumBlockParser.hexValue(p[k &+ j])
            guard h < 16 else { throw expected("four hex digits", at: k &+ j) }
            v = v &<< 4 | UInt32(h)
        }
        return v
    }

    mutating func appendUTF8(_ s: UInt32) {
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

    @inline(__always)
    func text(_ t: StringToken) -> String {
        if let s = t.text { return s }
        return String(decoding: UnsafeBufferPointer(start: p + t.start, count: t.count), as: UTF8.self)
    }

    /// A string value (whitespace skipped first).
    @inline(__always)
    mutating func string(_ what: StaticString) throws(E) -> String {
        _ = try peek(what)
        return text(try stringToken(what))
    }

    /// A string value, reused from `memo` when the same text was read before (`fresh` false); else
    /// read from `start` (`fresh` true: the caller remembers it).
    @inline(__always)
    mutating func memoString(_ memo: Memo<String>, _ what: StaticString) throws(E) -> (String, start: Int, fresh: Bool) {
        if try peek(what) == quote, let (count, value) = memo.lookup(p, i, n) {
            i &+= count
            return (value, i &- count, false)
        }
        let start = i
        return (text(try stringToken(what)), start, true)
    }

    /// An object key (`i` at it, whitespace skipped) and the colon after it.
    @inline(__always)
    mutating func key() throws(E) -> StringToken {
        let k = try stringToken("a key (a string)")
        try colon()
        return k
    }

    @inline(__always)
    func key(_ k: StringToken, is name: StaticString) -> Bool {
        let m = name.utf8CodeUnitCount
        if let t = k.text { return t.utf8.elementsEqual(UnsafeBufferPointer(start: name.utf8Start, count: m)) }
        return k.count == m && memcmp(p + k.start, name.utf8Start, m) == 0
    }

    // MARK: numbers

    @inline(__always)
    static func isNumberByte(_ c: UInt8) -> Bool {
        // 0-9 . + - e E: JSONDecoder's scanner takes any run of these as a number token.
        (c &- zero) < 10 || c == UInt8(ascii: ".") || c == UInt8(ascii: "+") || c == minus
            || c == UInt8(ascii: "e") || c == UInt8(ascii: "E")
    }

    /// A JSON number token (from a digit or '-') as JSONDecoder decodes an `Int64`.
    mutating func int64() throws(E) -> Int64 {
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
    func slowInt64(start: Int, end: Int) throws(E) -> Int64 {
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
    static func decimalInt64(_ token: UnsafeBufferPointer<UInt8>) -> Int64? {
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
    mutating func skipValue(depth: Int) throws(E) {
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
                guard depth &+ open < maxDepth else { throw failure("nesting deeper than \(maxDepth) levels", at: i) }
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
                guard depth &+ open < maxDepth else { throw failure("nesting deeper than \(maxDepth) levels", at: i) }
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
    mutating func skipString() throws(E) {
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

    // MARK: the model

    // Each reader of a container gets `depth`, the number of containers open including its own
    // (the block's object is 1), so that skipped values get JSONDecoder's nesting limit.

    mutating func quantumBlock() throws(E) -> QuantumBlock {
        skipWhitespace()
        let start = i
        var quantumID: String?, taskLabel: String?, coordinate: [DimensionValue]?
        var inputs: [String: [DatasetRefBlock]]?, outputs: [String: [DatasetRefBlock]]?
        var records: [String: DatastoreBlock]?
        var seen: UInt8 = 0
        if try beginObject("'{' (a quantum block)") {
            repeat {
                let k = try key()
                let f: UInt8
                if key(k, is: "quantum_id") { f = 1 }
                else if key(k, is: "task_label") { f = 2 }
                else if key(k, is: "data_coordinate") { f = 4 }
                else if key(k, is: "inputs") { f = 8 }
                else if key(k, is: "outputs") { f = 16 }
                else if key(k, is: "datastore_records") { f = 32 }
                else { f = 0 }
                if f == 0 || seen & f != 0 { try skipValue(depth: 1); continue }
                seen |= f
                switch f {
                case 1: quantumID = try string("a string (quantum_id)")
                case 2: taskLabel = try string("a string (task_label)")
                case 4: coordinate = try dataCoordinate()
                case 8: inputs = try refMap(depth: 2)
                case 16: outputs = try refMap(depth: 2)
                default: records = try null() ? nil : datastoreMap(depth: 2)
                }
            } while try nextMember()
        }
        guard let quantumID else { throw missing("quantum_id", in: "quantum block", at: start) }
        guard let taskLabel else { throw missing("task_label", in: "quantum block", at: start) }
        guard let coordinate else { throw missing("data_coordinate", in: "quantum block", at: start) }
        guard let inputs else { throw missing("inputs", in: "quantum block", at: start) }
        guard let outputs else { throw missing("outputs", in: "quantum block", at: start) }
        return QuantumBlock(quantum_id: quantumID, task_label: taskLabel, data_coordinate: coordinate,
                            inputs: inputs, outputs: outputs, datastore_records: records)
    }

    /// `[value, ...]`, each an integer or a string.
    mutating func dataCoordinate() throws(E) -> [DimensionValue] {
        if try peek("'[' (a data coordinate)") == openBracket, let (count, value) = coordinateMemo.lookup(p, i, n) {
            i &+= count
            return value
        }
        let start = i
        let values = try readDataCoordinate()
        coordinateMemo.remember(start: start, count: i &- start, values)
        return values
    }

    mutating func readDataCoordinate() throws(E) -> [DimensionValue] {
        var values: [DimensionValue] = []
        guard try beginArray("'[' (a data coordinate)") else { return values }
        values.reserveCapacity(8)
        repeat {
            let c = p[i]  // peeked by beginArray / nextElement
            if c == quote {
                values.append(.string(text(try stringToken("a string"))))
            } else if c == minus || (c &- zero) < 10 {
                values.append(.int(try int64()))
            } else {
                throw expected("an integer or a string (a data coordinate value)", at: i)
            }
        } while try nextElement()
        return values
    }

    /// `{"connection": [dataset ref, ...], ...}`
    mutating func refMap(depth: Int) throws(E) -> [String: [DatasetRefBlock]] {
        var map: [String: [DatasetRefBlock]] = [:]
        guard try beginObject("'{' (inputs or outputs)") else { return map }
        repeat {
            let name = text(try key())
            if map[name] != nil { try skipValue(depth: depth); continue }
            var refs: [DatasetRefBlock] = []
            if try beginArray("'[' (dataset refs)") {
                repeat {
                    refs.append(try datasetRef(depth: depth &+ 2))
                } while try nextElement()
            }
            map[name] = refs
        } while try nextMember()
        return map
    }

    mutating func datasetRef(depth: Int) throws(E) -> DatasetRefBlock {
        let start = i
        var datasetID: String?, typeName: String?, coordinate: [DimensionValue]?, run: String?
        var seen: UInt8 = 0
        if try beginObject("'{' (a dataset ref)") {
            repeat {
                let k = try key()
                let f: UInt8
                if key(k, is: "dataset_id") { f = 1 }
                else if key(k, is: "dataset_type_name") { f = 2 }
                else if key(k, is: "data_coordinate") { f = 4 }
                else if key(k, is: "run") { f = 8 }
                else { f = 0 }
                if f == 0 || seen & f != 0 { try skipValue(depth: depth); continue }
                seen |= f
                switch f {
                case 1: datasetID = try string("a string (dataset_id)")
                case 2:
                    let (value, start, fresh) = try memoString(typeMemo, "a string (dataset_type_name)")
                    if fresh { typeMemo.remember(start: start, count: i &- start, value) }
                    typeName = value
                case 4: coordinate = try dataCoordinate()
                default:
                    let (value, start, fresh) = try memoString(runMemo, "a string (run)")
                    if fresh { runMemo.remember(start: start, count: i &- start, value) }
                    run = value
                }
            } while try nextMember()
        }
        guard let datasetID else { throw missing("dataset_id", in: "dataset ref", at: start) }
        guard let typeName else { throw missing("dataset_type_name", in: "dataset ref", at: start) }
        guard let coordinate else { throw missing("data_coordinate", in: "dataset ref", at: start) }
        guard let run else { throw missing("run", in: "dataset ref", at: start) }
        return DatasetRefBlock(dataset_id: datasetID, dataset_type_name: typeName, data_coordinate: coordinate, run: run)
    }

    /// `{"datastore name": {"records": {...}, ...}, ...}`
    mutating func datastoreMap(depth: Int) throws(E) -> [String: DatastoreBlock] {
        var map: [String: DatastoreBlock] = [:]
        guard try beginObject("'{' or null (datastore_records)") else { return map }
        repeat {
            let name = text(try key())
            if map[name] != nil { try skipValue(depth: depth); continue }
            map[name] = try datastore(depth: depth &+ 1)
        } while try nextMember()
        return map
    }

    mutating func datastore(depth: Int) throws(E) -> DatastoreBlock {
        let start = i
        var records: [String: [String: FileRecords]]?
        if try beginObject("'{' (a datastore's records)") {
            repeat {
                let k = try key()
                if records != nil || !key(k, is: "records") { try skipValue(depth: depth); continue }
                records = try recordClassMap(depth: depth &+ 1)
            } while try nextMember()
        }
        guard let records else { throw missing("records", in: "datastore", at: start) }
        return DatastoreBlock(records: records)
    }

    /// `{"record class": {"dataset id": {"file_datastore_records": [...]}, ...}, ...}`
    mutating func recordClassMap(depth: Int) throws(E) -> [String: [String: FileRecords]] {
        var map: [String: [String: FileRecords]] = [:]
        guard try beginObject("'{' (records)") else { return map }
        repeat {
            let name = text(try key())
            if map[name] != nil { try skipValue(depth: depth); continue }
            var byID: [String: FileRecords] = [:]
            if try beginObject("'{' (records by dataset id)") {
                repeat {
                    let id = text(try key())
                    if byID[id] != nil { try skipValue(depth: depth &+ 1); continue }
                    byID[id] = try fileRecords(depth: depth &+ 2)
                } while try nextMember()
            }
            map[name] = byID
        } while try nextMember()
        return map
    }

    mutating func fileRecords(depth: Int) throws(E) -> FileRecords {
        var files: [FileRecords.File]?
        var seen = false
        if try beginObject("'{' (file records)") {
            repeat {
                let k = try key()
                if seen || !key(k, is: "file_datastore_records") { try skipValue(depth: depth); continue }
                seen = true
                if try null() { continue }
                var list: [FileRecords.File] = []
                if try beginArray("'[' or null (file_datastore_records)") {
                    repeat {
                        list.append(try file(depth: depth &+ 2))
                    } while try nextElement()
                }
                files = list
            } while try nextMember()
        }
        return FileRecords(file_datastore_records: files)
    }

    mutating func file(depth: Int) throws(E) -> FileRecords.File {
        let start = i
        var path: String?
        if try beginObject("'{' (a file record)") {
            repeat {
                let k = try key()
                if path != nil || !key(k, is: "path") { try skipValue(depth: depth); continue }
                path = try string("a string (path)")
            } while try nextMember()
        }
        guard let path else { throw missing("path", in: "file record", at: start) }
        return FileRecords.File(path: path)
    }
}
