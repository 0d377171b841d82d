import Foundation
import ParleyCore

/// `[router]`: which model `-m auto` sends a request to. Rules are tried in order; the first whose
/// every condition holds names the model, else `default`. Guards no rule can override then skip a
/// model that cannot serve the request (window, tools, price under a budget, budget) for the next one.
public struct RouterSettings: Sendable {
    public var defaultModel: String?
    public var rules: [RouterRule] = []

    public init() {}
}

public struct RouterRule: Sendable {
    public var name: String
    public var model: String
    /// Any of these matches the newest user message (case-insensitive).
    public var anyRegex: [String] = []
    var regexes: [RouterRegex] = []
    public var minTokens: Int?
    public var maxTokens: Int?
    public var hasSchema: Bool?
    public var hasTools: Bool?
    public var template: String?
    public var hasCode: Bool?
    /// A language code from `TextLanguage.detect` ("en", "de", "ja", …).
    public var language: String?
    public var line: Int

    public init(name: String, model: String, line: Int) {
        self.name = name
        self.model = model
        self.line = line
    }

    /// Each condition that fails, named; empty when the rule matches.
    func unmet(_ facts: RouteFacts) -> [String] {
        var failed: [String] = []
        if !regexes.isEmpty, !regexes.contains(where: { $0.matches(facts.text) }) { failed.append("any_regex") }
        if let minTokens, facts.promptTokens < minTokens { failed.append("min_tokens") }
        if let maxTokens, facts.promptTokens > maxTokens { failed.append("max_tokens") }
        if let hasSchema, hasSchema != facts.hasSchema { failed.append("has_schema") }
        if let hasTools, hasTools != facts.hasTools { failed.append("has_tools") }
        if let template, template != facts.template { failed.append("template") }
        if let hasCode, hasCode != facts.hasCode { failed.append("has_code") }
        if let language, language != facts.language { failed.append("language") }
        return failed
    }
}

/// A compiled `any_regex`; NSRegularExpression is immutable once made, so it is shared freely.
struct RouterRegex: @unchecked Sendable {
    let source: String
    let regex: NSRegularExpression

    init(_ source: String) throws {
        self.source = source
        regex = try NSRegularExpression(pattern: source, options: [.caseInsensitive])
    }

    /// An expression still running after 100 ms does not match (a config's own pattern can backtrack
    /// exponentially on what someone pastes).
    func matches(_ text: String) -> Bool {
        regex.matches(text, within: .milliseconds(100)) ?? false
    }
}

/// What routing looks at, worked out once per request.
public struct RouteFacts: Sendable, Equatable {
    public var text: String
    public var promptTokens: Int
    public var hasSchema: Bool
    public var hasTools: Bool
    public var template: String?
    public var hasCode: Bool
    public var language: String

    /// Routing looks at the first 100 KB of the newest message: enough to tell what it is, and a pasted
    /// 30 MB file costs no more to route than a long one.
    public init(request: ChatRequest, template: String?) {
        text = String((request.messages.last(where: { $0.role == .user })?.content ?? "").prefix(100_000))
        promptTokens = TokenEstimator.estimate(request)
        hasSchema = request.responseFormat != nil
        hasTools = !request.tools.isEmpty
        self.template = template
        hasCode = CodeDetector.looksLikeCode(text)
        language = TextLanguage.detect(text)
    }
}

/// Where `auto` sent a request, and why.
public struct RouteDecision: Sendable, Equatable {
    public var model: ModelRef
    /// The rule that matched, or "default".
    public var rule: String
    /// Models passed over by a guard, each with the reason.
    public var skipped: [Skip]
    public var facts: RouteFacts

    public struct Skip: Sendable, Equatable {
        public var model: ModelRef
        public var reason: String
    }

    /// `auto → local:smollm2 (rule short)`, with what was skipped.
    public var summary: String {
        var text = "auto → \(model) (\(rule == "default" ? "default" : "rule \(rule)"))"
        for skip in skipped { text += "; skipped \(skip.model): \(skip.reason)" }
        return text
    }
}

/// No model fits the request: every candidate was skipped.
public struct NoRouteError: UserFacingError, Sendable, Equatable {
    public var skipped: [RouteDecision.Skip]
    public var userMessage: String {
        "auto: no model can take this request: " + skipped.map { "\($0.model) (\($0.reason))" }.joined(separator: "; ")
            + "; add a model that fits under [router] in config.toml, or pick one with --model or /model"
    }
}

extension ChatEngine {
    /// Picks the model for `request` by the `[router]` rules, then the guards. Sends nothing.
    public func route(_ request: ChatRequest, template: String? = nil, options: TurnOptions = TurnOptions()) async throws -> RouteDecision {
        let facts = RouteFacts(request: request, template: template)
        let router = config.router
        var candidates: [(ModelRef, String)] = []
        for rule in router.rules where rule.unmet(facts).isEmpty {
            if let ref = try? config.resolve(rule.model) { candidates.append((ref, rule.name)) }
        }
        if let ref = try? config.resolve(config.routerDefault) {
            candidates.append((ref, "default"))
            // When a guard skips them all, the default's fallback chain is next.
            candidates += config.fallbackChain(after: ref).map { ($0, "default") }
        }
        var skipped: [RouteDecision.Skip] = []
        var seen: Set<ModelRef> = []
        for (ref, rule) in candidates where seen.insert(ref).inserted {
            if let reason = await unfit(ref, for: request, facts: facts, options: options) {
                skipped.append(.init(model: ref, reason: reason))
                continue
            }
            return RouteDecision(model: ref, rule: rule, skipped: skipped, facts: facts)
        }
        throw NoRouteError(skipped: skipped)
    }

