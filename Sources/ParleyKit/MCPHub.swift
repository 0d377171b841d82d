import Foundation
import ParleyCore
#if canImport(Glibc)
import Glibc
#endif

/// Parley's side of its MCP servers. They run in `parley-mcp`, a process of Parley's own beside its
/// binary, started when tools are first needed: the official Swift SDK links FoundationNetworking (and
/// with it libcurl, GnuTLS, libcrypto and ICU, 8 MB resident), which Parley itself then never loads.
/// The host is started under `setpriv --pdeathsig TERM` (its servers under KILL) and is their
/// subreaper, so a Parley killed with -9 takes them all with it, and what they started too;
/// `shutdown()` winds them down as the MCP spec says.
public actor MCPHub {
    public let settings: MCPSettings
    let logDirectory: URL
    let environment: [String: String]
    private var host: Host?
    private var nextID = 1
    private var waiting: [Int: CheckedContinuation<JSONValue?, Never>] = [:]
    /// Why the host could not be started, for the line a request gives.
    private var hostProblem: String?

    final class Host: @unchecked Sendable {
        let process: ChildProcess
        let input: Int32
        let writes = DispatchQueue(label: "parley.mcp-host.write")

        init(process: ChildProcess, input: Int32) {
            self.process = process
            self.input = input
        }

        func write(_ line: String) {
            let bytes = Array(line.utf8)
            let fd = input
            writes.async {
                var offset = 0
                while offset < bytes.count {
                    let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
                    if n < 0, errno == EINTR { continue }
                    if n <= 0 { return }
                    offset += n
                }
            }
        }
    }

    public init(settings: MCPSettings, logDirectory: URL, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.settings = settings
        self.logDirectory = logDirectory
        self.environment = environment
        // A host or server that exits before reading must give EPIPE, not a SIGPIPE that ends Parley.
        signal(SIGPIPE, SIG_IGN)
    }

    /// Each configured server and what it is doing.
    public func states() async -> [(server: String, state: String)] {
        guard host != nil, let answer = await request([("op", "states")]), let states = answer["states"]?.array else {
            return settings.servers.map { ($0.name, hostProblem.map { "not started: \($0)" } ?? "not started (starts when its tools are first needed)") }
        }
        return states.compactMap { pair in
            guard let items = pair.array, items.count == 2, let name = items[0].string, let state = items[1].string else { return nil }
            return (name, state)
        }
    }

    /// The tools of `servers` (all configured when nil) as offered to a model, starting servers as
    /// needed; a server that cannot be started is a line in `problems`, and the others still serve.
    public func tools(servers names: [String]? = nil) async -> (tools: [OfferedTool], problems: [String]) {
        var members: [(String, JSONValue)] = [("op", "tools")]
        members.append(("servers", names.map { .array($0.map { .string($0) }) } ?? .null))
        guard let answer = await request(members) else { return ([], [hostProblem ?? "the MCP host stopped; its log: \(hostLog)"]) }
        return ((answer["tools"]?.array ?? []).compactMap(OfferedTool.init(json:)), (answer["problems"]?.array ?? []).compactMap(\.string))
    }

    /// Calls the tool with the model's arguments (JSON text). Never throws: every failure is an error
    /// outcome whose line is sent back to the model and shown, and the conversation goes on.
    public func call(_ tool: OfferedTool, arguments: String) async -> ToolOutcome {
        guard let answer = await request([("op", "call"), ("tool", tool.json), ("arguments", .string(arguments))]) else {
            if Task.isCancelled { return ToolOutcome(text: "stopped", isError: true) }
            return ToolOutcome(text: hostProblem ?? "the MCP host stopped during the call; its log: \(hostLog)", isError: true)
        }
        return ToolOutcome(text: answer["text"]?.string ?? "", isError: answer["is_error"]?.bool ?? true)
    }

    /// Every server wound down (stdin closed, up to 2 s, SIGTERM, up to 2 s, SIGKILL, by the host), then
    /// the host; at most about 6 s, after which the host is killed, and its servers with it.
    public func shutdown() async {
        guard let host else { return }
        self.host = nil
        let id = nextID
        nextID += 1
        host.write(JSONValue.object([("id", .number(Double(id))), ("op", "shutdown")]).serialized() + "\n")
        let deadline = ContinuousClock.now + .seconds(6)
        while host.process.poll() == nil, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        if host.process.poll() == nil {
            host.process.signal(SIGKILL)
            _ = host.process.wait()
        }
        close(host.input)
        hostEnded()
    }

    // MARK: the host

    private var hostLog: String { logDirectory.appendingPathComponent("mcp-host.log").path }

    /// The host's path: `PARLEY_MCP_HOST`, else `parley-mcp` beside the running binary.
    static func hostPath(_ environment: [String: String]) -> String {
        if let path = environment["PARLEY_MCP_HOST"], !path.isEmpty { return path }
        return URL(fileURLWithPath: ChatEngine.currentExecutable()).deletingLastPathComponent().appendingPathComponent("parley-mcp").path
    }

    private func ensureHost() -> Host? {
        if let host, host.process.poll() == nil { return host }
        if host != nil { hostEnded() }
        host = nil
        let path = Self.hostPath(environment)
        guard FileManager.default.isExecutableFile(atPath: path) else {
            hostProblem = "MCP tools need parley-mcp beside parley (\(path) is missing); build it with `swift build -c release` (scripts/start does)"
            return nil
        }
        try? FileManager.default.createDirectory(at: logDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var toHost: [Int32] = [0, 0], fromHost: [Int32] = [0, 0]
        guard pipe(&toHost) == 0, pipe(&fromHost) == 0 else { hostProblem = "no pipes for parley-mcp: \(String(cString: strerror(errno)))"; return nil }
        for fd in [toHost[1], fromHost[0]] { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var arguments = [path]
        // TERM, not KILL: the host then ends its servers, and what they started, before it goes.
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") { arguments = ["/usr/bin/setpriv", "--pdeathsig", "TERM", "--"] + arguments }
        // The host gets what every child gets (never an API key); each server gets that and its `env`.
        let childEnvironment = ChildProcess.childEnvironment(environment)
        let (childIn, childOut, log) = (toHost[0], fromHost[1], hostLog)
        let process: ChildProcess
        do {
            process = try Spawner.shared.run {
                try ChildProcess.spawnPiped(arguments, environment: childEnvironment, stdin: childIn, stdout: childOut, stderrPath: log)
            }
        } catch {
            for fd in toHost + fromHost { close(fd) }
            hostProblem = "could not start parley-mcp: \(describe(error))"
            return nil
        }
        close(toHost[0])
        close(fromHost[1])
        let host = Host(process: process, input: toHost[1])
        self.host = host
        hostProblem = nil
        host.write(JSONValue.object([("settings", settings.json), ("log_directory", .string(logDirectory.path))]).serialized() + "\n")
        let readFD = fromHost[0]
        let thread = Thread { [weak self] in
            _ = readLines(from: readFD, limit: 64 << 20) { line in
                if let answer = try? JSONValue.parse(line) { Task { await self?.deliver(answer) } }
            }
            close(readFD)
            Task { await self?.hostEnded(process.pid) }
        }
        thread.name = "parley-mcp-read"
        thread.start()
        return host
    }

    private func request(_ members: [(String, JSONValue)]) async -> JSONValue? {
        guard let host = ensureHost() else { return nil }
        let id = nextID
        nextID += 1
        let line = JSONValue.object([("id", .number(Double(id)))] + members).serialized() + "\n"
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<JSONValue?, Never>) in
                waiting[id] = continuation
                host.write(line)
            }
        } onCancel: {
            Task { await self.answer(id, with: nil) }
        }
    }

    private func deliver(_ answer: JSONValue) {
        guard let id = answer["id"]?.int else { return }
        self.answer(id, with: answer)
    }

    private func answer(_ id: Int, with value: JSONValue?) {
        waiting.removeValue(forKey: id)?.resume(returning: value)
    }

    /// The host is gone (`pid`, when it is that one): every request waiting gets no answer.
    private func hostEnded(_ pid: pid_t? = nil) {
        if let pid, let host, host.process.pid != pid { return }
        if let pid, host?.process.pid == pid {
            _ = host?.process.poll()
            host = nil
        }
        let all = waiting
        waiting = [:]
        for continuation in all.values { continuation.resume(returning: nil) }
    }
}
