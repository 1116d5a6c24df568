import Foundation
import QuantaButler
import QuantaCore

/// Built-in tasks that run inside run-quantum, for the demo pipeline.
public enum BuiltinTasks {
    public static let names = ["isr", "calibrate"]

    /// Overscan columns at the left of every demo raw.
    public static let overscan = 4

    /// Runs one built-in task; `inputs`/`outputs` map dataset type → paths (outputs: temporary paths).
    static func run(_ name: String, dataID: DataID, inputs: [String: [String]], outputs: [String: [String]],
                    log: (String) -> Void) throws {
        switch name {
        case "isr": try isr(inputs: inputs, outputs: outputs, log: log)
        case "calibrate": try calibrate(dataID: dataID, inputs: inputs, outputs: outputs, log: log)
        default:
            throw QuantaError(.execution, "unknown built-in task '\(name)'; built-in tasks are \(names.joined(separator: ", "))")
        }
    }

    static func one(_ map: [String: [String]], _ what: String) throws -> String {
        guard map.count == 1, let paths = map.first?.value, paths.count == 1 else {
            throw QuantaError(.execution, "expected exactly one \(what) dataset, got \(map.values.reduce(0) { $0 + $1.count })")
        }
        return paths[0]
    }

    /// Bias from the overscan columns (median), subtracted; overscan trimmed.
    static func isr(inputs: [String: [String]], outputs: [String: [String]], log: (String) -> Void) throws {
        let raw = try QImage.read(path: try one(inputs, "input"))
        guard raw.width > overscan else { throw QuantaError(.execution, "raw is \(raw.width) pixels wide; it needs more than the \(overscan) overscan columns") }
        var over: [Float] = []
        for y in 0..<raw.height { for x in 0..<overscan { over.append(raw[x, y]) } }
        let bias = median(over)
        var out = QImage(width: raw.width - overscan, height: raw.height)
        for y in 0..<raw.height { for x in 0..<out.width { out[x, y] = raw[x + overscan, y] - bias } }
        log("isr: bias level \(bias) from \(over.count) overscan pixels")
        try out.write(to: try one(outputs, "output"))
    }

    /// Background (median) subtraction and detection of local maxima above 5σ; a CSV source list.
    static func calibrate(dataID: DataID, inputs: [String: [String]], outputs: [String: [String]], log: (String) -> Void) throws {
        var img = try QImage.read(path: try one(inputs, "input"))
        let bg = median(img.pixels)
        let mad = median(img.pixels.map { abs($0 - bg) })
        let sigma = max(mad * 1.4826, 1e-3)
        for i in img.pixels.indices { img.pixels[i] -= bg }
        var rows: [String] = []
        let idText = dataID.pairs.map { "\($0.1)" }.joined(separator: ",")
        for y in 2..<(img.height - 2) {
            for x in 2..<(img.width - 2) {
                let v = img[x, y]
                guard v > 5 * sigma else { continue }
                var isPeak = true
                for dy in -1...1 { for dx in -1...1 where (dx != 0 || dy != 0) && img[x + dx, y + dy] >= v { isPeak = false } }
                guard isPeak else { continue }
                var flux: Float = 0, sx: Float = 0, sy: Float = 0
                for dy in -2...2 { for dx in -2...2 {
                    let p = img[x + dx, y + dy]
                    flux += p; sx += p * Float(x + dx); sy += p * Float(y + dy)
                } }
                rows.append("\(idText),\(String(format: "%.2f,%.2f,%.1f", sx / flux, sy / flux, flux))\n")
            }
        }
        log("calibrate: background \(bg), sigma \(sigma), \(rows.count) sources")
        guard outputs.count == 2 else { throw QuantaError(.execution, "calibrate writes an image and a source table; the graph gives it \(outputs.keys.sorted())") }
        for (type, paths) in outputs {
            for p in paths {
                if type.lowercased().contains("src") || type.lowercased().contains("source") {
                    guard FileManager.default.createFile(atPath: p, contents: Data(rows.joined().utf8)) else {
                        throw QuantaError(.io, "\(p): cannot write the source table")
                    }
                } else {
                    try img.write(to: p)
                }
            }
        }
    }
}
