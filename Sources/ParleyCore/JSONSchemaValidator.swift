import Foundation

/// Checks one value against a compiled schema. A fresh evaluator per call keeps `JSONSchema` a
/// Sendable value that any number of tasks can use at once.
///
/// Each check runs in one of two modes: `collect` gathers every violation with its message, the other
/// stops at the first failure and builds no text (for `not`, `if`, `contains`, and `isValid`).
///
/// The functions that recurse (`check`, `checkItems`, `checkMembers`, `checkApplicators`) keep few
/// locals and build no text themselves: messages are made in separate `report…` functions, so a deeply
/// nested value costs little stack per level, even unoptimised and on a 512 KB thread.
final class SchemaEvaluator {
    /// `$ref`s being followed at once. A cycle that never moves into the value ({"$ref": "#"}) ends here.
    static let maxRefDepth = 64
    /// Subschemas being applied at once, so no schema or value can exhaust the stack: a level takes
    /// about 2 KB unoptimised (under 1 KB optimised), and a thread may have as little as 512 KB. A
    /// recursive schema meets `maxRefDepth` first; real schemas and answers are nowhere near either.
    static let maxDepth = 200

    private let nodes: [SchemaNode]
    private let root: Int
    /// The instance location being checked, rendered only when a violation is reported.
    private var path: [JSONPathComponent] = []
    private var found: [JSONSchemaViolation] = []
    private var refDepth = 0
    private var depth = 0
    /// Set when a limit is hit: every check then fails at once and nothing more is reported.
    private var stopped: JSONSchemaViolation?

    init(_ program: SchemaProgram) {
        nodes = program.nodes
        root = program.root
    }

    func violations(of instance: JSONValue) -> [JSONSchemaViolation] {
        _ = check(root, instance, collect: true)
        if let stopped { found.append(stopped) }
        return found
    }

    func isValid(_ instance: JSONValue) -> Bool {
        check(root, instance, collect: false) && stopped == nil
    }

    // MARK: Recursion

    private func check(_ index: Int, _ value: JSONValue, collect: Bool) -> Bool {
        if stopped != nil { return false }
        let node = nodes[index]
        if let constant = node.constant {
            if !constant, collect { report(notAllowed: value) }
            return constant
        }
        guard depth < Self.maxDepth else {
            stopTooDeep()
            return false
        }
        depth += 1
        defer { depth -= 1 }

        var valid = true
        if node.ref != nil {
            valid = checkRef(node, value, collect: collect)
            if !valid, !collect { return false }
        }
        if !checkAssertions(node, value, collect: collect) {
            if !collect { return false }
            valid = false
        }
        if node.appliesToItems || node.appliesToMembers, !checkChildren(node, value, collect: collect) {
            if !collect { return false }
            valid = false
        }
        if node.appliesInPlace, !checkApplicators(node, value, collect: collect) {
            if !collect { return false }
            valid = false
        }
        return valid && stopped == nil
    }

    private func checkRef(_ node: SchemaNode, _ value: JSONValue, collect: Bool) -> Bool {
        guard refDepth < Self.maxRefDepth else {
            stopTooDeep(references: true)
            return false
        }
        refDepth += 1
        defer { refDepth -= 1 }
        return check(node.ref!, value, collect: collect)
    }

    private func checkChildren(_ node: SchemaNode, _ value: JSONValue, collect: Bool) -> Bool {
        switch value {
        case let .array(items): return checkItems(node, items, collect: collect)
        case let .object(members): return checkMembers(node, members, collect: collect)
        default: return true
        }
    }

    /// Checks `value` at `path` + `step`.
    private func check(_ index: Int, _ value: JSONValue, at step: JSONPathComponent, collect: Bool) -> Bool {
        path.append(step)
        let ok = check(index, value, collect: collect)
        path.removeLast()
        return ok
    }

    private func checkItems(_ node: SchemaNode, _ items: [JSONValue], collect: Bool) -> Bool {
        var valid = true
        var i = 0
        while i < node.prefixItems.count, i < items.count {
            if !check(node.prefixItems[i], items[i], at: .index(i), collect: collect) {
                if !collect { return false }
                valid = false
            }
            i += 1
        }
        if let schema = node.items, items.count > i {
            if nodes[schema].constant == false {
                // One violation for the array rather than one "not allowed" per extra item.
                if !collect { return false }
                valid = false
                report(tooManyItems: items.count, allowed: i)
            } else {
                while i < items.count {
                    if !check(schema, items[i], at: .index(i), collect: collect) {
                        if !collect { return false }
                        valid = false
                    }
                    i += 1
                }
            }
        }
        if node.contains != nil, !checkContains(node, items, collect: collect) {
            if !collect { return false }
            valid = false
        }
        return valid
    }

