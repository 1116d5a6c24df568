#if canImport(Glibc)
import Glibc
#endif
import Foundation
import QuantaCore

/// The binary snapshot (`snapshot.bin`, issue 6): the graph's own records at fixed widths plus
/// a job index, so plan writes it in one pass and a job reads only its own records through a
/// memory map. Layout: `QSNAP002`, u64 header length, a JSON header (meta, tasks, dataset types,
/// arrays, name tables, section offsets), then little-endian sections:
///   elemStart (u32 per array + 1) → elemJob (u32 per element: job)
///   jobQStart (u32 per job + 1) → jobQ (u32: quantum indices in run order)
///   quanta (40 B: uuid, task, dataID, inStart, inCount, outStart, outCount) → qIn, qOut (u32 dataset)
///   datasets (32 B: uuid, type, dataID, run, location or 0xFFFFFFFF)
///   locOff/locText (overall inputs' datastore paths), didOff/didText (data IDs as JSON)
/// Output paths are not stored: the repository's file template makes them when a job reads them.
/// Little-endian fields appended to bytes: the snapshot's sections and `status-cache.bin`.
struct ByteWriter {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u32(_ v: Int) { u32(UInt32(truncatingIfNeeded: v)) }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func uuid(_ id: UUID) { withUnsafeBytes(of: id.uuid) { bytes.append(contentsOf: $0) } }
}

enum SnapshotFile {
    static let magic = Array("QSNAP002".utf8)

