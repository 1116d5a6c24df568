#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Writes to standard error and output that never trap. `FileHandle.write(_:)` raises when the
/// write fails (a full disk behind a job's `--error` file), which killed run-quantum with
/// SIGILL and lost the reason (issue 12); a message that cannot be written is dropped instead.
public enum StandardStreams {
    public static func error(_ text: String) { write(2, text) }
    public static func output(_ text: String) {
        fflush(nil)
        write(1, text)
    }

    static func write(_ fd: Int32, _ text: String) {
        var text = text
        text.withUTF8 { buf in
            var done = 0
            while done < buf.count {
                let n = Glibc.write(fd, buf.baseAddress! + done, buf.count - done)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }
                done += n
            }
        }
    }
}
