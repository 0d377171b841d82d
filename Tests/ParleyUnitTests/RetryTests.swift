import Foundation
import Synchronization
import Testing
import ParleyCore
@testable import ParleyProviders
import ParleyTestSupport

/// The retry policy, with the jitter pinned and no real sleeping.
@Suite struct RetryPolicyTests {
    func http(_ status: Int, retryAfter: Double? = nil, shouldRetry: Bool? = nil) -> ProviderError {
        var error = ProviderError(kind: .http, provider: "p", status: status, message: "m")
        error.retryAfter = retryAfter
        error.shouldRetry = shouldRetry
        return error
    }

    @Test func whatIsRetriedAndWhatNever() {
        for status in [408, 409, 429, 500, 502, 503, 529] { #expect(RetryPolicy.isRetryable(http(status)), "\(status)") }
        for status in [400, 401, 403, 404, 413, 422] { #expect(!RetryPolicy.isRetryable(http(status)), "\(status)") }
        #expect(RetryPolicy.isRetryable(ProviderError(kind: .connection, provider: "p", message: "reset")))
        #expect(RetryPolicy.isRetryable(ProviderError(kind: .connectTimeout, provider: "p", message: "t")))
        #expect(RetryPolicy.isRetryable(ProviderError(kind: .firstTokenTimeout, provider: "p", message: "t")))
        for kind in [ProviderError.Kind.missingKey, .cutOff, .inStream, .malformed, .idleTimeout, .cancelled] {
            #expect(!RetryPolicy.isRetryable(ProviderError(kind: kind, provider: "p", message: "m")), "\(kind)")
        }
        // x-should-retry wins both ways.
        #expect(!RetryPolicy.isRetryable(http(503, shouldRetry: false)))
        #expect(RetryPolicy.isRetryable(http(400, shouldRetry: true)))
    }

    @Test func exponentialBackoffWithJitterBoundsAndACap() {
        let policy = RetryPolicy(maxRetries: 10)
        let noJitter = (0..<6).map { policy.delay(for: http(500), retriesSoFar: $0, random: 0) }
        #expect(noJitter == [0.5, 1, 2, 4, 8, 8])
        let fullJitter = (0..<6).map { policy.delay(for: http(500), retriesSoFar: $0, random: 0.999_999)! }
        for (low, high) in zip(fullJitter, noJitter.map { $0! }) { #expect(low > high * 0.75 - 1e-6 && low <= high) }
        #expect(RetryPolicy().delay(for: http(500), retriesSoFar: 2, random: 0) == nil)  // 2 retries by default
        #expect(RetryPolicy(maxRetries: 0).delay(for: http(500), retriesSoFar: 0, random: 0) == nil)
    }

    @Test func theServersRequestedDelayWhenItIsAtMostAMinute() {
        #expect(RetryPolicy().delay(for: http(429, retryAfter: 3), retriesSoFar: 0, random: 0.5) == 3)
        #expect(RetryPolicy().delay(for: http(429, retryAfter: 61), retriesSoFar: 0, random: 0) == 0.5)
        #expect(RetryPolicy.retryAfter([("retry-after-ms", "1500"), ("retry-after", "9")]) == 1.5)  // ms first
        #expect(RetryPolicy.retryAfter([("Retry-After", "7")]) == 7)
        let now = Date(timeIntervalSince1970: 1_764_000_000)  // Mon, 24 Nov 2025 16:00:00 GMT
        #expect(RetryPolicy.retryAfter([("retry-after", "Mon, 24 Nov 2025 16:00:20 GMT")], now: now) == 20)
        #expect(RetryPolicy.retryAfter([("retry-after", "soon")]) == nil)
        #expect(RetryPolicy.shouldRetryHeader([("X-Should-Retry", "false")]) == false)
    }
}

/// The client's retries against a loopback server: attempts made, delays asked for, outcome.
@Suite struct ClientRetryTests {
    func endpoint(_ server: ScriptedHTTPServer) -> ProviderEndpoint {
        ProviderEndpoint(name: "openai", format: .openAIChat, baseURL: server.baseURL + "/v1", apiKey: "sk-test", apiKeyVariable: "OPENAI_API_KEY", requiresKey: true,
                         timeouts: TransportTimeouts(connect: .seconds(2), firstToken: .seconds(5), idle: .seconds(5)))
    }

    let ok = ScriptedHTTPServer.sse(Array("data: {\"choices\":[{\"delta\":{\"content\":\"fine\"}}]}\n\ndata: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n".utf8))

    func run(_ server: ScriptedHTTPServer) async -> (text: String, error: ProviderError?, delays: [Double], retries: [String]) {
        let delays = Mutex<[Double]>([])
        let client = ChatClient(sleep: { seconds in delays.withLock { $0.append(seconds) } }, random: { 0 })
        var text = ""
        var retries: [String] = []
        var failure: ProviderError?
        do {
            for try await event in client.stream(ChatRequest(model: "m", messages: [.user("hi")]), endpoint: endpoint(server)) {
                if case let .textDelta(t) = event { text += t }
                if case let .retrying(attempt, _, delay, reason) = event { retries.append("\(attempt) \(delay) \(reason)") }
            }
        } catch {
            failure = error as? ProviderError
        }
        return (text, failure, delays.withLock { $0 }, retries)
    }

    @Test func a429TwiceThenAnAnswer() async throws {
        let count = Mutex(0)
        let ok = self.ok
        let server = try await ScriptedHTTPServer { _ in
            let n = count.withLock { $0 += 1; return $0 }
            return n <= 2 ? ScriptedHTTPServer.json(#"{"error":{"message":"slow down","type":"rate_limit"}}"#, status: 429, headers: [("retry-after-ms", "250")]) : ok
        }
        let result = await run(server)
        await server.shutdown()
        #expect(server.requestCount == 3)
        #expect(result.delays == [0.25, 0.25])
        #expect(result.retries == ["1 0.25 rate limited", "2 0.25 rate limited"])
        #expect(result.text == "fine")
        #expect(result.error == nil)
    }

    @Test func serverErrorsExhaustTheRetriesAndSayWhy() async throws {
        let server = try await ScriptedHTTPServer { _ in ScriptedHTTPServer.json(#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#, status: 529) }
        let result = await run(server)
        await server.shutdown()
        #expect(server.requestCount == 3)
        #expect(result.delays == [0.5, 1])
        #expect(result.retries == ["1 0.5 overloaded", "2 1.0 overloaded"])
        #expect(result.error?.status == 529)
        #expect(result.error?.userMessage.contains("Overloaded") == true)
    }

    @Test func badRequestsAndShouldRetryFalseAreNotRetried() async throws {
        let server = try await ScriptedHTTPServer { request in
            request.bodyText.contains("\"hi\"") ? ScriptedHTTPServer.json(#"{"error":{"message":"bad"}}"#, status: 400) : []
        }
        let result = await run(server)
        await server.shutdown()
        #expect(server.requestCount == 1)
        #expect(result.delays.isEmpty)
        #expect(result.error?.status == 400)

        let refusing = try await ScriptedHTTPServer { _ in ScriptedHTTPServer.json(#"{"error":{"message":"no"}}"#, status: 503, headers: [("x-should-retry", "false")]) }
        let second = await run(refusing)
        await refusing.shutdown()
        #expect(refusing.requestCount == 1)
        #expect(second.error?.status == 503)
    }

    @Test func aReplyLongerThanTheTotalTimeoutEndsAsAnErrorWithItsTextKept() async throws {
        let server = try await ScriptedHTTPServer { _ in
            [.head(status: 200, headers: [("Content-Type", "text/event-stream")])]
                + (0..<30).flatMap { _ -> [ScriptedHTTPServer.Step] in
                    [.write(Array("data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n".utf8)), .pause(.seconds(1))]
                } + [.write(Array("data: [DONE]\n\n".utf8)), .end]
        }
        var dead = endpoint(server)
        // 30 chunks a second apart against a 3 s limit: wide margins either side, so load cannot flip it.
        dead.timeouts.total = .seconds(3)
        var text = ""
        var failure: ProviderError?
        do {
            for try await event in ChatClient().stream(ChatRequest(model: "m", messages: [.user("hi")]), endpoint: dead) {
                if case let .textDelta(t) = event { text += t }
            }
        } catch {
            failure = error as? ProviderError
        }
        await server.shutdown()
        #expect(failure?.kind == .totalTimeout)
        #expect(failure?.userMessage.contains("longer than 3 s") == true)
        #expect(!text.isEmpty && text.count < 30)
        #expect(server.requestCount == 1)  // output had started: not retried
    }

    @Test func aReplyThatHasStartedIsNotRetried() async throws {
        let server = try await ScriptedHTTPServer { _ in
            [.head(status: 200, headers: [("Content-Type", "text/event-stream")]),
             .write(Array("data: {\"choices\":[{\"delta\":{\"content\":\"partial\"}}]}\n\n".utf8)), .close]
        }
        let result = await run(server)
        await server.shutdown()
        #expect(server.requestCount == 1)
        #expect(result.text == "partial")
        #expect(result.error != nil)
    }
}
