#if canImport(Glibc)
import Glibc
#endif
import Foundation
import QuantaCore

/// The binary snapshot (`snapshot.bin`, issue 6; checksums issue 12): the graph's own records at
/// fixed widths plus a job index, so plan writes it in one pass and a job reads only its own
/// records through a memory map. Layout in docs/snapshot-format.md: `QSNAP004`, u64 header
/// length, u32 chunk size, u32 CRC-32 of the header, a JSON header (meta, tasks, dataset types,
/// arrays, name tables, section offsets), then little-endian sections:
///   elemStart (u32 per array + 1) → elemJob (u32 per element: job)
///   jobQStart (u32 per job + 1) → jobQ (u32: quantum indices in run order)
///   quanta (40 B: uuid, task, dataID, inStart, inCount, outStart, outCount) → qIn, qOut (u32 dataset)
///   datasets (32 B: uuid, type, dataID, run, location or 0xFFFFFFFF)
///   locOff/locText (overall inputs' datastore paths), didOff/didText (data IDs as JSON)
/// and last the chunk table: a CRC-32 per `chunkSize` bytes of each section, so a job verifies
/// only the chunks it reads (a 1M-quantum snapshot is hundreds of MB; a job reads a few records).
/// Output paths are not stored: the repository's file template makes them when a job reads them.
enum SnapshotFile {
    static let magic = Array("QSNAP005".utf8)
    /// Before the binary data IDs (issue 15): the same sections, data IDs as JSON text. Read.
    static let v4Magic = Array("QSNAP004".utf8)
    /// The format before the producer index (issue 13): read, with no producers (jobs then fall
    /// back to checking their inputs' files).
    static let previousMagic = Array("QSNAP003".utf8)
    /// Bytes per checksummed chunk: a job's few records cost a few 16 KiB CRCs (~µs each).
    static let chunkSize = 16_384
    /// magic, u64 header length, u32 chunk size, u32 header CRC.
    static let prefix = 24

    /// The sections, in file order; the header maps each name to [offset, length].
    enum Section: Int, CaseIterable {
        case elemStart, elemJob, jobQStart, jobQ, quanta, qIn, qOut, datasets, locOff, locText, didOff, didText
        /// QSNAP004: each dataset's producing quantum (or 0xFFFFFFFF), each quantum's job slot (its
        /// position in elemJob), so a job finds the quantum, array and job that made each input.
        case producer, qSlot
        var name: String { String(describing: self) }
        /// Sections a QSNAP003 file does not have.
        var sinceV4: Bool { self == .producer || self == .qSlot }
    }
    static let none: UInt32 = 0xFFFF_FFFF

    struct Header: Codable, Equatable {
        var meta: [String: String]
        var tasks: [String: [String?]]
        var datasetTypes: [[String]]
        var taskLabels: [String]
        var typeNames: [String]
        var storageClasses: [String]
        var runs: [String]
        var arrays: [[String]]
        var template: String
        var repoKind: String
        var sections: [String: [Int]]
        /// QSNAP005: the dimension table the binary data IDs index (nil before).
        var dimensions: [String]? = nil

