import ArgumentParser
import Foundation
import QuantaCore
import QuantaExec

/// `run-quantum`: one array element. Exit 0 when its outcome (succeeded, failed or blocked) is in
/// the manifest; non-zero only when it could not get that far.
@main
struct RunQuantumCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run-quantum",
        abstract: "Run one job of a submit directory: its quanta, output checks, manifest.")

    @Option(name: .long, help: "Submit directory.") var submitDir: String
    @Option(name: .long, help: "Array name (see plan.txt).") var array: String
    @Option(name: .long, help: "Element index (default: $SLURM_ARRAY_TASK_ID).") var index: Int?
    @Flag(name: .long, help: "Run even if this job already succeeded.") var force = false

    func run() throws {
        let env = ProcessInfo.processInfo.environment
        guard let i = index ?? env["SLURM_ARRAY_TASK_ID"].flatMap({ Int($0) }) else {
            throw ValidationError("no element index: pass --index or set SLURM_ARRAY_TASK_ID")
        }
        let runner = JobRunner(dir: SubmitDirectory(submitDir), array: array, index: i, force: force, environment: env)
        do {
            switch try runner.run(log: { print($0); fflush(nil) }) {
            case .alreadySucceeded(let m):
                print("job \(array):\(i) already succeeded (attempt \(m.attempt), \(m.endedAt)); nothing to do — pass --force to redo it")
            case .ran(let m):
                let n = m.quanta.count
                let c = Dictionary(grouping: m.quanta, by: \.status).mapValues(\.count)
                print("job \(array):\(i) \(m.status.rawValue): \(c[.succeeded] ?? 0)/\(n) succeeded, \(c[.failed] ?? 0) failed, \(c[.blocked] ?? 0) blocked; manifest \(SubmitDirectory(submitDir).manifest(array: array, index: i))")
                if let e = m.firstError { FileHandle.standardError.write(Data("\(e)\n".utf8)) }
            }
        } catch let e as QuantaError {
            FileHandle.standardError.write(Data("run-quantum: \(e.message)\n".utf8))
            throw ExitCode(2)
        }
    }
}
