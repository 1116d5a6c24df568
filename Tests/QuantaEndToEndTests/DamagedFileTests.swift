import Foundation
import Testing
import QuantaButler
import QuantaCore

/// Issue 12, items 4 and 5: a crafted graph file or a damaged snapshot is a one-line error and a
/// non-zero exit — not SIGILL, and not a run under data the plan never had.
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

    @Test func runQuantumRefusesASnapshotWithADamagedOutputUUID() throws {
        let cli = try CLI()
        let suite = CommandExecutorTests()
        let graph = try suite.makeGraph(cli, label: "copy", values: ["1", "2"])
        try suite.writeConfig(cli, label: "copy", command: "cp {input:in} {output:out}")
        #expect(try cli.run(["plan", graph, "--repo", "repo", "--config", "submit.yaml", "--out", "sub"]).status == .exited(0))
        // One bit of the UUID job copy:0 would register its output under.
        let snapshot = cli.path("sub/snapshot.bin")
        let output = try #require(try Snapshot.job(path: snapshot, array: "copy", index: 0).quanta.first?.outputs.first?.id)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: snapshot)))
        let uuid = withUnsafeBytes(of: output.uuid) { Array($0) }
        let at = try #require(bytes.indices.first { bytes[$0...].starts(with: uuid) })
        bytes[at + 5] ^= 0x04
        unlink(snapshot)
        try Data(bytes).write(to: URL(fileURLWithPath: snapshot))
        let r = try cli.run(["--submit-dir", "sub", "--array", "copy", "--index", "0"], executable: CLI.binDir + "/run-quantum")
        #expect(r.status != .exited(0), "\(r.output)")
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].hasSuffix("sub/snapshot.bin: damaged (checksum mismatch in section datasets); plan the submission again"), "\(r.stderr)")
    }
}
