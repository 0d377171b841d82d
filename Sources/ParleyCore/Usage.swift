import Foundation

/// How a provider counts cached prompt tokens. The two rules bill differently, so they are never mixed.
public enum CacheAccounting: String, Codable, Sendable {
    /// OpenAI and compatibles: `cachedTokens` is a part of `promptTokens`.
    case cachedInsidePrompt
    /// Anthropic: cache reads and writes are reported beside `input_tokens`, not inside it.
    case cachedOutsidePrompt
}

/// Token counts for one request, as the provider reported them.
public struct Usage: Codable, Sendable, Equatable {
    public var promptTokens: Int
    public var completionTokens: Int
    /// Prompt tokens served from the provider's cache (read).
    public var cachedTokens: Int
    /// Prompt tokens written to the cache (Anthropic only).
    public var cacheWriteTokens: Int
    public var accounting: CacheAccounting

    public init(
        promptTokens: Int = 0,
        completionTokens: Int = 0,
        cachedTokens: Int = 0,
        cacheWriteTokens: Int = 0,
        accounting: CacheAccounting = .cachedInsidePrompt
    ) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.cachedTokens = cachedTokens
        self.cacheWriteTokens = cacheWriteTokens
        self.accounting = accounting
    }

    /// Every prompt token the model read, whichever rule the provider follows.
    public var totalPromptTokens: Int {
        switch accounting {
        case .cachedInsidePrompt: return promptTokens
        case .cachedOutsidePrompt: return promptTokens + cachedTokens + cacheWriteTokens
        }
    }

    /// Prompt tokens billed at the ordinary input rate.
    public var uncachedPromptTokens: Int {
        switch accounting {
        case .cachedInsidePrompt: return max(0, promptTokens - cachedTokens)
        case .cachedOutsidePrompt: return promptTokens
        }
    }
}

/// Server-side timings that llama.cpp adds to its stream.
public struct ServerTimings: Codable, Sendable, Equatable {
    public var promptMilliseconds: Double?
    public var predictedMilliseconds: Double?
    public var predictedPerSecond: Double?

    public init(promptMilliseconds: Double? = nil, predictedMilliseconds: Double? = nil, predictedPerSecond: Double? = nil) {
        self.promptMilliseconds = promptMilliseconds
        self.predictedMilliseconds = predictedMilliseconds
        self.predictedPerSecond = predictedPerSecond
    }
}
