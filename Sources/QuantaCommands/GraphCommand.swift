import ArgumentParser
import Foundation
import QuantaCore
import QuantaGraphIO

struct GraphCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "graph", abstract: "Inspect and check graph files.", subcommands: [Info.self, Validate.self])

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Tasks, quanta per task, datasets, dimensions, output run.")
        @Argument(help: "Graph file.") var graph: String

        func run() throws {
            let start = Date()
            let kind = try GraphFile.kind(path: graph)
            let g = try GraphFile.read(path: graph)
            let readSeconds = Date().timeIntervalSince(start)
            var perTask = [Int](repeating: 0, count: g.tasks.count)
            for q in g.quanta { perTask[Int(q.task)] += 1 }
            let producers = g.producers()
            print("Graph \(graph) (\(GraphFile.describe(kind)), read in \(String(format: "%.3f", readSeconds)) s)")
            print("  output run   \(g.outputRun ?? "-")\(g.metadata["output"].map { " (chain \($0))" } ?? "")")
            print("  inputs       \(g.metadata["inputCollections"] ?? "-")")
            print("  dimensions   \(g.universe.joined(separator: ", "))")
            print("  \(g.quanta.count) quanta, \(g.datasets.count) datasets (\(producers.filter { $0 < 0 }.count) overall inputs), \(g.tasks.count) tasks")
            print("")
            let rows = g.tasks.enumerated().map { i, t in
                [t.label, String(perTask[i]), t.dimensions.joined(separator: ","), t.inputTypes.joined(separator: ","), t.outputTypes.joined(separator: ",")]
            }
            TextTable.render(header: ["task", "quanta", "dimensions", "inputs", "outputs"], rows: rows).forEach { print($0) }
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
