import Foundation
import FuzzSupport
@testable import QuantaGraphIO

/// `.qg`: the ZIP directory, the zstd members, the JSON and every quantum block, then validation.
/// The same bytes also go straight to the quantum block parser, which otherwise sits behind a ZIP
/// member and a zstd frame the fuzzer would have to build first.
@main enum FuzzLSSTGraph {
    static func main() {
        fuzz { raw in
            if let reader = try? LSSTGraphFormat.Reader(bytes: Data(raw), source: "fuzz.qg"), let header = try? reader.header() {
                _ = try? reader.graph(header: header, quanta: false)
                if let g = try? reader.graph(header: header, quanta: true) { _ = try? g.validate(source: "fuzz.qg") }
            }
            _ = try? QuantumBlockParser.parse(raw)
        }
    }
}
