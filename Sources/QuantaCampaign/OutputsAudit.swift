import Foundation
import QuantaButler
import QuantaCore
import QuantaFITS
import QuantaRegistry

/// The `outputsValidated` gate: every dataset a step registered is read back from the repository
/// as it is now — the file is there, with the size and CRC-32 the registry holds, and a FITS file
/// reads to its end within its type's limits (the submit config's `validation`, as run-quantum held
/// it when the job wrote it). What a disk or a person did to the files since the jobs ran shows here.
struct OutputsAudit {
    struct Finding: Equatable {
        var dataset: String
        var problem: String
    }

    var checked = 0
    var bytes: Int64 = 0
    var findings: [Finding] = []

    /// Audits the datasets of `runs` in a Quanta repository, with each run's validation limits.
    static func run(repo: Repository, runs: [(run: String, validation: ValidationConfig)]) throws -> OutputsAudit {
        let registry = try repo.openRegistry()
        var audit = OutputsAudit()
        for (run, validation) in runs where try registry.collectionType(run) == .run {
            for d in try registry.datasets(runs: [run], types: nil) {
                let path = repo.absolutePath(d.path)
                let what = "\(d.datasetType) \(d.dataID) in \(run)"
                audit.checked += 1
                guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
                      let size = (attributes[.size] as? NSNumber)?.int64Value else {
                    audit.findings.append(Finding(dataset: what, problem: "\(path): missing"))
                    continue
                }
                audit.bytes += size
                if d.size >= 0, size != d.size {
                    audit.findings.append(Finding(dataset: what, problem: "\(path): \(size) bytes, registered with \(d.size)"))
                    continue
                }
                if let expected = d.checksum, let (_, crc) = try? CRC32.file(path), CRC32.text(crc) != expected {
                    audit.findings.append(Finding(dataset: what, problem: "\(path): checksum \(CRC32.text(crc)), registered with \(expected)"))
                    continue
                }
                if FITSValidation.isFITS(path: path) {
                    do {
                        try FITSValidation.check(path: path, datasetType: d.datasetType, what: "\(d.datasetType) \(d.dataID)",
                                                 checks: validation.checks(for: d.datasetType))
                    } catch let e as QuantaError {
                        audit.findings.append(Finding(dataset: what, problem: e.message))
                    }
                }
            }
        }
        return audit
    }

    var summary: String {
        let mb = String(format: "%.1f", Double(bytes) / 1e6)
        guard let first = findings.first else { return "all \(checked) outputs read back and valid (\(mb) MB)" }
        return "\(findings.count) of \(checked) outputs fail their checks, e.g. \(first.problem)"
    }
}
