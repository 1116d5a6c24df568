import Foundation
import QuantaExec
import QuantaRegistry
import QuantaButler
import QuantaCore
import QuantaFITS

/// The demo's result, checked: objects detected on the coadds against the injected stars.
public struct ScienceCheck: Sendable, Codable {
    public struct Band: Sendable, Codable {
        public var band: String
        /// Injected stars in the patches' inner areas bright enough to count (coadd SNR ≥ minSNR).
        public var injected: Int
        public var recovered: Int
        public var completeness: Double
        public var medianOffsetArcsec: Double
        public var p95OffsetArcsec: Double
        /// median(measured / injected flux) − 1, and its robust scatter (1.4826 × MAD).
        public var fluxBias: Double
        public var fluxScatter: Double
        /// Inner-area objects matching no injected star.
        public var spurious: Int
        public var passed: Bool
    }

    /// What the demo promises (the test asserts the same numbers).
    public struct Tolerances: Sendable, Codable {
        public var minSNR = 20.0
        public var matchRadiusArcsec = 1.0
        public var minCompleteness = 0.9
        public var maxMedianOffsetArcsec = 0.1
        public var maxAbsFluxBias = 0.03
        public var maxFluxScatter = 0.05
        public init() {}
    }

    public var tolerances: Tolerances
    public var bands: [Band]
    public var passed: Bool { !bands.isEmpty && bands.allSatisfy(\.passed) }
    /// Ten stars per band at least, else the statistics say nothing.
    public var judgeable: Bool { !bands.isEmpty && bands.allSatisfy { $0.injected >= 10 } }

    /// Reads `truth.fits` and every `deepCoadd_obj` of `run`.
    public static func run(truth: String, repo: Repository, run: String, design: SurveyDesign,
                           tolerances: Tolerances = Tolerances()) throws -> ScienceCheck {
        let t = try FITSFile(open: truth)
        try t.move(to: 2)
        guard case .double(let ra)? = try? t.readColumn("ra"), case .double(let dec)? = try? t.readColumn("dec") else {
            throw QuantaError(.io, "\(truth): no ra/dec columns")
        }
        let registry = try repo.openRegistry()
        let map = design.skyMap
        // Per (band, patch): the coadd's depth plane, and the inner objects.
        var depth: [String: [Int: [Int32]]] = [:]
        for r in try registry.datasets(runs: [run], types: ["deepCoadd"]) {
            let id = try DataID(json: r.dataID)
            guard let band = id["band"]?.description, case .int(let patch)? = id["patch"] else { continue }
            let f = try FITSFile(open: repo.absolutePath(r.path))
            try f.move(to: 4)
            depth[band, default: [:]][Int(patch)] = try f.readImage().pixels.map { Int32($0) }
        }
        var found: [String: [(ra: Double, dec: Double, flux: Double)]] = [:]
        for r in try registry.datasets(runs: [run], types: ["deepCoadd_obj"]) {
            let id = try DataID(json: r.dataID)
            guard let band = id["band"]?.description else { continue }
            let f = try FITSFile(open: repo.absolutePath(r.path))
            try f.move(to: 2)
            guard case .double(let ora) = try f.readColumn("ra"), case .double(let odec) = try f.readColumn("dec"),
                  case .double(let flux) = try f.readColumn("flux"), case .integer(let inner) = try f.readColumn("inner") else {
                throw QuantaError(.io, "\(r.path): deepCoadd_obj lacks ra, dec, flux or inner")
            }
            for i in ora.indices where inner[i] == 1 { found[band, default: []].append((ora[i], odec[i], flux[i])) }
        }
        let n = map.patchOuterSize
        var bands: [Band] = []
        for band in design.bands {
            guard case .double(let tflux)? = try? t.readColumn("flux_\(band)") else { continue }
            // A star counts when its patch's coadd covers a 17×17 box around it (aperture + centroid
            // margin) and its coadd SNR (single-visit SNR × √depth) reaches minSNR.
            var truthList: [(ra: Double, dec: Double, flux: Double)] = [], truthAll = truthList
            for i in ra.indices {
                guard let p = map.patch(containingRA: ra[i], dec: dec[i]), let d = depth[band]?[p],
                      let px = map.patchWCS(p).skyToPixel(ra: ra[i], dec: dec[i]) else { continue }
                truthAll.append((ra[i], dec[i], tflux[i]))
                let cx = Int(px.x.rounded()), cy = Int(px.y.rounded())
                var minDepth = Int32.max
                for y in (cy - 8)...(cy + 8) { for x in (cx - 8)...(cx + 8) {
                    minDepth = (x < 0 || y < 0 || x >= n || y >= n) ? 0 : min(minDepth, d[y * n + x])
                } }
                guard minDepth > 0 else { continue }
                let snr = design.nominalSNR(flux: tflux[i], band: band) * Double(minDepth).squareRoot()
                if snr >= tolerances.minSNR { truthList.append((ra[i], dec[i], tflux[i])) }
            }
            let objects = found[band] ?? []
            let matches = ImagingCore.match(objects, truthList, radiusArcsec: tolerances.matchRadiusArcsec)
            let offsets = matches.map(\.separationArcsec).sorted()
            let ratios = matches.map { objects[$0.found].flux / truthList[$0.truth].flux - 1 }.sorted()
            func quantile(_ a: [Double], _ q: Double) -> Double { a.isEmpty ? .nan : a[min(a.count - 1, Int(Double(a.count - 1) * q + 0.5))] }
            let bias = quantile(ratios, 0.5)
            let scatter = 1.4826 * quantile(ratios.map { abs($0 - bias) }.sorted(), 0.5)
            let all = ImagingCore.match(objects, truthAll, radiusArcsec: tolerances.matchRadiusArcsec)
            var b = Band(band: band, injected: truthList.count, recovered: matches.count,
                         completeness: truthList.isEmpty ? 0 : Double(matches.count) / Double(truthList.count),
                         medianOffsetArcsec: quantile(offsets, 0.5), p95OffsetArcsec: quantile(offsets, 0.95),
                         fluxBias: bias, fluxScatter: scatter, spurious: max(0, objects.count - all.count), passed: false)
            b.passed = b.injected > 0 && b.completeness >= tolerances.minCompleteness
                && b.medianOffsetArcsec <= tolerances.maxMedianOffsetArcsec
                && abs(b.fluxBias) <= tolerances.maxAbsFluxBias && b.fluxScatter <= tolerances.maxFluxScatter
            bands.append(b)
        }
        return ScienceCheck(tolerances: tolerances, bands: bands)
    }

    public var table: [[String]] {
        bands.map { b in
            [b.band, String(b.injected), String(b.recovered), String(format: "%.1f %%", 100 * b.completeness),
             String(format: "%.3f\"", b.medianOffsetArcsec), String(format: "%+.2f %%", 100 * b.fluxBias),
             String(format: "%.2f %%", 100 * b.fluxScatter), String(b.spurious), b.passed ? "ok" : "FAILED"]
        }
    }

    public static let header = ["band", "stars", "found", "complete", "offset", "flux bias", "flux scatter", "unmatched", "check"]
}
