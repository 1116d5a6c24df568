import ArgumentParser
import Foundation
import QuantaCore
import QuantaFITS

/// `quanta fits check|info`: run-quantum's output checks from the shell, on any FITS file.
struct FitsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fits", abstract: "Check FITS files the way run-quantum checks outputs.",
        subcommands: [Check.self, Info.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Read every HDU to its end, verify checksums, and hold NaN fractions to the limits.",
            discussion: "Exit status 1 when any file fails. Limits come from --config's 'validation' section (defaults: images 1 % NaN, no column entirely NaN).")
        @Argument(help: "FITS files.") var files: [String]
        @Option(name: .long, help: "Submit config whose 'validation' limits apply.") var config: String?
        @Option(name: .long, help: "Dataset type whose limits apply (default: the defaults).") var type: String?

        func run() throws {
            let validation = try config.map { try SubmitConfig.load(path: $0).validation } ?? ValidationConfig()
            let datasetType = type ?? ""
            var bad = 0
            for f in files {
                let started = Date()
                do {
                    let r = try FITSValidation.check(path: f, datasetType: datasetType, what: type ?? "file",
                                                     checks: validation.checks(for: datasetType))
                    print("ok       \(f): \(r.summary) (\(String(format: "%.3f", Date().timeIntervalSince(started))) s)")
                } catch let e as QuantaError {
                    bad += 1
                    print("INVALID  \(e.message)")
                }
            }
            if files.count > 1 { print("\(files.count - bad) of \(files.count) files valid") }
            if bad > 0 { throw ExitCode(1) }
        }
    }

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a FITS file's HDUs: kind, name, size, NaN fraction, checksum.")
        @Argument(help: "A FITS file.") var file: String

        func run() throws {
            let f = try FITSFile(open: file)
            defer { try? f.close() }
            var rows: [[String]] = []
            var kind: FITSFile.HDUKind? = try f.currentHDU().kind
            while let k = kind {
                let number = rows.count + 1
                var shape = "", columns = ""
                switch k {
                case .image:
                    let p = try f.imageParameters()
                    shape = p.axes.isEmpty ? "no data" : p.axes.map(String.init).joined(separator: "×") + " BITPIX \(p.bitpix)"
                case .binaryTable, .asciiTable:
                    let s = try f.tableShape()
                    shape = "\(s.rows) rows"
                    columns = s.columns.joined(separator: ",")
                }
                let sums = try f.verifyChecksum()
                rows.append([String(number), k == .image ? "image" : "table", f.extensionName() ?? "", shape,
                             "\(sums.data)/\(sums.hdu)", columns])
                kind = try f.nextHDU()
            }
            TextTable.render(header: ["HDU", "kind", "EXTNAME", "size", "datasum/checksum", "columns"], rows: rows).forEach { print($0) }
        }
    }
}
