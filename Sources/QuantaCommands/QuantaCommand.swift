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
                      CampaignCommand.self, Report.self, Tune.self, BenchCommand.self]
    )

    public init() {}
}

/// Progress for long work: a self-rewriting line on a terminal (at most ten redraws a second); when
/// the output is a file or a pipe (an sbatch log), a plain line every `QUANTA_PROGRESS_EVERY`
/// seconds (default 30). `QUANTA_PROGRESS=0` turns both off. Each line says how far, how fast and
/// how long is left: `running 31/88 (35%)  1 running, 2 failed · 3.1/s · ETA 18 s`.
final class Progress {
    let label: String
    /// The self-rewriting line is drawn (a terminal).
    let enabled: Bool
    /// Seconds between plain lines when not on a terminal (nil: none).
    let plainEvery: Double?
    private let started = Date()
    private var last = Date.distantPast
    private var lastPlain = Date()
    private var drawn = false

    init(_ label: String) {
        self.label = label
        let env = ProcessInfo.processInfo.environment
        let on = env["QUANTA_PROGRESS"] != "0"
        enabled = on && isatty(1) == 1
        plainEvery = on && !enabled ? max(1, env["QUANTA_PROGRESS_EVERY"].flatMap(Double.init) ?? 30) : nil
    }

    /// The line for `done` of `total` after `elapsed` seconds.
    static func line(_ label: String, _ done: Int, _ total: Int, _ extra: String, elapsed: Double) -> String {
        let pct = total > 0 ? done * 100 / total : 100
        var text = "\(label) \(done)/\(total) (\(pct)%)\(extra.isEmpty ? "" : "  " + extra)"
        if done > 0, elapsed >= 1 {
            let rate = Double(done) / elapsed
            text += rate >= 1 ? String(format: " · %.1f/s", rate) : String(format: " · %.1f/min", rate * 60)
            if done < total { text += " · ETA \(duration(Double(total - done) / rate))" }
        }
        return text
    }

    static func duration(_ s: Double) -> String {
        s < 90 ? "\(Int(s.rounded())) s" : s < 5400 ? "\(Int((s / 60).rounded())) min" : String(format: "%.1f h", s / 3600)
    }

    func update(_ done: Int, _ total: Int, _ extra: String = "") {
        let now = Date()
        if enabled {
            guard now.timeIntervalSince(last) > 0.1 || done == total else { return }
            last = now
            print("\r\u{1B}[K" + Self.line(label, done, total, extra, elapsed: now.timeIntervalSince(started)), terminator: "")
            drawn = true
            fflush(nil)
        } else if let every = plainEvery, now.timeIntervalSince(lastPlain) >= every {
            lastPlain = now
            print(Self.line(label, done, total, extra, elapsed: now.timeIntervalSince(started)))
            fflush(nil)
        }
    }

    func stage(_ text: String) {
        guard enabled else { return }
        print("\r\u{1B}[K\(label): \(text)…", terminator: "")
        drawn = true
        fflush(nil)
    }

    func done() {
        guard enabled, drawn else { return }
        print("\r\u{1B}[K", terminator: "")
        drawn = false
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
