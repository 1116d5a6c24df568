// Imaging.swift — self-contained imaging core for a small synthetic astronomy pipeline.
// Foundation only, no I/O, no printing, no global mutable state; every public type is a Sendable value.
//
// Conventions (read before integrating):
//  * Pixel coordinates are 0-based with pixel centres on integers: pixel (0,0) covers [-0.5, 0.5]² and is
//    FITS pixel (1,1). Planes are row-major, index = y * width + x; y grows "up" (FITS), PNG previews flip it.
//  * TanWCS stores FITS values (CRPIX 1-based, CRVAL/CD in degrees); its methods take/return 0-based x, y.
//  * Image values are ADU. Star fluxes (SurveyDesign.Star.flux) are total ADU in the bias-subtracted,
//    flat-fielded ISR image, identical for every visit (no zero-point/transparency changes). Warps preserve
//    surface brightness times the output/input pixel-area ratio (=1 for equal scales), so coadds stay in the
//    same flat-fielded ADU and Source.flux is directly comparable to Star.flux.
//  * Mask bits (Int32): 1 = saturated, 2 = bad / non-finite. Warps treat any non-zero mask value as no data.
import Foundation

// MARK: - Plane

public struct Plane: Sendable {
    public let width: Int
    public let height: Int
    public var pixels: [Float]

    public init(width: Int, height: Int, fill: Float = 0) {
        precondition(width >= 0 && height >= 0, "Plane: negative size")
        self.width = width; self.height = height
        pixels = [Float](repeating: fill, count: width * height)
    }
    public init(width: Int, height: Int, pixels: [Float]) {
        precondition(pixels.count == width * height, "Plane: pixel count mismatch")
        self.width = width; self.height = height; self.pixels = pixels
    }
    public subscript(x: Int, y: Int) -> Float {
        get { pixels[y * width + x] }
        set { pixels[y * width + x] = newValue }
    }
    /// Element-wise `self - other` (same size required); NaN propagates.
    public func subtracting(_ other: Plane) -> Plane {
        precondition(width == other.width && height == other.height, "Plane: size mismatch")
        return Plane(width: width, height: height, pixels: zip(pixels, other.pixels).map { $0 - $1 })
    }
}

// MARK: - TAN WCS

/// Gnomonic projection, FITS convention: (xi, eta) = CD · (p − CRPIX) with p the 1-based FITS pixel.
public struct TanWCS: Sendable, Equatable {
    public var crval1: Double, crval2: Double   // RA, Dec of the tangent point (deg)
    public var crpix1: Double, crpix2: Double   // 1-based FITS reference pixel
    public var cd11: Double, cd12: Double, cd21: Double, cd22: Double   // deg / pixel

    public init(crval1: Double, crval2: Double, crpix1: Double, crpix2: Double, cd11: Double, cd12: Double, cd21: Double, cd22: Double) {
        self.crval1 = crval1; self.crval2 = crval2; self.crpix1 = crpix1; self.crpix2 = crpix2
        self.cd11 = cd11; self.cd12 = cd12; self.cd21 = cd21; self.cd22 = cd22
    }
    /// North-up / east-left grid rotated by `rotationDeg`, scale in arcsec per pixel.
    public init(ra: Double, dec: Double, crpix1: Double, crpix2: Double, scaleArcsec: Double, rotationDeg: Double = 0) {
        let s = scaleArcsec / 3600, t = rotationDeg * .pi / 180
        self.init(crval1: ra, crval2: dec, crpix1: crpix1, crpix2: crpix2,
                  cd11: -s * cos(t), cd12: s * sin(t), cd21: s * sin(t), cd22: s * cos(t))
    }
    public var determinant: Double { cd11 * cd22 - cd12 * cd21 }
    public var pixelScaleArcsec: Double { sqrt(abs(determinant)) * 3600 }

    /// 0-based pixel → (RA in [0,360), Dec) in degrees.
    public func pixelToSky(x: Double, y: Double) -> (ra: Double, dec: Double) {
        let r = Double.pi / 180, dx = x + 1 - crpix1, dy = y + 1 - crpix2
        let xi = (cd11 * dx + cd12 * dy) * r, eta = (cd21 * dx + cd22 * dy) * r, d0 = crval2 * r, den = cos(d0) - eta * sin(d0)
        var ra = (crval1 + atan2(xi, den) / r).truncatingRemainder(dividingBy: 360)
        if ra < 0 { ra += 360 }
        return (ra, atan2(sin(d0) + eta * cos(d0), (xi * xi + den * den).squareRoot()) / r)
    }
    /// (RA, Dec) degrees → 0-based pixel; nil for points ≥ 90° from the tangent point.
    public func skyToPixel(ra: Double, dec: Double) -> (x: Double, y: Double)? {
        let r = Double.pi / 180, a = (ra - crval1) * r, d = dec * r, d0 = crval2 * r
        let cosc = sin(d0) * sin(d) + cos(d0) * cos(d) * cos(a)
        guard cosc > 1e-10 else { return nil }
        let xi = cos(d) * sin(a) / cosc / r, eta = (cos(d0) * sin(d) - sin(d0) * cos(d) * cos(a)) / cosc / r, det = determinant
        return ((cd22 * xi - cd12 * eta) / det + crpix1 - 1, (cd11 * eta - cd21 * xi) / det + crpix2 - 1)
    }
    /// Bounding box, in `other`'s 0-based pixels, of the border of a width × height image with this WCS
    /// (16 samples per edge; infinite box if some point cannot be projected).
    public func footprint(width: Int, height: Int, in other: TanWCS) -> (x0: Double, x1: Double, y0: Double, y1: Double) {
        var b = (x0: Double.infinity, x1: -Double.infinity, y0: Double.infinity, y1: -Double.infinity)
        for i in 0...16 {
            let t = Double(i) / 16, fx = -0.5 + t * Double(width), fy = -0.5 + t * Double(height)
            for (x, y) in [(fx, -0.5), (fx, Double(height) - 0.5), (-0.5, fy), (Double(width) - 0.5, fy)] {
                let s = pixelToSky(x: x, y: y)
                guard let p = other.skyToPixel(ra: s.ra, dec: s.dec) else { return (-.infinity, .infinity, -.infinity, .infinity) }
                b = (min(b.x0, p.x), max(b.x1, p.x), min(b.y0, p.y), max(b.y1, p.y))
            }
        }
        return b
    }
    /// Numeric FITS cards (CRPIX 1-based, degrees).
    public var headerNumbers: [(key: String, value: Double)] {
        [("CRVAL1", crval1), ("CRVAL2", crval2), ("CRPIX1", crpix1), ("CRPIX2", crpix2),
         ("CD1_1", cd11), ("CD1_2", cd12), ("CD2_1", cd21), ("CD2_2", cd22)]
    }
    public var headerStrings: [(key: String, value: String)] {
        [("CTYPE1", "RA---TAN"), ("CTYPE2", "DEC--TAN"), ("CUNIT1", "deg"), ("CUNIT2", "deg"), ("RADESYS", "ICRS")]
    }
    /// Rebuilds from header values. nil unless CTYPE1/2 are RA---TAN/DEC--TAN and CRVAL1/2, CRPIX1/2 and
    /// either CD1_1+CD2_2 (missing CD1_2/CD2_1 default to 0, as in FITS) or CDELT1/2 (+ optional PCi_j) exist.
    public init?(number: (String) -> Double?, string: (String) -> String?) {
        func ctype(_ k: String) -> String? { string(k)?.trimmingCharacters(in: .whitespaces).uppercased() }
        guard ctype("CTYPE1") == "RA---TAN", ctype("CTYPE2") == "DEC--TAN",
              let v1 = number("CRVAL1"), let v2 = number("CRVAL2"),
              let p1 = number("CRPIX1"), let p2 = number("CRPIX2") else { return nil }
        if let a = number("CD1_1"), let d = number("CD2_2") {
            self.init(crval1: v1, crval2: v2, crpix1: p1, crpix2: p2,
                      cd11: a, cd12: number("CD1_2") ?? 0, cd21: number("CD2_1") ?? 0, cd22: d)
        } else if let s1 = number("CDELT1"), let s2 = number("CDELT2") {
            self.init(crval1: v1, crval2: v2, crpix1: p1, crpix2: p2,
                      cd11: s1 * (number("PC1_1") ?? 1), cd12: s1 * (number("PC1_2") ?? 0),
                      cd21: s2 * (number("PC2_1") ?? 0), cd22: s2 * (number("PC2_2") ?? 1))
        } else { return nil }
        guard determinant != 0, determinant.isFinite else { return nil }
    }
}

