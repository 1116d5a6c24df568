import Foundation
import QuantaCore

/// Where this install keeps what planning needs: the shipped folders (templates/, site-configs/,
/// python/), the sibling executables, and site configs by name. The `quanta` binary and anything
/// that plans as a library (campaigns) find them the same way.
public enum Installation {
    /// This executable's absolute path.
    public static var executable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
    }

    public static var runQuantum: String {
        URL(fileURLWithPath: executable).deletingLastPathComponent().appendingPathComponent("run-quantum").path
    }

    /// `$QUANTA_HOME/NAME`, else the first `NAME/` found walking up from the executable
    /// (a checkout's `.build/debug/quanta` finds the checkout's folder), else `/usr/local/share/quanta/NAME`.
    public static func folder(_ name: String, marker: String) throws -> String {
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
    public static var lsstDriver: String? {
        (try? folder("python", marker: "quanta_lsst/run_job.py")).map { $0 + "/quanta_lsst/run_job.py" }
    }

    /// The site a submission was planned for: the copy in its directory, else the original file.
    /// Its umask is adopted: what the command writes follows the site, like the jobs.
    public static func plannedSite(_ dir: SubmitDirectory, _ plan: PlanDocument) -> SiteConfig? {
        let s = FileManager.default.fileExists(atPath: dir.siteCopy) ? try? site(dir.siteCopy) : try? site(plan.siteConfig)
        if let s { adoptUmask(s) }
        return s
    }

    /// Files and directories this process makes from now on follow the site's `umask` (issue 12:
    /// plan, repo create and the local backend's logs used the shell's).
    public static func adoptUmask(_ site: SiteConfig) {
        if let u = site.umask, let mask = mode_t(u, radix: 8) { umask(mask) }
    }

    public static func templates(_ override: String?) throws -> String {
        if let override { return override }
        if let env = ProcessInfo.processInfo.environment["QUANTA_TEMPLATES"] { return env }
        return try folder("templates", marker: "array.sbatch.mustache")
    }

    /// A site config by name (`local` → site-configs/local.yaml) or path; a name no site config has, with `bpsSite` given, is the bps
    /// file's `site.<name>` section mapped as `quanta submit bps.yaml` maps it.
    /// `note` gets the description of a mapped bps site.
    public static func site(_ nameOrPath: String, bpsSite: String? = nil, note: (String) -> Void = { _ in }) throws -> SiteConfig {
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
                note(BpsPlanning.describeSiteMapping(site, source: bpsSite))
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