        /// Read by hand: every job reads the header (26 KB for a 1M-quantum plan, one entry per
        /// array), and JSONDecoder took 2–3 ms of run-quantum's lookup. Same result as the Codable form.
        static func decode(_ bytes: UnsafeRawBufferPointer) throws -> Header {
            var r = JSONReader(bytes)
            func strings(_ r: inout JSONReader) throws -> [String] {
                var out: [String] = []
                try r.array { out.append(try $0.string()) }
                return out
            }
            func lists(_ r: inout JSONReader) throws -> [[String]] {
                var out: [[String]] = []
                try r.array { out.append(try strings(&$0)) }
                return out
            }
            var meta: [String: String]?, tasks: [String: [String?]]?, datasetTypes: [[String]]?, taskLabels: [String]?
            var typeNames: [String]?, storageClasses: [String]?, runs: [String]?, arrays: [[String]]?
            var template: String?, repoKind: String?, sections: [String: [Int]]?, dimensions: [String]?
            try r.object { key, r in
                switch key {
                case "meta":
                    var m: [String: String] = [:]
                    try r.object { k, r in m[k] = try r.string() }
                    meta = m
                case "tasks":
                    var t: [String: [String?]] = [:]
                    try r.object { k, r in
                        var list: [String?] = []
                        try r.array { list.append(try $0.null() ? nil : try $0.string()) }
                        t[k] = list
                    }
                    tasks = t
                case "datasetTypes": datasetTypes = try lists(&r)
                case "taskLabels": taskLabels = try strings(&r)
                case "typeNames": typeNames = try strings(&r)
                case "storageClasses": storageClasses = try strings(&r)
                case "runs": runs = try strings(&r)
                case "arrays": arrays = try lists(&r)
                case "template": template = try r.string()
                case "repoKind": repoKind = try r.string()
                case "dimensions": dimensions = try strings(&r)
                case "sections":
                    var out: [String: [Int]] = [:]
                    try r.object { k, r in
                        var list: [Int] = []
                        try r.array { list.append(try $0.int()) }
                        out[k] = list
                    }
                    sections = out
                default: try r.skip()
                }
            }
            try r.end()
            func need<T>(_ v: T?, _ key: String) throws -> T {
                guard let v else { throw JSONReader.Failure(message: "no \"\(key)\" in the header") }
                return v
            }
            return Header(meta: try need(meta, "meta"), tasks: try need(tasks, "tasks"), datasetTypes: try need(datasetTypes, "datasetTypes"),
                          taskLabels: try need(taskLabels, "taskLabels"), typeNames: try need(typeNames, "typeNames"),
                          storageClasses: try need(storageClasses, "storageClasses"), runs: try need(runs, "runs"),
                          arrays: try need(arrays, "arrays"), template: try need(template, "template"),
                          repoKind: try need(repoKind, "repoKind"), sections: try need(sections, "sections"), dimensions: dimensions)
        }
    }

    typealias Buffer = ByteWriter

