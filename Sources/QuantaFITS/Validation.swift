import CFITSIO
import Foundation
import QuantaCore

/// Checks one FITS output the way run-quantum does: it opens, every HDU reads to its end,
/// checksums verify when present, NaN fractions stay under the dataset type's limits.
public enum FITSValidation {
    /// One HDU as measured.
    public struct HDUReport: Sendable, Equatable {
        public var number: Int
        public var name: String?
        public var kind: FITSFile.HDUKind
        /// Pixels (images) or rows (tables).
        public var size: Int
        public var nanFraction: Double
        /// Tables: NaN fraction per floating-point column.
        public var columns: [String: Double]
        public var checksum: FITSFile.Checksum

        public var label: String { "HDU \(number)\(name.map { " (\($0))" } ?? "")" }
    }

    public struct Report: Sendable, Equatable {
        public var hdus: [HDUReport]

        /// `3 HDUs, checksums verified, worst NaN fraction 0.02 % (HDU 2 (VARIANCE))`.
        public var summary: String {
            let sums = hdus.filter { $0.checksum == .verified }.count
            let worst = hdus.max { $0.nanFraction < $1.nanFraction }
            return "\(hdus.count) HDU\(hdus.count == 1 ? "" : "s"), checksums verified in \(sums)"
                + (worst.map { ", worst NaN fraction \(percent($0.nanFraction)) (\($0.label))" } ?? "")
        }
    }

    /// A FITS file starts with `SIMPLE  =` (and so is checked, whatever its name).
    public static func isFITS(path: String) -> Bool {
        guard let h = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? h.close() }
        return (try? h.read(upToCount: 9)) == Data("SIMPLE  =".utf8)
    }

    /// Throws a `QuantaError` naming `what` (the dataset), the file, the HDU, the column and the value.
    @discardableResult
    /// `shownAs`: the name people know the file by (its final path while it is still a temporary file).
    public static func check(path: String, shownAs: String? = nil, datasetType: String, what: String,
                             checks: OutputChecks) throws -> Report {
        let shown = shownAs ?? path
        func fail(_ hdu: String, _ text: String) -> QuantaError {
            QuantaError(.execution, "invalid output \(what): \(shown): \(hdu): \(text)")
        }
        let file: FITSFile
        do { file = try FITSFile(open: path) } catch let e as QuantaError {
            throw QuantaError(.execution, "invalid output \(what): \(e.message.replacingOccurrences(of: path, with: shown))")
        }
        defer { try? file.close() }
        var report = Report(hdus: [])
        var pixels: [Float] = [], doubles: [Double] = [], bytes: [UInt8] = []
        var kind: FITSFile.HDUKind? = try file.currentHDU().kind
        while let k = kind {
            let number = report.hdus.count + 1
            var hdu = HDUReport(number: number, name: file.extensionName(), kind: k, size: 0, nanFraction: 0, columns: [:],
                                checksum: .absent)
            do {
                switch k {
                case .image:
                    let axes = try file.imageParameters().axes
                    let total = axes.isEmpty ? 0 : axes.reduce(1, *)
                    let chunk = 1 << 20
                    var nan = 0
                    var first = 0
                    while first < total {
                        let n = min(chunk, total - first)
                        try file.readPixels(first: first, count: n, into: &pixels)
                        nan += pixels.withUnsafeBufferPointer { qf_count_nan_float($0.baseAddress, n) }
                        first += n
                    }
                    hdu.size = total
                    hdu.nanFraction = total == 0 ? 0 : Double(nan) / Double(total)
                case .binaryTable, .asciiTable:
                    let shape = try file.tableShape()
                    hdu.size = shape.rows
                    let chunkRows = 65_536
                    var row = 0
                    while row < shape.rows {
                        try file.readRowBytes(firstRow: row, rows: min(chunkRows, shape.rows - row), into: &bytes)
                        row += chunkRows
                    }
                    for (c, name) in shape.columns.enumerated() {
                        let (ck, rep) = try file.columnKind(c + 1)
                        guard ck == .floating, shape.rows > 0 else { continue }
                        var nan = 0
                        var r = 0
                        while r < shape.rows {
                            let n = min(chunkRows, shape.rows - r)
                            try file.readDoubles(column: c + 1, firstRow: r, rows: n, repeat: rep, into: &doubles)
                            nan += doubles.withUnsafeBufferPointer { qf_count_nan_double($0.baseAddress, n * max(1, rep)) }
                            r += n
                        }
                        let fraction = Double(nan) / Double(shape.rows * max(1, rep))
                        hdu.columns[name] = fraction
                        hdu.nanFraction = max(hdu.nanFraction, fraction)
                    }
                }
                let sums = try file.verifyChecksum()
                hdu.checksum = sums.data == .wrong || sums.hdu == .wrong ? .wrong : sums.data == .verified ? .verified : sums.hdu
            } catch let e as QuantaError {
                throw fail(hdu.label, "cannot be read to its end — \(e.message.replacingOccurrences(of: path + ": ", with: ""))")
            }
            if hdu.checksum == .wrong {
                throw fail(hdu.label, "CHECKSUM/DATASUM do not match the contents (the file changed or was cut after it was written)")
            }
            if checks.enabled {
                if hdu.kind == .image, hdu.nanFraction > checks.maxImageNaNFraction {
                    throw fail(hdu.label, "\(percent(hdu.nanFraction)) of \(hdu.size) pixels are NaN, more than the \(percent(checks.maxImageNaNFraction)) allowed\(datasetType.isEmpty ? "" : " for \(datasetType)") (to accept it set \(ValidationConfig.key(datasetType, "maxImageNaNFraction")))")
                }
                for (name, fraction) in hdu.columns.sorted(by: { $0.key < $1.key }) {
                    if let limit = checks.columnLimit(name) {
                        if fraction > limit {
                            throw fail(hdu.label, "column \(name): \(percent(fraction)) of \(hdu.size) rows are NaN, more than the \(percent(limit)) allowed\(datasetType.isEmpty ? "" : " for \(datasetType)") (to accept it set \(ValidationConfig.key(datasetType, "columns")).\(name))")
                        }
                    } else if fraction >= 1 {
                        throw fail(hdu.label, "column \(name): all \(hdu.size) values are NaN (a column must not be entirely NaN; to accept it set \(ValidationConfig.key(datasetType, "columns")).\(name): 1)")
                    }
                }
            }
            report.hdus.append(hdu)
            do { kind = try file.nextHDU() } catch let e as QuantaError {
                throw fail("after \(hdu.label)", "the next HDU cannot be read — \(e.message.replacingOccurrences(of: path + ": ", with: ""))")
            }
        }
        return report
    }
}

/// `0.02 %`, `1 %`, `37.5 %`.
func percent(_ f: Double) -> String {
    let p = f * 100
    if p == p.rounded() { return "\(Int(p)) %" }
    return p < 0.1 ? String(format: "%.3f %%", p) : String(format: "%.2f %%", p)
}
