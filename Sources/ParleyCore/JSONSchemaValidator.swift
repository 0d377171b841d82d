import Dispatch
import Foundation

/// Checks one value against a compiled schema. A fresh evaluator per call keeps `JSONSchema` a
/// Sendable value that any number of tasks can use at once.
///
/// Each check runs in one of two modes: `collect` gathers violations with their messages, the other
/// stops at the first failure and builds no text (for `not`, `if`, `contains`, `isValid`, and once
/// enough violations have been collected).
///
/// The functions that recurse (`check`, `checkItems`, `checkMembers`, `checkApplicators`) keep few
/// locals and build no text themselves: messages are made in separate `report…` functions, so a deeply
/// nested value costs little stack per level, even unoptimised and on a 512 KB thread.
///
/// Neither the schema nor the value is trusted, so every check ends in bounded time and memory. When a
/// limit is hit, or a regular expression cannot be decided, checking stops and says why in a final
/// violation: it never reports valid for a value it did not finish checking.
final class SchemaEvaluator {
    /// `$ref`s followed one after another without moving into the value. A cycle that never moves into
    /// the value ({"$ref": "#"}) ends here; a recursive schema that follows the value
    /// ({"items": {"$ref": "#"}}) starts counting again at each level and meets `maxDepth` instead.
    static let maxRefDepth = 64
    /// Subschemas being applied at once, so no schema or value can exhaust the stack: a level takes
    /// about 2 KB unoptimised (under 1 KB optimised), and a thread may have as little as 512 KB. A
    /// recursive schema usually applies two subschemas per level of the value (the one holding the
    /// `$ref` and its target), so it follows a value about 100 levels deep; real answers are nowhere near.
    static let maxDepth = 200
    /// Subschemas applied in one check, plus steps for the work within one: a member, a required name,
    /// a value compared or 8 bytes encoded (const, enum, uniqueItems), 64 bytes of string read. Ends
    /// schemas whose work multiplies ($ref fan-out: 2^N applications for N levels
    /// of `allOf` with two `$ref`s each) in under 2 seconds unoptimised, far less optimised.
    static let maxSteps = 2_000_000
    /// Wall-clock limit for one check, for any cost the steps do not count.
    static let maxNanoseconds: UInt64 = 5_000_000_000
    /// Longest one regular expression search may take, and all of them in one check.
    static let patternNanoseconds: UInt64 = 200_000_000
    static let patternBudgetNanoseconds: UInt64 = 1_000_000_000
    /// Violations listed by `validate`; beyond them one final "and more violations not listed", and
    /// checking stops there (the value is invalid whatever else is found).
    static let maxViolations = 100
    /// Violations kept for one alternative of anyOf/oneOf or one property name: only the first is shown.
    static let maxNestedViolations = 10

    private let nodes: [SchemaNode]
    private let root: Int
    /// `maxSteps`, `patternNanoseconds` and `patternBudgetNanoseconds`, or less in tests.
    private let stepLimit: Int
    private let patternLimit: UInt64
    private let patternBudget: UInt64
    /// The instance location being checked, rendered only when a violation is reported.
    private var path: [JSONPathComponent] = []
    private var found: [JSONSchemaViolation] = []
    /// How many violations `found` may hold: `maxViolations`, or `maxNestedViolations` while an
    /// alternative or a property name is checked apart.
    private var limit = SchemaEvaluator.maxViolations
    /// Whether a violation was left out of `found` because it was full (only while checking apart:
    /// at the top, a full `found` stops checking), or out of a property name's problems.
    private var omitted = false
    private var refDepth = 0
    private var depth = 0
    private var steps = 0
    /// When `steps` reaches this, the clock is read (every 1,024 steps or so).
    private var nextClockCheck = 1_024
    private let started = DispatchTime.now().uptimeNanoseconds
    private var patternTime: UInt64 = 0
    /// Set when a limit is hit or a pattern cannot be decided: every check then fails at once and
    /// nothing more is reported.
    private var stopped: JSONSchemaViolation? {
        didSet { halted = stopped != nil }
    }
    /// Whether `stopped` is set. The recursive functions test this rather than `stopped`, whose copy and
    /// comparison take stack space in every frame of an unoptimised build.
    private var halted = false

