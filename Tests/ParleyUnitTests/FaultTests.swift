import Foundation
import Synchronization
import Testing
import ParleyCore
import ParleyKit
import ParleyProviders
import ParleyTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A scratch Parley: config text with providers pointing at fault servers, its own data directory,
/// retries without real sleeping (the delays asked for are kept).
final class Rig: Sendable {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("parley-faults-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    let engine: ChatEngine
    let delays = DelayLog()

    init(config: String) throws {
        let parsed = try ParleyConfig.parse(config, file: "test.toml")
        let paths = ParleyPaths(configDirectory: directory.appendingPathComponent("config"), dataDirectory: directory.appendingPathComponent("data"),
                                runtimeDirectory: directory.appendingPathComponent("runtime"))
        let delays = self.delays
        engine = ChatEngine(config: parsed, paths: paths, environment: ["FAULTY_KEY": "sk-test", "OTHER_KEY": "sk-other"],
                            provider: ChatClient(sleep: { seconds in delays.append(seconds) }, random: { 0 }))
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    static func provider(_ name: String, _ server: FaultServer, extra: String = "") -> String {
        """
        [providers.\(name)]
        base_url = "\(server.providerBaseURL)"
        format = "\(server.format == .openAI ? "openai" : "anthropic")"
        api_key_env = "\(name == "faulty" ? "FAULTY_KEY" : "OTHER_KEY")"
        models = ["m"]
        first_token_timeout = 20
        idle_timeout = 20
        \(extra)

        """
    }

    struct Run {
        var outcome: RecordedTurn.Outcome
        var events: [TurnEvent]
        var session: Session
        var reply: SessionMessage? { session.messages.last { $0.role == .assistant } }
        var retries: Int { events.filter { if case .chat(.retrying) = $0 { return true } else { return false } }.count }
        /// The events in short: `text` for each text delta (adjacent ones folded), the rest by name.
        var kinds: [String] {
            var out: [String] = []
            for event in events {
                let kind: String
                switch event {
                case .chat(.textDelta): kind = "text"
                case let .chat(.retrying(attempt, _, _, reason)): kind = "retry \(attempt) \(reason)"
                case let .chat(.finish(reason)): kind = "finish \(reason.rawValue)"
                case .chat(.usage): kind = "usage"
                case .chat: kind = "other"
                case let .sending(ref): kind = "sending \(ref)"
                case let .fallingBack(from, to, _): kind = "fallback \(from) → \(to)"
                case .cacheHit: kind = "cache hit"
                case let .trimmed(ref, dropped): kind = "trimmed \(ref) \(dropped)"
                case let .cost(cost): kind = "cost \(cost.map { String($0) } ?? "?")"
                case .firstToken, .finished: continue  // checked on their own: every turn has them
                }
                if kind == "text", out.last == "text" { continue }
                out.append(kind)
            }
            return out
        }
    }

    /// One prompt through the recorded turn, as the screen sends it; the session is read back from disk.
    func ask(_ prompt: String = "hello", model: String = "faulty:m", options: TurnOptions = TurnOptions(), request: ChatRequest? = nil) async throws -> Run {
        let store = SessionStore(directory: directory.appendingPathComponent("sessions"))
        let recorder = SessionRecorder(store: store, session: Session(model: model))
        var events: [TurnEvent] = []
        let outcome = await RecordedTurn.run(engine: engine, recorder: recorder, userText: prompt,
                                             request: request ?? ChatRequest(model: "m", messages: [.user(prompt)]), model: try engine.config.resolve(model),
                                             options: options) { event in events.append(event) }
        recorder.waitForWrites()
        let id = recorder.snapshot.id
        recorder.close()
        let session = try store.load(store.directory.appendingPathComponent("\(id).json"))
        return Run(outcome: outcome, events: events, session: session)
    }

    func ledger() throws -> [Ledger.Entry] { try Ledger(path: engine.stores.ledgerPath).entries() }
}

/// The waits the retry policy asked for, in order.
final class DelayLog: @unchecked Sendable {
    private var log: [Double] = []
    private let lock = NSLock()
    func append(_ value: Double) { lock.withLock { log.append(value) } }
    var values: [Double] { lock.withLock { log } }
}

extension RecordedTurn.Outcome {
    var line: String? { if case let .failed(line) = self { return line } else { return nil } }
}

/// Every fault the fault server can play, in both wire formats: attempts made, the outcome, the line
/// the user sees, the events, and what the session file holds afterwards.
@Suite struct FaultTests {
    static let formats: [FaultServer.Format] = [.openAI, .anthropic]

    func rig(_ script: [FaultServer.Fault], format: FaultServer.Format, extra: String = "") async throws -> (FaultServer, Rig) {
        let server = try await FaultServer(format: format, script: script)
        return (server, try Rig(config: Rig.provider("faulty", server, extra: extra)))
    }

    func expectPromptSaved(_ run: Rig.Run) {
        #expect(run.session.messages.first?.role == .user)
        #expect(run.session.messages.first?.content == "hello")
    }

    /// Issue 12: a turn is folded once. The session, the ledger and the turn's `.finished` event report
    /// the same time to first token and duration, because they read the same fold.
    @Test(arguments: formats) func theSessionAndTheLedgerReadTheTurnsOneFold(format: FaultServer.Format) async throws {
        let (server, rig) = try await rig([.drip], format: format)
        let run = try await rig.ask()
        await server.shutdown()
        guard case let .finished(result)? = run.events.last else { Issue.record("the last event is not .finished: \(run.events.last.map { "\($0)" } ?? "none")"); return }
        let firstTokens = run.events.compactMap { if case let .firstToken(ms) = $0 { return ms } else { return nil } }
        #expect(firstTokens == [try #require(result.timeToFirstTokenMs)])
        #expect(run.reply?.timeToFirstTokenMs == result.timeToFirstTokenMs)
        #expect(run.reply?.durationMs == result.durationMs)
        #expect(run.reply?.content == result.reply.text)
        let row = try #require(try Ledger(path: rig.engine.stores.ledgerPath).entries().last)
        #expect(row.ttftMs == result.timeToFirstTokenMs)
        #expect(row.durationMs == result.durationMs)
        #expect(row.tokensPerSecond == result.tokensPerSecond)
    }

    @Test(arguments: formats) func aNormalReply(format: FaultServer.Format) async throws {
        let (server, rig) = try await rig([.ok], format: format)
        let run = try await rig.ask()
        await server.shutdown()
        #expect(server.requestCount == 1)
        #expect(run.outcome == .complete)
        #expect(run.reply?.content == FaultServer.replyText)
        #expect(run.reply?.status == .complete)
        #expect(run.reply?.usage?.completionTokens == 6)
        // Anthropic reports input usage in message_start, before any text.
        let opening = format == .anthropic ? ["usage", "cost ?"] : []
        #expect(run.kinds == ["sending faulty:m"] + opening + ["text", "finish stop", "usage", "cost ?", "cost ?"])
    }

    @Test(arguments: formats) func rateLimitedTwiceWithRetryAfterThenAnswered(format: FaultServer.Format) async throws {
        let (server, rig) = try await rig([.rateLimited(retryAfter: "2", retryAfterMs: nil), .rateLimited(retryAfter: nil, retryAfterMs: "150"), .ok], format: format)
        let run = try await rig.ask()
        await server.shutdown()
        #expect(server.requestCount == 3)
        #expect(rig.delays.values == [2, 0.15])
        #expect(run.retries == 2)
        #expect(run.events.contains(.chat(.retrying(attempt: 1, of: 2, delaySeconds: 2, reason: "rate limited"))))
        #expect(run.kinds.prefix(4) == ["sending faulty:m", "retry 1 rate limited", "retry 2 rate limited", format == .anthropic ? "usage" : "text"])
        #expect(run.outcome == .complete)
        #expect(run.reply?.content == FaultServer.replyText)
        #expect(try rig.ledger().map(\.attempts) == [3])
    }

    @Test(arguments: [500, 502, 503, 529]) func serverErrorsAreRetriedTwiceThenNamed(status: Int) async throws {
        for format in Self.formats {
            let (server, rig) = try await rig([.status(status, message: "upstream trouble", headers: [])], format: format)
            let run = try await rig.ask()
            await server.shutdown()
            #expect(server.requestCount == 3)
            #expect(rig.delays.values == [0.5, 1.0])
            let line = try #require(run.outcome.line)
            #expect(line.hasPrefix("faulty: HTTP \(status): upstream trouble"))
            #expect(line.contains("try again shortly or pick another model"))
            expectPromptSaved(run)
            #expect(run.reply?.status == .error)
            #expect(run.reply?.content == "")
            #expect(run.reply?.error == line)
            #expect(try rig.ledger().map(\.outcome) == [.error])
            #expect(run.kinds == ["sending faulty:m", "retry 1 \(status == 529 ? "overloaded" : "HTTP \(status)")", "retry 2 \(status == 529 ? "overloaded" : "HTTP \(status)")", "cost 0.0"])
        }
    }

    @Test(arguments: formats) func aRefusedKeyIsNotRetriedAndNamesTheVariable(format: FaultServer.Format) async throws {
        let (server, rig) = try await rig([.status(401, message: "invalid x-api-key", headers: [])], format: format)
        let run = try await rig.ask()
        await server.shutdown()
        #expect(server.requestCount == 1)
        #expect(run.outcome.line == "faulty: HTTP 401: invalid x-api-key; check the key in FAULTY_KEY, or pick another model with --model or /model")
        expectPromptSaved(run)
    }

    @Test(arguments: formats) func aContextOverflowSaysWhatToDo(format: FaultServer.Format) async throws {
        let (server, rig) = try await rig([.status(400, message: "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens.", headers: [])], format: format)
        let run = try await rig.ask()
        await server.shutdown()
        #expect(server.requestCount == 1)
        let line = try #require(run.outcome.line)
        #expect(line.contains("8192 tokens"))
        #expect(line.contains("this conversation is about 10 tokens (estimated); /new starts a fresh one"))
    }

    @Test func shouldRetryHeaderOverridesTheStatus() async throws {
        let (refusing, first) = try await rig([.status(503, message: "no", headers: [("x-should-retry", "false")])], format: .openAI)
        _ = try await first.ask()
        await refusing.shutdown()
        #expect(refusing.requestCount == 1)
        let (insisting, second) = try await rig([.status(400, message: "try me again", headers: [("x-should-retry", "true")])], format: .anthropic)
        _ = try await second.ask()
        await insisting.shutdown()
        #expect(insisting.requestCount == 3)
    }

    @Test(arguments: formats) func aResetBeforeTheHeadIsRetried(format: FaultServer.Format) async throws {
        let (server, rig) = try await rig([.resetBeforeHead, .ok], format: format)
        let run = try await rig.ask()
        await server.shutdown()
        #expect(server.requestCount == 2)
        #expect(run.outcome == .complete)
        #expect(run.reply?.content == FaultServer.replyText)
    }

    @Test(arguments: formats) func aResetMidStreamKeepsThePartialReply(format: FaultServer.Format) async throws {
        let (server, rig) = try await rig([.resetMidStream, .ok], format: format)
        let run = try await rig.ask()
        await server.shutdown()
        #expect(server.requestCount == 1)
        let line = try #require(run.outcome.line)
        #expect(line.hasPrefix("faulty: "))
        #expect(line.contains("/retry asks again"))
        expectPromptSaved(run)
        #expect(run.reply?.content == "Hello from the")
        #expect(run.reply?.status == .error)
        let opening = format == .anthropic ? ["usage", "cost ?"] : []
        #expect(run.kinds == ["sending faulty:m"] + opening + ["text", "cost ?"])
    }

    // Timeouts here are per model ([models."faulty:m"]), and stalls far longer than them, so a loaded
    // machine cannot turn a stall into a pass or an answer into a timeout.
    @Test(arguments: formats) func aStallBeforeTheFirstByteTimesOutAndIsRetried(format: FaultServer.Format) async throws {
        let (server, rig) = try await rig([.stallBeforeFirstByte(.seconds(60)), .stallBeforeFirstByte(.seconds(60)), .ok], format: format,
                                          extra: "[models.\"faulty:m\"]\nfirst_token_timeout = 4")
        let run = try await rig.ask()
        await server.shutdown()
        #expect(server.requestCount == 3)
        #expect(run.events.contains(.chat(.retrying(attempt: 1, of: 2, delaySeconds: 0.5, reason: "timed out"))))
        #expect(run.outcome == .complete)
    }

    @Test(arguments: formats) func aStallMidStreamEndsTheReplyWithItsTextKept(format: FaultServer.Format) async throws {
        let (server, rig) = try await rig([.stallMidStream(.seconds(60))], format: format, extra: "[models.\"faulty:m\"]\nidle_timeout = 1")
        let started = ContinuousClock.now
        let run = try await rig.ask()
        let elapsed = ContinuousClock.now - started
        // The timeout closed the connection: the server sees it go while its script is still paused.
        for _ in 0..<100 where server.clientClosures.isEmpty { try await Task.sleep(for: .milliseconds(20)) }
        #expect(server.clientClosures.count == 1)
        await server.shutdown()
        #expect(server.requestCount == 1)
        #expect(elapsed < .seconds(30))
        #expect(run.outcome.line?.contains("the reply stalled: nothing arrived for 1 s") == true)
        #expect(run.reply?.content == "Hello from the")
        #expect(run.reply?.status == .error)
    }

    @Test(arguments: formats) func oneByteAtATime(format: FaultServer.Format) async throws {
        let (server, rig) = try await rig([.drip], format: format)
        let run = try await rig.ask()
        await server.shutdown()
        #expect(run.outcome == .complete)
        #expect(run.reply?.content == FaultServer.replyText)
    }

    @Test(arguments: formats) func aMalformedChunkEndsTheReplyWithItsTextKept(format: FaultServer.Format) async throws {
        let (server, rig) = try await rig([.malformedChunk], format: format)
        let run = try await rig.ask()
        await server.shutdown()
        #expect(server.requestCount == 1)
        #expect(run.outcome.line?.hasPrefix("faulty: ") == true)
        #expect(run.reply?.content == "Hello from the")
        #expect(run.reply?.status == .error)
    }

    @Test(arguments: formats) func anInStreamErrorAfterTextKeepsIt(format: FaultServer.Format) async throws {
        let (server, rig) = try await rig([.inStreamError(message: "Overloaded")], format: format)
        let run = try await rig.ask()
        await server.shutdown()
        #expect(server.requestCount == 1)
        #expect(run.outcome.line?.contains("Overloaded") == true)
        #expect(run.reply?.content == "Hello from the")
    }

    @Test(arguments: formats) func aMissingTerminatorIsACutOffReply(format: FaultServer.Format) async throws {
        let (server, rig) = try await rig([.noTerminator], format: format)
        let run = try await rig.ask()
        await server.shutdown()
        #expect(run.outcome.line?.contains("the reply was cut off") == true)
        #expect(run.reply?.content == FaultServer.replyText)
        #expect(run.reply?.status == .error)
    }

    @Test func aFiftyMegabyteReply() async throws {
        let (server, rig) = try await rig([.huge(bytes: 50_000_000)], format: .openAI)
        let run = try await rig.ask()
        await server.shutdown()
        #expect(run.outcome == .complete)
        let words = (run.reply?.content.utf8.count ?? 0) / 8
        #expect(words > 700_000)
        #expect(run.reply?.content.hasPrefix("abcdefg abcdefg") == true)
    }

    @Test func aMissingKeySendsNothing() async throws {
        let server = try await FaultServer(format: .openAI, script: [.ok])
        let rig = try Rig(config: Rig.provider("faulty", server).replacingOccurrences(of: "FAULTY_KEY", with: "UNSET_KEY")
            .replacingOccurrences(of: "[providers.faulty]", with: "[providers.openai]"))
        let run = try await rig.ask(model: "openai:m")
        await server.shutdown()
        #expect(server.requestCount == 0)
        #expect(run.outcome.line == "openai: UNSET_KEY is not set; export it or pick another model with --model or /model")
        expectPromptSaved(run)
    }
}

/// Fallback along the configured chain.
@Suite struct FallbackTests {
    @Test func rateLimitedTwiceThenTheNextModelAnswers() async throws {
        let first = try await FaultServer(format: .openAI, script: [.rateLimited(retryAfter: "0", retryAfterMs: nil)])
        let second = try await FaultServer(format: .anthropic, script: [.ok])
        let rig = try Rig(config: """
            fallback = ["other:m"]
            \(Rig.provider("faulty", first, extra: "max_retries = 1"))
            \(Rig.provider("other", second))
            """)
        let run = try await rig.ask()
        await first.shutdown()
        await second.shutdown()
        #expect(first.requestCount == 2)
        #expect(second.requestCount == 1)
        #expect(run.outcome == .complete)
        let fell = run.events.compactMap { event -> String? in
            if case let .fallingBack(from, to, reason) = event { return "\(from) → \(to): \(reason)" }
            return nil
        }
        #expect(fell == ["faulty:m → other:m: faulty: HTTP 429: Rate limit reached; slow down; rate limited; wait a moment, or pick another model with --model or /model"])
        let reply = try #require(run.reply)
        #expect(reply.provider == "other")
        #expect(reply.content == FaultServer.replyText)
        #expect(reply.failedAttempts == [.init(model: "faulty:m", error: String(fell[0].split(separator: ": ", maxSplits: 1)[1]))])
        let rows = try rig.ledger()
        #expect(rows.map(\.outcome) == [.error, .ok])
        #expect(rows.map(\.attempts) == [2, 1])
        #expect(rows[0].error == "http 429")
        #expect(rows[0].cost == 0)  // unpriced model, but a refused request is not billed
        #expect(rows[1].fallbackFrom == "faulty:m")
        // The second model got the same conversation.
        #expect(second.requests.first?.bodyText.contains("hello") == true)
        // The Markdown export says who answered and who failed first.
        let markdown = run.session.markdown()
        #expect(markdown.contains("## other:m · "))
        #expect(markdown.contains("> faulty:m failed first: faulty: HTTP 429: Rate limit reached; slow down"))
    }

    /// Issue 16: a fallback whose window is smaller than the conversation gets the newest messages that
    /// fit it (the turn says how many were left out); one too small even for the newest is passed over.
    @Test func aFallbackWithASmallerWindowGetsWhatFitsIt() async throws {
        let first = try await FaultServer(format: .openAI, script: [.status(503, message: "down", headers: [])])
        let second = try await FaultServer(format: .openAI, script: [.ok])
        let rig = try Rig(config: """
            fallback = ["tiny:m", "other:m"]
            \(Rig.provider("faulty", first, extra: "max_retries = 0"))
            \(Rig.provider("tiny", second))
            \(Rig.provider("other", second))
            [models."tiny:m"]
            context_window = 45
            max_tokens = 40
            [models."other:m"]
            context_window = 400
            max_tokens = 100
            """)
        let words = String(repeating: "word ", count: 60)
        let history: [ChatMessage] = (0..<8).map { $0 % 2 == 0 ? .user("\($0) \(words)") : .assistant("\($0) \(words)") }
        let newest = "the newest question, with a few more words in it than five tokens"
        let run = try await rig.ask(newest, request: ChatRequest(model: "m", messages: history + [.user(newest)]))
        await first.shutdown()
        await second.shutdown()
        #expect(run.outcome == .complete)
        #expect(second.requestCount == 1, "tiny:m was passed over, other:m answered")
        let trimmed = run.events.compactMap { event -> String? in
            if case let .trimmed(model, dropped) = event { return "\(model) \(dropped)" }
            return nil
        }
        #expect(trimmed.count == 1 && trimmed[0].hasPrefix("other:m "), "\(trimmed)")
        let sent = try #require(second.requests.first.flatMap { try? JSONValue.parse($0.bodyText) }?["messages"]?.array)
        #expect(sent.count < 9 && sent.last?["content"]?.string == newest)
        #expect(run.events.contains { if case .fallingBack(_, let to, let reason) = $0 { return to.description == "other:m" && reason.contains("tiny:m") } else { return false } })
    }

    @Test func anOverloadEventBeforeAnyTextIsNotRetriedButFallsBack() async throws {
        let first = try await FaultServer(format: .anthropic, script: [.inStreamErrorFirst(message: "Overloaded")])
        let second = try await FaultServer(format: .openAI, script: [.ok])
        let rig = try Rig(config: "fallback = [\"other:m\"]\n" + Rig.provider("faulty", first) + Rig.provider("other", second))
        let run = try await rig.ask()
        await first.shutdown()
        await second.shutdown()
        #expect(first.requestCount == 1)
        #expect(second.requestCount == 1)
        #expect(run.outcome == .complete)
        #expect(run.reply?.failedAttempts?.first?.error.contains("Overloaded") == true)
    }

    @Test func aRequestTheProviderRejectsDoesNotFallBack() async throws {
        let first = try await FaultServer(format: .openAI, script: [.status(400, message: "bad parameter", headers: [])])
        let second = try await FaultServer(format: .openAI, script: [.ok])
        let rig = try Rig(config: "fallback = [\"other:m\"]\n" + Rig.provider("faulty", first) + Rig.provider("other", second))
        let run = try await rig.ask()
        await first.shutdown()
        await second.shutdown()
        #expect(second.requestCount == 0)
        #expect(run.outcome.line?.contains("bad parameter") == true)
    }

    @Test func aReplyThatHasStartedDoesNotFallBack() async throws {
        let first = try await FaultServer(format: .openAI, script: [.resetMidStream])
        let second = try await FaultServer(format: .openAI, script: [.ok])
        let rig = try Rig(config: "fallback = [\"other:m\"]\n" + Rig.provider("faulty", first) + Rig.provider("other", second))
        let run = try await rig.ask()
        await first.shutdown()
        await second.shutdown()
        #expect(second.requestCount == 0)
        #expect(run.reply?.content == "Hello from the")
    }

    @Test func everyModelFailingEndsWithTheLastOnesLineAndRecordsTheOthers() async throws {
        let first = try await FaultServer(format: .openAI, script: [.status(503, message: "down", headers: [])])
        let second = try await FaultServer(format: .anthropic, script: [.status(529, message: "Overloaded", headers: [])])
        let rig = try Rig(config: "fallback = [\"other:m\"]\n" + Rig.provider("faulty", first, extra: "max_retries = 0") + Rig.provider("other", second, extra: "max_retries = 0"))
        let run = try await rig.ask()
        await first.shutdown()
        await second.shutdown()
        #expect(run.outcome.line?.hasPrefix("other: HTTP 529: Overloaded") == true)
        #expect(run.reply?.failedAttempts?.map(\.model) == ["faulty:m"])
        #expect(run.reply?.status == .error)
    }

    @Test func aPerModelChainReplacesTheGlobalOneAndBadNamesAreCaughtAtLoad() throws {
        let config = try ParleyConfig.parse("""
            fallback = ["local"]
            [models."groq:llama-3.3-70b-versatile"]
            fallback = ["mistral:mistral-small-latest", "local"]
            first_token_timeout = 5
            """, file: "c.toml")
        #expect(config.fallbackChain(after: ModelRef(provider: "groq", model: "llama-3.3-70b-versatile")).map(\.description)
                == ["mistral:mistral-small-latest", "local:smollm2"])
        #expect(config.fallbackChain(after: ModelRef(provider: "openai", model: "gpt-4o")).map(\.description) == ["local:smollm2"])
        #expect(config.fallbackChain(after: ModelRef(provider: "local", model: "smollm2")).isEmpty)
        let endpoint = config.endpoint(for: ModelRef(provider: "groq", model: "llama-3.3-70b-versatile"), environment: [:])
        #expect(endpoint.timeouts.firstToken == .seconds(5))
        #expect(config.endpoint(for: ModelRef(provider: "groq", model: "llama-3.1-8b-instant"), environment: [:]).timeouts.firstToken == .seconds(60))
        #expect(throws: ConfigError(file: "c.toml", line: 1, message: "fallback: unknown provider 'nope' in 'nope:x'; known providers: local, openai, anthropic, groq, mistral, openrouter, ollama (add others under [providers.NAME] in the config)")) {
            try ParleyConfig.parse("fallback = [\"nope:x\"]", file: "c.toml")
        }
    }
}