    private func checkContains(_ node: SchemaNode, _ items: [JSONValue], collect: Bool) -> Bool {
        guard let schema = node.contains else { return true }
        let minimum = node.minContains ?? 1
        var matched = 0
        for (i, item) in items.enumerated() {
            if check(schema, item, at: .index(i), collect: false) { matched += 1 }
            if stopped != nil { return false }
            if node.maxContains == nil, matched >= minimum { break }
        }
        if matched < minimum || matched > node.maxContains ?? Int.max {
            if collect { report(contains: schema, matched: matched, minimum: minimum, maximum: node.maxContains) }
            return false
        }
        return true
    }

    private func checkMembers(_ node: SchemaNode, _ members: [(String, JSONValue)], collect: Bool) -> Bool {
        var valid = true
        if let names = node.propertyNames {
            for (key, _) in members {
                let saved = found
                found = []
                let ok = check(names, .string(key), collect: collect)
                let problems = found
                found = saved
                if !ok {
                    if !collect { return false }
                    valid = false
                    report(invalidName: problems)
                }
            }
        }
        guard !node.properties.isEmpty || !node.patternProperties.isEmpty || node.additionalProperties != nil else { return valid }
        for (key, member) in members {
            var matched = false
            if let positions = node.propertyLookup[key] {
                for position in positions where node.properties[position].name.unicodeScalars.elementsEqual(key.unicodeScalars) {
                    matched = true
                    if !check(node.properties[position].node, key, member, kind: .named, of: node, collect: collect) {
                        if !collect { return false }
                        valid = false
                    }
                }
            }
            for (pattern, schema) in node.patternProperties where pattern.matches(key) {
                matched = true
                if !check(schema, key, member, kind: .named, of: node, collect: collect) {
                    if !collect { return false }
                    valid = false
                }
            }
            if !matched, let schema = node.additionalProperties, !check(schema, key, member, kind: .additional, of: node, collect: collect) {
                if !collect { return false }
                valid = false
            }
        }
        return valid
    }

    private enum MemberKind { case named, additional }

    /// Checks one member against `schema`. A `false` schema is reported once, at the object
    /// ("unexpected property \"x\""), rather than as a rejected value at the member.
    private func check(_ schema: Int, _ key: String, _ member: JSONValue, kind: MemberKind, of node: SchemaNode, collect: Bool) -> Bool {
        if nodes[schema].constant == false {
            if collect { report(forbidden: key, additional: kind == .additional, in: node) }
            return false
        }
        return check(schema, member, at: .key(key), collect: collect)
    }

    private func checkApplicators(_ node: SchemaNode, _ value: JSONValue, collect: Bool) -> Bool {
        var valid = true
        for schema in node.allOf where !check(schema, value, collect: collect) {
            if !collect { return false }
            valid = false
        }
        if !node.anyOf.isEmpty, !checkAlternatives(node.anyOf, value, exactlyOne: false, collect: collect) {
            if !collect { return false }
            valid = false
        }
        if !node.oneOf.isEmpty, !checkAlternatives(node.oneOf, value, exactlyOne: true, collect: collect) {
            if !collect { return false }
            valid = false
        }
        if let schema = node.not, check(schema, value, collect: false), stopped == nil {
            if !collect { return false }
            valid = false
            report(value, matchesNot: schema)
        }
        if let condition = node.ifSchema {
            let branch = check(condition, value, collect: false) ? node.thenSchema : node.elseSchema
            if let branch, !check(branch, value, collect: collect) {
                if !collect { return false }
                valid = false
            }
        }
        return valid
    }

