import CZstd
import Foundation
import QuantaCore

/// pipe_base's `.qg` (predicted quantum graph, format version 1), read natively: a ZIP of stored
/// members, JSON members compressed with zstd (with the graph's own dictionary when present), one
/// zstd frame per quantum in `quantum_datasets.mb`, and `quanta.addr` for random access.
public enum LSSTGraphFormat {
    public static let fileExtension = "qg"
    public static let supportedVersion = 1

    public struct Header: Sendable {
        public var version: Int
        public var graphType: String
        public var inputs: [String]
        public var output: String?
        public var outputRun: String
        public var user: String
        public var timestamp: String
        public var command: String
        public var dataQuery: String
        public var quanta: Int
        public var datasets: Int
        /// Task label → quanta, in the file's order.
        public var taskQuanta: [(String, Int)]
        public var butler: String?
    }

    /// True when the file starts like a ZIP (a `.qg`), false for anything else (e.g. `.qgn`).
    public static func looksLikeLSSTGraph(path: String) -> Bool {
        guard let h = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? h.close() }
        let head = (try? h.read(upToCount: 10)) ?? Data()
        if head.starts(with: Array("qgraph".utf8)) { return true }  // the old format: read() says so
        return head.starts(with: [0x50, 0x4b, 0x03, 0x04])
    }

    public static func readHeader(path: String) throws -> Header {
        let reader = try Reader(path: path)
        return try reader.header()
    }

    public static func read(path: String) throws -> QuantumGraph {
        let reader = try Reader(path: path)
        return try reader.graph()
    }

    /// Header and pipeline only — what `graph info` prints — without reading a single quantum
    /// block: a graph with no quanta, its tasks and dataset types, and the header's counts.
    public static func readSummary(path: String) throws -> (graph: QuantumGraph, header: Header) {
        let reader = try Reader(path: path)
        let header = try reader.header()
        return (try reader.graph(header: header, quanta: false), header)
    }

    /// One `.qg` opened: members, decompressor with the graph's dictionary.
    struct Reader {
        let path: String
        let zip: ZipArchive
        let zstd: ZstdDecoder

        init(path: String) throws {
            if let h = FileHandle(forReadingAtPath: path) {
                let head = (try? h.read(upToCount: 8)) ?? Data()
                try? h.close()
                if head.starts(with: Array("qgraph".utf8)) {
                    throw QuantaError(.invalidGraph, "\(path): the old .qgraph format (pipe_base before format version 1); rebuild it with 'pipetask qgraph ... --save-qgraph X.qg' from a current pipe_base")
                }
            }
            try self.init(zip: try ZipArchive(path: path))
        }

        /// A `.qg` already in memory (the fuzz target); `source` names it in errors.
        init(bytes: Data, source: String) throws {
            try self.init(zip: try ZipArchive(bytes: bytes, path: source))
        }

        private init(zip: ZipArchive) throws {
            path = zip.path
            self.zip = zip
            let dict = zip.members["compression_dict"] != nil ? try zip.data("compression_dict") : nil
            zstd = try ZstdDecoder(dictionary: dict, source: path)
        }

        func json(_ member: String) throws -> Any {
            let raw = try zstd.decompress(try zip.data(member), what: member)
            do { return try JSONSerialization.jsonObject(with: raw) } catch {
                throw QuantaError(.invalidGraph, "\(path): member \(member) is not valid JSON (\(error.localizedDescription)); the file is corrupt")
            }
        }

        func fail(_ what: String) -> QuantaError { QuantaError(.invalidGraph, "\(path): \(what)") }

        func header() throws -> Header {
            guard let h = try json("header.json.zst") as? [String: Any] else { throw fail("header.json is not a JSON object") }
            let version = (h["version"] as? Int) ?? -1
            guard version == supportedVersion else {
                throw fail("unsupported .qg format version \(version); Quanta reads version \(supportedVersion) (pipe_base 2025+)")
            }
            let graphType = h["graph_type"] as? String ?? "predicted"
            guard graphType == "predicted" else { throw fail("a '\(graphType)' graph; Quanta runs predicted quantum graphs") }
            guard let run = h["output_run"] as? String else { throw fail("the header names no output_run") }
            let meta = h["metadata"] as? [String: Any] ?? [:]
            let counts = h["n_task_quanta"] as? [String: Int] ?? [:]
            let taskQuanta = counts.keys.sorted().map { ($0, counts[$0]!) }
            return Header(version: version, graphType: graphType, inputs: h["inputs"] as? [String] ?? [],
                          output: h["output"] as? String, outputRun: run, user: h["user"] as? String ?? "",
                          timestamp: h["timestamp"] as? String ?? "", command: h["command"] as? String ?? "",
                          dataQuery: meta["data_query"] as? String ?? "", quanta: h["n_quanta"] as? Int ?? 0,
                          datasets: h["n_datasets"] as? Int ?? 0, taskQuanta: taskQuanta,
                          butler: meta["butler_argument"] as? String)
        }

        func graph() throws -> QuantumGraph {
            try graph(header: try header(), quanta: true)
        }

        func graph(header: Header, quanta readQuanta: Bool) throws -> QuantumGraph {
            guard let pg = try json("pipeline_graph.json.zst") as? [String: Any],
                  let tasks = pg["tasks"] as? [String: Any], let types = pg["dataset_types"] as? [String: Any] else {
                throw fail("pipeline_graph.json lacks tasks or dataset_types")
            }
            let universe = try Universe(pg["dimensions"] as? [String: Any] ?? [:], source: path)

            // Dataset types and the order of their data coordinates.
            var typeDims: [String: [String]] = [:]
            var usedDims = Set<String>()
            for (name, v) in types {
                let t = v as? [String: Any] ?? [:]
                let dims = universe.group(t["dimensions"] as? [String] ?? [])
                typeDims[name] = dims
                usedDims.formUnion(dims)
            }
            // Tasks in the pipeline's order (`index`), with their dimensions and connections.
            struct TaskInfo { var label: String; var index: Int; var dims: [String]; var inputs: [String]; var outputs: [String] }
            var infos: [TaskInfo] = []
            for (label, v) in tasks {
                let t = v as? [String: Any] ?? [:]
                func names(_ key: String) -> [String] {
                    (t[key] as? [String: Any] ?? [:]).values.compactMap { ($0 as? [String: Any])?["dataset_type_name"] as? String }.sorted()
                }
                func single(_ key: String) -> [String] {
                    ((t[key] as? [String: Any])?["dataset_type_name"] as? String).map { [$0] } ?? []
                }
                let dims = universe.group(t["dimensions"] as? [String] ?? [])
                usedDims.formUnion(dims)
                infos.append(TaskInfo(label: label, index: t["index"] as? Int ?? 0, dims: dims,
                                      inputs: names("inputs") + names("prerequisite_inputs"),
                                      outputs: names("outputs") + single("metadata_output") + single("log_output")))
            }
            infos.sort { ($0.index, $0.label) < ($1.index, $1.label) }

            var metadata: [String: String] = ["outputRun": header.outputRun, "format": "lsst-qg-\(header.version)",
                                              "inputCollections": header.inputs.joined(separator: ",")]
            if let o = header.output { metadata["output"] = o }
            if let b = header.butler { metadata["butler"] = b }
            if !header.dataQuery.isEmpty { metadata["dataQuery"] = header.dataQuery }
            metadata["lsstGraph"] = URL(fileURLWithPath: path).standardizedFileURL.path
            var b = GraphBuilder(universe: universe.order.filter(usedDims.contains), metadata: metadata)
            for name in types.keys.sorted() {
                let t = types[name] as? [String: Any] ?? [:]
                b.addDatasetType(name, dimensions: typeDims[name] ?? [], storageClass: t["storage_class"] as? String ?? "")
            }
            for t in infos { b.addTask(TaskNode(label: t.label, dimensions: t.dims, inputTypes: t.inputs, outputTypes: t.outputs)) }
            let taskDims = Dictionary(uniqueKeysWithValues: infos.map { ($0.label, $0.dims) })

            guard readQuanta else { return b.graph }
            // Quantum blocks, in file order: [int_size big-endian length][zstd frame].
            let mb = try zip.data("quantum_datasets.mb")
            // DRP-shaped graphs have 3–4 datasets per quantum: an estimate, bounded by the member's size
            // (no quantum block is under 64 bytes) so a damaged header cannot ask for any amount of memory.
            let expected = max(0, min(header.quanta, mb.count / 64))
            b.reserve(quanta: expected, datasets: 4 * expected)
            let intSize = 8
            var pos = mb.startIndex
            var count = 0
            while pos < mb.endIndex {
                guard pos + intSize <= mb.endIndex else { throw fail("quantum_datasets.mb ends inside a block length (truncated)") }
                var len = 0
                for k in 0..<intSize { len = len << 8 | Int(mb[pos + k]) }
                let start = pos + intSize
                guard len >= 0, len <= mb.endIndex - start else { throw fail("quantum_datasets.mb: block \(count) runs past the member (truncated or corrupt)") }
                let raw = try zstd.decompress(mb[start..<(start + len)], what: "quantum block \(count)")
                let q: QuantumBlock
                do { q = try QuantumBlockParser.parse(raw) } catch {
                    throw fail("quantum block \(count) is not a quantum (\(error)); the file is corrupt")
                }
                try addQuantum(q, to: &b, taskDims: taskDims, typeDims: typeDims, block: count)
                pos = start + len
                count += 1
            }
            guard count == header.quanta || header.quanta == 0 else {
                throw fail("the header promises \(header.quanta) quanta but quantum_datasets.mb holds \(count); the file is truncated or corrupt")
            }
            return b.graph
        }

        private func addQuantum(_ q: QuantumBlock, to b: inout GraphBuilder, taskDims: [String: [String]],
                                typeDims: [String: [String]], block: Int) throws {
            guard let id = QuantumBlockParser.parseUUID(q.quantum_id), let dims = taskDims[q.task_label] else {
                throw fail("quantum block \(block) has a bad quantum_id or names an unknown task '\(q.task_label)'")
            }
            let idText = q.quantum_id
            let dataID = try coordinate(q.data_coordinate, dims: dims, what: "quantum \(idText)")
            // Where overall inputs already are (datastore records), by dataset id without dashes.
            var locations: [String: String] = [:]
            for store in (q.datastore_records ?? [:]).values {
                for byClass in store.records.values {
                    for (key, rec) in byClass {
                        if let p = rec.file_datastore_records?.first?.path { locations[key.lowercased()] = p }
                    }
                }
            }
            func refs(_ connections: [String: [DatasetRefBlock]]) throws -> [Int32] {
                var out: [Int32] = []
                for key in connections.keys.sorted() {
                    for r in connections[key]! {
                        guard let rid = QuantumBlockParser.parseUUID(r.dataset_id) else {
                            throw fail("quantum \(idText): bad dataset_id '\(r.dataset_id)'")
                        }
                        let type = r.dataset_type_name
                        var tdims = typeDims[type]
                        if tdims == nil, let dot = type.firstIndex(of: ".") {
                            // A component (calexp.wcs): the parent's dimensions.
                            tdims = typeDims[String(type[..<dot])]
                            b.addDatasetType(type, dimensions: tdims ?? [], storageClass: "")
                        }
                        guard let td = tdims else { throw fail("quantum \(idText): dataset type '\(type)' is not in the pipeline graph") }
                        let did = try coordinate(r.data_coordinate, dims: td, what: "dataset \(r.dataset_id)")
                        let loc = locations.isEmpty ? nil : locations[Self.undashedLowercase(r.dataset_id)]
                        out.append(b.dataset(type, did, run: r.run, location: loc, id: rid))
                    }
                }
                return out
            }
            b.addQuantum(task: q.task_label, dataID: dataID, inputs: try refs(q.inputs), outputs: try refs(q.outputs), id: id)
        }

        /// `01A1-…` → `01a1…`, byte by byte (Foundation's replacingOccurrences was ~10 % of reading).
        static func undashedLowercase(_ id: String) -> String {
            String(decoding: id.utf8.compactMap { b -> UInt8? in
                b == UInt8(ascii: "-") ? nil : (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z") ? b + 32 : b)
            }, as: UTF8.self)
        }

        /// `["Cam1", 0, 2, "r", …]` → a data ID with names: required then implied, universe order.
        private func coordinate(_ values: [DimensionValue], dims: [String], what: String) throws -> DataID {
            guard values.count == dims.count else {
                throw fail("\(what): data coordinate has \(values.count) values for \(dims.count) dimensions (\(dims.joined(separator: ", ")))")
            }
            return DataID(keys: dims, values: values)
        }
    }
}

