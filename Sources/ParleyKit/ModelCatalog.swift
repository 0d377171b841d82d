import Foundation
import ParleyCore
import ParleyProviders

/// A model as Parley names it: `provider:model`.
public struct ModelRef: Sendable, Hashable, CustomStringConvertible {
    public var provider: String
    public var model: String

    public init(provider: String, model: String) {
        self.provider = provider
        self.model = model
    }

    public var description: String { "\(provider):\(model)" }
}

/// A model name that could not be resolved, with what would work.
public struct ModelResolutionError: UserFacingError, Sendable, Equatable {
    public var message: String
    /// The name led into a cycle of aliases (a config error, reported when the config loads).
    public var isAliasLoop = false
    public var userMessage: String { message }
}

extension ParleyConfig {
    /// Resolves `provider:model`, an alias, a bare provider name (its first model) or a well-known model name.
    public func resolve(_ name: String) throws(ModelResolutionError) -> ModelRef {
        try resolve(name, through: [])
    }

    /// Follows aliases, remembering the ones passed, so a cycle (`a → b → a`) is an error, not a loop.
    private func resolve(_ name: String, through seen: [String]) throws(ModelResolutionError) -> ModelRef {
        let trimmed = name.trimmingCharacters(in: .whitespaces)
        if let target = aliases[trimmed] {
            if seen.contains(trimmed) || target == trimmed {
                throw ModelResolutionError(message: "aliases form a loop: \((seen + [trimmed, target]).joined(separator: " → ")); point one of them at provider:model",
                                           isAliasLoop: true)
            }
            return try resolve(target, through: seen + [trimmed])
        }
        if let colon = trimmed.firstIndex(of: ":") {
            let provider = String(trimmed[..<colon])
            let model = String(trimmed[trimmed.index(after: colon)...])
            guard providers[provider] != nil else {
                throw ModelResolutionError(message: "unknown provider '\(provider)' in '\(trimmed)'; known providers: \(providerOrder.joined(separator: ", ")) (add others under [providers.NAME] in the config)")
            }
            guard !model.isEmpty else { throw ModelResolutionError(message: "'\(trimmed)' names no model; write \(provider):MODEL") }
            return ModelRef(provider: provider, model: model)
        }
        if let provider = providers[trimmed] {
            guard let first = provider.models.first else {
                throw ModelResolutionError(message: "provider '\(trimmed)' lists no models; write \(trimmed):MODEL")
            }
            return ModelRef(provider: trimmed, model: first)
        }
        for name in providerOrder {
            if let provider = providers[name], provider.models.contains(trimmed) { return ModelRef(provider: name, model: trimmed) }
        }
        throw ModelResolutionError(message: "unknown model '\(trimmed)'; name it as provider:model (for example openai:gpt-4o-mini or local); `parley models` lists what is configured")
    }

    /// The base URL a provider is reached at: the config's, else the vendor's environment variable, else the preset's.
    public func baseURL(of provider: ProviderConfig, environment: [String: String]) -> String {
        if provider.isPreset, let preset = ProviderPreset.named(provider.name), provider.baseURL == preset.baseURL,
           let variable = preset.baseURLVariable, let value = environment[variable], !value.isEmpty {
            return provider.name == "ollama" ? ProviderPreset.ollamaBaseURL(from: value) : value
        }
        return provider.baseURL
    }

    /// The endpoint for a provider, with its key read from the environment. `local` needs the port and
    /// the key of the server Parley started.
    public func endpoint(for ref: ModelRef, environment: [String: String], local: (port: Int, key: String)? = nil) -> ProviderEndpoint {
        guard let provider = providers[ref.provider] else {
            preconditionFailure("resolve() returns only configured providers")
        }
        var baseURL = baseURL(of: provider, environment: environment)
        var key = provider.apiKeyVariable.flatMap { environment[$0] }.flatMap { $0.isEmpty ? nil : $0 }
        if provider.name == "local", let local {
            baseURL = provider.format == .openAIChat ? "http://127.0.0.1:\(local.port)/v1" : "http://127.0.0.1:\(local.port)"
            key = local.key
        }
        var endpoint = ProviderEndpoint(
            name: provider.name, format: provider.format, baseURL: baseURL, apiKey: key,
            apiKeyVariable: provider.apiKeyVariable,
            requiresKey: provider.apiKeyVariable != nil && provider.isPreset,
            dialect: provider.dialect, extraHeaders: provider.headers, timeouts: provider.timeouts
        )
        provider.settings.apply(to: &endpoint)
        models[ref]?.request.apply(to: &endpoint)
        return endpoint
    }
}
