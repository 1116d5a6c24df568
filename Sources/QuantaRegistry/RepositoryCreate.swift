import Foundation
import QuantaButler
import QuantaCore
import QuantaPostgres

extension Repository {
    /// Creates a repository (config, empty registry, datastore directory); refuses to overwrite one.
    /// `registry`: a `postgresql://user@host:port/database[?schema=…]` URL for a registry on a
    /// PostgreSQL server (no password in it); nil for a SQLite file beside the config.
    @discardableResult
    public static func create(at root: String, registry url: String? = nil) throws -> Repository {
        let target = try url.map { try PostgresTarget(url: $0) }
        let fm = FileManager.default
        let root = URL(fileURLWithPath: root).standardizedFileURL.path
        if fm.fileExists(atPath: root + "/" + configName) {
            throw QuantaError(.registry, "\(root): a repository already exists here; use it, or choose another directory")
        }
        let id = UUID().uuidString.lowercased()
        // A server registry is made (or found empty) before anything is written here.
        if let target { _ = try PostgresRegistry(target: target, creatingFor: id) }
        do {
            try fm.createDirectory(atPath: root + "/datastore", withIntermediateDirectories: true)
        } catch {
            throw QuantaError(.io, "\(root): cannot create the repository directory (\(error.localizedDescription))")
        }
        let config = """
        # Quanta repository. Paths are relative to this file's directory.
        # registry: a SQLite file, or postgresql://user@host:port/database (the password comes from
        # PGPASSWORD or ~/.pgpass, never from this file).
        registry: \(url.map { "\"\($0)\"" } ?? "registry.sqlite")
        datastore: datastore
        # Placeholders: {run} {datasetType} {dataId} {ext} and any dimension name, e.g. {visit}
        template: "\(defaultTemplate)"
        # This repository's identity: plans record it, and jobs refuse another repository at this path.
        id: \(id)

        """
        try AtomicFile.write(config, to: root + "/" + configName)
        let repo = try Repository(root: root)
        _ = try repo.openRegistry()
        return repo
    }
}
