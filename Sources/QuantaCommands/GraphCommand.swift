import ArgumentParser
import Foundation
import QuantaDemo
import QuantaRegistry
import QuantaButler
import QuantaCore
import QuantaGraphIO

struct GraphCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "graph", abstract: "Build, inspect and check graph files.", subcommands: [Build.self, Info.self, Validate.self, Dump.self, Synth.self])

    struct Build: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Build the built-in pipeline's graph from what a Quanta repository holds (pipetask qgraph, for Quanta repositories).",
            discussion: """
            The pipeline is isr → calibrate → makeWarp → assembleCoadd → detectCoadd. With --tasks, only those
            tasks: what the others make is read from the input collections (an earlier step's outputs), and a
            quantum whose input is in neither is not made. --where takes the butler's query language:
              quanta graph build --repo repo --tasks isr,calibrate --where "band = 'g'" --out g.qgn
              quanta graph build --repo repo --tasks makeWarp,assembleCoadd,detectCoadd --input u/me/step1 \\
                  --input QuantaCam/raw/all --input QuantaCam/calib --input skymaps --out coadd.qgn
            """)
        @Option(name: .long, help: "The Quanta repository.") var repo: String
        @Option(name: .long, parsing: .singleValue, help: "Tasks to include, comma-separated or repeated (default: all).") var tasks: [String] = []
        @Option(name: [.customShort("d"), .customLong("where")], help: "Data query, e.g. \"band = 'g' AND visit IN (1..3)\".") var query: String?
        @Option(name: [.customShort("i"), .customLong("input")], parsing: .singleValue,
                help: "Input collection, repeated in search order (default: the raw, calibration and sky-map runs).") var inputs: [String] = []
        @Option(name: .long, help: "Output RUN collection (default <output>/<timestamp>).") var outputRun: String?
        @Option(name: .long, help: "Output chain.") var output = "u/\(ProcessInfo.processInfo.environment["USER"] ?? "quanta")/graph"
        @Option(name: .long, help: "Graph file to write (.qgn).") var out: String

        func run() throws {
            let started = Date()
            let repository = try Repository(root: repo)
            guard repository.kind == .quanta else {
                throw ValidationError("\(repo) is an LSST butler repository; build its graph with 'pipetask qgraph'")
            }
            var request = PipelineGraph.Request(outputRun: outputRun ?? "\(output)/\(Demo.timestamp())", output: output)
            request.tasks = tasks.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }.filter { !$0.isEmpty }
            request.query = try query.map { try DataQuery.parse($0, known: DemoSurvey.universe) }
            request.inputs = inputs
            let g = try PipelineGraph.build(repo: repository, request)
            guard !g.quanta.isEmpty else {
                // As pipetask qgraph: an empty graph is an error, and no file is written.
                throw QuantaError(.planning, "the graph is empty: nothing in \((inputs.isEmpty ? PipelineGraph.defaultInputs : inputs).joined(separator: ", ")) makes a quantum of \(request.tasks?.isEmpty == false ? request.tasks!.joined(separator: ", ") : "the pipeline")\(query.map { " for \"\($0)\"" } ?? ""); no file written")
            }
            try NativeGraphFormat.write(g, to: out)
            let perTask = g.tasks.indices.map { t in g.quanta.lazy.filter { Int($0.task) == t }.count }
            let parts = zip(g.tasks, perTask).map { "\($0.0.label) \($0.1)" }.joined(separator: ", ")
            print("\(out): \(g.quanta.count) quanta (\(parts.isEmpty ? "no tasks" : parts)), output run \(request.outputRun) (\(String(format: "%.2f", Date().timeIntervalSince(started))) s)")
        }
    }

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
