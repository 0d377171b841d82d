import Foundation
import ParleyCore

/// The small differences between servers that speak OpenAI Chat Completions. Only the request differs:
/// the decoder reads every vendor's extras (Groq `x_groq`, llama.cpp `timings`) leniently.
public struct OpenAIDialect: Sendable, Equatable, Hashable {
    /// Send `stream_options.include_usage` (Mistral rejects it with 422).
    public var sendsStreamOptions: Bool
    /// `max_completion_tokens` (OpenAI, whose reasoning models reject `max_tokens`) or `max_tokens`.
    public var maxTokensField: String

    public init(sendsStreamOptions: Bool = true, maxTokensField: String = "max_tokens") {
        self.sendsStreamOptions = sendsStreamOptions
        self.maxTokensField = maxTokensField
    }

    public static let openAI = OpenAIDialect(maxTokensField: "max_completion_tokens")
    public static let standard = OpenAIDialect()
    public static let mistral = OpenAIDialect(sendsStreamOptions: false)
}

/// OpenAI Chat Completions over SSE, ending with `data: [DONE]`.
public enum OpenAIChatFormat {
    public static func makeRequest(
        _ request: ChatRequest, baseURL: String, apiKey: String?, dialect: OpenAIDialect, extraHeaders: [(String, String)] = []
    ) throws -> HTTPRequestSpec {
        var members: [(String, JSONValue)] = [("model", .string(request.model))]
        var messages: [JSONValue] = []
        if let system = request.combinedSystemPrompt { messages.append(["role": "system", "content": .string(system)]) }
        for message in request.messages where message.role != .system {
            messages.append(encode(message))
        }
        members.append(("messages", .array(messages)))
        members.append(("stream", true))
        if dialect.sendsStreamOptions { members.append(("stream_options", ["include_usage": true])) }
        if let temperature = request.temperature { members.append(("temperature", .number(temperature))) }
        if let seed = request.seed { members.append(("seed", .number(Double(seed)))) }
        if let maxTokens = request.maxTokens { members.append((dialect.maxTokensField, .number(Double(maxTokens)))) }
        if !request.tools.isEmpty {
            members.append(("tools", .array(try request.tools.map { tool in
                [
                    "type": "function",
                    "function": [
                        "name": .string(tool.name),
                        "description": .string(tool.description),
                        "parameters": try tool.parameters(),
                    ],
                ]
            })))
        }
        switch request.responseFormat {
        case nil: break
        case .jsonObject: members.append(("response_format", ["type": "json_object"]))
        case let .jsonSchema(name, schema, strict):
            // The nested form: OpenAI, Groq, Mistral and llama-server read it (llama-server ignores the flat
            // `{"type":"json_schema","schema":…}` form).
            members.append(("response_format", [
                "type": "json_schema",
                "json_schema": ["name": .string(name), "schema": schema, "strict": .bool(strict)],
            ]))
        }
        var headers: [(String, String)] = [("Content-Type", "application/json"), ("Accept", "text/event-stream")]
        if let apiKey, !apiKey.isEmpty { headers.append(("Authorization", "Bearer \(apiKey)")) }
        headers += extraHeaders
        return HTTPRequestSpec(
            url: joinURL(baseURL, "chat/completions"), headers: HeaderFields(headers),
            body: Array(JSONValue.object(members).serialized().utf8)
        )
    }

    static func encode(_ message: ChatMessage) -> JSONValue {
        switch message.role {
        case .tool:
            return ["role": "tool", "tool_call_id": .string(message.toolCallID ?? ""), "content": .string(message.content)]
        case .assistant where !message.toolCalls.isEmpty:
            return [
                "role": "assistant",
                "content": message.content.isEmpty ? .null : .string(message.content),
                "tool_calls": .array(message.toolCalls.map { call in
                    ["id": .string(call.id), "type": "function",
                     "function": ["name": .string(call.name), "arguments": .string(call.arguments)]]
                }),
            ]
        default:
            return ["role": .string(message.role.rawValue), "content": .string(message.content)]
        }
    }

    /// Decodes the SSE stream of chat completion chunks.
    public struct Decoder: ChatStreamDecoder {
        public let provider: String
        private var sse: SSEDecoder
        public private(set) var sawTerminator = false
        /// The bytes around the content string of the last ordinary chunk (see `ChunkShape`).
        private var shape: ChunkShape?

        public init(provider: String, limits: StreamLimits = .standard) {
            self.provider = provider
            sse = SSEDecoder(maxEventBytes: limits.maxEventBytes)
        }

        public mutating func finish(emit: (ChatEvent) -> Void) throws {
            if !sawTerminator { throw ProviderError.cutOff(provider: provider) }
        }

