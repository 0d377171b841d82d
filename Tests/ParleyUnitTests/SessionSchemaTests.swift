import Foundation
import Testing
import ParleyCore
import ParleyKit

/// Written session files, and the examples in sessions/, against sessions/session.schema.json.
@Suite struct SessionSchemaTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let schema: JSONValue

    init() throws {
        let data = try Data(contentsOf: Self.repository.appendingPathComponent("sessions/session.schema.json"))
        schema = try JSONValue.parse(Array(data))
    }

    /// The part of JSON Schema the session schema uses: type, enum, required, properties,
    /// additionalProperties: false, items, pattern, and local $ref.
    func validate(_ value: JSONValue, against rule: JSONValue, at path: String = "$") -> [String] {
        if let ref = rule["$ref"]?.string {
            let name = String(ref.dropFirst("#/$defs/".count))
            guard let target = schema["$defs"]?[name] else { return ["\(path): unknown $ref \(ref)"] }
            return validate(value, against: target, at: path)
        }
        var problems: [String] = []
        if let type = rule["type"]?.string {
            let ok: Bool
            switch (type, value) {
            case ("object", .object), ("array", .array), ("string", .string), ("number", .number), ("boolean", .bool): ok = true
            case let ("integer", .number(n)): ok = n == n.rounded()
            default: ok = false
            }
            if !ok { return ["\(path): expected \(type)"] }
        }
        if let options = rule["enum"]?.array, !options.contains(value) { problems.append("\(path): \(value.serialized()) is not one of \(JSONValue.array(options).serialized())") }
        if let pattern = rule["pattern"]?.string, let text = value.string, text.range(of: pattern, options: .regularExpression) == nil {
            problems.append("\(path): \"\(text)\" does not match \(pattern)")
        }
        if case let .object(members) = value {
            let properties = rule["properties"]?.members ?? []
            for required in rule["required"]?.array?.compactMap(\.string) ?? [] where value[required] == nil {
                problems.append("\(path): missing \(required)")
            }
            for (key, member) in members {
                if let property = properties.first(where: { $0.0 == key })?.1 {
                    problems += validate(member, against: property, at: "\(path).\(key)")
                } else if rule["additionalProperties"]?.bool == false {
                    problems.append("\(path): unexpected key \(key)")
                }
            }
        }
        if case let .array(items) = value, let itemRule = rule["items"] {
            for (i, item) in items.enumerated() { problems += validate(item, against: itemRule, at: "\(path)[\(i)]") }
        }
        return problems
    }

    @Test func theValidatorRejectsWhatTheSchemaForbids() throws {
        let bad = try JSONValue.parse(#"{"format": 3, "id": "x", "title": "t", "created_at": "yesterday", "updated_at": "2026-11-25T12:00:00.000Z", "model": "m", "messages": [{"id": "a", "role": "robot", "content": "", "created_at": "2026-11-25T12:00:00Z", "status": "complete", "colour": 1}]}"#)
        let problems = validate(bad, against: schema)
        #expect(problems.contains { $0.hasPrefix("$.format") })
        #expect(problems.contains { $0.hasPrefix("$.created_at") })
        #expect(problems.contains { $0.hasPrefix("$.messages[0].role") })
        #expect(problems.contains { $0 == "$.messages[0]: unexpected key colour" })
    }

    @Test func filesParleyWritesMatchTheSchema() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("parley-schema-\(getpid())")
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = SessionStore(directory: directory)
        let recorder = SessionRecorder(store: store, session: Session(model: "local:smollm2", systemPrompt: "Be brief."))
        let reply = recorder.startTurn(userText: "hello", model: ModelRef(provider: "local", model: "smollm2"), system: "Be brief.").reply
        var accumulator = ReplyAccumulator()
        accumulator.add(.textDelta("Hi there."))
        accumulator.add(.toolCallDelta(ToolCallDelta(index: 0, id: "call_1", name: "lookup", argumentsFragment: "{}")))
        accumulator.add(.usage(Usage(promptTokens: 5, completionTokens: 3, cachedTokens: 1, cacheWriteTokens: 0, accounting: .cachedInsidePrompt)))
        accumulator.add(.finish(.stop))
        recorder.finishReply(reply, status: .complete, result: TurnResult(model: ModelRef(provider: "local", model: "smollm2"), reply: accumulator, end: .now, cost: 0, fromCache: false))
        let failed = recorder.startTurn(userText: "again", model: ModelRef(provider: "groq", model: "llama"), system: nil).reply
        recorder.finishReply(failed, status: .error, result: nil, error: "groq: rate limited")
        let fellBack = recorder.startTurn(userText: "once more", model: ModelRef(provider: "groq", model: "llama"), system: nil).reply
        recorder.noteFallback(fellBack, from: ModelRef(provider: "groq", model: "llama"), reason: "groq: HTTP 429: slow down", to: ModelRef(provider: "local", model: "smollm2"))
        recorder.finishReply(fellBack, status: .complete, result: TurnResult(model: ModelRef(provider: "local", model: "smollm2"), reply: accumulator, end: .now, cost: 0, fromCache: true))
        recorder.close()
        let written = try JSONValue.parse(Array(Data(contentsOf: store.url(for: recorder.snapshot.id))))
        #expect(validate(written, against: schema) == [])
        #expect(written["messages"]?.array?.count == 6)
        #expect(written["messages"]?[5]?["failed_attempts"]?[0]?["model"]?.string == "groq:llama")
        #expect(written["messages"]?[5]?["provider"]?.string == "local")
        #expect(written["messages"]?[5]?["from_cache"]?.bool == true)
    }

    @Test func theExamplesMatchTheSchemaAndLoad() throws {
        let examples = try FileManager.default.contentsOfDirectory(atPath: Self.repository.appendingPathComponent("sessions").path)
            .filter { $0.hasSuffix(".json") && $0 != "session.schema.json" }
        #expect(examples.count >= 2)
        let store = SessionStore(directory: Self.repository.appendingPathComponent("sessions"))
        for example in examples {
            let url = Self.repository.appendingPathComponent("sessions/\(example)")
            let value = try JSONValue.parse(Array(Data(contentsOf: url)))
            #expect(validate(value, against: schema) == [], "\(example)")
            #expect(throws: Never.self) { try store.load(url) }
        }
    }
}
