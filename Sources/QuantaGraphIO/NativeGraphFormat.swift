import Foundation
import QuantaCore

/// Quanta's own graph file (`.qgn`), version 1. Layout in docs/native-graph-format.md.
public enum NativeGraphFormat {
    public static let magic: [UInt8] = Array("QUANTAGR".utf8)
    public static let version: UInt32 = 1
    public static let fileExtension = "qgn"

    // MARK: writing

    public static func encode(_ g: QuantumGraph) throws -> [UInt8] {
        var w = ByteWriter()
        w.bytes(magic)
        w.u32(version)
        let dimIndex = Dictionary(g.universe.enumerated().map { ($1, UInt32($0)) }, uniquingKeysWith: { a, _ in a })
        func dims(_ names: [String], of what: String) throws -> [UInt32] {
            try names.map {
                guard let i = dimIndex[$0] else {
                    throw QuantaError(.invalidGraph, "\(what) uses dimension '\($0)', which is not in the graph's universe \(g.universe)")
                }
                return i
            }
        }
        let typeIndex = Dictionary(g.datasetTypes.enumerated().map { ($1.name, UInt32($0)) }, uniquingKeysWith: { a, _ in a })
        func types(_ names: [String], of what: String) throws -> [UInt32] {
            try names.map {
                guard let i = typeIndex[$0] else { throw QuantaError(.invalidGraph, "\(what) uses dataset type '\($0)', which the graph does not define") }
                return i
            }
        }
        w.section("META") { s in
            s.u32(UInt32(g.metadata.count))
            for k in g.metadata.keys.sorted() { s.string(k); s.string(g.metadata[k]!) }
        }
        w.section("UNIV") { s in s.u32(UInt32(g.universe.count)); g.universe.forEach { s.string($0) } }
        try w.trySection("DTYP") { s in
            s.u32(UInt32(g.datasetTypes.count))
            for t in g.datasetTypes {
                s.string(t.name); s.string(t.storageClass)
                s.u32s(try dims(t.dimensions, of: "dataset type \(t.name)"))
            }
        }
        try w.trySection("TASK") { s in
            s.u32(UInt32(g.tasks.count))
            for t in g.tasks {
                s.string(t.label)
                s.u32s(try dims(t.dimensions, of: "task \(t.label)"))
                s.u32s(try types(t.inputTypes, of: "task \(t.label)"))
                s.u32s(try types(t.outputTypes, of: "task \(t.label)"))
            }
        }
        w.section("RUNS") { s in s.u32(UInt32(g.runs.count)); g.runs.forEach { s.string($0) } }
        try w.trySection("DIDS") { s in
            s.u32(UInt32(g.dataIDs.count))
            for id in g.dataIDs {
                s.u16(UInt16(id.keys.count))
                for (k, v) in id.pairs {
                    guard let d = dimIndex[k] else { throw QuantaError(.invalidGraph, "data ID {\(id)} uses dimension '\(k)', which is not in the universe") }
                    s.u16(UInt16(d))
                    switch v {
                    case .int(let n): s.u8(0); s.i64(n)
                    case .string(let str): s.u8(1); s.string(str)
                    }
                }
            }
        }
        w.section("DSET") { s in
            s.u32(UInt32(g.datasets.count))
            for d in g.datasets {
                s.uuid(d.id); s.u32(UInt32(d.type)); s.u32(UInt32(d.dataID)); s.u32(UInt32(d.run))
                if let loc = d.location { s.u8(1); s.string(loc) } else { s.u8(0) }
            }
        }
        w.section("QNTA") { s in
            s.u32(UInt32(g.quanta.count))
            for q in g.quanta.indices {
                let n = g.quanta[q]
                s.uuid(n.id); s.u32(UInt32(n.task)); s.u32(UInt32(n.dataID))
                s.u32s(g.inputs(of: q).map { UInt32($0) })
                s.u32s(g.outputs(of: q).map { UInt32($0) })
            }
        }
        let crc = CRC32.checksum(w.buffer)
        w.section("END!") { s in s.u32(crc) }
        return w.buffer
    }

