import ArgumentParser
import Foundation
import QuantaDemo
import QuantaRegistry
import QuantaButler
import QuantaCore
import QuantaExec

/// `quanta check-raws`: find corrupt raws before anyone submits.
struct CheckRaws: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-raws",
        abstract: "Open every raw, read it to the end and list the corrupt ones (exit 1 if any).",
        discussion: "Give a repository (all its raw, bias and flat datasets are checked) or FITS files and directories.")
    @Argument(help: "A repository, or FITS files / directories.") var paths: [String]
    @Option(name: .long, help: "With a repository: only datasets in these collections.") var collections: [String] = []

    func run() throws {
        var files: [String] = []
        for p in paths {
            if FileManager.default.fileExists(atPath: p + "/" + Repository.configName) {
                let repo = try Repository(root: p)
                let registry = try repo.openRegistry()
                let runs = collections.isEmpty ? nil : try registry.resolveRuns(collections)
                files += try registry.datasets(runs: runs, types: ["raw", "bias", "flat"]).map { repo.absolutePath($0.path) }
            } else {
                files += try RawIngest.expand([p])
            }
        }
        guard !files.isEmpty else { throw ValidationError("no raws found in \(paths.joined(separator: " "))") }
        let started = Date()
        let progress = Progress("checking raws")
        let bad = RawIngest.check(files) { progress.update($0, $1) }
        progress.done()
        let secs = String(format: "%.2f", Date().timeIntervalSince(started))
        if bad.isEmpty {
            print("\(files.count) raws checked in \(secs) s: all readable to the end")
            return
        }
        print("\(files.count) raws checked in \(secs) s: \(bad.count) corrupt")
        for b in bad { print("  \(b.problem.hasPrefix(b.path) ? b.problem : b.path + ": " + b.problem)") }
        throw ExitCode(1)
    }
}