    /// anyOf (at least one alternative matches) and oneOf (exactly one does).
    private func checkAlternatives(_ schemas: [Int], _ value: JSONValue, exactlyOne: Bool, collect: Bool) -> Bool {
        var failures: [(Int, [JSONSchemaViolation])] = []
        var matches: [Int] = []
        for (i, schema) in schemas.enumerated() {
            let saved = found
            found = []
            let ok = check(schema, value, collect: collect)
            let problems = found
            found = saved
            if ok {
                matches.append(i + 1)
                if !exactlyOne || (!collect && matches.count > 1) { break }
            } else {
                failures.append((i + 1, problems))
            }
        }
        if matches.isEmpty {
            if collect { report(value, matchesNoneOf: failures, keyword: exactlyOne ? "oneOf" : "anyOf") }
            return false
        }
        if exactlyOne, matches.count > 1 {
            if collect { report(value, matchesSeveralOf: matches) }
            return false
        }
        return true
    }

    // MARK: Assertions (no recursion, except equality)

    private func checkAssertions(_ node: SchemaNode, _ value: JSONValue, collect: Bool) -> Bool {
        var valid = true
        func fail(_ message: @autoclosure () -> String) {
            valid = false
            if collect { report(message()) }
        }
        if let types = node.types, !types.matches(value) {
            fail("\(SchemaText.brief(value)) is not of type \(SchemaText.alternatives(node.typeNames))")
            if !collect { return false }
        }
        if let allowed = node.enumValues, !allowed.contains(where: { JSONEquality.equal($0, value) }) {
            fail(allowed.isEmpty
                ? "\(SchemaText.brief(value)) is not allowed (the enum is empty)"
                : "\(SchemaText.brief(value)) is not one of the allowed values \(SchemaText.list(allowed.map(SchemaText.brief)))")
            if !collect { return false }
        }
        if let constant = node.constValue, !JSONEquality.equal(constant, value) {
            fail("\(SchemaText.brief(value)) is not the required value \(SchemaText.brief(constant))")
            if !collect { return false }
        }

        switch value {
        case let .number(n):
            let shown = { SchemaText.number(n) }
            if let limit = node.minimum, n < limit {
                fail("\(shown()) is less than the minimum \(SchemaText.number(limit))")
                if !collect { return false }
            }
            if let limit = node.maximum, n > limit {
                fail("\(shown()) is greater than the maximum \(SchemaText.number(limit))")
                if !collect { return false }
            }
            if let limit = node.exclusiveMinimum, n <= limit {
                fail("\(shown()) is not greater than the exclusive minimum \(SchemaText.number(limit))")
                if !collect { return false }
            }
            if let limit = node.exclusiveMaximum, n >= limit {
                fail("\(shown()) is not less than the exclusive maximum \(SchemaText.number(limit))")
                if !collect { return false }
            }
            if let divisor = node.multipleOf, !Self.isMultiple(n, of: divisor) {
                fail("\(shown()) is not a multiple of \(SchemaText.number(divisor))")
            }

        case let .string(s):
            if node.minLength != nil || node.maxLength != nil {
                // Length is in Unicode code points, as the specification says: "💩" is 1, not 2 (UTF-16) or 4 (bytes).
                let length = s.unicodeScalars.count
                if let limit = node.minLength, length < limit {
                    fail("\(SchemaText.brief(value)) has \(SchemaText.count(length, "character")), fewer than the minimum \(limit)")
                    if !collect { return false }
                }
                if let limit = node.maxLength, length > limit {
                    fail("\(SchemaText.brief(value)) has \(SchemaText.count(length, "character")), more than the maximum \(limit)")
                    if !collect { return false }
                }
            }
            if let pattern = node.pattern, !pattern.matches(s) {
                fail("\(SchemaText.brief(value)) does not match the pattern \(SchemaText.quoted(pattern.source))")
            }

        case let .array(items):
            if let limit = node.minItems, items.count < limit {
                fail("array has \(SchemaText.count(items.count, "item")), fewer than the minimum \(limit)")
                if !collect { return false }
            }
            if let limit = node.maxItems, items.count > limit {
                fail("array has \(SchemaText.count(items.count, "item")), more than the maximum \(limit)")
                if !collect { return false }
            }
            if node.uniqueItems, let (first, second) = JSONEquality.firstDuplicate(items) {
                fail("array items [\(first)] and [\(second)] are both \(SchemaText.brief(items[second])); items must be unique")
            }

        case let .object(members):
            if let limit = node.minProperties, members.count < limit {
                fail("object has \(SchemaText.count(members.count, "property")), fewer than the minimum \(limit)")
                if !collect { return false }
            }
            if let limit = node.maxProperties, members.count > limit {
                fail("object has \(SchemaText.count(members.count, "property")), more than the maximum \(limit)")
                if !collect { return false }
            }
            if !node.required.isEmpty || !node.dependentRequired.isEmpty {
                let keys = MemberKeys(members, lookups: node.required.count + node.dependentRequired.count)
                for name in node.required where !keys.contains(name) {
                    fail("missing required property \(SchemaText.quoted(name))")
                    if !collect { return false }
                }
                for (trigger, needed) in node.dependentRequired where keys.contains(trigger) {
                    for name in needed where !keys.contains(name) {
                        fail("missing property \(SchemaText.quoted(name)), which is required when \(SchemaText.quoted(trigger)) is present")
                        if !collect { return false }
                    }
                }
            }

        case .null, .bool:
            break
        }
        return valid
    }

