import Dispatch
import Foundation

/// A JSON Schema (draft 2020-12), compiled once and then used to check any number of values, such as
/// a model's structured answer. Parley's own validator: no dependency, messages written to be sent back
/// to a model and shown to people ("$.score: 2 is greater than the maximum 1").
///
/// Supported: `type`, `enum`, `const`, `properties`, `required`, `additionalProperties`,
/// `patternProperties`, `propertyNames`, `items`, `prefixItems`, `contains`/`minContains`/`maxContains`,
/// `minItems`, `maxItems`, `uniqueItems`, `minLength`, `maxLength`, `pattern`, `minimum`, `maximum`,
/// `exclusiveMinimum`, `exclusiveMaximum`, `multipleOf`, `minProperties`, `maxProperties`,
/// `dependentRequired`, `allOf`, `anyOf`, `oneOf`, `not`, `if`/`then`/`else`, boolean schemas, and
/// `$ref` within the document (`#`, `#/$defs/x` and any JSON pointer, `#name` for an `$anchor`, and URIs
/// of `$id`s inside the document), applied alongside its sibling keywords.
/// Not checked, and listed in `unsupportedKeywords`: see `JSONSchemaCompiler.unsupportedKeywords`.
/// Annotations (`title`, `description`, `default`, `$comment`, …) and unknown keywords are ignored,
/// as the specification says. Patterns are ECMA-262 as JSON Schema says, translated to ICU for
/// NSRegularExpression where the two differ, and searched for anywhere in the string (unanchored).
///
/// Schemas may come from anywhere (a cloned project's template) and values from a model, so neither is
/// trusted. Compiling refuses a schema of more than 20,000 subschemas and lists at most 20 unsupported
/// keywords. Checking reports a limit as a violation rather than crashing, hanging or saying "valid":
/// `$ref`s followed without moving into the value (64, "schema recursion deeper than 64", which ends
/// reference cycles), subschemas applied at once (200, which keeps the stack safe), work per check
/// (2,000,000 steps or 5 seconds, "the schema is too costly to check this value"), and time per
/// regular expression match (200 ms, and 1 second in all per check: "could not check the pattern …
/// in time"). At most 100 violations are listed, then "and more violations not listed". uniqueItems,
/// large enums and JSON equality hash a canonical form, so no keyword is quadratic in the value.
public struct JSONSchema: Sendable {
    /// The schema as given.
    public let root: JSONValue
    /// Keywords found in the schema that the validator does not check, each with where it was found,
    /// e.g. `["format at $.properties.email"]`, in document order: at most 20, then "and N more", each
    /// location cut to about 120 characters. Annotation-only keywords (`$schema`, `$id`, `$anchor`,
    /// `$comment`, `title`, `description`, `default`, `examples`, `deprecated`, `readOnly`,
    /// `writeOnly`, `content*`) are not listed; `format` is (it is not asserted).
    public var unsupportedKeywords: [String]
    let program: SchemaProgram

    /// Compiles `schema`. Throws for a schema (or subschema) that is neither an object nor a boolean,
    /// a keyword whose value has the wrong form (`"minimum": "5"`, `"type": "integr"`), a `$ref` that
    /// does not resolve within the document, an invalid regular expression in `pattern` or
    /// `patternProperties`, and a schema of more than 20,000 subschemas.
    public init(_ schema: JSONValue) throws(JSONSchemaError) {
        let compiler = JSONSchemaCompiler(document: schema)
        program = try compiler.compile()
        root = schema
        unsupportedKeywords = compiler.unsupported
    }

    /// Every violation of the schema by `instance`, in a stable order; empty when it is valid.
    public func validate(_ instance: JSONValue) -> [JSONSchemaViolation] {
        SchemaEvaluator(program).violations(of: instance)
    }

    /// Whether `instance` is valid; stops at the first violation and builds no messages.
    public func isValid(_ instance: JSONValue) -> Bool {
        SchemaEvaluator(program).isValid(instance)
    }
}

/// One way a value breaks a schema.
public struct JSONSchemaViolation: Sendable, Equatable, CustomStringConvertible {
    /// Where in the value: `$`, `$.score`, `$.tags[2]`, `$["odd key"]`.
    public var path: String
    /// What is wrong, naming the offending value (long values are cut to about 60 characters).
    public var message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}

/// Why a schema cannot be used.
public struct JSONSchemaError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) { self.description = description }
}

/// One step into a JSON document, for instance and schema locations.
enum JSONPathComponent: Sendable, Hashable {
    case key(String)
    case index(Int)
}

// MARK: - Compiled form

struct SchemaProgram: Sendable {
    let nodes: [SchemaNode]
    let root: Int
}

/// An ECMA-262 regular expression translated for ICU and compiled once.
struct SchemaPattern: @unchecked Sendable {
    /// NSRegularExpression is immutable and documented as safe to use from several threads at once.
    let regex: NSRegularExpression
    let source: String

