import Foundation

/// Who wrote a message in a conversation.
public enum Role: String, Codable, Sendable, CaseIterable {
    case system, user, assistant, tool
}

/// A complete tool call made by the model: the arguments are the JSON text it produced.
public struct ToolCall: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var arguments: String

    public init(id: String, name: String, arguments: String) {
        self.id = id
        self.name = name
        self.arguments = arguments
    }
}

/// A tool the model may call, described by a JSON Schema (kept as JSON text so no schema type is imposed).
public struct ToolDefinition: Codable, Sendable, Equatable {
    public var name: String
    public var description: String
    public var parametersJSON: String

    public init(name: String, description: String, parametersJSON: String = #"{"type":"object","properties":{}}"#) {
        self.name = name
        self.description = description
        self.parametersJSON = parametersJSON
    }

    /// The parameters' JSON Schema, which must be a JSON object. Checked here, once for every wire
    /// format: a bad schema is an error that names the tool, never quietly replaced by `{"type":"object"}`.
    public func parameters() throws(InvalidToolSchema) -> JSONValue {
        let value: JSONValue
        do { value = try JSONValue.parse(parametersJSON) } catch {
            throw InvalidToolSchema(tool: name, problem: error.description)
        }
        guard value.members != nil else { throw InvalidToolSchema(tool: name, problem: "it is not a JSON object") }
        return value
    }
}

/// A tool whose parameter schema cannot be sent.
public struct InvalidToolSchema: UserFacingError, Sendable, Equatable {
    public var tool: String
    public var problem: String
    public var userMessage: String { "tool \(tool): its parameters schema is not usable (\(problem)); nothing was sent" }
}

/// One message of a conversation, in a form every wire format can be built from.
public struct ChatMessage: Codable, Sendable, Equatable {
    public var role: Role
    public var content: String
    /// Tool calls the assistant made in this message.
    public var toolCalls: [ToolCall]
    /// For `role == .tool`: the id of the call this result answers.
    public var toolCallID: String?
    /// For `role == .tool`: the tool reported an error (Anthropic's `is_error`; the text says so too).
    /// nil otherwise, so it is not in the encoding of other messages.
    public var isError: Bool?

    public init(role: Role, content: String, toolCalls: [ToolCall] = [], toolCallID: String? = nil, isError: Bool? = nil) {
        self.role = role
        self.content = content
        self.toolCalls = toolCalls
        self.toolCallID = toolCallID
        self.isError = isError
    }

    public static func system(_ text: String) -> ChatMessage { ChatMessage(role: .system, content: text) }
    public static func user(_ text: String) -> ChatMessage { ChatMessage(role: .user, content: text) }
    public static func assistant(_ text: String) -> ChatMessage { ChatMessage(role: .assistant, content: text) }
}

extension ChatRequest {
    /// The messages with every tool call answered and every result answering a call: a call left without
    /// its result (a turn stopped before it ran) gets one that says so, right after the results it has,
    /// and a result whose call is not in the conversation (trimmed away) is left out. Providers refuse
    /// a conversation that breaks either rule, and every later message would fail with it.
    public func answeringEveryToolCall() -> ChatRequest {
        guard messages.contains(where: { !$0.toolCalls.isEmpty || $0.role == .tool }) else { return self }
        var out: [ChatMessage] = []
        var open: [String] = []
        func close() {
            for id in open { out.append(ChatMessage(role: .tool, content: "ERROR: stopped before it ran", toolCallID: id, isError: true)) }
            open = []
        }
        for message in messages {
            if message.role == .tool {
                if let id = message.toolCallID, let index = open.firstIndex(of: id) {
                    open.remove(at: index)
                    out.append(message)
                }
                continue
            }
            close()
            out.append(message)
            open = message.toolCalls.map(\.id)
        }
        close()
        var copy = self
        copy.messages = out
        return copy
    }
}
