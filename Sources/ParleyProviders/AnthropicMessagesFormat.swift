import Foundation
import ParleyCore

/// Anthropic Messages over SSE with named events, ending with `message_stop`.
public enum AnthropicMessagesFormat {
    public static let apiVersion = "2023-06-01"
    /// Anthropic requires `max_tokens`; used when the caller sets none.
    public static let defaultMaxTokens = 4096

    public static func makeRequest(
        _ request: ChatRequest, baseURL: String, apiKey: String?, extraHeaders: [(String, String)] = []
    ) throws -> HTTPRequestSpec {
        var members: [(String, JSONValue)] = [
            ("model", .string(request.model)),
            ("max_tokens", .number(Double(request.maxTokens ?? defaultMaxTokens))),
        ]
        if let system = request.combinedSystemPrompt { members.append(("system", .string(system))) }
        members.append(("messages", .array(encodeMessages(request.messages))))
        members.append(("stream", true))
        if let temperature = request.temperature { members.append(("temperature", .number(temperature))) }
        var tools: [JSONValue] = try request.tools.map { tool in
            [
                "name": .string(tool.name),
                "description": .string(tool.description),
                "input_schema": try tool.parameters(),
            ]
        }
        if let format = request.responseFormat {
            // A forced tool whose input is the answer: every Claude model supports it, where the newer
            // `output_format` is a beta of some models only. The decoder's tool call carries the JSON.
            tools.append([
                "name": .string(ResponseFormat.anthropicToolName),
                "description": "Give the answer as JSON matching this schema.",
                "input_schema": format.schema,
            ])
            members.append(("tool_choice", ["type": "tool", "name": .string(ResponseFormat.anthropicToolName)]))
        }
        if !tools.isEmpty { members.append(("tools", .array(tools))) }
        var headers: [(String, String)] = [
            ("Content-Type", "application/json"),
            ("Accept", "text/event-stream"),
            ("anthropic-version", apiVersion),
        ]
        if let apiKey, !apiKey.isEmpty { headers.append(("x-api-key", apiKey)) }
        headers += extraHeaders
        return HTTPRequestSpec(
            url: joinURL(baseURL, "v1/messages"), headers: HeaderFields(headers),
            body: Array(JSONValue.object(members).serialized().utf8)
        )
    }

    /// User and assistant turns as content blocks; tool results become `tool_result` blocks in a user turn,
    /// and consecutive turns of one role are merged, as the API wants them to alternate.
    static func encodeMessages(_ messages: [ChatMessage]) -> [JSONValue] {
        var turns: [(role: String, blocks: [JSONValue])] = []
        for message in messages where message.role != .system {
            var blocks: [JSONValue] = []
            let role: String
            switch message.role {
            case .tool:
                role = "user"
                var result: JSONValue = [
                    "type": "tool_result",
                    "tool_use_id": .string(message.toolCallID ?? ""),
                    "content": .string(message.content),
                ]
                if message.isError == true, case var .object(members) = result {
                    members.append(("is_error", .bool(true)))
                    result = .object(members)
                }
                blocks.append(result)
            case .assistant:
                role = "assistant"
                if !message.content.isEmpty { blocks.append(["type": "text", "text": .string(message.content)]) }
                for call in message.toolCalls {
                    let input = (try? JSONValue.parse(call.arguments)).flatMap { $0.members != nil ? $0 : nil }
                        ?? JSONValue.object([])
                    blocks.append(["type": "tool_use", "id": .string(call.id), "name": .string(call.name), "input": input])
                }
            default:
                role = "user"
                blocks.append(["type": "text", "text": .string(message.content)])
            }
            if blocks.isEmpty { continue }
            if let last = turns.last, last.role == role {
                turns[turns.count - 1].blocks += blocks
            } else {
                turns.append((role, blocks))
            }
        }
        return turns.map { turn in
            ["role": .string(turn.role), "content": .array(turn.blocks)]
        }
    }

    public struct Decoder: ChatStreamDecoder {
        public let provider: String
        private var sse: SSEDecoder
        private var usage = Usage(accounting: .cachedOutsidePrompt)
        public private(set) var sawTerminator = false
        /// Content blocks that are the forced `json_answer` tool: their input is the answer's text.
        private var answerBlocks: Set<Int> = []
        private var sawOtherToolUse = false