    enum Outcome: Equatable {
        case match
        case noMatch
        /// The search was still running at the deadline (a pattern that backtracks exponentially, such
        /// as `(.*a){12}$` on "aaa…ab").
        case timedOut
        /// ICU stopped with an error, which NSRegularExpression otherwise reports as "no match": its
        /// backtracking stack is limited (8 MB), so `^(\w+\s?)*$` gives up on 1 MB of "a a a …"
        /// although the text matches.
        case gaveUp
    }

    /// Searches `text` anywhere for the pattern, abandoning the search at `deadline` (in
    /// `DispatchTime` uptime nanoseconds).
    ///
    /// `.reportProgress` makes ICU call back at each start position and every few thousand steps of
    /// one match attempt (as documented; checked on Linux, where a single exponential attempt calls
    /// back about 6 times a millisecond), which is where the deadline is enforced: setting `stop` there
    /// ends the search at once. `.reportCompletion` makes the last call carry `.internalError` when
    /// ICU failed (U_REGEX_STACK_OVERFLOW, or any other error), the only way to tell that apart from
    /// no match through NSRegularExpression.
    func search(_ text: String, deadline: UInt64) -> Outcome {
        var outcome = Outcome.noMatch
        var calls = 0
        let range = NSRange(location: 0, length: text.utf16.count)
        regex.enumerateMatches(in: text, options: [.reportProgress, .reportCompletion], range: range) { result, flags, stop in
            guard outcome == .noMatch else {
                stop.pointee = true
                return
            }
            if result != nil {
                outcome = .match
                stop.pointee = true
            } else if flags.contains(.internalError) {
                outcome = .gaveUp
                stop.pointee = true
            } else {
                // Reading the clock every call would double the cost of scanning a long text.
                calls &+= 1
                if calls & 15 == 0, DispatchTime.now().uptimeNanoseconds >= deadline {
                    outcome = .timedOut
                    stop.pointee = true
                }
            }
        }
        return outcome
    }
}

/// The values of an `enum`, found in time linear in the checked value rather than in the number of
/// values: a long list is kept as a set of canonical encodings (see `JSONEquality.canonical`).
struct SchemaValueSet: Sendable {
    let values: [JSONValue]
    private let keys: Set<[UInt8]>?
    private let longest: Int

    init(_ values: [JSONValue]) {
        self.values = values
        guard values.count > 8 else {
            keys = nil
            longest = 0
            return
        }
        var keys = Set<[UInt8]>()
        var longest = 0
        for value in values {
            let key = JSONEquality.canonical(value)
            longest = max(longest, key.count)
            keys.insert(key)
        }
        self.keys = keys
        self.longest = longest
    }

    /// Steps comparing an array or object with the values may take (see `SchemaNode.comparisonCost`).
    var comparisonCost: Int { keys == nil ? values.reduce(0) { $0 + JSONSchemaCompiler.size($1) } : longest / 16 }

    func contains(_ value: JSONValue) -> Bool {
        guard let keys else { return values.contains { JSONEquality.equal($0, value) } }
        // A value longer than every allowed one is not among them, however long it is.
        guard let key = JSONEquality.canonical(value, limit: longest) else { return false }
        return keys.contains(key)
    }
}

struct SchemaTypes: OptionSet, Sendable {
    let rawValue: UInt8
    static let null = SchemaTypes(rawValue: 1)
    static let boolean = SchemaTypes(rawValue: 2)
    static let object = SchemaTypes(rawValue: 4)
    static let array = SchemaTypes(rawValue: 8)
    static let number = SchemaTypes(rawValue: 16)
    static let string = SchemaTypes(rawValue: 32)
    static let integer = SchemaTypes(rawValue: 64)

    static let named: [(String, SchemaTypes)] = [
        ("null", .null), ("boolean", .boolean), ("object", .object), ("array", .array),
        ("number", .number), ("string", .string), ("integer", .integer),
    ]

    init(rawValue: UInt8) { self.rawValue = rawValue }

    func matches(_ value: JSONValue) -> Bool {
        switch value {
        case .null: return contains(.null)
        case .bool: return contains(.boolean)
        case .object: return contains(.object)
        case .array: return contains(.array)
        case .string: return contains(.string)
        case let .number(n): return contains(.number) || (contains(.integer) && n.isWholeNumber)
        }
    }
}

/// One subschema. Indices point into `SchemaProgram.nodes`.
///
/// A class so that checking passes a reference instead of copying some forty fields into every stack
/// frame (which, unoptimised, made a 100-level value overflow a 512 KB thread stack). Only the compiler
/// in this file writes the fields, before the program is published; afterwards it is immutable, which
/// is what makes the unchecked Sendable sound.
final class SchemaNode: @unchecked Sendable {
    /// The subschema as written, quoted in some messages (`not`, `contains`).
    fileprivate(set) var source: JSONValue = .bool(true)
    /// A boolean schema: `true` accepts everything, `false` nothing.
    fileprivate(set) var constant: Bool?
    fileprivate(set) var ref: Int?

