import Foundation

/// `plan.json`: what was planned, for people, for `status`, and for the local backend.
public struct PlanDocument: Sendable, Codable, Equatable {
    public struct Merge: Sendable, Codable, Equatable {
        public var dependencies: [ArrayDependency]

        public init(dependencies: [ArrayDependency]) { self.dependencies = dependencies }
    }

    public var formatVersion = 1
    public var submission: String
    public var created: String
    public var graph: String
    public var repo: String
    public var outputRun: String
    public var output: String?
    public var site: String
    public var siteConfig: String
    public var submitConfig: String
    public var quanta: Int
    public var jobs: Int
    public var arrays: [PlannedArray]
    public var merge: Merge
    public var ignoredConfigKeys: [String]
    public var planSeconds: Double
    /// LSST graphs: `transfer-from-graph` or `aggregate-graph` for the final merge.
    public var lsstMerge: String?
    /// What planning noticed and a person should see (settings for tasks not in the graph, arrays
    /// without a time limit); `warning: ` starts the ones that likely need a fix.
    public var notes: [String]?
    /// The final job's SLURM request (plans made before it: nil, and the submitter makes one).
    public var finalJob: SlurmRequest?

    public init(submission: String, created: String, graph: String, repo: String, outputRun: String, output: String?,
                site: String, siteConfig: String, submitConfig: String, quanta: Int, jobs: Int, arrays: [PlannedArray],
                merge: Merge, ignoredConfigKeys: [String], planSeconds: Double) {
        self.submission = submission
        self.created = created
        self.graph = graph
        self.repo = repo
        self.outputRun = outputRun
        self.output = output
        self.site = site
        self.siteConfig = siteConfig
        self.submitConfig = submitConfig
        self.quanta = quanta
        self.jobs = jobs
        self.arrays = arrays
        self.merge = merge
        self.ignoredConfigKeys = ignoredConfigKeys
        self.planSeconds = planSeconds
    }

    public static func read(_ dir: SubmitDirectory) throws -> PlanDocument {
        guard let data = FileManager.default.contents(atPath: dir.planJSON) else {
            throw QuantaError(.usage, "\(dir.root): not a submit directory (no plan.json, nor quanta/plan.json as bps's plugin writes); give the directory 'quanta plan' or 'quanta submit' made")
        }
        do { return try JSONDecoder().decode(PlanDocument.self, from: data) } catch {
            throw QuantaError(.io, "\(dir.planJSON): unreadable (\(error)); plan the submission again")
        }
    }

    public func encoded() throws -> Data {
        try JSONEncoder.pretty.encode(self)
    }

    /// `aftercorr:calibrate-1`; many upstream arrays of one kind read `afterany:calibrate-1…calibrate-500 (500 arrays)`.
    /// One row per task label: its arrays, elements, quanta, memory (range) and the labels it waits for.
    var perTask: [String] {
        var order: [String] = []
        var rows: [String: (arrays: Int, elements: Int, quanta: Int, minMB: Int, maxMB: Int, after: Set<String>)] = [:]
        let labelOf = Dictionary(arrays.map { ($0.name, $0.label) }, uniquingKeysWith: { a, _ in a })
        for a in arrays {
            if rows[a.label] == nil { order.append(a.label); rows[a.label] = (0, 0, 0, .max, 0, []) }
            rows[a.label]!.arrays += 1
            rows[a.label]!.elements += a.size
            rows[a.label]!.quanta += a.quanta
            rows[a.label]!.minMB = min(rows[a.label]!.minMB, a.resources.memoryMB)
            rows[a.label]!.maxMB = max(rows[a.label]!.maxMB, a.resources.memoryMB)
            for d in a.dependencies { if let l = labelOf[d.array], l != a.label { rows[a.label]!.after.insert(l) } }
        }
        return TextTable.render(header: ["task", "arrays", "elements", "quanta", "memory", "after"], rows: order.map { l in
            let r = rows[l]!
            let memory = r.minMB == r.maxMB ? Units.memory(r.minMB) : "\(Units.memory(r.minMB))–\(Units.memory(r.maxMB))"
            return [l, String(r.arrays), String(r.elements), String(r.quanta), memory, r.after.isEmpty ? "-" : r.after.sorted().joined(separator: ",")]
        })
    }

    static func after(_ deps: [ArrayDependency]) -> String {
        if deps.isEmpty { return "-" }
        if deps.count <= 4 { return deps.map { "\($0.kind.rawValue):\($0.array)" }.joined(separator: ",") }
        var kinds: [String] = []
        var byKind: [String: [String]] = [:]
        for d in deps {
            if byKind[d.kind.rawValue] == nil { kinds.append(d.kind.rawValue) }
            byKind[d.kind.rawValue, default: []].append(d.array)
        }
        return kinds.map { k in
            let a = byKind[k]!
            return a.count <= 2 ? a.map { "\(k):\($0)" }.joined(separator: ",") : "\(k):\(a[0])…\(a[a.count - 1]) (\(a.count) arrays)"
        }.joined(separator: ",")
    }

