import Foundation
import Testing
import ParleyCore
@testable import ParleyProviders

@Suite struct WireFormatDecodingTests {
    @Test func openAIWithToolCallsAndUsageChunk() throws {
        let (events, terminated) = try decodeEverySplit({ OpenAIChatFormat.Decoder(provider: "openai") }, Fixture.bytes("openai-tools-usage.sse"))
        #expect(terminated)
        #expect(events.text == "Checking the weather in Zürich 🌦️…")
        #expect(events.toolCalls == [
            ToolCall(id: "call_abc", name: "get_weather", arguments: #"{"city":"Zürich"}"#),
            ToolCall(id: "call_def", name: "get_time", arguments: #"{"tz":"CET"}"#),
        ])
        #expect(events.finishReasons == [.toolCalls])
        let usage = try #require(events.lastUsage)
        #expect(usage == Usage(promptTokens: 1200, completionTokens: 42, cachedTokens: 1024, accounting: .cachedInsidePrompt))
        // OpenAI's cached tokens are inside prompt_tokens.
        #expect(usage.totalPromptTokens == 1200)
        #expect(usage.uncachedPromptTokens == 176)
    }

    @Test func anthropicWithPingThinkingToolJSONAndCumulativeUsage() throws {
        let (events, terminated) = try decodeEverySplit({ AnthropicMessagesFormat.Decoder(provider: "anthropic") }, Fixture.bytes("anthropic-tools-usage.sse"))
        #expect(terminated)
        #expect(events.text == "Let me check 日本の天気.")
        #expect(events.thinking == "The user wants weather.")
        #expect(events.toolCalls == [ToolCall(id: "toolu_01", name: "get_weather", arguments: #"{"location": "Tokyo"}"#)])
        #expect(events.finishReasons == [.toolCalls])
        let usage = try #require(events.lastUsage)
        // message_delta's output_tokens replaces message_start's; input and cache counts are kept.
        #expect(usage == Usage(promptTokens: 25, completionTokens: 89, cachedTokens: 100, cacheWriteTokens: 50, accounting: .cachedOutsidePrompt))
        // Anthropic's cache reads and writes are outside input_tokens.
        #expect(usage.totalPromptTokens == 175)
        #expect(usage.uncachedPromptTokens == 25)
    }

    @Test func anthropicInStreamOverloadedError() throws {
        let (events, terminated) = try decodeEverySplit({ AnthropicMessagesFormat.Decoder(provider: "anthropic") }, Fixture.bytes("anthropic-overloaded.sse"))
        #expect(!terminated)
        #expect(events.text == "Partial answ")
        let error = try #require(events.errors.first)
        #expect(error.kind == .inStream)
        #expect(error.type == "overloaded_error")
        #expect(error.message == "Overloaded")
        #expect(error.userMessage.contains("anthropic"))
    }

    @Test func ollamaNativeNDJSON() throws {
        let (events, terminated) = try decodeEverySplit({ OllamaChatFormat.Decoder(provider: "ollama") }, Fixture.bytes("ollama-chat.ndjson"))
        #expect(terminated)
        #expect(events.text == "Hello ✓")
        #expect(events.toolCalls.map(\.name) == ["get_weather", "get_time"])
        #expect(events.toolCalls.first?.arguments == #"{"city":"Paris"}"#)
        #expect(events.finishReasons == [.stop])
        #expect(events.lastUsage == Usage(promptTokens: 26, completionTokens: 298))
        let timings = try #require(events.compactMap { if case let .timings(t) = $0 { return t } else { return nil } }.first)
        // Durations arrive in nanoseconds.
        #expect(timings.predictedMilliseconds == 4799.921)
        #expect(abs((timings.predictedPerSecond ?? 0) - 62.08) < 0.01)
    }

    @Test func groqUsageInXGroq() throws {
        let (events, terminated) = try decodeEverySplit({ OpenAIChatFormat.Decoder(provider: "groq") }, Fixture.bytes("groq-xgroq.sse"))
        #expect(terminated)
        #expect(events.text == "Fast.")
        #expect(events.lastUsage == Usage(promptTokens: 40, completionTokens: 3))
    }