        public init(provider: String, limits: StreamLimits = .standard) {
            self.provider = provider
            sse = SSEDecoder(maxEventBytes: limits.maxEventBytes)
        }

        public mutating func finish(emit: (ChatEvent) -> Void) throws {
            if !sawTerminator { throw ProviderError.cutOff(provider: provider) }
        }

        /// Nothing after `message_stop` is read. Events completed before an over-long one in the same
        /// chunk are handled first, so where the network split the body never changes what is emitted.
        public mutating func feed(_ bytes: UnsafeRawBufferPointer, emit: (ChatEvent) -> Void) throws {
            guard !sawTerminator else { return }
            var events: [SSEEvent] = []
            var overLimit: StreamLimitExceeded?
            do { try sse.feed(bytes) { events.append($0) } } catch let error as StreamLimitExceeded { overLimit = error }
            for event in events where !sawTerminator {
                try handle(event, emit: emit)
            }
            if let overLimit, !sawTerminator { throw overLimit.providerError(provider: provider) }
        }

        private mutating func handle(_ event: SSEEvent, emit: (ChatEvent) -> Void) throws {
            guard let json = try? JSONValue.parse(event.data) else { throw ProviderError.malformed(provider: provider, data: event.data) }
            let type = json["type"]?.string ?? event.event ?? ""
            switch type {
            case "message_start":
                if let start = json["message"]?["usage"] { try mergeUsage(start, field: "message.usage"); emit(.usage(usage)) }
            case "content_block_start":
                let index = json["index"]?.int ?? 0
                guard let block = json["content_block"] else { return }
                switch block["type"]?.string {
                case "tool_use" where block["name"]?.string == ResponseFormat.anthropicToolName:
                    answerBlocks.insert(index)
                case "tool_use", "server_tool_use":
                    sawOtherToolUse = true
                    emit(.toolCallDelta(ToolCallDelta(index: index, id: block["id"]?.string, name: block["name"]?.string)))
                case "text":
                    if let text = block["text"]?.string, !text.isEmpty { emit(.textDelta(text)) }
                case "thinking":
                    if let text = block["thinking"]?.string, !text.isEmpty { emit(.thinkingDelta(text)) }
                default: break
                }
            case "content_block_delta":
                let index = json["index"]?.int ?? 0
                guard let delta = json["delta"] else { return }
                switch delta["type"]?.string {
                case "text_delta":
                    if let text = delta["text"]?.string, !text.isEmpty { emit(.textDelta(text)) }
                case "input_json_delta" where answerBlocks.contains(index):
                    if let text = delta["partial_json"]?.string, !text.isEmpty { emit(.textDelta(text)) }
                case "input_json_delta":
                    emit(.toolCallDelta(ToolCallDelta(index: index, argumentsFragment: delta["partial_json"]?.string ?? "")))
                case "thinking_delta":
                    if let text = delta["thinking"]?.string, !text.isEmpty { emit(.thinkingDelta(text)) }
                default: break  // signature_delta, citations_delta and later additions
                }
            case "message_delta":
                if let reason = json["delta"]?["stop_reason"]?.string {
                    // The forced answer tool ends with `tool_use`; for the caller that answer is complete.
                    let answered = reason == "tool_use" && !answerBlocks.isEmpty && !sawOtherToolUse
                    emit(.finish(answered ? .stop : FinishReason(providerValue: reason)))
                }
                if let cumulative = json["usage"] { try mergeUsage(cumulative, field: "usage"); emit(.usage(usage)) }
            case "message_stop":
                sawTerminator = true
            case "error":
                emit(.error(.inStream(json, provider: provider)))
            default:
                break  // ping, content_block_stop and unknown events
            }
        }

        /// Anthropic's usage counts are cumulative: a later value replaces an earlier one, field by field.
        private mutating func mergeUsage(_ json: JSONValue, field: String) throws {
            let counts = TokenCounts(json, field: field, provider: provider)
            if let v = try counts["input_tokens"] { usage.promptTokens = v }
            if let v = try counts["output_tokens"] { usage.completionTokens = v }
            if let v = try counts["cache_read_input_tokens"] { usage.cachedTokens = v }
            if let v = try counts["cache_creation_input_tokens"] { usage.cacheWriteTokens = v }
        }
    }
}