        /// Nothing after `[DONE]` is read, not even to check its length.
        public mutating func feed(_ bytes: UnsafeRawBufferPointer, emit: (ChatEvent) -> Void) throws {
            guard !sawTerminator else { return }
            var failure: (any Error)?
            let provider = self.provider
            var done = sawTerminator
            var shape = self.shape
            defer { sawTerminator = done; self.shape = shape }
            do { try sse.feedRaw(bytes) { _, _, data in
                guard failure == nil, !done else { return }
                if data.count == 6, data.elementsEqual("[DONE]".utf8) { done = true; return }
                do {
                    try Self.decodeChunk(data, provider: provider, shape: &shape, emit: emit)
                } catch {
                    failure = error
                }
            } } catch let error as StreamLimitExceeded {
                if failure == nil, !done { throw error.providerError(provider: provider) }
            }
            if let failure { throw failure }
        }

        /// Every key the decoder reads; the rest of a chunk is checked but not built.
        static let readKeys = JSONKeySet([
            "choices", "delta", "content", "reasoning_content", "reasoning", "tool_calls", "index", "id", "function",
            "name", "arguments", "finish_reason", "usage", "prompt_tokens", "completion_tokens", "prompt_tokens_details",
            "cached_tokens", "prompt_cache_hit_tokens", "x_groq", "timings", "prompt_ms", "predicted_ms",
            "predicted_per_second", "error", "message", "type", "code", "msg", "status", "detail",
        ], topLevel: ["choices", "usage", "x_groq", "timings", "error", "message", "type", "code", "detail"])

        static func decodeChunk(_ data: UnsafeRawBufferPointer, provider: String, shape: inout ChunkShape?, emit: (ChatEvent) -> Void) throws {
            let bytes = data.assumingMemoryBound(to: UInt8.self)
            if let shape, let text = shape.text(of: bytes) {
                if !text.isEmpty { emit(.textDelta(text)) }
                return
            }
            if let fast = fastPath(bytes) {
                if let text = fast.text, !text.isEmpty { emit(.textDelta(text)) }
                if let reason = fast.finishReason { emit(.finish(FinishReason(providerValue: reason))) }
                // Only a chunk that carries text and nothing else is a shape to compare the next with.
                if fast.finishReason == nil, let range = fast.contentRange {
                    shape = ChunkShape(prefix: Array(bytes[..<range.lowerBound]), suffix: Array(bytes[range.upperBound...]))
                }
                return
            }
            try decodeTree(data, provider: provider, emit: emit)
        }

        /// A provider sends the same bytes around every token of a reply (id, model, fingerprint,
        /// index, `"logprobs":null,"finish_reason":null`); only the content string changes. When a
        /// chunk's bytes before and after its content string equal those of the last chunk the full
        /// walk read, it has the same structure, so only the string between is read (two memcmps
        /// instead of walking every key: the walk was most of `ask`'s decode time). Anything else —
        /// a finish reason, usage, another field, a different length of id — takes the full walk.
        struct ChunkShape {
            let prefix: [UInt8]
            let suffix: [UInt8]

            func text(of bytes: UnsafeBufferPointer<UInt8>) -> String? {
                let p = prefix.count, s = suffix.count
                guard bytes.count >= p + s + 2, let base = bytes.baseAddress,
                      prefix.withUnsafeBufferPointer({ memcmp(base, $0.baseAddress!, p) == 0 }),
                      suffix.withUnsafeBufferPointer({ memcmp(base + bytes.count - s, $0.baseAddress!, s) == 0 }) else { return nil }
                // What is between must be exactly one JSON string.
                var cursor = JSONCursor(UnsafeBufferPointer(rebasing: bytes[p..<(bytes.count - s)]))
                guard let text = cursor.readString(), !cursor.failed, cursor.atEnd() else { return nil }
                return text
            }
        }

