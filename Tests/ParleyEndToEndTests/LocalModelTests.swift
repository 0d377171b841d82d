import Foundation
import Testing
import ParleyCore
import ParleyKit
import ParleyProviders

/// Against the real llama-server serving SmolLM2-135M-Instruct. Needs `parley setup` once (the README's
/// test command runs it).
@Suite(.serialized) struct LocalModelTests {
    /// Issue 16: `parley setup` shows its steps and the time (one redrawn line on a terminal, a line per
    /// step elsewhere) and keeps pip's output in its log; a failure names the step and the log. pip has
    /// the wheels cached by the test set-up, so each run takes seconds.
    @Test func setupShowsItsStepsAndAFailureNamesTheStepAndTheLog() async throws {
        try runtimeInstalled()
        let harness = try ParleyHarness()
        defer { harness.cleanUp() }
        let runtime = harness.home.appendingPathComponent("runtime")
        let environment = ["PARLEY_RUNTIME_DIR": runtime.path]
        defer { _ = try? harness.run(["local-server", "--stop"], extraEnvironment: environment) }
        let result = try harness.run(["setup"], extraEnvironment: environment, limit: 900)
        #expect(result.status == 0, "\(result.stderr)")
        for step in ["[1/4] a virtualenv", "[2/4] llama-server", "[3/4] the model", "[4/4] finding the server binary"] {
            #expect(result.stderr.contains(step), "\(step) missing from:\n\(result.stderr)")
        }
        #expect(!result.stderr.contains("Collecting") && !result.stderr.contains("Successfully installed"), "pip's own lines go to the log")
        let log = try String(contentsOf: runtime.appendingPathComponent("setup.log"), encoding: .utf8)
        #expect(log.contains("Successfully installed"), "\(log.suffix(500))")

        // On a terminal: one line, redrawn, ending at the last step with the time.
        let tmux = ScreenTests.Tmux()
        tmux.start(harness, extra: ["PARLEY_RUNTIME_DIR=\(runtime.path)"])
        defer { tmux.run(["kill-server"]) }
        // The marker is computed by the shell, so the typed command line (which wraps at 80 columns
        // when the checkout's path is long) never contains it.
        tmux.type("PS1='$ '; \(ParleyHarness.binary) setup --force; echo SETUP-$((40+2))-DONE")
        tmux.keys("Enter")
        let screen = await tmux.waitAsync(for: "SETUP-42-DONE", seconds: 600)
        #expect(screen.contains("[4/4] finding the server binary and the model · 0:"), "\(screen)")
        #expect(screen.split(separator: "\n").filter { $0.hasPrefix("[") }.count == 1, "the progress is one line:\n\(screen)")

        // A step that fails is named, with the log.
        let other = harness.home.appendingPathComponent("runtime-2")
        let failed = try harness.run(["setup", "--python", "/nonexistent/python3"], extraEnvironment: ["PARLEY_RUNTIME_DIR": other.path], limit: 120)
        #expect(failed.status == 1)
        #expect(failed.stderr.contains("step 1 of 4") && failed.stderr.contains(other.appendingPathComponent("setup.log").path), "\(failed.stderr)")
    }

    func runtimeInstalled() throws {
        let harness = try ParleyHarness()
        defer { harness.cleanUp() }
        let runtime = LocalRuntime(paths: harness.paths, settings: LocalSettings())
        try #require(runtime.installation() != nil, "the local runtime is missing: run `swift run parley setup` (or scripts/test)")
    }