/// The dimension universe as pipe_base stores it (`pipeline_graph.json` → `dimensions`), enough to
/// name a data coordinate's values: daf_butler orders dimensions topologically (requires and
/// implies), level by level, alphabetically within a level, skypix systems by level number; a
/// group lists its required dimensions, then its implied ones, each in that order.
struct Universe {
    let order: [String]
    private let rank: [String: Int]
    private let implies: [String: [String]]
    private let requires: [String: [String]]

    init(_ config: [String: Any], source: String) throws {
        let elements = config["elements"] as? [String: Any] ?? [:]
        var requires: [String: [String]] = [:], implies: [String: [String]] = [:]
        for (name, v) in elements {
            let e = v as? [String: Any] ?? [:]
            requires[name] = e["requires"] as? [String] ?? []
            implies[name] = e["implies"] as? [String] ?? []
        }
        // Skypix dimensions: htm1…htm24, healpix1…healpix17, from the skypix section.
        for (system, v) in config["skypix"] as? [String: Any] ?? [:] {
            guard let s = v as? [String: Any], let maxLevel = s["max_level"] as? Int else { continue }
            // htm goes to 24 and healpix to 17: a larger level is a damaged file, not a billion names.
            guard maxLevel <= 64 else {
                throw QuantaError(.invalidGraph, "\(source): skypix system \(system) claims \(maxLevel) levels; the file is corrupt")
            }
            for level in 1...max(1, maxLevel) { requires["\(system)\(level)"] = []; implies["\(system)\(level)"] = [] }
        }
        var level: [String: Int] = [:]
        func depth(_ n: String, _ seen: Set<String>) -> Int {
            if let d = level[n] { return d }
            guard !seen.contains(n) else { return 0 }
            let deps = (requires[n] ?? []) + (implies[n] ?? [])
            let d = deps.isEmpty ? 0 : 1 + deps.map { depth($0, seen.union([n])) }.max()!
            level[n] = d
            return d
        }
        for n in requires.keys { _ = depth(n, []) }
        func key(_ n: String) -> (String, Int) {
            let digits = n.reversed().prefix { $0.isNumber }
            // Not every Unicode number is an Int ("½", or more digits than fit): those sort last.
            return digits.isEmpty ? (n, -1) : (String(n.dropLast(digits.count)), Int(String(digits.reversed())) ?? Int.max)
        }
        order = requires.keys.sorted { a, b in
            let la = level[a]!, lb = level[b]!
            if la != lb { return la < lb }
            let ka = key(a), kb = key(b)
            return ka.0 != kb.0 ? ka.0 < kb.0 : ka.1 < kb.1
        }
        rank = Dictionary(uniqueKeysWithValues: order.enumerated().map { ($1, $0) })
        self.implies = implies
        self.requires = requires
    }

