import Foundation
import Testing
import QuantaCore
import QuantaFITS

/// FITS written by another tool (astropy, in the LSST venv) read through Quanta's cfitsio layer,
/// and Quanta's outputs read back by astropy with checksum verification.
@Suite(.enabled(if: LSSTKit.enabled, "needs the LSST venv (astropy): scripts/lsst-env.sh"))
struct AstropyFITSTests {
    func python(_ cli: CLI, _ args: [String]) throws -> CLI.Result {
        try cli.run([LSSTKit.scripts + "/astropy_fits.py"] + args, executable: LSSTKit.venv + "/bin/python")
    }

    @Test func astropyFilesReadAndValidate() throws {
        let cli = try CLI()
        let w = try python(cli, ["write", cli.cwd])
        #expect(w.status == .exited(0), "\(w.output)")

        let img = try FITSFile(open: cli.path("image.fits"))
        let primary = try img.readImage()
        #expect(primary.width == 30 && primary.height == 20)
        #expect(primary.pixels.prefix(3).allSatisfy(\.isNaN) && primary.pixels[3] == 3 && primary.pixels[599] == 599)
        #expect(try img.readString(key: "BAND") == "r" && img.readInteger(key: "VISIT") == 903_334 && img.readDouble(key: "EXPTIME") == 30.5)
        #expect(try img.verifyChecksum() == (.verified, .verified))
        #expect(try img.nextHDU() == .image && img.extensionName() == "COUNTS")
        #expect(try img.imageParameters().bitpix == 16)
        // Stored as int16 − 32768 (BZERO); cfitsio gives the unsigned values back.
        #expect(try img.readDouble(key: "BZERO") == 32768)
        let counts = try img.readImage()
        #expect(counts.pixels[0] == 60000 && counts.pixels[95] == 60095, "\(counts.pixels.prefix(3))")
        #expect(try img.nextHDU() == nil)

        let table = try FITSFile(open: cli.path("table.fits"))
        try table.move(to: 2)
        #expect(try table.tableShape().columns == ["id", "flux", "mag", "name", "vec"])
        #expect(try table.readColumn("id") == .integer(Array(1...10)))
        guard case .double(let flux) = try table.readColumn("flux"), case .double(let vec) = try table.readColumn("vec") else {
            Issue.record("flux/vec not floating"); return
        }
        #expect(flux.filter(\.isNaN).count == 2 && flux[9] == 9)
        #expect(vec.count == 30 && vec[29] == 29)
        #expect(try table.readColumn("name") == .string((0..<10).map { "star\($0)" }))

        // The validator on each: reads to the end, checksums, NaN limits.
        let check = try cli.run(["fits", "check", cli.path("image.fits"), cli.path("table.fits"), cli.path("rice.fits")])
        #expect(check.status == .exited(0), "\(check.output)")
        #expect(check.stdout.contains("checksums verified in 2"), "\(check.stdout)")
        let nan = try cli.run(["fits", "check", cli.path("nan_column.fits")])
        #expect(nan.status == .exited(1) && nan.stdout.contains("HDU 2 (SRC): column flux: all 4 values are NaN"), "\(nan.output)")
        let sum = try cli.run(["fits", "check", cli.path("bad_checksum.fits")])
        #expect(sum.status == .exited(1) && sum.stdout.contains("HDU 1: CHECKSUM/DATASUM do not match"), "\(sum.output)")
        let info = try cli.run(["fits", "info", cli.path("rice.fits")])
        #expect(info.status == .exited(0) && info.stdout.contains("COMPRESSED") && info.stdout.contains("64×64"), "\(info.output)")
    }

    @Test func astropyReadsQuantaOutputs() throws {
        let cli = try CLI()
        let demo = try cli.run(["demo", "--workdir", "demo", "--visits", "1", "--detectors", "1", "--size", "64"])
        #expect(demo.status == .exited(0), "\(demo.output)")
        let files = cli.allFiles().filter { $0.contains("/demo/out/") && ($0.contains("/calexp/") || $0.contains("/src/") || $0.contains("/deepCoadd/")) }
        #expect(files.count >= 5)
        for f in files {
            let r = try python(cli, ["read", cli.path(f)])
            #expect(r.status == .exited(0), "\(f): \(r.output)")
            #expect(!r.stderr.contains("Warning"), "astropy warns on \(f): \(r.stderr)")
        }
    }
}
