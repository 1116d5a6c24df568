import FuzzSupport
@testable import QuantaCore
@testable import QuantaGraphIO

/// `.qgn`: what `graph info` reads (the summary) and what every other command reads (the whole
/// graph, then validated) — any bytes give a graph or a `QuantaError`.
@main enum FuzzNativeGraph {
    static func main() {
        fuzz { raw in
            let bytes = Array(raw)
            _ = try? NativeGraphFormat.summary(bytes, source: "fuzz.qgn")
            if let g = try? NativeGraphFormat.decode(bytes, source: "fuzz.qgn") { _ = try? g.validate(source: "fuzz.qgn") }
        }
    }
}