// MARK: - Sky map

/// One tract (id 0): a tangent plane at (ra, dec), north up / east left, split into patchesX × patchesY
/// square patches of `patchSize` inner pixels. Stored patch images include an `overlap` border on every side,
/// so a patch image is `patchOuterSize` square and its pixel (0,0) is tract pixel patchOrigin(p).
public struct SkyMap: Sendable, Equatable {
    public let ra: Double, dec: Double, pixelScaleArcsec: Double
    public let patchesX: Int, patchesY: Int, patchSize: Int, overlap: Int

    public init(ra: Double, dec: Double, pixelScaleArcsec: Double, patchesX: Int, patchesY: Int, patchSize: Int, overlap: Int = 0) {
        precondition(patchesX > 0 && patchesY > 0 && patchSize > 0 && overlap >= 0)
        self.ra = ra; self.dec = dec; self.pixelScaleArcsec = pixelScaleArcsec
        self.patchesX = patchesX; self.patchesY = patchesY; self.patchSize = patchSize; self.overlap = overlap
    }
    public var tract: Int { 0 }
    public var patchCount: Int { patchesX * patchesY }
    public var patchOuterSize: Int { patchSize + 2 * overlap }
    /// WCS of the tract's inner area [0, patchesX*patchSize) × [0, patchesY*patchSize); tangent point at its centre.
    public var tractWCS: TanWCS {
        TanWCS(ra: ra, dec: dec, crpix1: Double(patchesX * patchSize + 1) / 2, crpix2: Double(patchesY * patchSize + 1) / 2, scaleArcsec: pixelScaleArcsec)
    }
    /// Patch index = py * patchesX + px.
    public func patchXY(_ patch: Int) -> (px: Int, py: Int) { (patch % patchesX, patch / patchesX) }
    /// Tract pixel of the patch image's pixel (0,0) (can be negative because of the overlap border).
    public func patchOrigin(_ patch: Int) -> (x: Int, y: Int) {
        let p = patchXY(patch); return (p.px * patchSize - overlap, p.py * patchSize - overlap)
    }
    /// Same tangent point and CD as the tract; only CRPIX differs.
    public func patchWCS(_ patch: Int) -> TanWCS {
        precondition(patch >= 0 && patch < patchCount, "SkyMap: bad patch index")
        var w = tractWCS; let o = patchOrigin(patch)
        w.crpix1 -= Double(o.x); w.crpix2 -= Double(o.y); return w
    }
    /// Patch whose inner (non-overlap) area contains the position, if any.
    public func patch(containingRA ra: Double, dec: Double) -> Int? {
        guard let p = tractWCS.skyToPixel(ra: ra, dec: dec) else { return nil }
        let px = Int(((p.x + 0.5) / Double(patchSize)).rounded(.down)), py = Int(((p.y + 0.5) / Double(patchSize)).rounded(.down))
        return (0..<patchesX).contains(px) && (0..<patchesY).contains(py) ? py * patchesX + px : nil
    }
    /// Sorted patches whose outer area (incl. overlap) intersects the footprint of a width × height image.
    public func patches(overlapping wcs: TanWCS, width: Int, height: Int) -> [Int] {
        let b = wcs.footprint(width: width, height: height, in: tractWCS), size = Double(patchOuterSize)
        return (0..<patchCount).filter { p in
            let o = patchOrigin(p), lx = Double(o.x) - 0.5, ly = Double(o.y) - 0.5
            return b.x1 > lx && b.x0 < lx + size && b.y1 > ly && b.y0 < ly + size
        }
    }
}

// MARK: - Deterministic random numbers (SplitMix64 + Box–Muller)

fileprivate struct ImgRNG {
    var state: UInt64
    var spare: Double? = nil
    init(_ seed: UInt64, _ streams: Int...) {
        state = seed ^ 0x6A09E667F3BCC909
        _ = next()
        for s in streams { state ^= UInt64(bitPattern: Int64(s)) &* 0xBF58476D1CE4E5B9; _ = next() }
    }
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
    mutating func uniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }
    mutating func uniform(_ a: Double, _ b: Double) -> Double { a + (b - a) * uniform() }
    mutating func gaussian() -> Double {
        if let s = spare { spare = nil; return s }
        var u = uniform(); while u <= 0 { u = uniform() }
        let r = (-2 * log(u)).squareRoot(), t = 2 * Double.pi * uniform()
        spare = r * sin(t); return r * cos(t)
    }
}

