import Foundation
import QuantaCore
import QuantaScheduler

/// `quanta report`: one self-contained HTML file (no script, no network; inline SVG drawn here) —
/// the run's header, per-task states, the failure groups with a log tail each, per-task
/// distributions of time, CPU, memory and I/O (raw and as % of the request), a timeline of the jobs,
/// a map of states by data ID, retries and attempts, and requested vs used totals.
public enum ReportPage {
    /// The sections, in order: each is an element with this id (the browser test checks them).
    public static let sections = ["header", "tasks", "failures", "resources", "timeline", "map", "attempts", "totals"]

    public static func html(_ m: RunMeasures, generated: Date = Date()) -> String {
        var body = ""
        body += header(m, generated: generated)
        body += tasks(m)
        body += failures(m)
        body += resources(m)
        body += timeline(m)
        body += map(m)
        body += attempts(m)
        body += totals(m)
        return """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>Quanta report: \(esc(m.plan.submission))</title>
        <style>
        body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
        h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;border-bottom:1px solid #ccc;padding-bottom:3px;margin-top:28px}
        table{border-collapse:collapse;margin:6px 0} td,th{padding:2px 8px;border-bottom:1px solid #eee;text-align:right}
        td:first-child,th:first-child{text-align:left} .note{color:#666} .warn{color:#a40}
        pre{background:#f6f6f6;padding:6px;font-size:12px;overflow-x:auto;max-height:180px}
        .ok{fill:#4a9} .failed{fill:#d44} .blocked{fill:#e94} .other{fill:#bbb} svg text{font:11px system-ui,sans-serif}
        </style></head><body>
        \(body)
        </body></html>
        """
    }

    /// A campaign run's page: its status as `quanta campaign status` prints it, the failure groups
    /// of all its submissions, and one link per submission's own report.
    public static func campaignIndex(title: String, status: String, failures: [FailureGroup],
                                     submissions: [(name: String, report: String, summary: String)]) -> String {
        var body = "<section id=\"header\"><h1>\(esc(title))</h1><pre>\(esc(status))</pre></section>\n"
        body += "<section id=\"failures\"><h2>Failures, grouped (every submission)</h2>"
        body += failures.isEmpty ? "<p>No quantum failed.</p>" : "<pre>\(esc(FailureGroups.render(failures, limit: failures.count).joined(separator: "\n")))</pre>"
        body += "</section>\n<section id=\"submissions\"><h2>Submissions</h2>"
        body += table(["submission", "report"], []) .replacingOccurrences(of: "</table>", with: "")
        for s in submissions {
            body += "<tr><td>\(esc(s.name))</td><td><a href=\"\(esc(s.report))\">\(esc(s.summary))</a></td></tr>"
        }
        body += "</table></section>\n"
        return """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>\(esc(title))</title>
        <style>body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px} h1{font-size:22px}
        h2{font-size:17px;border-bottom:1px solid #ccc} pre{background:#f6f6f6;padding:6px;font-size:12px;overflow-x:auto}
        td,th{padding:2px 8px;border-bottom:1px solid #eee;text-align:left}</style></head><body>
        \(body)
        </body></html>
        """
    }

    // MARK: sections

    static func header(_ m: RunMeasures, generated: Date) -> String {
        let p = m.plan
        var rows = [("submission", p.submission), ("graph", p.graph), ("repository", p.repo),
                    ("output run", p.outputRun + (p.output.map { " (chained into \($0))" } ?? "")), ("site", "\(p.site) (\(p.siteConfig))"),
                    ("planned", p.created), ("scheduler", m.status.scheduler), ("merge", m.status.merge),
                    ("report", "\(Timestamp.iso8601(generated)) by \(QuantaVersion.description)")]
        rows.append(("jobs", "\(p.jobs) jobs of \(p.quanta) quanta in \(p.arrays.count) arrays; \(m.attempts.count) attempts measured"))
        if let a = m.accounting { rows.append(("SLURM", a)) }
        var out = "<section id=\"header\"><h1>Quanta report: \(esc(p.submission))</h1>"
        if m.status.active { out += "<p class=\"warn\">Partial report: jobs are still running or pending.</p>" }
        out += table(["", ""], rows.map { [$0.0, $0.1] })
        if !m.problems.isEmpty {
            out += "<p class=\"warn\">\(m.problems.count) manifests could not be read (the rest are reported):</p><pre>\(esc(m.problems.prefix(20).joined(separator: "\n")))</pre>"
        }
        return out + "</section>\n"
    }

