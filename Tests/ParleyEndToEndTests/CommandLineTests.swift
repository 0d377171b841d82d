import Foundation
import Testing
import ParleyCore
import ParleyKit
import ParleyTestSupport

/// `parley` as a user runs it, against loopback servers that play providers: errors on stderr as one line,
/// exit codes, and what reaches stdout.
@Suite struct CommandLineTests {
    /// The shell asks parley for candidates (as the script from --generate-completion-script does):
    /// configured models and aliases, saved session ids, template names.
    @Test func shellCompletionsNameModelsSessionsAndTemplates() throws {
        let harness = try ParleyHarness(config: "[aliases]\nfast = \"local:smollm2\"\n[providers.box]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodels = [\"big\", \"small\"]\n")
        defer { harness.cleanUp() }
        let store = SessionStore(directory: harness.home.appendingPathComponent("data/parley/sessions"))
        let session = Session(title: "t", model: "local:smollm2")
        try store.save(session)
        let templates = harness.home.appendingPathComponent("config/parley/templates")
        try FileManager.default.createDirectory(at: templates, withIntermediateDirectories: true)
        try "prompt = \"Review {{ input }}\"\n".write(to: templates.appendingPathComponent("review.toml"), atomically: true, encoding: .utf8)
        func complete(_ words: [String], _ path: [String], _ option: String) throws -> [String] {
            let result = try harness.run(["---completion"] + path + ["--", option, "\(words.count - 1)", "\(words.last!.count)"] + words)
            return result.stdout.split(separator: "\n").map(String.init)
        }
        #expect(try complete(["parley", "ask", "-m", "box:"], ["ask"], "--model") == ["box:big", "box:small"])
        #expect(try complete(["parley", "ask", "-m", "fa"], ["ask"], "--model") == ["fast"])
        #expect(try complete(["parley", "sessions", "show", ""], ["sessions", "show"], "positional@0") == [session.id])
        #expect(try complete(["parley", "ask", "-t", "r"], ["ask"], "--template") == ["review"])
    }

    /// Issue 16: show and export give the current branch; --all-branches every message, the other
    /// branch marked and where it starts said.
    @Test func showAndExportTheCurrentBranchOrAllOfThem() throws {
        let harness = try ParleyHarness()
        defer { harness.cleanUp() }
        let store = SessionStore(directory: harness.home.appendingPathComponent("data/parley/sessions"))
        var session = Session(title: "branches", model: "local:smollm2")
        let question = SessionMessage(parentID: nil, role: .user, content: "Which colour?")
        let first = SessionMessage(parentID: question.id, role: .assistant, content: "FIRST-ANSWER blue")
        let second = SessionMessage(parentID: question.id, role: .assistant, content: "SECOND-ANSWER green")
        session.messages = [question, first, second]
        try store.save(session)

        let shown = try harness.run(["sessions", "show", session.id])
        #expect(shown.status == 0)
        #expect(shown.stdout.contains("SECOND-ANSWER") && !shown.stdout.contains("FIRST-ANSWER"), "\(shown.stdout)")
        let all = try harness.run(["sessions", "show", "--all-branches", session.id])
        #expect(all.stdout.contains("FIRST-ANSWER") && all.stdout.contains("SECOND-ANSWER"), "\(all.stdout)")
        #expect(all.stdout.contains("another branch"), "the earlier reply is marked: \(all.stdout)")
        #expect(all.stdout.contains("answers “Which colour?”"), "the branch says what it answers: \(all.stdout)")

        let json = try harness.run(["sessions", "export", "--format", "json", session.id])
        let exported = try JSONValue.parse(json.stdout)
        #expect(exported["messages"]?.array?.compactMap { $0["content"]?.string } == ["Which colour?", "SECOND-ANSWER green"])
        let everything = try harness.run(["sessions", "export", "--format", "json", "--all-branches", session.id])
        #expect(try JSONValue.parse(everything.stdout)["messages"]?.array?.count == 3)
    }

