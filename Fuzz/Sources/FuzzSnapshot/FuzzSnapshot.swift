import Foundation
import FuzzSupport
@testable import QuantaButler

/// `snapshot.bin`: every lookup run-quantum, status and merge make. Read twice: with checksums
/// (as in use) and without, so the fuzzer also reaches the bounds and cross-reference checks
/// behind the CRCs (it cannot forge a CRC-32).
@main enum FuzzSnapshot {
    static func main() {
        fuzz { raw in
            for checksums in [true, false] {
                guard let r = try? SnapshotFile.Reader(data: Data(raw), path: "fuzz/snapshot.bin", checksums: checksums) else { continue }
                _ = r.meta
                for a in r.header.arrays.indices {
                    for i in 0..<min((try? r.jobCount(array: a)) ?? 0, 64) {
                        for q in ((try? r.quanta(array: a, index: i)) ?? []).prefix(64) {
                            _ = try? r.quantum(q)
                            _ = try? r.taskLabel(ofQuantum: q)
                        }
                    }
                }
            }
        }
    }
}
