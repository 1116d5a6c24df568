import Foundation
import Testing
import QuantaCore

/// Pieces of the scale work (issue 6) that are pure logic.
@Suite struct ScaleTests {
    @Test func fastUUIDTextMatchesFoundation() {
        for _ in 0..<1000 {
            let u = UUID()
            #expect(u.lowercased == u.uuidString.lowercased())
        }
        #expect(UUID(uuid: (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 255)).lowercased == "00010203-0405-0607-0809-0a0b0c0d0eff")
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
}
