import Foundation
import Testing
import GRDB
import ParleyCore
@testable import ParleyKit
import ParleyProviders
import ParleyTestSupport

/// Prices, the ledger, budgets and the response cache.
@Suite struct PricingTests {
    @Test func openAIBillsCachedTokensInsideThePromptAtTheCachedRate() {
        // gpt-4o-mini: $0.15 input, $0.075 cached input, $0.60 output per million.
        let price = ModelPricing(input: 0.15, output: 0.6, cachedInput: 0.075)
        let usage = Usage(promptTokens: 10_000, completionTokens: 2_000, cachedTokens: 8_000, accounting: .cachedInsidePrompt)
        // 2,000 uncached × 0.15 + 8,000 cached × 0.075 + 2,000 out × 0.60 = 300 + 600 + 1,200 = 2,100 µ$
        #expect(abs(price.cost(of: usage) - 0.0021) < 1e-12)
    }

    @Test func anthropicBillsCacheReadsAndWritesOnTopOfInput() {
        // claude-sonnet-4-5: $3 input, $0.30 cache read, $3.75 cache write, $15 output per million.
        let price = ModelPricing(input: 3, output: 15, cachedInput: 0.3, cacheWrite: 3.75)
        let usage = Usage(promptTokens: 1_000, completionTokens: 500, cachedTokens: 20_000, cacheWriteTokens: 4_000, accounting: .cachedOutsidePrompt)
        // 1,000 × 3 + 20,000 × 0.30 + 4,000 × 3.75 + 500 × 15 = 3,000 + 6,000 + 15,000 + 7,500 = 31,500 µ$
        #expect(abs(price.cost(of: usage) - 0.0315) < 1e-12)
        #expect(usage.totalPromptTokens == 25_000)
    }

    @Test func withoutACachedRateCachedTokensAreOrdinaryInput() {
        let price = ModelPricing(input: 0.59, output: 0.79)
        let usage = Usage(promptTokens: 1_000_000, completionTokens: 1_000_000, cachedTokens: 500_000)
        #expect(abs(price.cost(of: usage) - 1.38) < 1e-9)
    }

    @Test func catalogConfigOverridesLocalAndUnknown() throws {
        let config = try ParleyConfig.parse("""
            [providers.box]
            base_url = "http://127.0.0.1:9/v1"
            models = ["tiny"]
            [models."box:tiny"]
            input_price = 1
            output_price = 2
            context_window = 4096
            [models."openai:gpt-4o-mini"]
            output_price = 0.5
            """, file: "c.toml")
        #expect(config.pricing(for: ModelRef(provider: "box", model: "tiny")) == ModelPricing(input: 1, output: 2, contextWindow: 4096))
        let mini = try #require(config.pricing(for: ModelRef(provider: "openai", model: "gpt-4o-mini")))
        #expect(mini.input == 0.15 && mini.output == 0.5 && mini.cachedInput == 0.075 && mini.contextWindow == 128_000)
        #expect(config.pricing(for: ModelRef(provider: "local", model: "smollm2"))?.output == 0)
        #expect(config.pricing(for: ModelRef(provider: "openai", model: "gpt-99")) == nil)
        #expect(config.pricing(for: ModelRef(provider: "anthropic", model: "claude-sonnet-4-5-20250929"))?.input == 3)
        #expect(config.pricing(for: ModelRef(provider: "openai", model: "gpt-4o-mini-2024-07-18"))?.input == 0.15)
        #expect(config.pricing(for: ModelRef(provider: "openai", model: "gpt-4o-mini-2024-07")) == nil)
        #expect(formatDollars(nil) == "?")
        #expect(formatDollars(0.0021) == "$0.0021")
        #expect(formatDollars(12.345) == "$12.35")
    }

    @Test func theBundledCatalogIsDatedAndCoversEveryPresetModel() {
        let catalog = PricingCatalog.bundled
        #expect(catalog.asOf.range(of: #"^\d{4}-\d{2}-\d{2}$"#, options: .regularExpression) != nil)
        let config = ParleyConfig.builtIn
        for name in ["openai", "anthropic", "groq", "mistral", "openrouter"] {
            for model in config.providers[name]?.models ?? [] {
                #expect(catalog.entry(for: ModelRef(provider: name, model: model)) != nil, "no price for \(name):\(model)")
            }
        }
    }

