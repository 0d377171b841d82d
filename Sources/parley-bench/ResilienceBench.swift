import Foundation
import ParleyCore
import ParleyKit
import ParleyProviders
import ParleyTestSupport

/// A scratch engine whose providers are fault servers; its ledger and cache live in a temp directory.
func scratchEngine(_ config: String) throws -> (ChatEngine, URL) {
    let home = FileManager.default.temporaryDirectory.appendingPathComponent("parley-bench-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    let paths = ParleyPaths(configDirectory: home, dataDirectory: home.appendingPathComponent("data"), runtimeDirectory: ParleyPaths.fromEnvironment().runtimeDirectory)
    let engine = ChatEngine(config: try ParleyConfig.parse(config, file: "bench.toml"), paths: paths, environment: [:])
    return (engine, home)
}

/// Stop → the server sees the connection closed: the time between the consumer's cancel and the
/// server's channelInactive, through the same turn the screen runs.
func cancelBenchmark(runs: Int) async throws {
    let server = try await FaultServer(format: .openAI, script: [.stallMidStream(.seconds(30))])
    let (engine, home) = try scratchEngine("[providers.f]\nbase_url = \"\(server.providerBaseURL)\"\nmodels = [\"m\"]\n")
    var closes: [Double] = []
    for _ in 0..<runs {
        let before = server.clientClosures.count
        let (firstText, signal) = AsyncStream.makeStream(of: Void.self)
        let task = Task {
            for try await event in engine.turn(ChatRequest(model: "m", messages: [.user("hi")]), model: ModelRef(provider: "f", model: "m")) {
                if case .chat(.textDelta) = event { signal.yield() }
            }
        }
        // However the turn ends, the wait below ends too.
        Task { _ = await task.result; signal.finish() }
        for await _ in firstText { break }
        let stop = ContinuousClock.now
        task.cancel()
        while server.clientClosures.count == before { try await Task.sleep(for: .microseconds(200)) }
        closes.append((server.clientClosures[before] - stop).milliseconds)
    }
    await server.shutdown()
    try? FileManager.default.removeItem(at: home)
    print(String(format: "stop → connection closed at the server, %d runs: median %.2f ms, max %.2f ms (target: 100 ms)", runs, median(closes), closes.max() ?? 0))
}

/// A cache hit replaying a 2,000-token reply (about 8,000 characters), through the turn `ask` runs.
func cacheBenchmark(runs: Int) async throws {
    let words = (0..<2000).map { _ in " word" }
    let server = try await ScriptedHTTPServer { _ in
        let stream = FaultServer.events(.openAI, words: words)
        return ScriptedHTTPServer.sse(Array((stream.open + stream.words + stream.close + [stream.end]).joined().utf8))
    }
    let (engine, home) = try scratchEngine("[cache]\nenabled = true\n[providers.f]\nbase_url = \"\(server.baseURL)/v1\"\nmodels = [\"m\"]\n")
    let request = ChatRequest(model: "m", messages: [.user("Tell me a long story.")], temperature: 0)
    func once() async throws -> (Double, Bool, Int) {
        let start = ContinuousClock.now
        var hit = false
        var text = 0
        for try await event in engine.turn(request, model: ModelRef(provider: "f", model: "m")) {
            if case .cacheHit = event { hit = true }
            if case let .chat(.textDelta(t)) = event { text += t.utf8.count }
        }
        return ((ContinuousClock.now - start).milliseconds, hit, text)
    }
    let (miss, _, _) = try await once()
    var hits: [Double] = []
    var size = 0
    for _ in 0..<runs {
        let (ms, hit, text) = try await once()
        guard hit else { fatalError("expected a cache hit") }
        hits.append(ms)
        size = text
    }
    await server.shutdown()
    try? FileManager.default.removeItem(at: home)
    print(String(format: "2,000-token reply (%d bytes): from the provider on loopback %.2f ms; replayed from the cache, %d runs: median %.2f ms, max %.2f ms; requests sent: %d",
                 size, miss, runs, median(hits), hits.max() ?? 0, server.requestCount))
}

/// The prompt-token estimate against what the real local model counted, over prompts of every kind.
func estimateBenchmark() async throws {
    let engine = try ChatEngine.fromEnvironment()
    let (_, endpoint) = try await engine.prepare(model: "local")
    let code = "func fibonacci(_ n: Int) -> Int {\n    n < 2 ? n : fibonacci(n - 1) + fibonacci(n - 2)\n}\nprint((0..<20).map(fibonacci))\n"
    let prompts: [(String, ChatRequest)] = [
        ("greeting", ChatRequest(model: "", messages: [.user("Hi!")])),
        ("question", ChatRequest(model: "", messages: [.user("What is the capital of France, and why did it become the capital?")])),
        ("with system", ChatRequest(model: "", system: "You are a terse assistant. Answer in one sentence.", messages: [.user("Explain TCP slow start.")])),
        ("paragraph", ChatRequest(model: "", messages: [.user(String(repeating: "The quick brown fox jumps over the lazy dog while the cat watches from the windowsill. ", count: 12))])),
        ("code", ChatRequest(model: "", messages: [.user("Review this Swift:\n\n" + code)])),
        ("json", ChatRequest(model: "", messages: [.user(#"Validate: {"users":[{"id":1,"name":"Ada","tags":["math","engines"]},{"id":2,"name":"Grace","tags":["cobol","navy"]}]}"#)])),
        ("conversation", ChatRequest(model: "", messages: [.user("Name three rivers."), .assistant("The Nile, the Amazon and the Yangtze."), .user("Which is longest?"), .assistant("The Nile, by most measurements."), .user("How long is it?")])),
        ("german", ChatRequest(model: "", messages: [.user("Wie spät ist es in Berlin, wenn es in New York zwölf Uhr mittags ist?")])),
        ("japanese", ChatRequest(model: "", messages: [.user("東京で一番高い建物は何ですか？その高さも教えてください。")])),
        ("long", ChatRequest(model: "", messages: [.user(String(repeating: "Parley is a terminal chat application for large language models written in Swift. ", count: 60))])),
    ]
    var errors: [Double] = []
    print("prompt           estimate  llama.cpp  error")
    for (name, prompt) in prompts {
        var request = prompt
        // SmolLM2's chat template adds a default system prompt when there is none; a real one keeps
        // the count to what was sent.
        if request.system == nil { request.system = "You are a helpful assistant." }
        request.model = "smollm2"
        request.maxTokens = 1
        var usage: Usage?
        for try await event in engine.stream(request, endpoint: endpoint) { if case let .usage(u) = event { usage = u } }
        guard let counted = usage?.totalPromptTokens, counted > 0 else { continue }
        let estimate = TokenEstimator.estimate(request)
        let error = Double(estimate - counted) / Double(counted)
        errors.append(error)
        print(name.padding(toLength: 16, withPad: " ", startingAt: 0) + String(format: "%9d  %9d  %+5.1f %%", estimate, counted, error * 100))
    }
    let absolute = errors.map(abs)
    print(String(format: "mean absolute error %.1f %%, worst %+.1f %%, mean signed %+.1f %% (positive = overestimate, the safe side for budgets)",
                 absolute.reduce(0, +) / Double(max(1, absolute.count)) * 100,
                 (errors.max { abs($0) < abs($1) } ?? 0) * 100, errors.reduce(0, +) / Double(max(1, errors.count)) * 100))
}
