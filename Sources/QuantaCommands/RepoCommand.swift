import ArgumentParser
import Foundation
import QuantaDemo
import QuantaRegistry
import QuantaButler
import QuantaCore
import QuantaScheduler
import QuantaExec

struct RepoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repo", abstract: "Create and query native repositories.",
        subcommands: [Create.self, Ingest.self, Query.self, Collections.self, RemoveRun.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a repository (a SQLite or PostgreSQL registry + a POSIX datastore).",
            discussion: """
            The registry is a SQLite file in the repository unless --registry names a PostgreSQL server:
            postgresql://USER@HOST:PORT/DATABASE, optionally ?schema=NAME (several repositories in one
            database), ?sslmode=disable|prefer|require|verify-full, ?host=/socket/directory. The password
            comes from PGPASSWORD or ~/.pgpass (host:port:database:user:password, mode 600), never from the
            URL or a file Quanta writes.
            """)
        @Argument(help: "Directory for the new repository.") var path: String
        @Option(name: .long, help: "A postgresql:// URL for a registry on a PostgreSQL server (default: SQLite in the repository).")
        var registry: String?
        @Option(name: .long, help: "Site config whose umask the repository's files follow (a name in site-configs/ or a path).")
        var site = "local"

        func run() throws {
            _ = try Installation.site(site)
            let repo = try Repository.create(at: path, registry: registry)
            print("Created repository \(repo.root) (registry \(try repo.openRegistry().location), datastore \(repo.datastoreRoot))")
        }
    }

    struct Ingest: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Ingest raw, bias and flat FITS files; data IDs come from their headers.",
            discussion: """
            Reads INSTRUME, OBSTYPE (science/bias/flat), EXPID, DETECTOR, FILTER and DAYOBS from each primary
            header: raws become {instrument, exposure, detector, band, day_obs} in INSTRUMENT/raw/all, biases
            {instrument, detector} and flats {instrument, detector, band} in INSTRUMENT/calib. Files are copied
            into the datastore; ingesting the same file again changes nothing. Check them first with 'quanta check-raws'.
            """)
        @Argument(help: "Repository.") var repo: String
        @Argument(help: "FITS files or directories (searched for *.fits).") var files: [String]

        func run() throws {
            let repository = try Repository(root: repo)
            let paths = try RawIngest.expand(files)
            guard !paths.isEmpty else { throw ValidationError("no FITS files in \(files.joined(separator: " "))") }
            let progress = Progress("ingesting")
            let s = try RawIngest.ingest(paths, into: repository) { progress.update($0, $1) }
            progress.done()
            let counts = s.added.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
            print("Ingested \(counts) into \(s.runs.sorted().joined(separator: ", "))\(s.alreadyThere > 0 ? " (\(s.alreadyThere) already there, unchanged)" : "")")
        }
    }

    struct Query: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "query", abstract: "List datasets.")
        @Argument(help: "Repository.") var path: String
        @Option(name: .long, parsing: .upToNextOption, help: "Collections to search (CHAINED ones are followed); default: all runs.")
        var collections: [String] = []
        @Option(name: .long, parsing: .upToNextOption, help: "Dataset types.") var type: [String] = []
        @Flag(name: .long, help: "Print counts per dataset type and run only.") var count = false
        @Flag(name: .long, help: "One JSON object per line.") var json = false

        func run() throws {
            let repo = try Repository(root: path)
            let registry = try repo.openRegistry()
            let runs = collections.isEmpty ? nil : try registry.resolveRuns(collections)
            let rows = try registry.datasets(runs: runs, types: type)
            if json {
                let e = JSONEncoder()
                e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                for r in rows { print(String(decoding: try e.encode(r), as: UTF8.self)) }
                return
            }
            if count {
                var c: [String: Int] = [:]
                for r in rows { c["\(r.datasetType)\t\(r.run)", default: 0] += 1 }
                let table = c.keys.sorted().map { k -> [String] in
                    let p = k.split(separator: "\t").map(String.init)
                    return [p[0], p[1], String(c[k]!)]
                }
                TextTable.render(header: ["type", "run", "datasets"], rows: table).forEach { print($0) }
                return
            }
            let table = rows.map { r in
                [r.datasetType, r.run, ((try? DataID(json: r.dataID)).map(\.description)) ?? r.dataID, r.id, r.path]
            }
            TextTable.render(header: ["type", "run", "dataId", "id", "path"], rows: table).forEach { print($0) }
            print("\(rows.count) datasets")
        }
    }

    struct Collections: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List collections; CHAINED ones with their members.")
        @Argument(help: "Repository.") var path: String

        func run() throws {
            let repo = try Repository(root: path)
            for c in try repo.openRegistry().collections() {
                print("\(c.name)  \(c.type)\(c.children.isEmpty ? "" : "  [\(c.children.joined(separator: ", "))]")")
            }
        }
    }

    struct RemoveRun: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "remove-run",
            abstract: "Remove RUN collections with their datasets and files (and CHAINED ones named with them), as butler remove-runs.",
            discussion: """
            A collection that a chain not named here still lists is refused, and then nothing is removed:
              quanta repo remove-run repo u/me/old/1/sfp/g u/me/old/1/sfp/r u/me/old/1/sfp u/me/old/1
            Files go first, then the registry rows in one transaction; a removal cut short is finished by running it again.
            An LSST butler repository is done through the LSST stack (butler's removeRuns, unstoring the files).
            """)
        @Argument(help: "Repository.") var repo: String
        @Argument(help: "Collections to remove.") var collections: [String]
        @Flag(name: .long, help: "Say what would be removed, and remove nothing.") var dryRun = false
        @Option(name: .long, help: "Site config whose environment lines set up the LSST stack (LSST butler repositories).") var site = "local"

        func run() throws {
            let repository = try Repository(root: repo)
            guard repository.kind == .quanta else {
                // Through the LSST stack (butler remove-runs / remove-collections), with the same refusal.
                let lsst = LSSTCollections(repo: repository.root, site: try Installation.site(site))
                let (blockers, datasets) = try lsst.remove(collections, dryRun: dryRun)
                guard blockers.isEmpty else { throw QuantaError(.registry, blockers.joined(separator: "; ") + "; nothing was removed") }
                print(dryRun ? "would remove \(collections.joined(separator: ", "))" : "Removed \(collections.joined(separator: ", ")) (\(datasets) datasets)")
                return
            }
            let removal = CollectionRemoval(repo: repository)
            let blockers = try removal.blockers(collections)
            guard blockers.isEmpty else { throw QuantaError(.registry, blockers.joined(separator: "; ") + "; nothing was removed") }
            if dryRun {
                let registry = try repository.openRegistry()
                for c in collections {
                    let type = try registry.collectionType(c)
                    let n = type == .chained ? 0 : try registry.count(run: c)
                    print("would remove \(c) (\(type?.rawValue ?? "?")\(type == .chained ? "" : ", \(n) datasets"))")
                }
                return
            }
            let progress = Progress("removing files")
            let o = try removal.remove(collections) { progress.update($0, $1) }
            progress.done()
            print("Removed \(o.runs) runs and \(o.chains) chains: \(o.datasets) datasets, \(o.files) files (\(String(format: "%.1f", Double(o.bytes) / 1e6)) MB)")
        }
    }
}