    /// Writes to a temporary name in the same directory, then renames.
    public static func write(_ g: QuantumGraph, to path: String) throws {
        try AtomicFile.write(Data(try encode(g)), to: path)
    }

    // MARK: reading

    public static func read(path: String) throws -> QuantumGraph {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw QuantaError(.io, "\(path): cannot read the graph file (missing or unreadable)")
        }
        return try decode([UInt8](data), source: path)
    }

    /// What `graph info` shows, without materialising data IDs, datasets or quanta: the small
    /// sections in full, quanta counted per task, datasets counted, overall inputs from a bitmap of
    /// produced datasets. The checksum is still verified.
    public struct Summary: Sendable {
        public var graph: QuantumGraph
        public var quantaPerTask: [Int]
        public var quanta: Int
        public var datasets: Int
        public var overallInputs: Int
    }

    public static func summary(path: String) throws -> Summary {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw QuantaError(.io, "\(path): cannot read the graph file (missing or unreadable)")
        }
        var out = Summary(graph: QuantumGraph(), quantaPerTask: [], quanta: 0, datasets: 0, overallInputs: 0)
        out.graph = try decode([UInt8](data), source: path, summary: &out)
        return out
    }

    public static func decode(_ bytes: [UInt8], source: String) throws -> QuantumGraph {
        try decode(bytes, source: source, summary: nil)
    }

    static func decode(_ bytes: [UInt8], source: String, summary: UnsafeMutablePointer<Summary>?) throws -> QuantumGraph {
        var r = ByteReader(bytes: bytes, source: source)
        guard bytes.count >= 12, Array(bytes[0..<8]) == magic else {
            if bytes.count >= 4, bytes[0] == 0x50, bytes[1] == 0x4b {
                throw QuantaError(.invalidGraph, "\(source): this is a ZIP file (an LSST .qg graph?), not a Quanta native graph; the .qg reader arrives with LSST support")
            }
            throw QuantaError(.invalidGraph, "\(source): not a Quanta native graph (the file does not start with QUANTAGR); write it with 'quanta graph' or see docs/native-graph-format.md")
        }
        r.offset = 8
        let v = try r.u32()
        guard v == version else {
            throw QuantaError(.invalidGraph, "\(source): native graph format version \(v) is not supported (this quanta reads version \(version)); use a matching quanta")
        }
        var g = QuantumGraph()
        var sawEnd = false
        while r.offset < bytes.count {
            let sectionStart = r.offset
            let tag = String(decoding: try r.take(4), as: UTF8.self)
            let length = Int(try r.u64())
            guard length <= bytes.count - r.offset else {
                throw QuantaError(.invalidGraph, "\(source): truncated: section \(tag) declares \(length) bytes but only \(bytes.count - r.offset) remain; the file was cut short — copy or write it again")
            }
            var s = ByteReader(bytes: bytes, source: source, offset: r.offset, end: r.offset + length, section: tag)
            r.offset += length
            switch tag {
            case "META":
                for _ in 0..<(try s.u32()) { let k = try s.string(); g.metadata[k] = try s.string() }
            case "UNIV":
                g.universe = try (0..<s.u32()).map { _ in try s.string() }
            case "DTYP":
                g.datasetTypes = try (0..<s.u32()).map { _ in
                    let name = try s.string(), sc = try s.string()
                    return DatasetTypeNode(name: name, dimensions: try s.u32s().map { try dimName($0, g, s) }, storageClass: sc)
                }
            case "TASK":
                g.tasks = try (0..<s.u32()).map { _ in
                    let label = try s.string()
                    let dims = try s.u32s().map { try dimName($0, g, s) }
                    let ins = try s.u32s().map { try typeName($0, g, s) }
                    let outs = try s.u32s().map { try typeName($0, g, s) }
                    return TaskNode(label: label, dimensions: dims, inputTypes: ins, outputTypes: outs)
                }
            case "RUNS":
                g.runs = try (0..<s.u32()).map { _ in try s.string() }
            case "DIDS" where summary != nil, "DSET" where summary != nil:
                let n = Int(try s.u32())
                if tag == "DSET" { summary!.pointee.datasets = n }
            case "QNTA" where summary != nil:
                let n = Int(try s.u32())
                var produced = [Bool](repeating: false, count: summary!.pointee.datasets)
                var perTask = [Int](repeating: 0, count: g.tasks.count)
                for _ in 0..<n {
                    s.offset += 16
                    let t = Int(try s.u32())
                    guard t < perTask.count else { throw s.corrupt("quantum of unknown task #\(t)") }
                    perTask[t] += 1
                    s.offset += 4
                    let ins = Int(try s.u32())
                    guard ins <= (s.end - s.offset) / 4 else { throw s.corrupt("a list of \(ins) entries runs past the end of the section") }
                    s.offset += 4 * ins
                    for _ in 0..<(try s.u32()) {
                        let d = Int(try s.u32())
                        if d < produced.count { produced[d] = true }
                    }
                }
                summary!.pointee.quanta = n
                summary!.pointee.quantaPerTask = perTask
                summary!.pointee.overallInputs = produced.lazy.filter { !$0 }.count
            case "DIDS":
                let n = Int(try s.u32())
                g.dataIDs.reserveCapacity(n)
                for _ in 0..<n {
                    var keys: [String] = [], values: [DimensionValue] = []
                    for _ in 0..<(try s.u16()) {
                        keys.append(try dimName(UInt32(try s.u16()), g, s))
                        switch try s.u8() {
                        case 0: values.append(.int(try s.i64()))
                        case 1: values.append(.string(try s.string()))
                        case let k: throw s.corrupt("unknown data ID value kind \(k)")
                        }
                    }
                    g.dataIDs.append(DataID(keys: keys, values: values))
                }
            case "DSET":
                let n = Int(try s.u32())
                g.datasets.reserveCapacity(n)
                for _ in 0..<n {
                    let id = try s.uuid()
                    let t = Int32(bitPattern: try s.u32()), d = Int32(bitPattern: try s.u32()), run = Int32(bitPattern: try s.u32())
                    let loc: String? = try s.u8() == 1 ? try s.string() : nil
                    g.datasets.append(DatasetNode(id: id, type: t, dataID: d, run: run, location: loc))
                }
            case "QNTA":
                let n = Int(try s.u32())
                g.quanta.reserveCapacity(n)
                for _ in 0..<n {
                    let id = try s.uuid()
                    let t = Int32(bitPattern: try s.u32()), d = Int32(bitPattern: try s.u32())
                    let ins = try s.u32s(), outs = try s.u32s()
                    g.quanta.append(QuantumNode(id: id, task: t, dataID: d,
                                                inputStart: Int32(g.quantumInputs.count), inputCount: Int32(ins.count),
                                                outputStart: Int32(g.quantumOutputs.count), outputCount: Int32(outs.count)))
                    g.quantumInputs.append(contentsOf: ins.map { Int32(bitPattern: $0) })
                    g.quantumOutputs.append(contentsOf: outs.map { Int32(bitPattern: $0) })
                }
            case "END!":
                let expected = try s.u32()
                var crc = CRC32()
                bytes.withUnsafeBytes { crc.update(UnsafeRawBufferPointer(rebasing: $0[0..<sectionStart])) }
                let actual = crc.value
                guard expected == actual else {
                    throw QuantaError(.invalidGraph, "\(source): corrupt: checksum \(String(actual, radix: 16)) does not match the recorded \(String(expected, radix: 16)); the file was damaged — write it again")
                }
                sawEnd = true
            default:
                continue  // sections added by later minor revisions are skipped
            }
            if sawEnd { break }
        }
        guard sawEnd else {
            throw QuantaError(.invalidGraph, "\(source): truncated: the file ends before its END! section; it was cut short — copy or write it again")
        }
        return g
    }

    private static func dimName(_ i: UInt32, _ g: QuantumGraph, _ s: ByteReader) throws -> String {
        guard Int(i) < g.universe.count else { throw s.corrupt("dimension index \(i) outside the universe") }
        return g.universe[Int(i)]
    }

    private static func typeName(_ i: UInt32, _ g: QuantumGraph, _ s: ByteReader) throws -> String {
        guard Int(i) < g.datasetTypes.count else { throw s.corrupt("dataset type index \(i) outside the type table") }
        return g.datasetTypes[Int(i)].name
    }
}