/// Median of finite values via Hoare quickselect (O(n); much faster than sorting in unoptimised builds).
fileprivate func imgMedian(_ values: [Float]) -> Float {
    guard !values.isEmpty else { return .nan }
    var a = values
    let n = a.count, k = n / 2
    return a.withUnsafeMutableBufferPointer { p -> Float in
        var lo = 0, hi = n - 1
        while lo < hi {
            let pivot = p[(lo + hi) / 2]
            var i = lo, j = hi
            while i <= j {
                while p[i] < pivot { i += 1 }
                while p[j] > pivot { j -= 1 }
                if i <= j { p.swapAt(i, j); i += 1; j -= 1 }
            }
            if k <= j { hi = j } else if k >= i { lo = i } else { break }
        }
        guard n % 2 == 0 else { return p[k] }
        var below = p[0], t = 1
        while t < k { below = max(below, p[t]); t += 1 }
        return 0.5 * (below + p[k])
    }
}

// MARK: - Survey design and synthetic frames

/// Deterministic synthetic survey. Focal plane: detectorsX × detectorsY science areas of detectorSize² pixels
/// separated by `detectorGap` pixels; detector index = dy * detectorsX + dx. Raw frames are
/// (overscan + detectorSize) × detectorSize with the overscan columns at x < overscan.
public struct SurveyDesign: Sendable {
    public struct Visit: Sendable, Equatable {
        public let id: Int, band: String, dayObs: Int
        public let ditherX: Double, ditherY: Double      // boresight offset from the field centre (pixels)
        public let rotationDeg: Double, psfSigma: Double // PSF: circular Gaussian, sigma in pixels
        public let skyLevel: Double                      // ADU/pixel (flat-fielded) at the boresight
        public let skySlopeX: Double, skySlopeY: Double  // fractional sky change across the focal plane
        public let biasOffset: Double                    // per-visit bias drift (ADU), removed via overscan
    }
    public struct Star: Sendable, Equatable {
        public let id: Int, ra: Double, dec: Double
        public let flux: [String: Double]                // total ADU in the flat-fielded image, per band
    }

    public let seed: UInt64
    public let ra: Double, dec: Double, pixelScaleArcsec: Double
    public let detectorsX: Int, detectorsY: Int, detectorSize: Int, detectorGap: Int, overscan: Int
    public let biasLevel: Double, gain: Double, readNoise: Double  // ADU, e-/ADU, ADU
    public let saturation: Float                                   // raw ADU
    public let bands: [String]
    public let skyLevel: [String: Double]
    public let visits: [Visit]
    public let stars: [Star]
    public let skyMap: SkyMap

    public init(visitsPerBand: Int = 3, bands: [String] = ["g", "r"], detectorsX: Int = 2, detectorsY: Int = 2,
                detectorSize: Int = 128, seed: UInt64 = 42, starsPer10kPixels: Double = 6) {
        precondition(visitsPerBand > 0 && !bands.isEmpty && detectorsX > 0 && detectorsY > 0 && detectorSize >= 16)
        let ra0 = 150.0, dec0 = 2.0, scale = 0.4, gap = 8, g = 1.0, rn = 5.0, maxDither = min(25.0, Double(detectorSize) / 5), maxRot = 0.3
        self.seed = seed; ra = ra0; dec = dec0; pixelScaleArcsec = scale
        self.detectorsX = detectorsX; self.detectorsY = detectorsY; self.detectorSize = detectorSize
        detectorGap = gap; overscan = 4; biasLevel = 1000; gain = g; readNoise = rn; saturation = 60000
        self.bands = bands
        let defaults: [String: Double] = ["u": 80, "g": 150, "r": 300, "i": 450, "z": 600, "y": 700]
        let sky = Dictionary(uniqueKeysWithValues: bands.enumerated().map { ($1, defaults[$1] ?? 200 + 50 * Double($0)) })
        skyLevel = sky
        var rng = ImgRNG(seed, 1), vis: [Visit] = []
        for (bi, band) in bands.enumerated() {
            for _ in 0..<visitsPerBand {
                var dx = 0.0, dy = 0.0
                for _ in 0..<1000 {  // dithers at least 8 px apart
                    dx = rng.uniform(-maxDither, maxDither); dy = rng.uniform(-maxDither, maxDither)
                    if vis.allSatisfy({ hypot($0.ditherX - dx, $0.ditherY - dy) >= 8 }) { break }
                }
                vis.append(Visit(id: 1000 + 2 * vis.count, band: band, dayObs: 20261121 + min(bi, 8),
                                 ditherX: dx, ditherY: dy, rotationDeg: rng.uniform(-maxRot, maxRot),
                                 psfSigma: rng.uniform(1.2, 1.8), skyLevel: sky[band]!,
                                 skySlopeX: rng.uniform(-0.02, 0.02), skySlopeY: rng.uniform(-0.02, 0.02),
                                 biasOffset: rng.uniform(-5, 5)))
            }
        }
        visits = vis
        // Sky map: patches of about 160 px tiling the focal plane (not its dither margins, which few visits
        // reach), so a patch's coadd has data almost everywhere; a 12-px overlap border around each.
        let fpW = Double(detectorsX * detectorSize + (detectorsX - 1) * gap)
        let fpH = Double(detectorsY * detectorSize + (detectorsY - 1) * gap)
        let target = min(160, min(fpW, fpH))
        let nx = max(1, Int((fpW / target).rounded())), ny = max(1, Int((fpH / target).rounded()))
        let patchSize = Int((max(fpW / Double(nx), fpH / Double(ny)) / 8).rounded(.up)) * 8
        let map = SkyMap(ra: ra0, dec: dec0, pixelScaleArcsec: scale, patchesX: nx, patchesY: ny, patchSize: patchSize, overlap: min(12, detectorSize / 10))
        skyMap = map
        // Stars: uniform over the full outer extent of all patches, ≥ 20 px apart (no blends: detect() does not deblend), log-uniform
        // nominal single-visit SNR 10…300 with a ±25 % colour scatter between bands.
        var srng = ImgRNG(seed, 2)
        // Over everything any visit sees: the patches plus the dither and rotation margins.
        let margin = Double(map.overlap) + maxDither + 0.01 * max(fpW, fpH) + 4
        let lo = -margin - 0.5, hiX = Double(nx * patchSize) + margin - 0.5, hiY = Double(ny * patchSize) + margin - 0.5
        let nStars = Int(((hiX - lo) * (hiY - lo) / 1e4 * starsPer10kPixels).rounded())
        var pos: [(Double, Double)] = [], tries = 0
        while pos.count < nStars && tries < 200 * nStars + 1000 {
            tries += 1
            let x = srng.uniform(lo, hiX), y = srng.uniform(lo, hiY)
            if pos.allSatisfy({ hypot($0.0 - x, $0.1 - y) >= 20 }) { pos.append((x, y)) }
        }
        let tw = map.tractWCS
        var st: [Star] = []
        for (k, p) in pos.enumerated() {
            let sp = tw.pixelToSky(x: p.0, y: p.1), snr0 = exp(srng.uniform(log(10.0), log(300.0)))
            var flux: [String: Double] = [:]
            for b in bands {
                let snr = snr0 * exp(srng.uniform(-0.25, 0.25))
                let bg = 4 * Double.pi * 1.5 * 1.5 * (sky[b]! / g + rn * rn)   // noise-equivalent area × var
                flux[b] = (snr * snr / g + (pow(snr, 4) / (g * g) + 4 * snr * snr * bg).squareRoot()) / 2
            }
            st.append(Star(id: k + 1, ra: sp.ra, dec: sp.dec, flux: flux))
        }
        stars = st
    }

