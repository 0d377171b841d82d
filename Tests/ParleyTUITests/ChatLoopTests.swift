import Foundation
import Testing
import ParleyCore
import ParleyKit
@testable import ParleyTUI
import ParleyTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A screen that keeps the last frame, for driving the chat loop in process.
final class RecordingScreen: Screen, @unchecked Sendable {
    private let lock = NSLock()
    private var dimensions: (width: Int, height: Int)
    private var last: Frame?
    private(set) var frames = 0

    init(width: Int, height: Int) { dimensions = (width, height) }

    var size: (width: Int, height: Int) { lock.withLock { dimensions } }
    func draw(_ frame: Frame) { lock.withLock { last = frame; frames += 1 } }
    func refreshSize() -> (width: Int, height: Int) { size }
    func invalidate() {}
    func setTheme(_ theme: Theme) {}
    func suspend() {}
    func resume() {}
    func suspendToShell() {}
    private(set) var copied: [String] = []
    func copyToClipboard(_ sequence: String) { lock.withLock { copied.append(sequence) } }

    func resize(width: Int, height: Int) { lock.withLock { dimensions = (width, height) } }
    var lastFrame: Frame? { lock.withLock { last } }
    var text: String { lastFrame?.grid.lines.joined(separator: "\n") ?? "" }
}

/// Issue 12: the chat loop driven by a test, without tmux: keys go in through a pipe, frames come out
/// of a recording screen, and the engine talks to a loopback provider. The same loop, reducer and
/// effects as on a terminal.
@Suite(.serialized) struct ChatLoopTests {
    final class Driver: @unchecked Sendable {
        let app: ChatApp
        let screen = RecordingScreen(width: 80, height: 20)
        let input: Int32
        let output: Int32
        private let finished = LockedFlag()
        let directory: URL

        init(baseURL: String, templates: [String: String] = [:], extraConfig: String = "") throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("parley-loop-\(UUID().uuidString)")
            let templateDirectory = directory.appendingPathComponent("config/templates")
            try FileManager.default.createDirectory(at: templateDirectory, withIntermediateDirectories: true)
            for (name, text) in templates { try text.write(to: templateDirectory.appendingPathComponent("\(name).toml"), atomically: true, encoding: .utf8) }
            let config = try ParleyConfig.parse("[providers.fake]\nbase_url = \"\(baseURL)\"\nmodels = [\"m\"]\n" + extraConfig, file: "test.toml")
            let paths = ParleyPaths(configDirectory: directory.appendingPathComponent("config"), dataDirectory: directory.appendingPathComponent("data"),
                                    runtimeDirectory: directory.appendingPathComponent("runtime"))
            let engine = ChatEngine(config: config, paths: paths, environment: [:])
            app = try ChatApp(engine: engine, model: "fake:m", system: nil, sessions: SessionStore(directory: directory.appendingPathComponent("sessions")))
            var fds: [Int32] = [0, 0]
            pipe(&fds)
            input = fds[0]
            output = fds[1]
            let thread = Thread { [app, screen, input, finished] in
                app.run(on: screen, input: input)
                finished.set()
            }
            thread.start()
        }

        func type(_ text: String) {
            var bytes = Array(text.utf8)
            _ = write(output, &bytes, bytes.count)
        }

