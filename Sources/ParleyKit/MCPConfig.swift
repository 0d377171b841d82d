import Foundation
import ParleyCore

/// Whether a tool call runs without asking.
public enum ToolApproval: String, Sendable, CaseIterable {
    /// On the screen the user is asked each time; `ask` runs none (it never prompts).
    case ask
    /// Runs without asking (servers you trust).
    case auto
    /// Never runs: the model is told the call was declined.
    case never
}

/// One `[mcp.servers.NAME]`.
public struct MCPServerSettings: Sendable, Equatable {
    public var name: String
    public var command: String
    public var args: [String] = []
    /// Laid over the few variables every child gets (never this process's API keys).
    public var env: [String: String] = [:]
    public var cwd: String?
    public var approve: ToolApproval = .ask
    /// Tool-name globs (`*`, `?`): only these are offered (empty: all), never those in `deny`.
    public var allow: [String] = []
    public var deny: [String] = []
    public var startupTimeout: Duration = .seconds(30)
    public var callTimeout: Duration = .seconds(60)

    public init(name: String, command: String) {
        self.name = name
        self.command = command
    }

    /// Whether `tool` passes `allow` and `deny`.
    public func offers(_ tool: String) -> Bool {
        if deny.contains(where: { Glob.matches($0, tool) }) { return false }
        return allow.isEmpty || allow.contains(where: { Glob.matches($0, tool) })
    }
}

/// `[mcp]`: the servers, and the limits of the tool loop.
public struct MCPSettings: Sendable, Equatable {
    public var servers: [MCPServerSettings] = []
    /// Rounds of tool calls in one turn before Parley stops asking the model.
    public var maxToolRounds = 8
    /// A tool result longer than this (characters) is cut before it is sent back to the model.
    public var maxResultCharacters = 20_000

    public init() {}

    public func server(_ name: String) -> MCPServerSettings? { servers.first { $0.name == name } }

    static let serverKeys = ["command", "args", "env", "cwd", "approve", "allow", "deny", "startup_timeout", "call_timeout"]

    static func parse(_ value: TOMLValue, reader: ConfigReader) throws(ConfigError) -> MCPSettings {
        let table = try reader.table(value, "mcp")
        try reader.allowOnly(table, ["servers", "max_tool_rounds", "max_result_chars"], context: "[mcp]")
        var settings = MCPSettings()
        if let v = table["max_tool_rounds"] { settings.maxToolRounds = try reader.integer(v, "mcp.max_tool_rounds", min: 1, max: 100) }
        if let v = table["max_result_chars"] { settings.maxResultCharacters = try reader.integer(v, "mcp.max_result_chars", min: 100, max: 10_000_000) }
        guard let servers = table["servers"] else { return settings }
        for (name, body) in try reader.table(servers, "mcp.servers").entries {
            let key = "mcp.servers.\(name)"
            guard MCPNames.isValidServerName(name) else {
                throw ConfigError(file: reader.file, line: body.line, message: "[\(key)]: a server name is 1–32 letters, digits, - or _")
            }
            let entry = try reader.table(body, key)
            try reader.allowOnly(entry, serverKeys, context: "[\(key)]")
            guard let command = entry["command"] else {
                throw ConfigError(file: reader.file, line: body.line, message: "[\(key)]: command is missing (the program that runs the server)")
            }
            var server = MCPServerSettings(name: name, command: try reader.string(command, "\(key).command"))
            if server.command.isEmpty { throw ConfigError(file: reader.file, line: command.line, message: "\(key).command: is empty") }
            if let v = entry["args"] { server.args = try reader.strings(v, "\(key).args") }
            if let v = entry["env"] {
                for (variable, text) in try reader.table(v, "\(key).env").entries { server.env[variable] = try reader.string(text, "\(key).env.\(variable)") }
            }
            if let v = entry["cwd"] { server.cwd = try reader.string(v, "\(key).cwd") }
            if let v = entry["approve"] {
                let raw = try reader.string(v, "\(key).approve")
                guard let approval = ToolApproval(rawValue: raw) else {
                    throw ConfigError(file: reader.file, line: v.line, message: "\(key).approve: expected ask, auto or never, found \"\(raw)\"")
                }
                server.approve = approval
            }
            if let v = entry["allow"] { server.allow = try reader.strings(v, "\(key).allow") }
            if let v = entry["deny"] { server.deny = try reader.strings(v, "\(key).deny") }
            if let v = entry["startup_timeout"] { server.startupTimeout = try reader.seconds(v, "\(key).startup_timeout") }
            if let v = entry["call_timeout"] { server.callTimeout = try reader.seconds(v, "\(key).call_timeout") }
            settings.servers.append(server)
        }
        return settings
    }

