import Foundation
import Testing
import QuantaTestSupport
@testable import QuantaExec
import QuantaCore

/// The imaging core (pure logic): WCS conventions, sky map, survey determinism, ISR, coadd, matching, PNG.
@Suite struct ImagingTests {

    @Test func wcsRoundTripIsExact() {
        let cases = [
            TanWCS(ra: 150, dec: 2, crpix1: 64.5, crpix2: 64.5, scaleArcsec: 0.4, rotationDeg: 0.3),
            TanWCS(ra: 359.99, dec: -30, crpix1: -200, crpix2: 3000, scaleArcsec: 0.2, rotationDeg: 37),
            TanWCS(ra: 10, dec: 89.9, crpix1: 1, crpix2: 1, scaleArcsec: 1.0, rotationDeg: -120),
        ]
        for w in cases {
            var worst = 0.0
            for x in stride(from: -50.0, through: 4000, by: 97.3) {
                for y in stride(from: -50.0, through: 4000, by: 101.1) {
                    let s = w.pixelToSky(x: x, y: y)
                    #expect(s.ra >= 0 && s.ra < 360)
                    let p = try! #require(w.skyToPixel(ra: s.ra, dec: s.dec))
                    worst = max(worst, hypot(p.x - x, p.y - y))
                }
            }
            #expect(worst < 1e-6)
        }
    }

    @Test func wcsPixelConventions() {
        let w = TanWCS(ra: 150, dec: 2, crpix1: 10, crpix2: 20, scaleArcsec: 0.4)
        let s = w.pixelToSky(x: 9, y: 19)             // 0-based (9,19) == FITS CRPIX (10,20)
        #expect(abs(s.ra - 150) < 1e-12 && abs(s.dec - 2) < 1e-12)
        let east = w.pixelToSky(x: 8, y: 19), north = w.pixelToSky(x: 9, y: 20)
        #expect(east.ra > 150 && north.dec > 2)        // east left, north up
        #expect(abs(w.pixelScaleArcsec - 0.4) < 1e-12)
    }

    @Test func wcsHeaderRoundTrip() {
        let w = TanWCS(ra: 150.1, dec: 2.2, crpix1: 33.25, crpix2: -7.5, scaleArcsec: 0.4, rotationDeg: 12)
        var nums: [String: Double] = [:], strs: [String: String] = [:]
        for (k, v) in w.headerNumbers { nums[k] = v }
        for (k, v) in w.headerStrings { strs[k] = v }
        #expect(TanWCS(number: { nums[$0] }, string: { strs[$0] }) == w)
        var bad = strs; bad["CTYPE1"] = "RA---SIN"
        #expect(TanWCS(number: { nums[$0] }, string: { bad[$0] }) == nil)
        var missing = nums; missing["CRPIX2"] = nil
        #expect(TanWCS(number: { missing[$0] }, string: { strs[$0] }) == nil)
    }

    @Test func skyMapPatches() {
        let d = SurveyDesign()
        let m = d.skyMap
        #expect(m.patchCount == 4)
        for p in 0..<m.patchCount {
            let w = m.patchWCS(p)
            #expect(w.crval1 == m.ra && w.crval2 == m.dec && w.cd11 == m.tractWCS.cd11)
        }
        // Every detector of every visit lands inside the union of the patches, and the patch list is sorted.
        for v in d.visits {
            for det in 0..<d.detectorCount {
                let ps = d.patches(visit: v.id, detector: det)
                #expect(!ps.isEmpty && ps == ps.sorted())
                let c = d.detectorWCS(visit: v.id, detector: det).pixelToSky(x: 63.5, y: 63.5)
                #expect(ps.contains(m.patch(containingRA: c.ra, dec: c.dec)!))
            }
        }
    }

    @Test func designIsDeterministic() {
        let a = SurveyDesign(seed: 7), b = SurveyDesign(seed: 7), c = SurveyDesign(seed: 8)
        #expect(a.stars == b.stars && a.visits == b.visits && a.stars != c.stars)
        #expect(a.makeRaw(visit: 1002, detector: 3).pixels == b.makeRaw(visit: 1002, detector: 3).pixels)
        #expect(a.visits.map(\.id) == [1000, 1002, 1004, 1006, 1008, 1010])
        let flat = a.makeFlat(detector: 1)
        #expect(abs(flat.pixels.reduce(0, +) / Float(flat.pixels.count) - 1) < 1e-5)
        #expect(flat.pixels.allSatisfy { $0 > 0.88 && $0 < 1.12 })
    }

