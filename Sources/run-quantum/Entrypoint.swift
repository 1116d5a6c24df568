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
    @Option(name: .long, help: "Whole-node packing: jobs per element (set by the sbatch script).") var pack: Int?
    @Option(name: .long, help: "Jobs in the packed array.") var packJobs: Int?
    @Option(name: .long, help: "Cpus per packed job.") var packCpus: Int = 1
    @Option(name: .long, help: "Memory limit for this job in MB (default: SLURM's --mem).") var memoryMb: Int?
    @Option(name: .long, help: "Run on these cpus only, e.g. 0,1.") var cpusAllowed: String?

    func run() throws {
        let env = ProcessInfo.processInfo.environment
        ChildSupervisor.installSignalHandlers()
        if let list = cpusAllowed { PackedElement.restrict(to: list.split(separator: ",").compactMap { Int($0) }) }
        if index == nil, let k = pack, k > 1, let element = env["SLURM_ARRAY_TASK_ID"].flatMap({ Int($0) }) {
            // One element, several jobs side by side; each writes its own manifest.
            let nodeMemory = ChildSupervisor.slurmMemoryLimit(env)
            let packed = PackedElement(dir: SubmitDirectory(submitDir), array: array, element: element, jobsPerElement: k,
                                       jobCount: packJobs ?? k * (element + 1), cpusPerJob: packCpus,
                                       memoryPerJobMB: memoryMb ?? (nodeMemory.map { $0 / k } ?? 0),
                                       extraArguments: force ? ["--force"] : [])
            let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
            let ok = try packed.run(executable: exe, environment: env) { print($0); fflush(nil) }
            if !ok { throw ExitCode(2) }
            return
        }
        guard let i = index ?? env["SLURM_ARRAY_TASK_ID"].flatMap({ Int($0) }) else {
            throw ValidationError("no element index: pass --index or set SLURM_ARRAY_TASK_ID")
        }
        let runner = JobRunner(dir: SubmitDirectory(submitDir), array: array, index: i, force: force, environment: env,
                               memoryLimitMB: memoryMb.flatMap { $0 > 0 ? $0 : nil })
        do {
            switch try runner.run(log: { print($0); fflush(nil) }) {
            case .alreadySucceeded(let m):
                print("job \(array):\(i) already succeeded (attempt \(m.attempt), \(m.endedAt)); nothing to do — pass --force to redo it")
            case .ran(let m):
                let n = m.quanta.count
                let c = Dictionary(grouping: m.quanta, by: \.status).mapValues(\.count)
                print("job \(array):\(i) \(m.status.rawValue): \(c[.succeeded] ?? 0)/\(n) succeeded, \(c[.failed] ?? 0) failed, \(c[.blocked] ?? 0) blocked; manifest \(SubmitDirectory(submitDir).manifest(array: array, index: i))")
                if let e = m.firstError { FileHandle.standardError.write(Data("\(e)\n".utf8)) }
                // SLURM's SIGTERM: say so in the exit status too (the manifest is written).
                if let sig = ChildSupervisor.terminatedBy { throw ExitCode(128 + sig) }
            }
        } catch let e as QuantaError {
            FileHandle.standardError.write(Data("run-quantum: \(e.message)\n".utf8))
            throw ExitCode(2)
        }
    }
}
