import Foundation
import Testing
import ParleyCore
import ParleyKit
import ParleyTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Issue 15: MCP tools through the real binary, against real MCP servers from PyPI (`mcp-server-time`,
/// `mcp-server-git`, and a test server on the official Python SDK, `Tests/Fixtures/mcp`), installed
/// by `scripts/test` into a virtualenv; the model is a scripted provider in each wire format.
@Suite(.serialized) struct MCPTests {
    static var venv: URL {
        URL(fileURLWithPath: ProcessInfo.processInfo.environment["PARLEY_TEST_VENV"]
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/parley/test-venv").path)
    }
    static var testServer: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/mcp/parley_test_server.py").path
    }

    func requireVenv() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.venv.appendingPathComponent("bin/mcp-server-time").path),
                     "the MCP test virtualenv is missing at \(Self.venv.path): run scripts/test")
    }

    /// `[mcp.servers.t]` for the test server (plus `extra` lines), and `time`.
    func servers(_ extra: String = "", pidFile: String? = nil, approve: String = "auto") -> String {
        var env = ""
        if let pidFile { env = "env = { TEST_MCP_PIDFILE = \"\(pidFile)\" }\n" }
        return """
            [mcp.servers.t]
            command = "\(Self.venv.path)/bin/python"
            args = ["\(Self.testServer)"]
            approve = "\(approve)"
            \(env)\(extra)
            [mcp.servers.time]
            command = "\(Self.venv.path)/bin/mcp-server-time"
            args = ["--local-timezone", "UTC"]
            approve = "auto"

            """
    }

    @Test func toolsAndCallsAgainstRealServers() throws {
        try requireVenv()
        let repo = FileManager.default.temporaryDirectory.appendingPathComponent("parley-git-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: repo, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: repo) }
        _ = try ChildProcess.capture(["git", "init", "-q", "-b", "trunk", repo.path], discardingErrors: true)
        let harness = try ParleyHarness(config: servers() + """
            [mcp.servers.git]
            command = "\(Self.venv.path)/bin/mcp-server-git"
            args = ["--repository", "\(repo.path)"]

            """)
        defer { harness.cleanUp() }
        let tools = try harness.run(["mcp", "tools"], limit: 60)
        #expect(tools.status == 0, "\(tools.stderr)")
        for name in ["t__echo", "t__crash", "time__get_current_time", "time__convert_time", "git__git_status"] {
            #expect(tools.stdout.contains(name + "  "), "\(name) missing:\n\(tools.stdout)")
        }
        #expect(tools.stderr.contains("tools in"), "\(tools.stderr)")
        let time = try harness.run(["mcp", "call", "time", "get_current_time", #"{"timezone": "Asia/Tokyo"}"#], limit: 60)
        #expect(time.status == 0, "\(time.stderr)")
        let answer = try JSONValue.parse(time.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(answer["timezone"]?.string == "Asia/Tokyo")
        #expect(answer["datetime"]?.string?.hasSuffix("+09:00") == true)
        let status = try harness.run(["mcp", "call", "git", "git_status", "{\"repo_path\": \"\(repo.path)\"}"], limit: 60)
        #expect(status.status == 0 && status.stdout.contains("trunk"), "\(status.stdout) \(status.stderr)")
        // isError from the server: exit 1 and its message.
        let bad = try harness.run(["mcp", "call", "time", "get_current_time", #"{"timezone": "Nowhere/Nothing"}"#], limit: 60)
        #expect(bad.status == 1 && bad.stderr.contains("reported an error") && bad.stderr.contains("Nowhere/Nothing"), "\(bad.stderr)")
        let unknown = try harness.run(["mcp", "call", "time", "nope"], limit: 60)
        #expect(unknown.status == 1 && unknown.stderr.contains("offers no tool nope; it has: get_current_time, convert_time"), "\(unknown.stderr)")
        // A tool's output is sanitized before it reaches the terminal.
        let flood = try harness.run(["mcp", "call", "t", "flood", #"{"characters": 300}"#], limit: 60)
        #expect(flood.status == 0 && !flood.stdout.contains("\u{1B}") && flood.stdout.contains("xxx"), "\(flood.stdout.debugDescription)")
        let list = try harness.run(["mcp", "list"])
        #expect(list.stdout.contains("time  approve=auto") && list.stdout.contains("git  approve=ask"), "\(list.stdout)")
    }

    @Test func aServerThatNeverInitializesOrCannotStartIsALineNotAHang() throws {
        try requireVenv()
        let harness = try ParleyHarness(config: """
            [mcp.servers.slow]
            command = "sleep"
            args = ["30"]
            startup_timeout = 1
            [mcp.servers.missing]
            command = "/nonexistent/server"

            """ + servers())
        defer { harness.cleanUp() }
        let started = Date()
        let result = try harness.run(["mcp", "tools"], limit: 60)
        #expect(Date().timeIntervalSince(started) < 15)
        #expect(result.status == 1)
        #expect(result.stderr.contains("MCP server slow did not finish initialize within 1 s (startup_timeout)"), "\(result.stderr)")
        #expect(result.stderr.contains("MCP server missing exited before it was ready") || result.stderr.contains("MCP server missing: could not start"), "\(result.stderr)")
        // The servers that work still serve.
        #expect(result.stdout.contains("time__get_current_time"), "\(result.stdout)")
    }

    @Test func importReadsClaudeDesktopsFile() throws {
        let harness = try ParleyHarness()
        defer { harness.cleanUp() }
        let file = harness.home.appendingPathComponent("claude_desktop_config.json")
        try """
            {"mcpServers": {"time": {"command": "uvx", "args": ["mcp-server-time", "--local-timezone=Europe/Paris"]},
                            "my files!": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp/a \\"b\\""],
                                          "env": {"DEBUG": "1"}}}}
            """.write(to: file, atomically: true, encoding: .utf8)
        let imported = try harness.run(["mcp", "import", file.path])
        #expect(imported.status == 0, "\(imported.stderr)")
        let list = try harness.run(["mcp", "list"])
        #expect(list.stdout.contains("time  approve=ask  uvx mcp-server-time --local-timezone=Europe/Paris"), "\(list.stdout)")
        #expect(list.stdout.contains("my_files_  approve=ask  npx -y @modelcontextprotocol/server-filesystem '/tmp/a \"b\"'"), "\(list.stdout)")
        // Importing again would duplicate a name: refused, the config unchanged.
        let again = try harness.run(["mcp", "import", file.path])
        #expect(again.status != 0 && again.stderr.contains("already configured"), "\(again.stderr)")
    }

    // MARK: the tool loop in `ask`, with a scripted model

    /// Replies of a scripted model in one wire format: tool calls streamed a byte at a time, or text.
    enum Script {
        case calls([(id: String, name: String, arguments: String)])
        case text(String)
    }

    static func steps(_ script: Script, format: String) -> [ScriptedHTTPServer.Step] {
        var out: [UInt8] = []
        func sse(_ json: JSONValue, event: String? = nil) {
            if let event { out += Array("event: \(event)\n".utf8) }
            out += Array("data: \(json.serialized())\n\n".utf8)
        }
        switch (format, script) {
        case let ("openai", .calls(calls)):
            for (index, call) in calls.enumerated() {
                sse(.object([("choices", [["index": 0, "delta": ["tool_calls": [["index": .number(Double(index)), "id": .string(call.id), "type": "function",
                                                                                 "function": ["name": .string(call.name), "arguments": ""]]]]]])]))
                for byte in call.arguments {
                    sse(.object([("choices", [["index": 0, "delta": ["tool_calls": [["index": .number(Double(index)), "function": ["arguments": .string(String(byte))]]]]]])]))
                }
            }
            sse(.object([("choices", [["index": 0, "delta": [:], "finish_reason": "tool_calls"]])]))
            out += Array("data: [DONE]\n\n".utf8)
        case let ("openai", .text(text)):
            sse(.object([("choices", [["index": 0, "delta": ["content": .string(text)]]])]))
            sse(.object([("choices", [["index": 0, "delta": [:], "finish_reason": "stop"]])]))
            out += Array("data: [DONE]\n\n".utf8)
        case let ("anthropic", script):
            sse(["type": "message_start", "message": ["id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "m",
                                                      "usage": ["input_tokens": 10, "output_tokens": 0]]], event: "message_start")
            switch script {
            case let .calls(calls):
                for (index, call) in calls.enumerated() {
                    sse(["type": "content_block_start", "index": .number(Double(index)),
                         "content_block": ["type": "tool_use", "id": .string(call.id), "name": .string(call.name), "input": [:]]], event: "content_block_start")
                    for byte in call.arguments {
                        sse(["type": "content_block_delta", "index": .number(Double(index)),
                             "delta": ["type": "input_json_delta", "partial_json": .string(String(byte))]], event: "content_block_delta")
                    }
                    sse(["type": "content_block_stop", "index": .number(Double(index))], event: "content_block_stop")
                }
                sse(["type": "message_delta", "delta": ["stop_reason": "tool_use"], "usage": ["output_tokens": 5]], event: "message_delta")
            case let .text(text):
                sse(["type": "content_block_start", "index": 0, "content_block": ["type": "text", "text": ""]], event: "content_block_start")
                sse(["type": "content_block_delta", "index": 0, "delta": ["type": "text_delta", "text": .string(text)]], event: "content_block_delta")
                sse(["type": "content_block_stop", "index": 0], event: "content_block_stop")
                sse(["type": "message_delta", "delta": ["stop_reason": "end_turn"], "usage": ["output_tokens": 5]], event: "message_delta")
            }
            sse(["type": "message_stop"], event: "message_stop")
        case let ("ollama", script):
            // Ollama sends each call whole, its arguments an object.
            switch script {
            case let .calls(calls):
                let list = JSONValue.array(calls.map { call in
                    ["function": ["name": .string(call.name), "arguments": (try? JSONValue.parse(call.arguments)) ?? .string(call.arguments)]]
                })
                out += Array((JSONValue.object([("model", "m"), ("message", ["role": "assistant", "content": "", "tool_calls": list]), ("done", false)]).serialized() + "\n").utf8)
                out += Array((JSONValue.object([("model", "m"), ("message", ["role": "assistant", "content": ""]), ("done", true), ("done_reason", "stop"),
                                                ("prompt_eval_count", 10), ("eval_count", 5)]).serialized() + "\n").utf8)
            case let .text(text):
                out += Array((JSONValue.object([("model", "m"), ("message", ["role": "assistant", "content": .string(text)]), ("done", false)]).serialized() + "\n").utf8)
                out += Array((JSONValue.object([("model", "m"), ("message", ["role": "assistant", "content": ""]), ("done", true), ("done_reason", "stop"),
                                                ("prompt_eval_count", 10), ("eval_count", 5)]).serialized() + "\n").utf8)
            }
        default:
            break
        }
        let type = format == "ollama" ? "application/x-ndjson" : "text/event-stream"
        return [.head(status: 200, headers: [("Content-Type", type)]), .write(out), .end]
    }

    /// A provider of `format` that plays `scripts` in order (the last again when they run out).
    func model(_ format: String, _ scripts: [Script]) async throws -> (ScriptedHTTPServer, String) {
        let count = LockedCounter()
        let server = try await ScriptedHTTPServer { _ in Self.steps(scripts[min(count.next(), scripts.count - 1)], format: format) }
        let base = format == "openai" ? server.baseURL + "/v1" : server.baseURL
        let config = """
            [providers.box]
            base_url = "\(base)"
            format = "\(format)"
            api_key_env = "BOX_KEY"
            models = ["m"]

            """
        return (server, config)
    }

    /// The bodies the model was sent, parsed.
    func sent(_ server: ScriptedHTTPServer) -> [JSONValue] {
        server.requests.compactMap { try? JSONValue.parse($0.bodyText) }
    }

    @Test(arguments: ["openai", "anthropic", "ollama"])
    func askRunsTheToolsTheModelAsksForAndCarriesOn(format: String) async throws {
        try requireVenv()
        let (server, provider) = try await model(format, [
            .calls([("call_a", "t__echo", #"{"text": "héllo \"world\""}"#), ("call_b", "time__get_current_time", #"{"timezone":"UTC"}"#)]),
            .text("Both tools answered."),
        ])
        let harness = try ParleyHarness(config: provider + servers())
        defer { harness.cleanUp() }
        let result = try harness.run(["ask", "-m", "box:m", "use the tools"], extraEnvironment: ["BOX_KEY": "k"], limit: 120)
        await server.shutdown()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("Both tools answered."), "\(result.stdout)")
        #expect(result.stderr.contains("tool t__echo") && result.stderr.contains("tool time__get_current_time"), "\(result.stderr)")
        let bodies = sent(server)
        try #require(bodies.count == 2, "\(bodies.count) requests")
        // The first request offered the tools; the second carried both results after the calls.
        let second = bodies[1].serialized()
        #expect(bodies[0].serialized().contains("t__echo") && bodies[0].serialized().contains("time__get_current_time"))
        #expect(second.contains(#"echo: héllo \"world\""#), "\(second)")
        #expect(second.contains(#"\"timezone\": \"UTC\""#) || second.contains(#"\\\"timezone\\\": \\\"UTC\\\""#), "\(second)")
        if format != "ollama" { #expect(second.contains("call_a") && second.contains("call_b"), "the results name their calls") }
    }

    @Test func badArgumentsACrashAndAnErrorGoBackToTheModelAsErrors() async throws {
        try requireVenv()
        let (server, provider) = try await model("anthropic", [
            .calls([("call_1", "t__echo", "{not json"), ("call_2", "t__fail", #"{"reason": "disk full"}"#), ("call_3", "t__crash", "{}"),
                    ("call_4", "t__flood", #"{"characters": 50000}"#)]),
            .text("I saw three errors."),
        ])
        let harness = try ParleyHarness(config: provider + "[mcp]\nmax_result_chars = 1000\n" + servers())
        defer { harness.cleanUp() }
        let result = try harness.run(["ask", "-m", "box:m", "go"], extraEnvironment: ["BOX_KEY": "k"], limit: 120)
        await server.shutdown()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("I saw three errors."))
        let second = try #require(sent(server).last)
        let results = second["messages"]?.array?.flatMap { $0["content"]?.array ?? [] }.filter { $0["type"]?.string == "tool_result" } ?? []
        try #require(results.count == 4, "\(second.serialized())")
        #expect(results.prefix(3).allSatisfy { $0["is_error"]?.bool == true }, "\(results.map { $0.serialized() })")
        // A long result is cut to max_result_chars before it goes back.
        let flood = results[3]["content"]?.string ?? ""
        #expect(results[3]["is_error"] == nil && flood.count < 1200 && flood.contains("[cut: 56500 more characters"), "\(flood.suffix(200))")
        #expect(results[0]["content"]?.string?.contains("not a JSON object") == true)
        #expect(results[1]["content"]?.string?.contains("disk full") == true)
        #expect(results[2]["content"]?.string?.contains("exited during the call (status 3)") == true, "\(results[2].serialized())")
    }

    @Test func theRoundLimitAndARepeatedCallStopTheLoop() async throws {
        try requireVenv()
        // A model that asks for a new call every time.
        let count = LockedCounter()
        let server = try await ScriptedHTTPServer { _ in
            Self.steps(.calls([("call_\(count.next())", "t__echo", "{\"text\": \"\(UUID().uuidString)\"}")]), format: "openai")
        }
        let provider = "[providers.box]\nbase_url = \"\(server.baseURL)/v1\"\nmodels = [\"m\"]\n"
        let harness = try ParleyHarness(config: provider + "[mcp]\nmax_tool_rounds = 3\n" + servers())
        defer { harness.cleanUp() }
        let limited = try harness.run(["ask", "-m", "box:m", "loop"], limit: 120)
        #expect(limited.status == 1)
        #expect(limited.stderr.contains("stopped: the model asked for tools 3 rounds in a row (max_tool_rounds under [mcp])"), "\(limited.stderr)")
        #expect(server.requestCount == 4)
        await server.shutdown()

        let (same, sameProvider) = try await model("openai", [.calls([("call_x", "t__echo", #"{"text": "again"}"#)])])
        let repeated = try ParleyHarness(config: sameProvider + servers())
        defer { repeated.cleanUp() }
        let result = try repeated.run(["ask", "-m", "box:m", "loop"], extraEnvironment: ["BOX_KEY": "k"], limit: 120)
        #expect(result.status == 1)
        #expect(result.stderr.contains("stopped: the model asked for the same call again, t__echo"), "\(result.stderr)")
        #expect(same.requestCount == 2)
        await same.shutdown()
    }

    @Test func askOffersOnlyWhatMayRunWithoutAskingAndSaysWhenTheModelTakesNoTools() async throws {
        try requireVenv()
        let (server, provider) = try await model("openai", [.text("no tools needed")])
        let harness = try ParleyHarness(config: provider + servers(approve: "ask") + "[models.\"box:m\"]\ntools = true\n")
        defer { harness.cleanUp() }
        // Only `time` (approve = "auto") is offered: `t` asks, and ask never prompts.
        _ = try harness.run(["ask", "-m", "box:m", "hi"], extraEnvironment: ["BOX_KEY": "k"], limit: 60)
        let offered = sent(server).last?.serialized() ?? ""
        #expect(offered.contains("time__get_current_time") && !offered.contains("t__echo"), "\(offered)")
        // --approve auto offers every server's tools; --approve never none.
        _ = try harness.run(["ask", "-m", "box:m", "--approve", "auto", "hi"], extraEnvironment: ["BOX_KEY": "k"], limit: 60)
        #expect(sent(server).last?.serialized().contains("t__echo") == true)
        _ = try harness.run(["ask", "-m", "box:m", "--approve", "never", "hi"], extraEnvironment: ["BOX_KEY": "k"], limit: 60)
        #expect(sent(server).last?["tools"] == nil)
        await server.shutdown()
        // A model marked without tools gets none, and it is said.
        let (plain, plainProvider) = try await model("openai", [.text("plain")])
        let unmarked = try ParleyHarness(config: plainProvider + servers() + "[models.\"box:m\"]\ntools = false\n")
        defer { unmarked.cleanUp() }
        let said = try unmarked.run(["ask", "-m", "box:m", "hi"], extraEnvironment: ["BOX_KEY": "k"], limit: 60)
        #expect(said.stderr.contains("box:m does not take tools"), "\(said.stderr)")
        #expect(sent(plain).last?["tools"] == nil)
        await plain.shutdown()
    }

    /// No server outlives Parley: not after it ends, nor when it is killed with SIGTERM or -9 while a
    /// tool is running (checked in the process table by the server's pid).
    @Test(arguments: [0, SIGTERM, SIGKILL])
    func noServerIsLeftRunning(signal: Int32) async throws {
        try requireVenv()
        // The server also leaves a child behind in a session of its own that ignores SIGTERM.
        let (server, provider) = try await model("openai", [.calls([("call_o", "t__orphan", "{}"), ("call_s", "t__sleep", #"{"seconds": \#(signal == 0 ? 0.2 : 60)}"#)]),
                                                            .text("done")])
        let harness = try ParleyHarness(config: provider)
        defer { harness.cleanUp() }
        let pidFile = harness.home.appendingPathComponent("server.pid").path
        try (provider + servers(pidFile: pidFile)).write(to: harness.home.appendingPathComponent("config/parley/config.toml"), atomically: true, encoding: .utf8)
        var environment = harness.environment
        environment["BOX_KEY"] = "k"
        let ask = try ChildProcess.spawn([ParleyHarness.binary, "ask", "-m", "box:m", "sleep"], environment: environment, output: .null)
        func serverPID() -> pid_t? { (try? String(contentsOfFile: pidFile, encoding: .utf8)).flatMap { pid_t($0) } }
        func alive(_ pid: pid_t) -> Bool {
            guard kill(pid, 0) == 0 else { return false }
            // A zombie waiting for its reaper is gone for this purpose.
            let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
            return !stat.contains(") Z ")
        }
        var deadline = Date().addingTimeInterval(30)
        while serverPID() == nil, Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        let pid = try #require(serverPID(), "the test server never started")
        if signal != 0 {
            // The tool is running: its call has been made.
            deadline = Date().addingTimeInterval(30)
            while server.requestCount < 1, Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
            try await Task.sleep(for: .milliseconds(500))
            #expect(alive(pid))
            kill(ask.pid, signal)
        }
        _ = ask.wait()
        deadline = Date().addingTimeInterval(5)
        while alive(pid), Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!alive(pid), "the MCP server \(pid) outlived parley (signal \(signal))")
        if alive(pid) { kill(pid, SIGKILL) }
        let child = try #require((try? String(contentsOfFile: pidFile + ".child", encoding: .utf8)).flatMap { pid_t($0) }, "the orphan tool did not run")
        deadline = Date().addingTimeInterval(5)
        while alive(child), Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!alive(child), "what the MCP server started (\(child)) outlived parley (signal \(signal))")
        if alive(child) { kill(child, SIGKILL) }
        await server.shutdown()
    }

    // MARK: on the screen

    /// Parley's screen in tmux on the scripted model, with the MCP servers (the test server's pid in the
    /// returned file).
    func screen(_ provider: String, approve: String, extra: String = "") async throws -> (ParleyHarness, ScreenTests.Tmux, String) {
        let harness = try ParleyHarness(config: provider)
        let pidFile = harness.home.appendingPathComponent("server.pid").path
        try (provider + servers(extra, pidFile: pidFile, approve: approve)).write(to: harness.home.appendingPathComponent("config/parley/config.toml"),
                                                                           atomically: true, encoding: .utf8)
        let tmux = ScreenTests.Tmux()
        tmux.start(harness, extra: ["BOX_KEY=k"])
        tmux.type("PS1='$ '; \(ParleyHarness.binary) --model box:m")
        tmux.keys("Enter")
        await tmux.waitAsync(for: "type a message")
        return (harness, tmux, pidFile)
    }

    /// Waits until the shell in the pane has no child left (Parley has exited).
    static func parleyExited(_ tmux: ScreenTests.Tmux, seconds: Double = 20) async {
        let shell = tmux.run(["list-panes", "-t", tmux.session, "-F", "#{pane_pid}"]).trimmingCharacters(in: .whitespacesAndNewlines)
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let children = (try? String(contentsOfFile: "/proc/\(shell)/task/\(shell)/children", encoding: .utf8)) ?? ""
            if children.trimmingCharacters(in: .whitespaces).isEmpty { return }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// The screen as a person uses it: the approval bar names the server, the tool and its arguments;
    /// n declines (the model is told), A always runs that tool (not asked again; lowercase a does nothing), the block shows the
    /// call and the first lines of its result, the session keeps calls and results, and a resumed session
    /// sends them again in order. Quitting leaves no server running.
    @Test func onTheScreenCallsAreApprovedShownSavedAndResumed() async throws {
        try requireVenv()
        let (server, provider) = try await model("openai", [
            .calls([("call_1", "t__echo", #"{"text": "first"}"#)]), .text("declined, fine."),
            .calls([("call_2", "t__echo", #"{"text": "second"}"#)]), .text("second done."),
            .calls([("call_3", "t__echo", #"{"text": "third"}"#)]), .text("third done."),
            .text("after resume."),
        ])
        let (harness, tmux, pidFile) = try await screen(provider, approve: "ask")
        defer { harness.cleanUp(); tmux.run(["kill-server"]) }
        tmux.type("one")
        tmux.keys("Enter")
        var screen = await tmux.waitAsync(for: "always this server", seconds: 30)
        #expect(screen.contains("⚙ run t__echo from MCP server t?") && screen.contains(#"{"text": "first"}"#), "\(screen)")
        tmux.keys("n")
        screen = await tmux.waitAsync(for: "declined, fine.")
        #expect(screen.contains("▌ tool t__echo · declined"), "\(screen)")
        #expect(sent(server)[1].serialized().contains("ERROR: the user declined"), "the model is told")
        await tmux.waitAsync(for: "│ idle │")
        tmux.type("two")
        tmux.keys("Enter")
        await tmux.waitAsync(for: "always this server")
        tmux.keys("a")  // lowercase: does nothing (typing must never approve)
        try await Task.sleep(for: .milliseconds(700))
        #expect(tmux.screen().contains("always this server"), "still asking")
        tmux.keys("A")
        screen = await tmux.waitAsync(for: "second done.")
        #expect(screen.contains("▌ tool t__echo · ok") && screen.contains("echo: second"), "\(screen)")
        await tmux.waitAsync(for: "│ idle │")
        tmux.type("three")
        tmux.keys("Enter")
        screen = await tmux.waitAsync(for: "third done.")
        #expect(!screen.contains("always this server"), "not asked again after a: \(screen)")
        #expect(screen.contains("echo: third"), "\(screen)")
        await tmux.waitAsync(for: "│ idle │")
        let pid = try #require((try? String(contentsOfFile: pidFile, encoding: .utf8)).flatMap { pid_t($0) })
        tmux.type("/quit")
        tmux.keys("Enter")
        await Self.parleyExited(tmux)
        #expect(kill(pid, 0) != 0, "the MCP server outlived the screen")

        // The session has every call and result, and a resumed session sends them again in order.
        tmux.type("clear; \(ParleyHarness.binary) --resume --model box:m")
        tmux.keys("Enter")
        screen = await tmux.waitAsync(for: "resumed")
        #expect(screen.contains("▌ tool t__echo · ok"), "\(screen)")
        tmux.type("four")
        tmux.keys("Enter")
        await tmux.waitAsync(for: "after resume.")
        let last = try #require(sent(server).last)
        let roles = last["messages"]?.array?.map { ($0["role"]?.string ?? "") + ($0["tool_call_id"]?.string.map { ":" + $0 } ?? "") } ?? []
        #expect(roles == ["user", "assistant", "tool:call_1", "assistant", "user", "assistant", "tool:call_2", "assistant",
                          "user", "assistant", "tool:call_3", "assistant", "user"], "\(roles)")
        tmux.type("/quit")
        tmux.keys("Enter")
        await server.shutdown()
    }

    /// Esc stops a turn whose tool is running: at once, the block says so, and the next turn works.
    /// Ctrl-C twice, SIGTERM and SIGHUP leave no server behind.
    @Test(arguments: ["C-c", "TERM", "HUP"])
    func escStopsARunningToolAndNoServerOutlivesTheScreen(ending: String) async throws {
        try requireVenv()
        let (server, provider) = try await model("openai", [.calls([("call_s", "t__sleep", #"{"seconds": 60}"#)]), .text("after the stop.")])
        let (harness, tmux, pidFile) = try await screen(provider, approve: "auto")
        defer { harness.cleanUp(); tmux.run(["kill-server"]) }
        tmux.type("sleep")
        tmux.keys("Enter")
        var screen = await tmux.waitAsync(for: "tool t__sleep… (Esc stops)", seconds: 30)
        #expect(screen.contains("▌ tool t__sleep · running…"), "\(screen)")
        let started = Date()
        tmux.keys("Escape")
        screen = await tmux.waitAsync(for: "│ stopped │")
        #expect(Date().timeIntervalSince(started) < 5, "Esc did not stop the running tool at once")
        try await Task.sleep(for: .milliseconds(300))
        tmux.type("again")
        tmux.keys("Enter")
        screen = await tmux.waitAsync(for: "after the stop.", seconds: 30)
        #expect(screen.contains("after the stop."), "\(screen)")
        await tmux.waitAsync(for: "│ idle │")
        let pid = try #require((try? String(contentsOfFile: pidFile, encoding: .utf8)).flatMap { pid_t($0) })
        #expect(kill(pid, 0) == 0, "the server lives as long as Parley")
        let shell = tmux.run(["list-panes", "-t", tmux.session, "-F", "#{pane_pid}"]).trimmingCharacters(in: .whitespacesAndNewlines)
        let parley = (try? String(contentsOfFile: "/proc/\(shell)/task/\(shell)/children", encoding: .utf8))?.split(separator: " ").compactMap { pid_t($0) }.first
        switch ending {
        case "TERM": if let parley { kill(parley, SIGTERM) }
        case "HUP": if let parley { kill(parley, SIGHUP) }
        default:
            tmux.keys("C-c")
            tmux.keys("C-c")
        }
        await Self.parleyExited(tmux)
        let deadline = Date().addingTimeInterval(6)
        while kill(pid, 0) == 0, Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(kill(pid, 0) != 0, "the MCP server outlived the screen (\(ending))")
        await server.shutdown()
    }

    /// A model that fails in the second round falls back to one in another wire format, which gets the
    /// tool history of the first round in its own shape (tool_use and tool_result blocks).
    @Test func aFallbackCarriesTheToolHistoryAcrossWireFormats() async throws {
        try requireVenv()
        let count = LockedCounter()
        let first = try await ScriptedHTTPServer { _ in
            count.next() == 0 ? Self.steps(.calls([("call_1", "t__echo", #"{"text": "carried"}"#)]), format: "openai")
                : [.head(status: 503, headers: [("Content-Type", "application/json")]), .write(Array(#"{"error":{"message":"down"}}"#.utf8)), .end]
        }
        let (second, secondProvider) = try await model("anthropic", [.text("the other model answered.")])
        let config = """
            [providers.first]
            base_url = "\(first.baseURL)/v1"
            models = ["m"]
            max_retries = 0
            \(secondProvider.replacingOccurrences(of: "[providers.box]", with: "[providers.other]"))
            [models."first:m"]
            fallback = ["other:m"]

            """
        let harness = try ParleyHarness(config: config + servers())
        defer { harness.cleanUp() }
        let result = try harness.run(["ask", "-m", "first:m", "go"], extraEnvironment: ["BOX_KEY": "k"], limit: 120)
        await first.shutdown()
        await second.shutdown()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("the other model answered."))
        let body = try #require(sent(second).first)
        let blocks = body["messages"]?.array?.flatMap { $0["content"]?.array ?? [] } ?? []
        #expect(blocks.contains { $0["type"]?.string == "tool_use" && $0["id"]?.string == "call_1" && $0["input"]?["text"]?.string == "carried" },
                "\(body.serialized())")
        #expect(blocks.contains { $0["type"]?.string == "tool_result" && $0["tool_use_id"]?.string == "call_1" && $0["content"]?.string == "echo: carried" },
                "\(body.serialized())")
        #expect(body["tools"]?.array?.contains { $0["name"]?.string == "t__echo" && $0["input_schema"] != nil } == true)
    }

    /// A server that cannot start is said once on the screen, and not tried again for a minute, so it
    /// does not hold every turn for its startup_timeout; the other servers' tools still serve.
    @Test func aBrokenServerIsSaidOnceAndDoesNotHoldEveryTurn() async throws {
        try requireVenv()
        let (server, provider) = try await model("openai", [.text("one answered."), .text("two answered.")])
        let (harness, tmux, _) = try await screen(provider, approve: "auto", extra: "\n[mcp.servers.slow]\ncommand = \"sleep\"\nargs = [\"30\"]\nstartup_timeout = 2\n")
        defer { harness.cleanUp(); tmux.run(["kill-server"]) }
        tmux.type("one")
        tmux.keys("Enter")
        await tmux.waitAsync(for: "one answered.", seconds: 30)
        // (The status bar shows the server's line, not "idle": the reply is over once it is on screen.)
        try await Task.sleep(for: .milliseconds(300))
        let started = Date()
        tmux.type("two")
        tmux.keys("Enter")
        let screen = await tmux.waitAsync(for: "two answered.", seconds: 30)
        #expect(Date().timeIntervalSince(started) < 1.5, "the second turn waited for the broken server again")
        #expect(screen.components(separatedBy: "▌ error").count == 2 && screen.contains("MCP server slow did not finish initialize"), "said once:\n\(screen)")
        #expect(sent(server).last?.serialized().contains("t__echo") == true, "the other servers' tools are offered")
        tmux.type("/quit")
        tmux.keys("Enter")
        await Self.parleyExited(tmux)
        await server.shutdown()
    }
}