    @Test func sha256MatchesTheStandardVectors() {
        #expect(SHA256.hex([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(SHA256.hex(Array(repeating: UInt8(ascii: "a"), count: 1_000_000)) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}

@Suite struct LedgerTests {
    @Test func rowsForSuccessErrorStopFallbackAndCacheHit() async throws {
        let good = try await FaultServer(format: .openAI, script: [.ok, .drip])
        let bad = try await FaultServer(format: .openAI, script: [.status(503, message: "down", headers: [])])
        let rig = try Rig(config: """
            [cache]
            enabled = true
            [models."faulty:m"]
            input_price = 1
            output_price = 2
            fallback = ["other:m"]
            \(Rig.provider("faulty", bad, extra: "max_retries = 0"))
            \(Rig.provider("other", good))
            [models."other:m"]
            input_price = 10
            output_price = 20
            """)
        let request = ChatRequest(model: "m", messages: [.user("hello")], temperature: 0)
        let first = try await rig.ask(model: "faulty:m", request: request)
        #expect(first.outcome == .complete)
        // Same request again: answered from the cache, nothing sent to either server.
        let second = try await rig.ask(model: "faulty:m", request: request)
        #expect(second.reply?.fromCache == true)
        #expect(second.reply?.content == FaultServer.replyText)
        #expect(second.reply?.cost == 0)
        #expect(bad.requestCount == 1)
        #expect(good.requestCount == 1)
        await good.shutdown()
        await bad.shutdown()

        let rows = try rig.ledger()
        #expect(rows.map(\.outcome) == [.error, .ok, .ok])
        #expect(rows.map(\.cacheHit) == [false, false, true])
        #expect(rows[0].provider == "faulty" && rows[0].error == "http 503" && rows[0].cost == 0)
        #expect(rows[1].fallbackFrom == "faulty:m")
        // 12 prompt × $10/M + 6 completion × $20/M
        #expect(abs((rows[1].cost ?? -1) - 0.00024) < 1e-12)
        #expect(first.reply?.cost == rows[1].cost)
        #expect(rows[1].promptTokens == 12 && rows[1].completionTokens == 6)
        #expect(rows[2].cost == 0 && rows[2].attempts == 0)
        #expect(rows.allSatisfy { $0.session != nil })
        // Never the text.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: rig.engine.stores.ledgerPath))
        #expect(bytes.range(of: Data("fault server".utf8)) == nil)
        #expect(bytes.range(of: Data("hello".utf8)) == nil)
    }

    @Test func aStoppedReplyIsRecordedWithAnEstimatedCost() async throws {
        // The stall outlasts any scheduling delay of a loaded machine: the stop always comes first.
        let server = try await FaultServer(format: .openAI, script: [.stallMidStream(.seconds(120))])
        let rig = try Rig(config: Rig.provider("faulty", server) + "[models.\"faulty:m\"]\ninput_price = 1\noutput_price = 1\nidle_timeout = 300\n")
        let (firstText, signal) = AsyncStream.makeStream(of: Void.self)
        let engine = rig.engine
        let task = Task {
            for try await event in engine.turn(ChatRequest(model: "m", messages: [.user("hello")]), model: ModelRef(provider: "faulty", model: "m")) {
                if case .chat(.textDelta) = event { signal.yield() }
            }
        }
        // However the turn ends, the wait below ends too.
        Task { _ = await task.result; signal.finish() }
        for await _ in firstText { break }
        task.cancel()
        // The turn's consumer is gone; its task records the stop.
        for _ in 0..<100 where try rig.ledger().isEmpty { try await Task.sleep(for: .milliseconds(20)) }
        await server.shutdown()
        let row = try #require(try rig.ledger().first)
        #expect(row.outcome == .stopped)
        #expect(row.costEstimated)
        #expect((row.cost ?? 0) > 0)
    }

    @Test func reportsOverASeededLedger() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ledger-\(UUID().uuidString).sqlite").path
        let ledger = try Ledger(path: path)
        let today = Date()
        let yesterday = today.addingTimeInterval(-86_400)
        let gpt = ModelRef(provider: "openai", model: "gpt-4o-mini"), local = ModelRef(provider: "local", model: "smollm2")
        let odd = ModelRef(provider: "box", model: "x")
        func usage(_ p: Int, _ c: Int) -> Usage { Usage(promptTokens: p, completionTokens: c) }
        try ledger.record(.init(time: today, session: "s1", ref: gpt, usage: usage(100, 10), cost: 0.5, ttftMs: 100, durationMs: 900, tokensPerSecond: 50, attempts: 1, outcome: .ok))
        try ledger.record(.init(time: today, session: "s1", ref: gpt, usage: usage(100, 10), cost: 0.25, ttftMs: 300, durationMs: 900, tokensPerSecond: 30, attempts: 2, outcome: .ok))
        try ledger.record(.init(time: today, session: "s2", ref: odd, usage: usage(5, 5), cost: nil, ttftMs: 50, durationMs: 100, attempts: 1, outcome: .ok))
        try ledger.record(.init(time: today, session: "s2", ref: gpt, usage: nil, cost: 0, ttftMs: nil, durationMs: 0, attempts: 0, outcome: .refused, error: "budget"))
        try ledger.record(.init(time: yesterday, session: nil, ref: local, usage: usage(40, 400), cost: 0, ttftMs: 20, durationMs: 4000, tokensPerSecond: 100, attempts: 1, outcome: .ok))
        try ledger.record(.init(time: yesterday, session: nil, ref: gpt, usage: nil, cost: 1, ttftMs: nil, durationMs: 10, attempts: 3, outcome: .error, error: "http 529"))

        let day = Ledger.day(of: today)
        #expect(try ledger.spend(SpendScope(.day(day))) == Ledger.Spend(dollars: 0.75, unpriced: 1))
        #expect(try ledger.spend(SpendScope(.session("s1"))).dollars == 0.75)
        let byModel = try ledger.report(groupedBy: .model, since: Ledger.day(of: yesterday))
        #expect(byModel.map(\.key) == ["openai:gpt-4o-mini", "box:x", "local:smollm2"])
        #expect(byModel[0].requests == 3 && byModel[0].dollars == 1.75 && byModel[0].errors == 1)
        #expect(byModel[1].unpriced == 1)
        let byDay = try ledger.report(groupedBy: .day, since: Ledger.day(of: yesterday))
        #expect(byDay.map(\.key) == [day, Ledger.day(of: yesterday)])
        #expect(byDay[0].requests == 3)
        #expect(try ledger.report(groupedBy: .provider, since: day).map(\.key) == ["openai", "box"])
        let speeds = try ledger.speeds(since: Ledger.day(of: yesterday))
        let gptSpeed = try #require(speeds.first { $0.model == "openai:gpt-4o-mini" })
        #expect(gptSpeed.requests == 2 && gptSpeed.ttftP50 == 100 && gptSpeed.ttftP95 == 300 && gptSpeed.tokensPerSecondP50 == 30)
    }

    @Test func aFileThatIsNotALedgerIsNamedAndLeftAlone() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ledger-\(UUID().uuidString).sqlite").path
        try Data("this is not sqlite, but it is someone's file".utf8).write(to: URL(fileURLWithPath: path))
        #expect { try Ledger(path: path) } throws: { error in
            (error as? LedgerError)?.userMessage.hasPrefix("the usage ledger \(path) cannot be used") == true
        }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "this is not sqlite, but it is someone's file")
    }
}

