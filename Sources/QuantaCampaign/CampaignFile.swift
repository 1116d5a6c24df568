import Foundation
import QuantaCore
import QuantaDemo
import Yams

/// Reads a campaign file into a `CampaignSpec`, checking everything that can be checked without
/// the repository: every error is one line naming the file, the line and the fix, and nothing is
/// started from a file that has one.
public enum CampaignFile {
    static let topKeys = ["name", "repository", "site", "config", "inputs", "output", "steps", "rules", "schedule", "retention", "notify"]
    static let stepKeys = ["name", "pipeline", "dataQuery", "builtin", "tasks", "graph", "script", "over", "after", "groups", "config",
                           "overrides", "groupOverrides", "gate", "pilot"]
    static let gateKeys = ["maxFailedFraction", "datasetTypes", "outputsValidated", "command", "manual"]
    static let ruleKeys = ["task", "message", "class", "action", "retries"]
    static let groupKeys = ["dimension", "values", "queries"]
    /// Dimensions a data query or a group may name: the butler's default universe (and so the
    /// built-in pipeline's, a part of it).
    static let dimensions = ["instrument", "band", "physical_filter", "subfilter", "detector", "visit", "exposure", "day_obs",
                             "group", "visit_system", "skymap", "tract", "patch"]

    static func isDimension(_ d: String) -> Bool {
        dimensions.contains(d) || ["htm", "healpix"].contains { p in d.hasPrefix(p) && Int(d.dropFirst(p.count)) != nil }
    }

