import ArgumentParser
import Foundation
import QuantaButler
import QuantaCore
import QuantaScheduler

struct Rerun: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one job in the foreground, from the shell, with the same script SLURM runs.",
        discussion: "Output goes to this terminal; the quanta's logs still go to logs/quanta/. Exit status 1 when a quantum failed.")

    @Argument(help: "Submit directory.")
    var dir: String

    @Option(name: .long, help: "The job as ARRAY:INDEX, e.g. isr:3 (see 'quanta status').")
    var job: JobReference

    @Flag(name: .long, help: "Redo it even if it already succeeded.")
    var force = false

    func run() throws {
        let d = SubmitDirectory(dir)
        let plan = try PlanDocument.read(d)
        guard let array = plan.arrays.first(where: { $0.name == job.array }) else {
            throw ValidationError("no array '\(job.array)' in \(d.root); arrays are \(plan.arrays.map(\.name).joined(separator: ", "))")
        }
        guard job.index < array.size else {
            throw ValidationError("array '\(array.name)' has elements 0-\(array.size - 1); \(job.index) is outside")
        }
        var env = ProcessInfo.processInfo.environment
        env["SLURM_ARRAY_TASK_ID"] = String(job.index)
        env["SLURM_SUBMIT_DIR"] = d.root
        env["QUANTA_BACKEND"] = "rerun"
        var o = Spawn.Options()
        o.workingDirectory = d.root
        let status = try Spawn.run("/bin/bash", [d.script(array: array.name)] + (force ? ["--force"] : []), environment: env, options: o)
        guard status.succeeded else {
            FileHandle.standardError.write(Data("job \(array.name):\(job.index) ended with \(status)\n".utf8))
            throw ExitCode(status.code)
        }
        if let m = try Manifest.read(path: d.manifest(array: array.name, index: job.index)), m.status == .failed {
            throw ExitCode(1)
        }
    }
}

struct Restart: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run again only the jobs that failed, were blocked, cancelled or never ran; then merge.")

    @Argument(help: "Submit directory.")
    var dir: String

    @Option(name: [.customShort("j"), .customLong("jobs")], help: "How many jobs run at once (default: the number of cores).")
    var parallel: Int?

    func run() throws {
        let d = SubmitDirectory(dir)
        let plan = try PlanDocument.read(d)
        let status = try SubmissionStatus.read(d)
        if status.elements.contains(where: { $0.state == .running }) {
            throw QuantaError(.usage, "\(d.root): jobs are still running; wait for them or stop them first")
        }
        var only: [String: Set<Int>] = [:]
        for e in status.elements where e.state != .succeeded { only[e.array, default: []].insert(e.index) }
        let count = only.values.reduce(0) { $0 + $1.count }
        print(count == 0 ? "Every job succeeded; running the merge only." : "Restarting \(count) jobs: \(only.keys.sorted().map { "\($0) ×\(only[$0]!.count)" }.joined(separator: ", "))")
        var o = LocalBackend.Options()
        o.parallel = parallel ?? ProcessInfo.processInfo.activeProcessorCount
        o.only = only
        let summary = try LocalRun.execute(d, plan: plan, options: o)
        let after = try SubmissionStatus.read(d)
        print(after.render(showElements: false), terminator: "")
        try LocalRun.finish(summary, complete: after.isComplete)
    }
}
