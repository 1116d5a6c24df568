import Foundation
import QuantaCore

public enum SlurmBackendKind: String, Sendable, Codable, CaseIterable {
    case libslurm, cli
}

public struct SlurmControllerConfig: Sendable, Equatable {
    public var version: String
    public var maxArraySize: Int
    public var maxJobCount: Int
    public var minJobAge: Int
    public var clusterName: String
}

/// What Quanta asks of SLURM. Two implementations pass the same tests: libslurm and the CLI.
public protocol SlurmBackend: Sendable, CustomStringConvertible {
    var kind: SlurmBackendKind { get }
    func controllerConfig() throws -> SlurmControllerConfig
    /// One array (or job) submitted; returns its job id.
    func submit(_ submission: SlurmSubmission) throws -> UInt32
    /// Every record of the jobs the filter keeps, in one query to the controller.
    func jobs(_ filter: SlurmJobFilter) throws -> [SlurmJobRecord]
    /// `123` (a whole array) or `123_4` (one element).
    func cancel(_ ids: [String]) throws
    func partitions() throws -> [SlurmPartitionInfo]
    func nodes() throws -> [SlurmNodeInfo]
}

/// Which jobs `SlurmBackend.jobs` returns.
public enum SlurmJobFilter: Sendable {
    /// These arrays/jobs.
    case ids(Set<UInt32>)
    /// Every job submitted with this working directory (`--chdir`): a submission's own.
    case workDirectory(String)

    /// Records carry `name` and `workDir` only when asked by work directory: status polls of
    /// 100,000 jobs need neither, and slurm-states.json keeps what they carry.
    var wantsIdentity: Bool {
        if case .workDirectory = self { return true }
        return false
    }

    func keeps(arrayJobID: UInt32, jobID: UInt32, workDir: () -> String?) -> Bool {
        switch self {
        case .ids(let ids): return ids.contains(arrayJobID) || ids.contains(jobID)
        case .workDirectory(let dir): return workDir() == dir
        }
    }
}

extension SlurmBackend {
    /// Every record of these arrays/jobs, in one query to the controller.
    public func jobs(arrayJobIDs: Set<UInt32>) throws -> [SlurmJobRecord] { try jobs(.ids(arrayJobIDs)) }
}

public enum SlurmEnvironment {
    /// The submitting environment without what belongs to the job we may be running in (the final
    /// job submits retries): `SLURM_*` and `SBATCH_*` would leak into, or configure, the new job.
    public static func forSubmission(_ extra: [String: String]) -> [String: String] {
        var env = ProcessInfo.processInfo.environment.filter { k, _ in
            k == "SLURM_CONF" || !(k.hasPrefix("SLURM_") || k.hasPrefix("SBATCH_") || k.hasPrefix("SALLOC_") || k.hasPrefix("SRUN_"))
        }
        env.merge(extra) { $1 }
        return env
    }
}

public enum SlurmBackends {
    /// `preference`: libslurm, cli, or nil/auto (libslurm when its version matches the controller's,
    /// else the CLI). `note` says which one is used and why.
    public static func select(_ preference: String?, note: (String) -> Void = { _ in }) throws -> any SlurmBackend {
        let choice = preference ?? ProcessInfo.processInfo.environment["QUANTA_SLURM_BACKEND"] ?? "auto"
        switch choice {
        case "cli":
            let cli = try CLISlurmBackend()
            note("SLURM backend: \(cli) (chosen)")
            return cli
        case "libslurm":
            let lib = LibSlurmBackend()
            let conf = try lib.controllerConfig()
            note("SLURM backend: \(lib), controller \(conf.version) (chosen)")
            return lib
        case "auto":
            let lib = LibSlurmBackend()
            do {
                let conf = try lib.controllerConfig()
                if majorMinor(conf.version) == majorMinor(LibSlurmBackend.libraryVersion) {
                    note("SLURM backend: \(lib), controller \(conf.version)")
                    return lib
                }
                let cli = try CLISlurmBackend()
                note("SLURM backend: \(cli) (libslurm \(LibSlurmBackend.libraryVersion) differs from the controller's \(conf.version))")
                return cli
            } catch let e as SlurmError {
                // libslurm cannot talk to this controller; the CLI may (other auth, other version).
                guard let cli = try? CLISlurmBackend(), (try? cli.controllerConfig()) != nil else {
                    throw QuantaError(.scheduler, "\(e.description); is slurmctld running and slurm.conf readable? (this machine's test cluster: sudo scripts/slurm-cluster.sh start)")
                }
                note("SLURM backend: \(cli) (libslurm: \(e.message))")
                return cli
            }
        default:
            throw QuantaError(.usage, "unknown SLURM backend '\(choice)'; use libslurm, cli or auto")
        }
    }

    static func majorMinor(_ v: String) -> String {
        v.split(separator: ".").prefix(2).joined(separator: ".")
    }
}
