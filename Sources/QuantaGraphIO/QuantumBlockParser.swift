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

/// Why a quantum block could not be read: the shared scanner's error (message, byte offset).
typealias QuantumBlockParseError = JSONScanError

enum QuantumBlockParser {
    /// Reads one decompressed quantum block.
    static func parse(_ bytes: UnsafeRawBufferPointer) throws(QuantumBlockParseError) -> QuantumBlock {
        guard let base = bytes.baseAddress, bytes.count > 0 else {
            throw QuantumBlockParseError(message: "expected '{' (a quantum block)", offset: 0, atEnd: true)
        }
        var r = Reader(p: base.assumingMemoryBound(to: UInt8.self), n: bytes.count)
        // A UTF-8 byte-order mark is skipped, as JSONDecoder does.
        if r.s.n >= 3 && r.s.p[0] == 0xEF && r.s.p[1] == 0xBB && r.s.p[2] == 0xBF { r.s.i = 3 }
        let block = try r.quantumBlock()
        r.s.skipWhitespace()
        guard r.s.i == r.s.n else { throw r.s.expected("end of input after the quantum block", at: r.s.i) }
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

private let quote = UInt8(ascii: "\""), openBracket = UInt8(ascii: "["), minus = UInt8(ascii: "-"), zero = UInt8(ascii: "0")

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
    typealias E = JSONScanError

    var s: JSONScanner
    /// Values already read in this block, by the raw text they came from (equal text, equal value):
    /// refs repeat their quantum's data coordinate, run and dataset type; reusing them saves
    /// allocations.
    var coordinateMemo = Memo<[DimensionValue]>(), runMemo = Memo<String>(), typeMemo = Memo<String>()

    init(p: UnsafePointer<UInt8>, n: Int) {
        s = JSONScanner(p: p, n: n)
    }

    /// A string value, reused from `memo` when the same text was read before (`fresh` false); else
    /// read from `start` (`fresh` true: the caller remembers it).
    @inline(__always)
    mutating func memoString(_ memo: Memo<String>, _ what: StaticString) throws(E) -> (String, start: Int, fresh: Bool) {
        if try s.peek(what) == quote, let (count, value) = memo.lookup(s.p, s.i, s.n) {
            s.i &+= count
            return (value, s.i &- count, false)
        }
        let start = s.i
        return (s.text(try s.stringToken(what)), start, true)
    }

    // MARK: the model

    // Each reader of a container gets `depth`, the number of containers open including its own
    // (the block's object is 1), so that skipped values get JSONDecoder's nesting limit.

    mutating func quantumBlock() throws(E) -> QuantumBlock {
        s.skipWhitespace()
        let start = s.i
        var quantumID: String?, taskLabel: String?, coordinate: [DimensionValue]?
        var inputs: [String: [DatasetRefBlock]]?, outputs: [String: [DatasetRefBlock]]?
        var records: [String: DatastoreBlock]?
        var seen: UInt8 = 0
        if try s.beginObject("'{' (a quantum block)") {
            repeat {
                let k = try s.key()
                let f: UInt8
                if s.key(k, is: "quantum_id") { f = 1 }
                else if s.key(k, is: "task_label") { f = 2 }
                else if s.key(k, is: "data_coordinate") { f = 4 }
                else if s.key(k, is: "inputs") { f = 8 }
                else if s.key(k, is: "outputs") { f = 16 }
                else if s.key(k, is: "datastore_records") { f = 32 }
                else { f = 0 }
                if f == 0 || seen & f != 0 { try s.skipValue(depth: 1); continue }
                seen |= f
                switch f {
                case 1: quantumID = try s.string("a string (quantum_id)")
                case 2: taskLabel = try s.string("a string (task_label)")
                case 4: coordinate = try dataCoordinate()
                case 8: inputs = try refMap(depth: 2)
                case 16: outputs = try refMap(depth: 2)
                default: records = try s.null() ? nil : datastoreMap(depth: 2)
                }
            } while try s.nextMember()
        }
        guard let quantumID else { throw s.missing("quantum_id", in: "quantum block", at: start) }
        guard let taskLabel else { throw s.missing("task_label", in: "quantum block", at: start) }
        guard let coordinate else { throw s.missing("data_coordinate", in: "quantum block", at: start) }
        guard let inputs else { throw s.missing("inputs", in: "quantum block", at: start) }
        guard let outputs else { throw s.missing("outputs", in: "quantum block", at: start) }
        return QuantumBlock(quantum_id: quantumID, task_label: taskLabel, data_coordinate: coordinate,
                            inputs: inputs, outputs: outputs, datastore_records: records)
    }

    /// `[value, ...]`, each an integer or a string.
    mutating func dataCoordinate() throws(E) -> [DimensionValue] {
        if try s.peek("'[' (a data coordinate)") == openBracket, let (count, value) = coordinateMemo.lookup(s.p, s.i, s.n) {
            s.i &+= count
            return value
        }
        let start = s.i
        let values = try readDataCoordinate()
        coordinateMemo.remember(start: start, count: s.i &- start, values)
        return values
    }

    mutating func readDataCoordinate() throws(E) -> [DimensionValue] {
        var values: [DimensionValue] = []
        guard try s.beginArray("'[' (a data coordinate)") else { return values }
        values.reserveCapacity(8)
        repeat {
            let c = s.p[s.i]  // peeked by beginArray / nextElement
            if c == quote {
                values.append(.string(s.text(try s.stringToken("a string"))))
            } else if c == minus || (c &- zero) < 10 {
                values.append(.int(try s.int64()))
            } else {
                throw s.expected("an integer or a string (a data coordinate value)", at: s.i)
            }
        } while try s.nextElement()
        return values
    }

    /// `{"connection": [dataset ref, ...], ...}`
    mutating func refMap(depth: Int) throws(E) -> [String: [DatasetRefBlock]] {
        var map: [String: [DatasetRefBlock]] = [:]
        guard try s.beginObject("'{' (inputs or outputs)") else { return map }
        repeat {
            let name = s.text(try s.key())
            if map[name] != nil { try s.skipValue(depth: depth); continue }
            var refs: [DatasetRefBlock] = []
            if try s.beginArray("'[' (dataset refs)") {
                repeat {
                    refs.append(try datasetRef(depth: depth &+ 2))
                } while try s.nextElement()
            }
            map[name] = refs
        } while try s.nextMember()
        return map
    }

    mutating func datasetRef(depth: Int) throws(E) -> DatasetRefBlock {
        let start = s.i
        var datasetID: String?, typeName: String?, coordinate: [DimensionValue]?, run: String?
        var seen: UInt8 = 0
        if try s.beginObject("'{' (a dataset ref)") {
            repeat {
                let k = try s.key()
                let f: UInt8
                if s.key(k, is: "dataset_id") { f = 1 }
                else if s.key(k, is: "dataset_type_name") { f = 2 }
                else if s.key(k, is: "data_coordinate") { f = 4 }
                else if s.key(k, is: "run") { f = 8 }
                else { f = 0 }
                if f == 0 || seen & f != 0 { try s.skipValue(depth: depth); continue }
                seen |= f
                switch f {
                case 1: datasetID = try s.string("a string (dataset_id)")
                case 2:
                    let (value, start, fresh) = try memoString(typeMemo, "a string (dataset_type_name)")
                    if fresh { typeMemo.remember(start: start, count: s.i &- start, value) }
                    typeName = value
                case 4: coordinate = try dataCoordinate()
                default:
                    let (value, start, fresh) = try memoString(runMemo, "a string (run)")
                    if fresh { runMemo.remember(start: start, count: s.i &- start, value) }
                    run = value
                }
            } while try s.nextMember()
        }
        guard let datasetID else { throw s.missing("dataset_id", in: "dataset ref", at: start) }
        guard let typeName else { throw s.missing("dataset_type_name", in: "dataset ref", at: start) }
        guard let coordinate else { throw s.missing("data_coordinate", in: "dataset ref", at: start) }
        guard let run else { throw s.missing("run", in: "dataset ref", at: start) }
        return DatasetRefBlock(dataset_id: datasetID, dataset_type_name: typeName, data_coordinate: coordinate, run: run)
    }

    /// `{"datastore name": {"records": {...}, ...}, ...}`
    mutating func datastoreMap(depth: Int) throws(E) -> [String: DatastoreBlock] {
        var map: [String: DatastoreBlock] = [:]
        guard try s.beginObject("'{' or null (datastore_records)") else { return map }
        repeat {
            let name = s.text(try s.key())
            if map[name] != nil { try s.skipValue(depth: depth); continue }
            map[name] = try datastore(depth: depth &+ 1)
        } while try s.nextMember()
        return map
    }

    mutating func datastore(depth: Int) throws(E) -> DatastoreBlock {
        let start = s.i
        var records: [String: [String: FileRecords]]?
        if try s.beginObject("'{' (a datastore's records)") {
            repeat {
                let k = try s.key()
                if records != nil || !s.key(k, is: "records") { try s.skipValue(depth: depth); continue }
                records = try recordClassMap(depth: depth &+ 1)
            } while try s.nextMember()
        }
        guard let records else { throw s.missing("records", in: "datastore", at: start) }
        return DatastoreBlock(records: records)
    }

    /// `{"record class": {"dataset id": {"file_datastore_records": [...]}, ...}, ...}`
    mutating func recordClassMap(depth: Int) throws(E) -> [String: [String: FileRecords]] {
        var map: [String: [String: FileRecords]] = [:]
        guard try s.beginObject("'{' (records)") else { return map }
        repeat {
            let name = s.text(try s.key())
            if map[name] != nil { try s.skipValue(depth: depth); continue }
            var byID: [String: FileRecords] = [:]
            if try s.beginObject("'{' (records by dataset id)") {
                repeat {
                    let id = s.text(try s.key())
                    if byID[id] != nil { try s.skipValue(depth: depth &+ 1); continue }
                    byID[id] = try fileRecords(depth: depth &+ 2)
                } while try s.nextMember()
            }
            map[name] = byID
        } while try s.nextMember()
        return map
    }

    mutating func fileRecords(depth: Int) throws(E) -> FileRecords {
        var files: [FileRecords.File]?
        var seen = false
        if try s.beginObject("'{' (file records)") {
            repeat {
                let k = try s.key()
                if seen || !s.key(k, is: "file_datastore_records") { try s.skipValue(depth: depth); continue }
                seen = true
                if try s.null() { continue }
                var list: [FileRecords.File] = []
                if try s.beginArray("'[' or null (file_datastore_records)") {
                    repeat {
                        list.append(try file(depth: depth &+ 2))
                    } while try s.nextElement()
                }
                files = list
            } while try s.nextMember()
        }
        return FileRecords(file_datastore_records: files)
    }

    mutating func file(depth: Int) throws(E) -> FileRecords.File {
        let start = s.i
        var path: String?
        if try s.beginObject("'{' (a file record)") {
            repeat {
                let k = try s.key()
                if path != nil || !s.key(k, is: "path") { try s.skipValue(depth: depth); continue }
                path = try s.string("a string (path)")
            } while try s.nextMember()
        }
        guard let path else { throw s.missing("path", in: "file record", at: start) }
        return FileRecords.File(path: path)
    }
}
