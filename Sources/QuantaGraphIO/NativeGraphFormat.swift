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
        w.append(magic)
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
            for id in g.dataIDs { try id.encode(into: &s, dimensions: dimIndex) }
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
        let crc = CRC32.checksum(w.bytes)
        w.section("END!") { s in s.u32(crc) }
        return w.bytes
    }

    /// Writes to a temporary name in the same directory, then renames.
    public static func write(_ g: QuantumGraph, to path: String) throws {
        try AtomicFile.write(Data(try encode(g)), to: path)
    }

    // MARK: reading

    public static func read(path: String) throws -> QuantumGraph {
        try decode(try readFile(path), source: path)
    }

    /// The whole file in one array, read straight into it (no `Data` in between).
    static func readFile(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw QuantaError(.io, "\(path): cannot read the graph file (\(String(cString: strerror(errno))))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw QuantaError(.io, "\(path): cannot read the graph file (\(String(cString: strerror(errno))))") }
        let size = Int(st.st_size)
        var failure: Int32 = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: size) { buf, count in
            count = 0
            while count < size {
                let n = Foundation.read(fd, buf.baseAddress! + count, size - count)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { failure = n < 0 ? errno : 0; break }
                count += n
            }
        }
        if failure != 0 { throw QuantaError(.io, "\(path): cannot read the graph file (\(String(cString: strerror(failure))))") }
        return bytes
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
        try summary(try readFile(path), source: path)
    }

    public static func summary(_ bytes: [UInt8], source path: String) throws -> Summary {
        var out = Summary(graph: QuantumGraph(), quantaPerTask: [], quanta: 0, datasets: 0, overallInputs: 0)
        try bytes.withUnsafeBytes { raw in
            let file = try Sections(raw, source: path)
            out.graph = try file.smallSections()
            if var datasets = try file.reader("DSET") { out.datasets = try datasets.count(minBytes: 29) }
            try file.verifyChecksum()
            guard var s = try file.reader("QNTA") else { return }
            let n = try s.count(minBytes: 32)
            var produced = [Bool](repeating: false, count: out.datasets)
            var perTask = [Int](repeating: 0, count: out.graph.tasks.count)
            for _ in 0..<n {
                try s.skip(16)
                let t = Int(try s.u32())
                guard t < perTask.count else { throw s.corrupt("quantum of unknown task #\(t)") }
                perTask[t] += 1
                try s.skip(4)
                let ins = Int(try s.u32())
                guard ins <= (s.end - s.offset) / 4 else { throw s.corrupt("a list of \(ins) entries runs past the end of the section") }
                try s.skip(4 * ins)
                for _ in 0..<(try s.u32()) {
                    let d = Int(try s.u32())
                    if d < produced.count { produced[d] = true }
                }
            }
            out.quanta = n
            out.quantaPerTask = perTask
            out.overallInputs = produced.lazy.filter { !$0 }.count
        }
        return out
    }

    /// Reads a whole graph. The big sections are decoded on both cores: data IDs (and the
    /// checksum) on one, datasets and quanta on the other. The checksum's error wins over any
    /// other, since a damaged file explains whatever else looks wrong in it.
    public static func decode(_ bytes: [UInt8], source: String) throws -> QuantumGraph {
        try bytes.withUnsafeBytes { raw in
            let file = try Sections(raw, source: source)
            var g = try file.smallSections()
            let universe = g.universe
            let (dataIDs, (datasets, quanta)) = try Parallel.both({
                try file.verifyChecksum()
                return try file.reader("DIDS").map { try decodeDataIDs($0, universe: universe) } ?? []
            }, {
                let datasets = try file.reader("DSET").map { try decodeDatasets($0) } ?? []
                let quanta = try file.reader("QNTA").map { try decodeQuanta($0) } ?? ([], [], [])
                return (datasets, quanta)
            })
            g.dataIDs = dataIDs
            g.datasets = datasets
            (g.quanta, g.quantumInputs, g.quantumOutputs) = quanta
            return g
        }
    }

    /// The file's sections located (not decoded): header checked, every length checked against
    /// the file, up to the END! trailer.
    struct Sections {
        let raw: UnsafeRawBufferPointer
        let source: String
        var ranges: [String: Range<Int>] = [:]
        var checksummedBytes = 0
        var expectedChecksum: UInt32 = 0

        init(_ raw: UnsafeRawBufferPointer, source: String) throws {
            self.raw = raw
            self.source = source
            guard raw.count >= 12, raw.starts(with: magic) else {
                if raw.count >= 4, raw[0] == 0x50, raw[1] == 0x4b {
                    throw QuantaError(.invalidGraph, "\(source): this is a ZIP file (an LSST .qg graph?), not a Quanta native graph; read it with a .qg name or 'quanta graph info'")
                }
                throw QuantaError(.invalidGraph, "\(source): not a Quanta native graph (the file does not start with QUANTAGR); write it with 'quanta graph' or see docs/native-graph-format.md")
            }
            var r = ByteReader(raw: raw, source: source, offset: 8)
            let v = try r.u32()
            guard v == version else {
                throw QuantaError(.invalidGraph, "\(source): native graph format version \(v) is not supported (this quanta reads version \(version)); use a matching quanta")
            }
            while r.offset < raw.count {
                let sectionStart = r.offset
                let tag = String(decoding: try r.bytes(4), as: UTF8.self)
                // Compared as read: a length with its top bit set does not fit an Int (it trapped).
                let declared = try r.u64()
                guard declared <= UInt64(raw.count - r.offset) else {
                    throw QuantaError(.invalidGraph, "\(source): truncated: section \(tag) declares \(declared) bytes but only \(raw.count - r.offset) remain; the file was cut short — copy or write it again")
                }
                let length = Int(declared)
                if tag == "END!" {
                    var s = ByteReader(raw: raw, source: source, offset: r.offset, end: r.offset + length, section: tag)
                    expectedChecksum = try s.u32()
                    checksummedBytes = sectionStart
                    return
                }
                if ranges[tag] == nil { ranges[tag] = r.offset ..< r.offset + length }  // unknown tags: later minor revisions
                r.offset += length
            }
            throw QuantaError(.invalidGraph, "\(source): truncated: the file ends before its END! section; it was cut short — copy or write it again")
        }

        func reader(_ tag: String) throws -> ByteReader? {
            ranges[tag].map { ByteReader(raw: raw, source: source, offset: $0.lowerBound, end: $0.upperBound, section: tag) }
        }

        func verifyChecksum() throws {
            var crc = CRC32()
            crc.update(UnsafeRawBufferPointer(rebasing: raw[0 ..< checksummedBytes]))
            guard crc.value == expectedChecksum else {
                throw QuantaError(.invalidGraph, "\(source): corrupt: checksum \(String(crc.value, radix: 16)) does not match the recorded \(String(expectedChecksum, radix: 16)); the file was damaged — write it again")
            }
        }

        /// META, UNIV, DTYP, TASK, RUNS: everything but data IDs, datasets and quanta.
        func smallSections() throws -> QuantumGraph {
            var g = QuantumGraph()
            if var s = try reader("META") {
                for _ in 0..<(try s.count(minBytes: 8)) { let k = try s.string(); g.metadata[k] = try s.string() }
            }
            if var s = try reader("UNIV") { g.universe = try (0..<s.count(minBytes: 4)).map { _ in try s.string() } }
            if var s = try reader("DTYP") {
                g.datasetTypes = try (0..<s.count(minBytes: 12)).map { _ in
                    let name = try s.string(), sc = try s.string()
                    return DatasetTypeNode(name: name, dimensions: try s.u32s().map { try dimName($0, g, s) }, storageClass: sc)
                }
            }
            if var s = try reader("TASK") {
                g.tasks = try (0..<s.count(minBytes: 16)).map { _ in
                    let label = try s.string()
                    let dims = try s.u32s().map { try dimName($0, g, s) }
                    let ins = try s.u32s().map { try typeName($0, g, s) }
                    let outs = try s.u32s().map { try typeName($0, g, s) }
                    return TaskNode(label: label, dimensions: dims, inputTypes: ins, outputTypes: outs)
                }
            }
            if var s = try reader("RUNS") { g.runs = try (0..<s.count(minBytes: 4)).map { _ in try s.string() } }
            return g
        }
    }

    /// Data IDs share their key lists: one `[String]` per distinct set of dimensions.
    static func decodeDataIDs(_ reader: ByteReader, universe: [String]) throws -> [DataID] {
        var s = reader
        let n = Int(try s.u32())
        guard n <= (s.end - s.offset) / 2 else { throw s.corrupt("\(n) data IDs cannot fit in the section") }
        var out: [DataID] = []
        out.reserveCapacity(n)
        var decoder = DataIDDecoder(dimensions: universe)
        for _ in 0..<n { out.append(try decoder.decode(&s)) }
        return out
    }

    static func decodeDatasets(_ reader: ByteReader) throws -> [DatasetNode] {
        var s = reader
        let n = Int(try s.u32())
        guard n <= (s.end - s.offset) / 29 else { throw s.corrupt("\(n) datasets cannot fit in the section") }
        var out: [DatasetNode] = []
        out.reserveCapacity(n)
        for _ in 0..<n {
            let id = try s.uuid()
            let t = Int32(bitPattern: try s.u32()), d = Int32(bitPattern: try s.u32()), run = Int32(bitPattern: try s.u32())
            let loc: String? = try s.u8() == 1 ? try s.string() : nil
            out.append(DatasetNode(id: id, type: t, dataID: d, run: run, location: loc))
        }
        return out
    }

    static func decodeQuanta(_ reader: ByteReader) throws -> ([QuantumNode], [Int32], [Int32]) {
        var s = reader
        let n = Int(try s.u32())
        guard n <= (s.end - s.offset) / 32 else { throw s.corrupt("\(n) quanta cannot fit in the section") }
        var quanta: [QuantumNode] = [], inputs: [Int32] = [], outputs: [Int32] = []
        quanta.reserveCapacity(n)
        for _ in 0..<n {
            let id = try s.uuid()
            let t = Int32(bitPattern: try s.u32()), d = Int32(bitPattern: try s.u32())
            let inputStart = inputs.count
            try s.appendU32s(to: &inputs)
            let outputStart = outputs.count
            try s.appendU32s(to: &outputs)
            quanta.append(QuantumNode(id: id, task: t, dataID: d,
                                      inputStart: Int32(inputStart), inputCount: Int32(inputs.count - inputStart),
                                      outputStart: Int32(outputStart), outputCount: Int32(outputs.count - outputStart)))
        }
        return (quanta, inputs, outputs)
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
