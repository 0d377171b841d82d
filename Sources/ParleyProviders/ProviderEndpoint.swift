import Foundation
import ParleyCore

/// The wire formats Parley speaks. Formats, not vendors, get their own code.
public enum WireFormat: String, Sendable, Codable, CaseIterable {
    case openAIChat = "openai"
    case anthropicMessages = "anthropic"
    case ollamaChat = "ollama"
}

/// Everything needed to send one request to one provider: resolved from config and the environment.
public struct ProviderEndpoint: Sendable {
    public var name: String
    public var format: WireFormat
    public var baseURL: String
    public var apiKey: String?
    /// The environment variable the key comes from, to name it when it is missing or refused.
    public var apiKeyVariable: String?
    /// Whether a request without a key is pointless (hosted APIs) or fine (local servers).
    public var requiresKey: Bool
    public var dialect: OpenAIDialect
    public var extraHeaders: [(String, String)]
    public var timeouts: TransportTimeouts
    /// The reply length limit sent when the request sets none (config `max_tokens`).
    public var defaultMaxTokens: Int?
    /// Config `max_retries` (and the SDKs' defaults for the rest).
    public var retryPolicy = RetryPolicy.standard
    /// How much of a response is read at most (config `max_event_kb`, `max_reply_mb`, `max_error_kb`).
    public var limits = StreamLimits.standard

    public init(
        name: String, format: WireFormat, baseURL: String, apiKey: String? = nil, apiKeyVariable: String? = nil,
        requiresKey: Bool = false, dialect: OpenAIDialect = .standard, extraHeaders: [(String, String)] = [],
        timeouts: TransportTimeouts = TransportTimeouts()
    ) {
        self.name = name
        self.format = format
        self.baseURL = baseURL
        self.apiKey = apiKey
        self.apiKeyVariable = apiKeyVariable
        self.requiresKey = requiresKey
        self.dialect = dialect
        self.extraHeaders = extraHeaders
        self.timeouts = timeouts
    }

    /// The request in this endpoint's wire format; throws `InvalidToolSchema` for a tool whose schema cannot be sent.
    public func makeRequest(_ request: ChatRequest) throws -> HTTPRequestSpec {
        switch format {
        case .openAIChat:
            return try OpenAIChatFormat.makeRequest(request, baseURL: baseURL, apiKey: apiKey, dialect: dialect, extraHeaders: extraHeaders)
        case .anthropicMessages:
            return try AnthropicMessagesFormat.makeRequest(request, baseURL: baseURL, apiKey: apiKey, extraHeaders: extraHeaders)
        case .ollamaChat:
            return try OllamaChatFormat.makeRequest(request, baseURL: baseURL, extraHeaders: extraHeaders)
        }
    }

    public func makeDecoder() -> any ChatStreamDecoder {
        switch format {
        case .openAIChat: return OpenAIChatFormat.Decoder(provider: name, limits: limits)
        case .anthropicMessages: return AnthropicMessagesFormat.Decoder(provider: name, limits: limits)
        case .ollamaChat: return OllamaChatFormat.Decoder(provider: name, limits: limits)
        }
    }

    /// The error for a non-2xx answer: the provider's own message, plus what to do about it.
    public func httpError(status: Int, body: [UInt8]) -> ProviderError {
        let (message, type) = ProviderErrorBody.message(from: body)
        return ProviderError(kind: .http, provider: name, status: status, message: message, type: type, hint: hint(status: status, message: message))
    }

    func hint(status: Int, message: String) -> String {
        switch status {
        case 300...399:
            return "Parley does not follow redirects for API requests, which carry your key; set base_url for \(name) to the address the provider serves from"
        case 401, 403:
            if let apiKeyVariable { return "check the key in \(apiKeyVariable), or pick another model with --model or /model" }
            return "this server wants a key: set api_key_env for provider \(name) in the config"
        case 404:
            return "check the model name and the base URL \(baseURL); /models (or `parley models`) lists what is configured"
        case 408: return "the request timed out at the provider; try again"
        case 413: return "the request is too large; shorten the conversation or the prompt"
        case 429: return "rate limited; wait a moment, or pick another model with --model or /model"
        case 400 where ProviderError.mentionsContextOverflow(message):
            return "the conversation is longer than the model's context window; start a new one or use a model with a larger window"
        case 400, 422: return "the provider refused the request as sent"
        case 500...599: return "the provider is failing or overloaded; try again shortly or pick another model"
        default: return ""
        }
    }

    /// The one rule for a missing key: the provider needs one and the variable is unset or empty.
    public var isMissingKey: Bool { requiresKey && (apiKey ?? "").isEmpty }

    /// Throws the missing-key error (naming the variable and the fix) when `isMissingKey`.
    public func requireKey() throws(ProviderError) {
        if isMissingKey { throw missingKeyError() }
    }

    public func missingKeyError() -> ProviderError {
        let variable = apiKeyVariable ?? "the API key variable"
        return ProviderError(
            kind: .missingKey, provider: name,
            message: "\(variable) is not set",
            hint: "export it or pick another model with --model or /model"
        )
    }
}
