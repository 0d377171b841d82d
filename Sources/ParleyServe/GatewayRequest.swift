import Foundation
import ParleyCore

/// A client's request, in either wire format, as the turn takes it.
struct GatewayRequest: Sendable {
    enum Format: Sendable { case openAI, anthropic }

    var format: Format
    var model: String
    var request: ChatRequest
    var stream: Bool
    /// OpenAI's `stream_options.include_usage`: a last chunk with the usage.
    var includeUsage: Bool
}

/// A request the gateway refuses, with the HTTP status and the error's type and code in the client's format.
struct GatewayError: Error, Sendable {
    var status: Int
    var message: String
    /// OpenAI's `type` (`invalid_request_error`, ...); Anthropic's error type is derived from the status.
    var type: String
    var code: String?
    var headers: [(String, String)] = []

    static func invalid(_ message: String, code: String? = nil) -> GatewayError {
        GatewayError(status: 400, message: message, type: "invalid_request_error", code: code)
    }
}

extension GatewayRequest {
    /// The most messages and tools one request may carry (a body is already capped in bytes).
    static let maxMessages = 10_000
    static let maxTools = 512

    /// `POST /v1/chat/completions`. Every field is checked; what Parley cannot honour (n > 1, stop
    /// sequences, images) is refused by name rather than dropped in silence.
    static func openAI(_ json: JSONValue) throws(GatewayError) -> GatewayRequest {
        guard json.members != nil else { throw .invalid("the body must be a JSON object") }
        let model = try modelName(json["model"])
        guard let messages = json["messages"]?.array, !messages.isEmpty else { throw .invalid("messages: expected a non-empty array", code: "missing_messages") }
        guard messages.count <= maxMessages else { throw .invalid("messages: at most \(maxMessages)") }
        if let n = json["n"], !n.isNull, n.int != 1 { throw .invalid("n: parley serve answers with one choice; send n = 1 or leave it out") }
        if let stop = json["stop"], !stop.isNull, stop.string != nil || !(stop.array?.isEmpty ?? true) {
            throw .invalid("stop: stop sequences are not supported by parley serve; leave stop out")
        }
        var system: [String] = []
        var chat: [ChatMessage] = []
        for (index, message) in messages.enumerated() {
            let key = "messages[\(index)]"
            let role = try string(message["role"], "\(key).role")
            // Only an assistant turn that calls tools may have no content.
            if role != "assistant", message["content"]?.isNull ?? true { throw .invalid("\(key).content: expected a string or an array of text parts") }
            let text = try content(message["content"], "\(key).content")
            switch role {
            case "system", "developer": system.append(text)
            case "user": chat.append(.user(text))
            case "assistant":
                var calls: [ToolCall] = []
                for (callIndex, call) in (message["tool_calls"]?.array ?? []).enumerated() {
                    let callKey = "\(key).tool_calls[\(callIndex)]"
                    let function = call["function"]
                    calls.append(ToolCall(id: try string(call["id"], "\(callKey).id"), name: try string(function?["name"], "\(callKey).function.name"),
                                          arguments: function?["arguments"]?.string ?? "{}"))
                }
                chat.append(ChatMessage(role: .assistant, content: text, toolCalls: calls))
            case "tool":
                chat.append(ChatMessage(role: .tool, content: text, toolCallID: try string(message["tool_call_id"], "\(key).tool_call_id")))
            default:
                throw .invalid("\(key).role: expected system, developer, user, assistant or tool, found \(role.prefix(40))")
            }
        }
        var request = ChatRequest(model: model, system: system.isEmpty ? nil : system.joined(separator: "\n\n"), messages: chat)
        request.temperature = try number(json["temperature"], "temperature", 0...2)
        request.maxTokens = try integer(json["max_completion_tokens"] ?? json["max_tokens"], "max_tokens", 1...1_000_000)
        request.seed = try integer(json["seed"], "seed", Int(Int32.min)...Int(Int32.max))
        let toolChoiceNone = json["tool_choice"]?.string == "none"
        if let tools = json["tools"]?.array, !toolChoiceNone {
            guard tools.count <= maxTools else { throw .invalid("tools: at most \(maxTools)") }
            request.tools = try tools.enumerated().map { (index, tool) throws(GatewayError) in
                let function = tool["function"]
                return try definition(name: function?["name"], description: function?["description"], parameters: function?["parameters"], "tools[\(index)].function")
            }
        }
        if let format = json["response_format"], !format.isNull {
            switch format["type"]?.string {
            case "text"?: break
            case "json_object"?: request.responseFormat = .jsonObject
            case "json_schema"?:
                let spec = format["json_schema"]
                guard let schema = spec?["schema"], schema.members != nil else { throw .invalid("response_format.json_schema.schema: expected a JSON Schema object") }
                request.responseFormat = .jsonSchema(name: spec?["name"]?.string ?? "answer", schema: schema, strict: spec?["strict"]?.bool ?? true)
            default: throw .invalid("response_format.type: expected text, json_object or json_schema")
            }
        }
        let stream = try flag(json["stream"], "stream")
        let includeUsage = try flag(json["stream_options"]?["include_usage"], "stream_options.include_usage")
        return GatewayRequest(format: .openAI, model: model, request: request, stream: stream, includeUsage: stream && includeUsage)
    }