    /// Whether `x` is a whole multiple of `divisor` (> 0). Whole numbers below 2^53 are checked exactly;
    /// otherwise the quotient must be within a few ulps of a whole number, so binary rounding does not
    /// make 0.0075 fail `multipleOf: 0.0001`. A quotient too large to be finite (1e308 / 0.123456789)
    /// is not a multiple; one beyond 2^53, where every Double is whole, is.
    static func isMultiple(_ x: Double, of divisor: Double) -> Bool {
        guard x.isFinite else { return false }
        if x == 0 { return true }
        let exact = 0x1p53
        if x.isWholeNumber, divisor.isWholeNumber, abs(x) < exact, divisor < exact {
            return x.truncatingRemainder(dividingBy: divisor) == 0
        }
        let quotient = x / divisor
        guard quotient.isFinite else { return false }
        if abs(quotient) >= exact { return true }
        return abs(quotient - quotient.rounded()) <= 4 * quotient.ulp
    }

    // MARK: Reporting (out of line, to keep the recursive frames small)

    @inline(never)
    private func report(_ message: String) {
        guard stopped == nil else { return }
        found.append(JSONSchemaViolation(path: SchemaText.path(path), message: message))
    }

    @inline(never)
    private func stopTooDeep(references: Bool = false) {
        guard stopped == nil else { return }
        let message = references
            ? "schema recursion deeper than \(Self.maxRefDepth)"
            : "schema and value nested deeper than \(Self.maxDepth) levels"
        stopped = JSONSchemaViolation(path: SchemaText.path(path), message: message)
    }

    @inline(never)
    private func report(notAllowed value: JSONValue) {
        report("\(SchemaText.brief(value)) is not allowed here (the schema is false)")
    }

    @inline(never)
    private func report(tooManyItems count: Int, allowed: Int) {
        report(allowed == 0
            ? "array must be empty, but has \(SchemaText.count(count, "item"))"
            : "array has \(SchemaText.count(count, "item")), more than the \(allowed) allowed")
    }

    @inline(never)
    private func report(contains schema: Int, matched: Int, minimum: Int, maximum: Int?) {
        let described = SchemaText.brief(nodes[schema].source)
        if matched == 0, minimum > 0 {
            report("array has no item matching the contains schema \(described)")
        } else if matched < minimum {
            report("array has \(SchemaText.count(matched, "item")) matching the contains schema \(described), fewer than the minimum \(minimum)")
        } else {
            report("array has \(SchemaText.count(matched, "item")) matching the contains schema \(described), more than the maximum \(maximum ?? 0)")
        }
    }

    @inline(never)
    private func report(invalidName problems: [JSONSchemaViolation]) {
        for problem in problems { report("invalid property name: \(problem.message)") }
    }

    @inline(never)
    private func report(forbidden key: String, additional: Bool, in node: SchemaNode) {
        guard additional else {
            report("property \(SchemaText.quoted(key)) is not allowed")
            return
        }
        var message = "unexpected property \(SchemaText.quoted(key))"
        if !node.properties.isEmpty, node.patternProperties.isEmpty {
            message += " (allowed: \(SchemaText.list(node.properties.map { SchemaText.quoted($0.name) }, limit: 10)))"
        }
        report(message)
    }

    @inline(never)
    private func report(_ value: JSONValue, matchesNot schema: Int) {
        report("\(SchemaText.brief(value)) must not match the schema \(SchemaText.brief(nodes[schema].source))")
    }

