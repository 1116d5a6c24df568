import Foundation

/// Files written to a temporary name in the same directory, then renamed: readers see the old
/// file or the new one, never half of one.
public enum AtomicFile {
    public static func write(_ data: Data, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } catch {
            throw QuantaError(.io, "\(dir): cannot create the directory (\(error.localizedDescription))")
        }
        let tmp = dir + "/." + url.lastPathComponent + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: tmp, contents: data) else {
            throw QuantaError(.io, "\(tmp): cannot write (disk full or no permission?); nothing was replaced")
        }
        guard rename(tmp, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(tmp)
            throw QuantaError(.io, "\(path): cannot rename the new file into place (\(reason)); nothing was replaced")
        }
    }

    public static func write(_ text: String, to path: String) throws {
        try write(Data(text.utf8), to: path)
    }

    /// Appends with one O_APPEND write, so concurrent writers never interleave within a call.
    /// Best effort: logs and event records must not stop the work they describe.
    public static func append(_ text: String, to path: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        _ = text.withCString { Foundation.write(fd, $0, strlen($0)) }
        close(fd)
    }
}
