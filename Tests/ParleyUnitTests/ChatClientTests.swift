import Foundation
import Testing
import ParleyCore
import ParleyProviders
import ParleyTestSupport

/// The live client against a loopback server playing a provider.
@Suite struct ChatClientTests {
    func endpoint(_ server: ScriptedHTTPServer, format: WireFormat = .openAIChat, key: String? = "sk-test",
                  timeouts: TransportTimeouts = TransportTimeouts(connect: .seconds(2), firstToken: .seconds(5), idle: .seconds(5))) -> ProviderEndpoint {
        ProviderEndpoint(
            name: "openai", format: format, baseURL: format == .openAIChat ? server.baseURL + "/v1" : server.baseURL,
            apiKey: key, apiKeyVariable: "OPENAI_API_KEY", requiresKey: true, timeouts: timeouts
        )
    }

    func collect(_ stream: AsyncThrowingStream<ChatEvent, any Error>) async -> (events: [ChatEvent], error: ProviderError?) {
        var events: [ChatEvent] = []
        do {
            for try await event in stream { events.append(event) }
            return (events, nil)
        } catch {
            return (events, error as? ProviderError)
        }
    }

    let request = ChatRequest(model: "gpt-4o-mini", messages: [.user("hi")])

    @Test func streamsAFixtureOverHTTP() async throws {
        let body = try Fixture.bytes("openai-tools-usage.sse")
        let server = try await ScriptedHTTPServer { _ in ScriptedHTTPServer.sse(body) }
        let (events, error) = await collect(ChatClient().stream(request, endpoint: endpoint(server)))
        await server.shutdown()
        #expect(error == nil)
        #expect(events.text == "Checking the weather in Zürich 🌦️…")
        #expect(events.toolCalls.count == 2)
        #expect(events.lastUsage?.cachedTokens == 1024)
        let sent = try #require(server.requests.first)
        #expect(sent.uri == "/v1/chat/completions")
        #expect(sent.headers["authorization"] == "Bearer sk-test")
    }

    @Test func dripOneByteAtATime() async throws {
        let body = try Fixture.bytes("anthropic-tools-usage.sse")
        let server = try await ScriptedHTTPServer { _ in
            [.head(status: 200, headers: [("Content-Type", "text/event-stream")])] + body.map { .write([$0]) } + [.end]
        }
        let (events, error) = await collect(ChatClient().stream(request, endpoint: endpoint(server, format: .anthropicMessages)))
        await server.shutdown()
        #expect(error == nil)
        #expect(events.text == "Let me check 日本の天気.")
        #expect(server.requests.first?.uri == "/v1/messages")
        #expect(server.requests.first?.headers["x-api-key"] == "sk-test")
    }