    public var detectorCount: Int { detectorsX * detectorsY }
    public var rawWidth: Int { overscan + detectorSize }
    public func visit(id: Int) -> Visit? { visits.first { $0.id == id } }
    /// Nominal PSF-optimal single-visit SNR of a point source (sigma 1.5 px), as used to draw the fluxes.
    public func nominalSNR(flux: Double, band: String) -> Double {
        let bg = 4 * Double.pi * 2.25 * ((skyLevel[band] ?? 0) / gain + readNoise * readNoise)
        return flux / (flux / gain + bg).squareRoot()
    }
    private func requireVisit(_ id: Int) -> Visit {
        guard let v = visit(id: id) else { preconditionFailure("SurveyDesign: unknown visit \(id)") }
        return v
    }
    /// Boresight (RA, Dec) of a visit: field centre offset by the dither on the field's tangent plane.
    public func boresight(visit id: Int) -> (ra: Double, dec: Double) {
        let v = requireVisit(id)
        return TanWCS(ra: ra, dec: dec, crpix1: 1, crpix2: 1, scaleArcsec: pixelScaleArcsec)
            .pixelToSky(x: v.ditherX, y: v.ditherY)
    }
    /// WCS of the TRIMMED science area (detectorSize², no overscan): pixel (0,0) is raw column `overscan`.
    /// All detectors of a visit share the boresight as tangent point; only CRPIX differs.
    public func detectorWCS(visit id: Int, detector: Int) -> TanWCS {
        precondition(detector >= 0 && detector < detectorCount, "SurveyDesign: bad detector")
        let v = requireVisit(id), b = boresight(visit: id), o = focalPlaneOrigin(detector)
        return TanWCS(ra: b.ra, dec: b.dec, crpix1: 1 - o.x, crpix2: 1 - o.y,
                      scaleArcsec: pixelScaleArcsec, rotationDeg: v.rotationDeg)
    }
    /// Focal-plane position (pixels, boresight = 0) of science pixel (0,0) of a detector.
    private func focalPlaneOrigin(_ detector: Int) -> (x: Double, y: Double) {
        let fpW = Double(detectorsX * detectorSize + (detectorsX - 1) * detectorGap)
        let fpH = Double(detectorsY * detectorSize + (detectorsY - 1) * detectorGap)
        return (Double((detector % detectorsX) * (detectorSize + detectorGap)) - (fpW - 1) / 2,
                Double((detector / detectorsX) * (detectorSize + detectorGap)) - (fpH - 1) / 2)
    }
    public func patches(visit id: Int, detector: Int) -> [Int] {
        skyMap.patches(overlapping: detectorWCS(visit: id, detector: detector), width: detectorSize, height: detectorSize)
    }
    /// Noise-free master bias at FULL RAW size (rawWidth × detectorSize): overscan columns hold the bias level,
    /// science columns add a fixed structure (column offsets, row ramp, edge glow; a few ADU).
    public func makeBias(detector: Int) -> Plane {
        var rng = ImgRNG(seed, 4, detector)
        let n = detectorSize, level = Float(biasLevel + 7 * Double(detector))
        var p = Plane(width: rawWidth, height: n, fill: level)
        let col = (0..<n).map { _ in Float(1.5 * rng.gaussian()) }
        for y in 0..<n { for x in 0..<n { p[overscan + x, y] = level + col[x] + 3 * Float(y) / Float(n) + 2 * Float(exp(-Double(x) / 10)) } }
        return p
    }
    /// Noise-free flat at TRIMMED size (detectorSize²): smooth pattern within ~1 ± 0.1, mean exactly 1.
    public func makeFlat(detector: Int) -> Plane {
        var rng = ImgRNG(seed, 3, detector)
        let n = detectorSize, fx = rng.uniform(0.5, 1.5), fy = rng.uniform(0.5, 1.5), ph = rng.uniform(0, 6.3)
        let gx = rng.uniform(-0.05, 0.05), gy = rng.uniform(-0.05, 0.05)
        let f = (0..<(n * n)).map { i -> Double in
            let u = Double(i % n) / Double(n), v = Double(i / n) / Double(n)
            return 1 + 0.04 * sin(2 * .pi * fx * u + ph) * cos(2 * .pi * fy * v) + gx * (u - 0.5) + gy * (v - 0.5)
        }
        let mean = f.reduce(0, +) / Double(n * n)
        return Plane(width: n, height: n, pixels: f.map { Float($0 / mean) })
    }
    /// Raw frame in ADU (rawWidth × detectorSize): bias + visit bias drift + flat × (sky + stars) + noise.
    /// Stars are pixel-integrated Gaussians; noise is Gaussian with variance signal/gain + readNoise².
    public func makeRaw(visit id: Int, detector: Int) -> Plane {
        let v = requireVisit(id), n = detectorSize, wcs = detectorWCS(visit: id, detector: detector)
        let bias = makeBias(detector: detector), flat = makeFlat(detector: detector)
        let o = focalPlaneOrigin(detector), fpW = Double(detectorsX * n), fpH = Double(detectorsY * n)
        var signal = (0..<(n * n)).map {   // sky with a gentle focal-plane gradient
            v.skyLevel * (1 + v.skySlopeX * (o.x + Double($0 % n)) / fpW + v.skySlopeY * (o.y + Double($0 / n)) / fpH)
        }
        let s2 = v.psfSigma * 2.0.squareRoot(), r = Int((5 * v.psfSigma + 1).rounded(.up))
        for star in stars {
            guard let f = star.flux[v.band], let p = wcs.skyToPixel(ra: star.ra, dec: star.dec),
                  p.x > Double(-r), p.y > Double(-r), p.x < Double(n + r), p.y < Double(n + r) else { continue }
            let cx = Int(p.x.rounded()), cy = Int(p.y.rounded())
            let xa = max(0, cx - r), xb = min(n - 1, cx + r), ya = max(0, cy - r), yb = min(n - 1, cy + r)
            guard xa <= xb, ya <= yb else { continue }
            let xs = xa...xb, ys = ya...yb
            let wx = xs.map { 0.5 * (erf((Double($0) + 0.5 - p.x) / s2) - erf((Double($0) - 0.5 - p.x) / s2)) }
            let wy = ys.map { 0.5 * (erf((Double($0) + 0.5 - p.y) / s2) - erf((Double($0) - 0.5 - p.y) / s2)) }
            for (j, y) in ys.enumerated() { for (i, x) in xs.enumerated() { signal[y * n + x] += f * wx[i] * wy[j] } }
        }
        var rng = ImgRNG(seed, 5, id, detector)
        var raw = Plane(width: rawWidth, height: n)
        for y in 0..<n {
            for x in 0..<overscan { raw[x, y] = Float(Double(bias[x, y]) + v.biasOffset + readNoise * rng.gaussian()) }
            for x in 0..<n {
                let s = Double(flat[x, y]) * signal[y * n + x], sd = (max(s, 0) / gain + readNoise * readNoise).squareRoot()
                raw[overscan + x, y] = Float(Double(bias[overscan + x, y]) + v.biasOffset + s + sd * rng.gaussian())
            }
        }
        return raw
    }
}