@Suite struct BudgetTests {
    @Test func aDailyLimitRefusesBeforeAnyByteIsSent() async throws {
        let server = try await FaultServer(format: .openAI, script: [.ok])
        let rig = try Rig(config: """
            [budget]
            daily = 0.10
            [models."faulty:m"]
            input_price = 2.5
            output_price = 10
            max_output = 16384
            \(Rig.provider("faulty", server))
            """)
        // Spent today already: $0.05. Worst case: ~8 prompt tokens + 16,384 output × $10/M ≈ $0.164.
        try await rig.engine.stores.ledger().record(.init(session: nil, ref: ModelRef(provider: "faulty", model: "m"), usage: nil, cost: 0.05,
                                                          ttftMs: nil, durationMs: 1, attempts: 1, outcome: .ok), releasing: nil)
        let run = try await rig.ask()
        #expect(server.requestCount == 0)
        let line = try #require(run.outcome.line)
        #expect(line.hasPrefix("budget: faulty:m refused before sending — daily spend $0.050 plus this request's worst case $0.164 would pass the daily limit of $0.100; raise daily under [budget] in test.toml"))
        #expect(!line.contains("/retry"))
        #expect(run.session.messages.first?.content == "hello")
        #expect(try rig.ledger().last?.outcome == .refused)

        // With a small max_tokens the worst case fits, and the request goes out.
        let fits = try await rig.ask(request: ChatRequest(model: "m", messages: [.user("hello")], maxTokens: 1000))
        await server.shutdown()
        #expect(fits.outcome == .complete)
        #expect(server.requestCount == 1)
    }