        /// Waits until the screen shows `text`; returns the screen either way. Sleeps without blocking a
        /// thread: the engine's tasks need the few threads the concurrency pool has.
        @discardableResult
        func wait(for text: String, seconds: Double = 20) async -> String {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                let shown = screen.text
                if shown.contains(text) { return shown }
                try? await Task.sleep(for: .milliseconds(10))
            }
            return screen.text
        }

        /// A saved session of `count` alternating prompts and replies (texts from `content`), in this
        /// driver's sessions directory.
        func openLongSession(_ count: Int, content: (Int) -> String) throws -> Session {
            var session = Session(model: "fake:m")
            var parent: String?
            for n in 0..<count {
                let message = SessionMessage(parentID: parent, role: n % 2 == 0 ? .user : .assistant, content: content(n))
                session.messages.append(message)
                parent = message.id
            }
            try SessionStore(directory: directory.appendingPathComponent("sessions")).save(session)
            return session
        }

        func quit() async -> Bool {
            type("/quit\r")
            let deadline = Date().addingTimeInterval(20)
            while !finished.isSet, Date() < deadline { try? await Task.sleep(for: .milliseconds(10)) }
            close(output)
            close(input)
            try? FileManager.default.removeItem(at: directory)
            return finished.isSet
        }
    }

    /// Issue 16: a conversation grown past the model's window is refused (the default) with what to do;
    /// `/context` says how big it is; after `/context trim` the oldest messages are left out of what is
    /// sent, and the provider gets a request that fits.
    @Test func contextTrimSendsWhatFitsAfterARefusal() async throws {
        let server = try await ScriptedHTTPServer { _ in StructuredScreenTests.reply("ok.") }
        let driver = try Driver(baseURL: server.baseURL + "/v1", extraConfig: "[models.\"fake:m\"]\ncontext_window = 400\nmax_tokens = 50\n")
        await driver.wait(for: "type a message")
        let long = String(repeating: "word ", count: 100)
        for turn in 1...3 {
            driver.type("\(turn) \(long)\r")
            // This turn's request has arrived and its reply is over before the next is typed.
            let deadline = Date().addingTimeInterval(10)
            while server.requestCount < turn, Date() < deadline { try await Task.sleep(for: .milliseconds(10)) }
            await driver.wait(for: "│ idle │", seconds: 10)
        }
        #expect(server.requestCount == 3)
        driver.type("4 \(long)\r")
        let refused = await driver.wait(for: "/context trim")
        #expect(refused.contains("nothing was sent"), "\(refused)")
        #expect(server.requestCount == 3)
        driver.type("/context\r")
        let report = await driver.wait(for: "this conversation:")
        // (The note is wrapped on screen: compare with the lines joined.)
        let reportText = report.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(reportText.contains("it will not be sent: /context trim"), "\(reportText)")
        driver.type("/context trim\r")
        await driver.wait(for: "sent without its oldest messages")
        driver.type("5 \(long)\r")
        let trimmed = await driver.wait(for: "oldest messages are not sent")
        #expect(trimmed.contains("oldest messages are not sent"), "\(trimmed)")
        let deadline = Date().addingTimeInterval(5)
        while server.requestCount < 4, Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        let sent = try #require(server.requests.last.flatMap { try? JSONValue.parse(Array($0.body)) }?["messages"]?.array)
        #expect(sent.count < 9, "the oldest were left out: \(sent.count) messages")
        #expect(sent.last?["content"]?.string?.hasPrefix("5 ") == true, "the newest is sent")
        #expect(await driver.quit())
        await server.shutdown()
    }

    /// Parley's estimate of messages as a provider received them.
    static func estimate(_ messages: [JSONValue]) -> Int {
        let chat = messages.map { ChatMessage(role: Role(rawValue: $0["role"]?.string ?? "") ?? .user, content: $0["content"]?.string ?? "") }
        return TokenEstimator.estimate(ChatRequest(model: "m", messages: chat))
    }

    /// Issue 16, compact: with `[context] policy = "compact"`, the turn that would not fit first has the
    /// oldest messages summarized by the summary model (here the same scripted provider, which answers
    /// the summarizing request with a summary), then sends the summary with the system prompt and only
    /// the newer messages; the session keeps the summary, `/compact show` shows it, and a resumed
    /// session sends the summary again instead of the covered messages.
    @Test func compactSendsASummaryInPlaceOfTheOldestMessages() async throws {
        let server = try await ScriptedHTTPServer { request in
            let system = (try? JSONValue.parse(request.bodyText))?["messages"]?.array?.first?["content"]?.string ?? ""
            return StructuredScreenTests.reply(system.contains("You are compacting") ? "SUMMARY: the user wrote numbered paragraphs of words." : "ok.")
        }
        let driver = try Driver(baseURL: server.baseURL + "/v1", extraConfig: """
            [models."fake:m"]
            context_window = 400
            max_tokens = 50
            [models."fake:big"]
            context_window = 8000
            [context]
            policy = "compact"
            summary_model = "fake:big"
            keep_recent = 2
            """)
        await driver.wait(for: "type a message")
        let long = String(repeating: "word ", count: 100)
        var turn = 0
        while !server.requests.contains(where: { $0.bodyText.contains("You are compacting") }), turn < 5 {
            turn += 1
            let before = server.requestCount
            driver.type("\(turn) \(long)\r")
            let deadline = Date().addingTimeInterval(10)
            while server.requestCount == before, Date() < deadline { try await Task.sleep(for: .milliseconds(10)) }
            await driver.wait(for: "│ idle │", seconds: 10)
        }
        let summarizing = try #require(server.requests.firstIndex(where: { $0.bodyText.contains("You are compacting") }), "no summary was asked for")
        await driver.wait(for: "compacted:")
        let deadline = Date().addingTimeInterval(10)
        while server.requestCount <= summarizing + 1, Date() < deadline { try await Task.sleep(for: .milliseconds(10)) }
        let sent = try #require(try? JSONValue.parse(server.requests[summarizing + 1].bodyText))
        let messages = try #require(sent["messages"]?.array)
        #expect(messages.first?["role"]?.string == "system")
        #expect(messages.first?["content"]?.string?.contains("SUMMARY: the user wrote numbered paragraphs") == true)
        #expect(messages.last?["content"]?.string?.hasPrefix("\(turn) ") == true, "the newest is sent")
        #expect(!messages.contains { $0["content"]?.string?.hasPrefix("1 word") == true }, "the first is in the summary, not sent")
        #expect(Self.estimate(messages) <= 400 - 50, "what is sent fits the window after the output limit")
        // The summarizing request holds the older messages as a transcript, to the summary model.
        #expect(server.requests[summarizing].bodyText.contains("User: 1 word"))
        #expect(server.requests[summarizing].bodyText.contains("\"model\":\"big\""))
        driver.type("/compact show\r")
        let shown = await driver.wait(for: "sent in their place")
        #expect(shown.contains("SUMMARY: the user wrote"), "\(shown)")
        await driver.wait(for: "│ idle │", seconds: 10)

        // The file keeps every message and the summary; opened again, the summary is what is sent.
        let store = SessionStore(directory: driver.directory.appendingPathComponent("sessions"))
        let saved = try #require(store.list().sessions.first)
        let summary = try #require(saved.summaries?.last)
        #expect(summary.content.hasPrefix("SUMMARY:") && summary.summaryThrough != nil && (summary.summaryCount ?? 0) >= 2)
        #expect(saved.messages.filter { $0.role == .user }.count == turn)
        // Nothing that is sent is hidden: the export shows the summary, and where it stands.
        #expect(saved.markdown().contains("## Summary by fake:big · sent in place of the messages up to “"), "\(saved.markdown().suffix(400))")
        var state = ChatState(width: 80, height: 20, model: "fake:m")
        _ = reduce(&state, .openSession(saved, resumed: true))
        #expect(state.summary?.text == summary.content)
        let (resent, context) = state.sendContext()
        #expect(context.summary == summary.content)
        #expect(resent.count == saved.chatMessages.count - (summary.summaryCount ?? 0))
        #expect(await driver.quit())
        await server.shutdown()
    }

    /// Issue 16: a 10,000-message session opened with an 8k-window model sends a request that fits: the
    /// oldest are trimmed (`context = "trim"` for the model), the newest prompt and a pinned one are sent.
    @Test func aTenThousandMessageSessionSendsWhatFitsAnEightKModel() async throws {
        let server = try await ScriptedHTTPServer { _ in StructuredScreenTests.reply("ok.") }
        let driver = try Driver(baseURL: server.baseURL + "/v1", extraConfig: """
            [models."fake:m"]
            context_window = 8192
            max_tokens = 512
            context = "trim"
            """)
        var session = try driver.openLongSession(10_000) { "message \($0): " + String(repeating: "lorem ipsum ", count: 10) }
        session.messages[2].pinned = true
        session.messages[2].content = "PINNED remember the code word"
        try SessionStore(directory: driver.directory.appendingPathComponent("sessions")).save(session)
        await driver.wait(for: "type a message")
        driver.type("/load \(session.id)\r")
        await driver.wait(for: "(10000 messages)")
        driver.type("the newest question\r")
        let deadline = Date().addingTimeInterval(20)
        while server.requestCount < 1, Date() < deadline { try await Task.sleep(for: .milliseconds(10)) }
        let sent = try #require(server.requests.first.flatMap { try? JSONValue.parse($0.bodyText) })
        let messages = try #require(sent["messages"]?.array)
        #expect(Self.estimate(messages) <= 8192 - 512, "fits the window after the output limit")
        #expect(messages.count > 10 && messages.count < 1000, "\(messages.count)")
        #expect(messages.last?["content"]?.string == "the newest question")
        #expect(messages.contains { $0["content"]?.string == "PINNED remember the code word" }, "the pinned message is kept")
        #expect(await driver.wait(for: "oldest messages are not sent").contains("oldest messages are not sent"))
        #expect(await driver.quit())
        await server.shutdown()
    }

    /// Found by an attack: a turn stopped with Esc before its prompt was saved reported its ids late, and
    /// they landed on the next turn's entries, so pinning "BBB" pinned "AAA". A large session makes the
    /// save slow enough to hit that every time.
    @Test func aStoppedTurnsLateIdsNeverLandOnTheNextTurn() async throws {
        let server = try await ScriptedHTTPServer { _ in StructuredScreenTests.reply("ok.") }
        let driver = try Driver(baseURL: server.baseURL + "/v1")
        let session = try driver.openLongSession(20_000) { "message \($0) " + String(repeating: "x", count: 1000) }
        let store = SessionStore(directory: driver.directory.appendingPathComponent("sessions"))
        await driver.wait(for: "type a message")
        driver.type("/load \(session.id)\r")
        await driver.wait(for: "(20000 messages)", seconds: 30)
        driver.type("AAA\r")
        try await Task.sleep(for: .milliseconds(20))
        driver.type("\u{1B}")
        try await Task.sleep(for: .milliseconds(150))
        driver.type("BBB\r")
        let deadline = Date().addingTimeInterval(30)
        while server.requestCount < 1, Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        await driver.wait(for: "│ idle │", seconds: 30)
        try await Task.sleep(for: .milliseconds(500))
        // Pick "BBB" (Alt-↑ picks the reply, ↑ the prompt) and pin it.
        driver.type("\u{1B}[1;3A")
        try await Task.sleep(for: .milliseconds(100))
        driver.type("\u{1B}[A")
        try await Task.sleep(for: .milliseconds(100))
        driver.type("p")
        await driver.wait(for: "pinned: always sent")
        driver.type("\u{1B}")
        let saved = try await {
            let until = Date().addingTimeInterval(20)
            while Date() < until {
                if let file = try? store.load(store.url(for: session.id)), file.messages.contains(where: { $0.pinned == true }) { return file }
                try await Task.sleep(for: .milliseconds(100))
            }
            return try store.load(store.url(for: session.id))
        }()
        let pinned = saved.messages.filter { $0.pinned == true }.map(\.content)
        #expect(pinned == ["BBB"], "\(pinned)")
        #expect(await driver.quit())
        await server.shutdown()
    }

    /// Issue 16: the status bar shows the size of what is sent as soon as it is sent (estimated), not
    /// "ctx 0" until usage arrives (this provider sends none).
    @Test func theStatusBarCountsWhatIsSentBeforeAnyUsage() async throws {
        let server = try await ScriptedHTTPServer { _ in StructuredScreenTests.reply("Fine.") }
        let driver = try Driver(baseURL: server.baseURL + "/v1", extraConfig: "[models.\"fake:m\"]\ncontext_window = 200\n")
        await driver.wait(for: "type a message")
        // Wide enough for the status bar to keep its ctx field.
        driver.screen.resize(width: 200, height: 20)
        driver.app.screenResized()
        await driver.wait(for: "ctx 0/0k")
        driver.type(String(repeating: "word ", count: 60) + "\r")
        let shown = await driver.wait(for: "Fine.")
        let percent = shown.firstMatch(of: /ctx (\d+)%/).flatMap { Int($0.1) } ?? 0
        #expect(percent >= 20, "60 words of 200 tokens: \(shown)")
        #expect(await driver.quit())
        await server.shutdown()
    }

    @Test func typingSendsAndTheReplyStreamsOntoTheScreen() async throws {
        let server = try await FaultServer(format: .openAI, script: [.ok])
        let driver = try Driver(baseURL: server.providerBaseURL)
        #expect(await driver.wait(for: "type a message").contains("type a message"))
        driver.type("héllo there")
        #expect(await driver.wait(for: "› héllo there").contains("› héllo there"), "typed text is on the input line")
        driver.type("\r")
        let replied = await driver.wait(for: FaultServer.replyText)
        #expect(replied.contains("▌ you · ") && replied.contains("héllo there"))
        #expect(replied.contains(FaultServer.replyText))
        #expect(await driver.wait(for: "│ idle │").contains("│ idle │"))
        #expect(server.requests.first?.bodyText.contains("héllo there") == true)
        #expect(await driver.quit(), "/quit ends the loop")
        await server.shutdown()
    }

    @Test func escStopsAStreamingReplyAndKeepsItsText() async throws {
        let words = (1...200).map { " w\($0)" }
        let stream = FaultServer.events(.openAI, words: words)
        let server = try await ScriptedHTTPServer { _ in
            var steps: [ScriptedHTTPServer.Step] = [.head(status: 200, headers: [("Content-Type", "text/event-stream")]), .write(Array(stream.open.joined().utf8))]
            for word in stream.words { steps += [.write(Array(word.utf8)), .pause(.milliseconds(50))] }
            return steps + [.write(Array((stream.close.joined() + stream.end).utf8)), .end]
        }
        let driver = try Driver(baseURL: server.baseURL + "/v1")
        await driver.wait(for: "type a message")
        driver.type("count\r")
        #expect(await driver.wait(for: " w3").contains(" w3"))
        driver.type("\u{1B}")
        let stopped = await driver.wait(for: "· stopped")
        #expect(stopped.contains("· stopped"), "Esc stops the reply:\n\(stopped)")
        let later = await driver.wait(for: " w200", seconds: 1)
        #expect(!later.contains(" w200"), "nothing more arrives")
        #expect(stopped.contains(" w1"), "the text that arrived stays")
        #expect(await driver.quit())
        await server.shutdown()
    }

    @Test func aResizeRedrawsAtTheNewSize() async throws {
        let server = try await FaultServer(format: .openAI, script: [.ok])
        let driver = try Driver(baseURL: server.providerBaseURL)
        await driver.wait(for: "type a message")
        #expect(driver.screen.lastFrame?.grid.width == 80)
        driver.screen.resize(width: 44, height: 12)
        driver.app.screenResized()
        let deadline = Date().addingTimeInterval(5)
        while driver.screen.lastFrame?.grid.width != 44, Date() < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(driver.screen.lastFrame?.grid.width == 44)
        #expect(driver.screen.lastFrame?.grid.height == 12)
        #expect(await driver.quit())
        await server.shutdown()
    }
}

