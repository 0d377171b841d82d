import Foundation

/// Why a reply ended, normalised across wire formats.
public enum FinishReason: String, Codable, Sendable {
    case stop, length, toolCalls = "tool_calls", contentFilter = "content_filter", other

    /// Maps the strings OpenAI, Anthropic and Ollama use.
    public init(providerValue: String) {
        switch providerValue {
        case "stop", "end_turn", "stop_sequence": self = .stop
        case "length", "max_tokens", "model_length": self = .length
        case "tool_calls", "tool_use", "function_call": self = .toolCalls
        case "content_filter", "refusal": self = .contentFilter
        default: self = .other
        }
    }
}

/// A fragment of a tool call as it streams. Fragments with the same `index` belong to one call.
public struct ToolCallDelta: Sendable, Equatable {
    public var index: Int
    public var id: String?
    public var name: String?
    public var argumentsFragment: String

    public init(index: Int, id: String? = nil, name: String? = nil, argumentsFragment: String = "") {
        self.index = index
        self.id = id
        self.name = name
        self.argumentsFragment = argumentsFragment
    }
}

/// The one small event type every provider's stream is reduced to.
public enum ChatEvent: Sendable, Equatable {
    case textDelta(String)
    /// Reasoning text (Anthropic `thinking_delta`, `reasoning_content`), kept apart from the answer.
    case thinkingDelta(String)
    case toolCallDelta(ToolCallDelta)
    /// Usage so far; later events replace earlier ones (Anthropic reports it cumulatively).
    case usage(Usage)
    case timings(ServerTimings)
    case finish(FinishReason)
    /// An error the provider reported inside a stream that had started well.
    case error(ProviderError)
    /// An attempt failed before any output; the next starts after `delaySeconds`.
    case retrying(attempt: Int, of: Int, delaySeconds: Double, reason: String)
    /// The provider's rate-limit headers, as the response head arrived.
    case rateLimit(RateLimitStatus)
}

/// Builds complete tool calls from fragments, by index; a new id at an occupied index opens a new call
/// (Ollama sends index 0 for every parallel call).
public struct ToolCallAssembler: Sendable, Equatable {
    public private(set) var calls: [ToolCall] = []
    private var slotForIndex: [Int: Int] = [:]

    public init() {}

    public mutating func add(_ delta: ToolCallDelta) {
        if let slot = slotForIndex[delta.index],
           delta.id == nil || delta.id == calls[slot].id || calls[slot].id.isEmpty {
            if let id = delta.id, calls[slot].id.isEmpty { calls[slot].id = id }
            if let name = delta.name, !name.isEmpty { calls[slot].name += calls[slot].name.isEmpty ? name : "" }
            calls[slot].arguments += delta.argumentsFragment
            return
        }
        calls.append(ToolCall(id: delta.id ?? "", name: delta.name ?? "", arguments: delta.argumentsFragment))
        slotForIndex[delta.index] = calls.count - 1
    }
}
