import Foundation
import QuantaCore

/// `slurm-journal.jsonl`: every step of a SLURM submission, appended as it happens — a round's
/// intent before its first sbatch, each array's job id the moment sbatch returns (fsync'd before
/// the next sbatch), the final job, a cancel. `slurm.json` is the same record folded at round end;
/// `SlurmRecord.read` folds the journal over it, so a `quanta submit` killed mid-round leaves
/// every job it queued visible to status, cancel and restart.
public enum SlurmJournal {
    public struct Entry: Sendable, Codable, Equatable {
        public enum Event: String, Sendable, Codable {
            /// A round is about to be submitted: `planned` lists its sbatch calls in order.
            case round
            /// One array of a round is queued: `submitted`.
            case array
            /// The round's final job is queued: `jobID`; the round is complete.
            case final
            /// Submitting the round failed and what it had queued was cancelled: the round is void.
            case abandoned
            /// `quanta cancel`: the final job retries nothing.
            case cancelled
        }

        public var v = 1
        public var event: Event
        public var round: Int?
        public var reason: SlurmRecord.Reason?
        public var backend: String?
        public var at: String?
        public var planned: [SlurmRecord.Planned]?
        public var submitted: SlurmRecord.Submitted?
        public var jobID: UInt32?

        public static func round(_ number: Int, reason: SlurmRecord.Reason, backend: String, planned: [SlurmRecord.Planned], at: Date = Date()) -> Entry {
            Entry(event: .round, round: number, reason: reason, backend: backend, at: Timestamp.iso8601(at), planned: planned)
        }
        public static func array(_ number: Int, _ s: SlurmRecord.Submitted) -> Entry { Entry(event: .array, round: number, submitted: s) }
        public static func final(_ number: Int, jobID: UInt32) -> Entry { Entry(event: .final, round: number, jobID: jobID) }
        public static func abandoned(_ number: Int) -> Entry { Entry(event: .abandoned, round: number) }
        public static let cancelled = Entry(event: .cancelled)
    }

    /// Appends one line with one O_APPEND write and fsyncs it: when this returns, the entry
    /// survives a kill -9 of this process (and a crash of the machine).
    public static func append(_ entry: Entry, to path: String) throws {
        var line = String(decoding: try JSONEncoder.compact.encode(entry), as: UTF8.self) + "\n"
        let fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw QuantaError(.io, "\(path): cannot open the SLURM journal (\(String(cString: strerror(errno)))); check the submit directory's permissions")
        }
        defer { close(fd) }
        let size = lseek(fd, 0, SEEK_END)
        if size > 0 {
            // A line torn by a kill mid-write has no newline: start ours on a line of its own.
            var last: UInt8 = 0
            if pread(fd, &last, 1, size - 1) == 1, last != UInt8(ascii: "\n") { line = "\n" + line }
        }
        let bytes = Array(line.utf8)
        let written = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress!, $0.count) }
        guard written == bytes.count else {
            let reason = written < 0 ? String(cString: strerror(errno)) : "short write"
            throw QuantaError(.io, "\(path): cannot append to the SLURM journal (\(reason)); free disk space, then 'quanta status' shows what was queued")
        }
        guard fsync(fd) == 0 else {
            throw QuantaError(.io, "\(path): cannot sync the SLURM journal (\(String(cString: strerror(errno)))); free disk space, then 'quanta status' shows what was queued")
        }
        if size == 0 {
            // The journal's name in its directory must survive too.
            let dirFD = open((path as NSString).deletingLastPathComponent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if dirFD >= 0 { fsync(dirFD); close(dirFD) }
        }
    }

    /// Every entry that parses, in order; a line that does not (torn by a kill mid-write, or from a
    /// newer Quanta) is skipped with a note naming it. Never throws: the journal is evidence, and a
    /// damaged line must not hide the ones around it.
    public static func read(_ path: String) -> (entries: [Entry], notes: [String]) {
        guard let data = FileManager.default.contents(atPath: path) else { return ([], []) }
        return parse(data, name: path)
    }

    static func parse(_ data: Data, name: String) -> (entries: [Entry], notes: [String]) {
        var entries: [Entry] = []
        var notes: [String] = []
        let decoder = JSONDecoder()
        for (k, line) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            if let e = try? decoder.decode(Entry.self, from: Data(line)), e.v == 1 {
                entries.append(e)
            } else {
                notes.append("\(name) line \(k + 1): unreadable (\(line.count) bytes, torn by a kill mid-write?); ignored")
            }
        }
        return (entries, notes)
    }
}

extension JSONEncoder {
    /// One line of JSON, keys sorted: what a journal line is made of.
    static var compact: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }
}

extension SlurmRecord {
    /// Replays one journal entry. Replaying an entry already in the record changes nothing, so the
    /// whole journal can be folded over any `slurm.json` written from it.
    public mutating func apply(_ e: SlurmJournal.Entry) {
        let at = e.round.flatMap { n in rounds.firstIndex { $0.number == n } }
        switch e.event {
        case .round:
            guard let n = e.round else { return }
            if backend.isEmpty, let b = e.backend { backend = b }
            // A person's restart resumes a cancelled submission (as `quanta restart` always did).
            if e.reason == .restart { cancelled = false }
            guard at == nil else { return }
            rounds.append(Round(number: n, reason: e.reason ?? .submit, submittedAt: e.at ?? "", arrays: [], finalJob: nil,
                                planned: e.planned ?? []))
        case .array:
            guard let i = at, let s = e.submitted, !rounds[i].arrays.contains(where: { $0.jobID == s.jobID }) else { return }
            rounds[i].arrays.append(s)
        case .final:
            guard let i = at, let id = e.jobID else { return }
            rounds[i].finalJob = id
            rounds[i].planned = nil
        case .abandoned:
            if let i = at { rounds.remove(at: i) }
        case .cancelled:
            cancelled = true
        }
    }
}