    fileprivate(set) var types: SchemaTypes?
    /// The names in `type`, in the schema's order, for messages.
    fileprivate(set) var typeNames: [String] = []
    fileprivate(set) var enumValues: SchemaValueSet?
    fileprivate(set) var constValue: JSONValue?

    fileprivate(set) var minimum: Double?
    fileprivate(set) var maximum: Double?
    fileprivate(set) var exclusiveMinimum: Double?
    fileprivate(set) var exclusiveMaximum: Double?
    fileprivate(set) var multipleOf: Double?

    fileprivate(set) var minLength: Int?
    fileprivate(set) var maxLength: Int?
    fileprivate(set) var pattern: SchemaPattern?

    fileprivate(set) var prefixItems: [Int] = []
    fileprivate(set) var items: Int?
    fileprivate(set) var contains: Int?
    fileprivate(set) var minContains: Int?
    fileprivate(set) var maxContains: Int?
    fileprivate(set) var minItems: Int?
    fileprivate(set) var maxItems: Int?
    fileprivate(set) var uniqueItems = false

    fileprivate(set) var properties: [(name: String, node: Int)] = []
    /// Property name to positions in `properties`; a hit is confirmed by comparing scalars, since
    /// String equality (and so hashing) treats canonically equivalent strings as equal.
    fileprivate(set) var propertyLookup: [String: [Int]] = [:]
    fileprivate(set) var patternProperties: [(pattern: SchemaPattern, node: Int)] = []
    fileprivate(set) var additionalProperties: Int?
    fileprivate(set) var propertyNames: Int?
    fileprivate(set) var required: [String] = []
    fileprivate(set) var dependentRequired: [(name: String, requires: [String])] = []
    fileprivate(set) var minProperties: Int?
    fileprivate(set) var maxProperties: Int?

    fileprivate(set) var allOf: [Int] = []
    fileprivate(set) var anyOf: [Int] = []
    fileprivate(set) var oneOf: [Int] = []
    fileprivate(set) var not: Int?
    fileprivate(set) var ifSchema: Int?
    fileprivate(set) var thenSchema: Int?
    fileprivate(set) var elseSchema: Int?

    /// Whether any keyword applies subschemas to an array's items.
    fileprivate(set) var appliesToItems = false
    /// Whether any keyword applies subschemas to an object's members or names.
    fileprivate(set) var appliesToMembers = false
    /// Whether any of allOf, anyOf, oneOf, not, if applies.
    fileprivate(set) var appliesInPlace = false
    /// Whether any keyword reads a whole string (length, pattern, enum, const), for the cost of checking.
    fileprivate(set) var checksStrings = false
    /// Steps that comparing an array or object with `const` and `enum` may take: the values compared
    /// with, in JSON values (a large enum: its longest encoding, in 16-byte units).
    fileprivate(set) var comparisonCost = 0
}

// MARK: - Compiling

final class JSONSchemaCompiler {
    /// JSON Schema keywords that assert or apply subschemas but are not implemented here; each use is
    /// listed so the caller can say it was not checked. `additionalItems` and `dependencies` are the
    /// pre-2020 spellings, listed because whoever wrote them expects them to be checked.
    static let unsupportedKeywords: Set<String> = [
        "format", "unevaluatedProperties", "unevaluatedItems", "dependentSchemas", "$dynamicRef",
        "$recursiveRef", "additionalItems", "dependencies",
    ]
    /// Most subschemas a schema may have. Real schemas have hundreds; a hostile one (a template from a
    /// cloned project) could otherwise make compiling take gigabytes.
    static let maxNodes = 20_000
    /// Most entries in `unsupportedKeywords`, before a final "and N more".
    static let maxListedUnsupported = 20
    /// Longest location shown in an `unsupportedKeywords` entry, in characters; longer ones keep their
    /// start and end around "…".
    static let maxListedPathLength = 120

    let document: JSONValue
    /// `unsupportedKeywords`' entries in document order, at most `maxListedUnsupported` and then
    /// "and N more"; set by `compile()`.
    private(set) var unsupported: [String] = []
    private var nodes: [SchemaNode] = []
    /// The location of each node.
    private var nodeLocation: [Int] = []
    /// What each node holds in document order: its unsupported keywords and the subschemas first reached
    /// through it, so that listing unsupported keywords needs no sort key per node (which, as a path from
    /// the root, would make a deep schema's memory grow with the square of its depth).
    private var contents: [[Content]] = []
    private var unsupportedCount = 0
    /// Nodes first reached through a `$ref` rather than a keyword, in the order they were reached.
    private var lateNodes: [Int] = []
    /// Schemas with a node but not yet compiled. A work list rather than recursion, so that no nesting
    /// depth can exhaust the stack.
    private var work: [Work] = []

