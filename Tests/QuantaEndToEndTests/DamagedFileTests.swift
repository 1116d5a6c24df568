import Foundation
import Testing
import QuantaCore

/// Issue 12, item 5: a crafted graph file is a one-line error and a non-zero exit, not SIGILL.
@Suite struct DamagedFileTests {
    @Test func graphInfoOnATopBitSectionLengthSaysSo() throws {
        let cli = try CLI()
        let bytes: [UInt8] = Array("QUANTAGR".utf8) + [1, 0, 0, 0] + Array("META".utf8) + [0, 0, 0, 0, 0, 0, 0, 0x80]
        try Data(bytes).write(to: URL(fileURLWithPath: cli.path("x.qgn")))
        for command in [["graph", "info"], ["graph", "validate"]] {
            let r = try cli.run(command + ["x.qgn"])
            #expect(r.status == .exited(1), "\(command): \(r.status) \(r.output)")
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.count == 1 && lines[0].contains("x.qgn: "), "\(command): \(r.stderr)")
        }
    }
}
