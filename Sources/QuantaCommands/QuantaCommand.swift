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
                      BenchCommand.self]
    )

    public init() {}
}

/// Finds the project's shipped folders (templates/, site-configs/) and sibling executables.
enum Resources {
    /// This executable's absolute path.
    static var executable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
    }

    static var runQuantum: String {
        URL(fileURLWithPath: executable).deletingLastPathComponent().appendingPathComponent("run-quantum").path
    }

    /// `$QUANTA_HOME/NAME`, else the first `NAME/` found walking up from the executable
    /// (a checkout's `.build/debug/quanta` finds the checkout's folder), else `/usr/local/share/quanta/NAME`.
    static func folder(_ name: String, marker: String) throws -> String {
        let fm = FileManager.default
        if let home = ProcessInfo.processInfo.environment["QUANTA_HOME"] {
            return home + "/" + name
        }
        var dir = URL(fileURLWithPath: executable).deletingLastPathComponent()
        while dir.path != "/" {
            let candidate = dir.appendingPathComponent(name)
            if fm.fileExists(atPath: candidate.appendingPathComponent(marker).path) { return candidate.path }
            dir = dir.deletingLastPathComponent()
        }
        for base in ["/usr/local/share/quanta", "/usr/share/quanta"] where fm.fileExists(atPath: "\(base)/\(name)/\(marker)") {
            return "\(base)/\(name)"
        }
        throw QuantaError(.usage, "cannot find the '\(name)' folder next to \(executable); set QUANTA_HOME to the Quanta checkout")
    }

    /// The LSST job driver shipped in `python/quanta_lsst`, if this install has it.
    static var lsstDriver: String? {
        (try? folder("python", marker: "quanta_lsst/run_job.py")).map { $0 + "/quanta_lsst/run_job.py" }
    }

    /// The site a submission was planned for: the copy in its directory, else the original file.
    /// Its umask is adopted: what the command writes follows the site, like the jobs.
    static func plannedSite(_ dir: SubmitDirectory, _ plan: PlanDocument) -> SiteConfig? {
        let s = FileManager.default.fileExists(atPath: dir.siteCopy) ? try? site(dir.siteCopy) : try? site(plan.siteConfig)
        if let s { adoptUmask(s) }
        return s
    }

    /// Files and directories this process makes from now on follow the site's `umask` (issue 12:
    /// plan, repo create and the local backend's logs used the shell's).
    static func adoptUmask(_ site: SiteConfig) {
        if let u = site.umask, let mask = mode_t(u, radix: 8) { umask(mask) }
    }

    static func templates(_ override: String?) throws -> String {
        if let override { return override }
        if let env = ProcessInfo.processInfo.environment["QUANTA_TEMPLATES"] { return env }
        return try folder("templates", marker: "array.sbatch.mustache")
    }

    /// A site by name (`local` → site-configs/local.yaml) or by path.
    /// A site config by name or path; a name no site config has, with `bpsSite` given, is the bps
    /// file's `site.<name>` section mapped as `quanta submit bps.yaml` maps it.
    static func site(_ nameOrPath: String, bpsSite: String? = nil) throws -> SiteConfig {
        let path: String
        if nameOrPath.contains("/") || nameOrPath.hasSuffix(".yaml") {
            path = nameOrPath
        } else {
            path = try folder("site-configs", marker: "local.yaml") + "/\(nameOrPath).yaml"
            if !FileManager.default.fileExists(atPath: path), let bpsSite {
                let memMB = Int(ProcessInfo.processInfo.physicalMemory / 1_048_576)
                let site = try BpsConfig.site(file: bpsSite, machine: (ProcessInfo.processInfo.activeProcessorCount, memMB))
                guard site.name == nameOrPath else {
                    throw QuantaError(.usage, "\(bpsSite): its computeSite is '\(site.name)', not '\(nameOrPath)'")
                }
                print(BpsSubmit.describeSiteMapping(site, source: bpsSite))
                adoptUmask(site)
                return site
            }
            if !FileManager.default.fileExists(atPath: path) {
                let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
                let known = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [])
                    .filter { $0.hasSuffix(".yaml") }.map { String($0.dropLast(5)) }.sorted()
                throw QuantaError(.usage, "no site config '\(nameOrPath)'; known sites: \(known.joined(separator: ", ")) (or give a path to a YAML file)")
            }
        }
        let memMB = Int(ProcessInfo.processInfo.physicalMemory / 1_048_576)
        let config = try SiteConfig.load(path: path, machine: (ProcessInfo.processInfo.activeProcessorCount, memMB))
        adoptUmask(config)
        return config
    }
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