    @Test func aPerRequestLimitAndAnUnpricedModel() async throws {
        let server = try await FaultServer(format: .openAI, script: [.ok])
        let rig = try Rig(config: Rig.provider("faulty", server))
        let refused = try await rig.ask(options: TurnOptions(requestLimit: 1))
        #expect(refused.outcome.line?.contains("the price of faulty:m is unknown") == true)
        #expect(refused.outcome.line?.contains("[models.\"faulty:m\"]") == true)
        #expect(server.requestCount == 0)
        let unlimited = try await rig.ask()
        await server.shutdown()
        #expect(unlimited.outcome == .complete)
        #expect(unlimited.reply?.cost == nil)
    }

    @Test func anOverBudgetModelFallsBackToAFreeOne() async throws {
        let server = try await FaultServer(format: .openAI, script: [.ok])
        let free = try await FaultServer(format: .openAI, script: [.ok])
        let rig = try Rig(config: """
            fallback = ["other:m"]
            [budget]
            daily = 0.01
            [models."faulty:m"]
            input_price = 100
            output_price = 100
            [models."other:m"]
            input_price = 0
            output_price = 0
            \(Rig.provider("faulty", server))
            \(Rig.provider("other", free))
            """)
        let run = try await rig.ask()
        await server.shutdown()
        await free.shutdown()
        #expect(server.requestCount == 0)
        #expect(free.requestCount == 1)
        #expect(run.reply?.failedAttempts?.first?.error.hasPrefix("budget: faulty:m refused before sending") == true)
    }
}

@Suite struct ResponseCacheTests {
    @Test func aHitSendsNothingADifferentParameterMissesAndOldRepliesExpire() async throws {
        let server = try await FaultServer(format: .anthropic, script: [.ok])
        let rig = try Rig(config: "[cache]\nenabled = true\nttl_hours = 1\n" + Rig.provider("faulty", server))
        let request = ChatRequest(model: "m", messages: [.user("hello")], temperature: 0, maxTokens: 50)
        _ = try await rig.ask(request: request)
        _ = try await rig.ask(request: request)
        #expect(server.requestCount == 1)
        var other = request
        other.maxTokens = 51
        _ = try await rig.ask(request: other)
        #expect(server.requestCount == 2)
        var warm = request
        warm.temperature = 0.7
        _ = try await rig.ask(request: warm)
        _ = try await rig.ask(request: warm)
        #expect(server.requestCount == 4)
        await server.shutdown()

        let cache = try rig.engine.stores.cache()
        let key = try #require(rig.engine.cacheKey(for: request, ref: ModelRef(provider: "faulty", model: "m"), options: TurnOptions(cache: true)))
        #expect(await cache.lookup(key, now: Date())?.text == FaultServer.replyText)
        #expect(await cache.lookup(key, now: Date().addingTimeInterval(3601)) == nil)
        #expect(await cache.lookup(key, now: Date()) == nil)
        #expect(try await cache.stats().entries == 1)
        #expect(try await cache.clear() == 1)
    }

    @Test func theSizeCapDropsTheLeastRecentlyUsed() throws {
        var settings = CacheSettings()
        settings.maxMegabytes = 1
        let cache = try ResponseCache(path: FileManager.default.temporaryDirectory.appendingPathComponent("cache-\(UUID().uuidString).sqlite").path, settings: settings)
        let ref = ModelRef(provider: "p", model: "m")
        let big = String(repeating: "x", count: 400_000)
        for (index, key) in ["a", "b", "c"].enumerated() {
            cache.store(key, ref: ref, reply: .init(text: big, finishReason: "stop", usage: nil, created: Date().addingTimeInterval(Double(index))))
            if key == "b" { _ = cache.lookup("a", now: Date().addingTimeInterval(10)) }
        }
        #expect(cache.lookup("a") != nil)
        #expect(cache.lookup("b") == nil)
        #expect(cache.lookup("c") != nil)
    }

    @Test func theKeyCoversWhatChangesTheAnswer() {
        let ref = ModelRef(provider: "openai", model: "gpt-4o-mini")
        let origin = "https://api.openai.com/v1"
        let base = ChatRequest(model: "gpt-4o-mini", system: "Be brief.", messages: [.user("hi")], temperature: 0)
        func key(_ request: ChatRequest, _ ref: ModelRef = ref, origin: String = origin, maxTokens: Int? = 100) -> String {
            ResponseCache.key(for: request, ref: ref, origin: origin, maxTokens: maxTokens)
        }
        let original = key(base)
        #expect(original.count == 64)
        #expect(original == key(base))
        var changed = base
        changed.system = "Be long."
        #expect(key(changed) != original)
        #expect(key(base, ModelRef(provider: "openrouter", model: "gpt-4o-mini")) != original)
        #expect(key(base, origin: "http://127.0.0.1:9999/v1") != original)
        #expect(key(base, maxTokens: 101) != original)
        #expect(key(base, maxTokens: nil) != original)
        changed = base
        changed.messages.append(.assistant("hello"))
        #expect(key(changed) != original)
    }