    /// The human-readable summary written beside plan.json and printed by `quanta plan`.
    public var summary: String { summary(maxRows: .max) }

    /// Rows a terminal shows before the per-array table becomes a per-task one.
    public static let screenful = 40

    /// Arrays shown one per row up to `maxRows` (a screenful for a terminal); past it, one row per
    /// task — arrays, elements, quanta, memory, the tasks it waits for — and plan.txt has the full table.
    public func summary(maxRows: Int) -> String {
        var lines = [
            "Submission \(submission)",
            "  graph   \(graph)",
            "  repo    \(repo)",
            "  run     \(outputRun)\(output.map { " (chained into \($0))" } ?? "")",
            "  site    \(site) (\(siteConfig))",
            "  \(quanta) quanta in \(jobs) jobs, \(arrays.count) arrays + merge; planned in \(String(format: "%.2f", planSeconds)) s",
            "",
        ]
        if arrays.count + 1 > maxRows {
            lines += perTask
            lines.append("  (\(arrays.count) arrays and the merge: the full table is in plan.txt)")
        } else {
            let rows = arrays.map { a -> [String] in
                [a.name, a.label, a.arraySpec, String(a.quanta), Units.memory(a.resources.memoryMB), String(a.resources.cpus),
                 a.resources.walltime.map(Units.slurmTime) ?? "-", a.partition,
                 Self.after(a.dependencies)]
            }
            lines += TextTable.render(header: ["array", "label", "elements", "quanta", "memory", "cpus", "walltime", "partition", "after"],
                                      rows: rows + [["merge", "merge", "0", "-", "-", "1", "-", "-",
                                                     merge.dependencies.isEmpty ? "-" : "afterany:all"]])
        }
        let packed = arrays.filter { $0.packing != nil }
        if !packed.isEmpty {
            lines.append("")
            lines.append("Whole-node packing (exclusive nodes): jobs run side by side, each in its own cpus and memory")
            var jobsTotal = 0, coresUsed = 0, coresHeld = 0
            let rows = packed.map { a -> [String] in
                let p = a.packing!
                jobsTotal += p.jobs
                coresUsed += p.jobs * p.job.cpus
                coresHeld += a.size * p.nodeCores
                return [a.name, String(p.jobs), String(p.jobsPerElement), String(a.size),
                        "\(p.node.cpus)/\(p.nodeCores)", "\(Units.memory(p.node.memoryMB))/\(Units.memory(p.nodeMemoryMB))",
                        String(format: "%.0f%%", p.idleFraction * 100)]
            }
            lines += TextTable.render(header: ["array", "jobs", "per node", "nodes", "cores used", "memory used", "idle cores"], rows: rows)
            lines.append("  \(jobsTotal) jobs on \(packed.reduce(0) { $0 + $1.size }) node allocations; expected idle: \(String(format: "%.0f%%", 100 * (1 - Double(coresUsed) / Double(max(1, coresHeld))))) of the cores held")
        }
        if !ignoredConfigKeys.isEmpty {
            lines.append("")
            lines.append("Ignored config keys (not used by Quanta): \(ignoredConfigKeys.joined(separator: ", "))")
        }
        let learned = (notes ?? []).filter { $0.hasPrefix("requests from history: ") }
        if !learned.isEmpty {
            lines.append("")
            lines += learned
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

extension String {
    /// Linear: finds the end on the UTF-8 view (Substring.dropLast in a loop was quadratic —
    /// 180 s for a 1M-quantum plan.txt with long "after" columns).
    var trailingSpacesRemoved: String {
        let u = utf8
        guard let last = u.lastIndex(where: { $0 != UInt8(ascii: " ") }) else { return "" }
        return String(self[...last])
    }

    public func ifEmpty(_ other: String) -> String { isEmpty ? other : self }
}

/// Plain aligned text tables for terminals and log files.
public enum TextTable {
    public static func render(header: [String], rows: [[String]]) -> [String] {
        var widths = header.map(\.count)
        for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in
                let pad = String(repeating: " ", count: max(0, widths[i] - c.count))
                // Numbers align right, words left.
                return Int(c) != nil ? pad + c : c + pad
            }.joined(separator: "  ").trailingSpacesRemoved
        }
        return [line(header), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")] + rows.map(line)
    }
}
