import Foundation
import Testing
@testable import ParleyCore
@testable import ParleyKit
@testable import ParleyProviders
import ParleyTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Issue 11 below the binary: numbers, limits, names and files, each tried with what an attacker sends.
@Suite struct HostileNumberTests {
    @Test func intNeverTrapsAtTheEdges() throws {
        #expect(try JSONValue.parse("9223372036854775807").int == nil, "2^63 - 1 parses as 2^63, which does not fit")
        #expect(try JSONValue.parse("-9223372036854775808").int == Int.min)
        #expect(try JSONValue.parse("9223372036854774784").int == 9_223_372_036_854_774_784)
        #expect(try JSONValue.parse("1.5").int == nil)
        #expect(try JSONValue.parse("1e300").int == nil)
        #expect(throws: JSONParseError.self) { try JSONValue.parse("1e999") }
        #expect(throws: JSONParseError.self) { try JSONValue.parse("-1e999") }
    }

    static func openAIUsage(_ usage: String) throws -> [ChatEvent] {
        var decoder = OpenAIChatFormat.Decoder(provider: "p")
        return try decoder.decodeAll(Array("data: {\"choices\":[],\"usage\":\(usage)}\n\ndata: [DONE]\n\n".utf8))
    }

    @Test func tokenCountsOutsideZeroToABillionAreProtocolErrorsNamingTheField() throws {
        for (usage, field) in [(#"{"prompt_tokens":-1}"#, "usage.prompt_tokens = -1"),
                               (#"{"completion_tokens":1000000001}"#, "usage.completion_tokens = 1000000001"),
                               (#"{"prompt_tokens":2.5}"#, "usage.prompt_tokens = 2.5"),
                               (#"{"prompt_tokens":"12"}"#, #"usage.prompt_tokens = "12""#),
                               (#"{"prompt_tokens_details":{"cached_tokens":-3}}"#, "usage.prompt_tokens_details.cached_tokens = -3")] {
            do {
                _ = try Self.openAIUsage(usage)
                Issue.record("\(usage) was accepted")
            } catch let error as ProviderError {
                #expect(error.kind == .malformed)
                #expect(error.message.contains(field), "\(error.message)")
            }
        }
        let fine = try Self.openAIUsage(#"{"prompt_tokens":12,"completion_tokens":1000000000,"prompt_tokens_details":null}"#)
        #expect(fine.contains(.usage(Usage(promptTokens: 12, completionTokens: 1_000_000_000))))

        var anthropic = AnthropicMessagesFormat.Decoder(provider: "a")
        let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":-5}}}\n\n"
        #expect { _ = try anthropic.decode(Array(start.utf8)) } throws: { ($0 as? ProviderError)?.message.contains("message.usage.input_tokens = -5") == true }
        var ollama = OllamaChatFormat.Decoder(provider: "o")
        #expect { _ = try ollama.decodeAll(Array(#"{"done":true,"eval_count":-7}"#.utf8)) } throws: {
            ($0 as? ProviderError)?.message.contains("eval_count = -7") == true
        }
    }

    @Test func rateLimitResetsAreParsedWithinAYearAndShownWithoutTrapping() {
        #expect(RateLimitHeaders.goDuration("6m0s") == 360)
        #expect(RateLimitHeaders.goDuration("99999999999999999999s") == nil)
        #expect(RateLimitHeaders.goDuration("1e400s") == nil)
        #expect(RateLimitHeaders.goDuration(String(repeating: "1s", count: 100)) == nil, "no header is parsed past 64 bytes")
        let status = RateLimitHeaders.parse([("x-ratelimit-remaining-requests", "0"), ("x-ratelimit-limit-requests", "-5"),
                                             ("x-ratelimit-reset-requests", "99999999999999999999s")])
        #expect(status?.requestsRemaining == 0)
        #expect(status?.requestsLimit == nil, "a negative limit is ignored")
        #expect(status?.requestsReset == nil)
        for seconds in [Double.infinity, -.infinity, .nan, 1e300, -1, 9.3e18] {
            _ = RateLimitStatus(requestsRemaining: 1, requestsReset: seconds).summary  // must not trap
        }
        #expect(RateLimitStatus.duration(1e300) == "over a year")
    }

    @Test func aCostIsNeverNegativeAndTinyAmountsAreNotShownAsZero() {
        let pricing = ModelPricing(input: 5, output: 15)
        #expect(pricing.cost(of: Usage(promptTokens: 10, completionTokens: -100_000_000)) == 0)
        #expect(formatDollars(0.00001) == "$0.000010")
        #expect(formatDollars(0.0000012) == "$0.0000012")
        #expect(formatDollars(0.0001) == "$0.0001")
        #expect(formatDollars(.infinity) == "?")
        #expect(formatDollars(-0.5) == "-$0.500")
    }

    @Test func theLedgerNeverStoresOrSumsANegativeCost() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ledger-\(UUID().uuidString).sqlite").path
        let ledger = try Ledger(path: path)
        let ref = ModelRef(provider: "p", model: "m")
        try ledger.record(Ledger.Entry(session: nil, ref: ref, usage: nil, cost: -99.99, ttftMs: nil, durationMs: 1, attempts: 1, cacheHit: false, outcome: .ok))
        try ledger.record(Ledger.Entry(session: nil, ref: ref, usage: nil, cost: 0.5, ttftMs: nil, durationMs: 1, attempts: 1, cacheHit: false, outcome: .ok))
        #expect(try ledger.entries().map(\.cost) == [0, 0.5])
        #expect(try ledger.spend(SpendScope(.day(Ledger.day(of: Date())))).dollars == 0.5)
        var info = stat()
        #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == 0o600, "the ledger is 0600")
    }

    /// A model name is text, never a format string: `%@` or `%n` in it once went to String(format:).
    @Test func aBudgetRefusalNamesAModelWithPercentSignsAsItIs() async throws {
        let config = try ParleyConfig.parse("[budget]\ndaily = 0.000001\n[providers.box]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodels = [\"50%off-%@-%n-%s\"]\n"
                                            + "[models.\"box:50%off-%@-%n-%s\"]\ninput_price = 5\noutput_price = 15\n", file: "c.toml")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("parley-pct-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let engine = ChatEngine(config: config, paths: ParleyPaths(configDirectory: directory, dataDirectory: directory, runtimeDirectory: directory), environment: [:])
        let ref = ModelRef(provider: "box", model: "50%off-%@-%n-%s")
        await #expect { try await engine.checkBudget(ChatRequest(model: ref.model, messages: [.user("hi")]), ref: ref, pricing: config.pricing(for: ref), options: TurnOptions()) } throws: {
            ($0 as? BudgetRefusal)?.fix.contains("set a lower max_tokens for box:50%off-%@-%n-%s") == true
        }
    }

    @Test func datedAnthropicIDsFindTheirAliasPrice() {
        let catalog = PricingCatalog.bundled
        #expect(catalog.entry(for: ModelRef(provider: "anthropic", model: "claude-sonnet-4-20250514")) != nil)
        #expect(catalog.entry(for: ModelRef(provider: "anthropic", model: "claude-sonnet-4-20250514")) == catalog.entry(for: ModelRef(provider: "anthropic", model: "claude-sonnet-4-0")))
        #expect(catalog.entry(for: ModelRef(provider: "anthropic", model: "claude-sonnet-4-5-20250929")) != nil)
    }

    @Test func onlyAContextMessageIsAContextOverflow() {
        #expect(ProviderError.mentionsContextOverflow("This model's maximum context length is 8192 tokens. However, you requested 9000 tokens."))
        #expect(ProviderError.mentionsContextOverflow("prompt is too long: 210000 tokens > 200000 maximum"))
        #expect(ProviderError.mentionsContextOverflow("the request exceeds the available context size, try increasing it"))
        #expect(!ProviderError.mentionsContextOverflow("temperature: 3 is greater than the maximum of 2"))
        #expect(!ProviderError.mentionsContextOverflow("max_tokens must be at most the maximum output"))
    }
}

@Suite struct HostileTextTests {
    @Test func bidiControlsAndInvisiblesAreShownNotObeyed() {
        var sanitizer = TerminalSanitizer()
        #expect(sanitizer.sanitize("access\u{202E}txt.exe") == "access<U+202E>txt.exe")
        #expect(sanitizer.sanitize("a\u{2066}b\u{2069}\u{200B}c\u{FEFF}") == "a<U+2066>b<U+2069><U+200B>c<U+FEFF>")
        #expect(sanitizer.sanitize("👨‍👩‍👧 می‌خواهم") == "👨‍👩‍👧 می‌خواهم", "zero-width joiner and non-joiner stay")
        #expect(TerminalSanitizer.line("one\ntwo\t\u{1B}[31mthree\u{07}") == "one two three")
        #expect(TerminalSanitizer.line(String(repeating: "x", count: 2000)).count == 1001)
    }

    @Test func providerErrorMessagesAreOneSafeLine() {
        let body = #"{"error":{"message":"\u001b]0;PWNED\u0007bad\nparley: fake\u001b[2J","type":"x\u001b[1m"}}"#
        let (message, type) = ProviderErrorBody.message(from: Array(body.utf8))
        #expect(message == "bad parley: fake")
        #expect(type == "x")
        let raw = ProviderErrorBody.message(from: Array("<html>\u{1B}[2Jgateway\r\nerror</html>".utf8))
        #expect(raw.message == "<html>gateway error</html>")
    }
}

@Suite struct StreamLimitTests {
    @Test func oneSSELineOrEventPastTheLimitThrowsWhateverTheSplit() throws {
        let line = Array("data: \(String(repeating: "a", count: 20))".utf8)  // 26 bytes, no end
        for split in [0, 5, 20, 26] {
            var decoder = SSEDecoder(maxEventBytes: 25)
            #expect(throws: StreamLimitExceeded.self) {
                _ = try decoder.feed(line[..<split])
                _ = try decoder.feed(line[split...])
            }
        }
        var exact = SSEDecoder(maxEventBytes: 26)
        #expect(try exact.feed(line + [0x0A, 0x0A]) == [SSEEvent(data: String(repeating: "a", count: 20))])
        var many = SSEDecoder(maxEventBytes: 30)
        #expect(throws: StreamLimitExceeded.self) { _ = try many.feed(Array("data: 0123456789\ndata: 0123456789\ndata: 0123456789\n".utf8)) }
        var ndjson = NDJSONDecoder(maxLineBytes: 8)
        #expect(throws: StreamLimitExceeded.self) { _ = try ndjson.feed(Array("{\"a\":12345}".utf8)) }
    }

    @Test func aFinalOllamaLineWithoutANewlineIsNotACutOff() throws {
        var bytes = try Fixture.bytes("ollama-chat.ndjson")
        while bytes.last == 0x0A { bytes.removeLast() }
        var decoder = OllamaChatFormat.Decoder(provider: "ollama")
        let events = try decoder.decodeAll(bytes)
        #expect(events.contains { if case .finish = $0 { return true }; return false })
        #expect(decoder.sawTerminator)
    }

    /// Every real capture, cut at random places (a fixed seed, so a failure repeats): the same events
    /// as the whole body, or the same error.
    @Test(arguments: ["openai-tools-usage.sse", "groq-xgroq.sse", "ollama-openai-parallel.sse", "llamacpp-openai.sse",
                      "openai-instream-error.sse", "anthropic-tools-usage.sse", "anthropic-overloaded.sse", "llamacpp-anthropic.sse",
                      "ollama-chat.ndjson"])
    func randomChunkingGivesTheSameEvents(_ fixture: String) throws {
        let bytes = try Fixture.bytes(fixture)
        func decoder() -> any ChatStreamDecoder {
            if fixture.hasSuffix(".ndjson") { return OllamaChatFormat.Decoder(provider: "p") }
            return fixture.contains("anthropic") ? AnthropicMessagesFormat.Decoder(provider: "p") : OpenAIChatFormat.Decoder(provider: "p")
        }
        func run(_ chunks: [ArraySlice<UInt8>]) -> String { FuzzTargets.outcome(decoder(), chunks) }
        let whole = run([bytes[...]])
        var generator = SeededGenerator(seed: 0x5EED)
        for _ in 0..<200 {
            var cuts = (0..<Int.random(in: 1...12, using: &generator)).map { _ in Int.random(in: 0...bytes.count, using: &generator) }.sorted()
            cuts = [0] + cuts + [bytes.count]
            let chunks = zip(cuts, cuts.dropFirst()).map { bytes[$0..<$1] }
            #expect(run(chunks) == whole, "cuts \(cuts)")
        }
    }

    /// Every input the fuzzer kept (and every crash it once found) replayed: no trap, and each target's
    /// property holds. A failure here is a crash of the test process, which fails the run.
    @Test func theFuzzCorporaReplay() throws {
        let root = try #require(Bundle.module.resourceURL).appendingPathComponent("Fixtures")
        var replayed = 0
        for target in FuzzTargets.names {
            let directory = root.appendingPathComponent("fuzz/\(target)")
            for file in (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [] {
                FuzzTargets.run(target, Array(try Data(contentsOf: directory.appendingPathComponent(file))))
                replayed += 1
            }
        }
        let crashes = root.appendingPathComponent("fuzz-crashes")
        for file in try FileManager.default.contentsOfDirectory(atPath: crashes.path) {
            let target = String(file.prefix { $0 != "-" })
            FuzzTargets.run(target, Array(try Data(contentsOf: crashes.appendingPathComponent(file))))
            replayed += 1
        }
        #expect(replayed > 100, "the corpora are in the bundle")
    }
}


@Suite struct HostileConfigTests {
    func parse(_ text: String) throws(ConfigError) -> ParleyConfig { try ParleyConfig.parse(text, file: "c.toml") }

    @Test func nestingIsLimitedNotAStackOverflow() {
        #expect { try TOMLParser.parse("a = " + String(repeating: "[", count: 100_000)) } throws: {
            ($0 as? TOMLError)?.message.contains("nested more than 32 deep") == true
        }
        #expect { try TOMLParser.parse("a = " + String(repeating: "{b = ", count: 50_000)) } throws: {
            ($0 as? TOMLError)?.message.contains("nested more than 32 deep") == true
        }
        #expect { try TOMLParser.parse(Array(repeating: "k", count: 10_000).joined(separator: ".") + " = 1") } throws: {
            ($0 as? TOMLError)?.message.contains("more than 32 parts") == true
        }
        #expect(throws: Never.self) { try TOMLParser.parse("a = " + String(repeating: "[", count: 32) + String(repeating: "]", count: 32)) }
    }

    @Test func anAliasLoopIsAConfigErrorWithItsLine() {
        #expect { try parse("[aliases]\na = \"b\"\nb = \"a\"\n") } throws: {
            guard let error = $0 as? ConfigError else { return false }
            return error.line == 2 && error.message.contains("aliases form a loop: a → b → a")
        }
        #expect { try parse("[aliases]\nx = \"y\"\ny = \"z\"\nz = \"x\"\n") } throws: { ($0 as? ConfigError)?.message.contains("loop") == true }
    }

