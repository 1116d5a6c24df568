import ArgumentParser
import Foundation
import QuantaCore
import QuantaScheduler

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
