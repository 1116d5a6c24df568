import Foundation

/// Where everything lives inside one submission's directory.
public struct SubmitDirectory: Sendable {
    public let root: String

    public init(_ root: String) {
        self.root = URL(fileURLWithPath: root).standardizedFileURL.path
    }

    /// A submission a person names: the directory itself, or a bps submit directory (the run id
    /// `bps submit` prints) whose Quanta submission is in its `quanta/` (the plugin puts it there).
    public static func named(_ path: String) -> SubmitDirectory {
        let d = SubmitDirectory(path)
        let inner = SubmitDirectory(d.root + "/quanta")
        return !d.exists && inner.exists ? inner : d
    }

    public var planJSON: String { root + "/plan.json" }
    public var planText: String { root + "/plan.txt" }
    /// The binary snapshot (submissions planned before it have `snapshot.sqlite`, still read).
    public var snapshot: String { root + "/snapshot.bin" }
    public var scripts: String { root + "/scripts" }
    public var submitScript: String { root + "/submit.sh" }
    public var logs: String { root + "/logs" }
    public var manifests: String { root + "/manifests" }
    /// Append-only record of what the local backend started and how it ended.
    public var localEvents: String { root + "/local-events.log" }
    public var mergeSummary: String { root + "/merge-summary.json" }
    /// Why the last merge failed (`MergeFailure`); removed by the next merge that succeeds.
    public var mergeError: String { root + "/merge-error.json" }
    /// What status last read of each manifest (`ManifestCache`); safe to delete.
    public var statusCache: String { root + "/status-cache.bin" }
    /// The site config the submission was planned for, as it was then.
    public var siteCopy: String { root + "/site.yaml" }

    public func script(array: String) -> String { "\(scripts)/\(array).sbatch" }
    /// Outputs of one attempt that failed their checks, kept for a person to look at.
    public func rejected(array: String, index: Int, attempt: Int) -> String { "\(root)/rejected/\(array).\(index).\(attempt)" }
    /// The latest manifest of a job; the merge reads only these.
    public func manifest(array: String, index: Int) -> String { "\(manifestDirectory(array: array))/\(Self.manifestName(index: index))" }
    /// An array's manifests, and a job's file name in it (status checks them relative to the directory).
    public func manifestDirectory(array: String) -> String { "\(manifests)/\(array)" }
    public static func manifestName(index: Int) -> String { "\(index).json" }
    /// Every attempt keeps its own manifest.
    public func attemptManifest(array: String, index: Int, attempt: Int) -> String {
        "\(attemptDirectory(array: array))/\(index).\(attempt).json"
    }
    /// An attempt's claim on its number, made (O_EXCL) before it runs and removed once its manifest
    /// exists: two runs of one job started together (SLURM and a local restart) never share a number.
    public func attemptClaim(array: String, index: Int, attempt: Int) -> String {
        "\(attemptDirectory(array: array))/\(index).\(attempt).claim"
    }
    public func attemptDirectory(array: String) -> String { "\(manifests)/\(array)/attempts" }
    /// The inverse of `attemptManifest`/`attemptClaim`: the attempt number in `3.2.json` or
    /// `3.2.claim` for job 3; nil for other files and other jobs.
    public static func attemptNumber(fileName: String, index: Int, claims: Bool) -> Int? {
        let prefix = "\(index)."
        guard fileName.hasPrefix(prefix) else { return nil }
        let rest = fileName.dropFirst(prefix.count)
        for suffix in claims ? [".json", ".claim"] : [".json"] where rest.hasSuffix(suffix) {
            return Int(rest.dropLast(suffix.count))
        }
        return nil
    }
    public func jobLog(array: String, index: Int, stream: String) -> String { "\(logs)/\(array).\(index).\(stream)" }
    /// What SLURM writes for one array element, relative to logs/: `isr.3` (one job per element),
    /// `isr.element3` (packed elements; each packed job has its own `isr.<slot>`), `.r2` for retry round 2.
    public static func elementLogStem(array: String, element: String, packed: Bool, round: Int) -> String {
        "\(array).\(packed ? "element" : "")\(element)\(round > 0 ? ".r\(round)" : "")"
    }
    /// The final job's log, relative to logs/: `merge` for the first round, `merge.r2` for round 2.
    public static func mergeLogStem(round: Int) -> String { "merge\(round > 0 ? ".r\(round)" : "")" }
    public func mergeLog(round: Int, stream: String) -> String { "\(logs)/\(Self.mergeLogStem(round: round)).\(stream)" }
    /// An LSST job's files of one attempt (`run_job.py`'s log, report and pipetask summary), by suffix:
    /// `logs/lsst/isr.3.1.log`, `.report.json`, `.summary.json`.
    public func lsstJobFile(array: String, index: Int, attempt: Int, suffix: String) -> String {
        "\(logs)/lsst/\(array).\(index).\(attempt).\(suffix)"
    }
    /// A clobber before a rerun (`run_job.py clobber`): its ids file and log, by suffix and time stamp.
    public func lsstClobberFile(stamp: String, suffix: String) -> String { "\(logs)/lsst/clobber.\(stamp).\(suffix)" }
    /// What `butler transfer-from-graph`/`aggregate-graph` printed in the final job.
    public var lsstMergeLog: String { logs + "/merge-butler.log" }
    /// Written once `pipetask pre-exec-init-qbb` has run for the submission (under `.lock`).
    public var lsstInitMarker: String { root + "/lsst-init.done" }
    public func elementLog(array: String, element: Int, packed: Bool, round: Int, stream: String) -> String {
        "\(logs)/\(Self.elementLogStem(array: array, element: String(element), packed: packed, round: round)).\(stream)"
    }
    /// Which SLURM jobs make up the submission, round by round (written by `quanta submit`).
    public var slurmRecord: String { root + "/slurm.json" }
    /// Every SLURM submission step as it happens (`SlurmJournal`): survives a kill mid-round.
    public var slurmJournal: String { root + "/slurm-journal.jsonl" }
    /// Final states of SLURM jobs, kept once the controller forgets them (MinJobAge).
    public var slurmStates: String { root + "/slurm-states.json" }
    /// `logs/quanta/calibrate/visit903334_detector42.2.log`: the task and data ID in the name, so a
    /// person finds a quantum's log by what they know of it (the quantum's UUID when the data ID
    /// would make too long a name).
    public func quantumLog(task: String, quantum: UUID, dataID: DataID, attempt: Int) -> String {
        let fragment = dataID.pathFragment
        let name = fragment.utf8.count <= 200 ? fragment : quantum.lowercased
        return "\(logs)/quanta/\(PathSanitizer.safeName(task))/\(name).\(attempt).log"
    }

    public var exists: Bool { FileManager.default.fileExists(atPath: planJSON) }
}
