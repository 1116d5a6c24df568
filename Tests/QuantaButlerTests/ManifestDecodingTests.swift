import Foundation
import Testing
import QuantaTestSupport
@testable import QuantaButler
@testable import QuantaCore

@Suite struct ManifestDecodingTests {
    func sample() -> Manifest {
        let out = OutputRecord(id: "01a1ff27-3cfd-7b40-8703-cf4fe7e49c69", type: "calexp", dataID: #"[["instrument","Cam \"1\""],["visit",-3]]"#,
                               run: "u/someone/run", path: "u/someone/run/calexp/x y.fits", size: 12_345_678_901, checksum: "crc32:84187507")
        var ok = QuantumRecord(id: "q1", task: "isr", dataID: "[]", status: .succeeded, reason: nil, seconds: 0.011729001998901367,
                               log: "/tmp/l.log", outputs: [out, out])
        // What run-quantum measured (issue 17).
        ok.startedAt = "2026-11-21T17:28:47Z"
        ok.cpuSeconds = 0.731
        ok.peakRSSKB = 1_234_567
        ok.readBytes = 40_960
        ok.writtenBytes = 9_876_543_210
        let bad = QuantumRecord(id: "q2", task: "calibrate", dataID: "[]", status: .failed,
                                reason: "exit code 3: ERROR: \"quoted\" \\ back\nnew line\ttab $(rm -rf /) é 🚀 \u{1}",
                                seconds: 1e-7, log: nil, outputs: [], exitCode: -9)
        var blocked = QuantumRecord(id: "q3", task: "gather", dataID: "[]", status: .blocked, reason: "missing input", seconds: 0,
                                    log: nil, outputs: [])
        blocked.blockedByTask = "calibrate"
        blocked.blockedByReason = "exit code 3: ERROR"
        var m = Manifest(submission: "sub", array: "isr-2", index: 41, attempt: 3, status: .failed, firstError: "calibrate: exit code 3",
                         startedAt: "2026-11-21T17:28:47Z", endedAt: "2026-11-21T17:28:48Z", seconds: 1.25, host: "node-7",
                         slurmJobID: "1234", slurmArrayJobID: nil, maxRSSKB: 35956, quanta: [ok, bad, blocked],
                         failureClass: .outOfMemory, memoryLimitMB: 2048)
        m.cpuSeconds = 1.5
        m.readBytes = 0
        m.writtenBytes = 123
        return m
    }

    func decode(_ data: Data) throws -> Manifest {
        try data.withUnsafeBytes { try Manifest.decode($0) }
    }

    @Test func handDecoderMatchesJSONDecoder() throws {
        let m = sample()
        for encoder in [JSONEncoder.pretty, JSONEncoder()] {
            let data = try encoder.encode(m)
            #expect(try decode(data) == m)
            #expect(try JSONDecoder().decode(Manifest.self, from: data) == m)
        }
        var statesOnly = m
        for i in statesOnly.quanta.indices { statesOnly.quanta[i].outputs = [] }
        #expect(try JSONEncoder.pretty.encode(m).withUnsafeBytes { try Manifest.decode($0, outputs: false) } == statesOnly)
        var minimal = m
        minimal.firstError = nil; minimal.slurmJobID = nil; minimal.failureClass = nil; minimal.memoryLimitMB = nil; minimal.quanta = []
        minimal.cpuSeconds = nil; minimal.readBytes = nil; minimal.writtenBytes = nil
        #expect(try decode(try JSONEncoder.pretty.encode(minimal)) == minimal)
    }

