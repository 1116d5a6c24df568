import Foundation
import Testing
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
}
