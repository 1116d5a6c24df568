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
}