    /// A dimension group's data coordinate keys: required ones, then implied ones.
    func group(_ names: [String]) -> [String] {
        let set = Set(names)
        var implied = Set<String>()
        for n in set { for i in implies[n] ?? [] where set.contains(i) { implied.insert(i) } }
        let byRank: (String, String) -> Bool = { (rank[$0] ?? Int.max, $0) < (rank[$1] ?? Int.max, $1) }
        return set.subtracting(implied).sorted(by: byRank) + implied.sorted(by: byRank)
    }
}

/// zstd frames, with the graph's dictionary when it has one.
final class ZstdDecoder {
    private let dctx: OpaquePointer
    private let ddict: OpaquePointer?
    private let source: String

    init(dictionary: Data?, source: String) throws {
        self.source = source
        guard let d = ZSTD_createDCtx() else { throw QuantaError(.io, "\(source): cannot create a zstd context") }
        dctx = d
        if let dictionary {
            ddict = dictionary.withUnsafeBytes { ZSTD_createDDict($0.baseAddress, $0.count) }
            if ddict == nil { throw QuantaError(.invalidGraph, "\(source): compression_dict is not a zstd dictionary (corrupt)") }
        } else {
            ddict = nil
        }
    }

    deinit {
        ZSTD_freeDCtx(dctx)
        if let ddict { ZSTD_freeDDict(ddict) }
    }

