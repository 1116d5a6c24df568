import ArgumentParser
import Foundation
import QuantaDemo
import QuantaButler
import QuantaCore
import QuantaPostgres

/// Benchmark helpers (hidden): what scripts/bench.sh needs that no user command does.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmark helpers (scripts/bench.sh).", shouldDisplay: false,
        subcommands: [SimulateRun.self, PostgresInsert.self])

    struct PostgresInsert: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "postgres-insert", abstract: "Datasets per second into PostgreSQL in UNNEST batches (issue 18, work in progress).")
        @Option(name: .long, help: "postgresql://user@host:port/database (password: PGPASSWORD or ~/.pgpass).") var url: String
        @Option(name: .long) var count = 150_000
        @Option(name: .long) var batch = 5_000

        func run() throws {
            let target = try PostgresTarget(url: url)
            final class Box: @unchecked Sendable { var result: Result<(seconds: Double, inserted: Int), Error>? }
            let box = Box(), done = DispatchSemaphore(value: 0)
            let (count, batch) = (self.count, self.batch)
            Task {
                do { box.result = .success(try await PostgresInsertBench.run(target, count: count, batch: batch)) } catch { box.result = .failure(error) }
                done.signal()
            }
            done.wait()
            let (seconds, n) = try box.result!.get()
            print("\(target): \(n) datasets in \(String(format: "%.2f", seconds)) s = \(Int(Double(n) / seconds)) datasets/s (batches of \(batch))")
        }
    }

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