    init(
        _ program: SchemaProgram, maxSteps: Int = SchemaEvaluator.maxSteps,
        patternNanoseconds: UInt64 = SchemaEvaluator.patternNanoseconds,
        patternBudgetNanoseconds: UInt64 = SchemaEvaluator.patternBudgetNanoseconds
    ) {
        nodes = program.nodes
        root = program.root
        stepLimit = maxSteps
        patternLimit = patternNanoseconds
        patternBudget = patternBudgetNanoseconds
    }

    static let moreNotListed = JSONSchemaViolation(path: "$", message: "and more violations not listed")

    func violations(of instance: JSONValue) -> [JSONSchemaViolation] {
        _ = check(root, instance, collect: true)
        var all = found
        if let stopped { all.append(stopped) }
        if omitted, stopped != Self.moreNotListed { all.append(Self.moreNotListed) }
        return all
    }

    func isValid(_ instance: JSONValue) -> Bool {
        check(root, instance, collect: false) && stopped == nil
    }

    // MARK: Recursion

    private func check(_ index: Int, _ value: JSONValue, collect: Bool) -> Bool {
        if halted || !takeSteps(1) { return false }
        if collect, isFull() { return checkWithoutMessages(index, value) }
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
        return valid && !halted
    }

    /// Counts `count` steps; false (and the check stopped) once over the budget of steps or time.
    /// Bookkeeping in functions of its own keeps the recursive frames small: in an unoptimised build
    /// (which inlines nothing) each access to a property takes stack space for exclusivity checking.
    private func takeSteps(_ count: Int) -> Bool {
        steps += count
        if steps > stepLimit {
            stopTooCostly()
            return false
        }
        if steps >= nextClockCheck {
            nextClockCheck = steps + 1_024
            if DispatchTime.now().uptimeNanoseconds - started > Self.maxNanoseconds {
                stopTooCostly()
                return false
            }
        }
        return true
    }

    private func isFull() -> Bool { found.count >= limit }

    /// A check once `found` is full: the answer without the messages, noting that some were left out.
    @inline(never)
    private func checkWithoutMessages(_ index: Int, _ value: JSONValue) -> Bool {
        let ok = check(index, value, collect: false)
        if !ok { noteOmitted() }
        return ok
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

    /// Checks `value` at `path` + `step`. Moving into the value ends a run of `$ref`s, so only those
    /// that stay at one location count toward `maxRefDepth`.
    private func check(_ index: Int, _ value: JSONValue, at step: JSONPathComponent, collect: Bool) -> Bool {
        let refs = enter(step)
        let ok = check(index, value, collect: collect)
        leave(refs)
        return ok
    }

    /// Moves into the value by `step`; returns the run of `$ref`s to restore on leaving.
    private func enter(_ step: JSONPathComponent) -> Int {
        path.append(step)
        let refs = refDepth
        refDepth = 0
        return refs
    }

    private func leave(_ refs: Int) {
        refDepth = refs
        path.removeLast()
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
                        if !collect || halted { return false }
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
            if halted { return false }
            if node.maxContains == nil, matched >= minimum { break }
        }
        if matched < minimum || matched > node.maxContains ?? Int.max {
            if collect { report(contains: schema, matched: matched, minimum: minimum, maximum: node.maxContains) }
            return false
        }
        return true
    }