    @Test func ollamaOpenAIParallelCallsAtIndexZeroAreSeparate() throws {
        let (events, _) = try decodeEverySplit({ OpenAIChatFormat.Decoder(provider: "ollama") }, Fixture.bytes("ollama-openai-parallel.sse"))
        #expect(events.toolCalls == [
            ToolCall(id: "call_1", name: "get_weather", arguments: #"{"city":"Paris"}"#),
            ToolCall(id: "call_2", name: "get_weather", arguments: #"{"city":"Rome"}"#),
        ])
    }

    @Test func llamaCppRealCaptureWithTimings() throws {
        let (events, terminated) = try decodeEverySplit({ OpenAIChatFormat.Decoder(provider: "local") }, Fixture.bytes("llamacpp-openai.sse"))
        #expect(terminated)
        #expect(!events.text.isEmpty)
        #expect(events.finishReasons == [.length])
        #expect(events.lastUsage?.completionTokens == 6)
        #expect(events.contains { if case let .timings(t) = $0 { return t.predictedPerSecond != nil } else { return false } })
    }

    @Test func llamaCppAnthropicRealCapture() throws {
        let (events, terminated) = try decodeEverySplit({ AnthropicMessagesFormat.Decoder(provider: "local") }, Fixture.bytes("llamacpp-anthropic.sse"))
        #expect(terminated)
        #expect(!events.text.isEmpty)
        #expect(events.finishReasons == [.length])
        #expect(events.lastUsage?.completionTokens == 6)
    }

    @Test func openAIErrorObjectInsideA200Stream() throws {
        let (events, terminated) = try decodeEverySplit({ OpenAIChatFormat.Decoder(provider: "openai") }, Fixture.bytes("openai-instream-error.sse"))
        #expect(!terminated)
        #expect(events.text == "Hi")
        #expect(events.errors.first?.message == "The server had an error while processing your request.")
        #expect(events.errors.first?.type == "server_error")
    }

    @Test func streamWithoutTerminatorIsCutOff() throws {
        var bytes = try Fixture.bytes("openai-tools-usage.sse")
        bytes.removeLast("data: [DONE]\n\n".utf8.count)
        var decoder = OpenAIChatFormat.Decoder(provider: "openai")
        _ = try decoder.decode(bytes)
        #expect(throws: ProviderError.self) { try decoder.finish { _ in } }
        do { try decoder.finish { _ in } } catch let error as ProviderError {
            #expect(error.kind == .cutOff)
            #expect(error.userMessage.contains("cut off"))
        }
        var anthropic = AnthropicMessagesFormat.Decoder(provider: "anthropic")
        var truncated = try Fixture.bytes("anthropic-tools-usage.sse")
        truncated.removeLast("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".utf8.count)
        _ = try anthropic.decode(truncated)
        #expect(!anthropic.sawTerminator)
        var ollama = OllamaChatFormat.Decoder(provider: "ollama")
        let lines = try Fixture.bytes("ollama-chat.ndjson").split(separator: 0x0A).dropLast().joined(separator: [0x0A])
        _ = try ollama.decode(Array(lines) + [0x0A])
        #expect(!ollama.sawTerminator)
    }

    @Test func malformedChunkIsATypedError() {
        var decoder = OpenAIChatFormat.Decoder(provider: "openai")
        #expect(throws: ProviderError.self) { _ = try decoder.decode(Array("data: {\"choices\":[{\"delta\":{\"content\":\"x\"}\n\n".utf8)) }
    }
}

