import ArgumentParser
import Foundation
import QuantaButler
import QuantaCore
import QuantaScheduler

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a submit directory with the local backend: the same scripts SLURM would run, as local processes.",
        discussion: "Dependencies are honoured as SLURM would; Ctrl-C cancels running jobs cleanly. The merge runs at the end.")

    @Argument(help: "Submit directory written by 'quanta plan'.")
    var dir: String

    @Option(name: [.customShort("j"), .customLong("jobs")], help: "How many jobs run at once (default: the number of cores).")
    var parallel: Int?

    @Flag(name: .long, help: "Redo jobs that already succeeded.")
    var force = false

    @Flag(name: .long, help: "Skip the merge at the end.")
    var noMerge = false

    func run() throws {
        let d = SubmitDirectory.named(dir)
        let plan = try PlanDocument.read(d)
        if force, let data = FileManager.default.contents(atPath: d.mergeSummary),
           let merged = try? JSONDecoder().decode(MergeResult.self, from: data), merged.registered + merged.alreadyRegistered > 0 {
            // Redoing every job would write over files the registry vouches for (issue 13).
            throw QuantaError(.usage, "\(d.root): the merge registered \(merged.registered + merged.alreadyRegistered) of its outputs; --force would rewrite them in place. Rerun one job with 'quanta rerun \(shellQuote(d.root)) --job ARRAY:INDEX --force --replace', or plan the graph again with a new --output-run")
        }
        var o = LocalBackend.Options()
        o.parallel = parallel ?? ProcessInfo.processInfo.activeProcessorCount
        o.runQuantumArguments = force ? ["--force"] : []
        o.runMerge = !noMerge
        let summary = try LocalRun.execute(d, plan: plan, options: o)
        let status = try SubmissionStatus.read(d)
        print(status.render(showElements: false), terminator: "")
        try LocalRun.finish(summary, complete: status.isComplete)
    }
}

/// Runs the local backend with live progress, shared by run, restart and demo.
enum LocalRun {
    /// Runs, then retries what the arrays' retry policies allow (as the final job does on SLURM:
    /// not for exit codes in retryUnlessExit, more memory after out-of-memory), then merges.
    static func execute(_ dir: SubmitDirectory, plan: PlanDocument, options: LocalBackend.Options) throws -> LocalBackend.Summary {
        if SlurmRecord.exists(dir) {
            // Its jobs may be queued or running under SLURM: running them here too would do the work twice.
            let file = FileManager.default.fileExists(atPath: dir.slurmRecord) ? dir.slurmRecord : dir.slurmJournal
            throw QuantaError(.usage, "\(file): this submission went to SLURM, which may hold its jobs; follow it with 'quanta status \(shellQuote(dir.root))', resume it with 'quanta restart \(shellQuote(dir.root))' (on SLURM), or 'quanta cancel' it first")
        }
        var o = options
        let merge = o.runMerge
        o.runMerge = false
        // Before the first job: its logs follow the site's umask.
        let site = Resources.plannedSite(dir, plan)
        var total = try executeOnce(dir, plan: plan, options: o)
        let arrays = Dictionary(uniqueKeysWithValues: plan.arrays.map { ($0.name, $0) })
        var round = 0
        while !total.interrupted {
            let decision = RetryPlanner.retries(status: try SubmissionStatus.read(dir), plan: plan, site: site)
            if decision.selection.isEmpty { break }
            round += 1
            for line in decision.lines { print("retry \(round): \(line)") }
            o.only = [:]
            o.memoryMB = [:]
            for (array, slots) in decision.selection {
                for (slot, memory) in slots {
                    let element = arrays[array]?.element(ofJob: slot) ?? slot
                    o.only![array, default: []].insert(element)
                    o.memoryMB[array, default: [:]][element] = memory
                }
            }
            let again = try executeOnce(dir, plan: plan, options: o)
            total.elements += again.elements
            total.exitedZero += again.exitedZero
            total.exitedNonZero += again.exitedNonZero
            total.skipped += again.skipped
            total.cancelled += again.cancelled
            total.interrupted = again.interrupted
            total.seconds += again.seconds
        }
        if merge && !total.interrupted {
            o.only = [:]
            o.runMerge = true
            let m = try executeOnce(dir, plan: plan, options: o)
            total.merge = m.merge
            total.seconds += m.seconds
        }
        return total
    }

    static func executeOnce(_ dir: SubmitDirectory, plan: PlanDocument, options: LocalBackend.Options) throws -> LocalBackend.Summary {
        let total = options.only?.values.reduce(0) { $0 + $1.count } ?? plan.arrays.reduce(0) { $0 + $1.size }
        let progress = Progress("running")
        var done = 0, failed = 0, running = 0
        let backend = LocalBackend(dir: dir, plan: plan)
        let summary = try backend.run(options) { event in
            switch event {
            case .started: running += 1
            case .ended(_, _, let s):
                running -= 1; done += 1
                if !s.succeeded { failed += 1 }
            case .skipped: done += 1
            case .mergeStarted: progress.stage("merging")
            case .mergeEnded: progress.done()
            case .interrupted(let sig, let n):
                progress.done()
                StandardStreams.error("\ninterrupted (signal \(sig)): stopping \(n) running jobs…\n")
            }
            progress.update(done, total, "\(running) running\(failed > 0 ? ", \(failed) exited non-zero" : "")")
        }
        progress.done()
        return summary
    }

    /// Exit status for scripts: 130 interrupted, 1 when the merge failed or some quanta did not succeed.
    static func finish(_ s: LocalBackend.Summary, complete: Bool) throws {
        if s.interrupted {
            StandardStreams.error("cancelled: \(s.cancelled) jobs stopped; 'quanta restart' continues where this stopped\n")
            throw ExitCode(130)
        }
        if let m = s.merge, !m.succeeded {
            StandardStreams.error("the merge failed (\(m)); see logs/\(SubmitDirectory.mergeLogStem(round: 0)).err, then run 'quanta merge' again\n")
            throw ExitCode(1)
        }
        if !complete { throw ExitCode(1) }
    }
}