// MARK: - Processing

public enum ImagingCore: Sendable {
    public static let maskSaturated: Int32 = 1
    public static let maskBad: Int32 = 2

    public struct Source: Sendable, Equatable {
        public var x: Double, y: Double          // 0-based centroid (Gaussian-weighted, iterated)
        public var flux: Double, fluxErr: Double  // aperture sum (ADU) × apertureCorrection
        public var peak: Double                   // max image value in the footprint
        public var significance: Double           // max PSF-smoothed S/N in the footprint
        public var npix: Int                      // footprint pixels above threshold
        public var flags: Int32                   // see flag* constants
    }
    public static let flagEdge: Int32 = 1           // aperture extends beyond the image
    public static let flagBadPixels: Int32 = 2      // aperture contains NaN / masked-bad pixels (skipped)
    public static let flagCentroidFallback: Int32 = 4 // weighted centroid failed; footprint moments used
    public static let flagSaturated: Int32 = 8      // footprint contains saturated pixels

    /// ISR. `bias` is the full-raw-size master bias (see SurveyDesign.makeBias); both frames are
    /// overscan-corrected with the median of their overscan columns (handles per-exposure bias drift), then
    /// image = (raw − bias) / flat on the trimmed area. variance = (max(raw − bias, 0)/gain + readNoise²)/flat²
    /// (ADU², gain in e-/ADU, readNoise in ADU). Mask: 1 = raw ≥ saturation, 2 = non-finite raw or flat ≤ 0
    /// (image and variance set to NaN there).
    public static func isr(raw: Plane, bias: Plane, flat: Plane, overscan: Int, gain: Double, readNoise: Double,
                           saturation: Float) -> (image: Plane, mask: [Int32], variance: Plane) {
        precondition(bias.width == raw.width && bias.height == raw.height, "isr: bias must have the raw size")
        let w = raw.width - overscan, h = raw.height
        precondition(flat.width == w && flat.height == h, "isr: flat must have the trimmed size")
        func level(_ p: Plane) -> Float {
            let v = (0..<h).flatMap { y in (0..<overscan).map { p[$0, y] } }.filter { $0.isFinite }
            return v.isEmpty ? 0 : imgMedian(v)
        }
        let lr = level(raw), lb = level(bias)
        var image = Plane(width: w, height: h), variance = Plane(width: w, height: h)
        var mask = [Int32](repeating: 0, count: w * h)
        let rn2 = Float(readNoise * readNoise), g = Float(gain)
        for y in 0..<h { for x in 0..<w {
            let r = raw[overscan + x, y], f = flat[x, y], i = y * w + x
            guard r.isFinite, f.isFinite, f > 0 else { mask[i] = maskBad; image.pixels[i] = .nan; variance.pixels[i] = .nan; continue }
            if r >= saturation { mask[i] |= maskSaturated }
            let s = (r - lr) - (bias[overscan + x, y] - lb)
            image.pixels[i] = s / f
            variance.pixels[i] = (max(s, 0) / g + rn2) / (f * f)
        } }
        return (image, mask, variance)
    }

    /// Background model: per cell (≈ cell × cell pixels) the 3σ-clipped median (3 iterations, MAD σ) of finite,
    /// unmasked pixels; cells with < 10 % usable pixels take the median of the other cells. Bilinear
    /// interpolation between cell centres, linear extrapolation beyond the outermost centres.
    public static func estimateBackground(_ image: Plane, mask: [Int32]?, cell: Int) -> Plane {
        let w = image.width, h = image.height
        let c = Double(max(cell, 1)), nx = max(1, Int((Double(w) / c).rounded())), ny = max(1, Int((Double(h) / c).rounded()))
        var grid = [Float](repeating: .nan, count: nx * ny)
        for j in 0..<ny { for i in 0..<nx {
            var vals: [Float] = []
            let xr = (i * w / nx)..<((i + 1) * w / nx), yr = (j * h / ny)..<((j + 1) * h / ny)
            for y in yr { for x in xr where image[x, y].isFinite && (mask?[y * w + x] ?? 0) == 0 { vals.append(image[x, y]) } }
            guard vals.count >= max(5, xr.count * yr.count / 10) else { continue }
            for _ in 0..<3 {
                let m = imgMedian(vals), sig = 1.4826 * imgMedian(vals.map { abs($0 - m) })
                let kept = vals.filter { abs($0 - m) <= 3 * sig }
                if kept.count == vals.count || kept.count < 5 { break }
                vals = kept
            }
            grid[j * nx + i] = imgMedian(vals)
        } }
        let good = grid.filter { $0.isFinite }, fill = good.isEmpty ? 0 : imgMedian(good)
        grid = grid.map { $0.isFinite ? $0 : fill }
        func axis(_ n: Int, _ size: Int) -> [(Int, Int, Float)] {
            let centres = (0..<n).map { (Double($0 * size / n) + Double(($0 + 1) * size / n) - 1) / 2 }
            return (0..<size).map { p in
                guard n > 1 else { return (0, 0, 0) }
                var k = 0; while k < n - 2 && Double(p) > centres[k + 1] { k += 1 }
                return (k, k + 1, Float((Double(p) - centres[k]) / (centres[k + 1] - centres[k])))
            }
        }
        let ax = axis(nx, w), ay = axis(ny, h)
        var out = Plane(width: w, height: h)
        for y in 0..<h { for x in 0..<w {
            let (j0, j1, ty) = ay[y], (i0, i1, tx) = ax[x]
            let a = grid[j0 * nx + i0] * (1 - tx) + grid[j0 * nx + i1] * tx, b = grid[j1 * nx + i0] * (1 - tx) + grid[j1 * nx + i1] * tx
            out.pixels[y * w + x] = a * (1 - ty) + b * ty
        } }
        return out
    }

