import ArgumentParser
import Foundation
import QuantaCore
import QuantaScheduler
import QuantaSlurm

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Per task label: quanta succeeded, no work, failed, blocked, running, pending; per array: elements by state.",
        discussion: "Exit status 1 when a quantum failed, was blocked or cancelled, or the merge failed (--exit-zero: 0), 0 otherwise, also while jobs still run.")

    @Argument(help: "Submit directory.")
    var dir: String

    @Flag(name: .long, help: "Machine-readable output.")
    var json = false

    @Flag(name: .long, help: "List every job that needs attention, not just the first 20.")
    var all = false

    @Flag(name: .long, help: "Read every manifest afresh instead of through status-cache.bin (which trusts unchanged manifest directories).")
    var fresh = false

    @Flag(name: .long, help: "Exit 0 whenever the status could be read (by default: 1 when a quantum failed, was blocked or cancelled).")
    var exitZero = false

    @Option(name: .long, help: ArgumentHelp("Look again every SECONDS until nothing runs any more: the table redrawn on a terminal, one summary line otherwise.", valueName: "seconds"))
    var watch: Double?

    @OptionGroup var backendOption: BackendOption

    func run() throws {
        let ctx = try SubmissionArgument.open(dir)
        // Submitted to SLURM: one query for every job's state, merged with the manifests.
        var backend: (any SlurmBackend)?
        var backendError: String?
        if SlurmRecord.exists(ctx.dir) {
            do { backend = try backendOption.open(quiet: true) } catch { backendError = "\(error)" }
        }
        if let every = watch {
            guard every > 0, !json else { throw ValidationError("--watch takes a number of seconds above 0, and no --json") }
            let terminal = isatty(1) == 1
            while true {
                let (s, _) = try ctx.status(backend, backendError: backendError, cached: true, detail: terminal ? 20 : 0, groupFailures: terminal)
                guard s.active else { break }
                if terminal {
                    print("\u{1B}[H\u{1B}[2J" + s.render(showElements: false) + "\n(every \(Progress.duration(every)); Ctrl-C stops watching, not the jobs)")
                } else {
                    print(Timestamp.iso8601(Date()) + "  " + s.oneLine)
                }
                fflush(nil)
                usleep(UInt32(every * 1_000_000))
            }
        }
        // A terminal shows 20 jobs that need attention; --all and --json get every job's quanta.
        let (s, _) = try ctx.status(backend, backendError: backendError, cached: !fresh, detail: json || all ? .max : 20)
        if json {
            print(String(decoding: try JSONEncoder.pretty.encode(s), as: UTF8.self))
        } else {
            print(s.render(showElements: all), terminator: "")
        }
        // For scripts: `quanta status DIR && next-step` stops where something did not succeed.
        let bad = ["failed", "blocked", "cancelled"].reduce(0) { $0 + (s.quanta[$1] ?? 0) }
        if (bad > 0 || s.mergeFailed) && !exitZero { throw ExitCode(1) }
    }
}