    static func write(path: String, meta: [String: String], graph: QuantumGraph, plan: ArrayPlan, repo: Repository,
                      tasks: [String: TaskExecution]) throws {
        var elemStart = Buffer(), elemJob = Buffer()
        var n = 0
        for a in plan.arrays.indices {
            elemStart.u32(n)
            for j in plan.elements[a] { elemJob.u32(UInt32(bitPattern: j)); n += 1 }
        }
        elemStart.u32(n)
        var jobQStart = Buffer(), jobQ = Buffer()
        jobQStart.bytes.reserveCapacity(4 * (plan.clustered.jobs.count + 1))
        jobQ.bytes.reserveCapacity(4 * graph.quanta.count)
        n = 0
        for job in plan.clustered.jobs {
            jobQStart.u32(n)
            for q in job.quanta { jobQ.u32(UInt32(bitPattern: q)); n += 1 }
        }
        jobQStart.u32(n)
        var quanta = Buffer()
        quanta.bytes.reserveCapacity(40 * graph.quanta.count)
        for q in graph.quanta {
            quanta.uuid(q.id)
            for v in [q.task, q.dataID, q.inputStart, q.inputCount, q.outputStart, q.outputCount] { quanta.u32(UInt32(bitPattern: v)) }
        }
        var qIn = Buffer(), qOut = Buffer()
        qIn.bytes.reserveCapacity(4 * graph.quantumInputs.count)
        qOut.bytes.reserveCapacity(4 * graph.quantumOutputs.count)
        graph.quantumInputs.forEach { qIn.u32(UInt32(bitPattern: $0)) }
        graph.quantumOutputs.forEach { qOut.u32(UInt32(bitPattern: $0)) }
        let producers = graph.producers()
        var producer = Buffer(), qSlot = Buffer()
        producer.bytes.reserveCapacity(4 * graph.datasets.count)
        producers.forEach { producer.u32($0 < 0 ? none : UInt32($0)) }
        var slotOfJob = [UInt32](repeating: none, count: plan.clustered.jobs.count)
        var slot: UInt32 = 0
        for a in plan.arrays.indices { for j in plan.elements[a].map(Int.init) { if j >= 0 && j < slotOfJob.count { slotOfJob[j] = slot }; slot += 1 } }
        var slotOfQuantum = [UInt32](repeating: none, count: graph.quanta.count)
        for (j, job) in plan.clustered.jobs.enumerated() { for q in job.quanta { slotOfQuantum[Int(q)] = slotOfJob[j] } }
        qSlot.bytes.reserveCapacity(4 * graph.quanta.count)
        slotOfQuantum.forEach { qSlot.u32($0) }
        var datasets = Buffer(), locOff = Buffer(), locText = Buffer()
        datasets.bytes.reserveCapacity(32 * graph.datasets.count)
        var locations = 0
        for (d, ds) in graph.datasets.enumerated() {
            datasets.uuid(ds.id)
            datasets.u32(UInt32(bitPattern: ds.type))
            datasets.u32(UInt32(bitPattern: ds.dataID))
            datasets.u32(UInt32(bitPattern: ds.run))
            if producers[d] < 0, let loc = ds.location {
                datasets.u32(locations)
                locOff.u32(locText.bytes.count)
                locText.bytes.append(contentsOf: loc.utf8)
                locations += 1
            } else {
                datasets.u32(none)
            }
        }
        locOff.u32(locText.bytes.count)
        // Data IDs in the binary form the native graph uses, indexing the graph's dimensions (and
        // any a data ID uses beyond them, e.g. an LSST graph's).
        var dimensions = graph.universe
        var dimensionIndex = Dictionary(dimensions.enumerated().map { ($1, UInt32($0)) }, uniquingKeysWith: { a, _ in a })
        var didOff = Buffer(), didText = Buffer()
        didOff.bytes.reserveCapacity(4 * (graph.dataIDs.count + 1))
        for id in graph.dataIDs {
            didOff.u32(didText.bytes.count)
            for k in id.keys where dimensionIndex[k] == nil {
                dimensionIndex[k] = UInt32(dimensions.count)
                dimensions.append(k)
            }
            try id.encode(into: &didText, dimensions: dimensionIndex)
        }
        didOff.u32(didText.bytes.count)
        let sections: [(Section, Buffer)] = [(.elemStart, elemStart), (.elemJob, elemJob), (.jobQStart, jobQStart), (.jobQ, jobQ),
                                             (.quanta, quanta), (.qIn, qIn), (.qOut, qOut), (.datasets, datasets),
                                             (.locOff, locOff), (.locText, locText), (.didOff, didOff), (.didText, didText),
                                             (.producer, producer), (.qSlot, qSlot)]
        var offsets: [String: [Int]] = [:]
        var at = 0
        var table = Buffer()
        for (name, b) in sections {
            offsets[name.name] = [at, b.bytes.count]
            at += (b.bytes.count + 7) / 8 * 8
            b.bytes.withUnsafeBytes { raw in
                for lo in stride(from: 0, to: raw.count, by: chunkSize) {
                    var crc = CRC32()
                    crc.update(UnsafeRawBufferPointer(rebasing: raw[lo..<min(raw.count, lo + chunkSize)]))
                    table.u32(crc.value)
                }
            }
        }
        offsets[checksumTable] = [at, table.bytes.count]
        let header = Header(meta: meta, tasks: tasks.mapValues { [$0.executor.rawValue, $0.command, $0.builtin] },
                            datasetTypes: graph.datasetTypes.map { [$0.name, $0.dimensions.joined(separator: ","), $0.storageClass] },
                            taskLabels: graph.tasks.map(\.label), typeNames: graph.datasetTypes.map(\.name),
                            storageClasses: graph.datasetTypes.map(\.storageClass), runs: graph.runs,
                            arrays: plan.arrays.map { [$0.name, $0.label] }, template: repo.template, repoKind: repo.kind.rawValue,
                            sections: offsets, dimensions: dimensions)
        var head = Array(try JSONEncoder().encode(header))
        head += [UInt8](repeating: 0x20, count: (8 - head.count % 8) % 8)
        var lead = Buffer()
        lead.bytes = magic
        lead.u64(UInt64(head.count))
        lead.u32(chunkSize)
        lead.u32(headerChecksum(lead.bytes, head))
        let tmp = path + ".tmp-\(getpid())"
        unlink(tmp)
        guard FileManager.default.createFile(atPath: tmp, contents: nil), let h = FileHandle(forWritingAtPath: tmp) else {
            throw QuantaError(.io, "\(path): cannot create the snapshot; is the directory writable?")
        }
        do {
            try h.write(contentsOf: lead.bytes + head)
            for (_, b) in sections {
                try h.write(contentsOf: b.bytes)
                let pad = (8 - b.bytes.count % 8) % 8
                if pad > 0 { try h.write(contentsOf: [UInt8](repeating: 0, count: pad)) }
            }
            try h.write(contentsOf: table.bytes)
            try h.close()
        } catch {
            try? h.close()
            unlink(tmp)
            throw QuantaError(.io, "\(path): cannot write the snapshot (\(error)); is the disk full?")
        }
        chmod(tmp, 0o444)
        guard rename(tmp, path) == 0 else {
            throw QuantaError(.io, "\(path): cannot rename the snapshot into place (\(String(cString: strerror(errno))))")
        }
    }

