import Foundation
import QuantaCore
import QuantaSlurm

/// `quanta site check`: a site config against the live SLURM cluster (partitions, cores and memory
/// per node, MaxArraySize, walltime limits).
public enum SiteChecker {
    public struct Report: Sendable {
        /// The comparison table and a verdict line, for a person.
        public var text: String
        /// Differences that make jobs fail or wait forever.
        public var problems: Int
    }

    public static func check(_ site: SiteConfig, backend: any SlurmBackend) throws -> Report {
        let conf: SlurmControllerConfig
        let parts: [SlurmPartitionInfo]
        let nodes: [SlurmNodeInfo]
        do {
            conf = try backend.controllerConfig()
            parts = try backend.partitions()
            nodes = try backend.nodes()
        } catch let e as SlurmError { throw e.quantaError }
        var rows: [[String]] = []
        var problems = 0, notes = 0
        func row(_ what: String, _ config: String, _ live: String, _ verdict: String) {
            rows.append([what, config, live, verdict])
            if verdict.hasPrefix("DIFFERS") { problems += 1 } else if verdict.hasPrefix("note") { notes += 1 }
        }
        row("MaxArraySize", String(site.maxArraySize), String(conf.maxArraySize),
            site.maxArraySize <= conf.maxArraySize ? "ok" : "DIFFERS: arrays above \(conf.maxArraySize) are rejected; set maxArraySize: \(conf.maxArraySize)")
        for p in site.partitions {
            guard let live = parts.first(where: { $0.name == p.name }) else {
                row("partition \(p.name)", "present", "missing", "DIFFERS: the cluster has \(parts.map(\.name).joined(separator: ", "))")
                continue
            }
            row("partition \(p.name)", "present", live.up ? "up" : "down", live.up ? "ok" : "note: partition is not up")
            let members = nodes.filter { $0.partitions.contains(p.name) }
            let minCores = members.map(\.cpus).min() ?? 0, maxCores = members.map(\.cpus).max() ?? 0
            let minMem = members.map(\.memoryMB).min() ?? 0, maxMem = members.map(\.memoryMB).max() ?? 0
            func span(_ a: Int, _ b: Int) -> String { a == b ? "\(a)" : "\(a)–\(b)" }
            row("  nodes", String(p.nodes), String(members.count),
                p.nodes <= members.count ? (p.nodes == members.count ? "ok" : "note: the cluster has more") : "DIFFERS: fewer nodes than configured")
            row("  cores per node", String(p.coresPerNode), span(minCores, maxCores),
                p.coresPerNode <= minCores ? (p.coresPerNode == minCores ? "ok" : "note: nodes have more cores; packing leaves them idle") : "DIFFERS: jobs asking for \(p.coresPerNode) cores never start; set coresPerNode: \(minCores)")
            row("  memory per node", Units.memory(p.memoryPerNodeMB), span(minMem, maxMem) + " MB",
                p.memoryPerNodeMB <= minMem ? (p.memoryPerNodeMB == minMem ? "ok" : "note: nodes have more memory") : "DIFFERS: requests above \(minMem) MB are rejected; set memoryPerNode: \(minMem)")
            let liveWall = live.maxTimeMinutes.map { Units.slurmTime($0 * 60) } ?? "unlimited"
            let cfgWall = p.maxWalltime.map(Units.slurmTime) ?? "unlimited"
            let wallOK: Bool = {
                guard let lm = live.maxTimeMinutes else { return true }
                guard let cw = p.maxWalltime else { return false }
                return cw <= lm * 60
            }()
            row("  max walltime", cfgWall, liveWall, wallOK ? (cfgWall == liveWall ? "ok" : "note: the cluster allows more") : "DIFFERS: longer requests are rejected; set maxWalltime: \(liveWall)")
        }
        for p in parts where !site.partitions.contains(where: { $0.name == p.name }) {
            row("partition \(p.name)", "absent", p.up ? "up" : "down", "note: not used by this site config")
        }
        var lines = ["Site \(site.name) (\(site.source)) vs cluster \(conf.clusterName) (SLURM \(conf.version), via \(backend))", ""]
        lines += TextTable.render(header: ["what", "site config", "cluster", "verdict"], rows: rows)
        lines.append("")
        lines.append(problems == 0 ? "No differences that break jobs\(notes > 0 ? " (\(notes) notes)" : "")." : "\(problems) differences break jobs; fix the site config as suggested.")
        return Report(text: lines.joined(separator: "\n") + "\n", problems: problems)
    }
}
