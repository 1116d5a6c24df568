import Foundation

/// What run-quantum checks in every FITS output, per dataset type (submit config key `validation`).
///
///     validation:
///       maxImageNaNFraction: 0.01        # default 1 % NaN pixels per image HDU
///       maxColumnNaNFraction: 0.5        # default: a column must only not be entirely NaN
///       datasetTypes:
///         deepCoadd: {maxImageNaNFraction: 0.2}
///         src: {columns: {apFlux: 0.05}}
///         scratchImage: {enabled: false}
public struct OutputChecks: Sendable, Equatable, Codable {
    public var enabled: Bool
    public var maxImageNaNFraction: Double
    /// nil: the only rule for table columns is "not entirely NaN".
    public var maxColumnNaNFraction: Double?
    /// Per-column limits (column names compare case-insensitively).
    public var columns: [String: Double]

    public init(enabled: Bool = true, maxImageNaNFraction: Double = 0.01, maxColumnNaNFraction: Double? = nil,
                columns: [String: Double] = [:]) {
        self.enabled = enabled
        self.maxImageNaNFraction = maxImageNaNFraction
        self.maxColumnNaNFraction = maxColumnNaNFraction
        self.columns = columns
    }

    public func columnLimit(_ name: String) -> Double? {
        columns.first { $0.key.caseInsensitiveCompare(name) == .orderedSame }?.value ?? maxColumnNaNFraction
    }
}

/// The `validation` section: defaults for all dataset types and overrides per type.
public struct ValidationConfig: Sendable, Equatable, Codable {
    public var defaults: OutputChecks
    public var datasetTypes: [String: OutputChecks]

    public init(defaults: OutputChecks = OutputChecks(), datasetTypes: [String: OutputChecks] = [:]) {
        self.defaults = defaults
        self.datasetTypes = datasetTypes
    }

    public func checks(for datasetType: String) -> OutputChecks { datasetTypes[datasetType] ?? defaults }

    /// Where a person changes the limit for `datasetType` (the defaults' key when it is empty).
    public static func key(_ datasetType: String, _ field: String) -> String {
        datasetType.isEmpty ? "validation.\(field)" : "validation.datasetTypes.\(datasetType).\(field)"
    }

    public var json: String {
        let e = JSONEncoder()
        e.outputFormatting = .sortedKeys
        return String(decoding: (try? e.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }

    public static func decode(json: String) -> ValidationConfig? {
        try? JSONDecoder().decode(ValidationConfig.self, from: Data(json.utf8))
    }
}

extension YAMLReader {
    func fraction(_ any: Any, path: String) throws -> Double {
        guard let d = (any as? Double) ?? (any as? Int).map(Double.init), d >= 0, d <= 1 else {
            throw fail(path, "expected a fraction between 0 and 1 (0.01 = 1 %), got '\(any)'")
        }
        return d
    }

    mutating func checks(_ m: [String: Any], base: OutputChecks, path: String) throws -> OutputChecks {
        var c = base
        for (k, v) in m {
            switch k {
            case "enabled": c.enabled = try bool(v, path: path + k)
            case "maxImageNaNFraction": c.maxImageNaNFraction = try fraction(v, path: path + k)
            case "maxColumnNaNFraction": c.maxColumnNaNFraction = try fraction(v, path: path + k)
            case "columns":
                for (name, limit) in try mapping(v, path: path + k) {
                    c.columns[name] = try fraction(limit, path: path + k + "." + name)
                }
            case "datasetTypes" where path == "validation.": continue
            default: ignored.append(path + k)
            }
        }
        return c
    }

    mutating func validation(_ any: Any) throws -> ValidationConfig {
        let m = try mapping(any, path: "validation")
        var v = ValidationConfig()
        v.defaults = try checks(m, base: OutputChecks(), path: "validation.")
        if let types = m["datasetTypes"] {
            for (name, spec) in try mapping(types, path: "validation.datasetTypes") {
                v.datasetTypes[name] = try checks(try mapping(spec, path: "validation.datasetTypes.\(name)"), base: v.defaults,
                                                  path: "validation.datasetTypes.\(name).")
            }
        }
        return v
    }
}