    /// The output limit a request must leave room for in the window: its max_tokens or the config's,
    /// else 1,024 tokens (a quarter of the window when that is smaller) — without a limit a provider
    /// writes into whatever room is left.
    public func outputReserve(_ request: ChatRequest, ref: ModelRef) -> Int {
        if let limit = request.maxTokens ?? config.endpoint(for: ref, environment: environment).defaultMaxTokens { return limit }
        let window = config.contextWindow(for: ref) ?? 4096
        return min(1024, window / 4)
    }

    /// Why `ref` cannot take this request, or nil when it can.
    func unfit(_ ref: ModelRef, for request: ChatRequest, facts: RouteFacts, options: TurnOptions) async -> String? {
        let pricing = config.pricing(for: ref)
        var sized = request
        sized.model = ref.model
        let output = outputReserve(sized, ref: ref)
        if let window = config.contextWindow(for: ref), facts.promptTokens + output > window {
            return "its context window of \(window) tokens is too small for about \(facts.promptTokens) prompt tokens plus \(output) output"
        }
        if facts.hasTools, !config.supportsTools(ref) {
            return "it does not support tools"
        }
        let budget = config.budget
        let limited = budget.daily != nil || budget.monthly != nil || budget.session != nil || options.requestLimit != nil
        if limited, pricing == nil { return "its price is unknown while a budget is set" }
        if let error = await budgetRefusal(sized, ref: ref, pricing: pricing, options: options) { return describe(error) }
        return nil
    }
}

extension ParleyConfig {
    /// The model `auto` uses when no rule matches: `[router] default`, else the default model (the local
    /// one when the default model is itself `auto`).
    public var routerDefault: String {
        router.defaultModel ?? (defaultModel == "auto" ? "local" : defaultModel)
    }

    /// Whether a model takes tool definitions: `tools = true|false` under `[models."p:m"]`; the bundled
    /// SmolLM2 does not (its chat template has none), others are assumed to.
    public func supportsTools(_ ref: ModelRef) -> Bool {
        if let marked = models[ref]?.supportsTools { return marked }
        return !(ref.provider == "local" && ref.model == LocalRuntime.modelName)
    }

    static func parseRouter(_ value: TOMLValue, into config: inout ParleyConfig, reader: ConfigReader) throws(ConfigError) {
        let table = try reader.table(value, "router")
        try reader.allowOnly(table, ["default", "rules"], context: "[router]")
        var router = RouterSettings()
        func checkedModel(_ value: TOMLValue, _ key: String) throws(ConfigError) -> String {
            let name = try reader.string(value, key)
            do { _ = try config.resolve(name) } catch {
                throw ConfigError(file: reader.file, line: value.line, message: "\(key): \(error.message)")
            }
            return name
        }
        if let v = table["default"] { router.defaultModel = try checkedModel(v, "router.default") }
        if let value = table["rules"] {
            guard case let .array(items, _) = value else { throw reader.fail(value, "router.rules", expected: "[[router.rules]] tables") }
            for (index, item) in items.enumerated() {
                let key = "router.rules[\(index + 1)]"
                let spec = try reader.table(item, key)
                try reader.allowOnly(spec, ["name", "model", "any_regex", "min_tokens", "max_tokens", "has_schema", "has_tools", "template", "has_code", "language"],
                                     context: "[[router.rules]]")
                guard let modelValue = spec["model"] else {
                    throw ConfigError(file: reader.file, line: spec.line, message: "\(key) needs model = \"provider:model\"")
                }
                let name = try spec["name"].map { v throws(ConfigError) in try reader.string(v, "\(key).name") } ?? "\(index + 1)"
                var rule = RouterRule(name: name, model: try checkedModel(modelValue, "\(key).model"), line: spec.line)
                if let v = spec["any_regex"] {
                    let patterns: [String]
                    if case .string = v { patterns = [try reader.string(v, "\(key).any_regex")] } else { patterns = try reader.strings(v, "\(key).any_regex") }
                    for pattern in patterns {
                        do { rule.regexes.append(try RouterRegex(pattern)) } catch {
                            throw ConfigError(file: reader.file, line: v.line, message: "\(key).any_regex: \"\(pattern)\" is not a regular expression")
                        }
                    }
                    rule.anyRegex = patterns
                }
                if let v = spec["min_tokens"] { rule.minTokens = try reader.integer(v, "\(key).min_tokens", min: 0) }
                if let v = spec["max_tokens"] { rule.maxTokens = try reader.integer(v, "\(key).max_tokens", min: 0) }
                if let v = spec["has_schema"] { rule.hasSchema = try reader.bool(v, "\(key).has_schema") }
                if let v = spec["has_tools"] { rule.hasTools = try reader.bool(v, "\(key).has_tools") }
                if let v = spec["template"] { rule.template = try reader.string(v, "\(key).template") }
                if let v = spec["has_code"] { rule.hasCode = try reader.bool(v, "\(key).has_code") }
                if let v = spec["language"] {
                    let code = try reader.string(v, "\(key).language").lowercased()
                    guard TextLanguage.codes.contains(code) else {
                        throw ConfigError(file: reader.file, line: v.line, message: "\(key).language: \"\(code)\" is not one of \(TextLanguage.codes.sorted().joined(separator: ", "))")
                    }
                    rule.language = code
                }
                if router.rules.contains(where: { $0.name == rule.name }) {
                    throw ConfigError(file: reader.file, line: spec.line, message: "\(key): another rule is named \"\(rule.name)\"")
                }
                router.rules.append(rule)
            }
        }
        config.router = router
    }
}

