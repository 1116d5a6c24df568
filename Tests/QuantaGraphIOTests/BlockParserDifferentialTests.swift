import Foundation
import Testing
import QuantaTestSupport
@testable import QuantaCore
@testable import QuantaGraphIO

/// The hand-written `.qg` quantum-block parser against Foundation's JSONDecoder (issue 15): on every
/// block of the committed seed graph and block (and of the LSST fixture graphs when
/// QUANTA_LSST_FIXTURES names them), and on thousands of mutations of those blocks, both give the
/// same `QuantumBlock` or both reject.
@Suite struct BlockParserDifferentialTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Fuzz/corpus/qg").standardized.path

    /// Every decompressed quantum block of a `.qg`.
    static func blocks(of path: String) throws -> [Data] {
        let r = try LSSTGraphFormat.Reader(path: path)
        let mb = try r.zip.data("quantum_datasets.mb")
        var out: [Data] = []
        var pos = mb.startIndex
        while pos + 8 <= mb.endIndex {
            var len = 0
            for k in 0..<8 { len = len << 8 | Int(mb[pos + k]) }
            let start = pos + 8
            guard len >= 0, len <= mb.endIndex - start else { break }
            out.append(try r.zstd.decompress(mb[start..<(start + len)], what: "block"))
            pos = start + len
        }
        return out
    }

    static func seeds() throws -> [Data] {
        var out = try blocks(of: corpus + "/seed-minimal.qg")
        out.append(try Data(contentsOf: URL(fileURLWithPath: corpus + "/seed-block.json")))
        if let fixtures = ProcessInfo.processInfo.environment["QUANTA_LSST_FIXTURES"] {
            for shape in ["chain", "fanout", "prereq"] where FileManager.default.fileExists(atPath: "\(fixtures)/\(shape)/graph.qg") {
                out += try blocks(of: "\(fixtures)/\(shape)/graph.qg").prefix(40)
            }
        }
        return out
    }

    /// A canonical text of a block: keys sorted, every field spelled out (dictionaries have no order).
    static func canonical(_ b: QuantumBlock) -> String {
        func coord(_ c: [DimensionValue]) -> String { c.map { v in
            switch v { case .int(let i): return "i\(i)"; case .string(let s): return "s\(s.debugDescription)" }
        }.joined(separator: ",") }
        func refs(_ m: [String: [DatasetRefBlock]]) -> String {
            m.keys.sorted().map { k in "\(k.debugDescription):[" + m[k]!.map {
                "\($0.dataset_id.debugDescription)|\($0.dataset_type_name.debugDescription)|\(coord($0.data_coordinate))|\($0.run.debugDescription)"
            }.joined(separator: ";") + "]" }.joined(separator: ",")
        }
        var records = "nil"
        if let r = b.datastore_records {
            var parts: [String] = []
            for k in r.keys.sorted() {
                let byTable = r[k]!.records
                for t in byTable.keys.sorted() {
                    let byID = byTable[t]!
                    for u in byID.keys.sorted() {
                        let files: [String] = byID[u]!.file_datastore_records?.map { $0.path.debugDescription } ?? ["nil"]
                        parts.append(k.debugDescription + "/" + t.debugDescription + "/" + u.debugDescription + ">" + files.joined(separator: ","))
                    }
                }
            }
            records = parts.joined(separator: ";")
        }
        return "\(b.quantum_id.debugDescription) \(b.task_label.debugDescription) [\(coord(b.data_coordinate))] in{\(refs(b.inputs))} out{\(refs(b.outputs))} ds{\(records)}"
    }

    /// "ok <canonical>" or "reject".
    static func both(_ data: Data) -> (ours: String, foundation: String) {
        let ours: String
        do { ours = "ok " + canonical(try QuantumBlockParser.parse(data)) } catch { ours = "reject" }
        let theirs: String
        do { theirs = "ok " + canonical(try JSONDecoder().decode(QuantumBlock.self, from: data)) } catch { theirs = "reject" }
        return (ours, theirs)
    }

    @Test func everySeedBlockReadsAsJSONDecoderReadsIt() throws {
        let seeds = try Self.seeds()
        #expect(seeds.count >= 2)
        for (k, block) in seeds.enumerated() {
            let (ours, theirs) = Self.both(block)
            #expect(ours.hasPrefix("ok "), "seed \(k) rejected")
            #expect(ours == theirs, "seed \(k): ours \(ours.prefix(300)) / JSONDecoder \(theirs.prefix(300))")
        }
    }

    /// Byte flips, truncations, duplications and structural edits (a deterministic generator):
    /// every mutant is read the same by both, or rejected by both.
    @Test func mutatedBlocksAgreeWithJSONDecoder() throws {
        var rng = SplitMix(seed: 0x5eed_b10c)
        let seeds = try Self.seeds()
        let edits: [[UInt8]] = ["{", "}", "[", "]", ",", ":", "\"", "\\", "1.0", "-0", "1e2", "null", "true", " ", "\u{FEFF}",
                                "\"\\u00e9\"", "\"quantum_id\": \"x\",", ",]", ",}", "\u{1}"].map { Array($0.utf8) }
        var agreed = 0, accepted = 0
        var disagreements: [String] = []
        for round in 0..<3000 {
            var b = Array(seeds[round % seeds.count])
            for _ in 0..<(1 + Int(rng.next() % 3)) {
                guard !b.isEmpty else { break }
                let at = Int(rng.next() % UInt64(b.count))
                switch rng.next() % 5 {
                case 0: b[at] ^= UInt8(1 << (rng.next() % 8))
                case 1: b.removeSubrange(at..<min(b.count, at + 1 + Int(rng.next() % 8)))
                case 2: b.insert(contentsOf: edits[Int(rng.next() % UInt64(edits.count))], at: at)
                case 3: b = Array(b.prefix(at))
                default:
                    let len = min(b.count - at, 1 + Int(rng.next() % 32))
                    b.insert(contentsOf: b[at..<(at + len)], at: at)
                }
            }
            let (ours, theirs) = Self.both(Data(b))
            if ours == theirs { agreed += 1; if ours != "reject" { accepted += 1 } } else if disagreements.count < 5 {
                disagreements.append("round \(round): ours \(ours.prefix(160)) / JSONDecoder \(theirs.prefix(160)) for \(String(decoding: b.prefix(300), as: UTF8.self))")
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements.joined(separator: "\n"))")
        #expect(agreed == 3000)
        // Some mutants must still be valid blocks, or the comparison would only test rejection.
        #expect(accepted > 50, "only \(accepted) mutants were valid blocks")
    }
}

/// A small deterministic generator (the mutations repeat run to run).
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE5_E9B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