    static func tasks(_ m: RunMeasures) -> String {
        let states = SubmissionStatus.State.allCases
        let rows = m.status.tasks.map { t in [t.label, String(t.total)] + states.map { String(t.counts[$0.rawValue] ?? 0) } }
        var out = "<section id=\"tasks\"><h2>Quanta by task</h2>"
        out += table(["task", "expected"] + states.map(\.title), rows)
        // One bar per task: succeeded / failed / blocked / the rest.
        let width = 600.0, rowH = 18.0
        var svg = ""
        for (k, t) in m.status.tasks.enumerated() {
            let y = Double(k) * rowH
            var x = 120.0
            svg += "<text x=\"0\" y=\"\(y + 13)\">\(esc(t.label))</text>"
            for (cls, keys) in [("ok", ["succeeded", "noWork"]), ("failed", ["failed"]), ("blocked", ["blocked"]), ("other", ["running", "pending", "cancelled"])] {
                let n = keys.reduce(0) { $0 + (t.counts[$1] ?? 0) }
                guard n > 0, t.total > 0 else { continue }
                let w = (width - 120) * Double(n) / Double(t.total)
                svg += "<rect class=\"\(cls)\" x=\"\(f(x))\" y=\"\(f(y + 2))\" width=\"\(f(w))\" height=\"\(f(rowH - 4))\"><title>\(n) \(cls)</title></rect>"
                x += w
            }
        }
        out += svgBox(width: width, height: Double(m.status.tasks.count) * rowH, svg)
        return out + "</section>\n"
    }

    static func failures(_ m: RunMeasures) -> String {
        var out = "<section id=\"failures\"><h2>Failures, grouped</h2>"
        guard !m.status.failures.isEmpty else { return out + "<p>No quantum failed.</p></section>\n" }
        // Payload (the task's own error) or infrastructure (memory, time, node, a signal), from the jobs.
        for g in m.status.failures {
            let origin = g.classes.isEmpty ? (g.state == "blocked" ? "never ran" : "payload")
                : g.classes.keys.sorted().map { "\(g.classes[$0]!) \($0)" }.joined(separator: ", ")
            out += "<h3>\(g.count) × \(esc(g.task)) \(g.state)\(g.blocked > 0 ? ", blocking \(g.blocked) downstream" : "") <span class=\"note\">(\(origin))</span></h3>"
            out += "<p><code>\(esc(g.message))</code></p>"
            if !g.examples.isEmpty { out += "<p class=\"note\">e.g. \(esc(g.examples.joined(separator: "; ")))</p>" }
            if let log = g.log {
                let tail = (try? String(contentsOfFile: log, encoding: .utf8)).map { $0.split(separator: "\n").suffix(12).joined(separator: "\n") } ?? "(log not readable)"
                out += "<p class=\"note\">log: \(esc(log))</p><pre>\(esc(tail))</pre>"
            }
        }
        return out + "</section>\n"
    }