    @Test func nonSuccessStatusCarriesTheProvidersMessage() async throws {
        let server = try await ScriptedHTTPServer { _ in
            ScriptedHTTPServer.json(#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}}"#, status: 401)
        }
        let (events, error) = await collect(ChatClient().stream(request, endpoint: endpoint(server)))
        await server.shutdown()
        #expect(events.isEmpty)
        #expect(error?.kind == .http)
        #expect(error?.status == 401)
        #expect(error?.userMessage == "openai: HTTP 401: Incorrect API key provided; check the key in OPENAI_API_KEY, or pick another model with --model or /model")
    }

    @Test func bodyEndingWithoutTerminatorIsCutOffAndKeepsWhatArrived() async throws {
        let server = try await ScriptedHTTPServer { _ in
            ScriptedHTTPServer.sse(Array("data: {\"choices\":[{\"delta\":{\"content\":\"half a\"}}]}\n\n".utf8))
        }
        let (events, error) = await collect(ChatClient().stream(request, endpoint: endpoint(server)))
        await server.shutdown()
        #expect(events.text == "half a")
        #expect(error?.kind == .cutOff)
    }

    @Test func connectionDroppedMidStream() async throws {
        let server = try await ScriptedHTTPServer { _ in
            [.head(status: 200, headers: [("Content-Type", "text/event-stream")]),
             .write(Array("data: {\"choices\":[{\"delta\":{\"content\":\"so far\"}}]}\n\n".utf8)), .close]
        }
        let (events, error) = await collect(ChatClient().stream(request, endpoint: endpoint(server)))
        await server.shutdown()
        #expect(events.text == "so far")
        #expect(error != nil)
        #expect(error?.kind == .connection || error?.kind == .cutOff)
    }

    @Test func idleTimeoutBetweenChunks() async throws {
        let server = try await ScriptedHTTPServer { _ in
            [.head(status: 200, headers: [("Content-Type", "text/event-stream")]),
             .write(Array("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n".utf8)), .pause(.seconds(60)), .end]
        }
        let timeouts = TransportTimeouts(connect: .seconds(1), firstToken: .seconds(5), idle: .milliseconds(300))
        let (events, error) = await collect(ChatClient().stream(request, endpoint: endpoint(server, timeouts: timeouts)))
        await server.shutdown()
        #expect(events.text == "a")
        #expect(error?.kind == .idleTimeout)
    }

    @Test func aHeadWithoutATokenHitsTheFirstTokenLimitNotTheIdleOne() async throws {
        // llama-server style: the head and a role-only chunk at once, then silence while the prompt is read.
        let server = try await ScriptedHTTPServer { _ in
            [.head(status: 200, headers: [("Content-Type", "text/event-stream")]),
             .write(Array("data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n".utf8)), .pause(.seconds(60)), .end]
        }
        let timeouts = TransportTimeouts(connect: .seconds(1), firstToken: .milliseconds(300), idle: .seconds(10))
        let started = ContinuousClock.now
        let client = ChatClient(sleep: { _ in }, random: { 0 })
        let (events, error) = await collect(client.stream(request, endpoint: endpoint(server, timeouts: timeouts)))
        // Three attempts under the idle limit would take 30 s at least; under the first-token limit about
        // one. Measured before the server's shutdown, which waits on its paused handlers on a loaded machine.
        let elapsed = ContinuousClock.now - started
        await server.shutdown()
        #expect(elapsed < .seconds(25))
        #expect(events.text == "")
        #expect(error?.kind == .firstTokenTimeout)
        #expect(error?.userMessage == "openai: no reply began within 0.3 s; the server may be overloaded; try again, or raise first_token_timeout for this provider or model")
        #expect(server.requestCount == 3)
    }

    @Test func missingKeySendsNothing() async throws {
        let server = try await ScriptedHTTPServer { _ in ScriptedHTTPServer.sse([]) }
        let (_, error) = await collect(ChatClient().stream(request, endpoint: endpoint(server, key: nil)))
        await server.shutdown()
        #expect(error?.kind == .missingKey)
        #expect(server.requestCount == 0)
    }

    @Test func nothingListeningNamesTheAddress() async throws {
        // Port 9 (discard), not a closed test server's port: tests run in parallel and a port freed
        // by one server can be taken by the next.
        let server = try await ScriptedHTTPServer { _ in [] }
        var dead = endpoint(server)
        await server.shutdown()
        dead.baseURL = "http://127.0.0.1:9/v1"
        let (_, error) = await collect(ChatClient().stream(request, endpoint: dead))
        #expect(error?.kind == .connection)
        #expect(error?.userMessage.contains("127.0.0.1") == true)
    }

    @Test func cancellingTheConsumerClosesTheConnection() async throws {
        let server = try await ScriptedHTTPServer { _ in
            [.head(status: 200, headers: [("Content-Type", "text/event-stream")])]
                + (0..<200).flatMap { i -> [ScriptedHTTPServer.Step] in
                    [.write(Array("data: {\"choices\":[{\"delta\":{\"content\":\"t\(i) \"}}]}\n\n".utf8)), .pause(.milliseconds(50))]
                } + [.end]
        }
        // A stop is the cancellation of the task that consumes the stream, as the screen does on Esc.
        let seen = AsyncStream<Int>.makeStream()
        let task = Task {
            var count = 0
            for try await event in ChatClient().stream(request, endpoint: endpoint(server)) {
                if case .textDelta = event { count += 1; seen.continuation.yield(count) }
            }
        }
        for await count in seen.stream where count == 3 { break }
        task.cancel()
        let stoppedAt = ContinuousClock.now
        // The server notices the close long before its script (about 10 s) would end, even on a busy machine.
        var waited = 0
        while server.clientClosures.isEmpty, waited < 400 { try await Task.sleep(for: .milliseconds(20)); waited += 1 }
        await server.shutdown()
        // Closed by the stop, not by the end of the script; how fast is a benchmark's question.
        let closedAt = try #require(server.clientClosures.first)
        #expect(closedAt - stoppedAt < .seconds(8))
    }
}
