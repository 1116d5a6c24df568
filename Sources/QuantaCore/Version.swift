/// What `quanta --version` and `run-quantum --version` print. Raised with each release; the
/// formats a submit directory holds are versioned separately (plan.json, snapshot.bin, manifests).
public enum QuantaVersion {
    public static let number = "0.12.0"
    public static var description: String { "quanta \(number)" }
}
