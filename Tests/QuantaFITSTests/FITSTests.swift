import Foundation
import Testing
import QuantaTestSupport
import QuantaCore
import QuantaFITS

/// The FITS layer against the real cfitsio (issue 5's foundation): images, keys, checksums, errors.
@Suite struct FITSTests {
    @Test func imageKeysAndChecksumsRoundTrip() throws {
        let dir = try temporaryDirectory()
        let path = dir + "/img.fits"
        let (w, h) = (37, 23)
        let pixels = (0..<(w * h)).map { Float($0 % w) * 0.5 + Float($0 / w) }
        do {
            let f = try FITSFile(create: path)
            try f.writeImage(width: w, height: h, pixels: pixels)
            try f.write(key: "BAND", .string("r"), comment: "filter band")
            try f.write(key: "VISIT", .integer(903_334))
            try f.write(key: "EXPTIME", .double(30.5))
            try f.writeChecksum()
            try f.close()
        }
        let f = try FITSFile(open: path)
        #expect(try f.hduCount == 1)
        #expect(try f.move(to: 1))
        let img = try f.readImage()
        #expect(img.width == w && img.height == h && img.pixels == pixels)
        #expect(try f.readRows(first: 5, count: 2) == Array(pixels[(5 * w)..<(7 * w)]))
        #expect(try f.readString(key: "BAND") == "r")
        #expect(try f.readInteger(key: "VISIT") == 903_334)
        #expect(try f.readDouble(key: "EXPTIME") == 30.5)
        let sums = try f.verifyChecksum()
        #expect(sums.data == .verified && sums.hdu == .verified)
        try f.close()

        // One flipped byte in the data: DATASUM no longer verifies.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[2880 + 100] ^= 0xff
        let bad = dir + "/bad.fits"
        try bytes.write(to: URL(fileURLWithPath: bad))
        let g = try FITSFile(open: bad)
        #expect(try g.verifyChecksum().data == .wrong)
    }

    @Test func errorsNameTheFileAndCarryCfitsioMessage() throws {
        let dir = try temporaryDirectory()
        do { _ = try FITSFile(open: dir + "/missing.fits"); Issue.record("opened a missing file") } catch let e as QuantaError {
            #expect(e.message.contains(dir + "/missing.fits") && e.message.contains("cfitsio could not open"), "\(e.message)")
        }
        let text = dir + "/text.fits"
        try Data(String(repeating: "not a FITS file ", count: 400).utf8).write(to: URL(fileURLWithPath: text))
        do { _ = try FITSFile(open: text); Issue.record("opened a text file") } catch let e as QuantaError {
            #expect(e.message.contains(text) && e.message.contains("status"), "\(e.message)")
        }
        let f = try FITSFile(create: dir + "/x.fits")
        try f.writeImage(width: 2, height: 2, pixels: [1, 2, 3, 4])
        try f.close()
        do { _ = try FITSFile(create: dir + "/x.fits"); Issue.record("overwrote a file") } catch let e as QuantaError {
            #expect(e.message.contains("x.fits"), "\(e.message)")
        }
        let g = try FITSFile(open: dir + "/x.fits")
        do { _ = try g.readRows(first: 1, count: 5); Issue.record("read past the image") } catch let e as QuantaError {
            #expect(e.message.contains("outside the 2×2 image"), "\(e.message)")
        }
    }

    /// An image HDU then a binary table: HDUs iterate to the end, columns read back by name.
    @Test func tablesAndHDUIteration() throws {
        let dir = try temporaryDirectory()
        let path = dir + "/cat.fits"
        let flux: [Double] = [1.5, .nan, 3.25, -4]
        do {
            let f = try FITSFile(create: path)
            try f.writeImage(width: 4, height: 3, pixels: [Float](repeating: 1, count: 12))
            try f.write(key: "EXTNAME", .string("IMAGE"))
            try f.writeTable(name: "SOURCES", columns: [
                .init("id", .integer([1, 2, 3, 4])),
                .init("flux", unit: "count", .double(flux)),
                .init("name", .string(["a", "bb", "it's $(x)", ""])),
            ])
            try f.writeChecksum()
            try f.close()
        }
        let f = try FITSFile(open: path)
        var kinds: [FITSFile.HDUKind] = [try f.currentHDU().kind]
        var names: [String?] = [f.extensionName()]
        while let k = try f.nextHDU() { kinds.append(k); names.append(f.extensionName()) }
        #expect(kinds == [.image, .binaryTable] && names == ["IMAGE", "SOURCES"])
        #expect(try f.nextHDU() == nil, "past the end stays at the end")
        try f.move(to: 2)
        let shape = try f.tableShape()
        #expect(shape.rows == 4 && shape.columns == ["id", "flux", "name"])
        #expect(try f.readColumn("ID") == .integer([1, 2, 3, 4]))
        guard case .double(let back) = try f.readColumn("flux") else { Issue.record("flux is not a float column"); return }
        #expect(back.count == 4 && back[0] == 1.5 && back[1].isNaN && back[2] == 3.25 && back[3] == -4)
        let strings = try f.readColumn("name")
        #expect(strings == .string(["a", "bb", "it's $(x)", ""]), "\(strings)")
        #expect(try f.readString(key: "TUNIT2") == "count")
        #expect(try f.verifyChecksum() == (.verified, .verified))
        do { _ = try f.readColumn("mag"); Issue.record("read a missing column") } catch let e as QuantaError {
            #expect(e.message.contains("no column mag") && e.message.contains("id, flux, name"), "\(e.message)")
        }
    }

