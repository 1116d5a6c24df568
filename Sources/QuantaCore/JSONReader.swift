/// A pull reader over JSON bytes, for the few files Quanta reads by the hundred thousand
/// (manifests, the snapshot header): no intermediate tree, no reflection. Built on `JSONScanner`,
/// so it accepts and rejects what JSONDecoder does for the values it reads; Foundation's
/// JSONDecoder stays for everything read once.
///
///     var r = JSONReader(bytes)
///     try r.object { key, r in
///         switch key {
///         case "name": name = try r.string()
///         default: try r.skip()
///         }
///     }
public struct JSONReader {
    public typealias Failure = JSONScanError

    var s: JSONScanner

    public init(_ bytes: UnsafeRawBufferPointer) { s = JSONScanner(bytes) }

    public var offset: Int { s.i }

    /// Whether the next value is `null` (consumed if so).
    public mutating func null() throws -> Bool { try s.null() }

    /// Calls `body` once per member, with the reader positioned at the member's value; `body` must
    /// consume that value (read it or `skip()` it). Duplicate keys reach `body` each time.
    public mutating func object(_ body: (String, inout JSONReader) throws -> Void) throws {
        guard try s.beginObject("'{'") else { return }
        repeat {
            let key = s.text(try s.key())
            try body(key, &self)
        } while try s.nextMember()
    }

    /// Calls `body` once per element, positioned at it.
    public mutating func array(_ body: (inout JSONReader) throws -> Void) throws {
        guard try s.beginArray("'['") else { return }
        repeat {
            try body(&self)
        } while try s.nextElement()
    }

    public mutating func string() throws -> String { try s.string("a string") }

    /// Whether the next value is a string (nothing consumed).
    public var peekIsString: Bool {
        mutating get { (try? s.peek("a value")) == UInt8(ascii: "\"") }
    }

    public mutating func int() throws -> Int {
        let at = s.i
        let v = try s.integer()
        guard let i = Int(exactly: v) else { throw Failure(message: "\(v) does not fit", offset: at) }
        return i
    }

    public mutating func double() throws -> Double { try s.double() }

    public mutating func bool() throws -> Bool { try s.bool() }

    /// Skips one value of any kind (checked as JSONDecoder checks what it does not decode).
    public mutating func skip() throws { try s.skipValue(depth: 0) }

    /// After the top-level value: only whitespace may follow.
    public mutating func end() throws {
        s.skipWhitespace()
        guard s.i == s.n else { throw s.expected("the end after the JSON value", at: s.i) }
    }
}