    /// The sections, in file order; the header maps each name to [offset, length].
    enum Section: Int, CaseIterable {
        case elemStart, elemJob, jobQStart, jobQ, quanta, qIn, qOut, datasets, locOff, locText, didOff, didText
        var name: String { String(describing: self) }
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
            var template: String?, repoKind: String?, sections: [String: [Int]]?
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
                          repoKind: try need(repoKind, "repoKind"), sections: try need(sections, "sections"))
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
        var didOff = Buffer(), didText = Buffer()
        didOff.bytes.reserveCapacity(4 * (graph.dataIDs.count + 1))
        for id in graph.dataIDs {
            didOff.u32(didText.bytes.count)
            id.appendJSON(to: &didText.bytes)
        }
        didOff.u32(didText.bytes.count)
        let sections: [(Section, Buffer)] = [(.elemStart, elemStart), (.elemJob, elemJob), (.jobQStart, jobQStart), (.jobQ, jobQ),
                                             (.quanta, quanta), (.qIn, qIn), (.qOut, qOut), (.datasets, datasets),
                                             (.locOff, locOff), (.locText, locText), (.didOff, didOff), (.didText, didText)]
        var offsets: [String: [Int]] = [:]
        var at = 0
        for (name, b) in sections {
            offsets[name.name] = [at, b.bytes.count]
            at += (b.bytes.count + 7) / 8 * 8
        }
        let header = Header(meta: meta, tasks: tasks.mapValues { [$0.executor, $0.command, $0.builtin] },
                            datasetTypes: graph.datasetTypes.map { [$0.name, $0.dimensions.joined(separator: ","), $0.storageClass] },
                            taskLabels: graph.tasks.map(\.label), typeNames: graph.datasetTypes.map(\.name),
                            storageClasses: graph.datasetTypes.map(\.storageClass), runs: graph.runs,
                            arrays: plan.arrays.map { [$0.name, $0.label] }, template: repo.template, repoKind: repo.kind.rawValue,
                            sections: offsets)
        var head = Array(try JSONEncoder().encode(header))
        head += [UInt8](repeating: 0x20, count: (8 - head.count % 8) % 8)
        let tmp = path + ".tmp-\(getpid())"
        unlink(tmp)
        guard FileManager.default.createFile(atPath: tmp, contents: nil), let h = FileHandle(forWritingAtPath: tmp) else {
            throw QuantaError(.io, "\(path): cannot create the snapshot; is the directory writable?")
        }
        do {
            var lead = magic
            withUnsafeBytes(of: UInt64(head.count).littleEndian) { lead.append(contentsOf: $0) }
            try h.write(contentsOf: lead + head)
            for (_, b) in sections {
                try h.write(contentsOf: b.bytes)
                let pad = (8 - b.bytes.count % 8) % 8
                if pad > 0 { try h.write(contentsOf: [UInt8](repeating: 0, count: pad)) }
            }
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

    /// A memory-mapped snapshot.
    struct Reader {
        let path: String
        let data: Data
        let header: Header
        /// Absolute file offset of each section, by `Section` order: resolved once, not per read.
        let starts: [Int]

        init(_ path: String) throws {
            guard FileManager.default.fileExists(atPath: path) else {
                throw QuantaError(.io, "\(path): no snapshot; is this a submit directory written by 'quanta plan'?")
            }
            do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
                throw QuantaError(.io, "\(path): cannot open the snapshot (\(error.localizedDescription))")
            }
            self.path = path
            guard data.count >= 16, Array(data.prefix(8)) == SnapshotFile.magic else {
                throw QuantaError(.io, "\(path): not a Quanta snapshot (or from another version); plan the submission again")
            }
            let len = Int(data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self).littleEndian })
            guard len <= data.count - 16 else { throw QuantaError(.io, "\(path): the snapshot is truncated; plan the submission again") }
            do { header = try data.withUnsafeBytes { try Header.decode(UnsafeRawBufferPointer(rebasing: $0[16..<(16 + len)])) } } catch {
                throw QuantaError(.io, "\(path): the snapshot header is unreadable (\(error)); plan the submission again")
            }
            let base = 16 + len
            var starts: [Int] = []
            for section in Section.allCases {
                guard let at = header.sections[section.name], at.count == 2 else {
                    throw QuantaError(.io, "\(path): the snapshot has no \(section.name) section; plan the submission again")
                }
                guard base + at[0] + at[1] <= data.count else { throw QuantaError(.io, "\(path): the snapshot is truncated; plan the submission again") }
                starts.append(base + at[0])
            }
            self.starts = starts
        }

        func start(_ section: Section) -> Int { starts[section.rawValue] }

        func u32(_ section: Section, _ i: Int) -> Int {
            let off = start(section) + 4 * i
            return Int(data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: off, as: UInt32.self).littleEndian })
        }

        func uuid(_ section: Section, _ at: Int) -> UUID {
            let off = start(section) + at
            return data.withUnsafeBytes { raw in
                let b = UnsafeRawBufferPointer(rebasing: raw[off..<(off + 16)])
                return UUID(uuid: (b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]))
            }
        }

        func text(_ offsets: Section, _ texts: Section, _ i: Int) -> String {
            let a = u32(offsets, i), b = u32(offsets, i + 1)
            let off = start(texts)
            return String(decoding: data[(off + a)..<(off + b)], as: UTF8.self)
        }

        var meta: SnapshotMeta { Snapshot.meta(from: header.meta) }

        func jobCount(array a: Int) -> Int { u32(.elemStart, a + 1) - u32(.elemStart, a) }

        /// Quantum indices of element `index` of array `a`.
        func quanta(array a: Int, index: Int) -> [Int] {
            let j = u32(.elemJob, u32(.elemStart, a) + index)
            return (u32(.jobQStart, j)..<u32(.jobQStart, j + 1)).map { u32(.jobQ, $0) }
        }

        func dataset(_ d: Int, repo: (template: String, butler: Bool)) throws -> DatasetSpec {
            let at = 32 * d
            let rec = at / 4 + 4  // u32 index of the type field
            let type = u32(.datasets, rec), did = u32(.datasets, rec + 1), run = u32(.datasets, rec + 2), loc = u32(.datasets, rec + 3)
            let id = try DataID(json: text(.didOff, .didText, did))
            let path: String
            if loc != Int(SnapshotFile.none) {
                path = text(.locOff, .locText, loc)
            } else if repo.butler {
                path = ""
            } else {
                path = Repository.expand(repo.template, run: header.runs[run], datasetType: header.typeNames[type],
                                         storageClass: header.storageClasses[type], dataID: id)
            }
            return DatasetSpec(id: uuid(.datasets, at), type: header.typeNames[type], dataID: id, run: header.runs[run], path: path)
        }

        func quantum(_ q: Int) throws -> QuantumSpec {
            let f = 10 * q + 4  // u32 index of the task field (40-byte records)
            let task = u32(.quanta, f), did = u32(.quanta, f + 1)
            let inStart = u32(.quanta, f + 2), inCount = u32(.quanta, f + 3), outStart = u32(.quanta, f + 4), outCount = u32(.quanta, f + 5)
            let repo = (header.template, header.repoKind == Repository.Kind.butler.rawValue)
            return QuantumSpec(id: uuid(.quanta, 40 * q), task: header.taskLabels[task], dataID: try DataID(json: text(.didOff, .didText, did)),
                               inputs: try (inStart..<(inStart + inCount)).map { try dataset(u32(.qIn, $0), repo: repo) },
                               outputs: try (outStart..<(outStart + outCount)).map { try dataset(u32(.qOut, $0), repo: repo) })
        }

        /// Quantum `q`'s predicted outputs only (the merge reads these for every job).
        func outputs(ofQuantum q: Int) throws -> [DatasetSpec] {
            let f = 10 * q + 4
            let outStart = u32(.quanta, f + 4), outCount = u32(.quanta, f + 5)
            let repo = (header.template, header.repoKind == Repository.Kind.butler.rawValue)
            return try (outStart..<(outStart + outCount)).map { try dataset(u32(.qOut, $0), repo: repo) }
        }

        func taskLabel(ofQuantum q: Int) -> String { header.taskLabels[u32(.quanta, 10 * q + 4)] }
    }
}
