import Foundation
import QuantaCore

/// Any graph file Quanta reads: pipe_base's `.qg`, or Quanta's native `.qgn` — told apart by
/// their first bytes, not their names.
public enum GraphFile {
    public enum Kind: String, Sendable { case lsst, native }

    public static func kind(path: String) throws -> Kind {
        guard FileManager.default.fileExists(atPath: path) else {
            throw QuantaError(.usage, "\(path): no such graph file")
        }
        return LSSTGraphFormat.looksLikeLSSTGraph(path: path) ? .lsst : .native
    }

    public static func read(path: String) throws -> QuantumGraph {
        switch try kind(path: path) {
        case .lsst: return try LSSTGraphFormat.read(path: path)
        case .native: return try NativeGraphFormat.read(path: path)
        }
    }

    public static func describe(_ kind: Kind) -> String {
        kind == .lsst ? "pipe_base .qg v\(LSSTGraphFormat.supportedVersion)" : "native format v\(NativeGraphFormat.version)"
    }
}
