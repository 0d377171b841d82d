import Foundation
import Testing
import ParleyCore
import ParleyKit
import ParleyProviders
import ParleyTestSupport

/// Issue 14 through the real binary: `ask --schema` against scripted providers in both wire formats
/// (the request carries the native constraint, a re-ask carries the violations, truncation is
/// recognised), templates with few-shot examples, and the real llama-server + SmolLM2.
@Suite struct StructuredOutputTests {
    static let scoreSchema = #"{"type":"object","properties":{"name":{"type":"string"},"score":{"type":"number","maximum":1}},"required":["name","score"],"additionalProperties":false}"#

    /// An OpenAI stream that says `text` in two pieces, then finishes with `finish`.
    static func openAIReply(_ text: String, finish: String = "stop") -> [ScriptedHTTPServer.Step] {
        let middle = text.index(text.startIndex, offsetBy: text.count / 2)
        var body = ""
        for piece in [String(text[..<middle]), String(text[middle...])] {
            body += "data: " + JSONValue.object([("choices", [["index": 0, "delta": ["content": .string(piece)]]])]).serialized() + "\n\n"
        }
        body += "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"\(finish)\"}]}\n\n"
        body += "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":9}}\n\ndata: [DONE]\n\n"
        return ScriptedHTTPServer.sse(Array(body.utf8))
    }

    static func config(_ server: ScriptedHTTPServer, format: String = "openai") -> String {
        "[providers.script]\nbase_url = \"\(server.baseURL)\(format == "openai" ? "/v1" : "")\"\nformat = \"\(format)\"\nmodels = [\"m\"]\n"
    }

    /// Replies in order, one per request; the last repeats.
    static func server(_ replies: [[ScriptedHTTPServer.Step]]) async throws -> ScriptedHTTPServer {
        let counter = LockedCounter()
        return try await ScriptedHTTPServer { _ in replies[min(counter.next(), replies.count - 1)] }
    }

    @Test func anInvalidAnswerIsAskedAgainWithItsViolationsThenPrinted() async throws {
        let server = try await Self.server([Self.openAIReply(#"{"name":"Ada","score":2}"#), Self.openAIReply(#"{"name":"Ada","score":1}"#)])
        let harness = try ParleyHarness(config: Self.config(server))
        defer { harness.cleanUp() }
        let result = try harness.run(["ask", "-m", "script:m", "--schema", Self.scoreSchema, "Rate Ada."])
        await server.shutdown()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "{\"name\":\"Ada\",\"score\":1}\n")
        #expect(result.stderr.contains("$.score: 2 is greater than the maximum 1"), "\(result.stderr)")
        #expect(server.requestCount == 2)
        let first = try JSONValue.parse(server.requests[0].bodyText)
        #expect(first["response_format"]?["type"]?.string == "json_schema")
        #expect(first["response_format"]?["json_schema"]?["strict"] == true)
        #expect(first["response_format"]?["json_schema"]?["schema"] == (try JSONValue.parse(Self.scoreSchema)))
        let second = try JSONValue.parse(server.requests[1].bodyText)
        let messages = try #require(second["messages"]?.array)
        #expect(messages.map { $0["role"]?.string ?? "" } == ["user", "assistant", "user"])
        #expect(messages[1]["content"]?.string == #"{"name":"Ada","score":2}"#)
        #expect(messages[2]["content"]?.string?.contains("- $.score: 2 is greater than the maximum 1") == true)
    }

    @Test func stillInvalidExitsThreeWithTheViolationsAndNothingOnStdout() async throws {
        let server = try await Self.server([Self.openAIReply(#"{"name":7}"#)])
        let harness = try ParleyHarness(config: Self.config(server))
        defer { harness.cleanUp() }
        let result = try harness.run(["ask", "-m", "script:m", "--schema", "name, score float", "--reask", "2", "Rate Ada."])
        let report = try harness.run(["ask", "-m", "script:m", "--schema", "name, score float", "--reask", "0", "--json", "Rate Ada."])
        await server.shutdown()
        #expect(result.status == 3)
        #expect(result.stdout.isEmpty)
        #expect(server.requestCount == 4, "one answer and two re-asks, then one with --reask 0")
        #expect(result.stderr.contains("does not match the schema after 2 re-asks"), "\(result.stderr)")
        #expect(result.stderr.contains("$.name: 7 is not of type"), "\(result.stderr)")
        #expect(result.stderr.contains("missing required property \"score\""), "\(result.stderr)")
        #expect(report.status == 3)
        let json = try JSONValue.parse(report.stdout)
        #expect(json["schema_valid"] == false)
        #expect(json["reasks"]?.int == 0)
        #expect((json["violations"]?.array?.count ?? 0) == 2)
    }

    @Test func anAnswerCutOffByTheOutputLimitIsTruncatedNotInvalid() async throws {
        let server = try await Self.server([Self.openAIReply(#"{"name":"Ad"#, finish: "length")])
        let harness = try ParleyHarness(config: Self.config(server))
        defer { harness.cleanUp() }
        let result = try harness.run(["ask", "-m", "script:m", "--schema", "name", "--max-tokens", "5", "Name someone."])
        await server.shutdown()
        #expect(result.status == 4)
        #expect(result.stdout.isEmpty)
        #expect(server.requestCount == 1, "a cut-off answer is not asked again")
        #expect(result.stderr.contains("cut off by the output limit"), "\(result.stderr)")
        #expect(result.stderr.contains("--max-tokens"))
    }

    /// Numbers written in forms JSON does not allow (`01`, `.5`) never reach stdout as written: what is
    /// printed is the value that was checked, written as valid JSON.
    @Test func stdoutIsTheCheckedValueWrittenAsValidJSON() async throws {
        let server = try await Self.server([Self.openAIReply(#"{"a":01,"b":.5,"c":"\u202e"}"#)])
        let harness = try ParleyHarness(config: Self.config(server))
        defer { harness.cleanUp() }
        let result = try harness.run(["ask", "-m", "script:m", "--json-mode", "hi"])
        await server.shutdown()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "{\"a\":1,\"b\":0.5,\"c\":\"\\u202e\"}\n")
    }

    @Test func jsonModeAndMultiSendTheirForms() async throws {
        let server = try await Self.server([Self.openAIReply(#"{"items":[{"name":"a"},{"name":"b"}]}"#)])
        let harness = try ParleyHarness(config: Self.config(server))
        defer { harness.cleanUp() }
        let multi = try harness.run(["ask", "-m", "script:m", "--schema-multi", "name", "Two names."])
        let mode = try harness.run(["ask", "-m", "script:m", "--json-mode", "Anything."])
        await server.shutdown()
        #expect(multi.status == 0, "\(multi.stderr)")
        #expect(mode.status == 0, "\(mode.stderr)")
        let first = try JSONValue.parse(server.requests[0].bodyText)
        #expect(first["response_format"]?["json_schema"]?["schema"]?["properties"]?["items"]?["type"]?.string == "array")
        let second = try JSONValue.parse(server.requests[1].bodyText)
        #expect(second["response_format"] == ["type": "json_object"])
    }

    /// Anthropic: a forced `json_answer` tool whose input streams in fragments is the answer.
    @Test func anthropicGetsAForcedToolAndItsInputIsTheAnswer() async throws {
        let fragments = [#"{"na"#, #"me": "#, #""Ada","#, #" "score": 0.5}"#]
        var body = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":30,\"output_tokens\":1}}}\n\n"
        body += "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"json_answer\",\"input\":{}}}\n\n"
        for fragment in fragments {
            body += "event: content_block_delta\ndata: " + JSONValue.object([
                ("type", "content_block_delta"), ("index", 0), ("delta", ["type": "input_json_delta", "partial_json": .string(fragment)]),
            ]).serialized() + "\n\n"
        }
        body += "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
        body += "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":12}}\n\n"
        body += "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
        let server = try await Self.server([ScriptedHTTPServer.sse(Array(body.utf8))])
        let harness = try ParleyHarness(config: Self.config(server, format: "anthropic"))
        defer { harness.cleanUp() }
        let result = try harness.run(["ask", "-m", "script:m", "--schema", Self.scoreSchema, "Rate Ada."])
        await server.shutdown()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "{\"name\":\"Ada\",\"score\":0.5}\n")
        let request = try JSONValue.parse(server.requests[0].bodyText)
        #expect(request["tool_choice"] == ["type": "tool", "name": "json_answer"])
        let tool = try #require(request["tools"]?.array?.first)
        #expect(tool["name"]?.string == "json_answer")
        #expect(tool["input_schema"] == (try JSONValue.parse(Self.scoreSchema)))
    }

    static let reviewTemplate = """
    description = "Review a snippet"
    temperature = 0.1
    max_tokens = 300
    system = \"\"\"
    You review {{ language }} code.{% if strict == "yes" %} Be strict.{% endif %}
    Costs are in $ and {braces} stay as they are.
    \"\"\"
    prompt = \"\"\"
    Review this:
    {{ input|uppercase }}
    \"\"\"

    [vars.language]
    required = true
    description = "the language of the snippet"

    [vars.strict]
    default = "no"

    [[examples]]
    user = "Review: x=1"
    assistant = "Fine."

    [[examples]]
    user = "Review: eval(input())"
    assistant = "Never eval input."
    """

    @Test func aTemplateSendsItsExamplesAsMessagesAndRendersVariables() async throws {
        let server = try await Self.server([Self.openAIReply("Looks fine.")])
        let harness = try ParleyHarness(config: Self.config(server))
        defer { harness.cleanUp() }
        let directory = harness.paths.configDirectory.appendingPathComponent("templates")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try Self.reviewTemplate.write(to: directory.appendingPathComponent("review.toml"), atomically: true, encoding: .utf8)

        let rendered = try harness.run(["templates", "render", "review", "--var", "language=Swift", "--var", "strict=yes", "-m", "script:m", "--json"], input: "let x = 1\n")
        #expect(rendered.status == 0, "\(rendered.stderr)")
        #expect(server.requestCount == 0, "render sends nothing")
        let preview = try JSONValue.parse(rendered.stdout)
        #expect(preview["system"]?.string == "You review Swift code. Be strict.\nCosts are in $ and {braces} stay as they are.")
        #expect((preview["estimated_prompt_tokens"]?.int ?? 0) > 10)

        let result = try harness.run(["ask", "-t", "review", "--var", "language=Swift", "-m", "script:m"], input: "let x = 1\n")
        await server.shutdown()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "Looks fine.\n")
        let body = try JSONValue.parse(server.requests[0].bodyText)
        let messages = try #require(body["messages"]?.array)
        #expect(messages.map { $0["role"]?.string ?? "" } == ["system", "user", "assistant", "user", "assistant", "user"])
        #expect(messages[0]["content"]?.string == "You review Swift code.\nCosts are in $ and {braces} stay as they are.")
        #expect(messages[3]["content"]?.string == "Review: eval(input())")
        #expect(messages[4]["content"]?.string == "Never eval input.")
        #expect(messages[5]["content"]?.string == "Review this:\nLET X = 1")
        #expect(body["temperature"]?.double == 0.1)
        #expect(body["max_tokens"]?.int == 300)
        #expect(preview["messages"]?.array == Array(messages.dropFirst()), "render shows exactly the messages ask sends")
    }

    @Test func templateErrorsNameTheFileTheLineAndTheVariable() async throws {
        let harness = try ParleyHarness(config: "")
        defer { harness.cleanUp() }
        let directory = harness.paths.configDirectory.appendingPathComponent("templates")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try Self.reviewTemplate.write(to: directory.appendingPathComponent("review.toml"), atomically: true, encoding: .utf8)
        try "prompt = \"\"\"\nline one\n{{ input|shout }}\n\"\"\"\n".write(to: directory.appendingPathComponent("badfilter.toml"), atomically: true, encoding: .utf8)
        try "prompt = \"\"\"\nline one\n{% if x %}never closed\n\"\"\"\n".write(to: directory.appendingPathComponent("badsyntax.toml"), atomically: true, encoding: .utf8)

        let missing = try harness.run(["ask", "-t", "review"], input: "code\n")
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("review.toml:13: variable `language` is required: pass --var language=VALUE (the language of the snippet)"), "\(missing.stderr)")
        let typo = try harness.run(["templates", "render", "review", "--var", "language=Go", "--var", "lang=Go", "--input", "x"])
        #expect(typo.stderr.contains("--var lang: the template has no variable `lang`"), "\(typo.stderr)")
        let filter = try harness.run(["templates", "render", "badfilter", "--input", "x"])
        #expect(filter.status == 1)
        #expect(filter.stderr.contains("badfilter.toml:3: Unknown filter 'shout'"), "\(filter.stderr)")
        let syntax = try harness.run(["templates", "render", "badsyntax", "--input", "x"])
        #expect(syntax.status == 1)
        #expect(syntax.stderr.contains("badsyntax.toml:"), "\(syntax.stderr)")
        let unknown = try harness.run(["ask", "-t", "nope", "hi"])
        #expect(unknown.stderr.contains("no template `nope`"), "\(unknown.stderr)")
        #expect(unknown.stderr.contains("there are: badfilter, badsyntax, review"), "\(unknown.stderr)")
    }
}

/// A thread-safe counter for scripted replies.
final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func next() -> Int { lock.lock(); defer { lock.unlock() }; value += 1; return value - 1 }
}
