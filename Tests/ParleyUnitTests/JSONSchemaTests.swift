import Foundation
import Testing
@testable import ParleyCore

@Suite struct JSONSchemaTests {
    // MARK: - The official JSON Schema Test Suite

    /// A group of the official suite that is not run, and why.
    struct SkippedGroup {
        var file: String
        var group: String
        var reason: String
    }

    /// Every group that is not run. The suite test fails if one of these no longer exists (so the list
    /// cannot go stale) and if a group that is run uses a keyword the validator reports as unsupported.
    static let skipped: [SkippedGroup] = [
        SkippedGroup(
            file: "defs.json", group: "validate definition against metaschema",
            reason: "$ref to the remote draft 2020-12 meta-schema; remote references are not supported"),
        SkippedGroup(
            file: "additionalProperties.json", group: "dependentSchemas with additionalProperties",
            reason: "dependentSchemas is not implemented"),
        SkippedGroup(
            file: "not.json", group: "collect annotations inside a 'not', even if collection is disabled",
            reason: "unevaluatedProperties is not implemented"),
    ]

    /// The draft 2020-12 files copied into Fixtures/json-schema-test-suite (see its README.md).
    static let suiteFileCount = 30

    @Test func officialTestSuite() throws {
        let directory = try #require(
            Bundle.module.url(forResource: "json-schema-test-suite", withExtension: nil, subdirectory: "Fixtures"),
            "Fixtures/json-schema-test-suite is missing from the test bundle")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".json") }.sorted()
        #expect(files.count == Self.suiteFileCount, "suite files: \(files)")

        var tally = SuiteTally()
        for file in files {
            let bytes = Array(try Data(contentsOf: directory.appendingPathComponent(file)))
            tally.add(try runSuite(JSONValue.parse(bytes), file: file, skipping: Self.skipped))
        }
        let unused = Self.skipped.filter { skip in !tally.skippedGroups.contains { $0 == (skip.file, skip.group) } }
        #expect(unused.isEmpty, "skip list names groups that do not exist: \(unused.map { "\($0.file) / \($0.group)" })")
        print("JSON Schema Test Suite (draft 2020-12): \(tally.ran) cases run in \(tally.groups) groups of \(files.count) files, \(tally.ran - tally.failed) passed, \(tally.failed) failed; \(tally.skipped) cases in \(tally.skippedGroups.count) groups skipped:")
        for skip in Self.skipped { print("  skipped \(skip.file) / \(skip.group): \(skip.reason)") }
        // The counts of the copied files, so a group that silently stops running shows.
        #expect(tally.ran == 600)
        #expect(tally.skipped == 7)
        #expect(tally.failed == 0)
    }

    /// Groups in the suite's format for keywords whose official files are not among the fixtures
    /// (multipleOf, uniqueItems, if/then/else, dependentRequired, propertyNames, $ref, $anchor), many
    /// taken from those files, plus ECMA-262 regex behaviour.
    @Test func ownSuite() throws {
        let tally = try runSuite(JSONValue.parse(Self.ownGroups), file: "JSONSchemaTests.ownGroups", skipping: [])
        print("JSON Schema own groups: \(tally.ran) cases run in \(tally.groups) groups, \(tally.ran - tally.failed) passed, \(tally.failed) failed")
        #expect(tally.ran > 100)
        #expect(tally.failed == 0)
        #expect(tally.skipped == 0)
    }

    struct SuiteTally {
        var ran = 0
        var failed = 0
        var groups = 0
        var skipped = 0
        var skippedGroups: [(String, String)] = []

        mutating func add(_ other: SuiteTally) {
            ran += other.ran
            failed += other.failed
            groups += other.groups
            skipped += other.skipped
            skippedGroups += other.skippedGroups
        }
    }

    /// Runs every case of every group in `suite`; records an issue naming file, group and case for each mismatch.
    func runSuite(_ suite: JSONValue, file: String, skipping skips: [SkippedGroup]) throws -> SuiteTally {
        var tally = SuiteTally()
        let groups = try #require(suite.array, "\(file) is not a list of groups")
        for group in groups {
            let name = group["description"]?.string ?? "?"
            let cases = group["tests"]?.array ?? []
            if skips.contains(where: { $0.file == file && $0.group == name }) {
                tally.skipped += cases.count
                tally.skippedGroups.append((file, name))
                continue
            }
            tally.groups += 1
            let schema: JSONSchema
            do {
                schema = try JSONSchema(try #require(group["schema"]))
            } catch {
                Issue.record("\(file) / \(name): the schema does not compile: \(error)")
                tally.ran += cases.count
                tally.failed += cases.count
                continue
            }
            if !schema.unsupportedKeywords.isEmpty {
                Issue.record("\(file) / \(name) uses \(schema.unsupportedKeywords), which the validator does not check: skip the group with a reason")
            }
            for testCase in cases {
                tally.ran += 1
                let caseName = testCase["description"]?.string ?? "?"
                guard let data = testCase["data"], case let .bool(expected)? = testCase["valid"] else {
                    Issue.record("\(file) / \(name) / \(caseName): no data or no valid flag")
                    continue
                }
                let violations = schema.validate(data)
                let fast = schema.isValid(data)
                if violations.isEmpty != expected || fast != expected {
                    tally.failed += 1
                    Issue.record("\(file) / \(name) / \(caseName): expected \(expected ? "valid" : "invalid"), validate gave \(violations.map(\.description)), isValid gave \(fast)")
                }
                for violation in violations {
                    #expect(!violation.message.isEmpty && violation.message.count < 1_000, "\(file) / \(name) / \(caseName): \(violation)")
                }
            }
        }
        return tally
    }

    // MARK: - Messages and paths

    func violations(_ schema: JSONValue, _ instance: JSONValue) throws -> [String] {
        try JSONSchema(schema).validate(instance).map(\.description)
    }

    @Test func nestedMaximumNamesPathAndValue() throws {
        let schema: JSONValue = ["type": "object", "properties": ["score": ["maximum": 1]]]
        let found = try JSONSchema(schema).validate(["score": 2])
        #expect(found == [JSONSchemaViolation(path: "$.score", message: "2 is greater than the maximum 1")])
        #expect(found.map(\.description) == ["$.score: 2 is greater than the maximum 1"])
    }

    @Test func messagesNameTheOffendingValue() throws {
        let cases: [(schema: String, instance: String, expected: [String])] = [
            (#"{"required":["name"]}"#, #"{}"#, [#"$: missing required property "name""#]),
            (#"{"enum":["a","b"]}"#, #""x""#, [#"$: "x" is not one of the allowed values "a", "b""#]),
            (#"{"const":"a"}"#, #""x""#, [#"$: "x" is not the required value "a""#]),
            (#"{"type":"integer"}"#, #"1.5"#, [#"$: 1.5 is not of type integer"#]),
            (#"{"type":["string","null"]}"#, #"3"#, [#"$: 3 is not of type string or null"#]),
            (#"{"minimum":0}"#, #"-1"#, [#"$: -1 is less than the minimum 0"#]),
            (#"{"exclusiveMaximum":10}"#, #"10"#, [#"$: 10 is not less than the exclusive maximum 10"#]),
            (#"{"exclusiveMinimum":0}"#, #"0"#, [#"$: 0 is not greater than the exclusive minimum 0"#]),
            (#"{"multipleOf":0.5}"#, #"0.75"#, [#"$: 0.75 is not a multiple of 0.5"#]),
            (#"{"minLength":2}"#, #""💩""#, [#"$: "💩" has 1 character, fewer than the minimum 2"#]),
            (#"{"maxLength":3}"#, #""abcd""#, [#"$: "abcd" has 4 characters, more than the maximum 3"#]),
            (#"{"pattern":"^[a-z]+$"}"#, #""Abc""#, [#"$: "Abc" does not match the pattern "^[a-z]+$""#]),
            (#"{"minItems":2}"#, #"[1]"#, [#"$: array has 1 item, fewer than the minimum 2"#]),
            (#"{"maxItems":1}"#, #"[1,2]"#, [#"$: array has 2 items, more than the maximum 1"#]),
            (#"{"uniqueItems":true}"#, #"["a","b","a"]"#, [#"$: array items [0] and [2] are both "a"; items must be unique"#]),
            (#"{"prefixItems":[{}],"items":false}"#, #"[1,2,3]"#, [#"$: array has 3 items, more than the 1 allowed"#]),
            (#"{"items":false}"#, #"[1]"#, [#"$: array must be empty, but has 1 item"#]),
            (#"{"contains":{"type":"string"}}"#, #"[1,2]"#, [#"$: array has no item matching the contains schema {"type":"string"}"#]),
            (#"{"contains":{"const":1},"minContains":2}"#, #"[1,2]"#,
             [#"$: array has 1 item matching the contains schema {"const":1}, fewer than the minimum 2"#]),
            (#"{"contains":{"const":1},"maxContains":1}"#, #"[1,1,1]"#,
             [#"$: array has 3 items matching the contains schema {"const":1}, more than the maximum 1"#]),
            (#"{"minProperties":2}"#, #"{"a":1}"#, [#"$: object has 1 property, fewer than the minimum 2"#]),
            (#"{"maxProperties":1}"#, #"{"a":1,"b":2}"#, [#"$: object has 2 properties, more than the maximum 1"#]),
            (#"{"properties":{"a":{},"b":{}},"additionalProperties":false}"#, #"{"a":1,"c":2}"#,
             [#"$: unexpected property "c" (allowed: "a", "b")"#]),
            (#"{"additionalProperties":false}"#, #"{"c":2}"#, [#"$: unexpected property "c""#]),
            (#"{"properties":{"a":false}}"#, #"{"a":1}"#, [#"$: property "a" is not allowed"#]),
            (#"{"dependentRequired":{"card":["billing"]}}"#, #"{"card":1}"#,
             [#"$: missing property "billing", which is required when "card" is present"#]),
            (#"{"propertyNames":{"maxLength":3}}"#, #"{"abcd":1}"#, [#"$: invalid property name: "abcd" has 4 characters, more than the maximum 3"#]),
            (#"{"not":{"type":"string"}}"#, #""x""#, [#"$: "x" must not match the schema {"type":"string"}"#]),
            (#"{"anyOf":[{"type":"string"},{"minimum":5}]}"#, #"3"#,
             [#"$: 3 does not match any of the anyOf alternatives: (1) $: 3 is not of type string; (2) $: 3 is less than the minimum 5"#]),
            (#"{"oneOf":[{"type":"number"},{"minimum":5}]}"#, #"7"#,
             [#"$: 7 matches more than one of the oneOf alternatives (1 and 2) but must match exactly one"#]),
            (#"{"oneOf":[{"type":"string"},{"type":"integer","minimum":5}]}"#, #"3"#,
             [#"$: 3 does not match any of the oneOf alternatives: (1) $: 3 is not of type string; (2) $: 3 is less than the minimum 5"#]),
            (#"{"if":{"properties":{"kind":{"const":"a"}}},"then":{"required":["x"]},"else":{"required":["y"]}}"#, #"{"kind":"a"}"#,
             [#"$: missing required property "x""#]),
            (#"false"#, #"{"a":1}"#, [#"$: {"a":1} is not allowed here (the schema is false)"#]),
            (##"{"$defs":{"positive":{"exclusiveMinimum":0}},"properties":{"n":{"$ref":"#/$defs/positive","type":"integer"}}}"##, #"{"n":-1.5}"#,
             [#"$.n: -1.5 is not greater than the exclusive minimum 0"#, #"$.n: -1.5 is not of type integer"#]),
        ]
        for (schema, instance, expected) in cases {
            #expect(try violations(JSONValue.parse(schema), JSONValue.parse(instance)) == expected, "\(schema) with \(instance)")
        }
    }

    @Test func pathsNameItemsAndOddKeys() throws {
        let schema = try JSONValue.parse(#"""
            {"properties": {
                "tags": {"items": {"type": "string"}},
                "odd key": {"type": "integer"},
                "nested": {"properties": {"deeper": {"items": {"properties": {"é": {"type": "null"}}}}}},
                "quote\"d": {"type": "integer"}
            }}
            """#)
        let instance = try JSONValue.parse(#"""
            {"tags": ["a", "b", 3], "odd key": "x", "nested": {"deeper": [{}, {"é": 1}]}, "quote\"d": true}
            """#)
        #expect(try violations(schema, instance) == [
            #"$.tags[2]: 3 is not of type string"#,
            #"$["odd key"]: "x" is not of type integer"#,
            #"$.nested.deeper[1]["é"]: 1 is not of type null"#,
            #"$["quote\"d"]: true is not of type integer"#,
        ])
    }

    @Test func longValuesAreCutInMessages() throws {
        let long = String(repeating: "x", count: 500)
        let message = try #require(try JSONSchema(["maxLength": 3]).validate(.string(long)).first?.message)
        #expect(message.hasPrefix("\"xxxx"))
        #expect(message.contains("…"))
        #expect(message.hasSuffix("has 500 characters, more than the maximum 3"))
        #expect(message.count < 120)

        let bigObject = JSONValue.object((0..<10_000).map { ("key\($0)", .string(long)) })
        let typeMessage = try #require(try JSONSchema(["type": "array"]).validate(bigObject).first?.message)
        #expect(typeMessage.hasPrefix(#"{"key0":"xxx"#))
        #expect(typeMessage.hasSuffix("… is not of type array"))
        #expect(typeMessage.count < 100)
    }

    @Test func wholeNumbersPrintWithoutTrailingZero() throws {
        #expect(try violations(["maximum": 1.0], .number(2.0)) == ["$: 2 is greater than the maximum 1"])
        #expect(try violations(["minimum": 0.5], .number(0.25)) == ["$: 0.25 is less than the minimum 0.5"])
        #expect(try violations(["const": 0], .number(-3.0)) == ["$: -3 is not the required value 0"])
        #expect(try violations(["enum": [1.0, 2.5]], .array([1.0])) == ["$: [1] is not one of the allowed values 1, 2.5"])
        #expect(SchemaText.number(9_007_199_254_740_992) == "9007199254740992")
        #expect(SchemaText.number(1e20) == "1e+20")
        #expect(!SchemaText.number(1e300).hasSuffix(".0"))
        #expect(SchemaText.number(0.0075) == "0.0075")
        #expect(SchemaText.number(-0.0) == "0")
    }

    // MARK: - Unsupported keywords

    @Test func unsupportedKeywordsAreListedWhereTheyAppear() throws {
        let schema = try JSONSchema(JSONValue.parse(#"""
            {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "$id": "https://example.com/person.json",
                "$comment": "annotations are not listed",
                "title": "Person", "description": "A person", "default": {}, "examples": [{}],
                "deprecated": false, "readOnly": false, "writeOnly": false, "$anchor": "person",
                "contentMediaType": "application/json", "x-vendor": 1,
                "type": "object",
                "properties": {
                    "email": {"type": "string", "format": "email"},
                    "format": {"type": "string", "title": "a property named format is not a keyword"}
                },
                "unevaluatedProperties": false,
                "dependentSchemas": {"email": {"required": ["name"]}},
                "$defs": {"tag": {"$dynamicRef": "#meta", "unevaluatedItems": false}},
                "allOf": [{"items": {"format": "date"}}],
                "const": {"format": "inside a value, not a schema"}
            }
            """#))
        #expect(schema.unsupportedKeywords == [
            "format at $.properties.email",
            "unevaluatedProperties at $",
            "dependentSchemas at $",
            "$dynamicRef at $.$defs.tag",
            "unevaluatedItems at $.$defs.tag",
            "format at $.allOf[0].items",
        ])
        // What is supported is still checked; `format` is not.
        let checked = try JSONSchema(JSONValue.parse(#"{"properties": {"email": {"type": "string", "format": "email"}}}"#))
        #expect(checked.unsupportedKeywords == ["format at $.properties.email"])
        #expect(checked.isValid(["email": "not an email"]))
        #expect(!checked.isValid(["email": 3]))
        #expect(try JSONSchema(["type": "string"]).unsupportedKeywords.isEmpty)
    }

    // MARK: - References

    @Test func refCycleIsAViolationNotACrash() throws {
        let selfCycle = try JSONSchema(["$ref": "#"])
        #expect(selfCycle.validate(1) == [JSONSchemaViolation(path: "$", message: "schema recursion deeper than 64")])
        #expect(!selfCycle.isValid(1))

        let mutual = try JSONSchema(JSONValue.parse(##"{"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}"##))
        #expect(mutual.validate(["x": 1]).map(\.description) == ["$: schema recursion deeper than 64"])

        // Two branches per level would be 2^64 evaluations without the stop.
        let branching = try JSONSchema(JSONValue.parse(##"{"$defs": {"a": {"anyOf": [{"$ref": "#/$defs/a"}, {"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"}"##))
        #expect(branching.validate("x").map(\.description) == ["$: schema recursion deeper than 64"])
        #expect(!branching.isValid("x"))
        let negated = try JSONSchema(JSONValue.parse(##"{"not": {"$ref": "#"}}"##))
        #expect(negated.validate(true).map(\.description) == ["$: schema recursion deeper than 64"])
        #expect(!negated.isValid(true))
    }

    @Test func recursiveSchemaFollowsTheValue() throws {
        let list = try JSONSchema(JSONValue.parse(#"""
            {"$defs": {"node": {"type": "object", "properties": {"value": {"type": "integer"}, "next": {"$ref": "#/$defs/node"}},
                                "required": ["value"], "additionalProperties": false}},
             "$ref": "#/$defs/node"}
            """#))
        func chain(_ length: Int, last: JSONValue = 0) -> JSONValue {
            var value: JSONValue = ["value": last]
            for i in 1..<length { value = ["value": .number(Double(i)), "next": value] }
            return value
        }
        #expect(list.validate(chain(20)).isEmpty)
        let path = "$" + String(repeating: ".next", count: 19) + ".value"
        #expect(list.validate(chain(20, last: "x")).map(\.description) == ["\(path): \"x\" is not of type integer"])
        // Each level follows one $ref but also moves into the value, so only the depth limit (two
        // subschemas per level) ends a long chain, not the $ref limit.
        #expect(list.validate(chain(90)).isEmpty)
        #expect(list.validate(chain(150)).map(\.message) == ["schema and value nested deeper than \(SchemaEvaluator.maxDepth) levels"])
    }

    @Test func refsThatFollowTheValueAreNotCountedAsACycle() throws {
        let nested = try JSONSchema(JSONValue.parse(##"{"items": {"$ref": "#"}}"##))
        func array(_ depth: Int, _ innermost: JSONValue = []) -> JSONValue {
            var value = innermost
            for _ in 0..<depth { value = [value] }
            return value
        }
        #expect(nested.validate(array(65)).isEmpty)
        #expect(nested.isValid(array(65)))
        #expect(nested.validate(array(95)).isEmpty)
        #expect(nested.validate(array(150)).map(\.message) == ["schema and value nested deeper than \(SchemaEvaluator.maxDepth) levels"])
        let typed = try JSONSchema(JSONValue.parse(##"{"type": "array", "items": {"anyOf": [{"type": "integer"}, {"$ref": "#"}]}}"##))
        #expect(typed.validate(array(60, 1)).isEmpty)
        #expect(typed.validate(array(60, "x")).count == 1)
        // A cycle at one place in the value still ends at the $ref limit, however deep it is found.
        let cycleBelow = try JSONSchema(JSONValue.parse(##"{"$defs": {"loop": {"$ref": "#/$defs/loop"}}, "items": {"$ref": "#"}, "properties": {"x": {"$ref": "#/$defs/loop"}}}"##))
        #expect(cycleBelow.validate(array(10, ["x": 1])).map(\.message) == ["schema recursion deeper than 64"])
    }

    @Test func refFindsPointersAnchorsAndIDs() throws {
        let schema = try JSONSchema(JSONValue.parse(#"""
            {
                "$id": "https://example.com/root.json",
                "$defs": {
                    "tilde~field": {"type": "integer"},
                    "slash/field": {"type": "string"},
                    "percent%field": {"type": "boolean"},
                    "named": {"$anchor": "named", "type": "null"},
                    "other": {"$id": "other.json", "$defs": {"inner": {"minimum": 10}}, "$ref": "#/$defs/inner"}
                },
                "properties": {
                    "tilde": {"$ref": "#/$defs/tilde~0field"},
                    "slash": {"$ref": "#/$defs/slash~1field"},
                    "percent": {"$ref": "#/$defs/percent%25field"},
                    "anchor": {"$ref": "#named"},
                    "byID": {"$ref": "other.json"},
                    "absolute": {"$ref": "https://example.com/root.json#/$defs/tilde~0field"},
                    "pointerIntoProperties": {"$ref": "#/properties/tilde"},
                    "pointerIntoArray": {"$ref": "#/allOf/0"}
                },
                "allOf": [{"required": []}]
            }
            """#))
        #expect(schema.isValid(["tilde": 1, "slash": "s", "percent": true, "anchor": nil, "byID": 11, "absolute": 2, "pointerIntoProperties": 3]))
        #expect(schema.validate(["tilde": "1", "slash": 2, "percent": 0, "anchor": 0, "byID": 9, "absolute": 2.5, "pointerIntoProperties": "3"]).map(\.description) == [
            #"$.tilde: "1" is not of type integer"#,
            "$.slash: 2 is not of type string",
            "$.percent: 0 is not of type boolean",
            "$.anchor: 0 is not of type null",
            "$.byID: 9 is less than the minimum 10",
            "$.absolute: 2.5 is not of type integer",
            #"$.pointerIntoProperties: "3" is not of type integer"#,
        ])
    }

    @Test func schemaErrorsSayWhatAndWhere() throws {
        func error(_ schema: String) throws -> String {
            let value = try JSONValue.parse(schema)
            do {
                _ = try JSONSchema(value)
                return "no error"
            } catch {
                return error.description
            }
        }
        #expect(try error("5") == "the schema at $ must be an object or a boolean, not 5")
        #expect(try error(#"{"properties": {"a": "string"}}"#) == #"the schema at $.properties.a must be an object or a boolean, not "string""#)
        #expect(try error(##"{"$defs": {"a": {}}, "$ref": "#/$defs/missing"}"##)
            == ##"$ref "#/$defs/missing" at $ does not resolve: no member "missing" at $.$defs"##)
        #expect(try error(#"{"items": {"$ref": "https://example.com/other.json"}}"#)
            == #"$ref "https://example.com/other.json" at $.items does not resolve: "https://example.com/other.json" is not part of this schema (remote references are not supported)"#)
        #expect(try error(##"{"$ref": "#nowhere"}"##) == ##"$ref "#nowhere" at $ does not resolve: no $anchor named "nowhere""##)
        #expect(try error(#"{"pattern": "(unclosed"}"#) == #"invalid regular expression "(unclosed" in pattern at $"#)
        #expect(try error(#"{"properties": {"a": {"patternProperties": {"[z-a]": true}}}}"#)
            == #"invalid regular expression "[z-a]" in patternProperties at $.properties.a"#)
        #expect(try error(#"{"type": "integr"}"#).hasPrefix(#"type at $ must be a type name (null, boolean, object, array, number, string, integer)"#))
        #expect(try error(#"{"minimum": "5"}"#) == #"minimum at $ must be a number, not "5""#)
        #expect(try error(#"{"maxLength": -1}"#) == "maxLength at $ must be a non-negative integer, not -1")
        #expect(try error(#"{"multipleOf": 0}"#) == "multipleOf at $ must be a number greater than 0, not 0")
        #expect(try error(#"{"items": [{}, {}]}"#).hasPrefix("items at $ must be a schema"))
        #expect(try error(#"{"required": ["a", 1]}"#) == #"required at $ must be an array of strings, not ["a",1]"#)
        // A $ref into an annotation is followed all the same: the location is compiled when reached.
        #expect(try error(##"{"x-shapes": {"point": {"type": "object"}}, "$ref": "#/x-shapes/point"}"##) == "no error")
        #expect(try error(##"{"x-shapes": {"point": 5}, "$ref": "#/x-shapes/point"}"##)
            == "the schema at $[\"x-shapes\"].point must be an object or a boolean, not 5")
    }

    // MARK: - Numbers, strings, equality

    @Test func multipleOfCopesWithBinaryFractionsAndOverflow() throws {
        #expect(SchemaEvaluator.isMultiple(0.0075, of: 0.0001))
        #expect(!SchemaEvaluator.isMultiple(0.00751, of: 0.0001))
        #expect(SchemaEvaluator.isMultiple(19.99, of: 0.01))
        #expect(SchemaEvaluator.isMultiple(0.3, of: 0.1))
        #expect(!SchemaEvaluator.isMultiple(0.35, of: 0.1))
        #expect(SchemaEvaluator.isMultiple(12_391_239_123, of: 1e-8))
        #expect(!SchemaEvaluator.isMultiple(1e308, of: 0.123456789))
        #expect(SchemaEvaluator.isMultiple(-6, of: 3))
        #expect(!SchemaEvaluator.isMultiple(1e10 + 0.5, of: 1))
        #expect(try violations(["type": "integer", "multipleOf": 0.123456789], 1e308) == ["$: 1e+308 is not a multiple of 0.123456789"])
        // A quotient that underflows to 0 (or rounds to 0) is no multiple; only 0 itself is.
        #expect(!SchemaEvaluator.isMultiple(4.9e-324, of: 1e308))
        #expect(!SchemaEvaluator.isMultiple(-4.9e-324, of: 1e308))
        #expect(!SchemaEvaluator.isMultiple(1e-323, of: 1))
        #expect(!SchemaEvaluator.isMultiple(1e-300, of: 1e10))
        #expect(SchemaEvaluator.isMultiple(0, of: 1e308))
        #expect(SchemaEvaluator.isMultiple(1e-300, of: 1e-300))
        #expect(try violations(["multipleOf": 1e308], 4.9e-324) == ["$: 5e-324 is not a multiple of 1e+308"])
    }

    @Test func equalityIsJSONEquality() {
        #expect(JSONEquality.equal(1, 1.0))
        #expect(JSONEquality.equal(0, -0.0))
        #expect(JSONEquality.equal(["a": 1, "b": [true, nil]], ["b": [true, nil], "a": 1.0]))
        #expect(!JSONEquality.equal(["a": 1], ["a": 1, "b": 2]))
        #expect(!JSONEquality.equal(false, 0))
        #expect(!JSONEquality.equal([1, 2], [2, 1]))
        // Swift's String == treats these as equal (canonical equivalence); JSON does not.
        #expect("\u{E4}" == "a\u{308}")
        #expect(!JSONEquality.equal(.string("\u{E4}"), .string("a\u{308}")))
        let many = JSONValue.object((0..<40).map { ("k\($0)", .number(Double($0))) })
        let reversed = JSONValue.object((0..<40).reversed().map { ("k\($0)", .number(Double($0))) })
        #expect(JSONEquality.equal(many, reversed))
    }

    @Test func propertyNamesCompareByCodePoints() throws {
        let schema = try JSONSchema(JSONValue.parse(#"{"properties": {"\u00e4": {"type": "integer"}}, "required": ["\u00e4"]}"#))
        #expect(schema.isValid(["\u{E4}": 1]))
        // "a" + combining diaeresis looks the same but is another name.
        #expect(schema.validate(["a\u{308}": "x"]).map(\.description) == [#"$: missing required property "ä""#])
    }

    @Test func regexesFollowECMAScript() throws {
        func matches(_ pattern: String, _ text: String) throws -> Bool {
            try JSONSchema(["pattern": .string(pattern)]).isValid(.string(text))
        }
        #expect(try matches(#"^\d+$"#, "123"))
        #expect(try !matches(#"^\d+$"#, "١٢٣"))  // Arabic-Indic digits are not \d in ECMA-262
        #expect(try !matches(#"^\w+$"#, "é"))
        #expect(try matches(#"^[\w-]+$"#, "a-b_c"))
        #expect(try !matches(#"^abc$"#, "abc\n"))  // $ is the very end
        #expect(try matches(#"a{"#, "a{"))  // a brace that starts no quantifier is a literal
        #expect(try matches(#"^a{2}$"#, "aa"))
        #expect(try matches(#"^\p{Letter}+$"#, "πa"))
        #expect(try matches(#"^\u{1F600}$"#, "😀"))
        #expect(try matches(#"^[^]$"#, "\n"))
        #expect(try !matches(#"[]"#, "anything"))
        #expect(try matches("b+", "aabba"))  // unanchored search
    }

    // MARK: - Size

    @Test func largeValuesStayLinear() throws {
        let count = 100_000
        let numbers = JSONValue.array((0..<count).map { .number(Double($0)) })
        let unique = try JSONSchema(["type": "array", "uniqueItems": true, "items": ["type": "integer", "minimum": 0]])
        #expect(unique.validate(numbers).isEmpty)
        var withDuplicate = (0..<count).map { JSONValue.number(Double($0)) }
        withDuplicate.append(.number(5.0))
        #expect(unique.validate(.array(withDuplicate)).map(\.description) == ["$: array items [5] and [\(count)] are both 5; items must be unique"])

        let wide = JSONValue.object((0..<20_000).map { ("k\($0)", .number(Double($0))) })
        let required = JSONValue.array((0..<1_000).map { .string("k\($0 * 7)") })
        let objectSchema = try JSONSchema(["required": required, "additionalProperties": ["type": "number"], "propertyNames": ["pattern": "^k[0-9]+$"]])
        #expect(objectSchema.validate(wide).isEmpty)
    }

    @Test func deepValuesAreCheckedWithoutExhaustingTheStack() throws {
        func nested(_ levels: Int, _ innermost: JSONValue) -> (schema: JSONValue, value: JSONValue) {
            var schema: JSONValue = ["type": "integer"]
            var value = innermost
            for _ in 0..<levels {
                schema = ["type": "array", "items": schema]
                value = [value]
            }
            return (schema, value)
        }
        let (schema, value) = nested(150, 1)
        let deep = try JSONSchema(schema)
        #expect(deep.validate(value).isEmpty)
        #expect(deep.validate(nested(150, "x").value).map(\.description) == [String(repeating: "[0]", count: 150).prepending("$") + #": "x" is not of type integer"#])

        // Compiling has no depth limit (it keeps a work list); checking stops at a fixed depth.
        let (tooDeepSchema, tooDeepValue) = nested(5_000, 1)
        let tooDeep = try JSONSchema(tooDeepSchema)
        #expect(tooDeep.validate(tooDeepValue).map(\.description)
            == [String(repeating: "[0]", count: SchemaEvaluator.maxDepth).prepending("$") + ": schema and value nested deeper than \(SchemaEvaluator.maxDepth) levels"])
        #expect(!tooDeep.isValid(tooDeepValue))
    }

    @Test func schemaIsUsableFromManyTasks() async throws {
        let schema = try JSONSchema(["properties": ["n": ["maximum": 10]]])
        let results = await withTaskGroup(of: Int.self) { group in
            for i in 0..<8 { group.addTask { schema.validate(["n": .number(Double(i * 3))]).count } }
            return await group.reduce(0, +)
        }
        #expect(results == 4)  // 12, 15, 18, 21
    }

    // MARK: - Hostile schemas and values

    @Test func patternThatBacktracksForeverIsReportedNotRun() throws {
        let schema = try JSONSchema(JSONValue.parse(#"{"properties": {"s": {"pattern": "(.*a){12}$"}}}"#))
        let value: JSONValue = ["s": .string(String(repeating: "a", count: 60) + "b")]
        let start = ContinuousClock.now
        // Never "does not match" (the search did not finish), never valid.
        #expect(schema.validate(value).map(\.description) == [#"$.s: could not check the pattern "(.*a){12}$" in time"#])
        #expect(ContinuousClock.now - start < .seconds(2))
        #expect(schema.validate(["s": "aaab"]).map(\.description) == [#"$.s: "aaab" does not match the pattern "(.*a){12}$""#])

        // The same with a short deadline, where the answer must not be "valid": isValid, inside not,
        // as an if condition, in oneOf, and matching property names.
        func quick(_ schema: String, _ value: JSONValue) throws -> (violations: [String], valid: Bool) {
            let program = try JSONSchema(JSONValue.parse(schema)).program
            return (SchemaEvaluator(program, patternNanoseconds: 5_000_000).violations(of: value).map(\.description),
                    SchemaEvaluator(program, patternNanoseconds: 5_000_000).isValid(value))
        }
        let evil = String(repeating: "a", count: 60) + "b"
        let notEvil = try quick(#"{"not": {"pattern": "(.*a){12}$"}}"#, .string(evil))
        #expect(notEvil.violations == [#"$: could not check the pattern "(.*a){12}$" in time"#])
        #expect(!notEvil.valid)
        #expect(try !quick(#"{"if": {"pattern": "(.*a){12}$"}, "else": true, "then": false}"#, .string(evil)).valid)
        #expect(try !quick(#"{"oneOf": [{"pattern": "(.*a){12}$"}, {"type": "string"}]}"#, .string(evil)).valid)
        let names = try quick(#"{"patternProperties": {"(.*a){12}$": {"type": "integer"}}, "additionalProperties": true}"#, .object([(evil, .string("x"))]))
        #expect(names.violations == [#"$: could not check the property name "# + SchemaText.quoted(evil) + #" against the pattern "(.*a){12}$" in time"#])
        #expect(!names.valid)
        // Once the budget for all searches of a check is spent, the next search is not even started.
        let program = try JSONSchema(["pattern": "^a"]).program
        #expect(SchemaEvaluator(program, patternBudgetNanoseconds: 0).violations(of: "abc").map(\.description)
            == [#"$: could not check the pattern "^a" in time"#])
    }

    @Test func patternTheEngineGivesUpOnIsReportedNotFailed() throws {
        // ICU's backtracking stack is limited: on a long value it stops and NSRegularExpression would
        // say "no match", although the text matches.
        let schema = try JSONSchema(JSONValue.parse(#"{"pattern": "^(\\w+\\s?)*$"}"#))
        #expect(schema.isValid(.string(String(repeating: "a ", count: 1_000))))
        let long = JSONValue.string(String(repeating: "a ", count: 500_000))
        #expect(schema.validate(long).map(\.description)
            == [#"$: could not check the pattern "^(\\w+\\s?)*$": the regular expression engine gave up on this value"#])
        #expect(!schema.isValid(long))
    }

    /// d0 … dN, each d(i) = allOf of two $refs to d(i+1): 2^N applications without a budget.
    func fanOut(_ levels: Int, leaf: JSONValue) throws -> JSONSchema {
        var defs: [(String, JSONValue)] = (0..<levels).map { i in
            ("d\(i)", ["allOf": [["$ref": .string("#/$defs/d\(i + 1)")], ["$ref": .string("#/$defs/d\(i + 1)")]]])
        }
        defs.append(("d\(levels)", leaf))
        return try JSONSchema(.object([("$defs", .object(defs)), ("$ref", "#/$defs/d0")]))
    }

    @Test func refFanOutStopsAtTheStepBudget() throws {
        let schema = try fanOut(30, leaf: ["type": "object"])
        let cheap = SchemaEvaluator(schema.program, maxSteps: 100_000)
        #expect(cheap.violations(of: ["a": 1]).map(\.description) == ["$: the schema is too costly to check this value (more than 100000 steps)"])
        #expect(!SchemaEvaluator(schema.program, maxSteps: 100_000).isValid(["a": 1]))
        // With the real budget: reading a long string counts too, so this stops in a fraction of the time.
        let strings = try fanOut(30, leaf: ["minLength": 1])
        let start = ContinuousClock.now
        #expect(strings.validate(.string(String(repeating: "a", count: 1 << 20))).map(\.description)
            == ["$: the schema is too costly to check this value (more than \(SchemaEvaluator.maxSteps) steps)"])
        #expect(ContinuousClock.now - start < .seconds(5))
        // A few levels fit in the budget and are checked in full.
        #expect(try fanOut(6, leaf: ["type": "object"]).validate(["a": 1]).isEmpty)
        #expect(try fanOut(6, leaf: ["type": "object"]).validate(1) == Array(repeating: JSONSchemaViolation(path: "$", message: "1 is not of type object"), count: 64))
    }

    @Test func violationsStopAtAHundred() throws {
        let strings = try JSONSchema(["type": "array", "items": ["type": "string"]])
        let ones = JSONValue.array(Array(repeating: 1, count: 50_000))
        let found = strings.validate(ones).map(\.description)
        #expect(found.count == SchemaEvaluator.maxViolations + 1)
        #expect(found.first == "$[0]: 1 is not of type string")
        #expect(found[99] == "$[99]: 1 is not of type string")
        #expect(found.last == "$: and more violations not listed")
        #expect(strings.validate(.array(Array(repeating: 1, count: 100))).count == 100)
        #expect(strings.validate(.array(Array(repeating: 1, count: 101))).last == JSONSchemaViolation(path: "$", message: "and more violations not listed"))

        // Messages name a few of a long list without rendering the rest.
        let allowed = JSONValue.array((0..<1_000).map { .string("value\($0)") })
        let enumSchema = try JSONSchema(["items": ["enum": allowed]])
        let reply = JSONValue.array((0..<10_000).map { .string("other\($0)") })
        let enumFound = enumSchema.validate(reply)
        #expect(enumFound.count == 101)
        #expect(enumFound[0].message == #""other0" is not one of the allowed values "value0", "value1", "value2", "value3", "value4", "value5", "value6", "value7", "value8", "value9", "value10", "value11", … (988 more)"#)
        // A long enum is a set: every value of a large valid reply is found quickly.
        #expect(enumSchema.validate(.array((0..<10_000).map { .string("value\($0 % 1_000)") })).isEmpty)
        #expect(enumSchema.isValid(.array([.string("value999")])))
        #expect(!enumSchema.isValid(.array([.string("value1000")])))

        let properties = JSONValue.object((0..<5_000).map { ("p\($0)", ["type": "integer"]) })
        let closed = try JSONSchema(["properties": properties, "additionalProperties": false])
        let extra = closed.validate(.object((0..<5_000).map { ("x\($0)", 1) }))
        #expect(extra.count == 101)
        #expect(extra[0].description == #"$: unexpected property "x0" (allowed: "p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9", … (4990 more))"#)

        // Inside an alternative only the first violation is shown, with how many more there were.
        let alternatives = try JSONSchema(["anyOf": [["items": ["type": "string"]], ["type": "string"]]])
        #expect(alternatives.validate(.array(Array(repeating: 1, count: 5))).map(\.message)
            == ["[1,1,1,1,1] does not match any of the anyOf alternatives: (1) $[0]: 1 is not of type string (and 4 more); (2) $: [1,1,1,1,1] is not of type string"])
        #expect(alternatives.validate(.array(Array(repeating: 1, count: 500))).first?.message.contains("(1) $[0]: 1 is not of type string (and at least 10 more); (2)") == true)
        // A long key is cut in paths rather than repeated whole in every violation below it.
        let longKey = String(repeating: "k", count: 100_000)
        let pairs: JSONValue = [1, 1]
        let underLongKey = try JSONSchema(["additionalProperties": ["items": ["type": "string"]]]).validate(.object([(longKey, pairs)]))
        let shownKey = "$[\"" + String(repeating: "k", count: 59) + "…\"]"
        #expect(underLongKey.map(\.path) == [shownKey + "[0]", shownKey + "[1]"])
        let several = try JSONSchema(.object([("oneOf", .array(Array(repeating: ["type": "integer"], count: 20)))]))
        #expect(several.validate(1).map(\.message) == ["1 matches more than one of the oneOf alternatives (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 and 8 more) but must match exactly one"])
    }

    @Test func schemasWithTooManySubschemasAreRefused() throws {
        func error(_ schema: JSONValue) -> String? {
            do {
                _ = try JSONSchema(schema)
                return nil
            } catch {
                return error.description
            }
        }
        let tooMany = "the schema has more than \(JSONSchemaCompiler.maxNodes) subschemas"
        #expect(error(["prefixItems": .array(Array(repeating: true, count: 20_000))]) == tooMany)
        #expect(error(["prefixItems": .array(Array(repeating: true, count: 19_998))]) == nil)
        #expect(error(.object([("properties", .object((0..<60_000).map { ("p\($0)", ["type": "string"]) }))])) == tooMany)
        // A deep schema costs the same per subschema as a shallow one (locations share their prefixes).
        var deep: JSONValue = ["prefixItems": .array(Array(repeating: true, count: 19_000))]
        for _ in 0..<505 { deep = ["items": deep] }
        let start = ContinuousClock.now
        let compiled = try JSONSchema(deep)
        #expect(ContinuousClock.now - start < .seconds(2))
        var value: JSONValue = [1, 2]
        for _ in 0..<50 { value = [value] }
        #expect(compiled.isValid(value))
        // Errors deep down still say where.
        var bad: JSONValue = ["minimum": "x"]
        for _ in 0..<3 { bad = ["items": bad] }
        #expect(error(bad) == #"minimum at $.items.items.items must be a number, not "x""#)
    }

    @Test func unsupportedKeywordsAreListedBriefly() throws {
        let many = try JSONSchema(.object([("properties", .object((0..<30).map { ("p\($0)", ["format": "email"]) }))]))
        #expect(many.unsupportedKeywords.count == JSONSchemaCompiler.maxListedUnsupported + 1)
        #expect(many.unsupportedKeywords.first == "format at $.properties.p0")
        #expect(many.unsupportedKeywords[19] == "format at $.properties.p19")
        #expect(many.unsupportedKeywords.last == "and 10 more")

        var deep: JSONValue = ["format": "date"]
        for _ in 0..<500 { deep = ["items": deep] }
        let deepSchema = try JSONSchema(.object([("unevaluatedItems", false), ("allOf", [deep])]))
        #expect(deepSchema.unsupportedKeywords.count == 2)
        #expect(deepSchema.unsupportedKeywords[0] == "unevaluatedItems at $")
        let entry = deepSchema.unsupportedKeywords[1]
        #expect(entry.hasPrefix("format at $.allOf[0].items.items"))
        #expect(entry.hasSuffix(".items.items"))
        #expect(entry.contains("…"))
        #expect(entry.count <= "format at ".count + JSONSchemaCompiler.maxListedPathLength)
    }

    @Test func deepChecksFitA512KBStack() throws {
        // Stacks of secondary threads can be this small (macOS); unoptimised frames are the largest.
        var chain: JSONValue = 1
        for _ in 0..<300 { chain = [chain] }
        var nested: JSONValue = [chain, chain]
        for _ in 0..<90 { nested = [nested] }
        var alternatives: JSONValue = ["type": "integer"]
        for i in 0..<300 {
            alternatives = i % 2 == 0 ? ["anyOf": [["type": "string"], alternatives]] : ["oneOf": [alternatives, ["type": "string"]], "propertyNames": ["pattern": "^a"]]
        }
        let cases: [(JSONSchema, JSONValue)] = [
            (try JSONSchema(JSONValue.parse(##"{"anyOf": [{"type": "integer"}, {"items": {"$ref": "#"}, "not": {"$ref": "#/$defs/x"}}], "$defs": {"x": {"oneOf": [{"$ref": "#"}, {"const": 1}]}}}"##)), chain),
            (try JSONSchema(JSONValue.parse(##"{"items": {"$ref": "#"}, "uniqueItems": true, "const": [[[1]]], "enum": [1, 2, 3, 4, 5, 6, 7, 8, 9, [[[[1]]]]]}"##)), nested),
            (try JSONSchema(alternatives), 1.5),
        ]
        let done = DispatchSemaphore(value: 0)
        let counts = Counts()
        let thread = Thread {
            for (schema, value) in cases { counts.add(schema.validate(value).count) }
            done.signal()
        }
        thread.stackSize = 512 << 10
        thread.start()
        done.wait()
        #expect(counts.total > 0)
    }

    final class Counts: @unchecked Sendable {
        private let lock = NSLock()
        private var sum = 0
        func add(_ n: Int) { lock.withLock { sum += n } }
        var total: Int { lock.withLock { sum } }
    }

    // MARK: - Own groups in the suite's format

    static let ownGroups = #"""
    [
        {"description": "multipleOf by int (official multipleOf.json)", "schema": {"multipleOf": 2},
         "tests": [{"description": "int by int", "data": 10, "valid": true},
                   {"description": "int by int fail", "data": 7, "valid": false},
                   {"description": "ignores non-numbers", "data": "foo", "valid": true}]},
        {"description": "multipleOf by number (official)", "schema": {"multipleOf": 1.5},
         "tests": [{"description": "zero is multiple of anything", "data": 0, "valid": true},
                   {"description": "4.5 is multiple of 1.5", "data": 4.5, "valid": true},
                   {"description": "35 is not multiple of 1.5", "data": 35, "valid": false}]},
        {"description": "multipleOf by small number (official)", "schema": {"multipleOf": 0.0001},
         "tests": [{"description": "0.0075 is multiple of 0.0001", "data": 0.0075, "valid": true},
                   {"description": "0.00751 is not multiple of 0.0001", "data": 0.00751, "valid": false}]},
        {"description": "float division = inf (official)", "schema": {"type": "integer", "multipleOf": 0.123456789},
         "tests": [{"description": "always invalid, but naive implementations may raise an overflow error", "data": 1e308, "valid": false}]},
        {"description": "small multiple of large integer (official)", "schema": {"type": "integer", "multipleOf": 1e-8},
         "tests": [{"description": "any integer is a multiple of 1e-8", "data": 12391239123, "valid": true}]},
        {"description": "multipleOf with cents", "schema": {"multipleOf": 0.01},
         "tests": [{"description": "19.99", "data": 19.99, "valid": true},
                   {"description": "0.07", "data": 0.07, "valid": true},
                   {"description": "19.995", "data": 19.995, "valid": false}]},

        {"description": "uniqueItems validation", "schema": {"uniqueItems": true},
         "tests": [{"description": "unique array of integers is valid", "data": [1, 2], "valid": true},
                   {"description": "non-unique array of integers is invalid", "data": [1, 1], "valid": false},
                   {"description": "non-unique array of more than two integers is invalid", "data": [1, 2, 1], "valid": false},
                   {"description": "numbers are unique if mathematically unequal", "data": [1.0, 1.00, 1], "valid": false},
                   {"description": "false is not equal to zero", "data": [0, false], "valid": true},
                   {"description": "true is not equal to one", "data": [1, true], "valid": true},
                   {"description": "unique array of strings is valid", "data": ["foo", "bar", "baz"], "valid": true},
                   {"description": "non-unique array of strings is invalid", "data": ["foo", "bar", "foo"], "valid": false},
                   {"description": "unique array of objects is valid", "data": [{"foo": "bar"}, {"foo": "baz"}], "valid": true},
                   {"description": "non-unique array of objects is invalid", "data": [{"foo": "bar"}, {"foo": "bar"}], "valid": false},
                   {"description": "property order of array of objects is ignored", "data": [{"foo": "bar", "bar": "foo"}, {"bar": "foo", "foo": "bar"}], "valid": false},
                   {"description": "unique array of nested objects is valid", "data": [{"foo": {"bar": {"baz": true}}}, {"foo": {"bar": {"baz": false}}}], "valid": true},
                   {"description": "non-unique array of nested objects is invalid", "data": [{"foo": {"bar": {"baz": true}}}, {"foo": {"bar": {"baz": true}}}], "valid": false},
                   {"description": "unique array of arrays is valid", "data": [["foo"], ["bar"]], "valid": true},
                   {"description": "non-unique array of arrays is invalid", "data": [["foo"], ["foo"]], "valid": false},
                   {"description": "1 and true are unique", "data": [1, true], "valid": true},
                   {"description": "0 and false are unique", "data": [0, false], "valid": true},
                   {"description": "[1] and [true] are unique", "data": [[1], [true]], "valid": true},
                   {"description": "nested [1] and [true] are unique", "data": [[[1], "foo"], [[true], "foo"]], "valid": true},
                   {"description": "unique heterogeneous types are valid", "data": [{}, [1], true, null, 1, "{}"], "valid": true},
                   {"description": "non-unique heterogeneous types are invalid", "data": [{}, [1], true, null, {}, 1], "valid": false},
                   {"description": "different objects are unique", "data": [{"a": 1, "b": 2}, {"a": 2, "b": 1}], "valid": true},
                   {"description": "objects are non-unique despite key order", "data": [{"a": 1, "b": 2}, {"b": 2, "a": 1}], "valid": false},
                   {"description": "{\"a\": false} and {\"a\": 0} are unique", "data": [{"a": false}, {"a": 0}], "valid": true},
                   {"description": "strings differing in normalisation are unique", "data": ["\u00e4", "a\u0308"], "valid": true},
                   {"description": "long array, unique", "data": [0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,"0",[0],{"0":0}], "valid": true},
                   {"description": "long array, duplicate at the end", "data": [0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,{"0":0},{"0":0.0}], "valid": false},
                   {"description": "long array, -0 equals 0", "data": [1,2,3,4,5,6,7,8,9,10,11,12,0,-0.0], "valid": false}]},
        {"description": "uniqueItems=false validation", "schema": {"uniqueItems": false},
         "tests": [{"description": "non-unique array of integers is valid", "data": [1, 1], "valid": true},
                   {"description": "non-unique array of objects is valid", "data": [{"foo": "bar"}, {"foo": "bar"}], "valid": true}]},
        {"description": "uniqueItems with prefixItems and items=false", "schema": {"prefixItems": [{"type": "boolean"}, {"type": "boolean"}], "uniqueItems": true, "items": false},
         "tests": [{"description": "[false, true] from items array is valid", "data": [false, true], "valid": true},
                   {"description": "[false, false] from items array is not valid", "data": [false, false], "valid": false},
                   {"description": "extra items are invalid even if unique", "data": [false, true, null], "valid": false}]},

        {"description": "ignore if without then or else", "schema": {"if": {"const": 0}},
         "tests": [{"description": "valid when valid against lone if", "data": 0, "valid": true},
                   {"description": "valid when invalid against lone if", "data": "hello", "valid": true}]},
        {"description": "ignore then without if", "schema": {"then": {"const": 0}},
         "tests": [{"description": "valid when valid against lone then", "data": 0, "valid": true},
                   {"description": "valid when invalid against lone then", "data": "hello", "valid": true}]},
        {"description": "ignore else without if", "schema": {"else": {"const": 0}},
         "tests": [{"description": "valid when invalid against lone else", "data": "hello", "valid": true}]},
        {"description": "if and then without else", "schema": {"if": {"exclusiveMaximum": 0}, "then": {"minimum": -10}},
         "tests": [{"description": "valid through then", "data": -1, "valid": true},
                   {"description": "invalid through then", "data": -100, "valid": false},
                   {"description": "valid when if test fails", "data": 3, "valid": true}]},
        {"description": "if and else without then", "schema": {"if": {"exclusiveMaximum": 0}, "else": {"multipleOf": 2}},
         "tests": [{"description": "valid when if test passes", "data": -1, "valid": true},
                   {"description": "valid through else", "data": 4, "valid": true},
                   {"description": "invalid through else", "data": 3, "valid": false}]},
        {"description": "validate against correct branch, then vs else", "schema": {"if": {"exclusiveMaximum": 0}, "then": {"minimum": -10}, "else": {"multipleOf": 2}},
         "tests": [{"description": "valid through then", "data": -1, "valid": true},
                   {"description": "invalid through then", "data": -100, "valid": false},
                   {"description": "valid through else", "data": 4, "valid": true},
                   {"description": "invalid through else", "data": 3, "valid": false}]},
        {"description": "non-interference across combined schemas", "schema": {"allOf": [{"if": {"exclusiveMaximum": 0}}, {"then": {"minimum": -10}}, {"else": {"multipleOf": 2}}]},
         "tests": [{"description": "valid, but would have been invalid through then", "data": -100, "valid": true},
                   {"description": "valid, but would have been invalid through else", "data": 3, "valid": true}]},
        {"description": "if with boolean schema false", "schema": {"if": false, "then": {"const": "then"}, "else": {"const": "else"}},
         "tests": [{"description": "boolean schema false in if always chooses the else path (valid)", "data": "else", "valid": true},
                   {"description": "boolean schema false in if always chooses the else path (invalid)", "data": "then", "valid": false}]},
        {"description": "if appears at the end when serialized (keyword processing sequence)", "schema": {"then": {"const": "yes"}, "else": {"const": "other"}, "if": {"maxLength": 4}},
         "tests": [{"description": "yes redirects to then and passes", "data": "yes", "valid": true},
                   {"description": "other redirects to else and passes", "data": "other", "valid": true},
                   {"description": "no redirects to then and fails", "data": "no", "valid": false},
                   {"description": "invalid redirects to else and fails", "data": "invalid", "valid": false}]},

        {"description": "single dependency", "schema": {"dependentRequired": {"bar": ["foo"]}},
         "tests": [{"description": "neither", "data": {}, "valid": true},
                   {"description": "nondependant", "data": {"foo": 1}, "valid": true},
                   {"description": "with dependency", "data": {"foo": 1, "bar": 2}, "valid": true},
                   {"description": "missing dependency", "data": {"bar": 2}, "valid": false},
                   {"description": "ignores arrays", "data": ["bar"], "valid": true},
                   {"description": "ignores strings", "data": "foobar", "valid": true}]},
        {"description": "empty dependents", "schema": {"dependentRequired": {"bar": []}},
         "tests": [{"description": "object with one property", "data": {"bar": 2}, "valid": true}]},
        {"description": "multiple dependents required", "schema": {"dependentRequired": {"quux": ["foo", "bar"]}},
         "tests": [{"description": "with dependencies", "data": {"foo": 1, "bar": 2, "quux": 3}, "valid": true},
                   {"description": "missing dependency", "data": {"foo": 1, "quux": 2}, "valid": false},
                   {"description": "missing both dependencies", "data": {"quux": 1}, "valid": false}]},
        {"description": "dependencies with escaped characters", "schema": {"dependentRequired": {"foo\nbar": ["foo\rbar"], "foo\"bar": ["foo'bar"]}},
         "tests": [{"description": "CRLF", "data": {"foo\nbar": 1, "foo\rbar": 2}, "valid": true},
                   {"description": "CRLF missing dependent", "data": {"foo\nbar": 1, "foo": 2}, "valid": false},
                   {"description": "quoted quotes missing dependent", "data": {"foo\"bar": 2}, "valid": false}]},

        {"description": "propertyNames validation", "schema": {"propertyNames": {"maxLength": 3}},
         "tests": [{"description": "all property names valid", "data": {"f": {}, "foo": {}}, "valid": true},
                   {"description": "some property names invalid", "data": {"foo": {}, "foobar": {}}, "valid": false},
                   {"description": "object without properties is valid", "data": {}, "valid": true},
                   {"description": "ignores arrays", "data": [1, 2, 3, 4], "valid": true},
                   {"description": "ignores other non-objects", "data": 12, "valid": true}]},
        {"description": "propertyNames with boolean schema false", "schema": {"propertyNames": false},
         "tests": [{"description": "object with any properties is invalid", "data": {"foo": 1}, "valid": false},
                   {"description": "empty object is valid", "data": {}, "valid": true}]},
        {"description": "propertyNames with const", "schema": {"propertyNames": {"const": "foo"}},
         "tests": [{"description": "object with property foo is valid", "data": {"foo": 1}, "valid": true},
                   {"description": "object with any other property is invalid", "data": {"bar": 1}, "valid": false}]},
        {"description": "propertyNames with pattern", "schema": {"propertyNames": {"pattern": "^a+$"}},
         "tests": [{"description": "matching property names valid", "data": {"a": {}, "aa": {}, "aaa": {}}, "valid": true},
                   {"description": "non-matching property name is invalid", "data": {"aaA": {}}, "valid": false}]},

        {"description": "root pointer ref (official ref.json)", "schema": {"properties": {"foo": {"$ref": "#"}}, "additionalProperties": false},
         "tests": [{"description": "match", "data": {"foo": false}, "valid": true},
                   {"description": "recursive match", "data": {"foo": {"foo": false}}, "valid": true},
                   {"description": "mismatch", "data": {"bar": false}, "valid": false},
                   {"description": "recursive mismatch", "data": {"foo": {"bar": false}}, "valid": false}]},
        {"description": "relative pointer ref to object", "schema": {"properties": {"foo": {"type": "integer"}, "bar": {"$ref": "#/properties/foo"}}},
         "tests": [{"description": "match", "data": {"bar": 3}, "valid": true},
                   {"description": "mismatch", "data": {"bar": true}, "valid": false}]},
        {"description": "relative pointer ref to array", "schema": {"prefixItems": [{"type": "integer"}, {"$ref": "#/prefixItems/0"}]},
         "tests": [{"description": "match array", "data": [1, 2], "valid": true},
                   {"description": "mismatch array", "data": [1, "foo"], "valid": false}]},
        {"description": "escaped pointer ref", "schema": {"$defs": {"tilde~field": {"type": "integer"}, "slash/field": {"type": "integer"}, "percent%field": {"type": "integer"}},
                                                          "properties": {"tilde": {"$ref": "#/$defs/tilde~0field"}, "slash": {"$ref": "#/$defs/slash~1field"}, "percent": {"$ref": "#/$defs/percent%25field"}}},
         "tests": [{"description": "slash invalid", "data": {"slash": "aoeu"}, "valid": false},
                   {"description": "tilde invalid", "data": {"tilde": "aoeu"}, "valid": false},
                   {"description": "percent invalid", "data": {"percent": "aoeu"}, "valid": false},
                   {"description": "slash valid", "data": {"slash": 123}, "valid": true},
                   {"description": "tilde valid", "data": {"tilde": 123}, "valid": true},
                   {"description": "percent valid", "data": {"percent": 123}, "valid": true}]},
        {"description": "nested refs", "schema": {"$defs": {"a": {"type": "integer"}, "b": {"$ref": "#/$defs/a"}, "c": {"$ref": "#/$defs/b"}}, "$ref": "#/$defs/c"},
         "tests": [{"description": "nested ref valid", "data": 5, "valid": true},
                   {"description": "nested ref invalid", "data": "a", "valid": false}]},
        {"description": "ref applies alongside sibling keywords", "schema": {"$defs": {"reffed": {"type": "array"}}, "properties": {"foo": {"$ref": "#/$defs/reffed", "maxItems": 2}}},
         "tests": [{"description": "ref valid, maxItems valid", "data": {"foo": []}, "valid": true},
                   {"description": "ref valid, maxItems invalid", "data": {"foo": [1, 2, 3]}, "valid": false},
                   {"description": "ref invalid", "data": {"foo": "string"}, "valid": false}]},
        {"description": "property named $ref, containing an actual $ref", "schema": {"properties": {"$ref": {"$ref": "#/$defs/is-string"}}, "$defs": {"is-string": {"type": "string"}}},
         "tests": [{"description": "property named $ref valid", "data": {"$ref": "a"}, "valid": true},
                   {"description": "property named $ref invalid", "data": {"$ref": 2}, "valid": false}]},
        {"description": "$ref to boolean schema false", "schema": {"$ref": "#/$defs/bool", "$defs": {"bool": false}},
         "tests": [{"description": "any value is invalid", "data": "foo", "valid": false}]},
        {"description": "Recursive references between schemas", "schema": {
            "$id": "http://localhost:1234/draft2020-12/tree", "type": "object",
            "properties": {"meta": {"type": "string"}, "nodes": {"type": "array", "items": {"$ref": "node"}}},
            "required": ["meta", "nodes"],
            "$defs": {"node": {"$id": "http://localhost:1234/draft2020-12/node", "type": "object",
                               "properties": {"value": {"type": "number"}, "subtree": {"$ref": "tree"}}, "required": ["value"]}}},
         "tests": [{"description": "valid tree", "data": {"meta": "root", "nodes": [{"value": 1, "subtree": {"meta": "child", "nodes": [{"value": 1.1}, {"value": 1.2}]}},
                                                                                    {"value": 2, "subtree": {"meta": "child", "nodes": [{"value": 2.1}, {"value": 2.2}]}}]}, "valid": true},
                   {"description": "invalid tree", "data": {"meta": "root", "nodes": [{"value": 1, "subtree": {"meta": "child", "nodes": [{"value": "string is invalid"}, {"value": 1.2}]}},
                                                                                      {"value": 2, "subtree": {"meta": "child", "nodes": [{"value": 2.1}, {"value": 2.2}]}}]}, "valid": false}]},
        {"description": "refs with quote", "schema": {"properties": {"foo\"bar": {"$ref": "#/$defs/foo%22bar"}}, "$defs": {"foo\"bar": {"type": "number"}}},
         "tests": [{"description": "object with numbers is valid", "data": {"foo\"bar": 1}, "valid": true},
                   {"description": "object with strings is invalid", "data": {"foo\"bar": "1"}, "valid": false}]},
        {"description": "naive replacement of $ref with its destination is not correct", "schema": {"$defs": {"a_string": {"type": "string"}}, "enum": [{"$ref": "#/$defs/a_string"}]},
         "tests": [{"description": "do not evaluate the $ref inside the enum, matching any string", "data": "this is a string", "valid": false},
                   {"description": "do not evaluate the $ref inside the enum, definition exact match", "data": {"type": "string"}, "valid": false},
                   {"description": "match the enum exactly", "data": {"$ref": "#/$defs/a_string"}, "valid": true}]},
        {"description": "refs with relative uris and defs", "schema": {
            "$id": "http://example.com/schema-relative-uri-defs1.json",
            "properties": {"foo": {"$id": "schema-relative-uri-defs2.json", "$defs": {"inner": {"properties": {"bar": {"type": "string"}}}}, "$ref": "#/$defs/inner"}},
            "$ref": "schema-relative-uri-defs2.json"},
         "tests": [{"description": "invalid on inner field", "data": {"foo": {"bar": 1}, "bar": "a"}, "valid": false},
                   {"description": "invalid on outer field", "data": {"foo": {"bar": "a"}, "bar": 1}, "valid": false},
                   {"description": "valid on both fields", "data": {"foo": {"bar": "a"}, "bar": "a"}, "valid": true}]},
        {"description": "$id must be resolved against nearest parent, not just immediate parent", "schema": {
            "$id": "http://example.com/a.json",
            "$defs": {"x": {"$id": "http://example.com/b/c.json", "not": {"$defs": {"y": {"$id": "d.json", "type": "number"}}}}},
            "allOf": [{"$ref": "http://example.com/b/d.json"}]},
         "tests": [{"description": "number is valid", "data": 1, "valid": true},
                   {"description": "non-number is invalid", "data": "a", "valid": false}]},
        {"description": "order of evaluation: $id and $ref", "schema": {
            "$id": "/draft2020-12/ref-and-id1/base.json", "$ref": "int.json",
            "$defs": {"bigint": {"$id": "int.json", "maximum": 10}, "smallint": {"$id": "/draft2020-12/ref-and-id1-int.json", "maximum": 2}}},
         "tests": [{"description": "data is valid against first definition", "data": 5, "valid": true},
                   {"description": "data is invalid against first definition", "data": 50, "valid": false}]},
        {"description": "order of evaluation: $id and $anchor and $ref", "schema": {
            "$id": "/draft2020-12/ref-and-id2/base.json", "$ref": "#bigint",
            "$defs": {"bigint": {"$anchor": "bigint", "maximum": 10}, "smallint": {"$id": "/draft2020-12/ref-and-id2/", "$anchor": "bigint", "maximum": 2}}},
         "tests": [{"description": "data is valid against first definition", "data": 5, "valid": true},
                   {"description": "data is invalid against first definition", "data": 50, "valid": false}]},
        {"description": "simple URN base URI with $ref via the URN", "schema": {
            "$id": "urn:uuid:deadbeef-1234-ffff-ffff-4321feebdaed", "minimum": 30,
            "properties": {"foo": {"$ref": "urn:uuid:deadbeef-1234-ffff-ffff-4321feebdaed"}}},
         "tests": [{"description": "valid under the URN IDed schema", "data": {"foo": 37}, "valid": true},
                   {"description": "invalid under the URN IDed schema", "data": {"foo": 12}, "valid": false}]},
        {"description": "URN base URI with URN and anchor ref", "schema": {
            "$id": "urn:uuid:deadbeef-1234-ff00-00ff-4321feebdaed",
            "properties": {"foo": {"$ref": "urn:uuid:deadbeef-1234-ff00-00ff-4321feebdaed#something"}},
            "$defs": {"bar": {"$anchor": "something", "type": "string"}}},
         "tests": [{"description": "a string is valid", "data": {"foo": "bar"}, "valid": true},
                   {"description": "a non-string is invalid", "data": {"foo": 12}, "valid": false}]},
        {"description": "URN ref with nested pointer ref", "schema": {
            "$ref": "urn:uuid:deadbeef-4321-ffff-ffff-1234feebdaed",
            "$defs": {"foo": {"$id": "urn:uuid:deadbeef-4321-ffff-ffff-1234feebdaed", "$defs": {"bar": {"type": "string"}}, "$ref": "#/$defs/bar"}}},
         "tests": [{"description": "a string is valid", "data": "bar", "valid": true},
                   {"description": "a non-string is invalid", "data": 12, "valid": false}]},
        {"description": "ref to if", "schema": {"$ref": "http://example.com/ref/if", "if": {"$id": "http://example.com/ref/if", "type": "integer"}},
         "tests": [{"description": "a non-integer is invalid due to the $ref", "data": "foo", "valid": false},
                   {"description": "an integer is valid", "data": 12, "valid": true}]},
        {"description": "ref with absolute-path-reference", "schema": {
            "$id": "http://example.com/ref/absref.json",
            "$defs": {"a": {"$id": "http://example.com/ref/absref/foobar.json", "type": "number"}, "b": {"$id": "http://example.com/absref/foobar.json", "type": "string"}},
            "$ref": "/absref/foobar.json"},
         "tests": [{"description": "a string is valid", "data": "foo", "valid": true},
                   {"description": "an integer is invalid", "data": 12, "valid": false}]},
        {"description": "$id with file URI still resolves pointers", "schema": {"$id": "file:///folder/file.json", "$defs": {"foo": {"type": "number"}}, "$ref": "#/$defs/foo"},
         "tests": [{"description": "number is valid", "data": 1, "valid": true},
                   {"description": "non-number is invalid", "data": "a", "valid": false}]},
        {"description": "empty tokens in $ref json-pointer", "schema": {"$defs": {"": {"$defs": {"": {"type": "number"}}}}, "allOf": [{"$ref": "#/$defs//$defs/"}]},
         "tests": [{"description": "number is valid", "data": 1, "valid": true},
                   {"description": "non-number is invalid", "data": "a", "valid": false}]},
        {"description": "Location-independent identifier (official anchor.json)", "schema": {"$ref": "#foo", "$defs": {"A": {"$anchor": "foo", "type": "integer"}}},
         "tests": [{"description": "match", "data": 1, "valid": true},
                   {"description": "mismatch", "data": "a", "valid": false}]},
        {"description": "evaluating the same schema location against the same data location twice is not a sign of an infinite loop (official infinite-loop-detection.json)", "schema": {
            "$defs": {"int": {"type": "integer"}},
            "allOf": [{"properties": {"foo": {"$ref": "#/$defs/int"}}}, {"additionalProperties": {"$ref": "#/$defs/int"}}]},
         "tests": [{"description": "passing case", "data": {"foo": 1}, "valid": true},
                   {"description": "failing case", "data": {"foo": "a string"}, "valid": false}]},
        {"description": "a draft-07 anchor written as $id names no new resource", "schema": {
            "$id": "http://example.com/root.json",
            "definitions": {"A": {"$id": "#foo", "type": "integer"}, "B": {"$ref": "#/definitions/A"}},
            "properties": {"a": {"$ref": "#foo"}, "b": {"$ref": "#/definitions/B"}}},
         "tests": [{"description": "match", "data": {"a": 1, "b": 2}, "valid": true},
                   {"description": "mismatch through the anchor", "data": {"a": "x"}, "valid": false},
                   {"description": "mismatch through pointers", "data": {"b": "x"}, "valid": false}]},
        {"description": "a failure inside not or if leaves no violation behind", "schema": {
            "not": {"contains": {"const": 1}},
            "if": {"items": {"type": "string"}, "contains": {"const": "x"}, "propertyNames": false}, "then": {"minItems": 3}},
         "tests": [{"description": "no 1, and the if fails in several ways", "data": [2, "y"], "valid": true},
                   {"description": "a 1", "data": [1], "valid": false}]},
        {"description": "definitions (the pre-2020 spelling) can be referenced", "schema": {"definitions": {"id": {"type": "integer"}}, "properties": {"id": {"$ref": "#/definitions/id"}}},
         "tests": [{"description": "integer id", "data": {"id": 3}, "valid": true},
                   {"description": "string id", "data": {"id": "3"}, "valid": false}]},

        {"description": "ECMA-262 regex $ does not match trailing newline (official optional/ecmascript-regex.json)", "schema": {"type": "string", "pattern": "^abc$"},
         "tests": [{"description": "matches in Python, but not in ECMA 262", "data": "abc\n", "valid": false},
                   {"description": "matches", "data": "abc", "valid": true}]},
        {"description": "ECMA-262 \\d matches ascii digits only", "schema": {"type": "string", "pattern": "^\\d$"},
         "tests": [{"description": "ASCII zero matches", "data": "0", "valid": true},
                   {"description": "NKO DIGIT ZERO does not match (unlike e.g. Python)", "data": "\u07c0", "valid": false}]},
        {"description": "ECMA-262 \\w matches ascii letters only", "schema": {"type": "string", "pattern": "^\\w$"},
         "tests": [{"description": "ASCII 'a' matches", "data": "a", "valid": true},
                   {"description": "latin-1 e-acute does not match (unlike e.g. Python)", "data": "\u00e9", "valid": false}]},
        {"description": "ECMA-262 \\D matches everything but ascii digits", "schema": {"type": "string", "pattern": "^[\\D]$"},
         "tests": [{"description": "ASCII zero does not match", "data": "0", "valid": false},
                   {"description": "NKO DIGIT ZERO matches", "data": "\u07c0", "valid": true}]},
        {"description": "maxLength counts code points", "schema": {"maxLength": 2},
         "tests": [{"description": "two astral characters (four UTF-16 units) are valid", "data": "😀😀", "valid": true},
                   {"description": "a flag is two code points", "data": "🇫🇷", "valid": true},
                   {"description": "e + combining accent is two code points", "data": "e\u0301e", "valid": false}]}
    ]
    """#
}

extension String {
    fileprivate func prepending(_ prefix: String) -> String { prefix + self }
}
