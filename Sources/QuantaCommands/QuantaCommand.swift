import ArgumentParser
import Foundation
import QuantaCore

/// `quanta`: plan, run and follow quantum graphs on SLURM or locally.
public struct QuantaCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "quanta",
        abstract: "Run quantum graphs as SLURM job arrays, or locally with the same scripts.",
        discussion: """
        A first run:  quanta demo
        Then:         quanta status quanta-demo/submit   ·   quanta repo query quanta-demo/repo
        """,
        version: QuantaVersion.description,
        subcommands: [Demo.self, Plan.self, Run.self, Submit.self, Status.self, Cancel.self, Merge.self, Finalize.self,
                      Rerun.self, Restart.self, SiteCommand.self, GraphCommand.self, RepoCommand.self, CheckRaws.self, FitsCommand.self,
                      CampaignCommand.self, BenchCommand.self]
    )

    public init() {}
}

/// Progress for long work: a self-rewriting line on a terminal, nothing in logs.
final class Progress {
    let label: String
    let enabled: Bool
    private var last = Date.distantPast

    init(_ label: String) {
        self.label = label
        enabled = isatty(1) == 1 && ProcessInfo.processInfo.environment["QUANTA_PROGRESS"] != "0"
    }

    func update(_ done: Int, _ total: Int, _ extra: String = "") {
        guard enabled, Date().timeIntervalSince(last) > 0.1 || done == total else { return }
        last = Date()
        let pct = total > 0 ? done * 100 / total : 100
        print("\r\u{1B}[K\(label) \(done)/\(total) (\(pct)%)\(extra.isEmpty ? "" : "  " + extra)", terminator: "")
        fflush(nil)
    }

    func stage(_ text: String) {
        guard enabled else { return }
        print("\r\u{1B}[K\(label): \(text)…", terminator: "")
        fflush(nil)
    }

    func done() {
        guard enabled else { return }
        print("\r\u{1B}[K", terminator: "")
        fflush(nil)
    }
}

/// Reads `D:I`-style job references.
struct JobReference: ExpressibleByArgument {
    var array: String
    var index: Int

    init?(argument: String) {
        guard let colon = argument.lastIndex(of: ":"), let i = Int(argument[argument.index(after: colon)...]), i >= 0 else { return nil }
        array = String(argument[..<colon])
        index = i
    }
}
