import Foundation
import Testing
import ParleyCore
import ParleyKit
import ParleyTestSupport

/// Issue 11: what a hostile provider or a crafted file does to the real binary. Every row of the issue's
/// table, in both wire formats where a provider sends it: the exit status, one clean line on stderr,
/// no crash, nothing billed below zero, the key never at another origin, memory bounded, and no file
/// touched outside Parley's own directories.
@Suite(.serialized) struct HostileInputTests {
    static let key = "sk-hostile-test-0123456789"

    static func config(_ server: FaultServer, extra: String = "") -> String {
        """
        \(extra)
        [providers.hostile]
        base_url = "\(server.providerBaseURL)"
        format = "\(server.format == .openAI ? "openai" : "anthropic")"
        api_key_env = "HOSTILE_KEY"
        models = ["m"]
        max_retries = 0
        headers = { "X-Team" = "core" }

        """
    }

    /// Runs `parley ask` against a server playing `fault`.
    static func ask(_ fault: FaultServer.Fault, format: FaultServer.Format, extra: String = "", arguments: [String] = [],
                    measuringMemory: Bool = false) async throws -> (ParleyHarness.Result, FaultServer, ParleyHarness) {
        let server = try await FaultServer(format: format, script: [fault])
        let harness = try ParleyHarness(config: config(server, extra: extra))
        let result = try harness.run(["ask", "--model", "hostile:m", "--no-fallback"] + arguments + ["hello"],
                                     extraEnvironment: ["HOSTILE_KEY": key], limit: 120, measuringMemory: measuringMemory)
        return (result, server, harness)
    }

    /// The lines Parley wrote on stderr (its own lines start with "parley:").
    static func errorLines(_ result: ParleyHarness.Result) -> [Substring] {
        result.stderr.split(separator: "\n").filter { !$0.hasPrefix("maxrss_kb=") }
    }

    @Test(arguments: [FaultServer.Format.openAI, .anthropic])
    func aTokenCountPastIntMaxIsAProtocolErrorNotACrash(format: FaultServer.Format) async throws {
        let (result, server, harness) = try await Self.ask(.usage(prompt: "9223372036854775807", completion: "5"), format: format)
        defer { harness.cleanUp() }
        await server.shutdown()
        #expect(result.status == 1, "a crash exits 132 (SIGILL): \(result.status) \(result.stderr)")
        #expect(Self.errorLines(result).count == 1, "\(result.stderr)")
        // 2^63 - 1 arrives as the nearest double, 2^63, and is shown so.
        #expect(result.stderr.contains(" = 9223372036854775808, which is not a token count"), "\(result.stderr)")
        #expect(result.stdout.contains(FaultServer.replyText), "the text that arrived is kept")
    }

    @Test(arguments: [FaultServer.Format.openAI, .anthropic])
    func aNegativeTokenCountIsNeverBilled(format: FaultServer.Format) async throws {
        let priced = "[models.\"hostile:m\"]\ninput_price = 5\noutput_price = 15\n"
        let (result, server, harness) = try await Self.ask(.usage(prompt: "10", completion: "-100000000"), format: format, extra: priced)
        defer { harness.cleanUp() }
        await server.shutdown()
        #expect(result.status == 1)
        #expect(result.stderr.contains("-100000000, which is not a token count"), "\(result.stderr)")
        let rows = try Ledger(path: harness.paths.dataDirectory.appendingPathComponent("usage.sqlite").path).entries()
        #expect(!rows.isEmpty)
        #expect(rows.allSatisfy { ($0.cost ?? 0) >= 0 }, "\(rows.map(\.cost))")
        let cost = try harness.run(["cost", "--json"])
        let today = try #require(try JSONValue.parse(cost.stdout)["today"]?["cost_usd"]?.double)
        #expect(today >= 0, "\(cost.stdout)")
    }

    @Test(arguments: [FaultServer.Format.openAI, .anthropic])
    func aRateLimitResetFarBeyondAnyClockDoesNotCrash(format: FaultServer.Format) async throws {
        let headers: [(String, String)] = format == .openAI
            ? [("x-ratelimit-limit-requests", "100"), ("x-ratelimit-remaining-requests", "0"), ("x-ratelimit-reset-requests", "99999999999999999999s")]
            : [("anthropic-ratelimit-requests-limit", "100"), ("anthropic-ratelimit-requests-remaining", "0"),
               ("anthropic-ratelimit-requests-reset", "9999-12-31T23:59:59Z")]
        let (result, server, harness) = try await Self.ask(.headers(headers), format: format, arguments: ["--stats"])
        defer { harness.cleanUp() }
        await server.shutdown()
        #expect(result.status == 0, "\(result.status) \(result.stderr)")
        #expect(result.stderr.contains("rate limit: 0/100 requests"), "\(result.stderr)")
        #expect(!result.stderr.contains("reset"), "a reset past a year is not believed: \(result.stderr)")
    }

