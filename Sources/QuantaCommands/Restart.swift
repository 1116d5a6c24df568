import ArgumentParser
import Foundation
import QuantaCore
import QuantaScheduler
import QuantaSlurm

struct Restart: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run again only the jobs that failed, were blocked, cancelled or never ran; then merge.",
        discussion: "On SLURM they go out as new arrays with explicit index lists (more memory where memory ran out); locally they run here.")

    @Argument(help: "Submit directory.")
    var dir: String

    @Option(name: [.customShort("j"), .customLong("jobs")], help: "Local runs: how many jobs at once (default: the number of cores).")
    var parallel: Int?

    @OptionGroup var backendOption: BackendOption

    @Flag(name: .long, help: "SLURM: stay until the restart (and its retries) ended.")
    var wait = false

    @Option(name: .long, help: "Seconds between polls with --wait.")
    var poll = 2.0

    func run() throws {
        let ctx = try SubmissionArgument.open(dir)
        // Submitted to SLURM, even part-way: never run here what SLURM may hold.
        guard ctx.isOnSlurm else {
            var o = LocalBackend.Options()
            o.parallel = parallel ?? ProcessInfo.processInfo.activeProcessorCount
            let summary = try LocalRun.execute(ctx) { try ctx.restartLocally(o, note: { print($0) }, progress: $0) }
            let after = try SubmissionStatus.read(ctx.dir)
            print(after.render(showElements: false), terminator: "")
            try LocalRun.finish(summary, complete: after.isComplete)
            return
        }
        let backend = try backendOption.open()
        for n in try ctx.record().notes { StandardStreams.error("note: \(n)\n") }
        switch try ctx.restartOnSlurm(backend, note: { print($0) }) {
        case .completed(let round, let before, let adopted):
            if let adopted {
                print("Job \(adopted) was queued when the submission was interrupted, before its id was recorded: adopted, not submitted again.")
            }
            print("Round \(round.number) was interrupted after \(before) of \(round.arrays.count + 1) sbatch calls; submitted the rest:")
            for a in round.arrays.dropFirst(before) where a.jobID != adopted { print("  \(a.array)  job \(a.jobID)  --array=\(a.elements)") }
            print("  final job \(round.finalJob.map(String.init) ?? "-")\(round.finalJob == adopted ? " (adopted)" : "")")
            print("Already queued before the interruption: \(round.arrays.prefix(before).map { "\($0.array) job \($0.jobID)" }.joined(separator: ", "))")
        case .submitted(let round, let count):
            if count == 0 {
                print("Every job succeeded; submitted the final job (merge) only: job \(round.finalJob.map(String.init) ?? "-")")
            } else {
                print("Round \(round.number): resubmitted \(count) jobs as \(round.arrays.count) arrays with explicit index lists:")
                for a in round.arrays { print("  \(a.array)  job \(a.jobID)  --array=\(a.elements)  \(Units.memory(a.memoryMB))") }
                print("  final job \(round.finalJob.map(String.init) ?? "-")")
            }
        }
        guard wait else { return }
        let (after, _) = try ctx.waitShowingProgress(backend, poll: poll)
        print(after.render(showElements: false), terminator: "")
        if !after.isComplete { throw ExitCode(1) }
    }
}
