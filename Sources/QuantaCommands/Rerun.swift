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

    @OptionGroup var backendOption: BackendOption

    func run() throws {
        let d = SubmitDirectory.named(dir)
        let plan = try PlanDocument.read(d)
        _ = Resources.plannedSite(d, plan)
        // ARRAY:INDEX (as status prints it), or LABEL:INDEX counting across the label's arrays.
        var target: (array: PlannedArray, slot: Int)?
        if let array = plan.arrays.first(where: { $0.name == job.array }) {
            guard job.index < array.jobCount else {
                throw ValidationError("array '\(array.name)' has jobs 0-\(array.jobCount - 1); \(job.index) is outside")
            }
            target = (array, job.index)
        } else {
            var offset = job.index
            for array in plan.arrays where array.label == job.array {
                if offset < array.jobCount { target = (array, offset); break }
                offset -= array.jobCount
            }
            if target == nil {
                let labels = Set(plan.arrays.map(\.label))
                guard labels.contains(job.array) else {
                    throw ValidationError("no array or task label '\(job.array)' in \(d.root); arrays are \(plan.arrays.map(\.name).joined(separator: ", "))")
                }
                throw ValidationError("task '\(job.array)' has \(plan.arrays.filter { $0.label == job.array }.reduce(0) { $0 + $1.jobCount }) jobs; \(job.index) is outside")
            }
        }
        let (array, slot) = target!
        try refuseWhatSlurmHolds(array: array.name, slot: slot)
        if array.name != job.array { print("job \(job.array):\(job.index) is \(array.name):\(slot)") }
        // A registered output is a file the registry vouches for (size, checksum): never replaced silently.
        // Without --force a job that succeeded is left alone (run-quantum says so): nothing is replaced.
        let latest = (try? Manifest.read(path: d.manifest(array: array.name, index: slot))) ?? nil
        let runs = force || latest?.status != .succeeded
        var registered = runs ? try RegisteredOutputs.of(d, array: array.name, index: slot) : .none(d)
        if !force, let latest {
            // run-quantum keeps what an earlier attempt made and left intact (--skip-existing): not replaced.
            let kept = latest.intactQuanta(root: try Snapshot.meta(path: d.snapshot).datastoreRoot).values.flatMap(\.outputs)
            registered = registered.excluding(kept: Set(kept.map(\.id)))
        }
        if !registered.datasets.isEmpty && !replace {
            let first = registered.datasets[0]
            throw ValidationError("job \(array.name):\(slot): \(registered.datasets.count) of its outputs are registered already (first: \(first.description) at \(first.path)); a rerun would replace them. Pass --replace to replace them and update the registry (datasets made from them downstream are listed), or plan the graph again with a new --output-run")
        }
        if runs { try LSSTClobber.prepare(d, plan: plan, site: Resources.plannedSite(d, plan), jobs: [array.name: [slot]]) }
        var env = ProcessInfo.processInfo.environment
        env["SLURM_ARRAY_TASK_ID"] = String(array.element(ofJob: slot))
        env["SLURM_SUBMIT_DIR"] = d.root
        env["QUANTA_BACKEND"] = "rerun"
        let args = ["--index", String(slot)] + (force ? ["--force"] : [])
        var o = Spawn.Options()
        o.workingDirectory = d.root
        let status = try Spawn.run("/bin/bash", [d.script(array: array.name)] + args, environment: env, options: o)
        guard status.succeeded else {
            StandardStreams.error("job \(array.name):\(slot) ended with \(status)\n")
            throw ExitCode(status.code)
        }
        let manifest = try Manifest.read(path: d.manifest(array: array.name, index: slot))
        if replace, !registered.datasets.isEmpty, let m = manifest {
            let changed = try registered.adopt(m)
            print("replaced \(changed) registered datasets; their registry records now carry the new files' size and checksum")
            let stale = try registered.downstream()
            if !stale.isEmpty {
                print("\(stale.count) registered datasets downstream were made from the old files and may now be stale:")
                for line in stale.prefix(20) { print("  \(line)") }
                if stale.count > 20 { print("  … \(stale.count - 20) more") }
            }
        }
        if let m = manifest, m.status == .failed {
            throw ExitCode(1)
        }
    }

    /// Submitted to SLURM (even part-way, see slurm-journal.jsonl): a job SLURM says is pending or
    /// running is not run here as well. When SLURM does not answer, the person decides.
    func refuseWhatSlurmHolds(array: String, slot: Int) throws {
        let d = SubmitDirectory.named(dir)
        guard SlurmRecord.exists(d), let backend = try? backendOption.open(quiet: true) else { return }
        let (status, view) = try SubmissionArgument.open(dir).status(backend)
        guard view?.note == nil, let row = status.elements.first(where: { $0.array == array && $0.index == slot }),
              row.state == .pending || row.state == .running, let held = row.slurmJob else { return }
        throw QuantaError(.usage, "\(d.root): SLURM holds job \(array):\(slot) (\(held), \(row.state.rawValue)); wait for it, or 'scancel \(held)' first, then rerun it")
    }
}