    func decompress(_ frame: Data, what: String) throws -> Data {
        try frame.withUnsafeBytes { (src: UnsafeRawBufferPointer) -> Data in
            let size = ZSTD_getFrameContentSize(src.baseAddress, src.count)
            if size == quanta_zstd_content_size_error() {
                throw QuantaError(.invalidGraph, "\(source): \(what) is not a zstd frame (corrupt file)")
            }
            guard size < 1 << 34 || size == quanta_zstd_content_size_unknown() else {
                throw QuantaError(.invalidGraph, "\(source): \(what) claims \(size) bytes (corrupt)")
            }
            // A size the frame only claims is allocated up front when it is plausible for its
            // compressed size; otherwise the output grows with what really decompresses.
            if size == quanta_zstd_content_size_unknown() || (size > 1 << 26 && size / 1024 > UInt64(src.count)) {
                return try stream(src, what: what)
            }
            var out = Data(count: Int(size))
            let rc = out.withUnsafeMutableBytes { dst -> Int in
                if let ddict { return ZSTD_decompress_usingDDict(dctx, dst.baseAddress, dst.count, src.baseAddress, src.count, ddict) }
                return ZSTD_decompressDCtx(dctx, dst.baseAddress, dst.count, src.baseAddress, src.count)
            }
            if ZSTD_isError(rc) != 0 {
                throw QuantaError(.invalidGraph, "\(source): \(what): zstd says '\(String(cString: ZSTD_getErrorName(rc)))'; the file is corrupt or truncated")
            }
            return out
        }
    }