/// Whether a message holds code: a fenced block, or several lines that read like a program.
public enum CodeDetector {
    static let signals = try! NSRegularExpression(pattern: #"(^|\n)\s*(def |class |func |fn |import |#include|public |private |let |const |var |return |SELECT |CREATE TABLE|package |using |\}|\{$)|;\s*(\n|$)|=>|::|\(\)\s*\{"#, options: [.caseInsensitive])

    public static func looksLikeCode(_ text: String) -> Bool {
        if text.contains("```") { return true }
        let range = NSRange(text.startIndex..., in: text)
        return signals.numberOfMatches(in: text, range: range) >= 2
    }
}

/// A small language guess for routing: the script decides for most languages; for Latin script,
/// common function words decide between English, German, French, Spanish, Italian, Portuguese and Dutch.
public enum TextLanguage {
    public static let codes: Set<String> = ["en", "de", "fr", "es", "it", "pt", "nl", "ja", "zh", "ko", "ru", "uk", "ar", "he", "el", "hi", "th", "unknown"]

    static let words: [(String, Set<String>)] = [
        ("en", ["the", "and", "is", "are", "what", "how", "you", "this", "that", "with", "of", "to", "in", "for", "it", "can", "please", "why"]),
        ("de", ["der", "die", "das", "und", "ist", "nicht", "ich", "du", "wie", "was", "mit", "ein", "eine", "bitte", "warum", "für", "auf", "sind"]),
        ("fr", ["le", "la", "les", "et", "est", "une", "un", "des", "que", "pour", "avec", "pas", "je", "vous", "comment", "pourquoi", "dans", "sur"]),
        ("es", ["el", "la", "los", "las", "y", "es", "una", "un", "que", "por", "para", "con", "no", "cómo", "qué", "por qué", "en", "del"]),
        ("it", ["il", "lo", "gli", "e", "è", "una", "che", "per", "con", "non", "come", "perché", "della", "sono"]),
        ("pt", ["o", "os", "as", "e", "é", "uma", "um", "que", "para", "com", "não", "como", "por", "você", "são"]),
        ("nl", ["de", "het", "een", "en", "is", "niet", "ik", "je", "hoe", "wat", "met", "voor", "van", "zijn"]),
    ]

    public static func detect(_ text: String) -> String {
        var counts: [String: Int] = [:]
        var latin = 0
        for scalar in text.unicodeScalars.prefix(4000) {
            switch scalar.value {
            case 0x3040...0x30FF: counts["ja", default: 0] += 3  // kana: Japanese even among kanji
            case 0x4E00...0x9FFF: counts["zh", default: 0] += 1
            case 0xAC00...0xD7AF, 0x1100...0x11FF: counts["ko", default: 0] += 1
            case 0x0400...0x04FF: counts["єіїґЄІЇҐ".unicodeScalars.contains(scalar) ? "uk" : "ru", default: 0] += 1
            case 0x0600...0x06FF: counts["ar", default: 0] += 1
            case 0x0590...0x05FF: counts["he", default: 0] += 1
            case 0x0370...0x03FF: counts["el", default: 0] += 1
            case 0x0900...0x097F: counts["hi", default: 0] += 1
            case 0x0E00...0x0E7F: counts["th", default: 0] += 1
            case 0x41...0x5A, 0x61...0x7A, 0xC0...0x24F: latin += 1
            default: break
            }
        }
        if let (script, count) = counts.max(by: { $0.value < $1.value }), count * 2 >= latin {
            if script == "zh", (counts["ja"] ?? 0) > 0 { return "ja" }
            return script
        }
        guard latin > 0 else { return "unknown" }
        let tokens = text.lowercased().split { !$0.isLetter }.prefix(400).map(String.init)
        var best = ("unknown", 0)
        for (code, vocabulary) in words {
            let score = tokens.reduce(0) { $0 + (vocabulary.contains($1) ? 1 : 0) }
            if score > best.1 { best = (code, score) }
        }
        return best.0
    }
}