    /// Separable convolution with zero padding (while-loops: fast enough in unoptimised builds too).
    private static func convolve(_ data: [Float], _ w: Int, _ h: Int, _ k: [Float]) -> [Float] {
        let r = k.count / 2
        func pass(_ src: [Float], _ horizontal: Bool) -> [Float] {
            var out = [Float](repeating: 0, count: w * h)
            let (len, step) = horizontal ? (w, 1) : (h, w)
            src.withUnsafeBufferPointer { s in out.withUnsafeMutableBufferPointer { o in k.withUnsafeBufferPointer { kk in
                var i = 0
                while i < w * h {
                    let pos = horizontal ? i % w : i / w, end = min(len - 1, pos + r)
                    var acc: Float = 0, t = max(0, pos - r)
                    while t <= end { acc += kk[t - pos + r] * s[i + (t - pos) * step]; t += 1 }
                    o[i] = acc; i += 1
                }
            } } }
            return out
        }
        return pass(pass(data, true), false)
    }

    /// Aperture photometry: sum of pixels within `radius` of (x, y) with exact-ish fractional weights
    /// (8×8 sub-sampling of boundary pixels); variance = Σ weight² × variance. Non-finite or bad-masked pixels
    /// are skipped (flagBadPixels); an aperture crossing the image border sets flagEdge.
    public static func aperture(image: Plane, variance: Plane, mask: [Int32]?, x: Double, y: Double,
                                radius: Double) -> (flux: Double, variance: Double, flags: Int32) {
        var flux = 0.0, v = 0.0, flags: Int32 = 0
        let x0 = Int((x - radius).rounded(.down)), x1 = Int((x + radius).rounded(.up))
        let y0 = Int((y - radius).rounded(.down)), y1 = Int((y + radius).rounded(.up))
        for py in y0...y1 { for px in x0...x1 {
            let d = hypot(Double(px) - x, Double(py) - y)
            guard d < radius + 0.7072 else { continue }
            var frac = 1.0
            if d > radius - 0.7072 {
                var inside = 0
                for sy in 0..<8 { for sx in 0..<8 {
                    let dx = Double(px) - 0.5 + (Double(sx) + 0.5) / 8 - x, dy = Double(py) - 0.5 + (Double(sy) + 0.5) / 8 - y
                    if dx * dx + dy * dy <= radius * radius { inside += 1 }
                } }
                frac = Double(inside) / 64
                if inside == 0 { continue }
            }
            guard px >= 0, py >= 0, px < image.width, py < image.height else { flags |= flagEdge; continue }
            let i = py * image.width + px, val = Double(image.pixels[i]), vv = Double(variance.pixels[i])
            guard val.isFinite, vv.isFinite, (mask?[i] ?? 0) & maskBad == 0 else { flags |= flagBadPixels; continue }
            flux += frac * val; v += frac * frac * vv
        } }
        return (flux, v, flags)
    }

