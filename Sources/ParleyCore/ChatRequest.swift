import Foundation

/// What a caller asks of a model, independent of any wire format.
public struct ChatRequest: Sendable, Equatable {
    /// The model name as the provider knows it (no `provider:` prefix).
    public var model: String
    /// The system prompt; each wire format decides where it goes.
    public var system: String?
    public var messages: [ChatMessage]
    public var temperature: Double?
    public var maxTokens: Int?
    public var tools: [ToolDefinition]

    public init(
        model: String,
        system: String? = nil,
        messages: [ChatMessage],
        temperature: Double? = nil,
        maxTokens: Int? = nil,
        tools: [ToolDefinition] = []
    ) {
        self.model = model
        self.system = system
        self.messages = messages
        self.temperature = temperature
        self.maxTokens = maxTokens
        self.tools = tools
    }

    /// The system prompt joined from `system` and any `.system` messages, in order.
    public var combinedSystemPrompt: String? {
        let parts = ([system] + messages.filter { $0.role == .system }.map(\.content)).compactMap { $0 }
            .filter { !$0.isEmpty }
        return parts.isEmpty ? nil : parts.joined(separator: "\n\n")
    }
}