    /// Writes an image HDU with `nan` NaN pixels out of 100 and a table whose `flux` column has `nanRows` NaN of 10.
    func product(_ path: String, nan: Int, nanRows: Int, checksum: Bool = true) throws {
        let f = try FITSFile(create: path)
        try f.writeImage(width: 10, height: 10, pixels: (0..<100).map { $0 < nan ? .nan : Float($0) })
        if checksum { try f.writeChecksum() }
        try f.writeTable(name: "SRC", columns: [
            .init("x", .double((0..<10).map(Double.init))),
            .init("flux", .double((0..<10).map { $0 < nanRows ? .nan : Double($0) })),
        ])
        if checksum { try f.writeChecksum() }
        try f.close()
    }

    func failure(_ path: String, _ type: String = "calexp", _ checks: OutputChecks = OutputChecks()) -> String? {
        do { try FITSValidation.check(path: path, datasetType: type, what: "\(type) {visit=1}", checks: checks); return nil }
        catch let e as QuantaError { return e.message } catch { return "\(error)" }
    }

    /// Each way an output can fail its checks, with the message naming file, HDU, column and value.
    @Test func validationFailureModes() throws {
        let dir = try temporaryDirectory()
        let good = dir + "/good.fits"
        try product(good, nan: 1, nanRows: 9)
        let report = try FITSValidation.check(path: good, datasetType: "calexp", what: "calexp", checks: OutputChecks())
        #expect(report.hdus.count == 2 && report.hdus[0].nanFraction == 0.01 && report.hdus[1].columns["flux"] == 0.9)
        #expect(report.hdus.allSatisfy { $0.checksum == .verified })
        #expect(FITSValidation.isFITS(path: good))

        // Images: more than 1 % NaN by default.
        let nanImage = dir + "/nan-image.fits"
        try product(nanImage, nan: 2, nanRows: 0)
        let m1 = failure(nanImage)
        #expect(m1?.contains("\(nanImage): HDU 1: 2 % of 100 pixels are NaN, more than the 1 % allowed for calexp") == true, "\(m1 ?? "passed")")
        #expect(m1?.contains("validation.datasetTypes.calexp.maxImageNaNFraction") == true)
        // ...unless the type's limit allows it (from a submit config).
        let config = try SubmitConfig.parse("""
        validation:
          datasetTypes:
            calexp: {maxImageNaNFraction: 0.05}
            src: {columns: {flux: 0.2}}
            scratch: {enabled: false}
        """, source: "submit.yaml")
        #expect(config.ignoredKeys.isEmpty, "\(config.ignoredKeys)")
        #expect(failure(nanImage, "calexp", config.validation.checks(for: "calexp")) == nil)
        #expect(config.validation.checks(for: "other").maxImageNaNFraction == 0.01)

        // Columns: entirely NaN fails by default; a per-column limit is stricter.
        let nanColumn = dir + "/nan-column.fits"
        try product(nanColumn, nan: 0, nanRows: 10)
        let m2 = failure(nanColumn)
        #expect(m2?.contains("HDU 2 (SRC): column flux: all 10 values are NaN") == true, "\(m2 ?? "passed")")
        let partial = dir + "/partial.fits"
        try product(partial, nan: 0, nanRows: 3)
        #expect(failure(partial) == nil)
        let m3 = failure(partial, "src", config.validation.checks(for: "src"))
        #expect(m3?.contains("column flux: 30 % of 10 rows are NaN, more than the 20 % allowed for src") == true, "\(m3 ?? "passed")")
        #expect(failure(nanColumn, "scratch", config.validation.checks(for: "scratch")) == nil, "disabled checks skip NaN limits")

        // A flipped byte: the checksum no longer verifies, even with checks disabled.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: good))
        bytes[2880 + 40] ^= 0x01
        let flipped = dir + "/flipped.fits"
        try bytes.write(to: URL(fileURLWithPath: flipped))
        let m4 = failure(flipped, "scratch", config.validation.checks(for: "scratch"))
        #expect(m4?.contains("HDU 1: CHECKSUM/DATASUM do not match") == true, "\(m4 ?? "passed")")

        // Truncated in the table's data: the HDU cannot be read to its end.
        let whole = try Data(contentsOf: URL(fileURLWithPath: good))
        let cut = dir + "/cut.fits"
        try whole.prefix(whole.count - 2880 + 10).write(to: URL(fileURLWithPath: cut))
        let m5 = failure(cut)
        #expect(m5?.contains(cut) == true && m5?.contains("cannot be read") == true, "\(m5 ?? "passed")")

        // Not FITS at all: not checked as FITS (run-quantum only checks files that start as FITS),
        // and the validator itself says it cannot open it.
        let text = dir + "/notes.fits"
        try Data("hello\n".utf8).write(to: URL(fileURLWithPath: text))
        #expect(!FITSValidation.isFITS(path: text))
        #expect(failure(text)?.contains("cfitsio could not open") == true)

        // Without checksums the data are still read to the end.
        let plain = dir + "/plain.fits"
        try product(plain, nan: 0, nanRows: 0, checksum: false)
        #expect(try FITSValidation.check(path: plain, datasetType: "x", what: "x", checks: OutputChecks()).hdus.allSatisfy { $0.checksum == .absent })
    }
}