    @Test func numbersThatWouldOverflowAreRefusedWithTheirLine() {
        #expect { try parse("[cache]\nttl_hours = 9223372036854775807\n") } throws: {
            ($0 as? ConfigError)?.userMessage == "c.toml:2: cache.ttl_hours: expected at most 87600, found 9223372036854775807"
        }
        #expect { try parse("[cache]\nmax_megabytes = 9223372036854775807\n") } throws: { ($0 as? ConfigError)?.line == 2 }
        #expect { try parse("[providers.openai]\nmax_reply_mb = 99999999\n") } throws: { ($0 as? ConfigError)?.line == 2 }
    }

    @Test func streamLimitsAreConfigurablePerProvider() throws {
        let config = try parse("[providers.openai]\nmax_event_kb = 64\nmax_reply_mb = 2\nmax_error_kb = 4\n")
        let endpoint = config.endpoint(for: ModelRef(provider: "openai", model: "gpt-4o-mini"), environment: [:])
        #expect(endpoint.limits == StreamLimits(maxEventBytes: 64 << 10, maxReplyBytes: 2 << 20, maxErrorBytes: 4 << 10))
        #expect(ParleyConfig.builtIn.endpoint(for: ModelRef(provider: "openai", model: "gpt-4o-mini"), environment: [:]).limits == .standard)
    }

    @Test func childrenGetNoSecrets() {
        let environment = ["PATH": "/bin", "HOME": "/h", "OPENAI_API_KEY": "sk-1", "ANTHROPIC_API_KEY": "sk-2", "GITHUB_TOKEN": "t",
                           "PARLEY_SECRET_KEY": "k", "XDG_DATA_HOME": "/d", "PARLEY_RUNTIME_DIR": "/r", "PIP_INDEX_URL": "u",
                           "AWS_SECRET_ACCESS_KEY": "a", "LC_ALL": "C.UTF-8", "CMAKE_ARGS": "-D", "HOSTILE_KEY": "x"]
        #expect(ChildProcess.childEnvironment(environment) == ["PATH": "/bin", "HOME": "/h", "XDG_DATA_HOME": "/d", "PARLEY_RUNTIME_DIR": "/r",
                                                               "PIP_INDEX_URL": "u", "LC_ALL": "C.UTF-8", "CMAKE_ARGS": "-D"])
    }
}

