#if canImport(Glibc)
import Glibc
#endif
import Foundation
import QuantaButler
import QuantaCore
import QuantaFITS

/// run-quantum's data checks, for every executor: each output that is a FITS file (by its first
/// bytes, whatever its name) is read to the end and held to its dataset type's limits.
enum OutputValidation {
    /// Nil when `file` is not FITS; else a summary for the quantum's log. A failed check moves the
    /// file into `rejectDir` (so nothing downstream or the merge takes it) and throws naming where.
    static func check(file: String, shownAs final: String, type: String, dataID: DataID, config: ValidationConfig,
                      rejectDir: String) throws -> String? {
        guard FITSValidation.isFITS(path: file) else { return nil }
        let started = Date()
        do {
            let report = try FITSValidation.check(path: file, shownAs: final, datasetType: type, what: "\(type) {\(dataID)}",
                                                  checks: config.checks(for: type))
            return "\(type) {\(dataID)}: FITS checked in \(String(format: "%.3f", Date().timeIntervalSince(started))) s: \(report.summary)"
        } catch let e as QuantaError {
            throw QuantaError(.execution, e.message + "; " + reject(file, shownAs: final, into: rejectDir))
        }
    }

    /// Moves a rejected output aside under the name of its final path (`file` may be a temporary
    /// name); says where it went (or that it was deleted).
    static func reject(_ file: String, shownAs final: String? = nil, into dir: String) -> String {
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let target = dir + "/" + URL(fileURLWithPath: final ?? file).lastPathComponent
        unlink(target)
        if rename(file, target) == 0 { return "the file is kept for inspection as \(target)" }
        unlink(file)
        return "the file was deleted (it could not be moved to \(dir): \(String(cString: strerror(errno))))"
    }
}