    @Test func askStreamsARealAnswerAsJSON() throws {
        try runtimeInstalled()
        let harness = try ParleyHarness()
        defer { harness.cleanUp() }
        let result = try harness.run(["ask", "--json", "--max-tokens", "24", "--temperature", "0", "What is the capital of France?"])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try JSONValue.parse(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(json["provider"]?.string == "local")
        #expect(json["model"]?.string == "smollm2")
        #expect((json["text"]?.string ?? "").contains("Paris"))
        #expect((json["usage"]?["completion_tokens"]?.int ?? 0) > 0)
        #expect((json["usage"]?["prompt_tokens"]?.int ?? 0) > 0)
        #expect(["stop", "length"].contains(json["finish_reason"]?.string ?? ""))
        #expect((json["time_to_first_token_ms"]?.double ?? 0) > 0)
    }

    @Test func askStreamsPlainTextAndStatsFromStdin() throws {
        try runtimeInstalled()
        let harness = try ParleyHarness()
        defer { harness.cleanUp() }
        let result = try harness.run(["ask", "--stats", "--max-tokens", "8"], input: "Say hello.\n")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(!result.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
        #expect(result.stderr.contains("local:smollm2"))
        #expect(result.stderr.contains("first token"))
        // SmolLM2 may finish on its own before the limit.
        let out = result.stderr.range(of: #"out (\d+) tokens"#, options: .regularExpression)
            .map { Int(result.stderr[$0].split(separator: " ")[1]) ?? 0 } ?? 0
        #expect((1...8).contains(out), "\(result.stderr)")
        #expect(result.stderr.contains("finish stop") || (out == 8 && result.stderr.contains("finish length")), "\(result.stderr)")
    }

    /// Both of llama-server's wire formats, through the engine: a streamed answer, usage and finish reason.
    @Test(arguments: ["openai", "anthropic"])
    func engineStreamsInBothWireFormats(_ format: String) async throws {
        try runtimeInstalled()
        let harness = try ParleyHarness()
        defer { harness.cleanUp() }
        let config = try ParleyConfig.parse("[providers.local]\nformat = \"\(format)\"\n", file: "test.toml")
        let engine = ChatEngine(config: config, paths: harness.paths, environment: harness.environment, executablePath: ParleyHarness.binary)
        let (ref, endpoint) = try await engine.prepare(model: "local")
        #expect(ref == ModelRef(provider: "local", model: "smollm2"))
        #expect(endpoint.format.rawValue == format)
        let request = ChatRequest(model: ref.model, system: "You are terse.", messages: [.user("Name a color.")], temperature: 0, maxTokens: 12)
        var reply = ReplyAccumulator()
        var deltas = 0
        for try await event in engine.stream(request, endpoint: endpoint) {
            if case .textDelta = event { deltas += 1 }
            reply.add(event)
        }
        #expect(deltas >= 1)
        #expect(!reply.text.isEmpty)
        let usage = try #require(reply.usage)
        #expect(usage.completionTokens > 0 && usage.completionTokens <= 12)
        #expect(usage.totalPromptTokens > 0)
        #expect(reply.finishReason == .length || reply.finishReason == .stop)
        #expect(reply.timeToFirstToken != nil)
    }

    @Test func serverIsReusedAcrossProcesses() async throws {
        try runtimeInstalled()
        let harness = try ParleyHarness()
        defer { harness.cleanUp() }
        let runtime = LocalRuntime(paths: harness.paths, settings: LocalSettings())
        let first = try await runtime.ensureServer(executable: ParleyHarness.binary)
        let second = try await runtime.ensureServer(executable: ParleyHarness.binary)
        #expect(second.reused)
        #expect(first.port == second.port)
        let state = try #require(runtime.readState())
        #expect(state.port == first.port)
        #expect(LocalRuntime.isServerProcess(state.serverPID))
    }

    /// Issue 11: the local server answers only with its key, and neither it nor the watchdog sees the
    /// API keys of the Parley process that started them.
    @Test func theServerWantsItsKeyAndItsProcessesGetNoSecrets() async throws {
        try runtimeInstalled()
        let harness = try ParleyHarness()
        defer { harness.cleanUp() }
        _ = try harness.run(["local-server", "--stop"])
        let secret = "sk-must-not-reach-children-42"
        let started = try harness.run(["ask", "--max-tokens", "4", "hi"], extraEnvironment: ["OPENAI_API_KEY": secret, "MY_SERVICE_TOKEN": secret])
        #expect(started.status == 0, "\(started.stderr)")
        let runtime = LocalRuntime(paths: harness.paths, settings: LocalSettings())
        let state = try #require(runtime.readState())
        let key = try #require(state.apiKey)
        #expect(LocalRuntime.ownsListeningPort(state.serverPID, port: state.port))
        for pid in [state.serverPID, state.watchdogPID] {
            let environ = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/environ"))
            #expect(!String(decoding: environ, as: UTF8.self).contains(secret), "pid \(pid) was given a secret")
            let cmdline = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))
            #expect(!String(decoding: cmdline, as: UTF8.self).contains(key), "the key is not on a command line others can read")
        }
        func status(_ headers: [(String, String)], path: String = "/v1/chat/completions") async throws -> Int {
            let body = #"{"model":"smollm2","messages":[{"role":"user","content":"hi"}],"max_tokens":1}"#
            // A refusal is checked with a GET: llama-server answers 401 before reading a body, and closing
            // on a request still being written read as "closed early" under load (seen in full runs).
            let spec = path.hasPrefix("/v1/models")
                ? HTTPRequestSpec(url: "http://127.0.0.1:\(state.port)\(path)", method: "GET", headers: [] + headers)
                : HTTPRequestSpec(url: "http://127.0.0.1:\(state.port)\(path)", headers: [("Content-Type", "application/json")] + headers, body: Array(body.utf8))
            // The shared pool may hold a connection to an earlier server on the same port (this test
            // stopped it): one that closes at once is tried again on a new connection (seen in a full run).
            for attempt in 1...2 {
                do {
                    let response = try await AsyncHTTPTransport.shared.send(spec, timeouts: TransportTimeouts())
                    for try await _ in response.body {}
                    return response.status
                } catch where attempt == 1 {
                    continue
                }
            }
            return 0
        }
        #expect(try await status([], path: "/v1/models") == 401, "another local user without the key is refused")
        #expect(try await status([("Authorization", "Bearer wrong")], path: "/v1/models") == 401)
        #expect(try await status([("Authorization", "Bearer \(key)")], path: "/v1/models") == 200)
        #expect(try await status([("Authorization", "Bearer \(key)")]) == 200)
        #expect(try await status([("x-api-key", key)], path: "/v1/messages") == 200, "the Anthropic format's header works too")
    }

    /// Issue 14: a 6-field schema on SmolLM2, 20 seeds. Every run ends with JSON on stdout that Parley's
    /// validator accepts, or with the documented status (3 invalid, 4 cut off) and nothing on stdout.
    @Test func schemaAnswersFromTheLocalModelAreValidOrRefused() throws {
        try runtimeInstalled()
        let harness = try ParleyHarness()
        defer { harness.cleanUp() }
        let schemaText = #"{"type":"object","properties":{"name":{"type":"string","minLength":2,"maxLength":20},"#
            + #""age":{"type":"integer","minimum":0,"maximum":120},"email":{"type":"string","pattern":"^[a-z]+@[a-z]+\\.[a-z]+$"},"#
            + #""role":{"type":"string","enum":["admin","user","guest"]},"score":{"type":"number","minimum":0,"maximum":1},"#
            + #""tags":{"type":"array","items":{"type":"string","maxLength":12},"maxItems":3}},"#
            + #""required":["name","age","email","role","score","tags"],"additionalProperties":false}"#
        let schemaFile = harness.home.appendingPathComponent("profile.json")
        try schemaText.write(to: schemaFile, atomically: true, encoding: .utf8)
        let validator = try JSONSchema(try JSONValue.parse(schemaText))
        var validFirst = 0, validAfterReask = 0, invalid = 0, truncated = 0
        for seed in 1...20 {
            let result = try harness.run(["ask", "--schema", schemaFile.path, "--seed", "\(seed)", "--temperature", "0.9",
                                          "--max-tokens", "160", "Invent a user profile for a web shop."])
            switch result.status {
            case 0:
                let value = try JSONValue.parse(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
                #expect(validator.validate(value).isEmpty, "seed \(seed) printed JSON that does not validate: \(result.stdout)")
                if result.stderr.contains("asking again") { validAfterReask += 1 } else { validFirst += 1 }
            case 3:
                #expect(result.stdout.isEmpty, "seed \(seed): nothing on stdout when invalid")
                #expect(result.stderr.contains("does not match the schema after 1 re-ask"), "\(result.stderr)")
                #expect(result.stderr.contains("  $"), "the violations are listed: \(result.stderr)")
                invalid += 1
            case 4:
                #expect(result.stdout.isEmpty)
                #expect(result.stderr.contains("cut off by the output limit"))
                truncated += 1
            default:
                Issue.record("seed \(seed): exit \(result.status): \(result.stderr)")
            }
        }
        print("schema on SmolLM2, 20 seeds: valid on the first answer \(validFirst), after one re-ask \(validAfterReask), still invalid \(invalid), cut off \(truncated)")
        #expect(validFirst + validAfterReask + invalid + truncated == 20)
    }

    /// Few-shot pairs are real turns: the request Parley builds, put through llama-server's own chat
    /// template, holds each example as a user and an assistant turn in order.
    @Test func fewShotExamplesAreTurnsInTheModelsChatTemplate() async throws {
        try runtimeInstalled()
        let harness = try ParleyHarness()
        defer { harness.cleanUp() }
        let template = try PromptTemplate(name: "math", file: harness.home.appendingPathComponent("math.toml"), text: """
        system = "Answer with a number."
        prompt = "{{ input }}"
        [[examples]]
        user = "1+1"
        assistant = "2"
        [[examples]]
        user = "2+3"
        assistant = "5"
        """)
        let rendered = try template.render(values: [:], input: "4+4")
        let request = ChatRequest(model: "smollm2", system: rendered.system, messages: try rendered.messages(file: template.file))
        let body = try JSONValue.parse(OpenAIChatFormat.makeRequest(request, baseURL: "http://x/v1", apiKey: nil, dialect: .standard).body)
        let runtime = LocalRuntime(paths: harness.paths, settings: LocalSettings())
        let server = try await runtime.ensureServer(executable: ParleyHarness.binary)
        let key = try #require(runtime.readState()?.apiKey)
        let spec = HTTPRequestSpec(url: "http://127.0.0.1:\(server.port)/apply-template", method: "POST",
                                   headers: [("Content-Type", "application/json"), ("Authorization", "Bearer \(key)")],
                                   body: Array(JSONValue.object([("messages", body["messages"] ?? [])]).serialized().utf8))
        let response = try await AsyncHTTPTransport.shared.send(spec, timeouts: TransportTimeouts())
        var bytes: [UInt8] = []
        for try await chunk in response.body { bytes += chunk.bytes }
        #expect(response.status == 200)
        let prompt = try #require(try JSONValue.parse(bytes)["prompt"]?.string)
        let turns = ["<|im_start|>system\nAnswer with a number.<|im_end|>", "<|im_start|>user\n1+1<|im_end|>", "<|im_start|>assistant\n2<|im_end|>",
                     "<|im_start|>user\n2+3<|im_end|>", "<|im_start|>assistant\n5<|im_end|>", "<|im_start|>user\n4+4<|im_end|>"]
        var position = prompt.startIndex
        for turn in turns {
            let found = prompt.range(of: turn, range: position..<prompt.endIndex)
            #expect(found != nil, "\(turn) in order in \(prompt)")
            if let found { position = found.upperBound }
        }
    }
}