    private func checkMembers(_ node: SchemaNode, _ members: [(String, JSONValue)], collect: Bool) -> Bool {
        if !takeSteps(members.count) { return false }
        var valid = true
        if let names = node.propertyNames {
            for (key, _) in members {
                if !checkName(key, names, collect: collect) {
                    if !collect || halted { return false }
                    valid = false
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
            for (pattern, schema) in node.patternProperties where nameMatches(key, pattern) {
                matched = true
                if !check(schema, key, member, kind: .named, of: node, collect: collect) {
                    if !collect { return false }
                    valid = false
                }
            }
            if halted { return false }
            if !matched, let schema = node.additionalProperties, !check(schema, key, member, kind: .additional, of: node, collect: collect) {
                if !collect { return false }
                valid = false
            }
        }
        return valid
    }

    /// Checks a property name against `propertyNames`, reporting its violations as the object's.
    @inline(never)
    private func checkName(_ key: String, _ names: Int, collect: Bool) -> Bool {
        guard collect else { return check(names, .string(key), collect: false) }
        let saved = setApart()
        let ok = check(names, .string(key), collect: true)
        endApart(saved, name: ok ? nil : key)
        return ok
    }

    /// What `setApart` put aside.
    private struct Apart {
        var found: [JSONSchemaViolation]
        var limit: Int
        var omitted: Bool
    }

    /// Starts collecting violations apart from those found so far (for one alternative or name).
    @inline(never)
    private func setApart() -> Apart {
        let saved = Apart(found: found, limit: limit, omitted: omitted)
        (found, limit, omitted) = ([], Self.maxNestedViolations, false)
        return saved
    }

    /// Ends `setApart`: a failed alternative's violations go to `failures`, a failed property name's
    /// are reported as the object's.
    @inline(never)
    private func endApart(_ saved: Apart, alternative: Int? = nil, failures: inout SchemaText.Failures, name: String? = nil) {
        let (problems, problemsOmitted) = (found, omitted)
        (found, limit, omitted) = (saved.found, saved.limit, saved.omitted)
        if let alternative { failures.add(alternative, problems, omitted: problemsOmitted) }
        if name != nil {
            if problemsOmitted { omitted = true }
            report(invalidName: problems)
        }
    }

    private func endApart(_ saved: Apart, name: String?) {
        var unused = SchemaText.Failures()
        endApart(saved, failures: &unused, name: name)
    }

    /// Whether a property name matches a patternProperties pattern; a search that cannot be decided
    /// stops the check (and returns false).
    @inline(never)
    private func nameMatches(_ key: String, _ pattern: SchemaPattern) -> Bool {
        let outcome = search(pattern, key)
        if outcome == .timedOut || outcome == .gaveUp { stop(undecided: outcome, pattern, name: key) }
        return outcome == .match
    }

    private enum MemberKind { case named, additional }

    /// Checks one member against `schema`. A `false` schema is reported once, at the object
    /// ("unexpected property \"x\""), rather than as a rejected value at the member.
    private func check(_ schema: Int, _ key: String, _ member: JSONValue, kind: MemberKind, of node: SchemaNode, collect: Bool) -> Bool {
        if nodes[schema].constant == false {
            if !takeSteps(1) { return false }
            if collect { report(forbidden: key, additional: kind == .additional, in: node) }
            return false
        }
        return check(schema, member, at: .key(key), collect: collect)
    }

    private func checkApplicators(_ node: SchemaNode, _ value: JSONValue, collect: Bool) -> Bool {
        var valid = true
        for schema in node.allOf where !check(schema, value, collect: collect) {
            if !collect || halted { return false }
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
        if let schema = node.not, check(schema, value, collect: false), !halted {
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
        var failures = SchemaText.Failures()
        var matches = SchemaText.Numbers()
        for (i, schema) in schemas.enumerated() {
            let ok = collect ? checkAlternative(schema, value, number: i + 1, failures: &failures) : check(schema, value, collect: false)
            if halted { return false }
            if ok {
                matches.add(i + 1)
                if !exactlyOne || (!collect && matches.count > 1) { break }
            }
        }
        if matches.count == 0 {
            if collect { report(value, matchesNoneOf: failures, keyword: exactlyOne ? "oneOf" : "anyOf") }
            return false
        }
        if exactlyOne, matches.count > 1 {
            if collect { report(value, matchesSeveralOf: matches) }
            return false
        }
        return true
    }

    /// Checks one alternative apart from the violations found so far, keeping why it failed.
    @inline(never)
    private func checkAlternative(_ schema: Int, _ value: JSONValue, number: Int, failures: inout SchemaText.Failures) -> Bool {
        let saved = setApart()
        let ok = check(schema, value, collect: true)
        endApart(saved, alternative: ok ? nil : number, failures: &failures)
        return ok
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
        switch value {
        case let .string(s) where node.checksStrings: steps += s.utf8.count >> 6
        case .array, .object: steps += node.comparisonCost
        default: break
        }
        if let allowed = node.enumValues, !allowed.contains(value) {
            fail(allowed.values.isEmpty
                ? "\(SchemaText.brief(value)) is not allowed (the enum is empty)"
                : "\(SchemaText.brief(value)) is not one of the allowed values \(SchemaText.list(allowed.values, SchemaText.brief))")
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
            if let pattern = node.pattern {
                switch search(pattern, s) {
                case .match: break
                case .noMatch: fail("\(SchemaText.brief(value)) does not match the pattern \(SchemaText.quoted(pattern.source))")
                case let undecided:
                    // Never a "does not match" the search did not establish, and never valid.
                    stop(undecided: undecided, pattern, name: nil)
                    return false
                }
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
            if node.uniqueItems {
                var cost = 0
                let duplicate = JSONEquality.firstDuplicate(items, cost: &cost)
                steps += cost
                if let (first, second) = duplicate {
                    fail("array items [\(first)] and [\(second)] are both \(SchemaText.brief(items[second])); items must be unique")
                }
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
                steps += node.required.count + node.dependentRequired.count + (keys.set == nil ? 0 : members.count)
                for name in node.required where !keys.contains(name) {
                    fail("missing required property \(SchemaText.quoted(name))")
                    if !collect { return false }
                }
                for (trigger, needed) in node.dependentRequired where keys.contains(trigger) {
                    steps += needed.count
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
    /// is not a multiple; one beyond 2^53, where every Double is whole, is. A nonzero `x` whose quotient
    /// rounds to 0 (4.9e-324 / 1e308 underflows to 0) is not.
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
        let whole = quotient.rounded()
        if whole == 0 { return false }
        return abs(quotient - whole) <= 4 * quotient.ulp
    }

    // MARK: Regular expressions

    /// Searches `text` for `pattern` within `patternNanoseconds`, and within what is left of
    /// `patternBudgetNanoseconds` for the whole check.
    @inline(never)
    private func search(_ pattern: SchemaPattern, _ text: String) -> SchemaPattern.Outcome {
        guard !halted, patternTime < patternBudget else { return .timedOut }
        let start = DispatchTime.now().uptimeNanoseconds
        let allowed = min(patternLimit, patternBudget - patternTime)
        let outcome = pattern.search(text, deadline: start + allowed)
        patternTime += DispatchTime.now().uptimeNanoseconds - start
        return outcome
    }

    // MARK: Reporting (out of line, to keep the recursive frames small)

    /// Whether another violation may be added; notes the omission when `found` is full.
    private func canReport() -> Bool {
        guard stopped == nil else { return false }
        guard found.count < limit else {
            noteOmitted()
            return false
        }
        return true
    }

    /// A violation beyond what `found` may hold. At the top that ends the check: the value is invalid
    /// whatever else is found, and 5 million failing items need not all be looked at.
    @inline(never)
    private func noteOmitted() {
        if limit == Self.maxViolations {
            if stopped == nil { stopped = Self.moreNotListed }
        } else {
            omitted = true
        }
    }

    @inline(never)
    private func report(_ message: @autoclosure () -> String) {
        guard canReport() else { return }
        found.append(JSONSchemaViolation(path: SchemaText.path(path), message: message()))
    }

    @inline(never)
    private func stop(_ message: String, atRoot: Bool = false) {
        guard stopped == nil else { return }
        stopped = JSONSchemaViolation(path: atRoot ? "$" : SchemaText.path(path), message: message)
    }

    @inline(never)
    private func stopTooDeep(references: Bool = false) {
        stop(references
            ? "schema recursion deeper than \(Self.maxRefDepth)"
            : "schema and value nested deeper than \(Self.maxDepth) levels")
    }

    @inline(never)
    private func stopTooCostly() {
        stop(steps > stepLimit
            ? "the schema is too costly to check this value (more than \(stepLimit) steps)"
            : "the schema is too costly to check this value (more than \(Self.maxNanoseconds / 1_000_000_000) seconds)", atRoot: true)
    }

    @inline(never)
    private func stop(undecided outcome: SchemaPattern.Outcome, _ pattern: SchemaPattern, name: String?) {
        let subject = name.map { "the property name \(SchemaText.quoted($0)) against the pattern" } ?? "the pattern"
        stop(outcome == .gaveUp
            ? "could not check \(subject) \(SchemaText.quoted(pattern.source)): the regular expression engine gave up on this value"
            : "could not check \(subject) \(SchemaText.quoted(pattern.source)) in time")
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
        guard canReport() else { return }
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
        report(!node.properties.isEmpty && node.patternProperties.isEmpty
            ? "unexpected property \(SchemaText.quoted(key)) (allowed: \(SchemaText.list(node.properties, limit: 10) { SchemaText.quoted($0.name) }))"
            : "unexpected property \(SchemaText.quoted(key))")
    }

    @inline(never)
    private func report(_ value: JSONValue, matchesNot schema: Int) {
        report("\(SchemaText.brief(value)) must not match the schema \(SchemaText.brief(nodes[schema].source))")
    }

    @inline(never)
    private func report(_ value: JSONValue, matchesNoneOf failures: SchemaText.Failures, keyword: String) {
        report("\(SchemaText.brief(value)) does not match any of the \(keyword) alternatives: \(failures.text)")
    }

    @inline(never)
    private func report(_ value: JSONValue, matchesSeveralOf matches: SchemaText.Numbers) {
        report("\(SchemaText.brief(value)) matches more than one of the oneOf alternatives (\(matches.text)) but must match exactly one")
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
    /// Whether `a` and `b` are JSON-equal, in time bounded by the size of `a` (the schema's side), and
    /// without recursion, so no depth of either value can exhaust the stack.
    static func equal(_ a: JSONValue, _ b: JSONValue) -> Bool {
        var cost = 0
        return equal(a, b, cost: &cost)
    }

    /// `equal`, adding to `cost` the values compared (and an eighth of the bytes encoded).
    static func equal(_ a: JSONValue, _ b: JSONValue, cost: inout Int) -> Bool {
        switch (a, b) {
        case (.array, .array), (.object, .object): break
        case (.null, .null): return true
        case let (.bool(p), .bool(q)): return p == q
        case let (.number(p), .number(q)): return p == q
        case let (.string(p), .string(q)): return p.utf8.elementsEqual(q.utf8)
        default: return false
        }
        var pairs: [(JSONValue, JSONValue)] = [(a, b)]
        while let (x, y) = pairs.popLast() {
            cost += 1
            switch (x, y) {
            case (.null, .null): continue
            case let (.bool(p), .bool(q)): if p != q { return false }
            case let (.number(p), .number(q)): if p != q { return false }
            case let (.string(p), .string(q)): if !p.utf8.elementsEqual(q.utf8) { return false }
            case let (.array(p), .array(q)):
                guard p.count == q.count else { return false }
                for i in p.indices { pairs.append((p[i], q[i])) }
            case let (.object(p), .object(q)):
                guard p.count == q.count else { return false }
                if p.count > 16 {
                    // Encoding no more of `y` than `x` takes keeps the cost to the size of `x`.
                    let key = canonical(x)
                    cost += key.count >> 3
                    guard canonical(y, limit: key.count) == key else { return false }
                    continue
                }
                for (key, value) in p {
                    let same = q.filter { $0.0.utf8.elementsEqual(key.utf8) }
                    if same.count == 1 {
                        pairs.append((value, same[0].1))
                    } else {
                        // No such member, or a key given twice: any member of that name may be the one.
                        let encoded = canonical(value)
                        cost += (encoded.count >> 3) * (same.count + 1)
                        guard same.contains(where: { canonical($0.1, limit: encoded.count) == encoded }) else { return false }
                    }
                }
            default: return false
            }
        }
        return true
    }

    /// The first pair of equal items, by index, in linear time: items are keyed by a canonical encoding.
    static func firstDuplicate(_ items: [JSONValue]) -> (Int, Int)? {
        var cost = 0
        return firstDuplicate(items, cost: &cost)
    }

    /// `firstDuplicate`, adding to `cost` the values compared (or an eighth of the bytes encoded).
    static func firstDuplicate(_ items: [JSONValue], cost: inout Int) -> (Int, Int)? {
        if items.count < 2 { return nil }
        if items.count <= 8 {
            for j in 1..<items.count {
                for i in 0..<j where equal(items[i], items[j], cost: &cost) { return (i, j) }
            }
            return nil
        }
        var seen: [[UInt8]: Int] = [:]
        for (j, item) in items.enumerated() {
            let key = canonical(item)
            cost += 1 + key.count >> 3
            if let i = seen[key] { return (i, j) }
            seen[key] = j
        }
        return nil
    }

    /// Bytes that are equal exactly when the values are JSON-equal: numbers in one spelling, strings
    /// length-prefixed, object members sorted by key.
    static func canonical(_ value: JSONValue) -> [UInt8] {
        var out: [UInt8] = []
        _ = appendCanonical(value, to: &out, limit: Int.max)
        return out
    }

    /// The canonical encoding, or nil as soon as it would be longer than `limit` bytes (so a long value
    /// costs no more than `limit` to rule out).
    static func canonical(_ value: JSONValue, limit: Int) -> [UInt8]? {
        var out: [UInt8] = []
        return appendCanonical(value, to: &out, limit: limit) ? out : nil
    }

    /// Appends the encoding of `value`, working through a list rather than recursing (values can be
    /// 500 levels deep, on top of a deep check). False once `out` is longer than `limit`.
    private static func appendCanonical(_ value: JSONValue, to out: inout [UInt8], limit: Int) -> Bool {
        enum Part {
            case value(JSONValue)
            case key(String)
            case close(UInt8)
        }
        var parts: [Part] = [.value(value)]
        while let part = parts.popLast() {
            guard out.count <= limit else { return false }
            switch part {
            case let .close(byte):
                out.append(byte)
            case let .key(key):
                guard key.utf8.count <= limit - out.count else { return false }
                appendString(key, to: &out)
            case .value(.null): out.append(UInt8(ascii: "n"))
            case let .value(.bool(b)): out.append(UInt8(ascii: b ? "t" : "f"))
            case let .value(.number(n)):
                out.append(UInt8(ascii: "#"))
                out.append(contentsOf: (n == 0 ? "0" : "\(n)").utf8)  // -0 == 0
                out.append(UInt8(ascii: ";"))
            case let .value(.string(s)):
                guard s.utf8.count <= limit - out.count else { return false }
                appendString(s, to: &out)
            case let .value(.array(items)):
                // Each item takes at least a byte.
                guard items.count <= limit - out.count else { return false }
                out.append(UInt8(ascii: "["))
                parts.append(.close(UInt8(ascii: "]")))
                for item in items.reversed() { parts.append(.value(item)) }
            case let .value(.object(members)):
                guard members.count <= limit - out.count else { return false }
                out.append(UInt8(ascii: "{"))
                parts.append(.close(UInt8(ascii: "}")))
                for (key, member) in members.sorted(by: { $0.0.utf8.lexicographicallyPrecedes($1.0.utf8) }).reversed() {
                    parts.append(.value(member))
                    parts.append(.key(key))
                }
            }
        }
        return out.count <= limit
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
    /// value than it shows, nor descends further than it shows (a 500-level value would otherwise
    /// take 500 frames on top of a deep check).
    static func brief(_ value: JSONValue) -> String {
        var out = ""
        appendBounded(value, to: &out, budget: limit * 4 + 8, depth: limit + 1)
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

    private static func appendBounded(_ value: JSONValue, to out: inout String, budget: Int, depth: Int) {
        guard out.utf8.count <= budget, depth > 0 else { return }
        switch value {
        case let .string(s):
            JSONValue.writeString(String(String.UnicodeScalarView(s.unicodeScalars.prefix(budget))), to: &out)
        case let .array(items):
            out += "["
            for (i, item) in items.enumerated() {
                guard out.utf8.count <= budget else { break }
                if i > 0 { out += "," }
                appendBounded(item, to: &out, budget: budget, depth: depth - 1)
            }
            out += "]"
        case let .object(members):
            out += "{"
            for (i, (key, member)) in members.enumerated() {
                guard out.utf8.count <= budget else { break }
                if i > 0 { out += "," }
                JSONValue.writeString(String(String.UnicodeScalarView(key.unicodeScalars.prefix(budget))), to: &out)
                out += ":"
                appendBounded(member, to: &out, budget: budget, depth: depth - 1)
            }
            out += "}"
        case let .number(n):
            out += number(n)
        default:
            value.write(to: &out)
        }
    }

    /// "$", "$.score", "$.tags[2]", `$["odd key"]`. A key longer than `limit` is cut with "…" (a
    /// megabyte-long key would otherwise be repeated in every violation below it).
    static func path(_ steps: [JSONPathComponent]) -> String {
        var out = "$"
        for step in steps {
            switch step {
            case let .index(i): out += "[\(i)]"
            case let .key(k) where k.utf8.count > limit:
                out += "["
                JSONValue.writeString(String(String.UnicodeScalarView(k.unicodeScalars.prefix(limit - 1))) + "…", to: &out)
                out += "]"
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

    /// `"a", "b", "c"`: the first `limit` entries rendered (the others never are), then how many more.
    static func list<Entries: Collection>(_ entries: Entries, limit: Int = 12, _ render: (Entries.Element) -> String) -> String {
        var text = entries.prefix(limit).map(render).joined(separator: ", ")
        if entries.count > limit { text += ", … (\(entries.count - limit) more)" }
        return text
    }

    /// Why alternatives of anyOf/oneOf (numbered from 1) failed: for the first five, the first violation
    /// and how many more there were.
    struct Failures {
        static let shown = 5
        private(set) var count = 0
        private var first: [(number: Int, problem: JSONSchemaViolation?, others: Int, omitted: Bool)] = []

        mutating func add(_ number: Int, _ problems: [JSONSchemaViolation], omitted: Bool) {
            count += 1
            if first.count < Self.shown { first.append((number, problems.first, max(problems.count - 1, 0), omitted)) }
        }

        var text: String {
            var parts: [String] = []
            for (number, problem, others, omitted) in first {
                guard let problem else { continue }
                var part = "(\(number)) \(problem.description)"
                if part.count > 160 { part = String(part.prefix(159)) + "…" }
                if omitted {
                    part += " (and at least \(others + 1) more)"
                } else if others > 0 {
                    part += " (and \(others) more)"
                }
                parts.append(part)
            }
            if count > Self.shown { parts.append("… (\(count - Self.shown) more)") }
            return parts.isEmpty ? "no alternative matches" : parts.joined(separator: "; ")
        }
    }

    /// Numbers of matching oneOf alternatives: "1 and 2", "1, 2, 3, … and 9 more".
    struct Numbers {
        static let shown = 12
        private(set) var count = 0
        private var first: [Int] = []

        mutating func add(_ number: Int) {
            count += 1
            if first.count < Self.shown { first.append(number) }
        }

        var text: String {
            var words = first.map(String.init)
            if count > first.count { words.append("\(count - first.count) more") }
            return SchemaText.alternatives(words, conjunction: "and")
        }
    }
}
