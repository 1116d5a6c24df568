import Foundation
import QuantaButler
import QuantaCore
import QuantaScheduler

/// Merging an LSST graph's outputs: the butler's own `transfer-from-graph` (default) or
/// `aggregate-graph`, with `--register-dataset-types --update-output-chain`, run in the site's
/// environment; the result lands in merge-summary.json like a native merge's.
enum LSSTMerge {
    static func isLSST(_ plan: PlanDocument) -> Bool {
        (try? Repository(root: plan.repo))?.kind == .butler
    }

    static func run(_ dir: SubmitDirectory, plan: PlanDocument) throws -> MergeResult {
        let started = Date()
        let method = plan.lsstMerge ?? "transfer-from-graph"
        var args = [method, plan.graph, plan.repo, "--register-dataset-types", "--update-output-chain"]
        if method == "aggregate-graph" { args += ["-j", "2"] }
        guard let butler = Spawn.which("butler") else {
            throw QuantaError(.execution, "'butler' is not on PATH; the site config's environment lines must set up the LSST stack (e.g. source VENV/bin/activate)")
        }
        let r = try Spawn.capture(butler, args)
        let log = dir.logs + "/merge-butler.log"
        try AtomicFile.write("$ butler \(args.map(shellQuote).joined(separator: " "))\n\(r.stdout)\(r.stderr)", to: log)
        guard r.status.succeeded else {
            let line = r.stderr.split(separator: "\n").last { $0.contains("Error") || $0.contains("error") } ?? r.stderr.split(separator: "\n").last ?? ""
            throw QuantaError(.registry, "butler \(method) failed (\(r.status)): \(line); full output in \(log)")
        }
        // "Number of datasets transferred: N" (transfer-from-graph); aggregate-graph says less.
        let text = r.stdout + r.stderr
        let count = text.split(separator: "\n").compactMap { line -> Int? in
            guard line.contains("datasets transferred") || line.contains("datasets ingested") else { return nil }
            return line.split(separator: " ").compactMap { Int($0) }.last
        }.last ?? 0
        let status = try SubmissionStatus.read(dir)
        let failed = status.elements.filter { $0.state == .failed }.map { "\($0.array):\($0.index) \($0.reason ?? "")" }
        let blocked = status.elements.filter { $0.state == .blocked }.map { "\($0.array):\($0.index) \($0.reason ?? "")" }
        let result = MergeResult(outputRun: plan.outputRun, output: plan.output, registered: count, alreadyRegistered: 0,
                                 datasetsInManifests: count, missingFiles: [], quantaSucceeded: (status.quanta["succeeded"] ?? 0) + (status.quanta[SubmissionStatus.State.noWork.rawValue] ?? 0),
                                 quantaFailed: failed, quantaBlocked: blocked, jobsWithoutManifest: [],
                                 seconds: Date().timeIntervalSince(started))
        try AtomicFile.write(try JSONEncoder.pretty.encode(result), to: dir.mergeSummary)
        return result
    }
}