struct ByteWriter {
    var buffer: [UInt8] = []

    mutating func bytes(_ b: [UInt8]) { buffer.append(contentsOf: b) }
    mutating func u8(_ v: UInt8) { buffer.append(v) }
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { buffer.append(contentsOf: $0) } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { buffer.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { buffer.append(contentsOf: $0) } }
    mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
    mutating func string(_ s: String) { let u = Array(s.utf8); u32(UInt32(u.count)); bytes(u) }
    mutating func u32s(_ a: [UInt32]) { u32(UInt32(a.count)); a.forEach { u32($0) } }
    mutating func uuid(_ id: UUID) { withUnsafeBytes(of: id.uuid) { buffer.append(contentsOf: $0) } }

    mutating func section(_ tag: String, _ body: (inout ByteWriter) -> Void) {
        try! trySection(tag) { body(&$0) }
    }

    mutating func trySection(_ tag: String, _ body: (inout ByteWriter) throws -> Void) throws {
        bytes(Array(tag.utf8))
        let lengthAt = buffer.count
        u64(0)
        let start = buffer.count
        try body(&self)
        let length = UInt64(buffer.count - start).littleEndian
        withUnsafeBytes(of: length) { for (i, b) in $0.enumerated() { buffer[lengthAt + i] = b } }
    }
}

