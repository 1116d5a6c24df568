import ArgumentParser
import Foundation
import QuantaCore
import QuantaReport

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write one self-contained HTML report of a submission: states, failures grouped with log tails, resources per task, timeline, map by data ID, retries, requested vs used.",
        discussion: """
        No script and no network: open it offline, or put it on a web page. A submission still running gives a
        partial report that says so; manifests that cannot be read are named and the rest reported. Nothing in
        the submit directory changes but the report file.
        """)
    @Argument(help: "Submit directory.") var dir: String
    @Option(name: .long, help: "The HTML file to write (default: report.html in the submit directory).") var out: String?

    func run() throws {
        let submission = try SubmissionArgument.open(dir)
        let started = Date()
        let measures = try RunMeasures.collect(submission.dir)
        let path = out ?? submission.dir.root + "/report.html"
        try AtomicFile.write(ReportPage.html(measures), to: path)
        let size = ((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0) / 1024
        print("\(path): \(measures.attempts.count) attempts of \(measures.plan.jobs) jobs, \(measures.status.failures.count) failure groups\(measures.status.active ? ", partial (jobs still running)" : "") — \(size) KB in \(String(format: "%.2f", Date().timeIntervalSince(started))) s")
    }
}