    /// Issue 11, row 8: the same provider:model at two base URLs must not share cached replies, and the
    /// config's max_tokens (the limit actually sent) is part of the key.
    @Test func theEngineKeyNamesTheEndpointAndTheEffectiveLimit() throws {
        func engine(_ config: String) throws -> ChatEngine {
            let parsed = try ParleyConfig.parse(config, file: "config.toml")
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("parley-key-\(UUID().uuidString)")
            return ChatEngine(config: parsed, paths: ParleyPaths(configDirectory: directory, dataDirectory: directory, runtimeDirectory: directory), environment: [:])
        }
        let request = ChatRequest(model: "m", messages: [.user("hi")], temperature: 0)
        let ref = ModelRef(provider: "box", model: "m")
        let options = TurnOptions(cache: true)
        let first = try engine("[providers.box]\nbase_url = \"http://127.0.0.1:1111/v1\"\nmodels = [\"m\"]\n").cacheKey(for: request, ref: ref, options: options)
        let second = try engine("[providers.box]\nbase_url = \"http://127.0.0.1:2222/v1\"\nmodels = [\"m\"]\n").cacheKey(for: request, ref: ref, options: options)
        let limited = try engine("[providers.box]\nbase_url = \"http://127.0.0.1:1111/v1\"\nmodels = [\"m\"]\nmax_tokens = 50\n").cacheKey(for: request, ref: ref, options: options)
        #expect(first != nil && second != nil && limited != nil)
        #expect(first != second)
        #expect(first != limited)
    }
}

@Suite struct EstimatorTests {
    @Test func runsAreCountedTheWayTokenizersSplitThem() {
        #expect(TokenEstimator.estimate("") == 0)
        #expect(TokenEstimator.estimate("hello world") == 2)
        #expect(TokenEstimator.estimate("internationalization") == 3)   // 20 letters, one per 7
        #expect(TokenEstimator.estimate("1234567") == 3)                 // digits in threes
        #expect(TokenEstimator.estimate("{\"a\":1}") == 5)               // {"  a  ":  1  }
        #expect(TokenEstimator.estimate("東京") == 4)                     // 1.8 per character, rounded up
        #expect(TokenEstimator.estimate("zwölf") == 3)                   // 6 bytes / 2.5
        let request = ChatRequest(model: "m", system: "Be brief.", messages: [.user("hello world"), .assistant("hi")])
        // 3 for the reply + (6 + "hello world" 2) + (6 + "hi" 1) + (6 + "Be brief." 3)
        #expect(TokenEstimator.estimate(request) == 27)
    }
}

