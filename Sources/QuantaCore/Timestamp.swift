#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// `2026-11-21T17:28:47Z`, what `ISO8601DateFormatter` writes by default, without it: that
/// formatter loads ICU, a visible share of run-quantum's start-up on every job.
public enum Timestamp {
    public static func iso8601(_ date: Date) -> String {
        var t = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }

    /// The inverse of `iso8601` (nil for other text).
    public static func parse(_ text: String) -> Date? {
        let f = text.split(whereSeparator: { "-T:Z".contains($0) }).compactMap { Int32($0) }
        guard f.count == 6, text.hasSuffix("Z") else { return nil }
        var parts = tm()
        parts.tm_year = f[0] - 1900; parts.tm_mon = f[1] - 1; parts.tm_mday = f[2]
        parts.tm_hour = f[3]; parts.tm_min = f[4]; parts.tm_sec = f[5]
        let t = timegm(&parts)
        return t == -1 ? nil : Date(timeIntervalSince1970: TimeInterval(t))
    }
}