    /// Locations in the document, as a tree of steps from the root (location 0) so each costs the same
    /// however deep it is: the parent and last step of each, and the location for a (parent, step).
    private var locationParent: [Int] = [-1]
    private var locationStep: [JSONPathComponent] = [.index(0)]
    private var locationIndex: [LocationKey: Int] = [:]
    /// The node compiled for each location, so each location compiles once and `$ref` finds it.
    private var nodeAt: [Int: Int] = [:]
    /// Absolute URI (without fragment) of each schema resource to its location; "" is the document.
    private var resources: [String: Int] = ["": 0]
    /// The schema at each resource's location.
    private var resourceSchemas: [Int: JSONValue]
    /// "uri#name" for `$anchor` and `$dynamicAnchor`.
    private var anchors: [String: Int] = [:]
    private var pendingRefs: [PendingRef] = []

    private enum Content {
        case node(Int)
        case unsupported(String)
    }

    /// A step from a location, keyed by code points: String equality (and so hashing) treats canonically
    /// equivalent property names as one, which JSON does not.
    private struct LocationKey: Hashable {
        var parent: Int
        var key: [UInt8]?
        var index: Int
    }

    private struct PendingRef {
        var node: Int
        var ref: String
        var base: String
        var resource: Int
        var location: Int
    }

    /// A schema to compile into node `index`.
    private struct Work {
        var index: Int
        var value: JSONValue
        var location: Int
        var base: String
        var resource: Int
    }

    init(document: JSONValue) {
        self.document = document
        resourceSchemas = [0: document]
    }

    func compile() throws(JSONSchemaError) -> SchemaProgram {
        let root = try schema(document, at: 0, base: "", resource: 0, parent: nil)
        try drain()
        // Resolving a reference may reach a location no keyword did, which may hold references.
        var next = 0
        while next < pendingRefs.count {
            let pending = pendingRefs[next]
            next += 1
            nodes[pending.node].ref = try resolve(pending)
            try drain()
        }
        unsupported = listUnsupported(from: [root] + lateNodes)
        return SchemaProgram(nodes: nodes, root: root)
    }

    // MARK: Locations

    private func location(_ parent: Int, _ step: JSONPathComponent) -> Int {
        let key: LocationKey
        switch step {
        case let .key(k): key = LocationKey(parent: parent, key: Array(k.utf8), index: 0)
        case let .index(i): key = LocationKey(parent: parent, key: nil, index: i)
        }
        if let existing = locationIndex[key] { return existing }
        let id = locationParent.count
        locationParent.append(parent)
        locationStep.append(step)
        locationIndex[key] = id
        return id
    }

    private func location(_ parent: Int, _ steps: [JSONPathComponent]) -> Int {
        var id = parent
        for step in steps { id = location(id, step) }
        return id
    }

    /// The steps from the root to `location`, built only for messages.
    private func steps(to location: Int) -> [JSONPathComponent] {
        var steps: [JSONPathComponent] = []
        var id = location
        while id > 0 {
            steps.append(locationStep[id])
            id = locationParent[id]
        }
        return steps.reversed()
    }

    private func path(_ location: Int) -> String { SchemaText.path(steps(to: location)) }

    // MARK: Nodes

    /// The node for the schema at `location`, made and queued for compiling on first sight; `parent` is
    /// the node whose keyword reached it (nil for the root and `$ref` targets).
    private func schema(_ value: JSONValue, at location: Int, base: String, resource: Int, parent: Int?) throws(JSONSchemaError) -> Int {
        if let existing = nodeAt[location] { return existing }
        guard nodes.count < Self.maxNodes else { throw JSONSchemaError("the schema has more than \(Self.maxNodes) subschemas") }
        let index = nodes.count
        nodes.append(SchemaNode())
        nodeLocation.append(location)
        contents.append([])
        nodeAt[location] = index
        if let parent { contents[parent].append(.node(index)) } else if index > 0 { lateNodes.append(index) }
        work.append(Work(index: index, value: value, location: location, base: base, resource: resource))
        return index
    }

    private func drain() throws(JSONSchemaError) {
        while let next = work.popLast() { try compile(next) }
    }

