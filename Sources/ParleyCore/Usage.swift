import Foundation

/// How a provider counts cached prompt tokens. The two rules bill differently, so they are never mixed.
/// Written snake_case (`cached_inside_prompt`); the camelCase of session format 1 is still read.
public enum CacheAccounting: String, Codable, Sendable {
    /// OpenAI and compatibles: `cachedTokens` is a part of `promptTokens`.
    case cachedInsidePrompt = "cached_inside_prompt"
    /// Anthropic: cache reads and writes are reported beside `input_tokens`, not inside it.
    case cachedOutsidePrompt = "cached_outside_prompt"

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        switch text {
        case "cached_inside_prompt", "cachedInsidePrompt": self = .cachedInsidePrompt
        case "cached_outside_prompt", "cachedOutsidePrompt": self = .cachedOutsidePrompt
        default: throw DecodingError.dataCorruptedError(in: container, debugDescription: "expected cached_inside_prompt or cached_outside_prompt")
        }
    }
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

    /// snake_case, as every other key of Parley's files; the camelCase of session format 1 (and of
    /// response-cache rows written before format 2) is still read.
    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens", completionTokens = "completion_tokens", cachedTokens = "cached_tokens"
        case cacheWriteTokens = "cache_write_tokens", accounting
    }

    enum FormatOneKeys: String, CodingKey { case promptTokens, completionTokens, cachedTokens, cacheWriteTokens }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        accounting = try container.decode(CacheAccounting.self, forKey: .accounting)
        if container.contains(.promptTokens) || container.contains(.completionTokens) {
            promptTokens = try container.decode(Int.self, forKey: .promptTokens)
            completionTokens = try container.decode(Int.self, forKey: .completionTokens)
            cachedTokens = try container.decodeIfPresent(Int.self, forKey: .cachedTokens) ?? 0
            cacheWriteTokens = try container.decodeIfPresent(Int.self, forKey: .cacheWriteTokens) ?? 0
        } else {
            let old = try decoder.container(keyedBy: FormatOneKeys.self)
            promptTokens = try old.decode(Int.self, forKey: .promptTokens)
            completionTokens = try old.decode(Int.self, forKey: .completionTokens)
            cachedTokens = try old.decodeIfPresent(Int.self, forKey: .cachedTokens) ?? 0
            cacheWriteTokens = try old.decodeIfPresent(Int.self, forKey: .cacheWriteTokens) ?? 0
        }
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
