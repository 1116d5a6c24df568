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

    func run() throws {
        let ctx = try SubmissionArgument.open(dir)
        // Submitted to SLURM, even part-way: never run here what SLURM may hold.
        if SlurmRecord.exists(ctx.dir) {
            try restartOnSlurm(ctx)
            return
        }
        let d = ctx.dir
        let plan = ctx.plan
        let status = try SubmissionStatus.read(d)
        if status.elements.contains(where: { $0.state == .running }) {
            throw QuantaError(.usage, "\(d.root): jobs are still running; wait for them or stop them first")
        }
        let arrays = Dictionary(uniqueKeysWithValues: plan.arrays.map { ($0.name, $0) })
        var only: [String: Set<Int>] = [:], jobs: [String: Set<Int>] = [:]
        var count = 0
        for e in status.elements where e.state != .succeeded {
            only[e.array, default: []].insert(arrays[e.array]?.element(ofJob: e.index) ?? e.index)
            jobs[e.array, default: []].insert(e.index)
            count += 1
        }
        try LSSTClobber.prepare(d, plan: plan, site: Resources.plannedSite(d, plan), jobs: jobs)
        print(count == 0 ? "Every job succeeded; running the merge only." : "Restarting \(count) jobs: \(only.keys.sorted().map { "\($0) ×\(only[$0]!.count)" }.joined(separator: ", "))")
        var o = LocalBackend.Options()
        o.parallel = parallel ?? ProcessInfo.processInfo.activeProcessorCount
        o.only = only
        let summary = try LocalRun.execute(d, plan: plan, options: o)
        let after = try SubmissionStatus.read(d)
        print(after.render(showElements: false), terminator: "")
        try LocalRun.finish(summary, complete: after.isComplete)
    }

    func restartOnSlurm(_ ctx: Submission) throws {
        let backend = try backendOption.open()
        var record = try ctx.record()
        for note in record.notes { FileHandle.standardError.write(Data("note: \(note)\n".utf8)) }
        if let cut = record.interrupted, !record.cancelled {
            // `quanta submit` (or a final job) was killed mid-round: finish that round, waiting on what it queued.
            let before = cut.arrays.count
            let adopted = try ctx.submitter(backend).completeRound(&record)
            let round = record.rounds.last!
            if let adopted {
                print("Job \(adopted) was queued when the submission was interrupted, before its id was recorded: adopted, not submitted again.")
            }
            print("Round \(round.number) was interrupted after \(before) of \(round.arrays.count + 1) sbatch calls; submitted the rest:")
            for a in round.arrays.dropFirst(before) where a.jobID != adopted { print("  \(a.array)  job \(a.jobID)  --array=\(a.elements)") }
            print("  final job \(round.finalJob.map(String.init) ?? "-")\(round.finalJob == adopted ? " (adopted)" : "")")
            print("Already queued before the interruption: \(round.arrays.prefix(before).map { "\($0.array) job \($0.jobID)" }.joined(separator: ", "))")
            return try waitIfAsked(ctx, backend)
        }
        let (status, view) = try ctx.status(backend)
        // Jobs of a round that was cancelled part-way and never submitted are not SLURM's: they go in this round.
        let busy = status.elements.filter { ($0.state == .running || $0.state == .pending) && $0.slurmJob != nil }
        if !busy.isEmpty || view?.isActive == true {
            throw QuantaError(.usage, "\(ctx.dir.root): \(busy.count) jobs are still pending or running (and the final job has not ended); wait, or 'quanta cancel' first")
        }
        let selection = RetryPlanner.restart(status: status, plan: ctx.plan, site: ctx.site)
        let count = selection.values.reduce(0) { $0 + $1.count }
        record.cancelled = false
        try LSSTClobber.prepare(ctx.dir, plan: ctx.plan, site: ctx.site, jobs: selection.mapValues { Set($0.keys) })
        let number = (record.rounds.last?.number ?? 0) + 1
        try ctx.submitter(backend).submitRound(&record, number: number, reason: "restart", selection: selection)
        let round = record.rounds.last!
        if count == 0 {
            print("Every job succeeded; submitted the final job (merge) only: job \(round.finalJob.map(String.init) ?? "-")")
        } else {
            print("Round \(number): resubmitted \(count) jobs as \(round.arrays.count) arrays with explicit index lists:")
            for a in round.arrays { print("  \(a.array)  job \(a.jobID)  --array=\(a.elements)  \(Units.memory(a.memoryMB))") }
            print("  final job \(round.finalJob.map(String.init) ?? "-")")
        }
        try waitIfAsked(ctx, backend)
    }

    func waitIfAsked(_ ctx: Submission, _ backend: any SlurmBackend) throws {
        guard wait else { return }
        let (after, _) = try ctx.waitShowingProgress(backend, poll: 2)
        print(after.render(showElements: false), terminator: "")
        if !after.isComplete { throw ExitCode(1) }
    }
}