        /// The common chunk, `{..., "choices":[{"index":0,"delta":{"content":"..."},"finish_reason":null}]}`,
        /// read in place without building a tree. Anything else (tool calls, reasoning, usage, errors,
        /// several choices, odd syntax) returns nil and takes the full path, which gives the same events.
        static func fastPath(_ bytes: UnsafeBufferPointer<UInt8>) -> (text: String?, finishReason: String?, contentRange: Range<Int>?)? {
            var cursor = JSONCursor(bytes)
            guard cursor.enterObject() else { return nil }
            var text: String?
            var finishReason: String?
            // Where the content string is, for `ChunkShape`.
            var contentRange: Range<Int>?
            var contents = 0
            var sawChoices = false
            while let key = cursor.nextKey() {
                if key.equals("choices") {
                    guard !sawChoices, cursor.enterArray() else { return nil }
                    sawChoices = true
                    var choices = 0
                    while cursor.nextElement() {
                        choices += 1
                        guard choices == 1, cursor.enterObject() else { return nil }
                        // A repeated delta or finish_reason, or an escaped key, is the tree's to read (it
                        // keeps the first of a repeated key, as most JSON readers do).
                        var deltas = 0, finishes = 0
                        while let choiceKey = cursor.nextKey() {
                            guard !choiceKey.contains(UInt8(ascii: "\\")) else { return nil }
                            if choiceKey.equals("delta") {
                                deltas += 1
                                guard deltas == 1, cursor.enterObject() else { return nil }
                                while let deltaKey = cursor.nextKey() {
                                    guard !deltaKey.contains(UInt8(ascii: "\\")) else { return nil }
                                    if deltaKey.equals("content") {
                                        // A second content key (duplicate keys) is the tree's to read, so both agree.
                                        contents += 1
                                        guard contents == 1 else { return nil }
                                        if cursor.readNull() { continue }
                                        let start = cursor.position
                                        guard let value = cursor.readString() else { return nil }
                                        contentRange = start..<cursor.position
                                        text = value
                                    } else if deltaKey.equals("role") {
                                        guard cursor.skipValue() else { return nil }
                                    } else {
                                        return nil  // tool_calls, reasoning and anything new
                                    }
                                }
                                cursor.resumeContainer()
                            } else if choiceKey.equals("finish_reason") {
                                finishes += 1
                                guard finishes == 1 else { return nil }
                                if cursor.readNull() { continue }
                                guard let value = cursor.readString() else { return nil }
                                finishReason = value
                            } else {
                                guard cursor.skipValue() else { return nil }  // index, logprobs
                            }
                        }
                        cursor.resumeContainer()
                    }
                    cursor.resumeContainer()
                } else if key.equals("usage") || key.equals("x_groq") || key.equals("timings") || key.equals("error") {
                    if cursor.readNull() { continue }
                    return nil
                } else {
                    guard cursor.skipValue() else { return nil }
                }
            }
            guard !cursor.failed, cursor.atEnd() else { return nil }
            return (text, finishReason, contentRange)
        }

        static func decodeTree(_ data: UnsafeRawBufferPointer, provider: String, emit: (ChatEvent) -> Void) throws {
            guard let json = try? JSONValue.parse(data.assumingMemoryBound(to: UInt8.self), keeping: readKeys) else {
                throw ProviderError.malformed(provider: provider, data: String(decoding: data, as: UTF8.self))
            }
            if let error = json["error"], !error.isNull {
                emit(.error(.inStream(json, provider: provider)))
                return
            }
            if let choices = json["choices"]?.array {
                for choice in choices {
                    if let delta = choice["delta"] {
                        if let reasoning = delta["reasoning_content"]?.string ?? delta["reasoning"]?.string, !reasoning.isEmpty {
                            emit(.thinkingDelta(reasoning))
                        }
                        if let text = delta["content"]?.string, !text.isEmpty { emit(.textDelta(text)) }
                        if let calls = delta["tool_calls"]?.array {
                            for (position, call) in calls.enumerated() {
                                emit(.toolCallDelta(ToolCallDelta(
                                    index: call["index"]?.int ?? position,
                                    id: call["id"]?.string,
                                    name: call["function"]?["name"]?.string,
                                    argumentsFragment: call["function"]?["arguments"]?.string ?? ""
                                )))
                            }
                        }
                    }
                    if let reason = choice["finish_reason"]?.string {
                        emit(.finish(FinishReason(providerValue: reason)))
                    }
                }
            }
            if let usage = json["usage"], let parsed = try parseUsage(usage, field: "usage", provider: provider) { emit(.usage(parsed)) }
            if let usage = json["x_groq"]?["usage"], let parsed = try parseUsage(usage, field: "x_groq.usage", provider: provider) { emit(.usage(parsed)) }
            if let timings = json["timings"], timings.members != nil {
                emit(.timings(ServerTimings(
                    promptMilliseconds: timings["prompt_ms"]?.double,
                    predictedMilliseconds: timings["predicted_ms"]?.double,
                    predictedPerSecond: timings["predicted_per_second"]?.double
                )))
            }
        }

        static func parseUsage(_ usage: JSONValue, field: String, provider: String) throws -> Usage? {
            guard usage.members != nil else { return nil }
            let counts = TokenCounts(usage, field: field, provider: provider)
            return Usage(
                promptTokens: try counts["prompt_tokens"] ?? 0,
                completionTokens: try counts["completion_tokens"] ?? 0,
                cachedTokens: try counts["prompt_tokens_details", "cached_tokens"] ?? counts["prompt_cache_hit_tokens"] ?? 0,
                accounting: .cachedInsidePrompt
            )
        }
    }
}

/// Joins a base URL and a path with exactly one slash between them.
func joinURL(_ base: String, _ path: String) -> String {
    var base = base
    while base.hasSuffix("/") { base.removeLast() }
    var path = path
    while path.hasPrefix("/") { path.removeFirst() }
    return base + "/" + path
}
