/// A pull reader over JSON bytes, for the few files Quanta reads by the hundred thousand
/// (manifests): no intermediate tree, no reflection. Foundation's JSONDecoder stays for
/// everything read once.
///
///     var r = JSONReader(bytes)
///     try r.object { key, r in
///         switch key {
///         case "name": name = try r.string()
///         default: try r.skip()
///         }
///     }
public struct JSONReader {
    public struct Failure: Error, CustomStringConvertible {
        public let message: String
        public var description: String { message }
        public init(message: String) { self.message = message }
    }

    let bytes: UnsafeRawBufferPointer
    public private(set) var offset = 0

    public init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    func fail(_ what: String) -> Failure {
        Failure(message: offset < bytes.count ? "\(what) at byte \(offset)" : "\(what): the text ends at byte \(offset)")
    }

    @inline(__always) mutating func skipSpace() {
        while offset < bytes.count {
            let b = bytes[offset]
            guard b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 else { return }
            offset += 1
        }
    }

    @inline(__always) mutating func peek() -> UInt8? {
        skipSpace()
        return offset < bytes.count ? bytes[offset] : nil
    }

    mutating func expect(_ c: UInt8) throws {
        guard peek() == c else { throw fail("expected '\(Character(Unicode.Scalar(c)))'") }
        offset += 1
    }

    /// Whether the next value is `null` (consumed if so).
    public mutating func null() throws -> Bool {
        guard peek() == UInt8(ascii: "n") else { return false }
        try literal("null")
        return true
    }

    mutating func literal(_ word: StaticString) throws {
        let n = word.utf8CodeUnitCount
        guard offset + n <= bytes.count,
              word.withUTF8Buffer({ w in (0..<n).allSatisfy { bytes[offset + $0] == w[$0] } }) else {
            throw fail("expected \(word)")
        }
        offset += n
    }

    /// Calls `body` once per member, with the reader positioned at the member's value; `body` must
    /// consume that value (read it or `skip()` it). Duplicate keys reach `body` each time.
    public mutating func object(_ body: (String, inout JSONReader) throws -> Void) throws {
        try expect(UInt8(ascii: "{"))
        if peek() == UInt8(ascii: "}") { offset += 1; return }
        while true {
            let key = try string()
            try expect(UInt8(ascii: ":"))
            try body(key, &self)
            switch peek() {
            case UInt8(ascii: ","): offset += 1
            case UInt8(ascii: "}"): offset += 1; return
            default: throw fail("expected ',' or '}'")
            }
        }
    }

    /// Calls `body` once per element, positioned at it.
    public mutating func array(_ body: (inout JSONReader) throws -> Void) throws {
        try expect(UInt8(ascii: "["))
        if peek() == UInt8(ascii: "]") { offset += 1; return }
        while true {
            try body(&self)
            switch peek() {
            case UInt8(ascii: ","): offset += 1
            case UInt8(ascii: "]"): offset += 1; return
            default: throw fail("expected ',' or ']'")
            }
        }
    }

