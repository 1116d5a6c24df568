import Foundation
import QuantaDemo
import Testing
import QuantaTestSupport
import QuantaCore
import QuantaGraphIO

/// Pieces of the scale work (issue 6) that are pure logic.
@Suite struct ScaleTests {
    @Test func fastUUIDTextMatchesFoundation() {
        for _ in 0..<1000 {
            let u = UUID()
            #expect(u.lowercased == u.uuidString.lowercased())
        }
        #expect(UUID(uuid: (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 255)).lowercased == "00010203-0405-0607-0809-0a0b0c0d0eff")
    }

    /// Version 7 as RFC 9562 lays it out (48-bit ms time, version 7, variant 10), from the bulk
    /// generator and from `UUID.v7()`, and no two alike.
    @Test func v7UUIDsHaveTheirLayoutAndAreDistinct() {
        var g = UUIDGenerator()
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        var seen = Set<UUID>(), bad = 0
        for k in 0..<200_000 {
            let u = k % 4 == 0 ? UUID.v7() : g.next()
            let b = u.uuid
            let ms = [b.0, b.1, b.2, b.3, b.4, b.5].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            if b.6 >> 4 != 7 || b.8 >> 6 != 2 || ms + 60_000 < now || ms > now + 60_000 { bad += 1 }
            seen.insert(u)
        }
        #expect(bad == 0 && seen.count == 200_000, "\(bad) malformed, \(200_000 - seen.count) repeated")
        #expect(UUID(uuidString: g.next().uuidString) != nil)
    }

    @Test func syntheticGraphHasTheDRPShape() throws {
        let s = SyntheticGraph(visits: 30, detectors: 8, patches: 5, patchesPerVisit: 3)
        let g = s.build()
        _ = try g.validate(source: "synthetic")
        #expect(g.quanta.count == s.quantaEstimate, "\(g.quanta.count) vs \(s.quantaEstimate)")
        var perTask: [String: Int] = [:]
        for q in g.quanta { perTask[g.tasks[Int(q.task)].label, default: 0] += 1 }
        #expect(perTask["isr"] == 240 && perTask["calibrate"] == 240 && perTask["gather"] == 30 && perTask["makeWarp"] == 90)
        #expect(perTask["assembleCoadd"] == perTask["detectCoadd"] && perTask["assembleCoadd"]! <= 10)
        // Many-to-many: a coadd reads warps of several visits; every calexp feeds exactly one warp.
        let coadd = g.tasks.firstIndex { $0.label == "assembleCoadd" }!
        #expect(g.quanta.indices.contains { Int(g.quanta[$0].task) == coadd && g.inputs(of: $0).count > 1 })
        let warp = g.tasks.firstIndex { $0.label == "makeWarp" }!
        let fed = g.quanta.indices.filter { Int(g.quanta[$0].task) == warp }.reduce(0) { $0 + g.inputs(of: $1).count }
        #expect(fed == 240)
    }

    /// `graph info`'s summary read agrees with the full read, and still checks the checksum.
    @Test func summaryReadMatchesTheFullRead() throws {
        let g = SyntheticGraph(visits: 12, detectors: 5, patches: 4, patchesPerVisit: 2).build()
        let path = try temporaryDirectory() + "/g.qgn"
        try NativeGraphFormat.write(g, to: path)
        let s = try NativeGraphFormat.summary(path: path)
        let full = try NativeGraphFormat.read(path: path)
        var perTask = [Int](repeating: 0, count: full.tasks.count)
        for q in full.quanta { perTask[Int(q.task)] += 1 }
        #expect(s.quanta == full.quanta.count && s.datasets == full.datasets.count && s.quantaPerTask == perTask)
        #expect(s.overallInputs == full.producers().filter { $0 < 0 }.count && s.overallInputs == 60)
        #expect(s.graph.tasks == full.tasks && s.graph.metadata == full.metadata)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count / 2] ^= 0x40
        try bytes.write(to: URL(fileURLWithPath: path))
        #expect(throws: QuantaError.self) { try NativeGraphFormat.summary(path: path) }
    }
}
