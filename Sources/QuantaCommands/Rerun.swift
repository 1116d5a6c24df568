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
