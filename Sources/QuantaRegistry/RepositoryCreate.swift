import Foundation
import QuantaButler
import QuantaCore

extension Repository {
    /// Creates a repository (config, empty registry, datastore directory); refuses to overwrite one.
    @discardableResult
    public static func create(at root: String) throws -> Repository {
        let fm = FileManager.default
        let root = URL(fileURLWithPath: root).standardizedFileURL.path
        if fm.fileExists(atPath: root + "/" + configName) {
            throw QuantaError(.registry, "\(root): a repository already exists here; use it, or choose another directory")
        }
        do {
            try fm.createDirectory(atPath: root + "/datastore", withIntermediateDirectories: true)
        } catch {
            throw QuantaError(.io, "\(root): cannot create the repository directory (\(error.localizedDescription))")
        }
        let config = """
        # Quanta repository. Paths are relative to this file's directory.
        registry: registry.sqlite
        datastore: datastore
        # Placeholders: {run} {datasetType} {dataId} {ext} and any dimension name, e.g. {visit}
        template: "\(defaultTemplate)"
        # This repository's identity: plans record it, and jobs refuse another repository at this path.
        id: \(UUID().uuidString.lowercased())

        """
        try AtomicFile.write(config, to: root + "/" + configName)
        let repo = try Repository(root: root)
        _ = try Registry(path: repo.registryPath)
        return repo
    }
}
