import ArgumentParser
import Foundation
import ParleyCore
import ParleyKit

/// `parley mcp`: the MCP servers of `[mcp.servers]`, their tools, one call by hand, and importing the
/// `mcpServers` JSON other clients keep.
struct MCPCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mcp",
        abstract: "MCP tool servers: list them, their tools, call one, import Claude Desktop's or Gemini CLI's mcpServers.",
        subcommands: [List.self, Tools.self, Call.self, Import.self],
        defaultSubcommand: List.self
    )

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "The configured servers (none is started).")

        func run() throws {
            let engine: ChatEngine
            do { engine = try ChatEngine.fromEnvironment() } catch { throw fail(error) }
            let servers = engine.config.mcp.servers
            guard !servers.isEmpty else {
                Terminal.standardOutput.line("no MCP servers; add [mcp.servers.NAME] with command = \"…\" to \(engine.paths.configFile.path), or `parley mcp import FILE`")
                return
            }
            for server in servers {
                let command = ([server.command] + server.args).map(Self.word).joined(separator: " ")
                var line = "\(server.name)  approve=\(server.approve.rawValue)  \(command)"
                if !server.allow.isEmpty { line += "  allow=\(server.allow.joined(separator: ","))" }
                if !server.deny.isEmpty { line += "  deny=\(server.deny.joined(separator: ","))" }
                Terminal.standardOutput.line(TerminalSanitizer.line(line))
            }
        }

        /// A word as a shell would need it: as it is when that is safe, else quoted.
        static func word(_ text: String) -> String {
            let plain = !text.isEmpty && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "@%+=:,./_-".contains($0)) }
            return plain ? text : ChildProcess.shellQuote(text)
        }
    }

    struct Tools: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "tools", abstract: "Start the servers (or one) and list their tools as models are offered them.")

        @Argument(help: "Only this server.") var server: String?
        @Flag(help: "Print JSON: each tool's offered name, server, tool, description and input schema.") var json = false

        func run() async throws {
            let engine: ChatEngine
            do { engine = try ChatEngine.fromEnvironment() } catch { throw fail(error) }
            if let server, engine.config.mcp.server(server) == nil { throw fail(MCPProblem(message: "no MCP server named \(server) in [mcp.servers]")) }
            let hub = engine.makeMCPHub()
            let started = ContinuousClock.now
            let (tools, problems) = await hub.tools(servers: server.map { [$0] })
            let elapsed = ContinuousClock.now - started
            await hub.shutdown()
            if json {
                let list = JSONValue.array(tools.map { tool in
                    .object([("name", .string(tool.name)), ("server", .string(tool.server)), ("tool", .string(tool.tool)),
                             ("description", .string(tool.description)), ("input_schema", (try? JSONValue.parse(Array(tool.schema.utf8))) ?? .null)])
                })
                Terminal.standardOutput.line(list.serialized())
            } else {
                for tool in tools {
                    let summary = tool.description.split(separator: "\n").first.map(String.init) ?? ""
                    Terminal.standardOutput.line(TerminalSanitizer.line("\(tool.name)  \(summary)"))
                }
                Terminal.standardError.say("parley: \(tools.count) tools in \(Int(elapsed.milliseconds)) ms (servers started and listed)\n")
            }
            for problem in problems { Terminal.standardError.say("parley: \(problem)\n") }
            if !problems.isEmpty { throw ExitCode(1) }
        }
    }

    struct Call: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "call", abstract: "Call one tool by hand and print its result (exit 1 when it reports an error).")

        @Argument(help: "The server.") var server: String
        @Argument(help: "The tool, by its own name.") var tool: String
        @Argument(help: "The arguments, a JSON object.") var arguments: String = "{}"

        func run() async throws {
            let engine: ChatEngine
            do { engine = try ChatEngine.fromEnvironment() } catch { throw fail(error) }
            guard engine.config.mcp.server(server) != nil else { throw fail(MCPProblem(message: "no MCP server named \(server) in [mcp.servers]")) }
            let hub = engine.makeMCPHub()
            let (tools, problems) = await hub.tools(servers: [server])
            guard let offered = tools.first(where: { $0.tool == tool }) else {
                await hub.shutdown()
                for problem in problems { Terminal.standardError.say("parley: \(problem)\n") }
                let names = tools.map(\.tool).joined(separator: ", ")
                throw fail(MCPProblem(message: "\(server) offers no tool \(tool)" + (names.isEmpty ? "" : "; it has: \(names)")))
            }
            let outcome = await hub.call(offered, arguments: arguments)
            await hub.shutdown()
            var sanitizer = TerminalSanitizer()
            if outcome.isError {
                Terminal.standardError.say("parley: \(tool) reported an error: \(sanitizer.sanitize(outcome.text))\n")
                throw ExitCode(1)
            }
            Terminal.standardOutput.line(sanitizer.sanitize(outcome.text))
        }
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "import",
            abstract: "Add the servers of an mcpServers JSON file (Claude Desktop, Gemini CLI) to config.toml, each with approve = \"ask\"."
        )

        @Argument(help: "The JSON file.", completion: .file()) var file: String

        func run() throws {
            do {
                let engine = try ChatEngine.fromEnvironment()
                let data = try PrivateFile.read((file as NSString).expandingTildeInPath, limit: 1 << 20)
                let existing = Set(engine.config.mcp.servers.map(\.name))
                let (toml, names) = try MCPSettings.importTOML(data, existing: existing)
                guard !names.isEmpty else { Terminal.standardOutput.line("no servers in \(file)"); return }
                let target = ProcessInfo.processInfo.environment["PARLEY_CONFIG"].map { URL(fileURLWithPath: $0) } ?? engine.paths.configFile
                var text = (try? String(contentsOf: target, encoding: .utf8)) ?? ""
                if !text.isEmpty, !text.hasSuffix("\n") { text += "\n" }
                text += "\n# imported from \(file) by parley mcp import\n" + toml
                // The result must load: a server that makes the config invalid is not written.
                _ = try ParleyConfig.parse(text, file: target.path)
                try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
                try AtomicFile.write(Data(text.utf8), to: target)
                Terminal.standardOutput.line("added \(names.joined(separator: ", ")) to \(target.path) (each asks before every call: approve = \"ask\")")
            } catch {
                throw fail(error)
            }
        }
    }
}

extension ChatEngine {
    /// The MCP servers of this config; their stderr goes to `logs/mcp-NAME.log` in the data directory.
    func makeMCPHub() -> MCPHub {
        MCPHub(settings: config.mcp, logDirectory: paths.dataDirectory.appendingPathComponent("logs"), environment: environment)
    }
}