    /// `parley mcp import`: the `mcpServers` object Claude Desktop and Gemini CLI keep, as TOML to
    /// append to config.toml. Every imported server asks before each call (`approve = "ask"`).
    public static func importTOML(_ data: Data, existing: Set<String>) throws -> (toml: String, names: [String]) {
        let value = try JSONValue.parse(Array(data))
        guard let servers = (value["mcpServers"] ?? value["servers"])?.members else {
            throw MCPImportError(message: "no \"mcpServers\" object in it")
        }
        var out = ""
        var names: [String] = []
        for (rawName, body) in servers {
            let name = MCPNames.serverName(rawName)
            guard !existing.contains(name), !names.contains(name) else { throw MCPImportError(message: "a server named \(name) is already configured") }
            guard let command = body["command"]?.string, !command.isEmpty else {
                throw MCPImportError(message: "\(rawName): no \"command\" (servers reached by URL are not supported yet)")
            }
            out += "\n[mcp.servers.\(name)]\ncommand = \(TOMLWriter.string(command))\n"
            let args = body["args"]?.array?.compactMap(\.string) ?? []
            if !args.isEmpty { out += "args = [" + args.map(TOMLWriter.string).joined(separator: ", ") + "]\n" }
            if let cwd = body["cwd"]?.string { out += "cwd = \(TOMLWriter.string(cwd))\n" }
            out += "approve = \"ask\"\n"
            if let env = body["env"]?.members, !env.isEmpty {
                out += "[mcp.servers.\(name).env]\n"
                for (variable, text) in env {
                    guard !variable.isEmpty, !variable.contains("="), !variable.contains("\u{0}") else {
                        throw MCPImportError(message: "\(rawName): \(TerminalSanitizer.line(variable).debugDescription) is not a name for an environment variable")
                    }
                    out += "\(TOMLWriter.string(variable)) = \(TOMLWriter.string(text.string ?? ""))\n"
                }
            }
            names.append(name)
        }
        return (out, names)
    }
}

public struct MCPImportError: UserFacingError, Sendable {
    public var message: String
    public var userMessage: String { "mcp import: \(message)" }
}

/// Strings as TOML basic strings.
enum TOMLWriter {
    static func string(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    out += String(format: "\\u%04X", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

/// `*` and `?` globs, as `allow` and `deny` take them.
enum Glob {
    static func matches(_ pattern: String, _ text: String) -> Bool {
        let p = Array(pattern), t = Array(text)
        var pi = 0, ti = 0, star = -1, mark = 0
        while ti < t.count {
            if pi < p.count, p[pi] == "?" || p[pi] == t[ti] {
                pi += 1; ti += 1
            } else if pi < p.count, p[pi] == "*" {
                star = pi; mark = ti; pi += 1
            } else if star >= 0 {
                pi = star + 1; mark += 1; ti = mark
            } else {
                return false
            }
        }
        while pi < p.count, p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}

/// The names tools are offered to models under: `server__tool`, within every provider's rules
/// (OpenAI and Anthropic: `^[a-zA-Z0-9_-]{1,64}$`), unique.
public enum MCPNames {
    static func isValidServerName(_ name: String) -> Bool {
        (1...32).contains(name.count) && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
    }

    /// A config key made from an imported server's name.
    static func serverName(_ raw: String) -> String {
        var name = String(raw.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") ? $0 : "_" }.prefix(32))
        if name.isEmpty { name = "server" }
        return name
    }

    /// Offered names for `(server, tool)` pairs, in order: characters outside `[a-zA-Z0-9_-]` become
    /// `_`, long names are cut to 64 with a short hash of the original kept, and a name already taken gets
    /// `_2`, `_3`…
    public static func offered(_ pairs: [(server: String, tool: String)]) -> [String] {
        var taken = Set<String>()
        return pairs.map { pair in
            let raw = pair.server + "__" + pair.tool
            var name = String(raw.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") ? $0 : "_" })
            if name.count > 64 || name != raw {
                // Two originals that clean up alike stay apart by their hash.
                let hash = String(SHA256.hex(Array(raw.utf8)).prefix(6))
                if name.count > 64 || taken.contains(name) { name = String(name.prefix(57)) + "_" + hash }
            }
            var candidate = name
            var n = 2
            while taken.contains(candidate) {
                let suffix = "_\(n)"
                candidate = String(name.prefix(64 - suffix.count)) + suffix
                n += 1
            }
            taken.insert(candidate)
            return candidate
        }
    }
}
