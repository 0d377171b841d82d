import Foundation
import Testing
import ParleyCore
import ParleyKit
import ParleyTestSupport

/// Fallback, budgets and the cache through the real binary: `parley ask`, and the screen in tmux,
/// with a fault server as the first provider and the real llama-server + SmolLM2 behind it.
@Suite(.serialized) struct ResilienceEndToEndTests {
    static func config(_ server: FaultServer, extra: String = "") -> String {
        """
        fallback = ["local"]
        \(extra)
        [providers.flaky]
        base_url = "\(server.providerBaseURL)"
        models = ["m"]
        max_retries = 1

        [providers.local]
        max_tokens = 24

        """
    }

    @Test func askFallsBackFromARateLimitedModelToTheLocalOne() async throws {
        let server = try await FaultServer(format: .openAI, script: [.rateLimited(retryAfter: "0", retryAfterMs: nil)])
        let harness = try ParleyHarness(config: Self.config(server))
        defer { harness.cleanUp() }
        try #require(LocalRuntime(paths: harness.paths, settings: LocalSettings()).installation() != nil, "run `parley setup` first")
        let result = try harness.run(["ask", "--model", "flaky:m", "--json", "--temperature", "0", "Name a color."])
        await server.shutdown()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(server.requestCount == 2)
        #expect(result.stderr.contains("parley: flaky: HTTP 429: Rate limit reached; slow down; rate limited"))
        #expect(result.stderr.contains("parley: falling back from flaky:m to local:smollm2"))
        let json = try JSONValue.parse(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(json["provider"]?.string == "local")
        #expect((json["text"]?.string ?? "").isEmpty == false)
        #expect(json["failed_attempts"]?[0]?["model"]?.string == "flaky:m")
        #expect(json["cost_usd"]?.double == 0)

        // The ledger has both: the failed model with its attempts, and the answer with where it fell back from.
        let cost = try harness.run(["cost", "--json"])
        #expect(cost.status == 0, "\(cost.stderr)")
        let report = try JSONValue.parse(cost.stdout)
        let models = report["by_model"]?.array ?? []
        #expect(models.contains { $0["key"]?.string == "flaky:m" && $0["errors"]?.int == 1 })
        #expect(models.contains { $0["key"]?.string == "local:smollm2" && $0["requests"]?.int == 1 })
        let rows = try Ledger(path: harness.paths.dataDirectory.appendingPathComponent("usage.sqlite").path).entries()
        #expect(rows.map(\.attempts) == [2, 1])
        #expect(rows.last?.fallbackFrom == "flaky:m")
    }

    @Test func askRefusesOverBudgetBeforeSendingAndRepeatsFromTheCache() async throws {
        let server = try await FaultServer(format: .openAI, script: [.ok])
        let harness = try ParleyHarness(config: Self.config(server, extra: "[models.\"flaky:m\"]\ninput_price = 5\noutput_price = 15\nmax_output = 4096\n"))
        defer { harness.cleanUp() }
        let refused = try harness.run(["ask", "--model", "flaky:m", "--no-fallback", "--budget", "0.01", "hello"])
        #expect(refused.status == 1)
        #expect(refused.stderr.hasPrefix("parley: budget: flaky:m refused before sending — request spend $0.00 plus this request's worst case $0.061"), "\(refused.stderr)")
        #expect(refused.stderr.contains("raise --budget"))
        #expect(server.requestCount == 0)

        let first = try harness.run(["ask", "--model", "flaky:m", "--cache", "--temperature", "0", "--json", "hello"])
        let second = try harness.run(["ask", "--model", "flaky:m", "--cache", "--temperature", "0", "--json", "hello"])
        await server.shutdown()
        #expect(server.requestCount == 1)
        let a = try JSONValue.parse(first.stdout), b = try JSONValue.parse(second.stdout)
        #expect(a["cached"]?.bool == false && b["cached"]?.bool == true)
        #expect(b["text"]?.string == FaultServer.replyText)
        #expect((a["cost_usd"]?.double ?? 0) > 0)
        #expect(b["cost_usd"]?.double == 0)
        let stats = try harness.run(["cache", "stats"])
        #expect(stats.stdout.contains("1 replies"), "\(stats.stdout)")
        #expect(stats.stdout.contains("1 hits"))
    }

    @Test func theScreenFallsBackAndTheSessionSaysWhy() async throws {
        // The first model is rate limited twice (its one retry included); the local model answers.
        let server = try await FaultServer(format: .anthropic, script: [.rateLimited(retryAfter: "0", retryAfterMs: nil)])
        let harness = try ParleyHarness(config: "default_model = \"flaky:m\"\n" + Self.config(server).replacingOccurrences(of: "models = [\"m\"]", with: "models = [\"m\"]\nformat = \"anthropic\""))
        defer { harness.cleanUp() }
        try #require(LocalRuntime(paths: harness.paths, settings: LocalSettings()).installation() != nil, "run `parley setup` first")
        let tmux = ScreenTests.Tmux()
        tmux.start(harness, command: [ParleyHarness.binary])
        defer { tmux.run(["kill-server"]) }
        try #require(tmux.wait(for: "type a message").contains("flaky:m"))
        tmux.type("Name a color.")
        tmux.keys("Enter")
        let screen = tmux.wait(for: "tok/s", seconds: 60)
        #expect(screen.contains("▌ local:smollm2 · fell back from flaky:m"), "\(screen)")
        #expect(server.requestCount == 2)
        tmux.type("/quit")
        tmux.keys("Enter")
        usleep(300_000)
        await server.shutdown()
        let store = SessionStore(directory: harness.home.appendingPathComponent("data/parley/sessions"))
        let session = try #require(store.list().sessions.first)
        let reply = try #require(session.messages.last)
        #expect(reply.provider == "local")
        #expect(reply.status == .complete)
        #expect(reply.failedAttempts?.first?.model == "flaky:m")
        #expect(reply.failedAttempts?.first?.error.hasPrefix("flaky: HTTP 429: Rate limit reached; slow down") == true)
    }
}