    /// `POST /v1/messages` (Anthropic Messages): text and tool blocks.
    static func anthropic(_ json: JSONValue) throws(GatewayError) -> GatewayRequest {
        guard json.members != nil else { throw .invalid("the body must be a JSON object") }
        let model = try modelName(json["model"])
        guard let messages = json["messages"]?.array, !messages.isEmpty else { throw .invalid("messages: expected a non-empty array") }
        guard messages.count <= maxMessages else { throw .invalid("messages: at most \(maxMessages)") }
        guard let maxTokens = try integer(json["max_tokens"], "max_tokens", 1...1_000_000) else { throw .invalid("max_tokens: required") }
        var system: String?
        if let value = json["system"], !value.isNull { system = try content(value, "system") }
        var chat: [ChatMessage] = []
        for (index, message) in messages.enumerated() {
            let key = "messages[\(index)]"
            let role = try string(message["role"], "\(key).role")
            guard role == "user" || role == "assistant" else { throw .invalid("\(key).role: expected user or assistant") }
            if let text = message["content"]?.string {
                chat.append(ChatMessage(role: role == "user" ? .user : .assistant, content: text))
                continue
            }
            guard let blocks = message["content"]?.array else { throw .invalid("\(key).content: expected a string or an array of blocks") }
            var texts: [String] = []
            var calls: [ToolCall] = []
            for (blockIndex, block) in blocks.enumerated() {
                let blockKey = "\(key).content[\(blockIndex)]"
                switch block["type"]?.string {
                case "text"?: texts.append(try string(block["text"], "\(blockKey).text", allowEmpty: true))
                case "tool_use"?:
                    calls.append(ToolCall(id: try string(block["id"], "\(blockKey).id"), name: try string(block["name"], "\(blockKey).name"),
                                          arguments: (block["input"] ?? [:]).serialized()))
                case "tool_result"?:
                    let result = try block["content"].map { value throws(GatewayError) in try content(value, "\(blockKey).content") } ?? ""
                    chat.append(ChatMessage(role: .tool, content: result, toolCallID: try string(block["tool_use_id"], "\(blockKey).tool_use_id"),
                                            isError: block["is_error"]?.bool))
                default: throw .invalid("\(blockKey).type: expected text, tool_use or tool_result (images and documents are not supported by parley serve)")
                }
            }
            if !texts.isEmpty || !calls.isEmpty {
                chat.append(ChatMessage(role: role == "user" ? .user : .assistant, content: texts.joined(separator: "\n"), toolCalls: calls))
            }
        }
        var request = ChatRequest(model: model, system: system, messages: chat)
        request.maxTokens = maxTokens
        request.temperature = try number(json["temperature"], "temperature", 0...1)
        if let stop = json["stop_sequences"]?.array, !stop.isEmpty { throw .invalid("stop_sequences: not supported by parley serve; leave them out") }
        if let tools = json["tools"]?.array {
            guard tools.count <= maxTools else { throw .invalid("tools: at most \(maxTools)") }
            request.tools = try tools.enumerated().map { (index, tool) throws(GatewayError) in
                try definition(name: tool["name"], description: tool["description"], parameters: tool["input_schema"], "tools[\(index)]")
            }
        }
        return GatewayRequest(format: .anthropic, model: model, request: request, stream: try flag(json["stream"], "stream"), includeUsage: true)
    }

    /// A model name goes into headers, logs and the ledger: short, and no control characters.
    static func modelName(_ value: JSONValue?) throws(GatewayError) -> String {
        let name = try string(value, "model")
        guard name.utf8.count <= 256, !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw .invalid("model: expected a model name of at most 256 bytes without control characters", code: "model_not_found")
        }
        return name
    }

    /// true, false, or absent (false); anything else is refused, not taken for false.
    static func flag(_ value: JSONValue?, _ key: String) throws(GatewayError) -> Bool {
        guard let value, !value.isNull else { return false }
        guard let flag = value.bool else { throw .invalid("\(key): expected true or false") }
        return flag
    }

    static func string(_ value: JSONValue?, _ key: String, allowEmpty: Bool = false) throws(GatewayError) -> String {
        guard let text = value?.string, allowEmpty || !text.isEmpty else { throw .invalid("\(key): expected a non-empty string") }
        return text
    }

    /// A message's content: a string, null (an assistant turn with only tool calls), or text parts.
    static func content(_ value: JSONValue?, _ key: String) throws(GatewayError) -> String {
        guard let value, !value.isNull else { return "" }
        if let text = value.string { return text }
        guard let parts = value.array else { throw .invalid("\(key): expected a string or an array of text parts") }
        var texts: [String] = []
        for (index, part) in parts.enumerated() {
            guard part["type"]?.string == "text", let text = part["text"]?.string else {
                throw .invalid("\(key)[\(index)]: only text parts are supported by parley serve (no images, audio or files)")
            }
            texts.append(text)
        }
        return texts.joined(separator: "\n")
    }

    static func number(_ value: JSONValue?, _ key: String, _ range: ClosedRange<Double>) throws(GatewayError) -> Double? {
        guard let value, !value.isNull else { return nil }
        guard let number = value.double, number.isFinite, range.contains(number) else {
            throw .invalid("\(key): expected a number from \(range.lowerBound) to \(range.upperBound)")
        }
        return number
    }

    static func integer(_ value: JSONValue?, _ key: String, _ range: ClosedRange<Int>) throws(GatewayError) -> Int? {
        guard let value, !value.isNull else { return nil }
        guard let number = value.double, number.isFinite, number.rounded() == number, number >= Double(range.lowerBound), number <= Double(range.upperBound) else {
            throw .invalid("\(key): expected an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return Int(number)
    }

    static func definition(name: JSONValue?, description: JSONValue?, parameters: JSONValue?, _ key: String) throws(GatewayError) -> ToolDefinition {
        let name = try string(name, "\(key).name")
        guard name.utf8.count <= 128 else { throw .invalid("\(key).name: at most 128 bytes") }
        let schema = parameters ?? ["type": "object", "properties": [:]]
        guard schema.members != nil else { throw .invalid("\(key): the parameters schema must be a JSON object") }
        return ToolDefinition(name: name, description: description?.string ?? "", parametersJSON: schema.serialized())
    }
}