    @Test func missingKeyNamesTheVariableAndExitsNonZero() throws {
        let harness = try ParleyHarness()
        defer { harness.cleanUp() }
        let result = try harness.run(["ask", "-m", "openai:gpt-4o-mini", "hello"])
        #expect(result.status == 1)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr == "parley: openai: OPENAI_API_KEY is not set; export it or pick another model with --model or /model\n")
    }

    @Test func unknownModelSaysHowToNameOne() throws {
        let harness = try ParleyHarness()
        defer { harness.cleanUp() }
        let result = try harness.run(["ask", "-m", "gpt-17", "hello"])
        #expect(result.status == 1)
        #expect(result.stderr.hasPrefix("parley: unknown model 'gpt-17'"))
        #expect(result.stderr.split(separator: "\n").count == 1)
    }

    @Test func badConfigNamesFileAndLine() throws {
        let harness = try ParleyHarness(config: "default_model = \"local\"\n[providers.box]\nbase_url = 42\n")
        defer { harness.cleanUp() }
        let result = try harness.run(["ask", "hello"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("config.toml:3: providers.box.base_url: expected a string, found an integer"))
    }

    @Test func deadServerIsOneClearLine() throws {
        let harness = try ParleyHarness(config: "[providers.dead]\nbase_url = \"http://127.0.0.1:9/v1\"\nconnect_timeout = 1\n")
        defer { harness.cleanUp() }
        let result = try harness.run(["ask", "-m", "dead:x", "hello"])
        #expect(result.status == 1)
        #expect(result.stderr.hasPrefix("parley: dead: "))
        #expect(result.stderr.contains("127.0.0.1:9"))
        #expect(result.stderr.split(separator: "\n").count == 1)
        // With --stats (or a terminal on stderr) the retries are said as they happen.
        let verbose = try harness.run(["ask", "-m", "dead:x", "--stats", "hello"])
        let lines = verbose.stderr.split(separator: "\n")
        #expect(lines.count >= 3)
        #expect(lines.first?.hasPrefix("parley: dead: connection failed; retrying in 0.") == true)
        #expect(lines.contains { $0.contains("(retry 2 of 2)") })
        #expect(lines.last?.hasPrefix("parley: dead: ") == true)
    }

    /// A hostile model: piped output passes through unchanged; `--sanitize` strips the sequences.
    @Test func pipedOutputIsRawUnlessSanitizeIsAsked() async throws {
        let hostile = "safe \u{1B}]52;c;cm0gLXJmIC8=\u{07}text \u{1B}[2J\u{9B}31mend"
        let content = JSONValue.string(hostile).serialized()
        let body = Array("data: {\"choices\":[{\"delta\":{\"content\":\(content)}}]}\n\ndata: [DONE]\n\n".utf8)
        let server = try await ScriptedHTTPServer { _ in ScriptedHTTPServer.sse(body) }
        let harness = try ParleyHarness(config: "[providers.evil]\nbase_url = \"\(server.baseURL)/v1\"\n")
        defer { harness.cleanUp() }
        let raw = try harness.run(["ask", "-m", "evil:m", "hi"])
        let clean = try harness.run(["ask", "-m", "evil:m", "--sanitize", "hi"])
        await server.shutdown()
        #expect(raw.status == 0)
        #expect(raw.stdout == hostile + "\n")
        #expect(clean.stdout == "safe text end\n")
    }

    @Test func configMaxTokensIsSentUnlessTheCommandSetsIt() async throws {
        let body = Array("data: {\"choices\":[{\"delta\":{\"content\":\"ok\"}}]}\n\ndata: [DONE]\n\n".utf8)
        let server = try await ScriptedHTTPServer { _ in ScriptedHTTPServer.sse(body) }
        let harness = try ParleyHarness(config: "[providers.box]\nbase_url = \"\(server.baseURL)/v1\"\nmax_tokens = 64\n")
        defer { harness.cleanUp() }
        #expect(try harness.run(["ask", "-m", "box:m", "hi"]).status == 0)
        #expect(try harness.run(["ask", "-m", "box:m", "--max-tokens", "5", "hi"]).status == 0)
        await server.shutdown()
        let sent = server.requests.map { try? JSONValue.parse($0.body) }
        #expect(sent.count == 2)
        #expect(sent.first??["max_tokens"]?.double == 64)
        #expect(sent.last??["max_tokens"]?.double == 5)
    }

    @Test func sessionsListShowSearchExportAndRemove() throws {
        let harness = try ParleyHarness()
        defer { harness.cleanUp() }
        let store = SessionStore(directory: harness.home.appendingPathComponent("data/parley/sessions"))
        var older = Session(title: "Rust or Go", model: "local:smollm2", now: Date(timeIntervalSince1970: 1_700_000_000))
        older.messages = [SessionMessage(parentID: nil, role: .user, content: "Which is faster, Rust or Go?")]
        var newer = Session(title: "Bread", model: "openai:gpt-4o-mini")
        let question = SessionMessage(parentID: nil, role: .user, content: "How long to proof bread?")
        var answer = SessionMessage(parentID: question.id, role: .assistant, content: "About an hour.\nLonger when cold \u{1B}]52;c;eA==\u{07}.", provider: "openai", model: "gpt-4o-mini")
        answer.cost = 0.0004
        newer.messages = [question, answer]
        try store.save(older)
        usleep(10_000)
        try store.save(newer)
        try Data("{\"format\": 9}".utf8).write(to: store.directory.appendingPathComponent("future.json"))

        let list = try harness.run(["sessions", "list"])
        #expect(list.status == 0)
        let lines = list.stdout.split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines.first?.hasSuffix("Bread") == true)  // newest first
        #expect(lines.first?.contains("$0.0004") == true)
        #expect(lines.last?.hasSuffix("Rust or Go") == true)
        #expect(list.stderr.contains("future.json: was written by a newer Parley (format 9)"))

        let show = try harness.run(["sessions", "show", "bread"])
        #expect(show.stdout.contains("## openai:gpt-4o-mini · "))
        #expect(show.stdout.contains("About an hour."))
        let search = try harness.run(["sessions", "search", "LONGER"])
        #expect(search.stdout == "\(newer.id)  Bread  [openai:gpt-4o-mini]  Longer when cold \u{1B}]52;c;eA==\u{07}.\n")  // piped: raw
        #expect(try harness.run(["sessions", "search", "nowhere"]).status == 1)
        let json = try harness.run(["sessions", "export", String(older.id.prefix(15)), "--format", "json"])
        #expect(try JSONValue.parse(json.stdout)["title"]?.string == "Rust or Go")

        let kept = try harness.run(["sessions", "rm", "Rust"], input: "n\n")
        #expect(kept.stderr.contains("kept"))
        #expect(FileManager.default.fileExists(atPath: store.url(for: older.id).path))
        #expect(try harness.run(["sessions", "rm", "Rust", "--yes"]).status == 0)
        #expect(!FileManager.default.fileExists(atPath: store.url(for: older.id).path))
        #expect(FileManager.default.fileExists(atPath: store.directory.appendingPathComponent("future.json").path))
    }

