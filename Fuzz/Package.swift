// swift-tools-version:6.0
// libFuzzer targets, one per binary reader (issue 12). Built and run by scripts/fuzz.sh:
//   swift build --package-path Fuzz -c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing
// Each target feeds arbitrary bytes to one reader through its in-memory entry point; any trap,
// crash or sanitizer report is a failure. Seeds and regression inputs: corpus/<reader>/.
import PackageDescription

let targets = ["FuzzNativeGraph", "FuzzLSSTGraph", "FuzzSnapshot", "FuzzStatusCache", "FuzzManifest"]

let package = Package(
    name: "QuantaFuzz",
    dependencies: [.package(name: "Quanta", path: "..")],
    targets: [.target(name: "FuzzDriver"), .target(name: "FuzzSupport", dependencies: ["FuzzDriver"])] + targets.map {
        .executableTarget(name: $0, dependencies: ["FuzzSupport", .product(name: "QuantaReaders", package: "Quanta")])
    },
    swiftLanguageModes: [.v6]
)
