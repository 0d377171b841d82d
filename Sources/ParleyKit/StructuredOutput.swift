import Foundation
import ParleyCore

/// What the user asked the answer to be: JSON matching a schema, or any JSON object; built once from
/// `--schema`, `--schema-multi`, `--json-mode`, a template's `schema` or `/schema`, then used for every
/// request of the turn and for checking each answer.
public struct StructuredOutput: Sendable {
    public let format: ResponseFormat
    /// Nil for `--json-mode`: any object passes.
    public let validator: JSONSchema?

    /// Schema keywords this validator does not check, said once to the user ("format at $.properties.email").
    public var unchecked: [String] { validator?.unsupportedKeywords ?? [] }

    public init(jsonMode: ()) {
        format = .jsonObject
        validator = nil
    }

    /// `spec` is inline JSON, a path to a JSON file, or the concise form (`name, age int, bio: a short bio`).
    /// `multi` asks for `{"items": [ … ]}`, a list of such objects.
    public init(spec: String, multi: Bool = false, baseDirectory: URL? = nil) throws(StructuredOutputError) {
        var schema = try Self.schema(from: spec, baseDirectory: baseDirectory)
        if multi {
            schema = [
                "type": "object",
                "properties": ["items": ["type": "array", "items": schema]],
                "required": ["items"],
                "additionalProperties": false,
            ]
        }
        try self.init(schema: schema)
    }

    public init(schema: JSONValue, name: String = "answer") throws(StructuredOutputError) {
        do { validator = try JSONSchema(schema) } catch {
            throw StructuredOutputError("the schema is not usable: \(error.description)")
        }
        format = .jsonSchema(name: name, schema: schema, strict: Self.strictCompatible(schema))
    }

    static func schema(from spec: String, baseDirectory: URL?) throws(StructuredOutputError) -> JSONValue {
        let trimmed = spec.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw StructuredOutputError("the schema is empty: give JSON Schema, a file, or fields like `name, age int`") }
        if trimmed.hasPrefix("{") || trimmed == "true" || trimmed == "false" {
            do { return try JSONValue.parse(trimmed) } catch {
                throw StructuredOutputError("the schema is not valid JSON: \(error.description)")
            }
        }
        let url = trimmed.hasPrefix("/") || baseDirectory == nil ? URL(fileURLWithPath: trimmed) : baseDirectory!.appendingPathComponent(trimmed)
        var isDirectory: ObjCBool = false
        if !trimmed.contains(","), !trimmed.contains("\n"), FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue {
            // A template (perhaps from a cloned project) names files beside it only: no absolute path,
            // no `..`, so it cannot send any other file of yours to a provider as a schema.
            if let baseDirectory {
                let inside = !trimmed.hasPrefix("/") && !trimmed.split(separator: "/").contains("..")
                    && url.resolvingSymlinksInPath().path.hasPrefix(baseDirectory.resolvingSymlinksInPath().path + "/")
                guard inside else {
                    throw StructuredOutputError("schema file \(trimmed) is outside the template's directory; a template may name only files beside it")
                }
            }
            let text: String
            do { text = try readSmallFile(url, fromTemplate: baseDirectory != nil) } catch { throw StructuredOutputError("\(url.path): \(error.description)") }
            let content = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if content.hasPrefix("{") {
                do { return try JSONValue.parse(content) } catch {
                    throw StructuredOutputError("\(url.path) is not valid JSON: \(error.description)")
                }
            }
            return try ConciseSchema.parse(content)
        }
        return try ConciseSchema.parse(trimmed)
    }

    /// A schema file is a regular file (never a FIFO or a device, never through a symlink) of at most 1 MB;
    /// one named by a template must be yours or root's.
    static func readSmallFile(_ url: URL, fromTemplate: Bool) throws(StructuredOutputError) -> String {
        do { return String(decoding: try PrivateFile.read(url.path, limit: 1 << 20, trustedOwner: fromTemplate), as: UTF8.self) } catch {
            throw StructuredOutputError(error.reason)
        }
    }

    /// OpenAI rejects `strict: true` unless every object schema sets `additionalProperties: false` and
    /// requires all of its properties. Parley never rewrites a schema to make it so: such a schema is
    /// sent with `strict: false` and the answer is validated here all the same.
    static func strictCompatible(_ schema: JSONValue) -> Bool {
        guard let members = schema.members else { return schema.bool != nil ? false : true }
        if let properties = schema["properties"]?.members {
            guard schema["additionalProperties"] == .bool(false) else { return false }
            let required = Set(schema["required"]?.array?.compactMap(\.string) ?? [])
            guard properties.allSatisfy({ required.contains($0.0) }) else { return false }
        } else if schema["type"] == "object" {
            return false
        }
        for (key, value) in members {
            switch key {
            case "properties", "$defs", "definitions":
                guard value.members?.allSatisfy({ strictCompatible($0.1) }) ?? false else { return false }
            case "items", "additionalProperties" where value.members != nil:
                guard strictCompatible(value) else { return false }
            case "anyOf", "allOf", "oneOf", "prefixItems":
                guard value.array?.allSatisfy(strictCompatible) ?? false else { return false }
            default: continue
            }
        }
        return true
    }

    /// The answer's JSON: the reply's text, without surrounding blanks or a Markdown code fence
    /// (small models often wrap JSON in one even when asked not to).
    public static func jsonText(of text: String) -> String {
        var body = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if body.hasPrefix("```"), body.hasSuffix("```"), body.count >= 6 {
            body.removeLast(3)
            body = String(body.drop { $0 != "\n" }).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return body
    }

    /// Checks one answer. A reply cut off by the output limit is `truncated`, never `invalid`: asking
    /// again would only be cut off again.
    public func check(text: String, finishReason: FinishReason?) -> StructuredCheck {
        let body = Self.jsonText(of: text)
        if finishReason == .length { return .truncated }
        let value: JSONValue
        do { value = try JSONValue.parse(body) } catch {
            return .invalid([JSONSchemaViolation(path: "$", message: "the answer is not JSON (\(error.description))")])
        }
        if let validator {
            let violations = validator.validate(value)
            return violations.isEmpty ? .valid(value) : .invalid(violations)
        }
        guard value.members != nil else { return .invalid([JSONSchemaViolation(path: "$", message: "the answer is not a JSON object")]) }
        return .valid(value)
    }

    /// The invalid answer as it is sent back with a re-ask: at most 16 KB of it, so rounds do not grow.
    public static func echo(_ answer: String) -> String {
        answer.utf8.count <= 16_384 ? answer : String(answer.prefix(16_000)) + "\n… (the rest of the answer is not repeated)"
    }

    /// The message that asks again, naming every violation exactly (at most 20, then how many more).
    public static func reask(_ violations: [JSONSchemaViolation]) -> String {
        var lines = ["Your answer does not match the required JSON schema:"]
        lines += violations.prefix(20).map { "- \($0.description)" }
        if violations.count > 20 { lines.append("- and \(violations.count - 20) more") }
        lines.append("Answer again with only the corrected JSON, no other text.")
        return lines.joined(separator: "\n")
    }
}