    @Test func isrRemovesBiasAndFlat() {
        let d = SurveyDesign()
        let raw = d.makeRaw(visit: 1000, detector: 0)
        let r = ImagingCore.isr(raw: raw, bias: d.makeBias(detector: 0), flat: d.makeFlat(detector: 0), overscan: d.overscan,
                                gain: d.gain, readNoise: d.readNoise, saturation: d.saturation)
        #expect(r.image.width == d.detectorSize && r.mask.allSatisfy { $0 == 0 })
        let bg = ImagingCore.estimateBackground(r.image, mask: r.mask, cell: 64)
        let mean = bg.pixels.reduce(0, +) / Float(bg.pixels.count)
        #expect(abs(Double(mean) - d.visits[0].skyLevel) < 0.05 * d.visits[0].skyLevel)
    }

    @Test func coaddHandlesNaN() {
        let a = Plane(width: 2, height: 1, pixels: [1, .nan]), va = Plane(width: 2, height: 1, pixels: [1, 1])
        let b = Plane(width: 2, height: 1, pixels: [3, .nan]), vb = Plane(width: 2, height: 1, pixels: [1, 1])
        let c = ImagingCore.coadd([(a, va), (b, vb)])
        #expect(c.image[0, 0] == 2 && c.image[1, 0].isNaN && c.depth == [2, 0] && c.variance[0, 0] == 0.5)
    }

    @Test func matchIsOneToOne() {
        let t = [(ra: 150.0, dec: 2.0, flux: 1.0), (ra: 150.0, dec: 2.0 + 1.0 / 3600, flux: 1.0)]
        let f = [(ra: 150.0, dec: 2.0 + 0.1 / 3600, flux: 1.0), (ra: 150.0, dec: 2.0 + 0.2 / 3600, flux: 1.0)]
        let m = ImagingCore.match(f, t, radiusArcsec: 0.9)
        #expect(m.count == 2 && m[0].truth == 0 && m[1].truth == 1)
        #expect(abs(m[0].separationArcsec - 0.1) < 1e-6)
    }

    @Test func pngStructure() throws {
        var p = Plane(width: 300, height: 300)   // 90 300 raw bytes → two stored deflate blocks
        for y in 0..<300 { for x in 0..<300 { p[x, y] = Float(x + y) } }
        p[0, 0] = .nan
        let png = PNGPreview.encode(p)
        #expect(Array(png[0..<8]) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        #expect(Array(png.suffix(12)) == [0, 0, 0, 0, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82])  // IEND + known CRC
        // Decoded by an independent reader (Python's zlib and struct): every chunk's CRC, the
        // header, and the pixels — FITS orientation (PNG row 0 is y = 299), NaN black, the stretch
        // rising with x + y and saturating at the top percentile.
        let dir = NSTemporaryDirectory() + "quanta-png-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data(png).write(to: URL(fileURLWithPath: dir + "/p.png"))
        let script = """
        import struct, sys, zlib, json
        b = open(sys.argv[1], "rb").read()
        assert b[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
        pos, idat, ihdr = 8, b"", None
        while pos < len(b):
            n, = struct.unpack(">I", b[pos:pos + 4]); kind = b[pos + 4:pos + 8]; body = b[pos + 8:pos + 8 + n]
            crc, = struct.unpack(">I", b[pos + 8 + n:pos + 12 + n])
            assert zlib.crc32(kind + body) == crc, kind
            if kind == b"IHDR": ihdr = struct.unpack(">IIBBBBB", body)
            if kind == b"IDAT": idat += body
            pos += 12 + n
        w, h, depth, color = ihdr[:4]
        raw = zlib.decompress(idat)
        rows = [raw[r * (w + 1) + 1:(r + 1) * (w + 1)] for r in range(h)]
        assert all(raw[r * (w + 1)] == 0 for r in range(h))
        print(json.dumps({"w": w, "h": h, "depth": depth, "color": color, "nan": rows[h - 1][0], "top_right": rows[0][w - 1],
                          "bottom_row": list(rows[h - 1][:8]), "row_monotonic": all(rows[150][x] <= rows[150][x + 1] for x in range(w - 1))}))
        """
        let r = try Spawn.capture("/usr/bin/python3", ["-c", script, dir + "/p.png"])
        #expect(r.status.succeeded, "\(r.stderr)")
        let d = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any] ?? [:]
        #expect(d["w"] as? Int == 300 && d["h"] as? Int == 300 && d["depth"] as? Int == 8 && d["color"] as? Int == 0, "\(d)")
        #expect(d["nan"] as? Int == 0, "the NaN pixel (0, 0) is black, in the PNG's last row: \(d)")
        #expect(d["top_right"] as? Int == 255, "x + y = 598 is past the 99.5th percentile: \(d)")
        #expect(d["row_monotonic"] as? Bool == true, "\(d)")
        let bottom = d["bottom_row"] as? [Int] ?? []
        #expect(bottom.count == 8 && bottom[1] <= bottom[7] && bottom[7] < 255, "\(bottom)")
    }
}
