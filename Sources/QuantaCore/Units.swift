import Foundation

public enum Units {
    /// Memory in MB from `2048`, `2048MB`, `4G`, `4GB`, `1T` (K/M/G/T, binary multiples as SLURM uses).
    public static func megabytes(_ any: Any) -> Int? {
        if let n = any as? Int { return n }
        if let d = any as? Double { return Int(d.rounded(.up)) }
        guard let s = (any as? String)?.trimmingCharacters(in: .whitespaces).uppercased(), !s.isEmpty else { return nil }
        var digits = s
        var factor = 1.0
        for (suffix, f) in [("TB", 1024.0 * 1024), ("GB", 1024.0), ("MB", 1.0), ("KB", 1.0 / 1024),
                            ("T", 1024.0 * 1024), ("G", 1024.0), ("M", 1.0), ("K", 1.0 / 1024)]
        where s.hasSuffix(suffix) {
            digits = String(s.dropLast(suffix.count)).trimmingCharacters(in: .whitespaces)
            factor = f
            break
        }
        guard let v = Double(digits), v >= 0 else { return nil }
        return Int((v * factor).rounded(.up))
    }

    /// Seconds from an integer (seconds) or SLURM's forms: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`.
    public static func seconds(_ any: Any) -> Int? {
        if let n = any as? Int { return n >= 0 ? n : nil }
        guard let s = (any as? String)?.trimmingCharacters(in: .whitespaces), !s.isEmpty else { return nil }
        if let n = Int(s) { return n * 60 }  // SLURM: a bare number in a string is minutes
        var days = 0
        var rest = Substring(s)
        if let dash = s.firstIndex(of: "-") {
            guard let d = Int(s[..<dash]) else { return nil }
            days = d
            rest = s[s.index(after: dash)...]
        }
        let parts = rest.split(separator: ":", omittingEmptySubsequences: false).map { Int($0) }
        guard !parts.contains(where: { $0 == nil }) else { return nil }
        let p = parts.compactMap { $0 }
        let secs: Int
        switch (days > 0 || s.contains("-"), p.count) {
        case (false, 2): secs = p[0] * 60 + p[1]
        case (false, 3): secs = p[0] * 3600 + p[1] * 60 + p[2]
        case (true, 1): secs = p[0] * 3600
        case (true, 2): secs = p[0] * 3600 + p[1] * 60
        case (true, 3): secs = p[0] * 3600 + p[1] * 60 + p[2]
        default: return nil
        }
        return days * 86400 + secs
    }

    /// SLURM's `D-HH:MM:SS` (or `HH:MM:SS`) for `--time`.
    public static func slurmTime(_ seconds: Int) -> String {
        let d = seconds / 86400, h = (seconds % 86400) / 3600, m = (seconds % 3600) / 60, s = seconds % 60
        let hms = String(format: "%02d:%02d:%02d", h, m, s)
        return d > 0 ? "\(d)-\(hms)" : hms
    }

    /// `4.0 GB`, `512 MB`, for people.
    public static func memory(_ mb: Int) -> String {
        mb >= 1024 && mb % 1024 == 0 ? "\(mb / 1024) GB" : (mb >= 10240 ? String(format: "%.1f GB", Double(mb) / 1024) : "\(mb) MB")
    }
}
