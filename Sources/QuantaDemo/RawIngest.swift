#if canImport(Glibc)
import Glibc
#endif
import Foundation
import QuantaExec
import QuantaRegistry
import QuantaButler
import QuantaCore
import QuantaFITS

/// `quanta repo ingest`: raw and calibration FITS files become datasets, their data IDs read from
/// the primary header (INSTRUME, OBSTYPE, EXPID, DETECTOR, FILTER, DAYOBS).
public enum RawIngest {
    /// What a header says a file is.
    public struct Described: Sendable {
        public var path: String
        public var datasetType: String
        public var dataID: DataID
        public var run: String
    }

    public static let rawDimensions = ["instrument", "exposure", "detector", "band", "day_obs"]

    public static func runs(instrument: String) -> (raw: String, calib: String) { ("\(instrument)/raw/all", "\(instrument)/calib") }

    /// Reads the header keys; errors name the file and the missing key.
    public static func describe(_ path: String) throws -> Described {
        let f = try FITSFile(open: path)
        defer { try? f.close() }
        func string(_ key: String) throws -> String {
            do { return try f.readString(key: key).trimmingCharacters(in: .whitespaces) } catch {
                throw QuantaError(.io, "\(path): the primary header has no \(key); ingest needs INSTRUME, OBSTYPE, DETECTOR (and EXPID, FILTER, DAYOBS for science frames, FILTER for flats)")
            }
        }
        func integer(_ key: String) throws -> Int64 {
            do { return try f.readInteger(key: key) } catch {
                throw QuantaError(.io, "\(path): the primary header has no whole-number \(key); ingest needs it to make the data ID")
            }
        }
        let instrument = try string("INSTRUME")
        guard !instrument.isEmpty else { throw QuantaError(.io, "\(path): INSTRUME is empty") }
        let type = try string("OBSTYPE").lowercased()
        let detector = try integer("DETECTOR")
        let runs = runs(instrument: instrument)
        switch type {
        case "science", "object":
            return Described(path: path, datasetType: "raw", dataID: DataID([
                ("instrument", .string(instrument)), ("exposure", .int(try integer("EXPID"))), ("detector", .int(detector)),
                ("band", .string(try string("FILTER"))), ("day_obs", .int(try integer("DAYOBS"))),
            ]), run: runs.raw)
        case "bias", "zero":
            return Described(path: path, datasetType: "bias", dataID: DataID([("instrument", .string(instrument)), ("detector", .int(detector))]),
                             run: runs.calib)
        case "flat":
            return Described(path: path, datasetType: "flat", dataID: DataID([
                ("instrument", .string(instrument)), ("detector", .int(detector)), ("band", .string(try string("FILTER"))),
            ]), run: runs.calib)
        default:
            throw QuantaError(.io, "\(path): OBSTYPE '\(type)' is not one Quanta ingests (science, bias, flat)")
        }
    }

    public struct Summary: Sendable {
        public var added: [String: Int] = [:]
        public var alreadyThere = 0
        public var runs: Set<String> = []
    }

