import FuzzSupport
@testable import QuantaButler

/// A job's manifest (JSON, read by `JSONReader`): in full, and as status reads it.
@main enum FuzzManifest {
    static func main() {
        fuzz { raw in
            _ = try? Manifest.decode(raw, outputs: true)
            _ = try? Manifest.decode(raw, outputs: false)
        }
    }
}
