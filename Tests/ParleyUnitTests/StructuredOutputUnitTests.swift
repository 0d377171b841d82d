import Foundation
import Testing
import ParleyCore
@testable import ParleyKit
@testable import ParleyProviders

@Suite struct StructuredOutputUnitTests {
    @Test func theConciseFormBecomesAStrictObjectSchema() throws {
        let schema = try ConciseSchema.parse("name, age int, score float: from 0 to 1, ok bool")
        #expect(schema["type"] == "object")
        #expect(schema["properties"]?["name"] == ["type": "string"])
        #expect(schema["properties"]?["age"] == ["type": "integer"])
        #expect(schema["properties"]?["score"] == ["type": "number", "description": "from 0 to 1"])
        #expect(schema["properties"]?["ok"] == ["type": "boolean"])
        #expect(schema["required"] == ["name", "age", "score", "ok"])
        #expect(schema["additionalProperties"] == false)
        #expect(StructuredOutput.strictCompatible(schema))

        // With newlines, a description may hold commas.
        let lines = try ConciseSchema.parse("title: the title, in English\nyear int")
        #expect(lines["properties"]?["title"]?["description"]?.string == "the title, in English")
        #expect(lines["properties"]?["year"]?["type"]?.string == "integer")
    }

    @Test func conciseErrorsSayWhatIsWrong() {
        #expect(throws: StructuredOutputError("schema field 2 `age`: unknown type `number2` (use str, int, float or bool)")) {
            try ConciseSchema.parse("name, age number2")
        }
        #expect(throws: StructuredOutputError("schema field 2: `name` is named twice")) { try ConciseSchema.parse("name, name int") }
        #expect(throws: StructuredOutputError.self) { try ConciseSchema.parse("a b c") }
        #expect(throws: StructuredOutputError.self) { try ConciseSchema.parse(" , ") }
    }

    @Test func strictOnlyWhenEveryObjectIsClosedAndFullyRequired() throws {
        let open = try JSONValue.parse(#"{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}"#)
        #expect(!StructuredOutput.strictCompatible(open))
        let partial = try JSONValue.parse(#"{"type":"object","properties":{"a":{},"b":{}},"required":["a"],"additionalProperties":false}"#)
        #expect(!StructuredOutput.strictCompatible(partial))
        let nestedOpen = try JSONValue.parse(#"{"type":"object","properties":{"a":{"type":"object","properties":{"x":{}},"required":["x"]}},"required":["a"],"additionalProperties":false}"#)
        #expect(!StructuredOutput.strictCompatible(nestedOpen))
        let closed = try JSONValue.parse(#"{"type":"object","properties":{"a":{"type":"array","items":{"type":"object","properties":{"x":{}},"required":["x"],"additionalProperties":false}}},"required":["a"],"additionalProperties":false}"#)
        #expect(StructuredOutput.strictCompatible(closed))
        // Parley never rewrites the schema: the non-strict one is sent as written.
        let output = try StructuredOutput(schema: open)
        #expect(output.format == .jsonSchema(name: "answer", schema: open, strict: false))
    }

    @Test func answersAreCheckedAndCutOffOnesAreTruncated() throws {
        let output = try StructuredOutput(spec: #"{"type":"object","properties":{"score":{"type":"number","maximum":1}},"required":["score"]}"#)
        #expect(output.check(text: "```json\n{\"score\": 1}\n```\n", finishReason: .stop) == .valid(["score": 1]))
        guard case let .invalid(violations) = output.check(text: #"{"score": 2}"#, finishReason: .stop) else { Issue.record("not invalid"); return }
        #expect(violations.map(\.description) == ["$.score: 2 is greater than the maximum 1"])
        #expect(output.check(text: #"{"score": "#, finishReason: .length) == .truncated)
        guard case let .invalid(notJSON) = output.check(text: "Sure! Here it is", finishReason: .stop) else { Issue.record("not invalid"); return }
        #expect(notJSON.first?.description.hasPrefix("$: the answer is not JSON") == true)
        let mode = StructuredOutput(jsonMode: ())
        #expect(mode.check(text: "[1]", finishReason: .stop) == .invalid([JSONSchemaViolation(path: "$", message: "the answer is not a JSON object")]))
        #expect(StructuredOutput.reask(violations).contains("- $.score: 2 is greater than the maximum 1"))
    }

    @Test func aSchemaFileIsRead() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("parley-schema-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try #"{"type":"object","properties":{"x":{"type":"integer"}}}"#.write(to: directory.appendingPathComponent("s.json"), atomically: true, encoding: .utf8)
        try "title\nyear int".write(to: directory.appendingPathComponent("s.txt"), atomically: true, encoding: .utf8)
        let json = try StructuredOutput(spec: "s.json", baseDirectory: directory)
        #expect(json.format.schema["properties"]?["x"] == ["type": "integer"])
        let concise = try StructuredOutput(spec: "s.txt", baseDirectory: directory)
        #expect(concise.format.schema["required"] == ["title", "year"])
        #expect(throws: StructuredOutputError.self) { try StructuredOutput(spec: "{not json") }
    }

    // MARK: requests

    static let request = ChatRequest(
        model: "m", messages: [.user("Say hi"), .assistant("Hi."), .user("Rate Ada.")],
        responseFormat: .jsonSchema(name: "answer", schema: ["type": "object", "properties": ["score": ["type": "number"]]], strict: false)
    )

    @Test func eachWireFormatCarriesItsNativeConstraint() throws {
        let openAI = try JSONValue.parse(OpenAIChatFormat.makeRequest(Self.request, baseURL: "http://x/v1", apiKey: nil, dialect: .standard).body)
        #expect(openAI["response_format"]?["type"] == "json_schema")
        #expect(openAI["response_format"]?["json_schema"]?["schema"] == Self.request.responseFormat?.schema)
        #expect(openAI["response_format"]?["json_schema"]?["strict"] == false)
        #expect(openAI["response_format"]?["schema"] == nil, "the nested form, which llama-server constrains by grammar")

        let anthropic = try JSONValue.parse(AnthropicMessagesFormat.makeRequest(Self.request, baseURL: "http://x", apiKey: nil).body)
        #expect(anthropic["tool_choice"] == ["type": "tool", "name": "json_answer"])
        #expect(anthropic["tools"]?[0]?["input_schema"] == Self.request.responseFormat?.schema)

        let ollama = try JSONValue.parse(OllamaChatFormat.makeRequest(Self.request, baseURL: "http://x").body)
        #expect(ollama["format"] == Self.request.responseFormat?.schema)
        var mode = Self.request
        mode.responseFormat = .jsonObject
        #expect(try JSONValue.parse(OllamaChatFormat.makeRequest(mode, baseURL: "http://x").body)["format"] == "json")
        #expect(try JSONValue.parse(OpenAIChatFormat.makeRequest(mode, baseURL: "http://x", apiKey: nil, dialect: .standard).body)["response_format"] == ["type": "json_object"])
    }

    @Test func fewShotPairsAreRealMessagesInEveryFormat() throws {
        let template = try PromptTemplate(name: "t", file: URL(fileURLWithPath: "/t.toml"), text: """
        prompt = "Q: {{ input }}"
        [[examples]]
        user = "Q: 1+1"
        assistant = "2"
        [[examples]]
        user = "Q: 2+2"
        assistant = "4"
        """)
        let rendered = try template.render(values: [:], input: "3+3")
        let request = ChatRequest(model: "m", messages: try rendered.messages(file: template.file))
        let expected: [(String, String)] = [("user", "Q: 1+1"), ("assistant", "2"), ("user", "Q: 2+2"), ("assistant", "4"), ("user", "Q: 3+3")]
        let openAI = try JSONValue.parse(OpenAIChatFormat.makeRequest(request, baseURL: "http://x", apiKey: nil, dialect: .standard).body)
        #expect(openAI["messages"]?.array?.map { ($0["role"]?.string ?? "", $0["content"]?.string ?? "") }.elementsEqual(expected, by: ==) == true)
        let ollama = try JSONValue.parse(OllamaChatFormat.makeRequest(request, baseURL: "http://x").body)
        #expect(ollama["messages"]?.array?.map { ($0["role"]?.string ?? "", $0["content"]?.string ?? "") }.elementsEqual(expected, by: ==) == true)
        let anthropic = try JSONValue.parse(AnthropicMessagesFormat.makeRequest(request, baseURL: "http://x", apiKey: nil).body)
        #expect(anthropic["messages"]?.array?.map { ($0["role"]?.string ?? "", $0["content"]?[0]?["text"]?.string ?? "") }.elementsEqual(expected, by: ==) == true)
    }

    // MARK: templates

    @Test func theProjectsTemplateWinsOverTheUsersOne() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("parley-templates-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let project = root.appendingPathComponent("project/.parley/templates")
        let user = root.appendingPathComponent("config/templates")
        let nested = root.appendingPathComponent("project/src/deep")
        for directory in [project, user, nested] { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) }
        try "description = \"project\"\nprompt = \"p\"".write(to: project.appendingPathComponent("same.toml"), atomically: true, encoding: .utf8)
        try "description = \"user\"\nprompt = \"u\"".write(to: user.appendingPathComponent("same.toml"), atomically: true, encoding: .utf8)
        try "description = \"only the user's\"".write(to: user.appendingPathComponent("mine.toml"), atomically: true, encoding: .utf8)
        let paths = ParleyPaths(configDirectory: root.appendingPathComponent("config"), dataDirectory: root, runtimeDirectory: root)
        let library = TemplateLibrary(paths: paths, workingDirectory: nested)
        #expect(library.names().map(\.name) == ["mine", "same"])
        #expect(try library.load("same").description == "project")
        #expect(try library.load("mine").description == "only the user's")
        #expect(throws: TemplateError.self) { try library.load("../config/templates/mine") }
    }

    @Test func dollarsAndBracesInTextNeverBreakATemplate() throws {
        let template = try PromptTemplate(name: "t", file: URL(fileURLWithPath: "/t.toml"), text: #"""
        system = "Prices in $USD; JSON like {\"a\": 1} and ${HOME} stay."
        prompt = "{{ topic|capitalize }} for {{ who }}{% if who %}!{% endif %}"
        [vars.topic]
        required = true
        [vars.who]
        default = "everyone"
        """#)
        let rendered = try template.render(values: ["topic": "cost"], input: nil)
        #expect(rendered.system == #"Prices in $USD; JSON like {"a": 1} and ${HOME} stay."#)
        #expect(rendered.prompt == "Cost for everyone!")
    }

    @Test func badTemplateFilesNameTheLine() {
        #expect(throws: TemplateError(file: URL(fileURLWithPath: "/t.toml"), line: 2, message: "unknown key `promt` (a template has description, examples, max_tokens, model, prompt, schema, system, temperature, vars)")) {
            try PromptTemplate(name: "t", file: URL(fileURLWithPath: "/t.toml"), text: "description = \"x\"\npromt = \"typo\"")
        }
        #expect(throws: TemplateError(file: URL(fileURLWithPath: "/t.toml"), line: 1, message: "`temperature` must be between 0 and 2")) {
            try PromptTemplate(name: "t", file: URL(fileURLWithPath: "/t.toml"), text: "temperature = 7")
        }
        #expect(throws: TemplateError.self) {
            try PromptTemplate(name: "t", file: URL(fileURLWithPath: "/t.toml"), text: "[[examples]]\nuser = \"only a user\"")
        }
    }
}

/// What an attacker review of issue 14 found, kept fixed.
@Suite struct StructuredOutputHostileTests {
    func directory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("parley-hostile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url.appendingPathComponent("templates"), withIntermediateDirectories: true)
        return url
    }

    @Test func aTemplateCannotNameAFileOutsideItsDirectory() throws {
        let root = try directory()
        defer { try? FileManager.default.removeItem(at: root) }
        try "ghp_SECRETTOKEN123".write(to: root.appendingPathComponent("secret.txt"), atomically: true, encoding: .utf8)
        let templates = root.appendingPathComponent("templates")
        for spec in ["../secret.txt", root.appendingPathComponent("secret.txt").path, "/etc/passwd"] {
            #expect(throws: StructuredOutputError.self, "\(spec)") { try StructuredOutput(spec: spec, baseDirectory: templates) }
        }
        try "name, age int".write(to: templates.appendingPathComponent("fields.txt"), atomically: true, encoding: .utf8)
        #expect(try StructuredOutput(spec: "fields.txt", baseDirectory: templates).format.schema["required"] == ["name", "age"])
    }

    @Test func aFIFOOrADeviceIsRefusedWithoutWaiting() throws {
        let root = try directory()
        defer { try? FileManager.default.removeItem(at: root) }
        let fifo = root.appendingPathComponent("schema.json").path
        #expect(mkfifo(fifo, 0o600) == 0)
        #expect(throws: StructuredOutputError.self) { try StructuredOutput(spec: fifo) }
        #expect(throws: StructuredOutputError.self) { try StructuredOutput(spec: "/dev/zero") }
    }

    @Test func templatesCannotAskStencilForTheImpossible() throws {
        func render(_ prompt: String) throws -> String? {
            let template = try PromptTemplate(name: "t", file: URL(fileURLWithPath: "/t.toml"), text: "prompt = \"\"\"\n\(prompt)\n\"\"\"\n")
            return try template.render(values: [:], input: "a\nb").prompt
        }
        #expect(throws: TemplateError(file: URL(fileURLWithPath: "/t.toml"), line: 2, message: "`indent` takes a width from 0 to 64, found -1")) {
            try render("{{ input|indent:-1 }}")
        }
        #expect(throws: TemplateError.self) { try render("{{ input|indent:2000000000 }}") }
        #expect(throws: TemplateError(file: URL(fileURLWithPath: "/t.toml"), line: 3, message: "a range must be between two numbers at most 1000 apart, found 0...4000000000000000000")) {
            try render("ok\n{% for i in 0...4000000000000000000 %}x{% endfor %}")
        }
        #expect(throws: TemplateError.self) { try render("{% for i in 1...n %}x{% endfor %}") }
        #expect(throws: TemplateError.self) { try render(String(repeating: "{% if a %}", count: 6000) + String(repeating: "{% endif %}", count: 6000)) }
        #expect(throws: TemplateError.self) { try render("{% for a in 1...9 %}{% for b in 1...9 %}{% for c in 1...9 %}x{% endfor %}{% endfor %}{% endfor %}") }
        #expect(throws: TemplateError.self) { try render("{% include \"/etc/passwd\" %}") }
        #expect(try render("{% for i in 1...3 %}{{ i }}{% endfor %} {{ input|indent:2 }}") == "123 a\n  b")
    }

    @Test func theReaskEchoIsBoundedAndConciseFieldsScale() throws {
        let huge = String(repeating: "x", count: 100_000)
        #expect(StructuredOutput.echo(huge).utf8.count < 17_000)
        #expect(StructuredOutput.echo("{\"a\":1}") == "{\"a\":1}")
        let fields = (0..<30_000).map { "f\($0)" }.joined(separator: "\n")
        let start = ContinuousClock.now
        let schema = try ConciseSchema.parse(fields)
        #expect(schema["properties"]?.members?.count == 30_000)
        #expect(ContinuousClock.now - start < .seconds(10))
    }

    @Test func writtenJSONEscapesWhatATerminalWouldActOn() {
        let value: JSONValue = ["a": .string("x\u{9B}2J \u{202E}evil\u{200B} ok")]
        #expect(value.serialized() == #"{"a":"x\u009b2J \u202eevil\u200b ok"}"#)
        #expect((try? JSONValue.parse(value.serialized())) == value, "the same JSON once read back")
    }
}
