import Foundation
import Logging
import MCP
import ParleyCore
import ParleyKit
#if canImport(Glibc)
import Glibc
#endif

/// The MCP servers of `[mcp.servers]`, in the `parley-mcp` host process: each started when first
/// needed (its process, `initialize`, its tool list) with the official Swift SDK's client over the
/// process's pipes, and kept for the life of this process. Shut down as the MCP spec says: stdin
/// closed, a wait, SIGTERM, SIGKILL. A server is started under `setpriv --pdeathsig KILL`, so it
/// cannot outlive this host, which itself cannot outlive Parley.
actor ServerHub {
    let settings: MCPSettings
    let logDirectory: URL
    let environment: [String: String]
    private var links: [String: ServerLink] = [:]
    /// The line each server that could not be started failed with.
    private var failures: [String: String] = [:]

    final class ServerLink: @unchecked Sendable {
        let settings: MCPServerSettings
        let client: Client
        let transport: PipeTransport
        let process: ChildProcess
        let log: String
        var tools: [Tool] = []
        let started = ContinuousClock.now
        var ready: Duration = .zero

        init(settings: MCPServerSettings, client: Client, transport: PipeTransport, process: ChildProcess, log: String) {
            self.settings = settings
            self.client = client
            self.transport = transport
            self.process = process
            self.log = log
        }
    }

    init(settings: MCPSettings, logDirectory: URL, environment: [String: String]) {
        self.settings = settings
        self.logDirectory = logDirectory
        self.environment = environment
        // A server that exits before reading what was written to it must give EPIPE, a line, not a
        // SIGPIPE that ends the host (found when servers started side by side).
        signal(SIGPIPE, SIG_IGN)
    }

    /// Each configured server and what it is doing: not started, running (tools, pid, time to ready), or failed.
    func states() -> [(server: String, state: String)] {
        settings.servers.map { server in
            if let link = links[server.name], link.process.poll() == nil {
                return (server.name, "running, pid \(link.process.pid), \(link.tools.count) tools, ready in \(Int(link.ready.milliseconds)) ms")
            }
            if let failure = failures[server.name] { return (server.name, "failed: \(failure)") }
            return (server.name, "not started (starts when its tools are first needed)")
        }
    }

    /// The tools of `servers` (all configured when nil) as offered to a model, starting servers as
    /// needed; a server that cannot be started is a line in `problems`, and the others still serve.
    func tools(servers names: [String]? = nil) async -> (tools: [OfferedTool], problems: [String]) {
        var found: [(MCPServerSettings, Tool)] = []
        var problems: [String] = []
        let wanted = settings.servers.filter { names == nil || names!.contains($0.name) }
        // Started side by side: each is a process that takes its own time to be ready.
        let started = await withTaskGroup(of: StartResult.self) { group in
            for server in wanted {
                group.addTask {
                    do { return StartResult(name: server.name, tools: try await self.start(server).tools, problem: nil) } catch {
                        return StartResult(name: server.name, tools: [], problem: Self.describe(error))
                    }
                }
            }
            var results: [String: StartResult] = [:]
            for await result in group { results[result.name] = result }
            return results
        }
        // In the config's order, whatever order they became ready in.
        for server in wanted {
            guard let result = started[server.name] else { continue }
            if let problem = result.problem { problems.append(problem) }
            for tool in result.tools where server.offers(tool.name) {
                // Providers refuse a whole request over one tool whose parameters are not an object.
                if case let .object(schema) = tool.inputSchema, schema["type"].map({ $0 == .string("object") }) ?? true {
                    found.append((server, tool))
                } else {
                    problems.append("MCP server \(server.name): its tool \(TerminalSanitizer.line(String(tool.name.prefix(80)))) has an input schema that is not a JSON object, so it is not offered")
                }
            }
        }
        let names = MCPNames.offered(found.map { ($0.0.name, $0.1.name) })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let tools = zip(found, names).map { pair, name in
            let schema = (try? encoder.encode(pair.1.inputSchema)).map { String(decoding: $0, as: UTF8.self) } ?? "{\"type\":\"object\"}"
            var description = pair.1.description ?? ""
            if description.count > 4000 { description = String(description.prefix(4000)) + "…" }
            return OfferedTool(server: pair.0.name, tool: pair.1.name, name: name, description: description, schema: schema, approve: pair.0.approve)
        }
        return (tools, problems)
    }

    /// Calls the tool with the model's arguments (JSON text). Never throws: every failure is an error
    /// outcome whose line is sent back to the model and shown, and the conversation goes on.
    func call(_ tool: OfferedTool, arguments: String) async -> ToolOutcome {
        guard let server = settings.server(tool.server) else { return ToolOutcome(text: "no MCP server named \(tool.server)", isError: true) }
        let parsed: [String: Value]
        let text = arguments.trimmingCharacters(in: .whitespacesAndNewlines)
        if text.isEmpty {
            parsed = [:]
        } else {
            do { parsed = try JSONDecoder().decode([String: Value].self, from: Data(text.utf8)) } catch {
                return ToolOutcome(text: "the arguments are not a JSON object: \(String(text.prefix(200)))", isError: true)
            }
        }
        let link: ServerLink
        do { link = try await start(server) } catch { return ToolOutcome(text: Self.describe(error), isError: true) }
        let client = link.client
        let name = tool.tool
        let outcome: Result<(content: [Tool.Content], isError: Bool?), any Error> = await Self.race(
            timeout: server.callTimeout, process: link.process,
            operation: { () async throws -> (content: [Tool.Content], isError: Bool?) in try await client.callTool(name: name, arguments: parsed) })
        switch outcome {
        case let .success(result):
            return ToolOutcome(text: Self.text(of: result.content, limit: settings.maxResultCharacters), isError: result.isError == true)
        case let .failure(error):
            if let exited = error as? ServerExited {
                await drop(server.name, because: "it exited during a call (status \(exited.status))")
                return ToolOutcome(text: "MCP server \(server.name) exited during the call (status \(exited.status)); its log: \(link.log)", isError: true)
            }
            if error is TimedOut {
                // It may be stuck, or flooding: it is started afresh on its next use.
                await drop(server.name, because: "a call did not answer within call_timeout")
                return ToolOutcome(text: "\(tool.name) did not answer within \(Int(server.callTimeout.seconds)) s (call_timeout of [mcp.servers.\(server.name)]); the server is started afresh on its next use", isError: true)
            }
            if error is CancellationError { return ToolOutcome(text: "stopped", isError: true) }
            return ToolOutcome(text: "\(tool.name) failed: \(Self.describe(error))", isError: true)
        }
    }

    /// Every running server shut down as the MCP spec says: stdin closed, up to 2 s to exit, SIGTERM,
    /// up to 2 s more, SIGKILL (to its process group, so its own children go too).
    func shutdown() async {
        let all = links
        links = [:]
        await withTaskGroup(of: Void.self) { group in
            for link in all.values { group.addTask { await Self.stop(link) } }
        }
    }

    // MARK: starting and stopping

    struct StartResult: Sendable {
        var name: String
        var tools: [Tool]
        var problem: String?
    }

    /// Servers that could not be started, with the line and when: not tried again for a minute, so a
    /// broken one does not hold every turn for its startup_timeout.
    private var startFailures: [String: (line: String, at: ContinuousClock.Instant)] = [:]
    static let retryAfter: Duration = .seconds(60)

    private func start(_ server: MCPServerSettings) async throws -> ServerLink {
        if links[server.name] == nil, let failed = startFailures[server.name], ContinuousClock.now - failed.at < Self.retryAfter {
            throw MCPProblem(message: failed.line)
        }
        if let link = links[server.name] {
            if link.process.poll() == nil { return link }
            // It died: whatever it left in its group goes before a new one starts.
            links[server.name] = nil
            kill(-link.process.pid, SIGKILL)
            ServerGroups.remove(link.process.pid)
        }
        try? FileManager.default.createDirectory(at: logDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let log = logDirectory.appendingPathComponent("mcp-\(server.name).log").path
        let process: ChildProcess
        let transport: PipeTransport
        do {
            (process, transport) = try PipeTransport.spawn(server, environment: environment, log: log)
        } catch {
            failures[server.name] = Self.describe(error)
            let line = "MCP server \(server.name): \(Self.describe(error))"
            startFailures[server.name] = (line, .now)
            throw MCPProblem(message: line)
        }
        ServerGroups.add(process.pid)
        let client = Client(name: "parley", version: "1")
        let link = ServerLink(settings: server, client: client, transport: transport, process: process, log: log)
        let outcome: Result<[Tool], any Error> = await Self.race(timeout: server.startupTimeout, process: process) {
            try await client.connect(transport: transport)
            var tools: [Tool] = []
            var cursor: String?
            repeat {
                let page = try await client.listTools(cursor: cursor)
                tools += page.tools
                cursor = page.nextCursor
            } while cursor != nil && tools.count < 10_000
            return tools
        }
        switch outcome {
        case let .success(tools):
            link.tools = tools
            link.ready = ContinuousClock.now - link.started
            links[server.name] = link
            failures[server.name] = nil
            startFailures[server.name] = nil
            return link
        case let .failure(failure):
            // A server that exited makes the write of `initialize` fail first (EPIPE): its exit says more.
            var error = failure
            if !(error is ServerExited) {
                try? await Task.sleep(for: .milliseconds(50))
                if let status = process.poll() { error = ServerExited(status: status) }
            }
            // Never ready, so nothing to wind down: it goes at once.
            await Self.stop(link, graceful: false)
            let line: String
            if let exited = error as? ServerExited {
                line = "exited before it was ready (status \(exited.status)); its log: \(log)"
            } else if error is TimedOut {
                line = "did not finish initialize within \(Int(server.startupTimeout.seconds)) s (startup_timeout); its log: \(log)"
            } else {
                line = "could not start: \(Self.describe(error)); its log: \(log)"
            }
            failures[server.name] = line
            startFailures[server.name] = ("MCP server \(server.name) \(line)", .now)
            throw MCPProblem(message: "MCP server \(server.name) \(line)")
        }
    }

    private func drop(_ name: String, because reason: String) async {
        guard let link = links.removeValue(forKey: name) else { return }
        failures[name] = reason
        await Self.stop(link)
    }

    static func stop(_ link: ServerLink, graceful: Bool = true) async {
        await link.client.disconnect()
        await link.transport.closeInput()
        let process = link.process
        defer { ServerGroups.remove(process.pid) }
        if !graceful {
            kill(-process.pid, SIGKILL)
            _ = process.wait()
            return
        }
        func exited(within limit: Duration) async -> Bool {
            let deadline = ContinuousClock.now + limit
            while ContinuousClock.now < deadline {
                if process.poll() != nil { return true }
                try? await Task.sleep(for: .milliseconds(20))
            }
            return process.poll() != nil
        }
        if await exited(within: .seconds(2)) { kill(-process.pid, SIGKILL); return }
        kill(-process.pid, SIGTERM)
        if await exited(within: .seconds(2)) { kill(-process.pid, SIGKILL); return }
        kill(-process.pid, SIGKILL)
        _ = process.wait()
    }

    // MARK: helpers

    struct TimedOut: Error {}
    struct ServerExited: Error { var status: Int32 }

    /// The operation's result, or `TimedOut` after `timeout`, or `ServerExited` when the process ends
    /// first; whichever comes first. The loser is cancelled and not waited for (a server that never
    /// answers must not hold the turn).
    static func race<T: Sendable>(timeout: Duration, process: ChildProcess, operation: @escaping @Sendable () async throws -> T) async -> Result<T, any Error> {
        let box = RaceBox<T>()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<T, any Error>, Never>) in
                box.set(continuation)
                let work = Task { do { box.resume(.success(try await operation())) } catch { box.resume(.failure(error)) } }
                let watch = Task {
                    let deadline = ContinuousClock.now + timeout
                    while ContinuousClock.now < deadline, !Task.isCancelled {
                        if let status = process.poll() { box.resume(.failure(ServerExited(status: status))); return }
                        try? await Task.sleep(for: .milliseconds(25))
                    }
                    box.resume(.failure(Task.isCancelled ? CancellationError() : TimedOut()))
                }
                box.onFinish { work.cancel(); watch.cancel() }
            }
        } onCancel: {
            box.resume(.failure(CancellationError()))
        }
    }

    final class RaceBox<T: Sendable>: @unchecked Sendable {
        private let lock = NSLock()
        private var continuation: CheckedContinuation<Result<T, any Error>, Never>?
        private var early: Result<T, any Error>?
        private var done = false
        private var finish: (() -> Void)?

        func set(_ continuation: CheckedContinuation<Result<T, any Error>, Never>) {
            let ready: Result<T, any Error>? = lock.withLock {
                if let early { done = true; return early }
                self.continuation = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }

        func onFinish(_ action: @escaping () -> Void) {
            let now = lock.withLock { () -> Bool in
                if done { return true }
                finish = action
                return false
            }
            if now { action() }
        }

        func resume(_ result: Result<T, any Error>) {
            let (continuation, finish): (CheckedContinuation<Result<T, any Error>, Never>?, (() -> Void)?) = lock.withLock {
                guard !done else { return (nil, nil) }
                guard let continuation = self.continuation else {
                    if early == nil { early = result }
                    return (nil, nil)
                }
                done = true
                self.continuation = nil
                defer { self.finish = nil }
                return (continuation, self.finish)
            }
            continuation?.resume(returning: result)
            finish?()
        }
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? MCPError { return TerminalSanitizer.line(error.errorDescription ?? "\(error)") }
        return TerminalSanitizer.line(ParleyCore.describe(error))
    }

    /// A result's content as text: text as it is, other kinds named; cut at `limit` characters.
    static func text(of content: [Tool.Content], limit: Int) -> String {
        var parts: [String] = []
        for item in content {
            switch item {
            case let .text(text, _, _): parts.append(text)
            case let .image(_, mimeType, _, _): parts.append("[an image, \(mimeType)]")
            case let .audio(_, mimeType, _, _): parts.append("[audio, \(mimeType)]")
            case let .resource(resource, _, _): parts.append(resource.text ?? "[a resource: \(resource.uri)]")
            case let .resourceLink(uri, name, _, _, _, _): parts.append("[a link: \(name) \(uri)]")
            }
        }
        let text = parts.joined(separator: "\n")
        guard text.count > limit else { return text }
        return String(text.prefix(limit)) + "\n… [cut: \(text.count - limit) more characters (max_result_chars under [mcp])]"
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// The link to one server's process: newline-delimited JSON-RPC on its stdin and stdout. Our own
/// rather than the SDK's `StdioTransport`, which polls a non-blocking descriptor every 10 ms and keeps
/// any length of a line without a newline: this one reads on its own thread and refuses a message
/// over 16 MB (a server is a program from outside; it may be broken or hostile).
actor PipeTransport: Transport {
    nonisolated let logger = Logger(label: "parley.mcp", factory: { _ in SwiftLogNoOpLogHandler() })
    static let maxMessage = 16 << 20
    private let readFD: Int32
    private var writeFD: Int32
    private let messages: AsyncThrowingStream<Data, any Error>
    private let continuation: AsyncThrowingStream<Data, any Error>.Continuation
    private var reading = false
    private let writes = DispatchQueue(label: "parley.mcp.write")

    init(readFD: Int32, writeFD: Int32) {
        self.readFD = readFD
        self.writeFD = writeFD
        // A server that floods notifications faster than they are handled loses the oldest, not memory.
        (messages, continuation) = AsyncThrowingStream.makeStream(of: Data.self, throwing: (any Error).self, bufferingPolicy: .bufferingNewest(4096))
    }

    func connect() async throws {
        guard !reading else { return }
        reading = true
        let fd = readFD, continuation = self.continuation
        let thread = Thread {
            let whole = readLines(from: fd, limit: Self.maxMessage) { line in
                if !line.isEmpty { continuation.yield(Data(line)) }
            }
            if whole { continuation.finish() } else { continuation.finish(throwing: MCPProblem(message: "the server sent a message over 16 MB")) }
            close(fd)
        }
        thread.name = "parley-mcp-read"
        thread.start()
    }

    func disconnect() async { closeInput() }

    /// The server's stdin closed: the MCP spec's first step of a shutdown.
    func closeInput() {
        if writeFD >= 0 { close(writeFD) }
        writeFD = -1
    }

    func send(_ data: Data) async throws {
        let fd = writeFD
        guard fd >= 0 else { throw MCPProblem(message: "the server's input is closed") }
        var bytes = [UInt8](data)
        bytes.append(UInt8(ascii: "\n"))
        let payload = bytes
        // A full pipe blocks the write until the server reads: on a queue of its own, never a pool thread.
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
            writes.async {
                var offset = 0
                while offset < payload.count {
                    let n = payload[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                    if n < 0, errno == EINTR { continue }
                    if n <= 0 { done.resume(throwing: MCPProblem(message: "the server stopped reading (\(String(cString: strerror(errno))))")); return }
                    offset += n
                }
                done.resume()
            }
        }
    }

    func receive() -> AsyncThrowingStream<Data, any Error> { messages }

    /// Starts the server with pipes for stdin and stdout, stderr to `log`, in a process group of its
    /// own, under `setpriv --pdeathsig KILL` where setpriv exists.
    static func spawn(_ server: MCPServerSettings, environment: [String: String], log: String) throws -> (ChildProcess, PipeTransport) {
        var toChild: [Int32] = [0, 0], fromChild: [Int32] = [0, 0], errors: [Int32] = [0, 0]
        guard pipe(&toChild) == 0, pipe(&fromChild) == 0, pipe(&errors) == 0 else { throw MCPProblem(message: "could not start \(server.command): \(String(cString: strerror(errno)))") }
        // Our ends are not inherited by other children.
        for fd in [toChild[1], fromChild[0], errors[0]] { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var arguments = [server.command] + server.args
        if let cwd = server.cwd {
            let directory = (cwd as NSString).expandingTildeInPath
            arguments = ["/bin/sh", "-c", "cd -- \"$0\" && exec \"$@\"", directory] + arguments
        }
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") {
            arguments = ["/usr/bin/setpriv", "--pdeathsig", "KILL", "--"] + arguments
        }
        var childEnvironment = ChildProcess.childEnvironment(environment)
        for (name, value) in server.env { childEnvironment[name] = value }
        let process: ChildProcess
        do {
            process = try Spawner.shared.run {
                try ChildProcess.spawnPiped(arguments, environment: childEnvironment, stdin: toChild[0], stdout: fromChild[1], stderrPath: log,
                                            stderrFD: errors[1])
            }
        } catch {
            for fd in toChild + fromChild + errors { close(fd) }
            throw error
        }
        close(toChild[0])
        close(fromChild[1])
        close(errors[1])
        StderrLog.drain(errors[0], into: log)
        return (process, PipeTransport(readFD: fromChild[0], writeFD: toChild[1]))
    }
}


/// The process groups of the servers this host started, and a way to end everything at once: their
/// groups and every process this host has inherited as a subreaper (a server's child that left its
/// group, or whose parent died). Used from a signal handler, so it takes a lock, not the hub's actor.
enum ServerGroups {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var groups = Set<pid_t>()

    static func add(_ pid: pid_t) { lock.withLock { _ = groups.insert(pid) } }
    static func remove(_ pid: pid_t) { lock.withLock { _ = groups.remove(pid) } }

    /// SIGKILL to every server's group and to every descendant of this process (a server's child in a
    /// session of its own included), twice: what was dying the first time may have been reparented.
    static func killEverything() {
        let all = lock.withLock { groups }
        for group in all { kill(-group, SIGKILL) }
        for round in 0..<2 {
            if round > 0 { usleep(100_000) }
            for pid in descendants(of: getpid()) { kill(pid, SIGKILL) }
        }
    }

    /// Every process below `root`, from the parent links in /proc.
    static func descendants(of root: pid_t) -> [pid_t] {
        var children: [pid_t: [pid_t]] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = pid_t(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 2, let parent = pid_t(fields[1]) { children[parent, default: []].append(pid) }
        }
        var found: [pid_t] = []
        var queue = [root]
        while let next = queue.popLast() {
            for child in children[next] ?? [] where !found.contains(child) {
                found.append(child)
                queue.append(child)
            }
        }
        return found
    }
}

/// Makes this process the subreaper of its descendants: a server's child orphaned by its parent comes
/// to this host (and is ended with it) instead of to init. prctl is variadic in C, so it is looked up.
func becomeSubreaper() {
    typealias Prctl = @convention(c) (Int32, UInt, UInt, UInt, UInt) -> Int32
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "prctl") else { return }
    let prctl = unsafeBitCast(symbol, to: Prctl.self)
    _ = prctl(36, 1, 0, 0, 0)  // PR_SET_CHILD_SUBREAPER
}

/// A server's stderr, appended to its log up to 8 MB per process; past that it is read and dropped (a
/// server that writes without end must neither fill the disk nor block on a full pipe).
enum StderrLog {
    static let limit = 8 << 20

    static func drain(_ fd: Int32, into path: String) {
        let thread = Thread {
            let log = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0o600)
            var written = 0
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0, errno == EINTR { continue }
                if n <= 0 { break }
                guard log >= 0, written < limit else { continue }
                let take = min(n, limit - written)
                _ = buffer.withUnsafeBytes { write(log, $0.baseAddress, take) }
                written += take
                if written >= limit {
                    let note = Array("\n[parley: this server's log is cut at 8 MB]\n".utf8)
                    _ = note.withUnsafeBytes { write(log, $0.baseAddress, $0.count) }
                }
            }
            close(fd)
            if log >= 0 { close(log) }
        }
        thread.name = "parley-mcp-stderr"
        thread.start()
    }
}