    /// Copies each file into the datastore (temporary name, then rename) and registers it, in one
    /// registry transaction at the end: a failure leaves nothing half-registered. Ingesting the same
    /// file again is a no-op (the UUID is derived from type, run and data ID).
    public static func ingest(_ files: [String], into repo: Repository, progress: (Int, Int) -> Void = { _, _ in }) throws -> Summary {
        guard repo.kind == .quanta else {
            throw QuantaError(.usage, "\(repo.root) is an LSST butler repository; ingest raws there with 'butler ingest-raws'")
        }
        let described = try files.map(describe)
        var seen: [String: String] = [:]
        for d in described {
            let key = "\(d.datasetType) \(d.dataID.json)"
            if let other = seen[key] {
                throw QuantaError(.io, "\(d.path) and \(other) are both \(d.datasetType) {\(d.dataID)}; ingest one of them")
            }
            seen[key] = d.path
        }
        let registry = try repo.openRegistry()
        var summary = Summary()
        var records: [DatasetRecord] = []
        for (k, d) in described.enumerated() {
            let rel = repo.relativePath(run: d.run, datasetType: d.datasetType, storageClass: "ExposureF", dataID: d.dataID)
            let target = repo.absolutePath(rel)
            try FileManager.default.createDirectory(atPath: URL(fileURLWithPath: target).deletingLastPathComponent().path,
                                                    withIntermediateDirectories: true)
            if URL(fileURLWithPath: d.path).standardizedFileURL.path != target {
                let tmp = target + ".tmp-\(getpid())"
                unlink(tmp)
                do { try FileManager.default.copyItem(atPath: d.path, toPath: tmp) } catch {
                    throw QuantaError(.io, "\(d.path): cannot copy into the datastore (\(tmp)): \(error.localizedDescription)")
                }
                guard rename(tmp, target) == 0 else {
                    unlink(tmp)
                    throw QuantaError(.io, "cannot rename \(tmp) to \(target): \(String(cString: strerror(errno)))")
                }
            }
            let (size, crc) = try CRC32.file(target)
            records.append(DatasetRecord(id: stableID(d).lowercased, datasetType: d.datasetType, run: d.run, dataID: d.dataID.json,
                                         path: rel, size: size, checksum: CRC32.text(crc)))
            summary.runs.insert(d.run)
            progress(k + 1, described.count)
        }
        for d in Set(described.map(\.datasetType)).sorted() {
            let dims = d == "raw" ? rawDimensions : d == "bias" ? ["instrument", "detector"] : ["instrument", "detector", "band"]
            try registry.registerDatasetType(name: d, dimensions: dims, storageClass: "ExposureF")
        }
        for run in summary.runs.sorted() { try registry.registerCollection(run, type: .run) }
        let added = try registry.insert(records)
        summary.alreadyThere = records.count - added
        for r in records { summary.added[r.datasetType, default: 0] += 1 }
        return summary
    }

    /// A UUID fixed by (type, run, data ID): two FNV-1a hashes, version nibble 8 (custom).
    static func stableID(_ d: Described) -> UUID {
        func fnv(_ s: String, _ seed: UInt64) -> UInt64 {
            var h = seed
            for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
            return h
        }
        let text = "\(d.datasetType)\u{1}\(d.run)\u{1}\(d.dataID.json)"
        let a = fnv(text, 0xcbf29ce484222325), b = fnv(text, 0x84222325cbf29ce4)
        var bytes = withUnsafeBytes(of: (a.bigEndian, b.bigEndian)) { Array($0) }
        bytes[6] = (bytes[6] & 0x0f) | 0x80
        bytes[8] = (bytes[8] & 0x3f) | 0x80
        return UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                           bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
    }

    /// `quanta check-raws`: every file opened and read to its end (checksums, NaN); returns the bad ones.
    public static func check(_ files: [String], progress: (Int, Int) -> Void = { _, _ in }) -> [(path: String, problem: String)] {
        var bad: [(String, String)] = []
        for (k, f) in files.enumerated() {
            do {
                _ = try describe(f)
                try FITSValidation.check(path: f, datasetType: "raw", what: "raw", checks: OutputChecks())
            } catch let e as QuantaError {
                bad.append((f, e.message.replacingOccurrences(of: "invalid output raw: ", with: "")))
            } catch {
                bad.append((f, "\(error)"))
            }
            progress(k + 1, files.count)
        }
        return bad
    }

    /// FITS files named on the command line: files as given, directories searched for *.fits / *.fit / *.fits.fz.
    public static func expand(_ paths: [String]) throws -> [String] {
        var out: [String] = []
        for p in paths {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir) else {
                throw QuantaError(.usage, "\(p): no such file or directory")
            }
            if isDir.boolValue {
                let found = (FileManager.default.enumerator(atPath: p)?.allObjects as? [String] ?? [])
                    .filter { $0.hasSuffix(".fits") || $0.hasSuffix(".fit") || $0.hasSuffix(".fits.fz") }
                    .sorted().map { p + "/" + $0 }
                out += found
            } else {
                out.append(p)
            }
        }
        return out
    }
}