    static func resources(_ m: RunMeasures) -> String {
        var out = "<section id=\"resources\"><h2>Resources per task</h2><p class=\"note\">Every attempt; boxes from the lower to the upper quartile, the median marked, whiskers to the extremes. Memory is the peak of the task's process tree; I/O the kernel's block counts (page-cache reads not counted).</p>"
        let byTask = Dictionary(grouping: m.attempts, by: \.label)
        let labels = m.plan.arrays.map(\.label).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }.filter { byTask[$0] != nil }
        let metrics: [(String, (RunMeasures.Attempt) -> Double?)] = [
            ("wall time (s)", { $0.wallSeconds }),
            ("wall time, % of the requested walltime", { a in a.requestWalltime.map { a.wallSeconds / Double(max(1, $0)) * 100 } }),
            ("CPU time (s)", { $0.cpuSeconds }),
            ("CPU efficiency, % of requested cores × wall", { a in a.cpuSeconds.map { $0 / max(0.001, a.wallSeconds * Double(a.requestCpus)) * 100 } }),
            ("peak memory (MB)", { $0.peakMB }),
            ("peak memory, % of the request", { $0.peakMB / Double(max(1, $0.requestMemoryMB)) * 100 }),
            ("read (MB)", { $0.readMB }),
            ("written (MB)", { $0.writtenMB }),
        ]
        if labels.isEmpty { return out + "<p>No job has run yet.</p></section>\n" }
        for (title, value) in metrics {
            let series = labels.map { l in (l, byTask[l]!.compactMap(value).sorted()) }.filter { !$0.1.isEmpty }
            guard !series.isEmpty else { continue }
            out += "<h3>\(esc(title))</h3>" + boxPlot(series)
        }
        return out + "</section>\n"
    }

    static func timeline(_ m: RunMeasures) -> String {
        var out = "<section id=\"timeline\"><h2>Timeline</h2>"
        let runs = m.attempts.filter { $0.start != nil && $0.end != nil }.sorted { $0.start! < $1.start! }
        guard let t0 = (runs.compactMap { r in r.queueSeconds.map { r.start!.addingTimeInterval(-$0) } } + runs.map { $0.start! }).min(),
              let t1 = runs.map({ $0.end! }).max() else { return out + "<p>No job has run yet.</p></section>\n" }
        let span = max(1, t1.timeIntervalSince(t0))
        out += "<p class=\"note\">\(runs.count) attempts over \(duration(span)); grey: waiting in the queue (SLURM), colour: running (green succeeded, red failed).\(m.rounds.isEmpty ? " A local run: no queue." : "")</p>"
        let shown = runs.count > 400 ? stride(from: 0, to: runs.count, by: runs.count / 400 + 1).map { runs[$0] } : runs
        let width = 900.0, left = 140.0, rowH = max(2.0, min(12.0, 400.0 / Double(max(1, shown.count))))
        var svg = ""
        for (k, r) in shown.enumerated() {
            let y = Double(k) * rowH
            let xs = left + (width - left) * r.start!.timeIntervalSince(t0) / span
            let xe = left + (width - left) * r.end!.timeIntervalSince(t0) / span
            if let q = r.queueSeconds {
                let xq = left + (width - left) * (r.start!.timeIntervalSince(t0) - q) / span
                svg += "<rect class=\"other\" x=\"\(f(xq))\" y=\"\(f(y))\" width=\"\(f(max(0.5, xs - xq)))\" height=\"\(f(rowH * 0.8))\"/>"
            }
            svg += "<rect class=\"\(r.state == "succeeded" ? "ok" : r.state == "failed" ? "failed" : "blocked")\" x=\"\(f(xs))\" y=\"\(f(y))\" width=\"\(f(max(0.5, xe - xs)))\" height=\"\(f(rowH * 0.8))\"><title>\(esc("\(r.array):\(r.index) attempt \(r.attempt) \(r.state), \(String(format: "%.1f", r.wallSeconds)) s on \(r.host)"))</title></rect>"
            if rowH >= 10 { svg += "<text x=\"0\" y=\"\(f(y + rowH * 0.8))\">\(esc("\(r.array):\(r.index)"))</text>" }
        }
        let height = Double(shown.count) * rowH + 16
        svg += "<text x=\"\(f(left))\" y=\"\(f(height - 2))\">0</text><text x=\"\(f(width - 40))\" y=\"\(f(height - 2))\">\(duration(span))</text>"
        out += svgBox(width: width, height: height, svg)
        return out + "</section>\n"
    }

    /// States by data ID: a grid per task of visit (or exposure) × detector, and of patch × band.
    static func map(_ m: RunMeasures) -> String {
        var out = "<section id=\"map\"><h2>Where: states by data ID</h2>"
        var drawn = 0
        for task in m.status.tasks.map(\.label) {
            let qs = m.quanta.filter { $0.task == task }
            guard !qs.isEmpty else { continue }
            let keys = qs[0].dataID.keys
            let rowKey = ["visit", "exposure", "patch"].first { keys.contains($0) }
            let colKey = ["detector", "band"].first { keys.contains($0) }
            guard let rk = rowKey, let ck = colKey else { continue }
            let rows = Array(Set(qs.compactMap { $0.dataID[rk] })).sorted(), cols = Array(Set(qs.compactMap { $0.dataID[ck] })).sorted()
            guard rows.count * cols.count <= 40_000 else { continue }
            let cell = max(4.0, min(16.0, 700.0 / Double(max(cols.count, 1)))), left = 70.0, top = 14.0
            var svg = "<text x=\"0\" y=\"10\">\(esc(rk)) ↓ \(esc(ck)) →</text>"
            let ri = Dictionary(uniqueKeysWithValues: rows.enumerated().map { ($1, $0) }), ci = Dictionary(uniqueKeysWithValues: cols.enumerated().map { ($1, $0) })
            var worst: [Int: (String, String)] = [:]
            let rank = ["failed": 3, "blocked": 2, "noWork": 1, "succeeded": 0]
            for q in qs {
                guard let r = q.dataID[rk].flatMap({ ri[$0] }), let c = q.dataID[ck].flatMap({ ci[$0] }) else { continue }
                let k = r * cols.count + c
                if worst[k].map({ rank[$0.0, default: 1] < rank[q.state, default: 1] }) ?? true { worst[k] = (q.state, q.dataID.description) }
            }
            for (k, v) in worst {
                let r = k / cols.count, c = k % cols.count
                let cls = v.0 == "failed" ? "failed" : v.0 == "blocked" ? "blocked" : v.0 == "succeeded" || v.0 == "noWork" ? "ok" : "other"
                svg += "<rect class=\"\(cls)\" x=\"\(f(left + Double(c) * cell))\" y=\"\(f(top + Double(r) * cell))\" width=\"\(f(cell - 1))\" height=\"\(f(cell - 1))\"><title>\(esc("\(v.1): \(v.0)"))</title></rect>"
            }
            for (r, v) in rows.enumerated() where cell >= 10 || r % 10 == 0 {
                svg += "<text x=\"0\" y=\"\(f(top + Double(r) * cell + cell * 0.8))\">\(esc(v.description))</text>"
            }
            out += "<h3>\(esc(task))</h3>" + svgBox(width: left + Double(cols.count) * cell + 10, height: top + Double(rows.count) * cell + 4, svg)
            drawn += 1
        }
        if drawn == 0 { out += "<p>No quantum has a visit/exposure/patch × detector/band data ID to place.</p>" }
        if !m.footprints.isEmpty { out += sky(m) }
        return out + "</section>\n"
    }

    /// The detectors on the sky (every visit at once) and each visit's focal plane, coloured by the
    /// worst state of the quanta of that visit and detector (any task).
    static func sky(_ m: RunMeasures) -> String {
        var worst: [String: String] = [:]
        let rank = ["failed": 3, "blocked": 2, "noWork": 1, "succeeded": 0]
        for q in m.quanta {
            guard case .int(let v)? = q.dataID["visit"] ?? q.dataID["exposure"], case .int(let d)? = q.dataID["detector"] else { continue }
            let k = "\(v)/\(d)"
            if worst[k].map({ rank[$0, default: 1] < rank[q.state, default: 1] }) ?? true { worst[k] = q.state }
        }
        let all = m.footprints.values.flatMap { $0 }
        guard !all.isEmpty else { return "" }
        let ra0 = all.map(\.ra).reduce(0, +) / Double(all.count), dec0 = all.map(\.dec).reduce(0, +) / Double(all.count)
        let cosd = cos(dec0 * .pi / 180)
        func project(_ p: (ra: Double, dec: Double)) -> (Double, Double) {
            var dra = p.ra - ra0
            if dra > 180 { dra -= 360 } else if dra < -180 { dra += 360 }
            return (-dra * cosd, p.dec - dec0)   // east to the left, as on the sky
        }
        func cls(_ state: String?) -> String {
            switch state {
            case "failed"?: return "failed"
            case "blocked"?: return "blocked"
            case "succeeded"?, "noWork"?: return "ok"
            default: return "other"
            }
        }
        func panel(_ keys: [String], size: Double, label: String) -> String {
            let pts = keys.flatMap { m.footprints[$0]!.map(project) }
            let xs = pts.map(\.0), ys = pts.map(\.1)
            guard let x0 = xs.min(), let x1 = xs.max(), let y0 = ys.min(), let y1 = ys.max() else { return "" }
            let scale = (size - 20) / max(x1 - x0, y1 - y0, 1e-9)
            var svg = "<text x=\"2\" y=\"11\">\(esc(label))</text>"
            for k in keys {
                let poly = m.footprints[k]!.map(project).map { "\(f(10 + ($0.0 - x0) * scale)),\(f(16 + (y1 - $0.1) * scale))" }.joined(separator: " ")
                svg += "<polygon class=\"\(cls(worst[k]))\" fill-opacity=\"0.55\" stroke=\"#333\" stroke-width=\"0.5\" points=\"\(poly)\"><title>\(esc("visit/detector \(k): \(worst[k] ?? "not run")"))</title></polygon>"
            }
            return svgBox(width: size, height: size + 10, svg)
        }
        var out = "<h3>On the sky: every visit's detectors where their WCS puts them (north up, east left)</h3>"
        out += panel(m.footprints.keys.sorted(), size: 420, label: String(format: "RA %.3f°, Dec %.3f° at the centre", ra0, dec0))
        let visits = Dictionary(grouping: m.footprints.keys, by: { $0.split(separator: "/").first.map(String.init) ?? $0 })
        out += "<h3>Focal plane, per visit</h3><div>"
        for v in visits.keys.sorted(by: { (Int($0) ?? 0) < (Int($1) ?? 0) }).prefix(60) {
            out += panel(visits[v]!.sorted(), size: 130, label: "visit \(v)")
        }
        return out + "</div>"
    }

    static func attempts(_ m: RunMeasures) -> String {
        var out = "<section id=\"attempts\"><h2>Retries and attempts</h2>"
        let byJob = Dictionary(grouping: m.attempts) { "\($0.array):\($0.index)" }.filter { $0.value.count > 1 }
        guard !byJob.isEmpty else { return out + "<p>Every job ran once.</p></section>\n" }
        let rows = byJob.keys.sorted().prefix(200).map { k -> [String] in
            let a = byJob[k]!.sorted { $0.attempt < $1.attempt }
            return [k, String(a.count), a.map { "\($0.attempt): \($0.state)\($0.failureClass.map { " (\($0))" } ?? "") \($0.requestMemoryMB) MB" }.joined(separator: "; ")]
        }
        out += table(["job", "attempts", "each attempt"], rows)
        return out + "</section>\n"
    }

    static func totals(_ m: RunMeasures) -> String {
        let t = m.totals
        func pct(_ used: Double, _ asked: Double) -> String { asked > 0 ? String(format: "%.0f %%", used / asked * 100) : "-" }
        let rows = [["core-hours", String(format: "%.3f", t.coreHoursAsked), String(format: "%.3f", t.coreHoursUsed), pct(t.coreHoursUsed, t.coreHoursAsked),
                     String(format: "%.3f", max(0, t.coreHoursAsked - t.coreHoursUsed))],
                    ["memory GB-hours", String(format: "%.3f", t.memoryAsked), String(format: "%.3f", t.memoryUsed), pct(t.memoryUsed, t.memoryAsked),
                     String(format: "%.3f", max(0, t.memoryAsked - t.memoryUsed))]]
        return "<section id=\"totals\"><h2>Requested and used</h2>" + table(["", "requested", "used", "efficiency", "wasted"], rows)
            + "<p class=\"note\">Requested: each attempt's wall time × its request; used: CPU seconds, and wall time × peak memory. Every attempt counts (a retry's waste too).</p></section>\n"
    }

    // MARK: drawing

    static func boxPlot(_ series: [(String, [Double])]) -> String {
        let width = 700.0, left = 130.0, rowH = 20.0
        let top = series.flatMap(\.1).max() ?? 1, scale = (width - left - 120) / max(top, 1e-9)
        var svg = ""
        for (k, (label, v)) in series.enumerated() {
            let y = Double(k) * rowH
            func q(_ p: Double) -> Double { v[min(v.count - 1, Int((Double(v.count - 1) * p).rounded()))] }
            let x = { (d: Double) in left + d * scale }
            svg += "<text x=\"0\" y=\"\(f(y + 14))\">\(esc(label)) (\(v.count))</text>"
            svg += "<line x1=\"\(f(x(v.first!)))\" x2=\"\(f(x(v.last!)))\" y1=\"\(f(y + 10))\" y2=\"\(f(y + 10))\" stroke=\"#888\"/>"
            svg += "<rect x=\"\(f(x(q(0.25))))\" y=\"\(f(y + 3))\" width=\"\(f(max(1, x(q(0.75)) - x(q(0.25)))))\" height=\"14\" fill=\"#9bd\" stroke=\"#468\"/>"
            svg += "<line x1=\"\(f(x(q(0.5))))\" x2=\"\(f(x(q(0.5))))\" y1=\"\(f(y + 3))\" y2=\"\(f(y + 17))\" stroke=\"#123\" stroke-width=\"2\"/>"
            svg += "<text x=\"\(f(x(v.last!) + 4))\" y=\"\(f(y + 14))\">\(num(q(0.5))) / \(num(v.last!))</text>"
        }
        return svgBox(width: width, height: Double(series.count) * rowH + 4, svg)
    }

    static func svgBox(width: Double, height: Double, _ inner: String) -> String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(f(width))\" height=\"\(f(max(height, 1)))\" viewBox=\"0 0 \(f(width)) \(f(max(height, 1)))\">\(inner)</svg>\n"
    }

    static func table(_ header: [String], _ rows: [[String]]) -> String {
        "<table><tr>" + header.map { "<th>\(esc($0))</th>" }.joined() + "</tr>"
            + rows.map { "<tr>" + $0.map { "<td>\(esc($0))</td>" }.joined() + "</tr>" }.joined() + "</table>"
    }

    static func esc(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.count)
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(c)
            }
        }
        return out
    }

    static func f(_ d: Double) -> String { String(format: "%.1f", d) }
    static func num(_ d: Double) -> String { d >= 100 ? String(format: "%.0f", d) : d >= 1 ? String(format: "%.1f", d) : String(format: "%.3f", d) }
    static func duration(_ s: Double) -> String { s < 120 ? String(format: "%.1f s", s) : s < 7200 ? String(format: "%.1f min", s / 60) : String(format: "%.1f h", s / 3600) }
}
