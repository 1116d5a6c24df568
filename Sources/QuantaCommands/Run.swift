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
        let ctx = try SubmissionArgument.open(dir)
        var o = LocalBackend.Options()
        o.parallel = parallel ?? ProcessInfo.processInfo.activeProcessorCount
        o.force = force
        o.runMerge = !noMerge
        let summary = try LocalRun.execute(ctx) { try ctx.runLocally(o, progress: $0) }
        let status = try SubmissionStatus.read(ctx.dir)
        print(status.render(showElements: false), terminator: "")
        try LocalRun.finish(summary, complete: status.isComplete)
    }
}

/// The local backend with live progress, shared by run, restart, submit and demo: `body` does the
/// work (`Submission.runLocally`, `restartLocally`); this draws the progress line it reports.
enum LocalRun {
    static func execute(_ submission: Submission,
                        _ body: (_ progress: (Submission.LocalProgress) -> Void) throws -> LocalBackend.Summary) throws -> LocalBackend.Summary {
        let progress = Progress("running")
        var total = 0, done = 0, failed = 0, running = 0
        let summary = try body { report in
            switch report {
            case .pass(let n):
                progress.done()
                total = n; done = 0; failed = 0; running = 0
                return
            case .retry(let round, let line):
                progress.done()
                print("retry \(round): \(line)")
                return
            case .event(let event):
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
            }
            progress.update(done, total, "\(running) running, \(max(0, total - done - running)) pending\(failed > 0 ? ", \(failed) exited non-zero" : "")")
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
