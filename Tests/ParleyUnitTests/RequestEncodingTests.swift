import Foundation
import Testing
import ParleyCore
@testable import ParleyProviders

@Suite struct RequestEncodingTests {
    let conversation = ChatRequest(
        model: "m", system: "Be terse.",
        messages: [
            .user("What's the weather in Paris?"),
            ChatMessage(role: .assistant, content: "", toolCalls: [ToolCall(id: "call_1", name: "get_weather", arguments: #"{"city":"Paris"}"#)]),
            ChatMessage(role: .tool, content: "18°C", toolCallID: "call_1"),
            .assistant("18°C and sunny."),
            .user("Thanks"),
        ],
        temperature: 0.2, maxTokens: 100
    )

    func body(_ spec: HTTPRequestSpec) throws -> JSONValue { try JSONValue.parse(spec.body) }

    @Test func openAIBodyAndHeaders() throws {
        let spec = try OpenAIChatFormat.makeRequest(conversation, baseURL: "https://api.openai.com/v1/", apiKey: "sk-test", dialect: .openAI)
        #expect(spec.url == "https://api.openai.com/v1/chat/completions")
        #expect(spec.headers["authorization"] == "Bearer sk-test")
        let json = try body(spec)
        #expect(json["stream"] == true)
        #expect(json["stream_options"]?["include_usage"] == true)
        #expect(json["max_completion_tokens"]?.int == 100)
        let messages = try #require(json["messages"]?.array)
        #expect(messages.first?["role"]?.string == "system")
        #expect(messages.first?["content"]?.string == "Be terse.")
        #expect(messages[2]["tool_calls"]?[0]?["function"]?["arguments"]?.string == #"{"city":"Paris"}"#)
        #expect(messages[3]["role"]?.string == "tool")
        #expect(messages[3]["tool_call_id"]?.string == "call_1")
    }

    @Test func mistralGetsNoStreamOptions() throws {
        let spec = try OpenAIChatFormat.makeRequest(conversation, baseURL: "https://api.mistral.ai/v1", apiKey: "k", dialect: .mistral)
        let json = try body(spec)
        #expect(json["stream_options"] == nil)
        #expect(json["max_tokens"]?.int == 100)
        #expect(json["stream"] == true)
    }

    @Test func anthropicSystemTopLevelAndToolBlocks() throws {
        let spec = try AnthropicMessagesFormat.makeRequest(conversation, baseURL: "https://api.anthropic.com", apiKey: "sk-ant")
        #expect(spec.url == "https://api.anthropic.com/v1/messages")
        #expect(spec.headers["x-api-key"] == "sk-ant")
        #expect(spec.headers["anthropic-version"] == "2023-06-01")
        #expect(spec.headers["authorization"] == nil)
        let json = try body(spec)
        #expect(json["system"]?.string == "Be terse.")
        #expect(json["max_tokens"]?.int == 100)
        let messages = try #require(json["messages"]?.array)
        #expect(messages.allSatisfy { $0["role"]?.string != "system" })
        // Roles alternate: user, assistant(tool_use), user(tool_result), assistant, user.
        #expect(messages.map { $0["role"]?.string ?? "" } == ["user", "assistant", "user", "assistant", "user"])
        #expect(messages[1]["content"]?[0]?["type"]?.string == "tool_use")
        #expect(messages[1]["content"]?[0]?["input"]?["city"]?.string == "Paris")
        #expect(messages[2]["content"]?[0]?["type"]?.string == "tool_result")
        #expect(messages[2]["content"]?[0]?["tool_use_id"]?.string == "call_1")
    }

    @Test func anthropicDefaultsMaxTokens() throws {
        let spec = try AnthropicMessagesFormat.makeRequest(ChatRequest(model: "m", messages: [.user("hi")]), baseURL: "http://x", apiKey: nil)
        #expect(try body(spec)["max_tokens"]?.int == AnthropicMessagesFormat.defaultMaxTokens)
        #expect(spec.headers["x-api-key"] == nil)
    }

    @Test func ollamaNativeOptions() throws {
        let spec = try OllamaChatFormat.makeRequest(conversation, baseURL: "http://127.0.0.1:11434")
        #expect(spec.url == "http://127.0.0.1:11434/api/chat")
        let json = try body(spec)
        #expect(json["options"]?["num_predict"]?.int == 100)
        #expect(json["options"]?["temperature"]?.double == 0.2)
        #expect(json["messages"]?[0]?["role"]?.string == "system")
    }

    @Test func nonSuccessBodiesBecomeTypedErrorsWithTheProvidersMessage() {
        let endpoint = ProviderEndpoint(name: "openai", format: .openAIChat, baseURL: "https://api.openai.com/v1", apiKeyVariable: "OPENAI_API_KEY", requiresKey: true)
        let unauthorized = endpoint.httpError(status: 401, body: Array(#"{"error":{"message":"Incorrect API key provided: sk-bad.","type":"invalid_request_error","code":"invalid_api_key"}}"#.utf8))
        #expect(unauthorized.message == "Incorrect API key provided: sk-bad.")
        #expect(unauthorized.userMessage.contains("OPENAI_API_KEY"))
        let anthropic = ProviderEndpoint(name: "anthropic", format: .anthropicMessages, baseURL: "https://api.anthropic.com")
            .httpError(status: 529, body: Array(#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#.utf8))
        #expect(anthropic.type == "overloaded_error")
        #expect(anthropic.userMessage == "anthropic: HTTP 529: Overloaded; the provider is failing or overloaded; try again shortly or pick another model")
        let plain = endpoint.httpError(status: 502, body: Array("<html>Bad Gateway</html>".utf8))
        #expect(plain.message == "<html>Bad Gateway</html>")
        let ollama = endpoint.httpError(status: 404, body: Array(#"{"error":"model 'llama9' not found"}"#.utf8))
        #expect(ollama.message == "model 'llama9' not found")
        #expect(ollama.userMessage.contains("parley models"))
    }

    /// A tool schema that is not a JSON object is an error naming the tool, in every format; it is
    /// never sent as a made-up `{"type":"object"}`.
    @Test(arguments: [WireFormat.openAIChat, .anthropicMessages, .ollamaChat])
    func aBadToolSchemaIsAnErrorNotAGuess(_ format: WireFormat) {
        let request = ChatRequest(model: "m", messages: [.user("hi")], tools: [ToolDefinition(name: "lookup", description: "d", parametersJSON: "{not json")])
        let endpoint = ProviderEndpoint(name: "p", format: format, baseURL: "http://127.0.0.1:9")
        #expect { _ = try endpoint.makeRequest(request) } throws: { ($0 as? InvalidToolSchema)?.tool == "lookup" }
        var array = request
        array.tools = [ToolDefinition(name: "list", description: "d", parametersJSON: "[1, 2]")]
        #expect { _ = try endpoint.makeRequest(array) } throws: { ($0 as? InvalidToolSchema)?.userMessage.contains("not a JSON object") == true }
    }
}


/// Found by an attack: a conversation with a tool call and no result (a turn stopped), or a result whose
/// call was trimmed away, is refused by providers; the engine sends one that is whole.
@Suite struct ToolHistoryTests {
    @Test func everyCallIsAnsweredAndEveryResultHasItsCall() {
        let messages: [ChatMessage] = [
            .user("a"),
            ChatMessage(role: .tool, content: "orphan", toolCallID: "gone"),
            ChatMessage(role: .assistant, content: "", toolCalls: [ToolCall(id: "1", name: "x", arguments: "{}"), ToolCall(id: "2", name: "x", arguments: "{}")]),
            ChatMessage(role: .tool, content: "one", toolCallID: "1"),
            .user("b"),
        ]
        let whole = ChatRequest(model: "m", messages: messages).answeringEveryToolCall().messages
        #expect(whole.map(\.role) == [.user, .assistant, .tool, .tool, .user])
        #expect(whole[2].content == "one" && whole[3].toolCallID == "2" && whole[3].isError == true && whole[3].content.hasPrefix("ERROR:"))
        let plain: [ChatMessage] = [.user("a"), .assistant("b")]
        #expect(ChatRequest(model: "m", messages: plain).answeringEveryToolCall().messages == plain)
    }

    @Test func linesAreSplitOnceHoweverLongTheyGrow() {
        var lines = LineSplitter(limit: 1 << 20)
        var got: [String] = []
        let chunk = Array(String(repeating: "x", count: 1000).utf8)
        for _ in 0..<500 { lines.append(chunk) }   // 500 KB without a newline
        #expect(lines.next() == nil && !lines.isOverLimit)
        lines.append(Array("\nsecond\n\nthird".utf8))
        while let line = lines.next() { got.append(String(decoding: line, as: UTF8.self)) }
        #expect(got.map(\.count) == [500_000, 6, 0])
        lines.append(Array("\n".utf8))
        #expect(lines.next().map { String(decoding: $0, as: UTF8.self) } == "third")
        for _ in 0..<1100 { lines.append(chunk) }
        #expect(lines.isOverLimit)
    }
}