    public mutating func string() throws -> String {
        try expect(UInt8(ascii: "\""))
        let start = offset
        while offset < bytes.count {
            let b = bytes[offset]
            if b == UInt8(ascii: "\"") {
                defer { offset += 1 }
                return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<offset]), as: UTF8.self)
            }
            if b == UInt8(ascii: "\\") { offset = start; return try escapedString() }
            if b < 0x20 { throw fail("control character in a string") }
            offset += 1
        }
        throw fail("unterminated string")
    }

    /// Past a string without making it (escapes are checked only as far as finding its end).
    mutating func skipString() throws {
        try expect(UInt8(ascii: "\""))
        while offset < bytes.count {
            let b = bytes[offset]
            offset += 1
            if b == UInt8(ascii: "\"") { return }
            if b == UInt8(ascii: "\\") { offset += 1 } else if b < 0x20 { throw fail("control character in a string") }
        }
        throw fail("unterminated string")
    }

    /// The slow path, for strings with escapes (offset at the first byte after the quote).
    mutating func escapedString() throws -> String {
        var out: [UInt8] = []
        while offset < bytes.count {
            // Copy the run up to the next quote or backslash in one go.
            let runStart = offset
            while offset < bytes.count, bytes[offset] != UInt8(ascii: "\""), bytes[offset] != UInt8(ascii: "\\"), bytes[offset] >= 0x20 {
                offset += 1
            }
            if offset > runStart { out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart..<offset])) }
            guard offset < bytes.count else { break }
            let b = bytes[offset]
            offset += 1
            switch b {
            case UInt8(ascii: "\""):
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard offset < bytes.count else { break }
                let e = bytes[offset]
                offset += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        guard offset + 1 < bytes.count, bytes[offset] == UInt8(ascii: "\\"), bytes[offset + 1] == UInt8(ascii: "u") else {
                            throw fail("unpaired surrogate in a string")
                        }
                        offset += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw fail("unpaired surrogate in a string") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        throw fail("unpaired surrogate in a string")
                    }
                    out.append(contentsOf: Array(String(Character(Unicode.Scalar(scalar)!)).utf8))
                default: throw fail("unknown escape '\\\(Character(Unicode.Scalar(e)))'")
                }
            default:
                if b < 0x20 { throw fail("control character in a string") }
                out.append(b)
            }
        }
        throw fail("unterminated string")
    }

    mutating func hex4() throws -> UInt32 {
        guard offset + 4 <= bytes.count else { throw fail("short \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[offset]
            offset += 1
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = v << 4 | UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): v = v << 4 | UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): v = v << 4 | UInt32(c - UInt8(ascii: "A") + 10)
            default: throw fail("bad \\u escape")
            }
        }
        return v
    }

    /// The text of a number, checked against JSON's grammar.
    mutating func numberText() throws -> UnsafeRawBufferPointer {
        _ = peek()
        let start = offset
        if offset < bytes.count, bytes[offset] == UInt8(ascii: "-") { offset += 1 }
        func digits() -> Int {
            let s = offset
            while offset < bytes.count, bytes[offset] >= UInt8(ascii: "0"), bytes[offset] <= UInt8(ascii: "9") { offset += 1 }
            return offset - s
        }
        guard digits() > 0 else { throw fail("expected a number") }
        if offset < bytes.count, bytes[offset] == UInt8(ascii: ".") {
            offset += 1
            guard digits() > 0 else { throw fail("expected digits after '.'") }
        }
        if offset < bytes.count, bytes[offset] == UInt8(ascii: "e") || bytes[offset] == UInt8(ascii: "E") {
            offset += 1
            if offset < bytes.count, bytes[offset] == UInt8(ascii: "+") || bytes[offset] == UInt8(ascii: "-") { offset += 1 }
            guard digits() > 0 else { throw fail("expected an exponent") }
        }
        return UnsafeRawBufferPointer(rebasing: bytes[start..<offset])
    }

    public mutating func int() throws -> Int {
        let text = try numberText()
        guard let v = Int(String(decoding: text, as: UTF8.self)) else { throw fail("expected a whole number") }
        return v
    }

    public mutating func double() throws -> Double {
        let text = try numberText()
        guard let v = Double(String(decoding: text, as: UTF8.self)) else { throw fail("expected a number") }
        return v
    }

    public mutating func bool() throws -> Bool {
        switch peek() {
        case UInt8(ascii: "t"): try literal("true"); return true
        case UInt8(ascii: "f"): try literal("false"); return false
        default: throw fail("expected true or false")
        }
    }

    /// How deep `skip` goes into arrays and objects (JSONDecoder's limit): each level is a stack
    /// frame, and 64 KB of `[` overflowed the stack.
    static let maxDepth = 512

    /// Skips one value of any kind.
    public mutating func skip() throws { try skip(depth: 0) }

    mutating func skip(depth: Int) throws {
        guard depth < Self.maxDepth else { throw fail("more than \(Self.maxDepth) levels of nesting") }
        switch peek() {
        case UInt8(ascii: "{"): try object { _, r in try r.skip(depth: depth + 1) }
        case UInt8(ascii: "["): try array { try $0.skip(depth: depth + 1) }
        case UInt8(ascii: "\""): try skipString()
        case UInt8(ascii: "t"), UInt8(ascii: "f"): _ = try bool()
        case UInt8(ascii: "n"): try literal("null")
        default: _ = try numberText()
        }
    }

    /// After the top-level value: only whitespace may follow.
    public mutating func end() throws {
        guard peek() == nil else { throw fail("unexpected text after the JSON value") }
    }
}
