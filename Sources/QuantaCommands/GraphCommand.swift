import ArgumentParser
import Foundation
import QuantaDemo
import QuantaRegistry
import QuantaButler
import QuantaCore
import QuantaGraphIO

struct GraphCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "graph", abstract: "Inspect and check graph files.", subcommands: [Info.self, Validate.self, Dump.self, Synth.self])

    struct Synth: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a DRP-shaped synthetic graph of any size (benchmarks, scale tests).",
            discussion: """
            Per-detector chains (isr → calibrate), a per-visit gather, and coadds with many-to-many warps
            (makeWarp per visit × patch, assembleCoadd and detectCoadd per patch × band).
            About 2·visits·detectors + visits + visits·patchesPerVisit + 4·patches quanta:
              quanta graph synth --visits 5000 --detectors 100 --out g.qgn      # ≈ 1,027,000 quanta
            With --repo, the raws are written (tiny text files) and registered so the graph can run.
            """)
        @Option(name: .long, help: "Visits.") var visits = 100
        @Option(name: .long, help: "Detectors per visit.") var detectors = 100
        @Option(name: .long, help: "Patches on the sky (default visits / 10).") var patches = 0
        @Option(name: .long, help: "Patches each visit lands on.") var patchesPerVisit = 4
        @Option(name: .long, help: "Output file (.qgn).") var out: String
        @Option(name: .long, help: "Repository to write and register the raws in (created if missing).") var repo: String?
        @Option(name: .long, help: "Output run of the graph.") var outputRun = "synth/run"

        func run() throws {
            guard visits > 0, detectors > 0 else { throw ValidationError("--visits and --detectors must be at least 1") }
            let started = Date()
            let synth = SyntheticGraph(visits: visits, detectors: detectors, patches: patches, patchesPerVisit: patchesPerVisit,
                                       outputRun: outputRun)
            let g = synth.build()
            let built = Date()
            try NativeGraphFormat.write(g, to: out)
            let size = ((try? FileManager.default.attributesOfItem(atPath: out)[.size] as? Int) ?? 0) / 1_000_000
            print("\(out): \(g.quanta.count) quanta, \(g.datasets.count) datasets, \(size) MB (built \(String(format: "%.2f", built.timeIntervalSince(started))) s, written \(String(format: "%.2f", Date().timeIntervalSince(built))) s)")
            if let repo {
                let r = FileManager.default.fileExists(atPath: repo + "/" + Repository.configName) ? try Repository(root: repo) : try Repository.create(at: repo)
                let n = try SyntheticInputs.write(synth, graph: g, repo: r)
                print("\(r.root): \(n) raws written and registered in \(synth.inputRun)")
            }
        }
    }

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Tasks, quanta per task, datasets, dimensions, output run.")
        @Argument(help: "Graph file.") var graph: String

        @Flag(name: .long, help: "Read the whole graph (pipe_base .qg: every quantum block, to count datasets and overall inputs; slower).")
        var full = false

        func run() throws {
            let start = Date()
            let kind = try GraphFile.kind(path: graph)
            var perTask: [Int]
            var counts: String
            let g: QuantumGraph
            if kind == .lsst && !full {
                // The header has the counts; no quantum block is read.
                let (summary, header) = try LSSTGraphFormat.readSummary(path: graph)
                g = summary
                let byLabel = Dictionary(header.taskQuanta, uniquingKeysWith: { a, _ in a })
                perTask = g.tasks.map { byLabel[$0.label] ?? 0 }
                counts = "\(header.quanta) quanta, \(header.datasets) datasets (init outputs included), \(g.tasks.count) tasks"
            } else if kind != .lsst && !full {
                // Only what the table needs: no data IDs, datasets or quanta are built.
                let s = try NativeGraphFormat.summary(path: graph)
                g = s.graph
                perTask = s.quantaPerTask
                counts = "\(s.quanta) quanta, \(s.datasets) datasets (\(s.overallInputs) overall inputs), \(g.tasks.count) tasks"
            } else {
                g = try GraphFile.read(path: graph)
                perTask = [Int](repeating: 0, count: g.tasks.count)
                for q in g.quanta { perTask[Int(q.task)] += 1 }
                let producers = g.producers()
                counts = "\(g.quanta.count) quanta, \(g.datasets.count) datasets (\(producers.filter { $0 < 0 }.count) overall inputs), \(g.tasks.count) tasks"
            }
            let readSeconds = Date().timeIntervalSince(start)
            print("Graph \(graph) (\(GraphFile.describe(kind)), read in \(String(format: "%.3f", readSeconds)) s)")
            print("  output run   \(g.outputRun ?? "-")\(g.metadata["output"].map { " (chain \($0))" } ?? "")")
            print("  inputs       \(g.metadata["inputCollections"] ?? "-")")
            if let q = g.metadata["dataQuery"] { print("  data query   \(q)") }
            print("  dimensions   \(g.universe.joined(separator: ", "))")
            print("  \(counts)")
            print("")
            let rows = g.tasks.enumerated().map { i, t in
                [t.label, String(perTask[i]), t.dimensions.joined(separator: ","), t.inputTypes.joined(separator: ","), t.outputTypes.joined(separator: ",")]
            }
            TextTable.render(header: ["task", "quanta", "dimensions", "inputs", "outputs"], rows: rows).forEach { print($0) }
        }
    }

    struct Dump: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every quantum as one JSON line: id, task, data ID, inputs and outputs (sorted), then a summary line.",
            discussion: "The same shape as Tests/lsst/export_graph.py prints from pipe_base's own API, so the two can be compared.")
        @Argument(help: "Graph file.") var graph: String

        func run() throws {
            let g = try GraphFile.read(path: graph)
            func pairs(_ id: DataID) -> [[Any]] {
                id.pairs.map { name, v -> [Any] in
                    switch v {
                    case .int(let n): return [name, n]
                    case .string(let s): return [name, s]
                    }
                }
            }
            func ref(_ d: Int32) -> [String: Any] {
                let n = g.datasets[Int(d)]
                return ["id": n.id.lowercased, "type": g.datasetTypes[Int(n.type)].name,
                        "dataId": pairs(g.dataIDs[Int(n.dataID)]), "run": g.runs[Int(n.run)]]
            }
            func sorted(_ refs: [[String: Any]]) -> [[String: Any]] {
                refs.sorted { ("\($0["type"]!)", "\($0["id"]!)") < ("\($1["type"]!)", "\($1["id"]!)") }
            }
            let order = g.quanta.indices.sorted { g.quanta[$0].id.lowercased < g.quanta[$1].id.lowercased }
            var out = ""
            var counts: [String: Int] = [:]
            for q in order {
                let node = g.quanta[q]
                let label = g.taskLabel(ofQuantum: q)
                counts[label, default: 0] += 1
                let line: [String: Any] = ["id": node.id.lowercased, "task": label, "dataId": pairs(g.dataID(ofQuantum: q)),
                                           "inputs": sorted(g.inputs(of: q).map(ref)), "outputs": sorted(g.outputs(of: q).map(ref))]
                out += String(decoding: try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self) + "\n"
            }
            let summary: [String: Any] = ["summary": ["quanta": g.quanta.count, "outputRun": g.outputRun ?? "", "tasks": counts]]
            out += String(decoding: try JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self) + "\n"
            StandardStreams.output(out)
        }
    }

    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check a graph: references, unique UUIDs, no cycles.")
        @Argument(help: "Graph file.") var graph: String

        func run() throws {
            let g = try GraphFile.read(path: graph)
            try g.validate(source: graph)
            print("\(graph): valid (\(g.quanta.count) quanta, \(g.datasets.count) datasets)")
        }
    }
}
