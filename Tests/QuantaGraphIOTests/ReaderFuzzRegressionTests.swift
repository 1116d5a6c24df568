import Foundation
import Testing
import QuantaTestSupport
@testable import QuantaButler
@testable import QuantaCore
@testable import QuantaGraphIO

/// Inputs that trapped or overflowed the stack in a reader (issue 12): each is an error now. The
/// same bytes are regression inputs in Fuzz/corpus/<reader>/.
@Suite struct ReaderFuzzRegressionTests {
    static func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }

    /// Writes `bytes` as `name` in a fresh directory; the `.qg` reader must refuse it with a
    /// message that starts with the file's path and `message`.
    func expectQGRefused(_ bytes: [UInt8], as name: String, saying message: String) throws {
        let path = try temporaryDirectory() + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect {
            try LSSTGraphFormat.read(path: path)
        } throws: { "\($0)".hasPrefix(path + ": " + message) }
    }

    @Test func deeplyNestedManifestValueIsAnError() throws {
        // An unknown key's value is skipped: 100,000 levels of '[' were 100,000 stack frames.
        let text = Array(#"{"note": "#.utf8) + [UInt8](repeating: UInt8(ascii: "["), count: 100_000)
        #expect {
            try text.withUnsafeBytes { try Manifest.decode($0) }
        } throws: { "\($0)".contains("levels of nesting") }
    }

    @Test func zip64RecordAtANegativeOffsetIsAnError() throws {
        // A local header, then a zip64 locator pointing at offset 2^63 (an Int below zero), then the end record.
        var bytes: [UInt8] = [0x50, 0x4b, 0x03, 0x04] + [UInt8](repeating: 0, count: 26)
        bytes += Self.le(UInt32(0x0706_4b50)) + Self.le(UInt32(0)) + Self.le(UInt64(1) << 63) + Self.le(UInt32(1))
        bytes += Self.le(UInt32(0x0605_4b50)) + [UInt8](repeating: 0, count: 18)
        try expectQGRefused(bytes, as: "z.qg", saying: "corrupt zip64 end record")
    }
}

extension ReaderFuzzRegressionTests {
    @Test func quantumBlockLengthNearIntMaxIsAnError() throws {
        // The fuzz seed .qg (Fuzz/make_qg.py) with its first block length set to Int.max: start + length overflowed.
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: repoRoot + "/Fuzz/corpus/qg/seed-minimal.qg")))
        let name = Array("quantum_datasets.mb".utf8)
        let member = try #require(bytes.indices.first { bytes[$0...].starts(with: name) })
        let frame = try #require((member...).first { bytes[$0...].starts(with: [0x28, 0xb5, 0x2f, 0xfd]) })
        bytes.replaceSubrange((frame - 8)..<frame, with: [0x7f] + [UInt8](repeating: 0xff, count: 7))
        try expectQGRefused(bytes, as: "b.qg", saying: "quantum_datasets.mb: block 0 runs past the member")
    }
}

extension ReaderFuzzRegressionTests {
    @Test func skypixLevelsAreBounded() throws {
        // pipeline_graph.json's universe: a damaged max_level made one dimension name per level.
        #expect {
            try Universe(["skypix": ["htm": ["max_level": 100_000]]], source: "u.qg")
        } throws: { "\($0)".hasPrefix("u.qg: skypix system htm claims 100000 levels") }
        #expect(try Universe(["skypix": ["htm": ["max_level": 24]]], source: "u.qg").order.count == 24)
    }

    @Test func dimensionNamesEndingInNonIntNumbersSortLast() throws {
        // "٣" (Arabic-Indic three) is a number but not an Int; 30 digits overflow one: both trapped.
        let names = ["visit", "visit\u{663}", "htm" + String(repeating: "9", count: 30), "htm7"]
        let u = try Universe(["elements": Dictionary(uniqueKeysWithValues: names.map { ($0, ["requires": [String](), "implies": [String]()]) })],
                             source: "u.qg")
        #expect(Set(u.order) == Set(names))
        #expect(u.order.firstIndex(of: "htm7")! < u.order.firstIndex(of: "htm" + String(repeating: "9", count: 30))!)
    }
}