public enum StructuredCheck: Sendable, Equatable {
    case valid(JSONValue)
    case invalid([JSONSchemaViolation])
    /// The output limit cut the answer off.
    case truncated
}

public struct StructuredOutputError: UserFacingError, Sendable, Equatable, CustomStringConvertible {
    public var userMessage: String
    public init(_ message: String) { userMessage = message }
    public var description: String { userMessage }
}

/// The concise schema form simonw/llm users know: `name, age int, bio: a short bio`. Fields are
/// separated by commas, or by newlines when there are any (then a description may hold commas); each
/// is a name, an optional type (`str`, `int`, `float`, `bool`; `str` when absent) and an optional
/// `: description`. Every field is required and no other is allowed, so OpenAI's strict mode accepts it.
public enum ConciseSchema {
    public static func parse(_ text: String) throws(StructuredOutputError) -> JSONValue {
        let separator: Character = text.contains("\n") ? "\n" : ","
        var properties: [(String, JSONValue)] = []
        var required: [JSONValue] = []
        var names: Set<String> = []
        for (number, rawField) in text.split(separator: separator, omittingEmptySubsequences: false).enumerated() {
            let field = rawField.trimmingCharacters(in: .whitespaces)
            if field.isEmpty { continue }
            var head = Substring(field)
            var description: String?
            if let colon = field.firstIndex(of: ":") {
                head = field[..<colon]
                description = field[field.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
            let words = head.split(separator: " ", omittingEmptySubsequences: true)
            guard let name = words.first.map(String.init), words.count <= 2 else {
                throw StructuredOutputError("schema field \(number + 1) `\(field)`: write `name`, `name type` or `name type: description`")
            }
            guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) else {
                throw StructuredOutputError("schema field \(number + 1): `\(name)` is not a field name (letters, digits, _ and -)")
            }
            let type: String
            switch words.count == 2 ? words[1].lowercased() : "str" {
            case "str", "string": type = "string"
            case "int", "integer": type = "integer"
            case "float", "number": type = "number"
            case "bool", "boolean": type = "boolean"
            default:
                throw StructuredOutputError("schema field \(number + 1) `\(name)`: unknown type `\(words[1])` (use str, int, float or bool)")
            }
            guard names.insert(name).inserted else {
                throw StructuredOutputError("schema field \(number + 1): `\(name)` is named twice")
            }
            var property: [(String, JSONValue)] = [("type", .string(type))]
            if let description, !description.isEmpty { property.append(("description", .string(description))) }
            properties.append((name, .object(property)))
            required.append(.string(name))
        }
        guard !properties.isEmpty else { throw StructuredOutputError("the schema names no fields") }
        return [
            "type": "object",
            "properties": .object(properties),
            "required": .array(required),
            "additionalProperties": false,
        ]
    }
}

extension StructuredCheck {
    public var isValid: Bool { if case .valid = self { return true }; return false }
}
