import Foundation
import Testing
import QuantaCore
import QuantaFITS
import QuantaGraphIO

/// run-quantum checks data, not exit codes: FITS outputs of a command that exits 0 are still read
/// to the end and held to their limits; a failure fails the quantum, blocks its downstream and
/// registers nothing.
@Suite(.serialized) struct ValidationTests {
    /// `make` copies each visit's input FITS to `img`, `use` copies `img` to `out`.
    func makeGraph(_ cli: CLI, inputs: [String: Data]) throws -> String {
        #expect(try cli.run(["repo", "create", "repo"]).status == .exited(0))
        var b = GraphBuilder(universe: ["instrument", "visit"], metadata: ["outputRun": "u/v/run", "output": "u/v", "inputCollections": "in"])
        for t in ["in", "img", "out"] { b.addDatasetType(t, dimensions: ["instrument", "visit"], storageClass: "ImageF") }
        b.addTask(TaskNode(label: "make", dimensions: ["instrument", "visit"], inputTypes: ["in"], outputTypes: ["img"]))
        b.addTask(TaskNode(label: "use", dimensions: ["instrument", "visit"], inputTypes: ["img"], outputTypes: ["out"]))
        for (visit, data) in inputs.sorted(by: { $0.key < $1.key }) {
            let id = DataID([("instrument", .string("Cam")), ("visit", .int(Int64(visit)!))])
            let loc = "in/\(visit).fits"
            try FileManager.default.createDirectory(atPath: cli.path("repo/datastore/in"), withIntermediateDirectories: true)
            try data.write(to: URL(fileURLWithPath: cli.path("repo/datastore/" + loc)))
            let input = b.dataset("in", id, run: "in", location: loc)
            let img = b.dataset("img", id, run: "u/v/run")
            b.addQuantum(task: "make", dataID: id, inputs: [input], outputs: [img])
            b.addQuantum(task: "use", dataID: id, inputs: [img], outputs: [b.dataset("out", id, run: "u/v/run")])
        }
        try NativeGraphFormat.write(b.graph, to: cli.path("g.qgn"))
        try cli.registerInputs(b.graph, repo: "repo")
        return cli.path("g.qgn")
    }

    func fits(_ dir: String, _ name: String, nanPixels: Int, nanColumn: Bool = false) throws -> Data {
        let path = dir + "/" + name
        let f = try FITSFile(create: path)
        try f.writeImage(width: 20, height: 10, pixels: (0..<200).map { $0 < nanPixels ? .nan : Float($0) })
        try f.writeChecksum()
        try f.writeTable(name: "SRC", columns: [.init("flux", .double(nanColumn ? [.nan, .nan] : [1, .nan]))])
        try f.writeChecksum()
        try f.close()
        return try Data(contentsOf: URL(fileURLWithPath: path))
    }

    @Test func invalidOutputsFailTheirQuantumAndRegisterNothing() throws {
        let cli = try CLI()
        let good = try fits(cli.cwd, "good.fits", nanPixels: 1)
        let graph = try makeGraph(cli, inputs: [
            "1": good,
            "2": try fits(cli.cwd, "nan.fits", nanPixels: 20),           // 10 % NaN
            "3": good.prefix(good.count - 2000),                          // cut short
            "4": try fits(cli.cwd, "col.fits", nanPixels: 0, nanColumn: true),
            "5": try fits(cli.cwd, "nan5.fits", nanPixels: 10),           // 5 %, allowed for 'out' only
        ])
        try Data("""
        pipetask:
          make: {command: "cp {input:in} {output:img}"}
          use: {command: "cp {input:img} {output:out}"}
        validation:
          datasetTypes:
            img: {maxImageNaNFraction: 0.06}
        """.utf8).write(to: URL(fileURLWithPath: cli.path("submit.yaml")))
        // visit 5 passes `make` (img allows 6 %) but `use` copies it to `out`, held to the default 1 %.
        #expect(try cli.run(["plan", graph, "--repo", "repo", "--config", "submit.yaml", "--out", "sub"]).status == .exited(0))
        let run = try cli.run(["run", "sub"])
        #expect(run.status == .exited(1), "\(run.output)")
        let status = try cli.run(["status", "sub"]).stdout
        let nanMessage = "invalid output out {instrument=Cam, visit=5}: \(cli.path("repo/datastore/u/v/run"))"
        #expect(status.contains(nanMessage) && status.contains("HDU 1: 5 % of 200 pixels are NaN, more than the 1 % allowed for out"), "\(status)")
        #expect(status.contains("HDU 1: 10 % of 200 pixels are NaN, more than the 6 % allowed for img"), "\(status)")
        #expect(status.contains("visit=3") && status.contains("cannot be read to its end"), "\(status)")
        #expect(status.contains("HDU 2 (SRC): column flux: all 2 values are NaN"), "\(status)")
        // Downstream of a rejected output: blocked, never run on bad data.
        let use2 = try manifest(cli, "use", 1)
        #expect(use2["status"] as? String == "blocked", "\(use2)")
        // Rejected files are kept for a person to look at, outside the datastore.
        let rejected = cli.allFiles().filter { $0.hasPrefix("sub/rejected/") && $0.hasSuffix(".fits") }
        #expect(rejected.count == 4, "\(rejected)")
        // Registered: visit 1's img and out, visit 5's img (5 % NaN: allowed for img, not for out).
        let registered = try cli.datasets(repo: cli.path("repo"), collection: "u/v/run").map {
            "\($0["datasetType"]!) \(try DataID(json: $0["dataID"] as! String)["visit"]!)"
        }.sorted()
        #expect(registered == ["img 1", "img 5", "out 1"], "\(registered)")
        #expect(!cli.allFiles().contains { $0.contains(".tmp-") })
        // The same check from the shell, for the person at 2 a.m.
        let check = try cli.run(["fits", "check", cli.path("good.fits"), cli.path("col.fits")])
        #expect(check.status == .exited(1) && check.stdout.contains("1 of 2 files valid"), "\(check.output)")
    }

    func manifest(_ cli: CLI, _ array: String, _ index: Int) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(cli.read(cli.path("sub/manifests/\(array)/\(index).json")).utf8)) as! [String: Any]
    }
}