/// The SQLite ledger's budget claims: the check and the claim are one transaction, a row ends its
/// claim, and a claim left by a killed process lapses.
@Suite struct BudgetClaimTests {
    static func ledger() throws -> (Ledger, URL) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("parley-claims-\(UUID().uuidString)")
        return (try Ledger(path: directory.appendingPathComponent("usage.sqlite").path), directory)
    }

    @Test func claimsCountUntilTheirRowReplacesThem() throws {
        let (ledger, directory) = try Self.ledger()
        defer { try? FileManager.default.removeItem(at: directory) }
        let today = Ledger.day(of: Date())
        let daily = BudgetLimit(name: "daily", dollars: 1.0, scope: SpendScope(.day(today)))
        guard case let .granted(first) = try ledger.claim([daily], worstCase: 0.4, session: nil, user: "a") else { Issue.record("refused"); return }
        guard case .granted = try ledger.claim([daily], worstCase: 0.4, session: nil, user: "b") else { Issue.record("refused"); return }
        // 0.8 claimed: a third 0.4 would pass the limit.
        #expect(try ledger.claim([daily], worstCase: 0.4, session: nil, user: "c") == .refused(daily, spent: 0.8))
        // The first request cost 0.1: its row replaces its 0.4 claim, and 0.4 fits again.
        try ledger.record(Ledger.Entry(session: nil, user: "a", ref: ModelRef(provider: "p", model: "m"), usage: nil, cost: 0.1, ttftMs: nil,
                                       durationMs: 1, attempts: 1, outcome: .ok), releasing: first)
        guard case .granted = try ledger.claim([daily], worstCase: 0.4, session: nil, user: "c") else { Issue.record("refused after the row"); return }
        #expect(try ledger.claim([daily], worstCase: 0.2, session: nil, user: "d") == .refused(daily, spent: 0.9))
        // A user-scoped limit counts that user's rows and claims only.
        let mine = BudgetLimit(name: "daily", dollars: 0.5, scope: SpendScope(.day(today), user: "a"))
        guard case .granted = try ledger.claim([mine], worstCase: 0.3, session: nil, user: "a") else { Issue.record("user scope refused"); return }
        #expect(try ledger.spend(SpendScope(.day(today), user: "a")).dollars == 0.1)
        #expect(try ledger.spend(SpendScope(.day(today), user: "b")).dollars == 0)
    }

    @Test func concurrentClaimsFromManyThreadsNeverPassTheLimit() async throws {
        let (ledger, directory) = try Self.ledger()
        defer { try? FileManager.default.removeItem(at: directory) }
        let daily = BudgetLimit(name: "daily", dollars: 1.0, scope: SpendScope(.day(Ledger.day(of: Date()))))
        let granted = await withTaskGroup(of: Bool.self) { group in
            for index in 0..<40 {
                group.addTask {
                    // A second connection to the same file, as another process would have.
                    guard let other = try? Ledger(path: ledger.path) else { return false }
                    let decision = try? (index % 2 == 0 ? ledger : other).claim([daily], worstCase: 0.15, session: nil, user: nil)
                    if case .granted? = decision { return true }
                    return false
                }
            }
            var count = 0
            for await ok in group where ok { count += 1 }
            return count
        }
        #expect(granted == 6)
    }

    @Test func aClaimLeftByAKilledProcessLapses() throws {
        let (ledger, directory) = try Self.ledger()
        defer { try? FileManager.default.removeItem(at: directory) }
        let daily = BudgetLimit(name: "daily", dollars: 1.0, scope: SpendScope(.day(Ledger.day(of: Date()))))
        guard case .granted = try ledger.claim([daily], worstCase: 0.9, session: nil, user: nil) else { Issue.record("refused"); return }
        guard case .refused = try ledger.claim([daily], worstCase: 0.9, session: nil, user: nil) else { Issue.record("granted twice"); return }
        try ledger.db.write { try $0.execute(sql: "UPDATE budget_claim SET expires = 0") }
        guard case .granted = try ledger.claim([daily], worstCase: 0.9, session: nil, user: nil) else { Issue.record("the lapsed claim still counts"); return }
    }
}

@Suite struct LedgerMigrationTests {
    /// Parley updated while two of its processes start: both find the file one migration behind.
    @Test func processesOpeningAnOlderLedgerAtOnceAllSucceed() async throws {
        for round in 0..<5 {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("parley-migrate-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: directory) }
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let path = directory.appendingPathComponent("usage.sqlite").path
            let old = try DatabaseQueue(path: path)
            try Ledger.migrator.migrate(old, upTo: "v2 route rule")
            try old.close()
            let opened = await withTaskGroup(of: Bool.self) { group in
                for _ in 0..<4 { group.addTask { (try? Ledger(path: path)) != nil } }
                var all: [Bool] = []
                for await ok in group { all.append(ok) }
                return all
            }
            #expect(opened == [true, true, true, true], "round \(round)")
        }
    }
}

@Suite struct TeamLedgerRowTests {
    /// PostgreSQL's text cannot hold NUL; a row carrying one is written with U+FFFD instead of refused.
    @Test func aNULInARowBecomesAReplacementCharacter() {
        var row = Ledger.Entry(session: "s\u{0}1", user: "u", ref: ModelRef(provider: "p", model: "a\u{0}b"), usage: nil, cost: 1, ttftMs: nil,
                               durationMs: 1, attempts: 1, outcome: .error, error: "http\u{0}")
        row.fallbackFrom = "x\u{0}"
        let clean = row.withoutNUL()
        #expect(clean.model == "a\u{FFFD}b" && clean.session == "s\u{FFFD}1" && clean.error == "http\u{FFFD}" && clean.fallbackFrom == "x\u{FFFD}")
        #expect(clean.user == "u" && clean.provider == "p" && clean.uid == row.uid)
    }
}
