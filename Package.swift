// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Quanta",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "quanta", targets: ["quanta"]),
        .executable(name: "run-quantum", targets: ["run-quantum"]),
        // For Fuzz/ (a package of libFuzzer targets, one per binary reader), not an API.
        .library(name: "QuantaReaders", targets: ["QuantaCore", "QuantaGraphIO", "QuantaButler"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // zlib's crc32 (native graph trailer, output checksums): ~10× a byte-wise table.
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .target(name: "QuantaCore", dependencies: [
            "CZlib",
            .product(name: "Yams", package: "Yams"),
        ]),
        // libzstd for pipe_base's .qg files.
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .target(name: "QuantaGraphIO", dependencies: ["QuantaCore", "CZstd"]),
        // What a job reads and writes of a submission and a repository (snapshot, manifests,
        // repository layout): run-quantum links this, so no SQLite here.
        .target(name: "QuantaButler", dependencies: ["QuantaCore"]),
        // A PostgreSQL server used synchronously (issue 18): the URL, credentials, one connection,
        // errors in one line. For the registry and the campaign database; never run-quantum.
        .target(name: "QuantaPostgres", dependencies: [
            "QuantaCore",
            .product(name: "PostgresNIO", package: "postgres-nio"),
        ]),
        // The repository's registry (SQLite through GRDB, or PostgreSQL) and what uses it: the
        // merge, plan checks.
        .target(name: "QuantaRegistry", dependencies: [
            "QuantaCore", "QuantaButler", "QuantaPostgres",
            .product(name: "GRDB", package: "GRDB.swift"),
        ]),
        .target(name: "QuantaScheduler", dependencies: [
            "QuantaCore", "QuantaGraphIO", "QuantaButler", "QuantaRegistry", "QuantaSlurm",
            .product(name: "Mustache", package: "swift-mustache"),
        ]),
        // What run-quantum runs: commands, built-in FITS tasks, LSST jobs, output checks.
        .target(name: "QuantaExec", dependencies: ["QuantaCore", "QuantaButler", "QuantaFITS"]),
        // The demo survey, raw ingest, science check and the synthetic graphs of the benchmarks:
        // used by `quanta` and the tests, never by run-quantum.
        .target(name: "QuantaDemo", dependencies: ["QuantaCore", "QuantaButler", "QuantaRegistry", "QuantaExec", "QuantaFITS"]),
        // libslurm (Debian ships no slurm.pc, so the modulemap links it by name).
        .systemLibrary(name: "CSlurm", providers: [.apt(["libslurm-dev"])]),
        .target(name: "QuantaSlurm", dependencies: ["QuantaCore", "CSlurm"]),
        // cfitsio (issue 5): long names are macros, wrapped in shim.h; the library is dlopen()ed on first use.
        .systemLibrary(name: "CFITSIO", providers: [.apt(["libcfitsio-dev"])]),
        .target(name: "QuantaFITS", dependencies: ["QuantaCore", "CFITSIO"]),
        // Campaigns (issue 16): the campaign file, its schedule, the campaign database and the tick
        // that advances campaigns through PlanService and Submission.
        .target(name: "QuantaCampaign", dependencies: [
            "QuantaCore", "QuantaGraphIO", "QuantaButler", "QuantaRegistry", "QuantaScheduler", "QuantaSlurm", "QuantaDemo", "QuantaFITS", "QuantaPostgres",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Yams", package: "Yams"),
        ]),
        // Reports (issue 17): what a submission's jobs did, as one self-contained HTML file.
        .target(name: "QuantaReport", dependencies: ["QuantaCore", "QuantaButler", "QuantaScheduler"]),
        .target(name: "QuantaCommands", dependencies: [
            "QuantaCore", "QuantaGraphIO", "QuantaButler", "QuantaRegistry", "QuantaScheduler", "QuantaExec", "QuantaDemo", "QuantaCampaign", "QuantaReport",
            "QuantaSlurm", "QuantaFITS",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "quanta", dependencies: ["QuantaCommands"]),
        .executableTarget(name: "run-quantum", dependencies: ["QuantaExec"]),
        // Tests mirror the sources: one target per library, the end-to-end suite apart, and the
        // fixtures they share (a DRP-shaped graph, a test site, temporary directories).
        .target(name: "QuantaTestSupport", dependencies: ["QuantaCore", "QuantaPostgres"], path: "Tests/Support"),
        .testTarget(name: "QuantaCoreTests", dependencies: ["QuantaCore", "QuantaTestSupport"]),
        .testTarget(name: "QuantaGraphIOTests", dependencies: ["QuantaCore", "QuantaGraphIO", "QuantaButler", "QuantaDemo", "QuantaTestSupport"]),
        .testTarget(name: "QuantaButlerTests", dependencies: ["QuantaCore", "QuantaGraphIO", "QuantaButler", "QuantaRegistry", "QuantaScheduler", "QuantaTestSupport"]),
        .testTarget(name: "QuantaRegistryTests", dependencies: ["QuantaCore", "QuantaButler", "QuantaRegistry", "QuantaPostgres", "QuantaTestSupport"]),
        .testTarget(name: "QuantaSchedulerTests", dependencies: ["QuantaCore", "QuantaButler", "QuantaScheduler", "QuantaSlurm", "QuantaTestSupport"]),
        .testTarget(name: "QuantaFITSTests", dependencies: ["QuantaCore", "QuantaFITS", "QuantaTestSupport"]),
        .testTarget(name: "QuantaExecTests", dependencies: ["QuantaCore", "QuantaButler", "QuantaFITS", "QuantaExec", "QuantaTestSupport"]),
        .testTarget(name: "QuantaCampaignTests", dependencies: ["QuantaCore", "QuantaCampaign", "QuantaPostgres", "QuantaTestSupport"]),
        .testTarget(name: "QuantaEndToEndTests", dependencies: ["QuantaCore", "QuantaGraphIO", "QuantaButler", "QuantaRegistry", "QuantaPostgres", "QuantaFITS", "QuantaExec", "QuantaDemo", "QuantaTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
