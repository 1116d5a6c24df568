import Foundation
import QuantaCore
import QuantaExec

/// `run-quantum`: one array element. Exit 0 when its outcome (succeeded, failed or blocked) is in
/// the manifest; non-zero only when it could not get that far.
///
/// It starts once per job, so its arguments are read by hand: swift-argument-parser's reflection
/// was ~4 ms of every job's start-up (`quanta` keeps it).
@main
struct RunQuantumCommand {
    static let usage = """
        usage: run-quantum --submit-dir DIR --array NAME [--index N] [--force]
                           [--pack K --pack-jobs N --pack-cpus C] [--memory-mb MB] [--cpus-allowed LIST]

        Run one job of a submit directory: its quanta, output checks, manifest.

          --submit-dir DIR      submit directory
          --array NAME          array name (see plan.txt)
          --index N             element index (default: $SLURM_ARRAY_TASK_ID)
          --force               run even if this job already succeeded
          --pack K              whole-node packing: jobs per element (set by the sbatch script)
          --pack-jobs N         jobs in the packed array
          --pack-cpus C         cpus per packed job (default 1)
          --memory-mb MB        memory limit for this job in MB (default: SLURM's --mem)
          --cpus-allowed LIST   run on these cpus only, e.g. 0,1
          --version             print the version
        """

    var submitDir = ""
    var array = ""
    var index: Int?
    var force = false
    var pack: Int?
    var packJobs: Int?
    var packCpus = 1
    var memoryMb: Int?
    var cpusAllowed: String?

    static func main() {
        var command = RunQuantumCommand()
        do {
            try command.parse(Array(CommandLine.arguments.dropFirst()))
            try command.run()
        } catch let e as ExitCode {
            exit(e.code)
        } catch let e as UsageError {
            StandardStreams.error("run-quantum: \(e.message)\n\(usage)\n")
            exit(64)
        } catch let e as QuantaError {
            StandardStreams.error("run-quantum: \(e.message)\n")
            exit(2)
        } catch {
            StandardStreams.error("run-quantum: \(error)\n")
            exit(2)
        }
    }

    struct ExitCode: Error { let code: Int32; init(_ code: Int32) { self.code = code } }
    struct UsageError: Error { let message: String }

    mutating func parse(_ arguments: [String]) throws {
        // `--name=value` is the same as `--name value`.
        let args = arguments.flatMap { a -> [String] in
            guard a.hasPrefix("--"), let eq = a.firstIndex(of: "=") else { return [a] }
            return [String(a[..<eq]), String(a[a.index(after: eq)...])]
        }
        var i = 0
        func value(_ name: String) throws -> String {
            i += 1
            guard i < args.count, !args[i].hasPrefix("--") else { throw UsageError(message: "\(name) needs a value") }
            return args[i]
        }
        func number(_ name: String) throws -> Int {
            let v = try value(name)
            guard let n = Int(v) else { throw UsageError(message: "\(name) takes a whole number, not '\(v)'") }
            return n
        }
        while i < args.count {
            let arg = args[i]
            switch arg {
            case "-h", "--help": print(Self.usage); throw ExitCode(0)
            case "--version": print("run-quantum \(QuantaVersion.number)"); throw ExitCode(0)
            case "--submit-dir": submitDir = try value(arg)
            case "--array": array = try value(arg)
            case "--index": index = try number(arg)
            case "--force": force = true
            case "--pack": pack = try number(arg)
            case "--pack-jobs": packJobs = try number(arg)
            case "--pack-cpus": packCpus = try number(arg)
            case "--memory-mb": memoryMb = try number(arg)
            case "--cpus-allowed": cpusAllowed = try value(arg)
            default: throw UsageError(message: "unknown argument '\(arg)'")
            }
            i += 1
        }
        if submitDir.isEmpty { throw UsageError(message: "missing --submit-dir") }
        if array.isEmpty { throw UsageError(message: "missing --array") }
    }

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
            throw UsageError(message: "no element index: pass --index or set SLURM_ARRAY_TASK_ID")
        }
        let runner = JobRunner(dir: SubmitDirectory(submitDir), array: array, index: i, force: force, environment: env,
                               memoryLimitMB: memoryMb.flatMap { $0 > 0 ? $0 : nil })
        switch try runner.run(log: { print($0); fflush(nil) }) {
        case .alreadySucceeded(let m):
            print("job \(array):\(i) already succeeded (attempt \(m.attempt), \(m.endedAt)); nothing to do — pass --force to redo it")
        case .ran(let m):
            let n = m.quanta.count
            let c = Dictionary(grouping: m.quanta, by: \.status).mapValues(\.count)
            print("job \(array):\(i) \(m.status.rawValue): \(c[.succeeded] ?? 0)/\(n) succeeded, \(c[.noWork].map { "\($0) no work, " } ?? "")\(c[.failed] ?? 0) failed, \(c[.blocked] ?? 0) blocked; manifest \(SubmitDirectory(submitDir).manifest(array: array, index: i))")
            if let e = m.firstError { StandardStreams.error("\(e)\n") }
            // SLURM's SIGTERM: say so in the exit status too (the manifest is written).
            if let sig = ChildSupervisor.terminatedBy { throw ExitCode(128 + sig) }
        }
    }
}