    /// The header's name for the chunk table's [offset, length].
    static let checksumTable = "chunkCRCs"

    /// CRC-32 of the fixed fields before it (magic, header length, chunk size) and the JSON header.
    static func headerChecksum(_ lead: some Collection<UInt8>, _ json: UnsafeRawBufferPointer) -> UInt32 {
        var crc = CRC32()
        crc.update(Array(lead.prefix(prefix - 4)))
        crc.update(json)
        return crc.value
    }

    static func headerChecksum(_ lead: [UInt8], _ json: [UInt8]) -> UInt32 {
        json.withUnsafeBytes { headerChecksum(lead, $0) }
    }

    /// A memory-mapped snapshot. Every read is bounds-checked and every chunk it touches is
    /// verified against the chunk table on first use, so a damaged file is a `QuantaError` naming
    /// it, never a trap or other data.
    final class Reader {
        let path: String
        let data: Data
        let header: Header
        /// Absolute file offset and length of each section, by `Section` order: resolved once, not per read.
        let starts: [Int]
        let lengths: [Int]
        /// Each section's first entry in the chunk table.
        let firstChunk: [Int]
        let chunkSize: Int
        let table: Int
        /// Chunks already verified, one bit each over the whole table.
        private var verified: [UInt64]
        private let checksums: Bool
        /// False for a QSNAP003 file (planned before issue 13).
        let hasProducers: Bool
        /// Reads the binary data IDs; nil for QSNAP003/004, whose data IDs are JSON text.
        private var dataIDs: DataIDDecoder?

        convenience init(_ path: String) throws {
            guard FileManager.default.fileExists(atPath: path) else {
                throw QuantaError(.io, "\(path): no snapshot; is this a submit directory written by 'quanta plan'?")
            }
            let data: Data
            do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
                throw QuantaError(.io, "\(path): cannot open the snapshot (\(error.localizedDescription))")
            }
            try self.init(data: data, path: path)
        }

