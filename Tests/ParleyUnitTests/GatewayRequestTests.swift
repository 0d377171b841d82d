import Foundation
import Testing
import ParleyCore
@testable import ParleyServe

/// What a client sends `parley serve`, checked into the turn's request; what cannot be honoured is refused by name.
@Suite struct GatewayRequestTests {
    func openAI(_ text: String) throws -> GatewayRequest { try GatewayRequest.openAI(try JSONValue.parse(text)) }
    func anthropic(_ text: String) throws -> GatewayRequest { try GatewayRequest.anthropic(try JSONValue.parse(text)) }

    @Test func anOpenAIConversationWithToolsAndASchemaArrivesWhole() throws {
        let parsed = try openAI("""
            {"model":"smart","stream":true,"stream_options":{"include_usage":true},"temperature":0,"max_completion_tokens":300,"seed":7,
             "messages":[{"role":"system","content":"Be brief."},{"role":"developer","content":"No lists."},
               {"role":"user","content":[{"type":"text","text":"Weather"},{"type":"text","text":"in Oslo?"}]},
               {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"weather","arguments":"{\\"city\\":\\"Oslo\\"}"}}]},
               {"role":"tool","tool_call_id":"c1","content":"4 °C"}],
             "tools":[{"type":"function","function":{"name":"weather","description":"Current weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],
             "response_format":{"type":"json_schema","json_schema":{"name":"w","schema":{"type":"object"},"strict":true}}}
            """)
        #expect(parsed.model == "smart" && parsed.stream && parsed.includeUsage)
        let request = parsed.request
        #expect(request.system == "Be brief.\n\nNo lists.")
        #expect(request.messages.map(\.role) == [.user, .assistant, .tool])
        #expect(request.messages[0].content == "Weather\nin Oslo?")
        #expect(request.messages[1].toolCalls == [ToolCall(id: "c1", name: "weather", arguments: #"{"city":"Oslo"}"#)])
        #expect(request.messages[2].toolCallID == "c1")
        #expect(request.tools.map(\.name) == ["weather"])
        #expect(request.temperature == 0 && request.maxTokens == 300 && request.seed == 7)
        #expect(request.responseFormat == .jsonSchema(name: "w", schema: ["type": "object"], strict: true))
    }

    @Test func anAnthropicConversationWithToolUseAndResultsArrivesWhole() throws {
        let parsed = try anthropic("""
            {"model":"local","max_tokens":64,"system":[{"type":"text","text":"Be brief."}],
             "messages":[{"role":"user","content":"Weather in Oslo?"},
               {"role":"assistant","content":[{"type":"text","text":"Checking."},{"type":"tool_use","id":"t1","name":"weather","input":{"city":"Oslo"}}]},
               {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"4 °C","is_error":false}]}],
             "tools":[{"name":"weather","description":"Current weather","input_schema":{"type":"object"}}]}
            """)
        let request = parsed.request
        #expect(request.system == "Be brief." && request.maxTokens == 64 && !parsed.stream)
        #expect(request.messages.map(\.role) == [.user, .assistant, .tool])
        #expect(request.messages[1].content == "Checking.")
        #expect(request.messages[1].toolCalls.first?.name == "weather")
        #expect(try JSONValue.parse(request.messages[1].toolCalls.first?.arguments ?? "") == ["city": "Oslo"])
        #expect(request.messages[2].toolCallID == "t1" && request.messages[2].content == "4 °C")
        #expect(request.tools.first?.parametersJSON == #"{"type":"object"}"#)
    }

    @Test(arguments: [
        (#"[1, 2]"#, "the body must be a JSON object"),
        (#"{"messages":[{"role":"user","content":"x"}]}"#, "model: expected a non-empty string"),
        (#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#, "messages[0].role: expected system, developer, user, assistant or tool"),
        (#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"u"}}]}]}"#, "only text parts are supported"),
        (#"{"model":"m","n":2,"messages":[{"role":"user","content":"x"}]}"#, "n: parley serve answers with one choice"),
        (#"{"model":"m","stop":["\n"],"messages":[{"role":"user","content":"x"}]}"#, "stop: stop sequences are not supported"),
        (#"{"model":"m","temperature":9,"messages":[{"role":"user","content":"x"}]}"#, "temperature: expected a number from 0.0 to 2.0"),
        (#"{"model":"m","max_tokens":1.5,"messages":[{"role":"user","content":"x"}]}"#, "max_tokens: expected an integer"),
        (#"{"model":"m","max_tokens":1e300,"messages":[{"role":"user","content":"x"}]}"#, "max_tokens: expected an integer"),
        (#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#, "messages[0].tool_call_id: expected a non-empty string"),
        (#"{"model":"m","tools":[{"type":"function","function":{"name":"f","parameters":[1]}}],"messages":[{"role":"user","content":"x"}]}"#, "the parameters schema must be a JSON object"),
        (#"{"model":"m","response_format":{"type":"yaml"},"messages":[{"role":"user","content":"x"}]}"#, "response_format.type: expected text, json_object or json_schema"),
    ])
    func everyRefusalNamesTheField(_ body: String, _ fragment: String) throws {
        do {
            _ = try openAI(body)
            Issue.record("accepted \(body)")
        } catch let error as GatewayError {
            #expect(error.status == 400)
            #expect(error.message.contains(fragment), "\(error.message)")
        }
    }

    @Test func anAnthropicRequestNeedsMaxTokensAndTextBlocks() throws {
        #expect(throws: GatewayError.self) { try anthropic(#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#) }
        #expect(throws: GatewayError.self) { try anthropic(#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image","source":{}}]}]}"#) }
        #expect(throws: GatewayError.self) { try anthropic(#"{"model":"m","max_tokens":5,"messages":[{"role":"system","content":"x"}]}"#) }
    }

    @Test func clientsSeeWhyButNotWhere() {
        #expect(Exchange.hidingAddresses("box: the connection to http://10.0.0.7:8000/v1 failed (refused)") == "box: the connection to (address hidden) failed (refused)")
        #expect(Exchange.hidingAddresses("the team database postgres://parley@db:5432/parley cannot be used") == "the team database (address hidden) cannot be used")
        #expect(Exchange.hidingAddresses("a :// alone, and no address") == "a :// alone, and no address")
        #expect(Exchange.hidingAddresses("two: https://a/x, https://b/y.") == "two: (address hidden), (address hidden)")
    }
}