    /// Detection on a background-subtracted image. The image is smoothed with a Gaussian of `psfSigma` (matched
    /// filter, normalised over usable pixels); pixels with smoothed S/N = Σk·I / sqrt(Σk²·var) ≥ threshold form
    /// 8-connected footprints (≥ minPixels, no deblending). Centroid: Gaussian-weighted (σ = psfSigma) first
    /// moments iterated to convergence from the smoothed peak. Flux: `aperture` at the centroid times
    /// `apertureCorrection` (default 1; use r ≥ 4σ and no correction, or your own curve-of-growth factor).
    public static func detect(image: Plane, variance: Plane, mask: [Int32]?, threshold: Double = 5,
                              minPixels: Int = 4, apertureRadius: Double, psfSigma: Double = 1.5,
                              apertureCorrection: Double = 1) -> [Source] {
        let w = image.width, h = image.height, n = w * h
        var valid = [Float](repeating: 0, count: n), iv = valid, vv = valid
        for i in 0..<n {
            let a = image.pixels[i], v = variance.pixels[i]
            if a.isFinite, v.isFinite, v > 0, (mask?[i] ?? 0) & maskBad == 0 { valid[i] = 1; iv[i] = a; vv[i] = v }
        }
        let r = max(1, Int((4 * psfSigma).rounded(.up)))
        var k = (-r...r).map { Float(exp(-Double($0 * $0) / (2 * psfSigma * psfSigma))) }
        let ks = k.reduce(0, +); k = k.map { $0 / ks }
        let num = convolve(iv, w, h, k), den = convolve(vv, w, h, k.map { $0 * $0 }), cover = convolve(valid, w, h, k)
        var snr = [Float](repeating: 0, count: n)
        for i in 0..<n where cover[i] >= 0.5 && den[i] > 0 { snr[i] = num[i] / den[i].squareRoot() }
        var label = [Bool](repeating: false, count: n)
        var sources: [Source] = []
        let thr = Float(threshold)
        for start in 0..<n where snr[start] >= thr && !label[start] {
            var stack = [start], comp: [Int] = []
            label[start] = true
            while let p = stack.popLast() {   // 8-connected flood fill
                comp.append(p)
                for dy in -1...1 { for dx in -1...1 where (0..<w).contains(p % w + dx) && (0..<h).contains(p / w + dy) {
                    let q = p + dy * w + dx
                    if !label[q] && snr[q] >= thr { label[q] = true; stack.append(q) }
                } }
            }
            guard comp.count >= minPixels else { continue }
            var best = comp[0], peak = -Double.infinity, flags: Int32 = 0
            for p in comp {
                if snr[p] > snr[best] { best = p }
                if valid[p] > 0 { peak = max(peak, Double(iv[p])) }
                if (mask?[p] ?? 0) & maskSaturated != 0 { flags |= flagSaturated }
            }
            // Iterated Gaussian-weighted centroid.
            let x0 = Double(best % w), y0 = Double(best / w)
            var cx = x0, cy = y0, ok = false
            let s2 = 2 * psfSigma * psfSigma, R = Int((3 * psfSigma + 1).rounded(.up))
            for _ in 0..<30 {
                var sw = 0.0, sx = 0.0, sy = 0.0
                let ix = Int(cx.rounded()), iy = Int(cy.rounded())
                for y in max(0, iy - R)...min(h - 1, iy + R) { for x in max(0, ix - R)...min(w - 1, ix + R) where valid[y * w + x] > 0 {
                    let dx = Double(x) - cx, dy = Double(y) - cy, wt = exp(-(dx * dx + dy * dy) / s2) * Double(iv[y * w + x])
                    sw += wt; sx += wt * Double(x); sy += wt * Double(y)
                } }
                let nx = sx / sw, ny = sy / sw
                ok = sw > 0 && hypot(nx - x0, ny - y0) < 2
                guard ok else { break }
                let moved = hypot(nx - cx, ny - cy)
                (cx, cy) = (nx, ny)
                if moved < 1e-5 { break }
            }
            if !ok {   // fall back to unweighted first moments of the positive footprint pixels
                flags |= flagCentroidFallback
                let pos = comp.filter { valid[$0] > 0 && iv[$0] > 0 }, sw = pos.reduce(0.0) { $0 + Double(iv[$1]) }
                (cx, cy) = sw > 0 ? (pos.reduce(0.0) { $0 + Double(iv[$1] * Float($1 % w)) } / sw,
                                     pos.reduce(0.0) { $0 + Double(iv[$1] * Float($1 / w)) } / sw) : (x0, y0)
            }
            let ap = aperture(image: image, variance: variance, mask: mask, x: cx, y: cy, radius: apertureRadius)
            sources.append(Source(x: cx, y: cy, flux: ap.flux * apertureCorrection, fluxErr: ap.variance.squareRoot() * apertureCorrection,
                                  peak: peak, significance: Double(snr[best]), npix: comp.count, flags: flags | ap.flags))
        }
        return sources
    }

    /// Resamples `image` (WCS `from`) onto a width × height grid with WCS `to`: exact per-pixel sky mapping,
    /// bilinear interpolation. Output is NaN where the input does not cover or any contributing input pixel is
    /// non-finite or has a non-zero mask. Values are scaled by the pixel-area ratio |det CD_to| / |det CD_from|
    /// (flux conservation; 1 for equal scales). Variance is interpolated with the same (linear) weights — it
    /// is the un-resampled per-pixel variance, right for sums over ≳ 2×2 pixels (apertures, PSF smoothing)
    /// while per-pixel noise of the interpolated image is lower by Σw² (up to 4× at half-pixel shifts).
    public static func warp(image: Plane, variance: Plane, mask: [Int32]?, from: TanWCS, to: TanWCS,
                            width: Int, height: Int) -> (image: Plane, variance: Plane, coverage: Int) {
        var out = Plane(width: width, height: height, fill: .nan), outVar = out
        let w = image.width, h = image.height
        guard w >= 2, h >= 2, width > 0, height > 0 else { return (out, outVar, 0) }
        let area = Float(abs(to.determinant / from.determinant))
        // Restrict the loop to the bounding box of the input footprint in output pixels.
        let b = from.footprint(width: w, height: h, in: to)
        let xlo = max(0, Int(max(b.x0, -1).rounded(.down)) - 1), xhi = min(width - 1, Int(min(b.x1, Double(width)).rounded(.up)) + 1)
        let ylo = max(0, Int(max(b.y0, -1).rounded(.down)) - 1), yhi = min(height - 1, Int(min(b.y1, Double(height)).rounded(.up)) + 1)
        guard xlo <= xhi, ylo <= yhi else { return (out, outVar, 0) }
        var coverage = 0
        for y in ylo...yhi { for x in xlo...xhi {
            let s = to.pixelToSky(x: Double(x), y: Double(y))
            guard let p = from.skyToPixel(ra: s.ra, dec: s.dec),
                  p.x >= -1e-9, p.y >= -1e-9, p.x <= Double(w - 1) + 1e-9, p.y <= Double(h - 1) + 1e-9 else { continue }
            let i0 = min(max(Int(p.x), 0), w - 2), j0 = min(max(Int(p.y), 0), h - 2)
            let tx = Float(p.x - Double(i0)), ty = Float(p.y - Double(j0))
            var sum: Float = 0, vsum: Float = 0, good = true
            for (dx, dy, wt) in [(0, 0, (1 - tx) * (1 - ty)), (1, 0, tx * (1 - ty)), (0, 1, (1 - tx) * ty), (1, 1, tx * ty)] where wt > 1e-6 {
                let k = (j0 + dy) * w + i0 + dx, a = image.pixels[k], v = variance.pixels[k]
                if !a.isFinite || !v.isFinite || (mask?[k] ?? 0) != 0 { good = false; break }
                sum += wt * a; vsum += wt * v
            }
            guard good else { continue }
            out[x, y] = sum * area; outVar[x, y] = vsum * area * area; coverage += 1
        } }
        return (out, outVar, coverage)
    }

    public enum CoaddWeighting: Sendable {
        /// w = 1/variance per pixel. Biased for bright stars when the variance includes source Poisson noise
        /// (sharper visits get down-weighted in the core → flux loss of a few %); not recommended here.
        case perPixel
        /// w = 1/median(variance) per input (LSST-style): unbiased fluxes, preserves a consistent PSF mix.
        case perImage
    }