        /// `checksums: false` only for the fuzz target, so it reaches the checks behind them.
        init(data: Data, path: String, checksums: Bool = true) throws {
            self.path = path
            self.data = data
            self.checksums = checksums
            func damaged(_ what: String) -> QuantaError { QuantaError(.io, "\(path): damaged (\(what)); plan the submission again") }
            let v3 = data.count >= prefix && Array(data.prefix(8)) == SnapshotFile.previousMagic
            let v4 = data.count >= prefix && Array(data.prefix(8)) == SnapshotFile.v4Magic
            guard data.count >= prefix, v3 || v4 || Array(data.prefix(8)) == SnapshotFile.magic else {
                if data.count >= 8, Array(data.prefix(8)) == Array("QSNAP002".utf8) {
                    throw QuantaError(.io, "\(path): a snapshot from an older quanta (QSNAP002, without checksums); plan the submission again")
                }
                throw QuantaError(.io, "\(path): not a Quanta snapshot (or from another version); plan the submission again")
            }
            let (declared, chunk, recorded) = data.withUnsafeBytes {
                ($0.loadUnaligned(fromByteOffset: 8, as: UInt64.self).littleEndian,
                 Int($0.loadUnaligned(fromByteOffset: 16, as: UInt32.self).littleEndian),
                 $0.loadUnaligned(fromByteOffset: 20, as: UInt32.self).littleEndian)
            }
            guard declared <= UInt64(data.count - prefix) else { throw QuantaError(.io, "\(path): the snapshot is truncated; plan the submission again") }
            let len = Int(declared), base = prefix + len
            if checksums {
                let actual = data.withUnsafeBytes { SnapshotFile.headerChecksum($0[0..<prefix], UnsafeRawBufferPointer(rebasing: $0[prefix..<base])) }
                guard actual == recorded else { throw damaged("checksum mismatch in the header") }
            }
            guard chunk >= 8, chunk % 8 == 0, chunk <= 1 << 30 else { throw damaged("chunk size \(chunk)") }
            let header: Header
            do { header = try data.withUnsafeBytes { try Header.decode(UnsafeRawBufferPointer(rebasing: $0[prefix..<base])) } } catch {
                throw QuantaError(.io, "\(path): the snapshot header is unreadable (\(error)); plan the submission again")
            }
            /// [offset, length] relative to the sections' base, inside the file.
            func place(_ name: String) throws -> (Int, Int) {
                guard let at = header.sections[name], at.count == 2 else { throw damaged("no \(name) section") }
                guard at[0] >= 0, at[1] >= 0, at[0] <= data.count - base, at[1] <= data.count - base - at[0] else {
                    throw QuantaError(.io, "\(path): the snapshot is truncated; plan the submission again")
                }
                return (base + at[0], at[1])
            }
            var starts: [Int] = [], lengths: [Int] = [], firstChunk: [Int] = []
            var chunks = 0
            for section in Section.allCases {
                let (start, length) = v3 && section.sinceV4 ? (base, 0) : try place(section.name)
                starts.append(start)
                lengths.append(length)
                firstChunk.append(chunks)
                chunks += (length + chunk - 1) / chunk
            }
            let (table, tableLength) = try place(SnapshotFile.checksumTable)
            guard tableLength == 4 * chunks else { throw damaged("the chunk table has \(tableLength / 4) entries for \(chunks) chunks") }
            // What every reader relies on: record sizes, one offset more than entries, named arrays and types.
            func entries(_ s: Section, _ size: Int, atLeast: Int = 0) -> Bool { lengths[s.rawValue] % size == 0 && lengths[s.rawValue] / size >= atLeast }
            guard entries(.elemStart, 4, atLeast: header.arrays.count + 1), entries(.elemJob, 4), entries(.jobQStart, 4, atLeast: 1),
                  entries(.jobQ, 4), entries(.quanta, 40), entries(.qIn, 4), entries(.qOut, 4), entries(.datasets, 32),
                  entries(.locOff, 4, atLeast: 1), entries(.didOff, 4, atLeast: 1),
                  v3 || lengths[Section.producer.rawValue] == 4 * (lengths[Section.datasets.rawValue] / 32),
                  v3 || lengths[Section.qSlot.rawValue] == 4 * (lengths[Section.quanta.rawValue] / 40),
                  header.arrays.allSatisfy({ $0.count == 2 }), header.datasetTypes.allSatisfy({ $0.count == 3 }),
                  header.typeNames.count == header.storageClasses.count
            else { throw damaged("section sizes do not match the header") }
            self.header = header
            self.hasProducers = !v3
            if v3 || v4 {
                dataIDs = nil
            } else {
                guard let d = header.dimensions else { throw damaged("no dimension table in the header") }
                dataIDs = DataIDDecoder(dimensions: d)
            }
            self.starts = starts
            self.lengths = lengths
            self.firstChunk = firstChunk
            self.chunkSize = chunk
            self.table = table
            verified = [UInt64](repeating: 0, count: (chunks + 63) / 64)
        }