    @Test func nullsUnknownKeysAndEscapes() throws {
        let text = #"""
        { "unknown": {"a": [1, 2.5e3, true, false, null, {"b": "\u00e9"}]}, "submission": "s\u00e9\/\ud83d\ude80", "array": "a",
          "index": 0, "attempt": 1, "status": "succeeded", "firstError": null, "startedAt": "t", "endedAt": "t",
          "seconds": 0, "host": "h", "slurmJobID": null, "maxRSSKB": 1, "memoryLimitMB": null, "formatVersion": 1,
          "quanta": [ { "id": "q", "task": "t", "dataID": "[]", "status": "blocked", "reason": null, "seconds": 0.5,
                        "outputs": [], "extra": [[[]]] } ] }
        """#
        let m = try decode(Data(text.utf8))
        #expect(m.submission == "sé/🚀" && m.quanta.count == 1 && m.quanta[0].status == .blocked && m.firstError == nil)
        #expect(try JSONDecoder().decode(Manifest.self, from: Data(text.utf8)) == m)
    }

    @Test func damagedManifestsAreErrorsNotCrashes() throws {
        let data = try JSONEncoder.pretty.encode(sample())
        for cut in stride(from: 0, to: data.count, by: 7) {
            #expect(throws: (any Error).self) { try decode(data.prefix(cut)) }
        }
        var flipped = 0
        for i in stride(from: 0, to: data.count, by: 3) {
            var d = data
            d[i] ^= 0x20
            let mine = try? decode(d), theirs = try? JSONDecoder().decode(Manifest.self, from: d)
            if let mine, let theirs { #expect(mine == theirs) }
            if mine == nil { flipped += 1 }
        }
        #expect(flipped > 0)
        let missing = String(decoding: data, as: UTF8.self).replacingOccurrences(of: "\"host\"", with: "\"hast\"")
        #expect { try decode(Data(missing.utf8)) } throws: { "\($0)".contains("no \"host\" in the manifest") }
        #expect(throws: (any Error).self) { try decode(Data(#"{"status": "weird"}"#.utf8)) }
        #expect(throws: (any Error).self) { try decode(Data((String(decoding: data, as: UTF8.self) + " x").utf8)) }
    }

    @Test func readReportsTheFileAndWhatToDo() throws {
        let dir = try temporaryDirectory()
        let path = dir + "/m.json"
        #expect(try Manifest.read(path: path) == nil)
        try Data("{\"array\": ".utf8).write(to: URL(fileURLWithPath: path))
        #expect { try Manifest.read(path: path) } throws: { e in
            let m = (e as? QuantaError)?.message ?? ""
            return m.hasPrefix(path + ": unreadable manifest") && m.contains("quanta rerun --force")
        }
        let big = sample()
        var many = big
        many.quanta = Array(repeating: big.quanta[0], count: 400)  // > 16 KB: the read grows
        try JSONEncoder.pretty.encode(many).write(to: URL(fileURLWithPath: path))
        #expect(try Manifest.read(path: path) == many)
    }

    /// The snapshot header is read by hand too (every job reads it): same as JSONDecoder, and a
    /// damaged header is an error, never a crash.
    @Test func snapshotHeaderMatchesJSONDecoder() throws {
        let h = SnapshotFile.Header(
            meta: ["submission": "s \"1\"", "datastoreRoot": "/data/x y/é", "empty": ""],
            tasks: ["isr": ["command", "cp {input:in} {output:out} && echo $(x) \\ done", nil], "b/c": [nil, nil, "calibrate"]],
            datasetTypes: [["raw", "instrument,visit,detector", "Exposure"], ["calexp", "", "ExposureF"]],
            taskLabels: ["isr", "b/c"], typeNames: ["raw", "calexp"], storageClasses: ["Exposure", "ExposureF"],
            runs: ["u/someone/run", "raw/all"], arrays: (0..<300).map { ["isr-\($0)", "isr"] } + [["c", "b/c"]],
            template: "{run}/{datasetType}/{id}.fits", repoKind: "native", sections: ["elemStart": [0, 1204], "quanta": [1208, 40]])
        for encoder in [JSONEncoder(), JSONEncoder.pretty] {
            let data = try encoder.encode(h)
            let hand = try data.withUnsafeBytes { try SnapshotFile.Header.decode($0) }
            #expect(hand == (try JSONDecoder().decode(SnapshotFile.Header.self, from: data)))
            #expect(hand == h)
            for cut in stride(from: 0, to: data.count, by: 97) {
                #expect(throws: (any Error).self) { try data.prefix(cut).withUnsafeBytes { try SnapshotFile.Header.decode($0) } }
            }
        }
        var missing = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(h)) as! [String: Any]
        missing["arrays"] = nil
        let text = try JSONSerialization.data(withJSONObject: missing)
        #expect(throws: (any Error).self) { try text.withUnsafeBytes { try SnapshotFile.Header.decode($0) } }
    }
}