    /// Weighted mean of aligned warps ignoring NaN inputs; NaN where nothing covers. variance = Σw²v/(Σw)²;
    /// depth = number of inputs used per pixel.
    public static func coadd(_ warps: [(image: Plane, variance: Plane)], weighting: CoaddWeighting = .perImage)
        -> (image: Plane, variance: Plane, depth: [Int32]) {
        guard let first = warps.first else { return (Plane(width: 0, height: 0), Plane(width: 0, height: 0), []) }
        let w = first.image.width, h = first.image.height, n = w * h
        precondition(warps.allSatisfy { $0.image.width == w && $0.image.height == h && $0.variance.width == w && $0.variance.height == h })
        let imageWeights: [Double] = warps.map { wp in
            let m = Double(imgMedian(wp.variance.pixels.filter { $0.isFinite && $0 > 0 }))
            return m.isFinite && m > 0 ? 1 / m : 0
        }
        var sw = [Double](repeating: 0, count: n), sx = sw, sv = sw
        var depth = [Int32](repeating: 0, count: n)
        let perPixel = weighting == .perPixel
        for (k, wp) in warps.enumerated() {
            wp.image.pixels.withUnsafeBufferPointer { ip in wp.variance.pixels.withUnsafeBufferPointer { vp in
                var i = 0
                while i < n {
                    let a = Double(ip[i]), v = Double(vp[i]), wt = perPixel ? 1 / v : imageWeights[k]
                    if a.isFinite && v.isFinite && v > 0 && wt > 0 { sw[i] += wt; sx[i] += wt * a; sv[i] += wt * wt * v; depth[i] += 1 }
                    i += 1
                }
            } }
        }
        let img = (0..<n).map { sw[$0] > 0 ? Float(sx[$0] / sw[$0]) : .nan }, vr = (0..<n).map { sw[$0] > 0 ? Float(sv[$0] / (sw[$0] * sw[$0])) : .nan }
        return (Plane(width: w, height: h, pixels: img), Plane(width: w, height: h, pixels: vr), depth)
    }

    /// Great-circle separation in arcsec (haversine).
    public static func separationArcsec(_ ra1: Double, _ dec1: Double, _ ra2: Double, _ dec2: Double) -> Double {
        let r = Double.pi / 180, sd = sin((dec2 - dec1) * r / 2), sa = sin((ra2 - ra1) * r / 2)
        return 2 * asin(min(1, (sd * sd + cos(dec1 * r) * cos(dec2 * r) * sa * sa).squareRoot())) / r * 3600
    }

    /// One-to-one nearest-neighbour match: all pairs within the radius, taken greedily by increasing separation.
    /// Result sorted by `found` index. Flux is not used for matching.
    public static func match(_ found: [(ra: Double, dec: Double, flux: Double)],
                             _ truth: [(ra: Double, dec: Double, flux: Double)],
                             radiusArcsec: Double) -> [(found: Int, truth: Int, separationArcsec: Double)] {
        let order = truth.indices.sorted { truth[$0].dec < truth[$1].dec }
        let decs = order.map { truth[$0].dec }, rdeg = radiusArcsec / 3600
        var pairs: [(Int, Int, Double)] = []
        for (i, f) in found.enumerated() {
            var lo = 0, hi = decs.count
            while lo < hi { let m = (lo + hi) / 2; if decs[m] < f.dec - rdeg { lo = m + 1 } else { hi = m } }
            for k in lo..<decs.count {
                guard decs[k] <= f.dec + rdeg else { break }
                let j = order[k], s = separationArcsec(f.ra, f.dec, truth[j].ra, truth[j].dec)
                if s <= radiusArcsec { pairs.append((i, j, s)) }
            }
        }
        pairs.sort { ($0.2, $0.0, $0.1) < ($1.2, $1.0, $1.1) }
        var usedF = Set<Int>(), usedT = Set<Int>(), out: [(found: Int, truth: Int, separationArcsec: Double)] = []
        for (i, j, s) in pairs where !usedF.contains(i) && !usedT.contains(j) { usedF.insert(i); usedT.insert(j); out.append((i, j, s)) }
        return out.sorted { $0.found < $1.found }
    }
}

// MARK: - PNG preview

public enum PNGPreview: Sendable {
    /// 8-bit grayscale PNG: asinh stretch between the given percentiles of the finite pixels, NaN → black.
    /// Row 0 of the PNG is the TOP of the image (y = height − 1) when flipY (FITS/ds9 orientation).
    /// Uncompressed (zlib stored blocks) — meant for small previews.
    public static func encode(_ plane: Plane, lowPercentile: Double = 1, highPercentile: Double = 99.5,
                              softening: Double = 10, flipY: Bool = true) -> [UInt8] {
        precondition(plane.width > 0 && plane.height > 0, "PNGPreview: empty plane")
        let finite = plane.pixels.filter { $0.isFinite }.sorted()
        func pct(_ p: Double) -> Double {
            finite.isEmpty ? 0 : Double(finite[min(finite.count - 1, max(0, Int(p / 100 * Double(finite.count - 1) + 0.5)))])
        }
        let lo = pct(lowPercentile), range = max(pct(highPercentile) - lo, 1e-20), norm = asinh(softening)
        var raw: [UInt8] = []   // scanlines, each prefixed with filter type 0 (None)
        for row in 0..<plane.height {
            let y = flipY ? plane.height - 1 - row : row
            raw.append(0)
            for x in 0..<plane.width {
                let v = Double(plane[x, y]), t = v.isFinite ? min(1, max(0, asinh(softening * (v - lo) / range) / norm)) : 0
                raw.append(UInt8((t * 255).rounded()))
            }
        }
        var z: [UInt8] = [0x78, 0x01]
        var off = 0
        repeat {
            let len = min(65535, raw.count - off)   // stored block: BFINAL, LEN, NLEN (little endian), data
            z += [off + len >= raw.count ? 1 : 0, UInt8(len & 0xFF), UInt8(len >> 8), UInt8(~len & 0xFF), UInt8((~len >> 8) & 0xFF)]
            z += raw[off..<(off + len)]
            off += len
        } while off < raw.count
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in raw { a = (a + UInt32(byte)) % 65521; b = (b + a) % 65521 }
        z += be32((b << 16) | a)
        return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
            + chunk("IHDR", be32(UInt32(plane.width)) + be32(UInt32(plane.height)) + [8, 0, 0, 0, 0])  // 8-bit gray
            + chunk("IDAT", z) + chunk("IEND", [])
    }
    private static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }
    private static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        return be32(UInt32(data.count)) + body + be32(pngCRC(body))
    }
    /// CRC-32 (ISO-HDLC, as used by PNG), bitwise; named to avoid clashing with a host `CRC32` type.
    private static func pngCRC(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for byte in bytes { c ^= UInt32(byte); for _ in 0..<8 { c = (c & 1) != 0 ? (0xEDB8_8320 ^ (c >> 1)) : (c >> 1) } }
        return c ^ 0xFFFF_FFFF
    }
}
