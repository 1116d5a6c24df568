import Foundation
import Testing
import QuantaTestSupport
@testable import QuantaCore
@testable import QuantaGraphIO

/// Issue 12, item 5: a crafted `.qgn` is an error naming the file, never a trap or a huge allocation.
@Suite struct NativeGraphHostileInputTests {
    /// Magic, version 1, then a META section whose u64 length has its top bit set.
    static let topBitLength: [UInt8] = Array("QUANTAGR".utf8) + [1, 0, 0, 0] + Array("META".utf8) + [0, 0, 0, 0, 0, 0, 0, 0x80]

    @Test func aSectionLengthWithItsTopBitSetIsAnError() throws {
        #expect {
            try NativeGraphFormat.decode(Self.topBitLength, source: "x.qgn")
        } throws: { e in ((e as? QuantaError)?.message ?? "").hasPrefix("x.qgn: ") }
        let dir = try temporaryDirectory()
        try Data(Self.topBitLength).write(to: URL(fileURLWithPath: dir + "/x.qgn"))
        #expect(throws: QuantaError.self) { try NativeGraphFormat.summary(path: dir + "/x.qgn") }
    }

    @Test func hugeCountsAreErrorsNotAllocations() throws {
        // A valid file whose DSET count says 4 billion: graph info must not allocate for it.
        var bytes = try NativeGraphFormat.encode(pipelineGraph(visits: [1], detectors: [0]))
        let dset = try #require(bytes.indices.first { Array(bytes[$0..<min($0 + 4, bytes.count)]) == Array("DSET".utf8) })
        for k in 0..<4 { bytes[dset + 12 + k] = 0xFF }
        // Crafted, not damaged: the trailer's checksum (the last 4 bytes) is made to match.
        let crc = CRC32.checksum(Array(bytes[0..<(bytes.count - 16)]))
        withUnsafeBytes(of: crc.littleEndian) { for (k, b) in $0.enumerated() { bytes[bytes.count - 4 + k] = b } }
        let dir = try temporaryDirectory()
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/big.qgn"))
        #expect(throws: QuantaError.self) { try NativeGraphFormat.summary(path: dir + "/big.qgn") }
        #expect {
            try NativeGraphFormat.decode(bytes, source: "big.qgn")
        } throws: { e in "\(e)".hasPrefix("big.qgn: corrupt section DSET") }
    }
}
