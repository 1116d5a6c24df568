import ArgumentParser
import Foundation
import QuantaRegistry
import QuantaButler
import QuantaCore
import QuantaScheduler

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Register what the jobs wrote into the repository; safe to rerun (already registered datasets are skipped).")

    @Argument(help: "Submit directory.")
    var dir: String

    @Option(name: .long, help: "Datasets per transaction.")
    var batchSize = 10_000

    @Option(name: .long, help: "Pause between transactions, in milliseconds, to go easy on a shared registry.")
    var batchPauseMs = 0

    func validate() throws {
        guard batchSize > 0 else { throw ValidationError("--batch-size must be at least 1") }
    }

    func run() throws {
        let ctx = try SubmissionArgument.open(dir)
        let progress = Progress("merging")
        let r = try ctx.merge(batchSize: batchSize, pauseMilliseconds: batchPauseMs) { done, total in
            progress.update(done, total)
            if !progress.enabled { print("committed \(done)/\(total) datasets"); fflush(nil) }
        }
        progress.done()
        Self.report(r)
        try Self.failIfRefused(r)
    }

    /// A manifest record the plan did not predict means something wrote where it should not:
    /// what matched the plan is registered, and the command still fails so nobody misses it.
    static func failIfRefused(_ r: MergeResult) throws {
        guard !r.refused.isEmpty else { return }
        StandardStreams.error("quanta merge: refused \(r.refused.count) manifest records the plan does not predict (listed above and in merge-summary.json); nothing else was affected\n")
        throw ExitCode(1)
    }

    /// What a person reads after a merge (also the final job's log).
    static func report(_ r: MergeResult) {
        if ProcessInfo.processInfo.environment["QUANTA_TIMINGS"] == "1", let phases = r.phaseSeconds {
            let order = ["setup", "manifests and file checks", "status cache", "collect", "registry", "status cache wait"]
            StandardStreams.error("timings: \(order.compactMap { k in phases[k].map { "\(k) \(String(format: "%.2f", $0)) s" } }.joined(separator: ", "))\n")
        }
        print("Merged into run \(r.outputRun)\(r.output.map { " (chain \($0))" } ?? ""): \(r.registered) datasets registered, \(r.alreadyRegistered) already registered, from \(r.quantaSucceeded) succeeded quanta in \(String(format: "%.2f", r.seconds)) s")
        for (title, list) in [("refused (not what the plan predicts; not registered)", r.refused), ("failed quanta", r.quantaFailed), ("blocked quanta", r.quantaBlocked),
                              ("jobs without a manifest (never ran or were killed)", r.jobsWithoutManifest),
                              ("outputs missing on disk (not registered)", r.missingFiles)] where !list.isEmpty {
            print("\(list.count) \(title):")
            for line in list.prefix(20) { print("  \(line)") }
            if list.count > 20 { print("  … \(list.count - 20) more in merge-summary.json") }
        }
    }
}