    @inline(never)
    private func report(_ value: JSONValue, matchesNoneOf failures: [(Int, [JSONSchemaViolation])], keyword: String) {
        report("\(SchemaText.brief(value)) does not match any of the \(keyword) alternatives: \(SchemaText.branches(failures))")
    }

    @inline(never)
    private func report(_ value: JSONValue, matchesSeveralOf matches: [Int]) {
        report("\(SchemaText.brief(value)) matches more than one of the oneOf alternatives (\(SchemaText.alternatives(matches.map(String.init), conjunction: "and"))) but must match exactly one")
    }
}

/// An object's keys, for many lookups: a linear scan for small objects, a set of UTF-8 bytes beyond.
private struct MemberKeys {
    let members: [(String, JSONValue)]
    let set: Set<[UInt8]>?

    init(_ members: [(String, JSONValue)], lookups: Int) {
        self.members = members
        set = members.count > 8 && lookups > 4 ? Set(members.map { Array($0.0.utf8) }) : nil
    }

    func contains(_ name: String) -> Bool {
        if let set { return set.contains(Array(name.utf8)) }
        return members.contains { $0.0.utf8.elementsEqual(name.utf8) }
    }
}

// MARK: - Equality

/// JSON equality as JSON Schema defines it: numbers by value (1 == 1.0), strings by code points (no
/// Unicode normalisation, unlike Swift's String ==), arrays in order, objects regardless of key order.
enum JSONEquality {
    static func equal(_ a: JSONValue, _ b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.number(x), .number(y)): return x == y
        case let (.string(x), .string(y)): return x.utf8.elementsEqual(y.utf8)
        case let (.array(x), .array(y)):
            return x.count == y.count && zip(x, y).allSatisfy { equal($0, $1) }
        case let (.object(x), .object(y)):
            guard x.count == y.count else { return false }
            if x.count > 16 { return canonical(a) == canonical(b) }
            return x.allSatisfy { key, value in
                y.contains { $0.0.utf8.elementsEqual(key.utf8) && equal(value, $0.1) }
            }
        default: return false
        }
    }

    /// The first pair of equal items, by index, in linear time: items are keyed by a canonical encoding.
    static func firstDuplicate(_ items: [JSONValue]) -> (Int, Int)? {
        if items.count < 2 { return nil }
        if items.count <= 8 {
            for j in 1..<items.count {
                for i in 0..<j where equal(items[i], items[j]) { return (i, j) }
            }
            return nil
        }
        var seen: [[UInt8]: Int] = [:]
        for (j, item) in items.enumerated() {
            let key = canonical(item)
            if let i = seen[key] { return (i, j) }
            seen[key] = j
        }
        return nil
    }

    /// Bytes that are equal exactly when the values are JSON-equal: numbers in one spelling, strings
    /// length-prefixed, object members sorted by key.
    static func canonical(_ value: JSONValue) -> [UInt8] {
        var out: [UInt8] = []
        appendCanonical(value, to: &out)
        return out
    }

    private static func appendCanonical(_ value: JSONValue, to out: inout [UInt8]) {
        switch value {
        case .null: out.append(UInt8(ascii: "n"))
        case let .bool(b): out.append(UInt8(ascii: b ? "t" : "f"))
        case let .number(n):
            out.append(UInt8(ascii: "#"))
            out.append(contentsOf: (n == 0 ? "0" : "\(n)").utf8)  // -0 == 0
            out.append(UInt8(ascii: ";"))
        case let .string(s): appendString(s, to: &out)
        case let .array(items):
            out.append(UInt8(ascii: "["))
            for item in items { appendCanonical(item, to: &out) }
            out.append(UInt8(ascii: "]"))
        case let .object(members):
            out.append(UInt8(ascii: "{"))
            for (key, member) in members.sorted(by: { $0.0.utf8.lexicographicallyPrecedes($1.0.utf8) }) {
                appendString(key, to: &out)
                appendCanonical(member, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    private static func appendString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "s"))
        out.append(contentsOf: "\(s.utf8.count):".utf8)
        out.append(contentsOf: s.utf8)
    }
}

// MARK: - Text

/// How values, numbers and locations are written in messages: short, exact, JSON where it can be.
enum SchemaText {
    /// Longest rendering of a value in a message, in characters.
    static let limit = 60