    private func stream(_ src: UnsafeRawBufferPointer, what: String) throws -> Data {
        ZSTD_DCtx_reset(dctx, ZSTD_reset_session_only)
        if let ddict { ZSTD_DCtx_refDDict(dctx, ddict) }
        var out = Data()
        var input = ZSTD_inBuffer(src: src.baseAddress, size: src.count, pos: 0)
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let (rc, produced) = chunk.withUnsafeMutableBytes { buf -> (Int, Int) in
                var output = ZSTD_outBuffer(dst: buf.baseAddress, size: buf.count, pos: 0)
                let rc = ZSTD_decompressStream(dctx, &output, &input)
                return (rc, output.pos)
            }
            if ZSTD_isError(rc) != 0 {
                throw QuantaError(.invalidGraph, "\(source): \(what): zstd says '\(String(cString: ZSTD_getErrorName(rc)))'")
            }
            out.append(contentsOf: chunk[0..<produced])
            if rc == 0 { break }
            if input.pos == input.size && produced == 0 {
                throw QuantaError(.invalidGraph, "\(source): \(what): zstd frame ends early (truncated)")
            }
        }
        return out
    }
}

/// One block of `quantum_datasets.mb`, as pipe_base writes it (field names are the file's).
struct QuantumBlock: Decodable {
    var quantum_id: String
    var task_label: String
    var data_coordinate: [DimensionValue]
    var inputs: [String: [DatasetRefBlock]]
    var outputs: [String: [DatasetRefBlock]]
    var datastore_records: [String: DatastoreBlock]?
}

struct DatasetRefBlock: Decodable {
    var dataset_id: String
    var dataset_type_name: String
    var data_coordinate: [DimensionValue]
    var run: String
}

struct DatastoreBlock: Decodable {
    var records: [String: [String: FileRecords]]
}

struct FileRecords: Decodable {
    struct File: Decodable { var path: String }
    var file_datastore_records: [File]?
}

/// Data coordinate values are JSON integers or strings.
extension DimensionValue: Decodable {
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let n = try? c.decode(Int64.self) { self = .int(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else { throw DecodingError.dataCorruptedError(in: c, debugDescription: "a data coordinate value is neither an integer nor a string") }
    }
}
