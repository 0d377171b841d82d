import Foundation
import ParleyCore
import ParleyKit

/// A reply's events as server-sent events in the client's wire format: OpenAI's chunks ending in
/// `data: [DONE]`, or Anthropic's named events from `message_start` to `message_stop`.
struct StreamEncoder {
    let format: GatewayRequest.Format
    let includeUsage: Bool
    let model: ModelRef
    let id: String
    let created: Double
    var finish: FinishReason?
    var sawToolCalls = false
    /// Anthropic: the open content block (its index and whether it is text), and the next index.
    var openBlock: (index: Int, text: Bool, toolIndex: Int?)?
    var nextBlock = 0

    init(format: GatewayRequest.Format, includeUsage: Bool, model: ModelRef) {
        self.format = format
        self.includeUsage = includeUsage
        self.model = model
        id = (format == .openAI ? "chatcmpl-" : "msg_") + Self.randomID()
        created = Date().timeIntervalSince1970.rounded(.down)
    }

    static func randomID() -> String {
        (0..<12).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    }

    static func openAIFinish(_ reason: FinishReason?, calls: Bool) -> String {
        switch reason {
        case .length?: return "length"
        case .toolCalls?: return "tool_calls"
        case .contentFilter?: return "content_filter"
        default: return calls ? "tool_calls" : "stop"
        }
    }

    static func anthropicStop(_ reason: FinishReason?, calls: Bool) -> String {
        switch reason {
        case .length?: return "max_tokens"
        case .toolCalls?: return "tool_use"
        default: return calls ? "tool_use" : "end_turn"
        }
    }

    func sse(_ value: JSONValue, event: String? = nil) -> String {
        (event.map { "event: \($0)\n" } ?? "") + "data: " + value.serialized() + "\n\n"
    }

    func chunk(_ delta: JSONValue, finish: String? = nil, extra: [(String, JSONValue)] = []) -> String {
        let choice: JSONValue = ["index": 0, "delta": delta, "finish_reason": finish.map { .string($0) } ?? .null]
        return sse(.object([("id", .string(id)), ("object", "chat.completion.chunk"), ("created", .number(created)),
                            ("model", .string(model.description)), ("choices", [choice])] + extra))
    }

    mutating func start() -> String {
        switch format {
        case .openAI: return chunk(["role": "assistant", "content": ""])
        case .anthropic:
            return sse(["type": "message_start", "message": [
                "id": .string(id), "type": "message", "role": "assistant", "model": .string(model.description), "content": [],
                "stop_reason": .null, "stop_sequence": .null, "usage": ["input_tokens": 0, "output_tokens": 0]]], event: "message_start")
        }
    }

    mutating func encode(_ event: ChatEvent) -> String {
        switch event {
        case let .finish(reason):
            finish = reason
            return ""
        case let .textDelta(text):
            switch format {
            case .openAI: return chunk(["content": .string(text)])
            case .anthropic:
                var out = ""
                if openBlock?.text != true { out += openAnthropicBlock(["type": "text", "text": ""], text: true, toolIndex: nil) }
                return out + sse(["type": "content_block_delta", "index": .number(Double(openBlock?.index ?? 0)),
                                  "delta": ["type": "text_delta", "text": .string(text)]], event: "content_block_delta")
            }
        case let .toolCallDelta(delta):
            sawToolCalls = true
            switch format {
            case .openAI:
                var call: [(String, JSONValue)] = [("index", .number(Double(delta.index)))]
                if let id = delta.id { call.append(("id", .string(id))); call.append(("type", "function")) }
                var function: [(String, JSONValue)] = []
                if let name = delta.name { function.append(("name", .string(name))) }
                function.append(("arguments", .string(delta.argumentsFragment)))
                call.append(("function", .object(function)))
                return chunk(["tool_calls": [.object(call)]])
            case .anthropic:
                var out = ""
                if openBlock?.toolIndex != delta.index {
                    out += openAnthropicBlock(["type": "tool_use", "id": .string(delta.id ?? "toolu_" + Self.randomID()), "name": .string(delta.name ?? ""), "input": [:]],
                                              text: false, toolIndex: delta.index)
                }
                if delta.argumentsFragment.isEmpty { return out }
                return out + sse(["type": "content_block_delta", "index": .number(Double(openBlock?.index ?? 0)),
                                  "delta": ["type": "input_json_delta", "partial_json": .string(delta.argumentsFragment)]], event: "content_block_delta")
            }
        default:
            return ""
        }
    }

    mutating func openAnthropicBlock(_ block: JSONValue, text: Bool, toolIndex: Int?) -> String {
        var out = closeAnthropicBlock()
        openBlock = (nextBlock, text, toolIndex)
        out += sse(["type": "content_block_start", "index": .number(Double(nextBlock)), "content_block": block], event: "content_block_start")
        nextBlock += 1
        return out
    }

    mutating func closeAnthropicBlock() -> String {
        guard let open = openBlock else { return "" }
        openBlock = nil
        return sse(["type": "content_block_stop", "index": .number(Double(open.index))], event: "content_block_stop")
    }

    /// The last events: finish reason, usage, Parley's own figures (cost, model, fallback, cache), end marker.
    mutating func end(_ result: TurnResult) -> String {
        let usage = result.reply.usage
        let prompt = usage?.totalPromptTokens ?? 0, completion = usage?.completionTokens ?? result.reply.completionTokens
        let parley: JSONValue = ["cost_usd": result.cost.map { .number($0) } ?? .null, "model": .string(result.model.description), "cached": .bool(result.fromCache)]
        switch format {
        case .openAI:
            var out = chunk([:], finish: Self.openAIFinish(finish ?? result.reply.finishReason, calls: sawToolCalls), extra: [("x_parley", parley)])
            if includeUsage {
                out += sse(.object([("id", .string(id)), ("object", "chat.completion.chunk"), ("created", .number(created)), ("model", .string(model.description)),
                                    ("choices", []), ("usage", ["prompt_tokens": .number(Double(prompt)), "completion_tokens": .number(Double(completion)),
                                                                "total_tokens": .number(Double(prompt + completion))])]))
            }
            return out + "data: [DONE]\n\n"
        case .anthropic:
            return closeAnthropicBlock()
                + sse(["type": "message_delta", "delta": ["stop_reason": .string(Self.anthropicStop(finish ?? result.reply.finishReason, calls: sawToolCalls)), "stop_sequence": .null],
                       "usage": ["input_tokens": .number(Double(prompt)), "output_tokens": .number(Double(completion))], "x_parley": parley], event: "message_delta")
                + sse(["type": "message_stop"], event: "message_stop")
        }
    }

    /// A failure after content had started: an error event, and no end marker, so the SDKs raise it.
    func failure(_ error: GatewayError) -> String {
        let body = Exchange.errorBody(error, format: format)
        return format == .openAI ? sse(body) : sse(body, event: "error")
    }
}