/// A symlink planted at each of Parley's paths, crafted ids and prefixes: nothing outside is touched.
@Suite final class HostileFileTests {
    let directory: URL
    let outside: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("parley-fs-\(UUID().uuidString)")
        outside = FileManager.default.temporaryDirectory.appendingPathComponent("parley-victim-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try Data("precious".utf8).write(to: outside)
    }

    deinit {
        try? FileManager.default.removeItem(at: directory)
        try? FileManager.default.removeItem(at: outside)
    }

    /// Plants `name` in the directory as a link to the victim file.
    func plant(_ name: String) throws -> String {
        let path = directory.appendingPathComponent(name).path
        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: outside.path)
        return path
    }

    func victimIsUntouched() throws -> Bool {
        try String(contentsOf: outside, encoding: .utf8) == "precious"
    }

    @Test func aLinkAtALockJournalOrSessionFileIsNotFollowed() throws {
        let store = SessionStore(directory: directory)
        _ = try plant("s1.lock")
        #expect { _ = try store.lock("s1") } throws: { "\($0)".contains("symbolic link") || ($0 as? AtomicFile.WriteError)?.reason.contains("symbolic link") == true }
        _ = try plant("s1.journal")
        #expect(throws: AtomicFile.WriteError.self) { try store.appendJournal(SessionJournalEntry(message: "m", append: "x"), for: "s1") }
        _ = try plant("s2.json")
        try store.save(Session(id: "s2", title: "t", model: "local:smollm2"))  // replaces the link itself
        #expect(try victimIsUntouched())
        var info = stat()
        #expect(lstat(directory.appendingPathComponent("s2.json").path, &info) == 0 && info.st_mode & S_IFMT == S_IFREG)
        #expect(throws: SessionFileError.self) { _ = try store.load(directory.appendingPathComponent("s1.journal")) }
    }

    @Test func aLinkAtTheLedgerCacheOrServerLockIsRefused() throws {
        #expect(throws: LedgerError.self) { _ = try Ledger(path: try plant("usage.sqlite")) }
        #expect(throws: LedgerError.self) { _ = try ResponseCache(path: try plant("cache.sqlite"), settings: CacheSettings()) }
        #expect(throws: LocalRuntimeError.self) { _ = try FileLock(path: try plant("server.lock")) }
        #expect(try victimIsUntouched())
    }

    @Test func aLinkAtTheServerLogIsNotWrittenThrough() throws {
        let log = try plant("server.log")
        if let child = try? ChildProcess.spawn(["/bin/echo", "written"], output: .file(log)) { _ = child.wait() }
        #expect(try victimIsUntouched())
    }

    @Test func filesWrittenByOthersAreRefused() throws {
        let path = directory.appendingPathComponent("loose").path
        try Data("x".utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o666)
        #expect { _ = try PrivateFile.read(path, owned: true) } throws: { ($0 as? AtomicFile.WriteError)?.reason.contains("other users can write") == true }
        chmod(path, 0o644)
        #expect(try PrivateFile.read(path, owned: true) == Data("x".utf8))
        var info = stat()
        #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == 0o600, "a readable file of ours is made 0600")
    }

    @Test func aRuntimeFileOthersCouldChangeIsNotRun() throws {
        let paths = ParleyPaths(configDirectory: directory, dataDirectory: directory, runtimeDirectory: directory)
        let model = directory.appendingPathComponent("m.gguf")
        try Data().write(to: model)
        let server = directory.appendingPathComponent("llama-server")
        try Data("#!/bin/sh\n".utf8).write(to: server)
        chmod(server.path, 0o755)
        let file = directory.appendingPathComponent("runtime.json")
        try JSONEncoder().encode(LocalRuntime.Installation(server: server.path, model: model.path)).write(to: file)
        chmod(file.path, 0o600)
        let runtime = LocalRuntime(paths: paths, settings: LocalSettings())
        #expect(runtime.installation() != nil)
        chmod(server.path, 0o777)
        #expect(runtime.installation() == nil, "a binary anyone can rewrite is not run")
        chmod(server.path, 0o755)
        chmod(file.path, 0o666)
        #expect(runtime.installation() == nil, "a runtime.json anyone can rewrite is not believed")
        #expect { _ = try runtime.requireInstallation() } throws: { ($0 as? LocalRuntimeError)?.message.contains("not safe to run") == true }
    }

    @Test func sessionIDsAreAFixedAlphabetAndTheFileName() throws {
        for id in ["20261125-173100-ab12", "example-local", "a", String(repeating: "x", count: 64)] { #expect(SessionID.isValid(id), "\(id)") }
        for id in ["", "../x", "a/b", "a.b", ".", "..", "a b", "é", String(repeating: "x", count: 65), "a\u{0}b"] { #expect(!SessionID.isValid(id), "\(id)") }
        let store = SessionStore(directory: directory)
        #expect(throws: SessionIDError.self) { try store.remove("../victim") }
        #expect(throws: SessionIDError.self) { _ = try store.lock("../../x") }
        let json = #"{"format":1,"id":"other","title":"t","created_at":"2026-11-25T10:00:00Z","updated_at":"2026-11-25T10:00:00Z","model":"m","messages":[]}"#
        #expect { _ = try SessionStore.decode(Data(json.utf8), path: "p/x.json", name: "x") } throws: {
            ($0 as? SessionFileError)?.problem.contains("not its file name; rename the file to other.json") == true
        }
        #expect(store.url(for: "../../etc/passwd").deletingLastPathComponent().path == directory.path, "even an unchecked id stays inside")
    }

    @Test func ambiguousOrEmptyNamesOpenNothing() throws {
        let store = SessionStore(directory: directory)
        try store.save(Session(id: "aa1", title: "Plans for May", model: "m"))
        try store.save(Session(id: "aa2", title: "Plans for June", model: "m"))
        #expect { _ = try store.find("aa") } throws: { ($0 as? SessionAmbiguous)?.matches.count == 2 }
        #expect { _ = try store.find("plans") } throws: { ($0 as? SessionAmbiguous)?.userMessage.contains("matches 2 sessions") == true }
        #expect(throws: SessionNotFound.self) { _ = try store.find("") }
        #expect(throws: SessionNotFound.self) { _ = try store.find("   ") }
        #expect(try store.find("aa1").title == "Plans for May")
        #expect(try store.find("plans for j").id == "aa2")
        #expect(try store.find(nil).id != "", "nil is the newest")
    }

    @Test func temporaryDirectoriesAreFreshAndPrivate() throws {
        let first = try PrivateFile.temporaryDirectory(), second = try PrivateFile.temporaryDirectory()
        defer { rmdir(first); rmdir(second) }
        #expect(first != second)
        var info = stat()
        #expect(stat(first, &info) == 0 && info.st_mode & 0o777 == 0o700)
    }

    @Test func aStalePIDIsSignalledOnlyWhenItIsOurWatchdog() throws {
        let sleeper = try ChildProcess.spawn(["sleep", "30"])
        defer { sleeper.signal(SIGKILL); _ = sleeper.wait() }
        #expect(!LocalRuntime.isWatchdogProcess(sleeper.pid))
        #expect(!LocalRuntime.isServerProcess(sleeper.pid))
        #expect(!LocalRuntime.isWatchdogProcess(1))
        #expect(!LocalRuntime.isWatchdogProcess(getpid()))
    }

    @Test func theListeningPortMustBelongToTheServerProcess() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        try #require(bound && listen(fd, 1) == 0)
        let port = Int(UInt16(bigEndian: address.sin_port))
        #expect(LocalRuntime.ownsListeningPort(getpid(), port: port))
        let sleeper = try ChildProcess.spawn(["sleep", "30"])
        defer { sleeper.signal(SIGKILL); _ = sleeper.wait() }
        #expect(!LocalRuntime.ownsListeningPort(sleeper.pid, port: port), "another process's socket is not the server's")
        #expect(!LocalRuntime.ownsListeningPort(getpid(), port: port == 65535 ? 1 : port + 1))
    }
}
