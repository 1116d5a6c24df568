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
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
    ],
    targets: [
        // zlib's crc32 (native graph trailer, output checksums): ~10× a byte-wise table.
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .target(name: "QuantaCore", dependencies: [
            "CZlib",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Yams", package: "Yams"),
        ]),
        // libzstd for pipe_base's .qg files.
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .target(name: "QuantaGraphIO", dependencies: ["QuantaCore", "CZstd"]),
        .target(name: "QuantaButler", dependencies: [
            "QuantaCore",
            .product(name: "GRDB", package: "GRDB.swift"),
        ]),
        .target(name: "QuantaScheduler", dependencies: [
            "QuantaCore", "QuantaButler", "QuantaSlurm",
            .product(name: "Mustache", package: "swift-mustache"),
        ]),
        .target(name: "QuantaExec", dependencies: ["QuantaCore", "QuantaButler", "QuantaFITS"]),
        // libslurm (Debian ships no slurm.pc, so the modulemap links it by name).
        .systemLibrary(name: "CSlurm", providers: [.apt(["libslurm-dev"])]),
        .target(name: "QuantaSlurm", dependencies: ["QuantaCore", "CSlurm"]),
        // cfitsio (issue 5): long names are macros, wrapped in shim.h; the library is dlopen()ed on first use.
        .systemLibrary(name: "CFITSIO", providers: [.apt(["libcfitsio-dev"])]),
        .target(name: "QuantaFITS", dependencies: ["QuantaCore", "CFITSIO"]),
        .target(name: "QuantaCommands", dependencies: [
            "QuantaCore", "QuantaGraphIO", "QuantaButler", "QuantaScheduler", "QuantaExec", "QuantaSlurm", "QuantaFITS",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "quanta", dependencies: ["QuantaCommands"]),
        .executableTarget(name: "run-quantum", dependencies: ["QuantaExec"]),
        .testTarget(name: "QuantaCoreTests", dependencies: ["QuantaCore", "QuantaGraphIO", "QuantaScheduler", "QuantaButler", "QuantaSlurm", "QuantaFITS", "QuantaExec"]),
        .testTarget(name: "QuantaEndToEndTests", dependencies: ["QuantaCore", "QuantaGraphIO", "QuantaButler", "QuantaFITS", "QuantaExec"]),
    ],
    swiftLanguageModes: [.v6]
)
