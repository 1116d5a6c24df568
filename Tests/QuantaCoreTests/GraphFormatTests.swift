import Foundation
import Testing
@testable import QuantaCore
@testable import QuantaGraphIO

@Suite struct GraphFormatTests {
    @Test func roundTripsEveryField() throws {
        var g = pipelineGraph(visits: [903334, 903336], detectors: [0, 42])
        g.metadata["note"] = "quotes ' \" and $(x)"
        let bytes = try NativeGraphFormat.encode(g)
        let back = try NativeGraphFormat.decode(bytes, source: "mem")
        #expect(back == g)
        #expect(try NativeGraphFormat.encode(back) == bytes)
    }

    @Test func writesAtomicallyAndReadsBack() throws {
        let dir = try temporaryDirectory()
        let g = pipelineGraph(visits: [1], detectors: [0, 1])
        try NativeGraphFormat.write(g, to: dir + "/g.qgn")
        #expect(try NativeGraphFormat.read(path: dir + "/g.qgn") == g)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["g.qgn"])
    }

    @Test func truncatedFileSaysSo() throws {
        let bytes = try NativeGraphFormat.encode(pipelineGraph(visits: [1], detectors: [0, 1]))
        for cut in [bytes.count - 1, bytes.count / 2, 20] {
            #expect {
                try NativeGraphFormat.decode(Array(bytes.prefix(cut)), source: "g.qgn")
            } throws: { e in
                let m = (e as? QuantaError)?.message ?? ""
                return m.hasPrefix("g.qgn: truncated")
            }
        }
    }

    @Test func unknownVersionIsRefused() throws {
        var bytes = try NativeGraphFormat.encode(pipelineGraph(visits: [1], detectors: [0]))
        bytes[8] = 7
        #expect {
            try NativeGraphFormat.decode(bytes, source: "g.qgn")
        } throws: { e in ((e as? QuantaError)?.message ?? "").contains("version 7 is not supported") }
    }

    @Test func flippedByteFailsTheChecksum() throws {
        var bytes = try NativeGraphFormat.encode(pipelineGraph(visits: [1], detectors: [0]))
        let i = bytes.count - 40
        bytes[i] ^= 0x01
        #expect {
            try NativeGraphFormat.decode(bytes, source: "g.qgn")
        } throws: { e in ((e as? QuantaError)?.message ?? "").contains("g.qgn: corrupt") }
    }

    @Test func notAGraphFile() throws {
        #expect {
            try NativeGraphFormat.decode(Array("PK\u{3}\u{4}zipzipzipzip".utf8), source: "x.qg")
        } throws: { e in ((e as? QuantaError)?.message ?? "").contains("ZIP") }
    }
}

@Suite struct GraphValidationTests {
    @Test func duplicateUUIDIsNamed() throws {
        var g = pipelineGraph(visits: [1], detectors: [0, 1])
        g.quanta[1].id = g.quanta[0].id
        #expect {
            try g.validate(source: "g.qgn")
        } throws: { e in
            let m = (e as? QuantaError)?.message ?? ""
            return m.contains("used twice") && m.contains(g.quanta[0].id.lowercased)
        }
    }

    @Test func danglingReferenceIsNamed() throws {
        var g = pipelineGraph(visits: [1], detectors: [0])
        g.quantumInputs[0] = 999
        #expect {
            try g.validate(source: "g.qgn")
        } throws: { e in ((e as? QuantaError)?.message ?? "").contains("dangling") }
    }

    @Test func inputWithNoProducerAndNoLocationIsDangling() throws {
        var g = pipelineGraph(visits: [1], detectors: [0])
        let raw = Int(g.quantumInputs[0])
        g.datasets[raw].location = nil
        #expect {
            try g.validate(source: "g.qgn")
        } throws: { e in
            let m = (e as? QuantaError)?.message ?? ""
            return m.contains("dangling input") && m.contains("raw")
        }
    }

    @Test func cycleNamesTheTasks() throws {
        var b = GraphBuilder(universe: ["visit"])
        b.addDatasetType("a", dimensions: ["visit"], storageClass: "Text")
        b.addDatasetType("b", dimensions: ["visit"], storageClass: "Text")
        b.addTask(TaskNode(label: "makeA", dimensions: ["visit"], inputTypes: ["b"], outputTypes: ["a"]))
        b.addTask(TaskNode(label: "makeB", dimensions: ["visit"], inputTypes: ["a"], outputTypes: ["b"]))
        let id = DataID([("visit", .int(1))])
        let a = b.dataset("a", id, run: "r"), bb = b.dataset("b", id, run: "r")
        b.addQuantum(task: "makeA", dataID: id, inputs: [bb], outputs: [a])
        b.addQuantum(task: "makeB", dataID: id, inputs: [a], outputs: [bb])
        #expect {
            try b.graph.validate(source: "g.qgn")
        } throws: { e in
            let m = (e as? QuantaError)?.message ?? ""
            return m.contains("cycle") && m.contains("makeA") && m.contains("makeB")
        }
    }
}