    private func compile(_ work: Work) throws(JSONSchemaError) {
        let index = work.index
        let node = nodes[index]
        let value = work.value
        let location = work.location
        node.source = value
        switch value {
        case let .bool(b):
            node.constant = b
            return
        case .object:
            break
        default:
            throw JSONSchemaError("the schema at \(path(location)) must be an object or a boolean, not \(SchemaText.brief(value))")
        }
        guard case let .object(members) = value else { return }

        var base = work.base
        var resource = work.resource
        if case let .string(id)? = value["$id"] {
            if id.hasPrefix("#") {
                // Draft-07's spelling of an anchor ("$id": "#name"); it names no new resource.
                if id.count > 1 { anchors[base + id] = index }
            } else {
                base = Self.resolveURI(id, against: base)
                resource = location
                resources[base] = location
                resourceSchemas[location] = value
            }
        }
        for anchorKeyword in ["$anchor", "$dynamicAnchor"] {
            if case let .string(name)? = value[anchorKeyword] { anchors[base + "#" + name] = index }
        }

        func subschema(_ value: JSONValue, _ steps: JSONPathComponent...) throws(JSONSchemaError) -> Int {
            try schema(value, at: self.location(location, steps), base: base, resource: resource, parent: index)
        }
        func fail(_ keyword: String, _ requirement: String, _ found: JSONValue) -> JSONSchemaError {
            JSONSchemaError("\(keyword) at \(path(location)) must be \(requirement), not \(SchemaText.brief(found))")
        }
        func count(_ keyword: String, _ value: JSONValue) throws(JSONSchemaError) -> Int {
            guard let n = value.int, n >= 0 else { throw fail(keyword, "a non-negative integer", value) }
            return n
        }
        func number(_ keyword: String, _ value: JSONValue) throws(JSONSchemaError) -> Double {
            guard case let .number(n) = value, n.isFinite else { throw fail(keyword, "a number", value) }
            return n
        }
        func strings(_ keyword: String, _ value: JSONValue) throws(JSONSchemaError) -> [String] {
            guard case let .array(items) = value else { throw fail(keyword, "an array of strings", value) }
            var names: [String] = []
            for item in items {
                guard case let .string(s) = item else { throw fail(keyword, "an array of strings", value) }
                names.append(s)
            }
            return names
        }
        func schemaObject(_ keyword: String, _ value: JSONValue) throws(JSONSchemaError) -> [(String, JSONValue)] {
            guard case let .object(entries) = value else { throw fail(keyword, "an object", value) }
            return entries
        }
        func schemaList(_ keyword: String, _ value: JSONValue) throws(JSONSchemaError) -> [Int] {
            guard case let .array(items) = value else { throw fail(keyword, "an array of schemas", value) }
            var list: [Int] = []
            for (i, item) in items.enumerated() { list.append(try subschema(item, .key(keyword), .index(i))) }
            return list
        }
        func pattern(_ source: String, in keyword: String) throws(JSONSchemaError) -> SchemaPattern {
            do {
                return SchemaPattern(regex: try NSRegularExpression(pattern: Self.icuPattern(source)), source: source)
            } catch {
                throw JSONSchemaError("invalid regular expression \(SchemaText.quoted(source)) in \(keyword) at \(path(location))")
            }
        }

        for (keyword, value) in members {
            switch keyword {
            case "$ref":
                guard case let .string(ref) = value else { throw fail(keyword, "a string", value) }
                pendingRefs.append(PendingRef(node: index, ref: ref, base: base, resource: resource, location: location))
            case "type":
                (node.types, node.typeNames) = try Self.types(value, fail: fail)
            case "enum":
                guard case let .array(values) = value else { throw fail(keyword, "an array", value) }
                node.enumValues = SchemaValueSet(values)
            case "const":
                node.constValue = value
            case "minimum": node.minimum = try number(keyword, value)
            case "maximum": node.maximum = try number(keyword, value)
            case "exclusiveMinimum": node.exclusiveMinimum = try number(keyword, value)
            case "exclusiveMaximum": node.exclusiveMaximum = try number(keyword, value)
            case "multipleOf":
                let divisor = try number(keyword, value)
                guard divisor > 0 else { throw fail(keyword, "a number greater than 0", value) }
                node.multipleOf = divisor
            case "minLength": node.minLength = try count(keyword, value)
            case "maxLength": node.maxLength = try count(keyword, value)
            case "pattern":
                guard case let .string(source) = value else { throw fail(keyword, "a string", value) }
                node.pattern = try pattern(source, in: keyword)
            case "prefixItems": node.prefixItems = try schemaList(keyword, value)
            case "items":
                if case .array = value {
                    throw fail(keyword, "a schema (in draft 2020-12 a list of schemas by position is prefixItems)", value)
                }
                node.items = try subschema(value, .key(keyword))
            case "contains": node.contains = try subschema(value, .key(keyword))
            case "minContains": node.minContains = try count(keyword, value)
            case "maxContains": node.maxContains = try count(keyword, value)
            case "minItems": node.minItems = try count(keyword, value)
            case "maxItems": node.maxItems = try count(keyword, value)
            case "uniqueItems":
                guard case let .bool(unique) = value else { throw fail(keyword, "true or false", value) }
                node.uniqueItems = unique
            case "properties":
                for (name, schema) in try schemaObject(keyword, value) {
                    node.propertyLookup[name, default: []].append(node.properties.count)
                    node.properties.append((name, try subschema(schema, .key(keyword), .key(name))))
                }
            case "patternProperties":
                for (source, schema) in try schemaObject(keyword, value) {
                    node.patternProperties.append((try pattern(source, in: keyword), try subschema(schema, .key(keyword), .key(source))))
                }
            case "additionalProperties": node.additionalProperties = try subschema(value, .key(keyword))
            case "propertyNames": node.propertyNames = try subschema(value, .key(keyword))
            case "required": node.required = try strings(keyword, value)
            case "dependentRequired":
                for (name, list) in try schemaObject(keyword, value) {
                    node.dependentRequired.append((name, try strings("\(keyword) \(SchemaText.quoted(name))", list)))
                }
            case "minProperties": node.minProperties = try count(keyword, value)
            case "maxProperties": node.maxProperties = try count(keyword, value)
            case "allOf": node.allOf = try schemaList(keyword, value)
            case "anyOf": node.anyOf = try schemaList(keyword, value)
            case "oneOf": node.oneOf = try schemaList(keyword, value)
            case "not": node.not = try subschema(value, .key(keyword))
            case "if": node.ifSchema = try subschema(value, .key(keyword))
            case "then": node.thenSchema = try subschema(value, .key(keyword))
            case "else": node.elseSchema = try subschema(value, .key(keyword))
            case "$defs", "definitions":
                // Compiled now so their mistakes and unsupported keywords show even when no $ref uses them.
                // `definitions` is the pre-2020 spelling, still what many generators write.
                guard case let .object(definitions) = value else {
                    if keyword == "definitions" { continue }
                    throw fail(keyword, "an object", value)
                }
                for (name, schema) in definitions { _ = try subschema(schema, .key(keyword), .key(name)) }
            default:
                if Self.unsupportedKeywords.contains(keyword) {
                    contents[index].append(.unsupported(keyword))
                    unsupportedCount += 1
                }
            }
        }
        node.appliesToItems = !node.prefixItems.isEmpty || node.items != nil || node.contains != nil
        node.appliesToMembers = !node.properties.isEmpty || !node.patternProperties.isEmpty
            || node.additionalProperties != nil || node.propertyNames != nil
        node.appliesInPlace = !node.allOf.isEmpty || !node.anyOf.isEmpty || !node.oneOf.isEmpty || node.not != nil || node.ifSchema != nil
        node.checksStrings = node.minLength != nil || node.maxLength != nil || node.pattern != nil
            || node.enumValues != nil || node.constValue != nil
        node.comparisonCost = (node.constValue.map(Self.size) ?? 0) + (node.enumValues?.comparisonCost ?? 0)
    }