    /// `value` as compact JSON, cut to `limit` characters with "…". Never serialises more of a large
    /// value than it shows.
    static func brief(_ value: JSONValue) -> String {
        var out = ""
        appendBounded(value, to: &out, budget: limit * 4 + 8)
        return cut(out)
    }

    /// A name or pattern in double quotes, escaped as JSON (so control characters cannot reach a terminal).
    static func quoted(_ text: String) -> String {
        brief(.string(text))
    }

    /// A whole number without ".0" ("2", "9007199254740993", "1e+300"); others in the shortest form
    /// that reads back the same ("0.0075").
    static func number(_ n: Double) -> String {
        if n.isWholeNumber, abs(n) < 1e17 { return String(Int64(n)) }
        let text = "\(n)"
        return text.hasSuffix(".0") ? String(text.dropLast(2)) : text
    }

    static func cut(_ text: String) -> String {
        guard text.count > limit else { return text }
        return String(text.prefix(limit - 1)) + "…"
    }

    private static func appendBounded(_ value: JSONValue, to out: inout String, budget: Int) {
        guard out.utf8.count <= budget else { return }
        switch value {
        case let .string(s):
            JSONValue.writeString(String(String.UnicodeScalarView(s.unicodeScalars.prefix(budget))), to: &out)
        case let .array(items):
            out += "["
            for (i, item) in items.enumerated() {
                guard out.utf8.count <= budget else { break }
                if i > 0 { out += "," }
                appendBounded(item, to: &out, budget: budget)
            }
            out += "]"
        case let .object(members):
            out += "{"
            for (i, (key, member)) in members.enumerated() {
                guard out.utf8.count <= budget else { break }
                if i > 0 { out += "," }
                JSONValue.writeString(String(String.UnicodeScalarView(key.unicodeScalars.prefix(budget))), to: &out)
                out += ":"
                appendBounded(member, to: &out, budget: budget)
            }
            out += "}"
        case let .number(n):
            out += number(n)
        default:
            value.write(to: &out)
        }
    }

    /// "$", "$.score", "$.tags[2]", `$["odd key"]`.
    static func path(_ steps: [JSONPathComponent]) -> String {
        var out = "$"
        for step in steps {
            switch step {
            case let .index(i): out += "[\(i)]"
            case let .key(k) where isIdentifier(k): out += "." + k
            case let .key(k):
                out += "["
                JSONValue.writeString(k, to: &out)
                out += "]"
            }
        }
        return out
    }

    /// A JavaScript-style identifier in ASCII: letters, digits, `_` and `$`, not starting with a digit.
    private static func isIdentifier(_ key: String) -> Bool {
        guard let first = key.utf8.first, !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else { return false }
        return key.utf8.allSatisfy {
            $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "$") || isLetter($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0)
        }
    }

    private static func isLetter(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
    }

    /// "1 item", "2 items", "1 property", "3 properties".
    static func count(_ n: Int, _ noun: String) -> String {
        if n == 1 { return "1 \(noun)" }
        return noun.hasSuffix("y") ? "\(n) \(noun.dropLast())ies" : "\(n) \(noun)s"
    }

    /// "a", "a or b", "a, b or c".
    static func alternatives(_ words: [String], conjunction: String = "or") -> String {
        guard words.count > 1 else { return words.first ?? "" }
        return words.dropLast().joined(separator: ", ") + " \(conjunction) " + words[words.count - 1]
    }

    /// `"a", "b", "c"`, at most `limit` entries, then how many more.
    static func list(_ entries: [String], limit: Int = 12) -> String {
        var text = entries.prefix(limit).joined(separator: ", ")
        if entries.count > limit { text += ", … (\(entries.count - limit) more)" }
        return text
    }

    /// Why each alternative (numbered from 1) failed: its first violation, and how many more it had.
    static func branches(_ failures: [(Int, [JSONSchemaViolation])]) -> String {
        var parts: [String] = []
        for (shown, (number, problems)) in failures.enumerated() {
            guard shown < 5 else {
                parts.append("… (\(failures.count - 5) more)")
                break
            }
            guard let first = problems.first else { continue }
            var part = "(\(number)) \(first.description)"
            if part.count > 160 { part = String(part.prefix(159)) + "…" }
            if problems.count > 1 { part += " (and \(problems.count - 1) more)" }
            parts.append(part)
        }
        return parts.isEmpty ? "no alternative matches" : parts.joined(separator: "; ")
    }
}
