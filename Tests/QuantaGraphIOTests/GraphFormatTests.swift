import Foundation
import Testing
import QuantaTestSupport
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

@Suite struct ScaleHelperTests {
    @Test func crc32MatchesTheStandardCheckValue() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        let bytes = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var split = CRC32()
        split.update(Array(bytes[..<777]))
        split.update(Array(bytes[777...]))
        #expect(split.value == CRC32.checksum(bytes))
        #expect(CRC32.checksum([]) == 0)
    }

    @Test func uuidSetFindsEveryDuplicateAndNoFalseOne() {
        var set = UUIDSet(capacity: 50_000)
        let ids = (0..<50_000).map { _ in UUID.v7() }
        var new = 0, again = 0
        for id in ids where set.insert(id) { new += 1 }
        for id in ids where set.insert(id) { again += 1 }
        #expect(new == ids.count && again == 0)
        // Same random half, different time half: still different UUIDs.
        let a = UUID().uuid
        var b = a
        b.0 ^= 1
        let first = set.insert(UUID(uuid: a)), second = set.insert(UUID(uuid: b))
        #expect(first && second)
        let zero = UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        let zeroFirst = set.insert(zero), zeroAgain = set.insert(zero)
        #expect(zeroFirst && !zeroAgain)
    }

    struct Boom: Error, Equatable { let which: String }

    @Test func parallelBothReturnsBothAndPrefersTheFirstError() throws {
        let (x, y) = try Parallel.both({ (1...1000).reduce(0, +) }, { "b" })
        #expect(x == 500_500 && y == "b")
        #expect(throws: Boom(which: "a")) { try Parallel.both({ throw Boom(which: "a") }, { throw Boom(which: "b") }) }
        #expect(throws: Boom(which: "b")) { try Parallel.both({ 1 }, { throw Boom(which: "b") }) }
    }

    /// Every slot is written from whichever thread runs its slice; heap-allocated results (strings)
    /// make a race on the slot storage corrupt memory or lose values. CI's status poll crashed in
    /// malloc this way before the slots were allocated once.
    @Test func parallelMapKeepsEveryResultUnderContention() throws {
        for round in 0..<30 {
            let n = 20_000 + round
            let out = try Parallel.map(count: n) { i in "value-\(i)-" + String(repeating: "x", count: i % 40) }
            #expect(out.count == n)
            let wrong = out.enumerated().filter { $0.element != "value-\($0.offset)-" + String(repeating: "x", count: $0.offset % 40) }
            #expect(wrong.isEmpty, "round \(round): \(wrong.count) results lost or misplaced")
        }
        #expect(throws: Boom(which: "7")) {
            try Parallel.map(count: 10_000) { i -> Int in
                if i == 7 || i == 9_000 { throw Boom(which: "\(i)") }
                return i
            }
        }
    }

    @Test func damagedDataIDSectionReportsTheChecksum() throws {
        let g = pipelineGraph(visits: [1, 2], detectors: [0, 1])
        var bytes = try NativeGraphFormat.encode(g)
        let dids = bytes.indices.first { bytes[$0...].starts(with: Array("DIDS".utf8)) }!
        bytes[dids + 12 + 6] ^= 0xFF  // a value byte inside the first data ID
        #expect {
            try NativeGraphFormat.decode(bytes, source: "g.qgn")
        } throws: { e in ((e as? QuantaError)?.message ?? "").contains("g.qgn: corrupt: checksum") }
    }
}

@Suite struct DataIDJSONTests {
    @Test func jsonTextIsExactAndRoundTrips() throws {
        let id = DataID([("instrument", .string("Cam \"1\" \\ $(rm -rf) é\n\t\u{1}")), ("visit", .int(-903334)),
                         ("detector", .int(Int64.min)), ("exposure", .int(0)), ("day", .int(Int64.max))])
        #expect(id.json == #"[["instrument","Cam \"1\" \\ $(rm -rf) é\n\t\u0001"],["visit",-903334],["detector",-9223372036854775808],["exposure",0],["day",9223372036854775807]]"#)
        #expect(try DataID(json: id.json) == id)
        #expect(DataID.empty.json == "[]")
        #expect(JSONText.quote("a\u{7f}b") == "\"a\u{7f}b\"")
    }
}

@Suite struct TimestampTests {
    @Test func matchesFoundationsISO8601Text() {
        for t in [0.0, 1_700_000_000.4, 1_795_000_123.9, 951_782_400] {  // 2000-02-29 among them
            let d = Date(timeIntervalSince1970: t)
            #expect(Timestamp.iso8601(d) == ISO8601DateFormatter().string(from: d))
        }
    }
}
