import Foundation
import ParleyCore
#if canImport(Glibc)
import Glibc
#endif

/// Starts programs with `posix_spawn`, with an empty signal mask and default signal actions.
/// Foundation's `Process` lets children inherit a blocked SIGCHLD, which hangs tools that wait for
/// their own children (cmake inside pip hangs forever on it).
public struct ChildProcess: Sendable {
    public let pid: pid_t

    public struct SpawnError: UserFacingError, Sendable {
        public var program: String
        public var reason: String
        public var userMessage: String { "could not start \(program): \(reason)" }
    }

    /// Where the child's stdout and stderr go.
    public enum Output: Sendable {
        case inherit
        case null
        /// Appended to this file (created 0600).
        case file(String)
    }

    /// The environment a child gets unless the caller passes its own: only what programs need to run
    /// (paths, locale, Parley's own settings, pip's and the compilers' settings, proxies), never an API
    /// key or any other secret of this process. llama-server, the watchdog, pip and cmake have no use for
    /// `OPENAI_API_KEY`, and a child that logs or crashes with its environment would spread it.
    public static func childEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> [String: String] {
        let names: Set<String> = ["PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TZ", "TMPDIR", "TERM", "VIRTUAL_ENV",
                                  "CC", "CXX", "CFLAGS", "CXXFLAGS", "LDFLAGS", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
                                  "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"]
        let prefixes = ["LC_", "XDG_", "PARLEY_", "PIP_", "CMAKE_", "LLAMA_"]
        let secret = ["KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH"]
        return environment.filter { name, _ in
            let upper = name.uppercased()
            guard names.contains(name) || prefixes.contains(where: name.hasPrefix) else { return false }
            return !secret.contains(where: upper.contains)
        }
    }

    /// Starts `arguments[0]` (looked up in PATH), optionally in a new session detached from the terminal.
    /// Without `environment`, the child gets `childEnvironment()`.
    public static func spawn(
        _ arguments: [String], environment: [String: String]? = nil, output: Output = .inherit,
        stdinNull: Bool = true, newSession: Bool = false
    ) throws -> ChildProcess {
        try launch(arguments, environment: environment ?? childEnvironment(), newSession: newSession) { actions in
            // Nothing but stdin, stdout and stderr reaches the child. Without this, a long-lived child (the
            // local server's watchdog, a tmux server) kept copies of whatever its parent had open: a
            // session's lock, the screen's self-pipe, or a test's pipe, whose reader then waited for an
            // EOF that came only when the watchdog exited 15 minutes later.
            Self.closeFrom3(&actions)
            if stdinNull { posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0) }
            switch output {
            case .inherit: break
            case .null:
                posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
                posix_spawn_file_actions_adddup2(&actions, 1, 2)
            case let .file(path):
                posix_spawn_file_actions_addopen(&actions, 1, path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, 0o600)
                posix_spawn_file_actions_adddup2(&actions, 1, 2)
            }
        }
    }

    /// Starts `arguments[0]` with `stdin` and `stdout` as its standard input and output, its stderr
    /// appended to `stderrPath` (or written to `stderrFD`), in a process group of its own (so its
    /// children can be signalled with it).
    public static func spawnPiped(_ arguments: [String], environment: [String: String], stdin: Int32, stdout: Int32,
                                  stderrPath: String, stderrFD: Int32? = nil) throws -> ChildProcess {
        try launch(arguments, environment: environment, newGroup: true) { actions in
            posix_spawn_file_actions_adddup2(&actions, stdin, 0)
            posix_spawn_file_actions_adddup2(&actions, stdout, 1)
            if let stderrFD {
                posix_spawn_file_actions_adddup2(&actions, stderrFD, 2)
            } else {
                posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, 0o600)
            }
            Self.closeFrom3(&actions)
        }
    }

    /// `posix_spawnp` with an empty signal mask and default actions for the signals Parley handles, in a
    /// new session or process group if asked, with the file actions `files` sets up.
    private static func launch(_ arguments: [String], environment: [String: String], newSession: Bool = false, newGroup: Bool = false,
                               files: (inout posix_spawn_file_actions_t) -> Void) throws -> ChildProcess {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signalNumber in [SIGCHLD, SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT] { sigaddset(&defaults, signalNumber) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var flags = Int32(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        if newSession { flags |= 0x80 }  // POSIX_SPAWN_SETSID (glibc)
        if newGroup {
            posix_spawnattr_setpgroup(&attributes, 0)
            flags |= Int32(POSIX_SPAWN_SETPGROUP)
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        files(&actions)
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let environmentList = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { environmentList.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, environmentList)
        guard rc == 0 else { throw SpawnError(program: arguments[0], reason: String(cString: strerror(rc))) }
        return ChildProcess(pid: pid)
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34+), which Swift's Glibc module does not
    /// import; looked up once. Where it is missing, every descriptor above 2 is marked close-on-exec.
    nonisolated(unsafe) static let addCloseFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
    }()

    static func closeFrom3(_ actions: inout posix_spawn_file_actions_t) {
        if let addCloseFrom = addCloseFrom, addCloseFrom(&actions, 3) == 0 { return }
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return }
        for fd in entries.compactMap({ Int32($0) }) where fd > 2 {
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
    }

    /// Waits for the child to exit and returns its exit status (128 + signal when killed).
    public func wait() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return -1 }
        }
        return Self.exitCode(status)
    }

    /// The exit status if the child has exited, without blocking.
    public func poll() -> Int32? {
        var status: Int32 = 0
        let rc = waitpid(pid, &status, WNOHANG)
        if rc == pid { return Self.exitCode(status) }
        if rc < 0 { return -1 }
        return nil
    }

    public func signal(_ signalNumber: Int32) { kill(pid, signalNumber) }

    static func exitCode(_ status: Int32) -> Int32 {
        let signalNumber = status & 0x7F
        return signalNumber == 0 ? (status >> 8) & 0xFF : 128 + signalNumber
    }

    /// `text` as one word for /bin/sh, whatever it holds.
    public static func shellQuote(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// Runs to completion and returns stdout (stderr passes through).
    /// `environment` as for `spawn`; `discardingErrors` sends the child's stderr to /dev/null (for a
    /// question asked while the screen is drawn, where its error text would land on the screen).
    public static func capture(_ arguments: [String], environment: [String: String]? = nil,
                               discardingErrors: Bool = false) throws -> (status: Int32, output: String) {
        // In a fresh 0700 directory: the shell's `>` would follow a link planted at a guessable name in /tmp.
        let directory = try PrivateFile.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let temp = URL(fileURLWithPath: directory).appendingPathComponent("output")
        let child = try spawnCapturing(arguments, into: temp.path, environment: environment, discardingErrors: discardingErrors)
        let status = child.wait()
        let output = (try? String(contentsOf: temp, encoding: .utf8)) ?? ""
        return (status, output)
    }

    private static func spawnCapturing(_ arguments: [String], into path: String, environment: [String: String]?,
                                       discardingErrors: Bool) throws -> ChildProcess {
        // stdout to the file only; stderr stays with the caller so errors are seen, unless discarded.
        let shellQuoted = arguments.map(shellQuote).joined(separator: " ")
        return try spawn(["/bin/sh", "-c", "exec \(shellQuoted) > \(shellQuote(path))" + (discardingErrors ? " 2>/dev/null" : "")],
                         environment: environment)
    }
}
