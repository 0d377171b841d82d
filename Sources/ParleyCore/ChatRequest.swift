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
    /// Ask for JSON: any object, or one matching a schema. Each wire format sends its native constraint.
    public var responseFormat: ResponseFormat?
    /// Sampling seed, where the provider takes one (OpenAI-compatible servers, Ollama).
    public var seed: Int?

    public init(
        model: String,
        system: String? = nil,
        messages: [ChatMessage],
        temperature: Double? = nil,
        maxTokens: Int? = nil,
        tools: [ToolDefinition] = [],
        responseFormat: ResponseFormat? = nil,
        seed: Int? = nil
    ) {
        self.model = model
        self.system = system
        self.messages = messages
        self.temperature = temperature
        self.maxTokens = maxTokens
        self.tools = tools
        self.responseFormat = responseFormat
        self.seed = seed
    }

    /// The system prompt joined from `system` and any `.system` messages, in order.
    public var combinedSystemPrompt: String? {
        let parts = ([system] + messages.filter { $0.role == .system }.map(\.content)).compactMap { $0 }
            .filter { !$0.isEmpty }
        return parts.isEmpty ? nil : parts.joined(separator: "\n\n")
    }
}

/// The JSON a request asks for. The constraint is a request to the provider; the answer is validated
/// locally all the same (see `JSONSchema`).
public enum ResponseFormat: Sendable, Equatable, Codable {
    /// Any JSON object (OpenAI `json_object`, Ollama `"json"`).
    case jsonObject
    /// JSON matching `schema`; `strict` asks OpenAI for strict mode, which it accepts only for schemas
    /// whose every object lists all its properties as required and sets `additionalProperties: false`.
    case jsonSchema(name: String, schema: JSONValue, strict: Bool)

    /// The name of the tool Anthropic is forced to call: its `input` is the answer.
    public static let anthropicToolName = "json_answer"

    /// The schema sent (for `jsonObject`, `{"type":"object"}`).
    public var schema: JSONValue {
        switch self {
        case .jsonObject: return ["type": "object"]
        case let .jsonSchema(_, schema, _): return schema
        }
    }

    private enum CodingKeys: String, CodingKey { case kind, name, schema, strict }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        if try container.decode(String.self, forKey: .kind) == "json_object" { self = .jsonObject; return }
        let text = try container.decode(String.self, forKey: .schema)
        guard let schema = try? JSONValue.parse(text) else {
            throw DecodingError.dataCorruptedError(forKey: .schema, in: container, debugDescription: "the schema is not JSON")
        }
        self = .jsonSchema(name: try container.decode(String.self, forKey: .name), schema: schema,
                           strict: try container.decode(Bool.self, forKey: .strict))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .jsonObject:
            try container.encode("json_object", forKey: .kind)
        case let .jsonSchema(name, schema, strict):
            try container.encode("json_schema", forKey: .kind)
            try container.encode(name, forKey: .name)
            try container.encode(schema.serialized(), forKey: .schema)
            try container.encode(strict, forKey: .strict)
        }
    }
}
