import Foundation
import ParleyProviders

/// A provider Parley knows without any config: where it is, which format it speaks, where its key lives.
public struct ProviderPreset: Sendable {
    public var name: String
    public var format: WireFormat
    public var baseURL: String
    /// An environment variable that overrides `baseURL`, as the vendor's official client honours it.
    public var baseURLVariable: String?
    public var apiKeyVariable: String?
    public var dialect: OpenAIDialect
    /// Well-known models, for `parley models` and completion; any other model name is passed through.
    public var models: [String]
    public var timeouts: TransportTimeouts

    public static let hostedTimeouts = TransportTimeouts(connect: .seconds(10), firstToken: .seconds(60), idle: .seconds(60))
    /// A small local model on a slow machine needs longer before its first byte.
    public static let localTimeouts = TransportTimeouts(connect: .seconds(5), firstToken: .seconds(180), idle: .seconds(120))

    public static let all: [ProviderPreset] = [
        ProviderPreset(
            name: "local", format: .openAIChat, baseURL: "", baseURLVariable: nil, apiKeyVariable: nil,
            dialect: .standard, models: [LocalRuntime.modelName], timeouts: localTimeouts
        ),
        ProviderPreset(
            name: "openai", format: .openAIChat, baseURL: "https://api.openai.com/v1", baseURLVariable: "OPENAI_BASE_URL",
            apiKeyVariable: "OPENAI_API_KEY", dialect: .openAI,
            models: ["gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o4-mini"], timeouts: hostedTimeouts
        ),
        ProviderPreset(
            name: "anthropic", format: .anthropicMessages, baseURL: "https://api.anthropic.com",
            baseURLVariable: "ANTHROPIC_BASE_URL", apiKeyVariable: "ANTHROPIC_API_KEY", dialect: .standard,
            models: ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1", "claude-3-5-haiku-latest"], timeouts: hostedTimeouts
        ),
        ProviderPreset(
            name: "groq", format: .openAIChat, baseURL: "https://api.groq.com/openai/v1", baseURLVariable: nil,
            apiKeyVariable: "GROQ_API_KEY", dialect: .standard,
            models: ["llama-3.3-70b-versatile", "llama-3.1-8b-instant"], timeouts: hostedTimeouts
        ),
        ProviderPreset(
            name: "mistral", format: .openAIChat, baseURL: "https://api.mistral.ai/v1", baseURLVariable: nil,
            apiKeyVariable: "MISTRAL_API_KEY", dialect: .mistral,
            models: ["mistral-small-latest", "mistral-large-latest", "codestral-latest"], timeouts: hostedTimeouts
        ),
        ProviderPreset(
            name: "openrouter", format: .openAIChat, baseURL: "https://openrouter.ai/api/v1", baseURLVariable: nil,
            apiKeyVariable: "OPENROUTER_API_KEY", dialect: .standard,
            models: ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4.5", "meta-llama/llama-3.3-70b-instruct"], timeouts: hostedTimeouts
        ),
        ProviderPreset(
            name: "ollama", format: .ollamaChat, baseURL: "http://127.0.0.1:11434", baseURLVariable: "OLLAMA_HOST",
            apiKeyVariable: nil, dialect: .standard, models: ["llama3.2"], timeouts: localTimeouts
        ),
    ]

    public static func named(_ name: String) -> ProviderPreset? { all.first { $0.name == name } }

    /// `OLLAMA_HOST` may be `host`, `host:port` or a URL, as the Ollama client accepts it.
    static func ollamaBaseURL(from host: String) -> String {
        var value = host.trimmingCharacters(in: .whitespaces)
        if !value.contains("://") { value = "http://" + value }
        guard var components = URLComponents(string: value) else { return value }
        if components.host == "0.0.0.0" || components.host == "" { components.host = "127.0.0.1" }
        if components.port == nil { components.port = components.scheme == "https" ? 443 : 11434 }
        components.path = ""
        return components.string ?? value
    }
}
