import ArgumentParser
import Foundation
import QuantaRegistry
import QuantaButler
import QuantaCore
import QuantaScheduler

struct Rerun: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one job in the foreground, from the shell, with the same script SLURM runs.",
        discussion: "Output goes to this terminal; the quanta's logs still go to logs/quanta/. Exit status 1 when a quantum failed.")

    @Argument(help: "Submit directory.")
    var dir: String

    @Option(name: .long, help: "The job as ARRAY:INDEX (as 'quanta status' lists it) or LABEL:INDEX, e.g. isr:3.")
    var job: JobReference

    @Flag(name: .long, help: "Redo it even if it already succeeded.")
    var force = false

    @Flag(name: .long, help: "Allow replacing outputs the merge already registered: their registry records follow the new files, and the datasets made from the old ones downstream are listed.")
    var replace = false

    @Flag(name: .long, help: "Then run again every job with a quantum made, directly or further down, from this job's outputs (in run order, as with --force), so nothing downstream stays made from the old files. Registered outputs among them need --replace.")
    var downstream = false

    @OptionGroup var backendOption: BackendOption

    func run() throws {
        let ctx = try SubmissionArgument.open(dir)
        let (array, slot) = try ctx.job(job.array, job.index)
        if array.name != job.array { print("job \(job.array):\(job.index) is \(array.name):\(slot)") }
        let r = try ctx.rerun(array: array, slot: slot, force: force, replace: replace, downstream: downstream,
                              backend: { try? backendOption.open(quiet: true) }, note: { StandardStreams.output($0 + "\n") })
        guard r.exit.succeeded else {
            StandardStreams.error("job \(array.name):\(slot) ended with \(r.exit)\n")
            throw ExitCode(r.exit.code)
        }
        if let changed = r.replaced {
            print("replaced \(changed) registered datasets; their registry records now carry the new files' size and checksum")
        }
        if !r.stale.isEmpty {
            print("\(r.stale.count) registered datasets downstream were made from the old files and may now be stale (--downstream runs their jobs again):")
            for line in r.stale.prefix(20) { print("  \(line)") }
            if r.stale.count > 20 { print("  … \(r.stale.count - 20) more") }
        }
        if downstream {
            let replaced = r.downstream.reduce(0) { $0 + ($1.rerun.replaced ?? 0) }
            let ok = r.downstream.filter(\.rerun.succeeded)
            print("downstream: \(ok.count) of \(r.downstream.count + r.notRun.count) jobs run again\(replaced > 0 ? ", \(replaced) registered datasets replaced" : "")")
            if let bad = r.downstream.last, !bad.rerun.succeeded {
                StandardStreams.error("job \(bad.job) ended \(bad.rerun.exit.succeeded ? bad.rerun.manifest?.status.rawValue ?? "without a manifest" : "with \(bad.rerun.exit)"); not run after it: \(r.notRun.isEmpty ? "none" : r.notRun.map(\.description).joined(separator: ", ")); fix it, then 'quanta rerun \(dir) --job \(bad.job) --force --replace --downstream'\n")
                throw ExitCode(1)
            }
            if !r.notRun.isEmpty {
                StandardStreams.error("job \(array.name):\(slot) did not succeed; the \(r.notRun.count) jobs downstream were not run again\n")
                throw ExitCode(1)
            }
        }
        if r.manifest?.status == .failed { throw ExitCode(1) }
    }
}
