import Foundation

/// An error a user can act on: one line naming the cause and the fix.
public protocol UserFacingError: Error {
    var userMessage: String { get }
}

/// The one line any error is shown as, on the command line and on the screen alike.
public func describe(_ error: any Error) -> String {
    if let error = error as? any UserFacingError { return error.userMessage }
    if error is CancellationError { return "stopped" }
    return TerminalSanitizer.line(String(describing: error))
}

/// Everything that can go wrong talking to a provider, typed so that retry and fallback can reason about it.
public struct ProviderError: UserFacingError, Sendable, Equatable {
    public enum Kind: String, Sendable, Codable {
        /// A non-2xx answer; `status` and the provider's own `message` say more.
        case http
        /// An `error` event or object inside a stream that started with 200.
        case inStream
        /// The stream ended without its terminator (`[DONE]`, `message_stop`, `done: true`).
        case cutOff
        /// A chunk that is not the JSON the format promises.
        case malformed
        case connectTimeout
        case firstTokenTimeout
        case idleTimeout
        case totalTimeout
        /// Could not connect, or the connection broke.
        case connection
        /// The API key's environment variable is not set.
        case missingKey
        case cancelled
    }

    public var kind: Kind
    /// The provider's name as configured (`openai`, `local`, ...).
    public var provider: String
    public var status: Int?
    /// The provider's own error message, or ours when it gave none.
    public var message: String
    /// The provider's error type (`overloaded_error`, `invalid_request_error`, ...).
    public var type: String?
    /// What the user can do about it.
    public var hint: String?
    /// Seconds the server asked to wait (`retry-after-ms` / `retry-after`).
    public var retryAfter: Double?
    /// The server's `x-should-retry`, when it sent one.
    public var shouldRetry: Bool?

    public init(kind: Kind, provider: String, status: Int? = nil, message: String, type: String? = nil, hint: String? = nil) {
        self.kind = kind
        self.provider = provider
        self.status = status
        self.message = message
        self.type = type
        self.hint = hint
    }

    public var userMessage: String {
        var line = "\(provider): "
        if let status { line += "HTTP \(status): " }
        line += message
        if let hint, !hint.isEmpty { line += "; \(hint)" }
        return line
    }

    /// How providers word a request longer than the model's context window: OpenAI "maximum context
    /// length is N tokens" (`context_length_exceeded`), Anthropic "prompt is too long: N tokens > M maximum",
    /// llama.cpp "exceeds the available context size", Groq/Mistral/vLLM variants of these. A word like
    /// "maximum" alone (e.g. "temperature exceeds the maximum") is not one.
    public static func mentionsContextOverflow(_ message: String) -> Bool {
        let lowered = message.lowercased()
        let phrases = ["context length", "context window", "context size", "context_length_exceeded",
                       "prompt is too long", "too many tokens", "maximum context", "input is too long", "exceeds the context"]
        return phrases.contains { lowered.contains($0) }
    }

    /// A 400 that says the conversation does not fit the model's context window.
    public var isContextOverflow: Bool { kind == .http && status == 400 && Self.mentionsContextOverflow(message) }

    public static func cutOff(provider: String) -> ProviderError {
        ProviderError(
            kind: .cutOff, provider: provider,
            message: "the reply was cut off (the stream ended without its end marker)"
        )
    }
}