@Suite struct OpenAIFastPathTests {
    /// Every chunk gives the same events through the in-place fast path as through the full tree.
    @Test(arguments: ["openai-tools-usage.sse", "groq-xgroq.sse", "ollama-openai-parallel.sse", "llamacpp-openai.sse", "openai-instream-error.sse"])
    func fastPathMatchesTheTree(_ fixture: String) throws {
        var sse = SSEDecoder()
        let events = try sse.feed(try Fixture.bytes(fixture)) + [
            SSEEvent(data: #"{"choices":[{"index":0,"delta":{"content":"a\"b\\u00e9\n"},"finish_reason":null}]}"#),
            SSEEvent(data: #"{"choices":[{"index":0,"delta":{"content":null},"finish_reason":"length"}],"usage":null}"#),
            SSEEvent(data: #"{"choices":[{"delta":{"content":"x"}},{"delta":{"content":"y"}}]}"#),
            SSEEvent(data: #" { "id" : "c" , "choices" : [ { "delta" : { "role" : "assistant" , "content" : "spaced" } } ] } "#),
            SSEEvent(data: #"{"choices":[{"delta":{"content":"x"}}]"#),
            // Found by an attack: repeated and escaped keys read as the tree reads them.
            SSEEvent(data: #"{"choices":[{"index":0,"delta":{},"delta":{"content":"SECOND"}}]}"#),
            SSEEvent(data: #"{"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null,"finish_reason":"length"}]}"#),
            SSEEvent(data: #"{"choices":[{"index":0,"delta":{"content":"A","con\u0074ent":"B"}}]}"#),
            SSEEvent(data: #"{"choices":[{"index":0,"del\u0074a":{"content":"C"}}]}"#),
        ]
        // The shape of one chunk is carried to the next, as in a stream.
        var shape: OpenAIChatFormat.Decoder.ChunkShape?
        for event in events where event.data != "[DONE]" {
            var fast: [ChatEvent] = []
            var tree: [ChatEvent] = []
            var fastError: (any Error)?
            var treeError: (any Error)?
            Array(event.data.utf8).withUnsafeBytes { raw in
                do { try OpenAIChatFormat.Decoder.decodeChunk(raw, provider: "p", shape: &shape) { fast.append($0) } } catch { fastError = error }
                do { try OpenAIChatFormat.Decoder.decodeTree(raw, provider: "p") { tree.append($0) } } catch { treeError = error }
            }
            #expect(fast == tree, "\(event.data)")
            #expect((fastError == nil) == (treeError == nil), "\(event.data)")
        }
    }

    /// After an ordinary chunk, a chunk with the same bytes around its content is read by comparing
    /// them; whatever is put between them, the events are the full walk's (or both fail).
    @Test func aChunkOfTheSameShapeReadsAsTheFullWalkWould() throws {
        let before = #"{"id":"chatcmpl-1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"#
        let after = #"},"logprobs":null,"finish_reason":null}]}"#
        let middles = [#""plain""#, #""a\"b\\c\u00e9\n""#, #""""#, #" "spaced" "#, #""x","content":"y""#, #""x"},"usage":{"prompt_tokens":1"#,
                       #""unterminated"#, #"null"#, #"5"#, #""a" "b""#, #""\ud800""#, #""x\""#, #"{"#, ""]
        for middle in middles {
            var shape: OpenAIChatFormat.Decoder.ChunkShape?
            var fast: [ChatEvent] = []
            var tree: [ChatEvent] = []
            var fastError: (any Error)?, treeError: (any Error)?
            try Array((before + #""first""# + after).utf8).withUnsafeBytes { raw in
                try OpenAIChatFormat.Decoder.decodeChunk(raw, provider: "p", shape: &shape) { _ in }
            }
            #expect(shape != nil, "an ordinary chunk is remembered as a shape")
            Array((before + middle + after).utf8).withUnsafeBytes { raw in
                do { try OpenAIChatFormat.Decoder.decodeChunk(raw, provider: "p", shape: &shape) { fast.append($0) } } catch { fastError = error }
                do { try OpenAIChatFormat.Decoder.decodeTree(raw, provider: "p") { tree.append($0) } } catch { treeError = error }
            }
            #expect(fast == tree, "\(middle)")
            #expect((fastError == nil) == (treeError == nil), "\(middle)")
        }
    }
}