    @Test(arguments: [FaultServer.Format.openAI, .anthropic])
    func escapeSequencesInAnErrorNeverReachTheTerminal(format: FaultServer.Format) async throws {
        let message = #"\u001b]0;PWNED\u0007bad \u001b[2Jrequest\u009b31m\nparley: a line the server made up\u202egnp.exe"#
        let (result, server, harness) = try await Self.ask(.status(400, message: message, headers: []), format: format)
        defer { harness.cleanUp() }
        await server.shutdown()
        #expect(result.status == 1)
        let bytes = Array(result.stderr.utf8)
        #expect(!bytes.contains(0x1B) && !bytes.contains(0x07), "\(result.stderr.debugDescription)")
        #expect(!result.stderr.unicodeScalars.contains { (0x80...0x9F).contains($0.value) || $0.value == 0x202E })
        #expect(!result.stderr.contains("PWNED"))
        #expect(Self.errorLines(result).count == 1, "one line, whatever newlines the message held: \(result.stderr)")
        #expect(result.stderr.contains("bad request"), "\(result.stderr)")
        #expect(result.stderr.contains("<U+202E>gnp.exe"), "a bidi override is shown, not obeyed: \(result.stderr)")
    }

    @Test(arguments: [FaultServer.Format.openAI, .anthropic])
    func aRedirectToAnotherOriginIsNotFollowed(format: FaultServer.Format) async throws {
        let elsewhere = try await ScriptedHTTPServer { _ in FaultServer.steps(.ok, format: format) }
        let path = format == .openAI ? "/v1/chat/completions" : "/v1/messages"
        let (result, server, harness) = try await Self.ask(.redirect(location: elsewhere.baseURL + path), format: format)
        defer { harness.cleanUp() }
        await server.shutdown()
        await elsewhere.shutdown()
        #expect(result.status == 1)
        #expect(result.stderr.contains("HTTP 307: answered with a redirect to \(elsewhere.baseURL)\(path)"), "\(result.stderr)")
        #expect(result.stderr.contains("does not follow redirects"))
        #expect(elsewhere.requestCount == 0, "nothing, and so no key and no configured header, went to the other origin")
        let sent = try #require(server.requests.first)
        #expect((sent.headers["authorization"] ?? sent.headers["x-api-key"] ?? "").contains(Self.key), "the configured origin got the key")
        #expect(sent.headers["x-team"] == "core")
    }

