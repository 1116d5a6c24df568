import ArgumentParser
import Foundation
import QuantaDemo
import QuantaButler
import QuantaCore

/// Benchmark helpers (hidden): what scripts/bench.sh needs that no user command does.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmark helpers (scripts/bench.sh).", shouldDisplay: false,
        subcommands: [SimulateRun.self])

    struct SimulateRun: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "simulate-run",
            abstract: "Mark every job of a submission succeeded without running it (for status/merge benchmarks).",
            discussion: """
            Writes each output as a small file and the manifest run-quantum would write for a trivial
            command, through the same Manifest writer. Nothing runs: use it only to measure status
            and merge at sizes too large to run here.
            """)
        @Argument(help: "Submit directory (from quanta plan).") var submitDir: String

        func run() throws {
            let dir = SubmitDirectory(submitDir)
            let started = Date()
            StandardStreams.error("bench simulate-run: nothing is executed; manifests and outputs are written as a trivial command would leave them\n")
            let (jobs, outputs) = try SimulatedRun.run(dir) { done, total in
                StandardStreams.error("  \(done)/\(total) jobs\n")
            }
            print("\(dir.root): \(jobs) jobs marked succeeded, \(outputs) outputs written (\(String(format: "%.1f", Date().timeIntervalSince(started))) s)")
        }
    }
}