    /// A data query's syntax and dimensions, as one line at the node.
    static func query(_ n: Node, _ what: String, _ r: Reader) throws -> String {
        let text = try r.string(n, what)
        do {
            let q = try DataQuery.parse(text)
            for d in q.dimensions.sorted() where !isDimension(d) {
                let hint = DidYouMean.suggestion(for: d, among: dimensions).map { "; did you mean '\($0)'?" } ?? ""
                throw r.fail(n, "\(what): unknown dimension '\(d)'\(hint)")
            }
        } catch let e as QuantaError where e.code == .usage {
            throw r.fail(n, "\(what): \(e.message.replacingOccurrences(of: "data query \"\(text)\": ", with: "")) in \"\(text)\"")
        }
        return text
    }

    public static func load(path: String) throws -> CampaignSpec {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw QuantaError(.invalidConfig, "\(path): cannot read the campaign file")
        }
        var spec = try parse(String(decoding: data, as: UTF8.self), source: path)
        // Absolute: ticks run from cron in another directory.
        spec.source = URL(fileURLWithPath: path).standardizedFileURL.path
        return spec
    }

    public static func parse(_ text: String, source: String) throws -> CampaignSpec {
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch let e as YamlError {
            throw QuantaError(.invalidConfig, "\(source): not valid YAML: \(String(describing: e).split(separator: "\n").first ?? "")")
        }
        guard let root = node else { throw QuantaError(.invalidConfig, "\(source): empty; a campaign needs name, repository and steps (see docs/campaigns.md)") }
        let r = Reader(source: source)
        let top = try r.mapping(root, "the campaign", keys: topKeys)
        let name = try r.string(try r.required(top, "name", in: root), "name")
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
            throw r.fail(top["name"]!, "name: '\(name)' — use letters, digits, '-', '_' and '.' (it names directories and collections)")
        }
        let repository = try r.string(try r.required(top, "repository", in: root), "repository")
        let output = try top["output"].map { try r.string($0, "output") } ?? "u/\(NSUserName())/\(name)"
        var spec = CampaignSpec(name: name, repository: repository, output: output)
        if let v = top["site"] { spec.site = try r.string(v, "site") }
        if let v = top["config"] { spec.config = try r.string(v, "config") }
        if let v = top["inputs"] { spec.inputs = try r.list(v, "inputs") }
        if let v = top["notify"] { spec.notify = try r.string(v, "notify") }
        if let v = top["schedule"] {
            do { spec.schedule = try CronSchedule(try r.string(v, "schedule")) } catch let e as CronSchedule.ParseError {
                throw r.fail(v, "schedule: \(e.message)")
            }
        }
        if let v = top["retention"] {
            let m = try r.mapping(v, "retention", keys: ["keep"])
            let keep = try r.int(try r.required(m, "keep", in: v), "retention.keep")
            guard keep >= 1 else { throw r.fail(m["keep"]!, "retention.keep: keep at least 1 run (the newest)") }
            spec.retention = Retention(keep: keep)
        }
        if let v = top["rules"] {
            spec.rules = try r.sequence(v, "rules").enumerated().map { try rule($1, index: $0, r) }
        }
        let stepsNode = try r.required(top, "steps", in: root)
        var seen: [String: Int] = [:]
        for (i, n) in try r.sequence(stepsNode, "steps").enumerated() {
            let s = try step(n, index: i, earlier: seen, r)
            seen[s.name] = i
            spec.steps.append(s)
        }
        if spec.steps.isEmpty { throw r.fail(stepsNode, "steps: the campaign has no step") }
        return spec
    }

    static func step(_ n: Node, index: Int, earlier: [String: Int], _ r: Reader) throws -> Step {
        let m = try r.mapping(n, "steps[\(index)]", keys: stepKeys)
        let name = try r.string(try r.required(m, "name", in: n), "steps[\(index)].name")
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
            throw r.fail(m["name"]!, "steps[\(index)].name: '\(name)' — use letters, digits, '-', '_' and '.'")
        }
        if earlier[name] != nil { throw r.fail(m["name"]!, "step '\(name)' is defined twice; give each step its own name") }
        let at = "step \(name)"
        let kinds = ["pipeline", "builtin", "graph", "script"].filter { m[$0] != nil }
        guard kinds.count == 1 else {
            throw r.fail(n, "\(at): give exactly one of pipeline (LSST), builtin (Quanta's pipeline), graph (a file) or script\(kinds.isEmpty ? "" : "; it has \(kinds.joined(separator: " and "))")")
        }
        let work: Work
        switch kinds[0] {
        case "pipeline":
            work = .pipeline(try r.string(m["pipeline"]!, "\(at).pipeline"), dataQuery: try m["dataQuery"].map { try query($0, "\(at).dataQuery", r) })
        case "builtin":
            let b = m["builtin"]!
            let list = b.bool == true ? m["tasks"] : b
            let tasks = try list.map { try r.list($0, b.bool == true ? "\(at).tasks" : "\(at).builtin") }
            do { _ = try PipelineGraph.checkedTasks(tasks) } catch let e as QuantaError { throw r.fail(list ?? b, "\(at): \(e.message)") }
            work = .builtin(tasks: tasks, dataQuery: try m["dataQuery"].map { try query($0, "\(at).dataQuery", r) })
        case "graph":
            work = .graph(try r.string(m["graph"]!, "\(at).graph"))
        default:
            work = .script(command: try r.string(m["script"]!, "\(at).script"), over: try m["over"].map { try r.list($0, "\(at).over") })
        }
        if let q = m["dataQuery"], kinds[0] != "pipeline" && kinds[0] != "builtin" { throw r.fail(q, "\(at).dataQuery applies to a pipeline or builtin step") }
        if let t = m["tasks"], kinds[0] != "builtin" { throw r.fail(t, "\(at).tasks applies to a builtin step") }
        if let o = m["over"], kinds[0] != "script" { throw r.fail(o, "\(at).over applies to a script step") }
        var s = Step(name: name, work: work)
        if let v = m["after"] {
            s.after = try r.list(v, "\(at).after")
            for a in s.after where earlier[a] == nil {
                if a == name { throw r.fail(v, "\(at) cannot come after itself") }
                let hint = DidYouMean.suggestion(for: a, among: earlier.keys).map { "; did you mean '\($0)'?" } ?? ""
                throw r.fail(v, "\(at) comes after '\(a)', which is not a step above it (steps run in file order; move '\(a)' above '\(name)'\(hint))")
            }
        }
        if let v = m["groups"] { s.groups = try groups(v, at, r) }
        if let v = m["config"] { s.config = try r.string(v, "\(at).config") }
        if let v = m["overrides"] { s.overrides = try r.values(v, "\(at).overrides").map { try override($0, v, at, r) } }
        if let v = m["groupOverrides"] {
            for (key, value) in try r.pairs(v, "\(at).groupOverrides") {
                s.groupOverrides[key] = try r.values(value, "\(at).groupOverrides.\(key)").map { try override($0, value, at, r) }
            }
            if s.groups == nil { throw r.fail(v, "\(at).groupOverrides needs groups") }
        }
        if !(s.overrides.isEmpty && s.groupOverrides.isEmpty), kinds[0] != "pipeline" {
            throw r.fail(m["overrides"] ?? m["groupOverrides"]!, "\(at): overrides are pipetask's -c/-C and apply to a pipeline step")
        }
        if let v = m["gate"] { s.gate = try gate(v, at, r) }
        if let v = m["pilot"] { s.pilot = try query(v, "\(at).pilot", r) }
        if s.pilot != nil, kinds[0] == "script" || kinds[0] == "graph" {
            throw r.fail(m["pilot"]!, "\(at).pilot is a data query; it applies to a pipeline or builtin step")
        }
        return s
    }

    static func groups(_ v: Node, _ at: String, _ r: Reader) throws -> Groups {
        if v.scalar != nil { return .dimension(try r.string(v, "\(at).groups"), values: nil) }
        let m = try r.mapping(v, "\(at).groups", keys: groupKeys)
        if let q = m["queries"] {
            if m["dimension"] != nil { throw r.fail(v, "\(at).groups: give a dimension or queries, not both") }
            var out: [(name: String, query: String)] = []
            if q.mapping != nil {
                for (k, value) in try r.pairs(q, "\(at).groups.queries") {
                    guard !k.isEmpty, k != "pilot", k.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
                        throw r.fail(q, "\(at).groups.queries: '\(k)' cannot name a group; use letters, digits, '-', '_' and '.' (and not 'pilot')")
                    }
                    out.append((k, try query(value, "\(at).groups.queries.\(k)", r)))
                }
            } else {
                out = try r.sequence(q, "\(at).groups.queries").enumerated().map { i, n in ("q\(i)", try query(n, "\(at).groups.queries[\(i)]", r)) }
            }
            if out.isEmpty { throw r.fail(q, "\(at).groups.queries lists no query") }
            return .queries(out)
        }
        let dn = try r.required(m, "dimension", in: v)
        let d = try r.string(dn, "\(at).groups.dimension")
        guard isDimension(d) else {
            let hint = DidYouMean.suggestion(for: d, among: dimensions).map { "did you mean '\($0)'? " } ?? ""
            throw r.fail(dn, "\(at).groups: '\(d)' is not a dimension; \(hint)(one of \(dimensions.joined(separator: ", ")))")
        }
        let values = try m["values"].map { try r.list($0, "\(at).groups.values") }
        for value in values ?? [] where value.isEmpty || value == "pilot" || !value.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) {
            throw r.fail(m["values"]!, "\(at).groups.values: '\(value)' cannot name a group; use letters, digits, '-', '_' and '.'")
        }
        return .dimension(d, values: values)
    }

    static func override(_ text: String, _ n: Node, _ at: String, _ r: Reader) throws -> ConfigOverride {
        // "label:key=value" (pipetask -c) or "label:file.py" (-C), with or without the flag.
        var t = text.trimmingCharacters(in: .whitespaces)
        var flag: Character?
        if t.hasPrefix("-c ") || t.hasPrefix("-C ") { flag = t[t.index(after: t.startIndex)]; t = String(t.dropFirst(3)).trimmingCharacters(in: .whitespaces) }
        guard let colon = t.firstIndex(of: ":"), colon != t.startIndex else {
            throw r.fail(n, "\(at): override '\(text)' is neither label:key=value (pipetask -c) nor label:file.py (-C)")
        }
        let label = String(t[..<colon]), rest = String(t[t.index(after: colon)...])
        if flag != "C", let eq = rest.firstIndex(of: "="), eq != rest.startIndex {
            return .value(label: label, key: String(rest[..<eq]), value: String(rest[rest.index(after: eq)...]))
        }
        guard flag != "c", rest.hasSuffix(".py") else {
            throw r.fail(n, "\(at): override '\(text)' is neither label:key=value (pipetask -c) nor label:file.py (-C)")
        }
        return .file(label: label, path: rest)
    }

    static func gate(_ v: Node, _ at: String, _ r: Reader) throws -> Gate {
        var g = Gate()
        if v.scalar != nil {
            guard try r.string(v, "\(at).gate") == "manual" else { throw r.fail(v, "\(at).gate: 'manual', or a mapping of \(gateKeys.joined(separator: ", "))") }
            g.manual = true
            return g
        }
        let m = try r.mapping(v, "\(at).gate", keys: gateKeys)
        if let f = m["maxFailedFraction"] {
            guard let x = f.float ?? f.int.map(Double.init), (0...1).contains(x) else {
                throw r.fail(f, "\(at).gate.maxFailedFraction: a fraction from 0 to 1 (0.05 for 5 %)")
            }
            g.maxFailedFraction = x
        }
        if let d = m["datasetTypes"] { g.datasetTypes = try r.list(d, "\(at).gate.datasetTypes") }
        if let o = m["outputsValidated"] { g.outputsValidated = try r.bool(o, "\(at).gate.outputsValidated") }
        if let c = m["command"] { g.command = try r.string(c, "\(at).gate.command") }
        if let c = m["manual"] { g.manual = try r.bool(c, "\(at).gate.manual") }
        if g.isEmpty { throw r.fail(v, "\(at).gate sets nothing; give \(gateKeys.joined(separator: ", "))") }
        return g
    }

    static func rule(_ n: Node, index: Int, _ r: Reader) throws -> ErrorRule {
        let at = "rules[\(index)]"
        let m = try r.mapping(n, at, keys: ruleKeys)
        let message = try r.string(try r.required(m, "message", in: n), "\(at).message")
        let task = try m["task"].map { try r.string($0, "\(at).task") }
        for (key, pattern) in [("message", message), ("task", task)] {
            guard let pattern else { continue }
            do { _ = try NSRegularExpression(pattern: pattern) } catch {
                throw r.fail(m[key]!, "\(at).\(key): '\(pattern)' is not a regular expression")
            }
        }
        func choice<T: RawRepresentable & CaseIterable>(_ key: String, _ type: T.Type) throws -> T where T.RawValue == String {
            let node = try r.required(m, key, in: n)
            let text = try r.string(node, "\(at).\(key)")
            guard let v = T(rawValue: text) else {
                throw r.fail(node, "\(at).\(key): '\(text)' is not one of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return v
        }
        var rule = ErrorRule(task: task, message: message, origin: try choice("class", ErrorRule.Origin.self), action: try choice("action", ErrorRule.Action.self))
        if let v = m["retries"] {
            rule.retries = try r.int(v, "\(at).retries")
            guard rule.action == .retry, rule.retries >= 1 else { throw r.fail(v, "\(at).retries: at least 1, and only with action: retry") }
        }
        return rule
    }

    /// Node access with errors naming the file and line.
    struct Reader {
        let source: String

        func fail(_ n: Node, _ what: String) -> QuantaError {
            QuantaError(.invalidConfig, "\(source):\(n.mark.map { "\($0.line)" } ?? "?"): \(what)")
        }

        /// A mapping whose keys must be among `keys` (a near miss gets "did you mean").
        func mapping(_ n: Node, _ what: String, keys: [String]) throws -> [String: Node] {
            var out: [String: Node] = [:]
            for (k, v) in try pairs(n, what) {
                guard keys.contains(k) else {
                    let hint = DidYouMean.suggestion(for: k, among: keys).map { "did you mean '\($0)'?" } ?? "known keys: \(keys.joined(separator: ", "))"
                    throw QuantaError(.invalidConfig, "\(source):\(v.mark.map { "\($0.line)" } ?? "?"): \(what): unknown key '\(k)'; \(hint)")
                }
                out[k] = v
            }
            return out
        }

        func pairs(_ n: Node, _ what: String) throws -> [(String, Node)] {
            guard let m = n.mapping else { throw fail(n, "\(what): expected a mapping of keys") }
            var out: [(String, Node)] = []
            var seen = Set<String>()
            for (k, v) in m {
                guard let key = k.string else { throw fail(k, "\(what): a key must be text") }
                guard seen.insert(key).inserted else { throw fail(k, "\(what): '\(key)' is given twice") }
                out.append((key, v))
            }
            return out
        }

        func required(_ m: [String: Node], _ key: String, in n: Node) throws -> Node {
            guard let v = m[key] else { throw fail(n, "missing '\(key)'") }
            return v
        }

        func sequence(_ n: Node, _ what: String) throws -> [Node] {
            guard let s = n.sequence else { throw fail(n, "\(what): expected a list") }
            return Array(s)
        }

        func string(_ n: Node, _ what: String) throws -> String {
            guard let s = n.scalar?.string else { throw fail(n, "\(what): expected a single value") }
            return s
        }

        func int(_ n: Node, _ what: String) throws -> Int {
            guard let i = n.int else { throw fail(n, "\(what): expected a whole number") }
            return i
        }

        func bool(_ n: Node, _ what: String) throws -> Bool {
            guard let b = n.bool else { throw fail(n, "\(what): expected true or false") }
            return b
        }

        /// A YAML list, or one value (commas kept: an override's value may hold them).
        func values(_ n: Node, _ what: String) throws -> [String] {
            if let s = n.sequence { return try s.map { try string($0, what) } }
            return [try string(n, what)]
        }

        /// A YAML list, or one comma-separated value.
        func list(_ n: Node, _ what: String) throws -> [String] {
            if let s = n.sequence { return try s.map { try string($0, what) } }
            return try string(n, what).split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
    }
}
