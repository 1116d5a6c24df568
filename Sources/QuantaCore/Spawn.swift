#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// How a child process ended.
public enum ExitStatus: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    public init(waitStatus s: Int32) {
        self = (s & 0x7f) == 0 ? .exited((s >> 8) & 0xff) : .signaled(s & 0x7f)
    }

    public var succeeded: Bool { self == .exited(0) }

    /// Shell convention: 128 + signal.
    public var code: Int32 {
        switch self {
        case .exited(let c): return c
        case .signaled(let s): return 128 + s
        }
    }

    public var description: String {
        switch self {
        case .exited(let c): return "exit code \(c)"
        case .signaled(let s): return "killed by signal \(s)\(s == SIGKILL ? " (SIGKILL)" : s == SIGTERM ? " (SIGTERM)" : "")"
        }
    }
}

/// posix_spawn with output files and process groups: what run-quantum and the local backend need
/// and Foundation.Process does not give (a group per job so a cancel reaches the whole tree).
public enum Spawn {
    public struct Options: Sendable {
        public var stdoutPath: String?
        public var stderrPath: String?
        /// Append to the output files instead of truncating them.
        public var append = true
        /// Put the child in a new process group (its pid), so signals reach all it starts.
        public var newProcessGroup = false
        /// Put the child in a new session (its pid; also its process group): everything it starts,
        /// in whatever process group, stays in the session, so `killSession` can end what is left.
        public var newSession = false
        public var workingDirectory: String?
        public init() {}
    }

    public static func launch(_ executable: String, _ arguments: [String], environment: [String: String],
                              options: Options = Options()) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        let flags = O_WRONLY | O_CREAT | O_CLOEXEC | (options.append ? O_APPEND : O_TRUNC)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        if let out = options.stdoutPath { posix_spawn_file_actions_addopen(&actions, 1, out, flags & ~O_CLOEXEC, 0o644) }
        if let err = options.stderrPath {
            if err == options.stdoutPath { posix_spawn_file_actions_adddup2(&actions, 1, 2) }
            else { posix_spawn_file_actions_addopen(&actions, 2, err, flags & ~O_CLOEXEC, 0o644) }
        }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var spawnFlags: Int32 = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK
        if options.newSession {
            spawnFlags |= 0x80  // POSIX_SPAWN_SETSID (glibc ≥ 2.26; not imported into Swift)
        } else if options.newProcessGroup {
            spawnFlags |= Int32(POSIX_SPAWN_SETPGROUP)
            posix_spawnattr_setpgroup(&attr, 0)
        }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGINT, SIGTERM, SIGPIPE, SIGCHLD, SIGHUP] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        posix_spawnattr_setflags(&attr, Int16(spawnFlags))

        // glibc's addchdir_np is not visible to Swift; a tiny sh trampoline changes directory instead.
        var executable = executable, arguments = arguments
        if let dir = options.workingDirectory {
            arguments = ["-c", "cd -- \"$0\" && exec \"$@\"", dir, executable] + arguments
            executable = "/bin/sh"
        }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = executable.contains("/")
            ? posix_spawn(&pid, executable, &actions, &attr, argv, envp)
            : posix_spawnp(&pid, executable, &actions, &attr, argv, envp)
        guard rc == 0 else {
            throw QuantaError(.execution, "cannot start \(executable): \(String(cString: strerror(rc)))")
        }
        return pid
    }

    /// Sends `signal` to every process left in session `sid` (read from /proc): what a job started
    /// and its run-quantum, killed outright, could no longer stop. Returns how many were signalled.
    @discardableResult
    public static func killSession(_ sid: pid_t, signal: Int32 = SIGKILL) -> Int {
        // Runs after every local element: plain readdir/read, no Foundation strings per process.
        guard sid > 1, let proc = opendir("/proc") else { return 0 }
        defer { closedir(proc) }
        let me = getpid()
        var n = 0
        var buffer = [UInt8](repeating: 0, count: 512)
        while let entry = readdir(proc) {
            let pid = withUnsafeBytes(of: entry.pointee.d_name) { name -> pid_t in
                var v: pid_t = 0
                for c in name { if c == 0 { break }; guard c >= 48, c <= 57 else { return 0 }; v = v * 10 + pid_t(c - 48) }
                return v
            }
            guard pid > 0, pid != me else { continue }
            let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            close(fd)
            guard count > 0, sessionOf(stat: buffer[0..<count]) == sid else { continue }
            if kill(pid, signal) == 0 { n += 1 }
        }
        return n
    }

    /// The session field of a `/proc/PID/stat` line: after "pid (comm)", state ppid pgrp session.
    static func sessionOf(stat: ArraySlice<UInt8>) -> pid_t? {
        guard let close = stat.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = stat[(close + 1)...].split(separator: UInt8(ascii: " "))
        guard fields.count > 3 else { return nil }
        var v: pid_t = 0
        for c in fields[3] { guard c >= 48, c <= 57 else { return nil }; v = v * 10 + pid_t(c - 48) }
        return v
    }

    /// Waits for one child, retrying on EINTR.
    public static func wait(_ pid: pid_t) -> ExitStatus {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return ExitStatus(waitStatus: status)
    }

    /// Runs to completion.
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String],
                           options: Options = Options()) throws -> ExitStatus {
        wait(try launch(executable, arguments, environment: environment, options: options))
    }

    /// Runs to completion and returns what it printed (through temporary files, so large output
    /// never blocks a pipe). `PATH` is searched when `executable` has no slash.
    public static func capture(_ executable: String, _ arguments: [String],
                               environment: [String: String] = ProcessInfo.processInfo.environment)
        throws -> (status: ExitStatus, stdout: String, stderr: String) {
        let base = NSTemporaryDirectory() + "quanta-capture-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        var o = Options()
        o.stdoutPath = base + ".out"
        o.stderrPath = base + ".err"
        o.append = false
        defer { unlink(base + ".out"); unlink(base + ".err") }
        let path = executable.contains("/") ? executable : (which(executable, environment: environment) ?? executable)
        let status = try run(path, arguments, environment: environment, options: o)
        func read(_ p: String) -> String { String(decoding: FileManager.default.contents(atPath: p) ?? Data(), as: UTF8.self) }
        return (status, read(base + ".out"), read(base + ".err"))
    }

    /// The first executable called `name` on `PATH`.
    public static func which(_ name: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        for dir in (environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let p = "\(dir)/\(name)"
            if access(p, X_OK) == 0 { return p }
        }
        return nil
    }
}