/// Rate-limit headers, both conventions.
@Suite struct RateLimitTests {
    @Test func openAIDurationsAndAnthropicTimes() throws {
        #expect(RateLimitHeaders.goDuration("6m0s") == 360)
        #expect(RateLimitHeaders.goDuration("1h2m3.5s") == 3723.5)
        #expect(RateLimitHeaders.goDuration("20ms") == 0.02)
        #expect(RateLimitHeaders.goDuration("soon") == nil)
        let openAI = try #require(RateLimitHeaders.parse([
            ("x-ratelimit-limit-requests", "100"), ("x-ratelimit-remaining-requests", "3"), ("x-ratelimit-reset-requests", "6m0s"),
            ("x-ratelimit-limit-tokens", "40000"), ("x-ratelimit-remaining-tokens", "39000"), ("x-ratelimit-reset-tokens", "1.5s"),
        ]))
        #expect(openAI == RateLimitStatus(requestsLimit: 100, requestsRemaining: 3, requestsReset: 360, tokensLimit: 40000, tokensRemaining: 39000, tokensReset: 1.5))
        #expect(openAI.isLow)
        #expect(openAI.summary == "rate limit: 3/100 requests (reset 6m0s), 39k/40k tokens (reset 2 s)")
        let now = Date(timeIntervalSince1970: 1_764_000_000)
        let anthropic = try #require(RateLimitHeaders.parse([
            ("anthropic-ratelimit-requests-limit", "50"), ("anthropic-ratelimit-requests-remaining", "49"),
            ("anthropic-ratelimit-requests-reset", "2025-11-24T16:00:30Z"),
            ("anthropic-ratelimit-input-tokens-limit", "20000"), ("anthropic-ratelimit-input-tokens-remaining", "1000"),
            ("anthropic-ratelimit-input-tokens-reset", "2025-11-24T16:01:00Z"),
            ("anthropic-ratelimit-output-tokens-limit", "8000"), ("anthropic-ratelimit-output-tokens-remaining", "7000"),
        ], now: now))
        #expect(anthropic.requestsReset == 30)
        #expect(anthropic.tokensRemaining == 1000)
        #expect(anthropic.tokensLimit == 20000)
        #expect(anthropic.tokensReset == 60)
        #expect(anthropic.isLow)
        #expect(RateLimitHeaders.parse([("content-type", "text/event-stream")]) == nil)
    }

    @Test func theClientReportsThemAsTheHeadArrives() async throws {
        let server = try await ScriptedHTTPServer { _ in
            [.head(status: 200, headers: [("Content-Type", "text/event-stream"), ("x-ratelimit-limit-requests", "10"), ("x-ratelimit-remaining-requests", "1")]),
             .write(Array((FaultServer.events(.openAI).words + [FaultServer.events(.openAI).end]).joined().utf8)), .end]
        }
        let endpoint = ProviderEndpoint(name: "x", format: .openAIChat, baseURL: server.baseURL + "/v1")
        var events: [ChatEvent] = []
        for try await event in ChatClient().stream(ChatRequest(model: "m", messages: [.user("hi")]), endpoint: endpoint) { events.append(event) }
        await server.shutdown()
        #expect(events.first == .rateLimit(RateLimitStatus(requestsLimit: 10, requestsRemaining: 1)))
    }
}