/// Issue 14 on the screen: /schema asks for JSON and shows whether each reply validated, pretty-printed;
/// /template asks for a missing variable, then sets up the conversation and drafts the prompt.
@Suite(.serialized) struct StructuredScreenTests {
    static func reply(_ text: String) -> [ScriptedHTTPServer.Step] {
        let chunk = JSONValue.object([("choices", [["index": 0, "delta": ["content": .string(text)]]])]).serialized()
        return ScriptedHTTPServer.sse(Array("data: \(chunk)\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n".utf8))
    }

    @Test func schemaRepliesAreCheckedAndShownPretty() async throws {
        let replies = [Self.reply(#"{"name":"Ada","score":0.5}"#), Self.reply(#"{"name":"Ada","score":"high"}"#)]
        let count = LockedCount()
        let server = try await ScriptedHTTPServer { _ in replies[min(count.next(), 1)] }
        let driver = try ChatLoopTests.Driver(baseURL: server.baseURL + "/v1")
        await driver.wait(for: "type a message")
        driver.type("/schema name, score float\r")
        #expect(await driver.wait(for: "schema set").contains("schema set"))
        driver.type("rate Ada\r")
        let valid = await driver.wait(for: "✓ valid JSON for the schema")
        #expect(valid.contains("✓ valid JSON for the schema"), "\(valid)")
        #expect(valid.contains(#""score": 0.5"#), "pretty-printed:\n\(valid)")
        let body = try JSONValue.parse(try #require(server.requests.first).bodyText)
        #expect(body["response_format"]?["json_schema"]?["schema"]?["required"] == ["name", "score"])
        driver.type("again\r")
        let invalid = await driver.wait(for: "does not match the schema")
        #expect(invalid.contains("$.score: \"high\" is not of type"), "\(invalid)")
        driver.type("/schema off\r")
        #expect(await driver.wait(for: "schema off").contains("schema off"))
        #expect(await driver.quit())
        await server.shutdown()
    }

    @Test func aTemplateAsksForWhatItNeedsThenDraftsThePrompt() async throws {
        let server = try await ScriptedHTTPServer { _ in Self.reply("Fine.") }
        let template = """
        system = "You review {{ language }}."
        prompt = "Review this {{ language }} code:"
        [vars.language]
        required = true
        description = "the snippet's language"
        [[examples]]
        user = "x = 1"
        assistant = "Fine."
        """
        let driver = try ChatLoopTests.Driver(baseURL: server.baseURL + "/v1", templates: ["rev": template])
        await driver.wait(for: "type a message")
        driver.type("/templ\t")
        #expect(await driver.wait(for: "› /template").contains("› /template"), "Tab completes the command")
        driver.type("r\t")
        #expect(await driver.wait(for: "› /template rev").contains("› /template rev"), "Tab completes the name")
        driver.type("\r")
        let asked = await driver.wait(for: "language=")
        #expect(asked.contains("needs language (the snippet's language)"), "\(asked)")
        #expect(asked.contains("› /template rev language="))
        driver.type("Swift\r")
        let applied = await driver.wait(for: "› Review this Swift code:")
        #expect(applied.contains("1 example"), "\(applied)")
        driver.type(" let x = 1\r")
        #expect(await driver.wait(for: "Fine.", seconds: 10).contains("Fine."))
        let body = try JSONValue.parse(try #require(server.requests.first).bodyText)
        let messages = try #require(body["messages"]?.array)
        #expect(messages.map { $0["role"]?.string ?? "" } == ["system", "user", "assistant", "user"])
        #expect(messages[0]["content"]?.string == "You review Swift.")
        #expect(messages[3]["content"]?.string == "Review this Swift code: let x = 1")
        #expect(await driver.quit())
        await server.shutdown()
    }
}

/// Issue 17 on the screen: a conversation too large for the model is refused before anything is sent.
@Suite(.serialized) struct OversizeScreenTests {
    @Test func anOversizedMessageIsRefusedWithNothingSent() async throws {
        let server = try await ScriptedHTTPServer { _ in StructuredScreenTests.reply("never") }
        let driver = try ChatLoopTests.Driver(baseURL: server.baseURL + "/v1", extraConfig: "[models.\"fake:m\"]\ncontext_window = 300\n")
        await driver.wait(for: "type a message")
        driver.type(String(repeating: "a long line of words to fill the window ", count: 60) + "\r")
        let refused = await driver.wait(for: "nothing was sent")
        #expect(refused.contains("guard: this request is about"), "\(refused)")
        #expect(server.requestCount == 0)
        #expect(await driver.quit())
        await server.shutdown()
    }
}

final class LockedCount: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func next() -> Int { lock.withLock { value += 1; return value - 1 } }
}

final class LockedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}