struct ByteReader {
    let bytes: [UInt8]
    let source: String
    var offset: Int
    let end: Int
    let section: String

    init(bytes: [UInt8], source: String, offset: Int = 0, end: Int? = nil, section: String = "header") {
        self.bytes = bytes
        self.source = source
        self.offset = offset
        self.end = end ?? bytes.count
        self.section = section
    }

    func corrupt(_ what: String) -> QuantaError {
        QuantaError(.invalidGraph, "\(source): corrupt section \(section) at byte \(offset): \(what)")
    }

    mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, n <= end - offset else {
            if end == bytes.count {
                throw QuantaError(.invalidGraph, "\(source): truncated: needed \(n) more bytes at byte \(offset) of \(bytes.count); the file was cut short — copy or write it again")
            }
            throw corrupt("a value runs past the end of the section")
        }
        defer { offset += n }
        return bytes[offset ..< offset + n]
    }

    mutating func u8() throws -> UInt8 { try take(1).first! }
    mutating func u16() throws -> UInt16 { try take(2).reversed().reduce(0) { $0 << 8 | UInt16($1) } }
    mutating func u32() throws -> UInt32 { try take(4).reversed().reduce(0) { $0 << 8 | UInt32($1) } }
    mutating func u64() throws -> UInt64 { try take(8).reversed().reduce(0) { $0 << 8 | UInt64($1) } }
    mutating func i64() throws -> Int64 { Int64(bitPattern: try u64()) }
    mutating func string() throws -> String { String(decoding: try take(Int(try u32())), as: UTF8.self) }
    mutating func u32s() throws -> [UInt32] {
        let n = Int(try u32())
        guard n <= (end - offset) / 4 else { throw corrupt("a list of \(n) entries runs past the end of the section") }
        return try (0..<n).map { _ in try u32() }
    }
    mutating func uuid() throws -> UUID {
        let b = Array(try take(16))
        return UUID(uuid: (b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]))
    }
}