    /// The issue's row 6: a line that never ends grew memory to 416 MB. Now it stops at max_event_kb
    /// (4 MB by default) with resident memory well under 100 MB.
    @Test(arguments: [FaultServer.Format.openAI, .anthropic])
    func aLineThatNeverEndsStopsAtTheLimitWithMemoryBounded(format: FaultServer.Format) async throws {
        let (result, server, harness) = try await Self.ask(.endlessLine(megabytes: 400), format: format, measuringMemory: true)
        defer { harness.cleanUp() }
        await server.shutdown()
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.contains("sent one stream event longer than 4 MB (max_event_kb)"), "\(result.stderr)")
        let peak = result.stderr.split(separator: "\n").first { $0.hasPrefix("maxrss_kb=") }.flatMap { Int($0.dropFirst("maxrss_kb=".count)) }
        let kilobytes = try #require(peak)
        #expect(kilobytes < 100_000, "peak resident memory \(kilobytes) kB")
    }

    @Test func aReplyPastMaxReplyMegabytesIsStopped() async throws {
        let server = try await FaultServer(format: .openAI, script: [.huge(bytes: 5_000_000)])
        let harness = try ParleyHarness(config: Self.config(server).replacingOccurrences(of: "max_retries = 0", with: "max_retries = 0\nmax_reply_mb = 1"))
        defer { harness.cleanUp() }
        let result = try harness.run(["ask", "--model", "hostile:m", "hello"], extraEnvironment: ["HOSTILE_KEY": Self.key])
        await server.shutdown()
        #expect(result.status == 1)
        #expect(result.stderr.contains("more than 1 MB of stream for one reply (max_reply_mb)"), "\(result.stderr)")
    }

    /// The issue's row 7: a session file whose id climbs out of the sessions directory.
    @Test func aCraftedSessionIDNeverBecomesAPathOutsideTheSessionsDirectory() throws {
        let harness = try ParleyHarness()
        defer { harness.cleanUp() }
        let sessions = harness.paths.dataDirectory.appendingPathComponent("sessions")
        let victim = harness.home.appendingPathComponent("victim")
        try FileManager.default.createDirectory(at: sessions, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: victim, withIntermediateDirectories: true)
        for file in ["target.json", "target.lock", "target.journal"] {
            try Data("precious".utf8).write(to: victim.appendingPathComponent(file))
        }
        let evil = """
        {"format":1,"id":"../../../victim/target","title":"Evil","created_at":"2026-11-25T10:00:00Z",
         "updated_at":"2026-11-25T10:00:00Z","model":"local:smollm2","messages":[]}
        """
        try Data(evil.utf8).write(to: sessions.appendingPathComponent("Evil.json"))

        let removed = try harness.run(["sessions", "rm", "Evil", "--yes"])
        #expect(removed.status == 1)
        let listed = try harness.run(["sessions", "list"])
        #expect(listed.stderr.contains("Evil.json: has the id \"../../../victim/target\", which is not a session id"), "\(listed.stderr)")
        let resumed = try harness.run(["--resume", "Evil"], input: "hi\n")
        #expect(resumed.status == 1)
        for file in ["target.json", "target.lock", "target.journal"] {
            #expect(try String(contentsOf: victim.appendingPathComponent(file), encoding: .utf8) == "precious", "\(file)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: victim.path).sorted() == ["target.journal", "target.json", "target.lock"])
        #expect(FileManager.default.fileExists(atPath: sessions.appendingPathComponent("Evil.json").path), "the bad file is left as it is")
    }

    @Test func anAmbiguousPrefixDeletesNothingAndListsTheMatches() throws {
        let harness = try ParleyHarness()
        defer { harness.cleanUp() }
        let store = SessionStore(directory: harness.paths.dataDirectory.appendingPathComponent("sessions"))
        for id in ["20261125-100000-aaaa", "20261125-100000-aaab"] {
            try store.save(Session(id: id, title: "t \(id)", model: "local:smollm2"))
        }
        let result = try harness.run(["sessions", "rm", "20261125-100000-aa", "--yes"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("matches 2 sessions: 20261125-100000-aaab"), "\(result.stderr)")
        #expect(result.stderr.contains("20261125-100000-aaaa"))
        #expect(store.list().sessions.count == 2)
        let empty = try harness.run(["sessions", "rm", "", "--yes"])
        #expect(empty.status == 1, "an empty name is never the newest session")
        #expect(store.list().sessions.count == 2)
    }

    /// The issue's row 8: one provider:model at two base URLs is two cache entries.
    @Test func theCacheDoesNotAnswerOneServerWithAnothersReply() async throws {
        let first = try await FaultServer(format: .openAI, script: [.ok])
        let second = try await FaultServer(format: .openAI, script: [.ok])
        let cache = "temperature = 0\n[cache]\nenabled = true\n"
        let harness = try ParleyHarness(config: Self.config(first, extra: cache))
        defer { harness.cleanUp() }
        #expect(try harness.run(["ask", "--model", "hostile:m", "hello"], extraEnvironment: ["HOSTILE_KEY": Self.key]).status == 0)
        #expect(try harness.run(["ask", "--model", "hostile:m", "hello"], extraEnvironment: ["HOSTILE_KEY": Self.key]).status == 0)
        #expect(first.requestCount == 1, "the same server's repeat is a hit")
        try Self.config(second, extra: cache).write(to: harness.home.appendingPathComponent("config/parley/config.toml"), atomically: true, encoding: .utf8)
        let moved = try harness.run(["ask", "--model", "hostile:m", "--json", "hello"], extraEnvironment: ["HOSTILE_KEY": Self.key])
        await first.shutdown()
        await second.shutdown()
        #expect(moved.status == 0, "\(moved.stderr)")
        #expect(second.requestCount == 1, "another base URL is asked, not answered from the first one's cache")
        #expect(try JSONValue.parse(moved.stdout)["cached"]?.bool == false)
    }

    /// The issue's row 9: the line chat went around budgets; now it takes the same turn as ask.
    @Test func theLineChatKeepsTheBudget() async throws {
        let server = try await FaultServer(format: .openAI, script: [.ok])
        let harness = try ParleyHarness(config: Self.config(server, extra: "[budget]\ndaily = 0.000001\n[models.\"hostile:m\"]\ninput_price = 5\noutput_price = 15\n"))
        defer { harness.cleanUp() }
        let result = try harness.run(["--model", "hostile:m"], input: "hi\n", extraEnvironment: ["HOSTILE_KEY": Self.key])
        await server.shutdown()
        #expect(server.requestCount == 0, "refused before sending")
        #expect(result.stdout.contains("budget: hostile:m refused before sending"), "\(result.stdout)")
        let rows = try Ledger(path: harness.paths.dataDirectory.appendingPathComponent("usage.sqlite").path).entries()
        #expect(rows.map(\.outcome.rawValue) == ["refused"])
    }
}