        func start(_ section: Section) -> Int { starts[section.rawValue] }
        func length(_ section: Section) -> Int { lengths[section.rawValue] }
        func count(_ section: Section, size: Int) -> Int { lengths[section.rawValue] / size }

        func damaged(_ section: Section, _ what: String) -> QuantaError {
            QuantaError(.io, "\(path): damaged (\(what) in section \(section.name)); plan the submission again")
        }

        /// Bytes `at..<at+n` of a section exist and their chunks match the table.
        func check(_ section: Section, _ at: Int, _ n: Int) throws {
            let s = section.rawValue
            guard at >= 0, n >= 0, at <= lengths[s] - n else { throw damaged(section, "a reference past the end") }
            guard checksums, n > 0 else { return }
            for k in (at / chunkSize)...((at + n - 1) / chunkSize) {
                let g = firstChunk[s] + k
                if verified[g >> 6] & (1 << UInt64(g & 63)) != 0 { continue }
                let lo = starts[s] + k * chunkSize, hi = starts[s] + min(lengths[s], (k + 1) * chunkSize)
                let (actual, expected) = data.withUnsafeBytes { raw in
                    var crc = CRC32()
                    crc.update(UnsafeRawBufferPointer(rebasing: raw[lo..<hi]))
                    return (crc.value, raw.loadUnaligned(fromByteOffset: table + 4 * g, as: UInt32.self).littleEndian)
                }
                guard actual == expected else { throw damaged(section, "checksum mismatch") }
                verified[g >> 6] |= 1 << UInt64(g & 63)
            }
        }