    /// How many JSON values `value` holds, itself included (without recursion).
    static func size(_ value: JSONValue) -> Int {
        var count = 0
        var pending = [value]
        while let next = pending.popLast() {
            count += 1
            switch next {
            case let .array(items): pending.append(contentsOf: items)
            case let .object(members): pending.append(contentsOf: members.lazy.map(\.1))
            default: break
            }
        }
        return count
    }

    /// The first `maxListedUnsupported` unsupported keywords in document order (a walk of the nodes'
    /// contents from `roots`), each as "keyword at location", then "and N more".
    private func listUnsupported(from roots: [Int]) -> [String] {
        guard unsupportedCount > 0 else { return [] }
        var listed: [String] = []
        var stack: [(node: Int, next: Int)] = roots.reversed().map { ($0, 0) }
        walk: while var top = stack.popLast() {
            while top.next < contents[top.node].count {
                let content = contents[top.node][top.next]
                top.next += 1
                switch content {
                case let .unsupported(keyword):
                    guard listed.count < Self.maxListedUnsupported else { break walk }
                    listed.append("\(keyword) at \(Self.shortened(path(nodeLocation[top.node])))")
                case let .node(child):
                    stack.append(top)
                    stack.append((child, 0))
                    continue walk
                }
            }
        }
        if unsupportedCount > listed.count { listed.append("and \(unsupportedCount - listed.count) more") }
        return listed
    }

    /// `text` cut to about `maxListedPathLength` characters by replacing its middle with "…".
    static func shortened(_ text: String) -> String {
        guard text.count > maxListedPathLength else { return text }
        let head = maxListedPathLength / 3
        return String(text.prefix(head)) + "…" + String(text.suffix(maxListedPathLength - head - 1))
    }