    @Test func providerErrorBodyReachesTheUser() async throws {
        let server = try await ScriptedHTTPServer { _ in
            ScriptedHTTPServer.json(#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#, status: 401)
        }
        let harness = try ParleyHarness()
        defer { harness.cleanUp() }
        let result = try harness.run(["ask", "-m", "anthropic:claude-haiku-4-5", "hi"],
                                     extraEnvironment: ["ANTHROPIC_API_KEY": "sk-ant-wrong", "ANTHROPIC_BASE_URL": server.baseURL])
        await server.shutdown()
        #expect(result.status == 1)
        #expect(result.stderr == "parley: anthropic: HTTP 401: invalid x-api-key; check the key in ANTHROPIC_API_KEY, or pick another model with --model or /model\n")
        #expect(server.requests.first?.uri == "/v1/messages")
        #expect(server.requests.first?.headers["x-api-key"] == "sk-ant-wrong")
    }

    @Test func cutOffReplyKeepsTextAndFails() async throws {
        let server = try await ScriptedHTTPServer { _ in
            ScriptedHTTPServer.sse(Array("data: {\"choices\":[{\"delta\":{\"content\":\"partial\"}}]}\n\n".utf8))
        }
        let harness = try ParleyHarness(config: "[providers.flaky]\nbase_url = \"\(server.baseURL)/v1\"\n")
        defer { harness.cleanUp() }
        let result = try harness.run(["ask", "-m", "flaky:m", "hi"])
        await server.shutdown()
        #expect(result.status == 1)
        #expect(result.stdout == "partial\n")
        #expect(result.stderr.contains("the reply was cut off"))
    }

    @Test func modelsListsProvidersAndKeys() throws {
        let harness = try ParleyHarness()
        defer { harness.cleanUp() }
        let result = try harness.run(["models"], extraEnvironment: ["GROQ_API_KEY": "gsk_x"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("key: OPENAI_API_KEY is NOT set"))
        #expect(result.stdout.contains("key: GROQ_API_KEY is set"))
        #expect(result.stdout.contains("local:smollm2"))
        #expect(!result.stdout.contains("gsk_x"))
    }

    @Test func missingRuntimeSaysTheCommandThatInstallsIt() throws {
        let harness = try ParleyHarness()
        defer { harness.cleanUp() }
        let empty = harness.home.appendingPathComponent("no-runtime").path
        let result = try harness.run(["ask", "hello"], extraEnvironment: ["PARLEY_RUNTIME_DIR": empty])
        #expect(result.status == 1)
        #expect(result.stderr.contains("run `parley setup`"))
        #expect(result.stderr.split(separator: "\n").count == 1)
        #expect(!FileManager.default.fileExists(atPath: empty + "/venv"))
    }

    @Test func emptyPromptIsRefused() throws {
        let harness = try ParleyHarness()
        defer { harness.cleanUp() }
        let result = try harness.run(["ask"], input: "  \n")
        #expect(result.status != 0)
        #expect(result.stderr.contains("no prompt"))
    }

    /// An answer streams into a reader that goes away (`| head`) or a full disk: the reply is stopped at
    /// once (the provider stops generating what nobody reads) instead of streaming to its end into
    /// failed writes. The reader leaving ends it quietly with 141, as SIGPIPE would; another failure says so.
    @Test func askStopsTheReplyWhenStdoutFails() async throws {
        var steps: [ScriptedHTTPServer.Step] = [.head(status: 200, headers: [("Content-Type", "text/event-stream")])]
        for i in 0..<600 {
            steps.append(.write(Array("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" word\(i)\"}}]}\n\n".utf8)))
            steps.append(.pause(.milliseconds(50)))
        }
        steps.append(.end)
        let script = steps
        let server = try await ScriptedHTTPServer { _ in script }
        defer { Task { await server.shutdown() } }
        let harness = try ParleyHarness(config: "[providers.slow]\nbase_url = \"\(server.baseURL)/v1\"\nmodels = [\"m\"]\n")
        defer { harness.cleanUp() }

        // 600 tokens at 20 a second would take 30 s; head leaves after 20 bytes.
        let status = harness.home.appendingPathComponent("status").path
        let started = Date()
        let command = "\(ChildProcess.shellQuote(ParleyHarness.binary)) ask -m slow:m hi 2>/dev/null | head -c 20 >/dev/null; echo ${PIPESTATUS[0]} > \(ChildProcess.shellQuote(status))"
        let pipeline = try ChildProcess.spawn(["/bin/bash", "-c", command], environment: harness.environment)
        var exited = pipeline.poll()
        while exited == nil, Date().timeIntervalSince(started) < 25 {
            usleep(20_000)
            exited = pipeline.poll()
        }
        if exited == nil { pipeline.signal(SIGKILL); _ = pipeline.wait() }
        #expect(exited != nil, "parley kept streaming into a closed pipe")
        #expect((try? String(contentsOfFile: status, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) == "141")

        let full = try ChildProcess.spawn(["/bin/sh", "-c", "exec \(ChildProcess.shellQuote(ParleyHarness.binary)) ask -m slow:m hi > /dev/full 2> \(ChildProcess.shellQuote(status))"],
                                          environment: harness.environment)
        #expect(full.wait() == 1)
        let said = (try? String(contentsOfFile: status, encoding: .utf8)) ?? ""
        #expect(said == "parley: cannot write the answer to stdout: No space left on device; the reply was stopped\n", "\(said)")
    }
}
