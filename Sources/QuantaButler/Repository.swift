import Foundation
import QuantaCore
import Yams

/// Where a repository's registry is (`registry:` in quanta-repo.yaml).
public enum RegistryLocation: Sendable, Equatable {
    /// A SQLite file (the default, `registry.sqlite` beside the config).
    case sqlite(String)
    /// A PostgreSQL server: a `postgresql://user@host:port/database` URL with no password in it.
    case postgresql(String)
    /// An LSST butler's registry, reached only through the butler's tools.
    case butler
}

/// A native repository: `quanta-repo.yaml`, a registry (SQLite or PostgreSQL) and a POSIX datastore.
public struct Repository: Sendable {
    public static let configName = "quanta-repo.yaml"
    public static let defaultTemplate = "{run}/{datasetType}/{datasetType}_{dataId}.{ext}"

    /// `quanta`: Quanta's own registry and datastore. `butler`: an LSST data butler repository
    /// (butler.yaml); its registry is LSST's, reached only through the butler's own tools.
    public enum Kind: String, Sendable { case quanta, butler }

    public let root: String
    public let kind: Kind
    public let registry: RegistryLocation
    public let datastoreRoot: String
    public let template: String
    /// The repository's identity (`id:` in quanta-repo.yaml): a plan records it, and jobs and the
    /// merge refuse another repository that took this one's place at the same path.
    public let id: String?

    /// Opens an existing repository: Quanta's own, or an LSST butler repository.
    public init(root: String) throws {
        let root = URL(fileURLWithPath: root).standardizedFileURL.path
        let configPath = root + "/" + Self.configName
        if !FileManager.default.fileExists(atPath: configPath), FileManager.default.fileExists(atPath: root + "/butler.yaml") {
            self.root = root
            kind = .butler
            registry = .butler
            datastoreRoot = root
            template = ""
            id = nil
            return
        }
        guard let text = try? String(contentsOfFile: configPath, encoding: .utf8) else {
            throw QuantaError(.registry, "\(root): neither a Quanta repository (\(Self.configName)) nor an LSST butler repository (butler.yaml); create one with 'quanta repo create \(shellQuote(root))' or 'butler create'")
        }
        kind = .quanta
        let config: [String: Any]
        do { config = (try Yams.load(yaml: text) as? [String: Any]) ?? [:] } catch {
            throw QuantaError(.registry, "\(configPath): not valid YAML: \(error)")
        }
        func resolve(_ p: String) -> String { p.hasPrefix("/") ? p : root + "/" + p }
        let named = config["registry"] as? String ?? "registry.sqlite"
        if named.hasPrefix("postgresql://") || named.hasPrefix("postgres://") {
            registry = .postgresql(named)
        } else if let scheme = named.range(of: "://") {
            throw QuantaError(.registry, "\(configPath): registry '\(Redact.urls(named))': \(named[..<scheme.lowerBound]) is not a registry Quanta knows; name a SQLite file (registry.sqlite) or a postgresql://user@host:port/database URL")
        } else {
            registry = .sqlite(resolve(named))
        }
        self.root = root
        datastoreRoot = resolve(config["datastore"] as? String ?? "datastore")
        template = config["template"] as? String ?? Self.defaultTemplate
        id = config["id"].map { "\($0)" }
    }

    /// The `id:` line of `root`'s quanta-repo.yaml, read without a YAML parser (run-quantum reads
    /// it at every start).
    public static func identity(root: String) -> String? {
        guard let text = try? String(contentsOfFile: root + "/" + configName, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("id:") {
            let v = line.dropFirst(3).trimmingCharacters(in: .whitespaces)
            return v.trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
        }
        return nil
    }

    /// This repository's identity; a repository made before identities gets one now (one line
    /// appended to its config, written to a temporary name and renamed).
    public func ensureID() throws -> String? {
        guard kind == .quanta else { return nil }
        if let id { return id }
        let path = root + "/" + Self.configName
        guard var text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw QuantaError(.io, "\(path): cannot read the repository config")
        }
        let id = UUID().uuidString.lowercased()
        if !text.hasSuffix("\n") { text += "\n" }
        text += "# This repository's identity: plans record it, and jobs refuse another repository at this path.\nid: \(id)\n"
        try AtomicFile.write(text, to: path)
        return id
    }

    /// Throws unless the repository at `root` is the one a plan recorded as `id`.
    public static func checkIdentity(root: String, expected: String, what: String) throws {
        guard !expected.isEmpty else { return }
        let actual = identity(root: root)
        guard actual == expected else {
            throw QuantaError(.registry, "\(root): is not the repository this submission was planned against (its id is \(actual ?? "missing"), the plan's \(expected)); \(what) refused — plan the graph again against this repository")
        }
    }

    /// Path of a dataset relative to the datastore root, from the file template.
    public func relativePath(run: String, datasetType: String, storageClass: String, dataID: DataID) -> String {
        // A butler's file templates live in its own configuration: paths are known once written.
        if kind == .butler { return "" }
        return Self.expand(template, run: run, datasetType: datasetType, storageClass: storageClass, dataID: dataID)
    }

    public static func expand(_ template: String, run: String, datasetType: String, storageClass: String, dataID: DataID) -> String {
        var out = ""
        var rest = Substring(template)
        while let open = rest.firstIndex(of: "{"), let close = rest[open...].firstIndex(of: "}") {
            out += rest[..<open]
            let key = String(rest[rest.index(after: open)..<close])
            switch key {
            case "run": out += run.split(separator: "/").map { PathSanitizer.component(String($0)) }.joined(separator: "/")
            case "datasetType": out += PathSanitizer.component(datasetType)
            case "dataId": out += dataID.pathFragment
            case "ext": out += StorageClasses.fileExtension(storageClass)
            default: out += dataID[key].map { PathSanitizer.component($0.description) } ?? "none"
            }
            rest = rest[rest.index(after: close)...]
        }
        return out + rest
    }

    public func absolutePath(_ relative: String) -> String { datastoreRoot + "/" + relative }
}

public enum StorageClasses {
    public static func fileExtension(_ storageClass: String) -> String {
        switch storageClass {
        case "QuantaImage": return "qimg"
        case "CSV": return "csv"
        case "Text": return "txt"
        case "JSON", "StructuredDataDict": return "json"
        case "PNG": return "png"
        case "FITS", "ExposureF", "ImageF", "MaskedImageF", "SourceCatalog", "FITSTable": return "fits"
        default: return "dat"
        }
    }
}