        func u32(_ section: Section, _ i: Int) throws -> Int {
            try check(section, 4 * i, 4)
            let off = start(section) + 4 * i
            return Int(data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: off, as: UInt32.self).littleEndian })
        }

        func uuid(_ section: Section, _ at: Int) throws -> UUID {
            try check(section, at, 16)
            let off = start(section) + at
            return data.withUnsafeBytes { UUID(uuid: $0.loadUnaligned(fromByteOffset: off, as: uuid_t.self)) }
        }

        /// Entry `i` of a text table: its offsets ordered and inside the text section.
        func text(_ offsets: Section, _ texts: Section, _ i: Int) throws -> String {
            let a = try u32(offsets, i), b = try u32(offsets, i + 1)
            guard a <= b else { throw damaged(offsets, "offsets out of order") }
            try check(texts, a, b - a)
            let off = start(texts)
            return String(decoding: data[(off + a)..<(off + b)], as: UTF8.self)
        }

        func dataID(_ i: Int) throws -> DataID {
            guard dataIDs != nil else {
                let json = try text(.didOff, .didText, i)
                do { return try DataID(json: json) } catch { throw damaged(.didText, "data ID #\(i) is not one") }
            }
            let a = try u32(.didOff, i), b = try u32(.didOff, i + 1)
            guard a <= b else { throw damaged(.didOff, "offsets out of order") }
            try check(.didText, a, b - a)
            let off = start(.didText)
            let id: DataID? = data.withUnsafeBytes { raw in
                var r = ByteReader(raw: raw, source: path, offset: off + a, end: off + b, section: Section.didText.name)
                guard let id = try? dataIDs!.decode(&r), r.atEnd else { return nil }
                return id
            }
            guard let id else { throw damaged(.didText, "data ID #\(i) is not one") }
            return id
        }

        var meta: SnapshotMeta { Snapshot.meta(from: header.meta) }

        /// The index below `limit` stored at entry `i` of a section (a cross-reference).
        func ref(_ section: Section, _ i: Int, below limit: Int, _ what: String) throws -> Int {
            let v = try u32(section, i)
            guard v < limit else { throw damaged(section, "\(what) #\(v) of \(limit)") }
            return v
        }

        /// Entries `i` and `i + 1` of a start table: an ordered range below `limit`.
        func range(_ section: Section, _ i: Int, limit: Int) throws -> Range<Int> {
            let a = try u32(section, i), b = try u32(section, i + 1)
            guard a <= b, b <= limit else { throw damaged(section, "a range outside its table") }
            return a..<b
        }

        func jobCount(array a: Int) throws -> Int {
            guard a >= 0, a < header.arrays.count else { throw damaged(.elemStart, "array #\(a) of \(header.arrays.count)") }
            return try range(.elemStart, a, limit: count(.elemJob, size: 4)).count
        }

        /// Quantum indices of element `index` of array `a`.
        func quanta(array a: Int, index: Int) throws -> [Int] {
            let elements = try range(.elemStart, a, limit: count(.elemJob, size: 4))
            guard index >= 0, index < elements.count else { throw damaged(.elemJob, "element \(index) of \(elements.count)") }
            let j = try ref(.elemJob, elements.lowerBound + index, below: count(.jobQStart, size: 4) - 1, "job")
            let quanta = count(.quanta, size: 40)
            return try range(.jobQStart, j, limit: count(.jobQ, size: 4)).map { try ref(.jobQ, $0, below: quanta, "quantum") }
        }

        func dataset(_ d: Int, repo: (template: String, butler: Bool)) throws -> DatasetSpec {
            let at = 32 * d
            let rec = at / 4 + 4  // u32 index of the type field
            let type = try ref(.datasets, rec, below: header.typeNames.count, "dataset type")
            let did = try u32(.datasets, rec + 1)
            let run = try ref(.datasets, rec + 2, below: header.runs.count, "run")
            let loc = try u32(.datasets, rec + 3)
            let id = try dataID(did)
            let path: String
            if loc != Int(SnapshotFile.none) {
                path = try text(.locOff, .locText, loc)
            } else if repo.butler {
                path = ""
            } else {
                path = Repository.expand(repo.template, run: header.runs[run], datasetType: header.typeNames[type],
                                         storageClass: header.storageClasses[type], dataID: id)
            }
            return DatasetSpec(id: try uuid(.datasets, at), type: header.typeNames[type], dataID: id, run: header.runs[run], path: path)
        }

        /// The quantum that makes dataset `d` and the job that runs it; nil for an overall input
        /// (or a QSNAP003 file, which does not record producers).
        func producer(ofDataset d: Int) throws -> ProducerRef? {
            guard hasProducers else { return nil }
            let quanta = count(.quanta, size: 40)
            let q = try u32(.producer, d)
            if q == Int(SnapshotFile.none) { return nil }
            guard q < quanta else { throw damaged(.producer, "quantum #\(q) of \(quanta)") }
            let slot = try ref(.qSlot, q, below: count(.elemJob, size: 4), "job slot")
            // The array whose element range holds the slot: elemStart is ordered (checked as read).
            var lo = 0, hi = header.arrays.count - 1
            while lo < hi {
                let mid = (lo + hi + 1) / 2
                if try u32(.elemStart, mid) <= slot { lo = mid } else { hi = mid - 1 }
            }
            let first = try u32(.elemStart, lo), end = try u32(.elemStart, lo + 1)
            guard first <= slot, slot < end else { throw damaged(.qSlot, "job slot #\(slot) outside every array") }
            let f = 10 * q + 4
            let task = try ref(.quanta, f, below: header.taskLabels.count, "task")
            return ProducerRef(quantum: try uuid(.quanta, 40 * q), task: header.taskLabels[task], dataID: try dataID(try u32(.quanta, f + 1)),
                               array: header.arrays[lo][0], index: slot - first)
        }

        func quantum(_ q: Int) throws -> QuantumSpec {
            let f = 10 * q + 4  // u32 index of the task field (40-byte records)
            let task = try ref(.quanta, f, below: header.taskLabels.count, "task")
            let did = try u32(.quanta, f + 1)
            return QuantumSpec(id: try uuid(.quanta, 40 * q), task: header.taskLabels[task], dataID: try dataID(did),
                               inputs: try datasets(.qIn, of: q), outputs: try datasets(.qOut, of: q))
        }

        /// Quantum `q`'s inputs (`.qIn`) or outputs (`.qOut`); the merge reads only the outputs.
        func datasets(_ refs: Section, of q: Int) throws -> [DatasetSpec] {
            let at = 10 * q + 4 + (refs == .qIn ? 2 : 4)
            let start = try u32(.quanta, at), n = try u32(.quanta, at + 1)
            guard n <= count(refs, size: 4) - start else { throw damaged(.quanta, "a dataset list outside \(refs.name)") }
            let repo = (header.template, header.repoKind == Repository.Kind.butler.rawValue)
            let datasets = count(.datasets, size: 32)
            return try (start..<(start + n)).map {
                let d = try ref(refs, $0, below: datasets, "dataset")
                var spec = try dataset(d, repo: repo)
                if refs == .qIn { spec.producer = try producer(ofDataset: d) }
                return spec
            }
        }

        /// Datasets made, directly or further down, from `datasets` (indices), by the graph's own
        /// references: one pass over the quanta per level, no dataset decoded.
        func downstream(of datasets: Set<Int>) throws -> [Int] {
            let quanta = count(.quanta, size: 40), all = count(.datasets, size: 32)
            func refs(_ section: Section, _ q: Int) throws -> Range<Int> {
                let at = 10 * q + 4 + (section == .qIn ? 2 : 4)
                let start = try u32(.quanta, at), n = try u32(.quanta, at + 1)
                guard n <= count(section, size: 4) - start else { throw damaged(.quanta, "a dataset list outside \(section.name)") }
                return start..<(start + n)
            }
            var stale = datasets, made: [Int] = [], done = [Bool](repeating: false, count: quanta)
            var changed = true
            while changed {
                changed = false
                for q in 0..<quanta where !done[q] {
                    guard try refs(.qIn, q).contains(where: { stale.contains(try ref(.qIn, $0, below: all, "dataset")) }) else { continue }
                    done[q] = true
                    changed = true
                    for r in try refs(.qOut, q) {
                        let d = try ref(.qOut, r, below: all, "dataset")
                        if stale.insert(d).inserted { made.append(d) }
                    }
                }
            }
            return made
        }

        /// The datasets with these UUIDs, by one scan of the dataset records.
        func datasetIndices(of ids: Set<UUID>) throws -> Set<Int> {
            var out = Set<Int>()
            for d in 0..<count(.datasets, size: 32) where ids.contains(try uuid(.datasets, 32 * d)) { out.insert(d) }
            return out
        }

        func taskLabel(ofQuantum q: Int) throws -> String {
            header.taskLabels[try ref(.quanta, 10 * q + 4, below: header.taskLabels.count, "task")]
        }
    }
}
