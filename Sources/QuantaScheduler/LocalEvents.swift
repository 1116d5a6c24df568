#if canImport(Glibc)
import Glibc
#endif
import Foundation
import QuantaCore

/// One line of `local-events.log`, the local backend's append-only record of what it started and
/// how it ended: written by `LocalBackend`, read by `SubmissionStatus`, both through this type.
/// Lines are `TIME\tARRAY\tINDEX\tKIND\tDETAIL` with TIME in Unix seconds to the microsecond, so
/// "is this start newer than that manifest" is decided to the microsecond, not the second.
public struct LocalEvent: Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// The job's process started (detail: `pid N`).
        case start
        /// It ended (detail: its exit status).
        case end
        /// Never started: an upstream job did not succeed (detail: which).
        case skipped
        /// Stopped by an interrupt (detail: how).
        case cancelled
        /// The merge ended (array `merge`, index 0; detail: its exit status).
        case merged
    }

    public var time: Double
    public var array: String
    public var index: Int
    public var kind: Kind
    public var detail: String

    public init(time: Double = Date().timeIntervalSince1970, array: String, index: Int, kind: Kind, detail: String = "") {
        self.time = time
        self.array = array
        self.index = index
        self.kind = kind
        self.detail = detail
    }

    /// The pid of a `start` event.
    public var pid: Int32? {
        guard kind == .start, detail.hasPrefix("pid ") else { return nil }
        return Int32(detail.dropFirst(4))
    }

    /// A `start` whose process still exists.
    public var processAlive: Bool { pid.map { kill($0, 0) == 0 } ?? false }

    /// The line, newline included; tabs and newlines in the detail become spaces.
    public var line: String {
        let clean = detail.map { $0 == "\t" || $0 == "\n" || $0 == "\r" ? " " : $0 }
        return "\(String(format: "%.6f", time))\t\(array)\t\(index)\t\(kind.rawValue)\t\(String(clean))\n"
    }

    /// Parses a line; nil for a line this version did not write (damaged, or another format).
    public init?(line: Substring) {
        let f = line.split(separator: "\t", maxSplits: 4, omittingEmptySubsequences: false)
        guard f.count >= 4, let t = Double(f[0]), let i = Int(f[2]), let k = Kind(rawValue: String(f[3])) else { return nil }
        self.init(time: t, array: String(f[1]), index: i, kind: k, detail: f.count > 4 ? String(f[4]) : "")
    }

    public static func append(_ event: LocalEvent, to dir: SubmitDirectory) {
        AtomicFile.append(event.line, to: dir.localEvents)
    }

    /// The latest event of each job, keyed by array and index.
    public static func latest(_ dir: SubmitDirectory) -> [JobKey: LocalEvent] {
        guard let text = try? String(contentsOfFile: dir.localEvents, encoding: .utf8) else { return [:] }
        var out: [JobKey: LocalEvent] = [:]
        for line in text.split(separator: "\n") {
            guard let e = LocalEvent(line: line), e.kind != .merged else { continue }
            out[JobKey(array: e.array, index: e.index)] = e
        }
        return out
    }

    public struct JobKey: Hashable, Sendable {
        public var array: String
        public var index: Int
    }
}