    private static func types(_ value: JSONValue, fail: (String, String, JSONValue) -> JSONSchemaError) throws(JSONSchemaError) -> (SchemaTypes, [String]) {
        let requirement = "a type name (null, boolean, object, array, number, string, integer) or an array of them"
        let names: [JSONValue]
        switch value {
        case .string: names = [value]
        case let .array(items): names = items
        default: throw fail("type", requirement, value)
        }
        var types = SchemaTypes(rawValue: 0)
        var typeNames: [String] = []
        for name in names {
            guard case let .string(s) = name, let type = SchemaTypes.named.first(where: { $0.0 == s })?.1 else {
                throw fail("type", requirement, value)
            }
            if !types.contains(type) { typeNames.append(s) }
            types.formUnion(type)
        }
        return (types, typeNames)
    }

    // MARK: References

    private func resolve(_ pending: PendingRef) throws(JSONSchemaError) -> Int {
        let ref = pending.ref
        func unresolved(_ why: String) -> JSONSchemaError {
            JSONSchemaError("$ref \(SchemaText.quoted(ref)) at \(path(pending.location)) does not resolve: \(why)")
        }
        let hash = ref.firstIndex(of: "#")
        let uri = hash.map { String(ref[..<$0]) } ?? ref
        let rawFragment = hash.map { String(ref[ref.index(after: $0)...]) } ?? ""

        var resource = pending.resource
        var base = pending.base
        if !uri.isEmpty {
            let absolute = Self.resolveURI(uri, against: pending.base)
            guard let location = resources[absolute] else {
                throw unresolved("\(SchemaText.quoted(absolute)) is not part of this schema (remote references are not supported)")
            }
            resource = location
            base = absolute
        }
        guard let fragment = rawFragment.removingPercentEncoding else { throw unresolved("bad percent-encoding") }

        if !fragment.isEmpty, !fragment.hasPrefix("/") {
            guard let node = anchors[base + "#" + fragment] else { throw unresolved("no $anchor named \(SchemaText.quoted(fragment))") }
            return node
        }
        guard var value = resourceSchemas[resource] else { throw unresolved("the schema resource is missing") }
        var location = resource
        if !fragment.isEmpty {
            let tokens = fragment.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
                .map { $0.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~") }
            for token in tokens {
                switch value {
                case let .object(members):
                    guard let member = members.first(where: { $0.0.unicodeScalars.elementsEqual(token.unicodeScalars) }) else {
                        throw unresolved("no member \(SchemaText.quoted(token)) at \(path(location))")
                    }
                    value = member.1
                    location = self.location(location, .key(token))
                case let .array(items):
                    guard token.allSatisfy(\.isASCII), token.allSatisfy(\.isNumber), token == "0" || !token.hasPrefix("0"),
                        let i = Int(token), items.indices.contains(i)
                    else { throw unresolved("no item \(SchemaText.quoted(token)) at \(path(location))") }
                    value = items[i]
                    location = self.location(location, .index(i))
                default:
                    throw unresolved("\(path(location)) is neither an object nor an array")
                }
            }
        }
        // A location no keyword reached (or one already compiled): listed after everything else in document order.
        return try schema(value, at: location, base: base, resource: resource, parent: nil)
    }

    /// `reference` resolved against `base` as RFC 3986 §5.2 says, without its fragment. By hand rather
    /// than with URL(string:relativeTo:), which differs between platforms for bases such as URNs and
    /// scheme-less paths ("/schemas/base.json").
    static func resolveURI(_ reference: String, against base: String) -> String {
        let r = URIParts(String(reference.prefix { $0 != "#" }))
        if r.scheme == nil, r.authority == nil, r.path.isEmpty, r.query == nil { return String(base.prefix { $0 != "#" }) }
        if r.scheme != nil || base.isEmpty { return URIParts(r, path: removeDotSegments(r.path)).text }
        let b = URIParts(String(base.prefix { $0 != "#" }))
        var t = URIParts(b, path: b.path)
        t.query = r.query
        if r.authority != nil {
            t.authority = r.authority
            t.path = removeDotSegments(r.path)
        } else if r.path.isEmpty {
            t.query = r.query ?? b.query
        } else if r.path.hasPrefix("/") {
            t.path = removeDotSegments(r.path)
        } else if b.authority != nil, b.path.isEmpty {
            t.path = removeDotSegments("/" + r.path)
        } else {
            let directory = b.path.lastIndex(of: "/").map { String(b.path[...$0]) } ?? ""
            t.path = removeDotSegments(directory + r.path)
        }
        return t.text
    }

    /// A URI without its fragment, in the parts RFC 3986 resolves.
    struct URIParts {
        var scheme: String?
        var authority: String?
        var path: String
        var query: String?

        init(_ uri: String) {
            var rest = Substring(uri)
            if let colon = rest.firstIndex(of: ":"), let first = rest.first, first.isASCII, first.isLetter,
                rest[..<colon].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) })
            {
                scheme = String(rest[..<colon])
                rest = rest[rest.index(after: colon)...]
            }
            if rest.hasPrefix("//") {
                let after = rest.dropFirst(2)
                let end = after.firstIndex { $0 == "/" || $0 == "?" } ?? after.endIndex
                authority = String(after[..<end])
                rest = after[end...]
            }
            if let mark = rest.firstIndex(of: "?") {
                query = String(rest[rest.index(after: mark)...])
                rest = rest[..<mark]
            }
            path = String(rest)
        }

        init(_ other: URIParts, path: String) {
            self = other
            self.path = path
        }

        var text: String {
            var out = scheme.map { $0 + ":" } ?? ""
            if let authority { out += "//" + authority }
            out += path
            if let query { out += "?" + query }
            return out
        }
    }

    static func removeDotSegments(_ path: String) -> String {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        var output: [Substring] = []
        for (i, segment) in segments.enumerated() {
            let last = i == segments.count - 1
            if segment == "." || segment == ".." {
                if segment == "..", output.count > 1 || (output.count == 1 && !output[0].isEmpty) { output.removeLast() }
                if last { output.append("") }
                continue
            }
            output.append(segment)
        }
        return output.joined(separator: "/")
    }

    // MARK: Regular expressions

    /// Translates an ECMA-262 pattern to ICU's dialect where the two differ: `\d` and `\w` are ASCII
    /// only, `$` matches only at the very end (not before a final newline), `\u{…}` is written `\x{…}`,
    /// `[` inside a class is a literal, `[]` and `[^]` match nothing and any character, and a `{` that
    /// does not start a quantifier is a literal.
    static func icuPattern(_ ecma: String) -> String {
        let s = Array(ecma.unicodeScalars)
        var out = String.UnicodeScalarView()
        func add(_ text: String) { out.append(contentsOf: text.unicodeScalars) }
        var inClass = false
        var i = 0
        while i < s.count {
            let c = s[i]
            switch c {
            case "\\" where i + 1 < s.count:
                let e = s[i + 1]
                i += 2
                switch e {
                case "d": add(inClass ? "0-9" : "[0-9]")
                case "D": add("[^0-9]")
                case "w": add(inClass ? "a-zA-Z0-9_" : "[a-zA-Z0-9_]")
                case "W": add("[^a-zA-Z0-9_]")
                case "0" where i >= s.count || !("0"..."9").contains(s[i]):
                    add("\\x{0}")
                case "u" where i < s.count && s[i] == "{":
                    if let close = s[i...].firstIndex(of: "}") {
                        add("\\x{")
                        out.append(contentsOf: s[(i + 1)..<close])
                        add("}")
                        i = close + 1
                    } else {
                        add("\\u")
                    }
                case "p" where i < s.count && s[i] == "{", "P" where i < s.count && s[i] == "{":
                    // A property escape such as \p{Letter}: copied whole, so its brace is no literal.
                    out.append("\\")
                    out.append(e)
                    let close = s[i...].firstIndex(of: "}") ?? s.count - 1
                    out.append(contentsOf: s[i...close])
                    i = close + 1
                default:
                    out.append("\\")
                    out.append(e)
                }
                continue
            case "[" where !inClass:
                if i + 1 < s.count, s[i + 1] == "]" {
                    add("(?!)")
                    i += 2
                    continue
                }
                if i + 2 < s.count, s[i + 1] == "^", s[i + 2] == "]" {
                    add("[\\s\\S]")
                    i += 3
                    continue
                }
                inClass = true
                out.append("[")
                if i + 1 < s.count, s[i + 1] == "^" {
                    out.append("^")
                    i += 1
                }
            case "[":  // inside a class: a literal in ECMA-262, a nested set in ICU
                add("\\[")
            case "&" where inClass:  // ICU reads `&&` in a class as intersection
                add("\\&")
            case "]" where inClass:
                inClass = false
                out.append(c)
            case "$" where !inClass:
                add("\\z")
            case "{" where !inClass:
                var j = i + 1
                var digits = 0
                while j < s.count, ("0"..."9").contains(s[j]) { j += 1; digits += 1 }
                if digits > 0, j < s.count, s[j] == "," {
                    j += 1
                    while j < s.count, ("0"..."9").contains(s[j]) { j += 1 }
                }
                if digits > 0, j < s.count, s[j] == "}" {
                    out.append(contentsOf: s[i...j])
                    i = j + 1
                    continue
                }
                add("\\{")
            case "}" where !inClass:
                add("\\}")
            default:
                out.append(c)
            }
            i += 1
        }
        return String(out)
    }
}

extension Double {
    /// True for finite numbers without a fractional part; draft 2020-12 counts 1.0 as an integer.
    var isWholeNumber: Bool { isFinite && self == rounded(.towardZero) }
}
