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
        // One open/write/close (FileManager.createFile wrote a second temporary file and synced it).
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw QuantaError(.io, "\(tmp): cannot write (\(String(cString: strerror(errno)))); nothing was replaced")
        }
        var failure: Int32 = 0
        data.withUnsafeBytes { buf in
            var done = 0
            while done < buf.count {
                let n = Foundation.write(fd, buf.baseAddress! + done, buf.count - done)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { failure = n < 0 ? errno : ENOSPC; return }
                done += n
            }
        }
        if close(fd) != 0 && failure == 0 { failure = errno }
        if failure != 0 {
            unlink(tmp)
            throw QuantaError(.io, "\(tmp): cannot write (\(String(cString: strerror(failure))); disk full?); nothing was replaced")
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
