import Foundation
import ParleyCore
#if canImport(Glibc)
import Glibc
#endif

/// A tool an MCP server offers, as models see it.
public struct OfferedTool: Sendable, Equatable {
    public var server: String
    public var tool: String
    /// `server__tool`, made valid for every provider (`MCPNames.offered`).
    public var name: String
    public var description: String
    /// The input schema, as JSON text.
    public var schema: String
    public var approve: ToolApproval

    public var definition: ToolDefinition { ToolDefinition(name: name, description: description, parametersJSON: schema) }

    public init(server: String, tool: String, name: String, description: String, schema: String, approve: ToolApproval) {
        self.server = server
        self.tool = tool
        self.name = name
        self.description = description
        self.schema = schema
        self.approve = approve
    }
}

/// What a tool call gave, as text for the model; `isError` goes back to the model as an error.
public struct ToolOutcome: Sendable, Equatable {
    public var text: String
    public var isError: Bool

    public init(text: String, isError: Bool) {
        self.text = text
        self.isError = isError
    }
}

public struct MCPProblem: UserFacingError, Sendable {
    public var message: String
    public var userMessage: String { message }

    public init(message: String) { self.message = message }
}


/// One thread that lives as long as the process and starts MCP servers: a child's parent-death signal
/// (setpriv --pdeathsig) fires when the *thread* that started it ends, and pool threads come and go.
public final class Spawner: @unchecked Sendable {
    public static let shared = Spawner()
    private let condition = NSCondition()
    private var jobs: [() -> Void] = []

    private init() {
        let thread = Thread { [unowned self] in
            while true {
                condition.lock()
                while jobs.isEmpty { condition.wait() }
                let job = jobs.removeFirst()
                condition.unlock()
                job()
            }
        }
        thread.name = "parley-spawner"
        thread.start()
    }

    public func run<T>(_ work: @escaping () throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: Result<T, any Error>?
        condition.lock()
        jobs.append {
            result = Result { try work() }
            done.signal()
        }
        condition.signal()
        condition.unlock()
        done.wait()
        return try result!.get()
    }
}

extension OfferedTool {
    public var json: JSONValue {
        .object([("server", .string(server)), ("tool", .string(tool)), ("name", .string(name)), ("description", .string(description)),
                 ("schema", .string(schema)), ("approve", .string(approve.rawValue))])
    }

    public init?(json: JSONValue) {
        guard let server = json["server"]?.string, let tool = json["tool"]?.string, let name = json["name"]?.string,
              let schema = json["schema"]?.string, let approve = json["approve"]?.string.flatMap(ToolApproval.init(rawValue:)) else { return nil }
        self.init(server: server, tool: tool, name: name, description: json["description"]?.string ?? "", schema: schema, approve: approve)
    }
}

/// The settings as the `parley-mcp` host is given them, in its first line.
extension MCPSettings {
    public var json: JSONValue {
        func seconds(_ duration: Duration) -> JSONValue {
            .number(Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
        }
        return .object([
            ("max_tool_rounds", .number(Double(maxToolRounds))),
            ("max_result_chars", .number(Double(maxResultCharacters))),
            ("servers", .array(servers.map { server in
                var members: [(String, JSONValue)] = [
                    ("name", .string(server.name)), ("command", .string(server.command)), ("args", .array(server.args.map { .string($0) })),
                    ("env", .object(server.env.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })),
                    ("approve", .string(server.approve.rawValue)),
                    ("allow", .array(server.allow.map { .string($0) })), ("deny", .array(server.deny.map { .string($0) })),
                    ("startup_timeout", seconds(server.startupTimeout)), ("call_timeout", seconds(server.callTimeout)),
                ]
                if let cwd = server.cwd { members.append(("cwd", .string(cwd))) }
                return .object(members)
            })),
        ])
    }

    public init?(json: JSONValue) {
        self.init()
        guard let servers = json["servers"]?.array else { return nil }
        if let n = json["max_tool_rounds"]?.int { maxToolRounds = n }
        if let n = json["max_result_chars"]?.int { maxResultCharacters = n }
        for item in servers {
            guard let name = item["name"]?.string, let command = item["command"]?.string else { return nil }
            var server = MCPServerSettings(name: name, command: command)
            server.args = item["args"]?.array?.compactMap(\.string) ?? []
            for (key, value) in item["env"]?.members ?? [] { server.env[key] = value.string }
            server.cwd = item["cwd"]?.string
            server.approve = item["approve"]?.string.flatMap(ToolApproval.init(rawValue:)) ?? .ask
            server.allow = item["allow"]?.array?.compactMap(\.string) ?? []
            server.deny = item["deny"]?.array?.compactMap(\.string) ?? []
            if let s = item["startup_timeout"]?.double { server.startupTimeout = .milliseconds(Int64(s * 1000)) }
            if let s = item["call_timeout"]?.double { server.callTimeout = .milliseconds(Int64(s * 1000)) }
            self.servers.append(server)
        }
    }
}

/// Reads `fd` to its end, handing out each line as it completes; false when a line grew past `limit`
/// (the reader stops there). Blocking: run it on a thread of its own.
public func readLines(from fd: Int32, limit: Int, _ onLine: ([UInt8]) -> Void) -> Bool {
    var lines = LineSplitter(limit: limit)
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0, errno == EINTR { continue }
        if n <= 0 { return true }
        lines.append(buffer[0..<n])
        while let line = lines.next() { onLine(line) }
        if lines.isOverLimit { return false }
    }
}
