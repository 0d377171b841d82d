import Foundation
import ParleyCore

/// `[guard]`: what is checked before text goes to a model, and what happens on a finding.
public struct GuardSettings: Sendable, Equatable {
    public enum Oversize: String, Sendable { case refuse, ask, truncate }
    public enum Injection: String, Sendable { case off, flag, ask, refuse }

    /// Most prompt tokens sent (nil: what the model's window allows after the output limit).
    public var maxInputTokens: Int?
    public var onOversize: Oversize = .refuse
    public var injection: Injection = .flag
    /// Extra patterns (case-insensitive regular expressions), each a finding of kind "extra".
    public var extraPatterns: [String] = []
    var extra: [GuardPattern] = []

    public init() {}

    /// Equal by what the config says; the compiled patterns follow from `extraPatterns`.
    public static func == (lhs: GuardSettings, rhs: GuardSettings) -> Bool {
        lhs.maxInputTokens == rhs.maxInputTokens && lhs.onOversize == rhs.onOversize && lhs.injection == rhs.injection
            && lhs.extraPatterns == rhs.extraPatterns
    }

    static func parse(_ value: TOMLValue, reader: ConfigReader) throws(ConfigError) -> GuardSettings {
        let table = try reader.table(value, "guard")
        try reader.allowOnly(table, ["max_input_tokens", "on_oversize", "injection", "extra_patterns"], context: "[guard]")
        var settings = GuardSettings()
        if let v = table["max_input_tokens"] { settings.maxInputTokens = try reader.integer(v, "guard.max_input_tokens", min: 1) }
        if let v = table["on_oversize"] {
            let raw = try reader.string(v, "guard.on_oversize")
            guard let choice = Oversize(rawValue: raw) else {
                throw ConfigError(file: reader.file, line: v.line, message: "guard.on_oversize: expected refuse, ask or truncate, found \"\(raw)\"")
            }
            settings.onOversize = choice
        }
        if let v = table["injection"] {
            let raw = try reader.string(v, "guard.injection")
            guard let choice = Injection(rawValue: raw) else {
                throw ConfigError(file: reader.file, line: v.line, message: "guard.injection: expected off, flag, ask or refuse, found \"\(raw)\"")
            }
            settings.injection = choice
        }
        if let v = table["extra_patterns"] {
            settings.extraPatterns = try reader.strings(v, "guard.extra_patterns")
            for (index, pattern) in settings.extraPatterns.enumerated() {
                guard let compiled = GuardPattern(kind: .extra, name: "extra pattern \(index + 1)", pattern) else {
                    throw ConfigError(file: reader.file, line: v.line, message: "guard.extra_patterns: \"\(pattern)\" is not a regular expression")
                }
                settings.extra.append(compiled)
            }
        }
        return settings
    }
}

/// One thing the guard found: what kind, which pattern, and where (character offsets in the text).
public struct GuardFinding: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case override, roleTokens = "role_tokens", invisible, encoded, exfiltration, extra
    }

    public var kind: Kind
    /// The pattern's name, as shown ("instructions to ignore earlier instructions").
    public var pattern: String
    /// Offsets in Characters, so the screen can highlight the text.
    public var start: Int
    public var end: Int
    /// The matched text, made safe to show (invisible characters as <U+XXXX>), at most 80 characters.
    public var excerpt: String

    public var json: JSONValue {
        ["kind": .string(kind.rawValue), "pattern": .string(pattern), "start": .number(Double(start)), "end": .number(Double(end)),
         "excerpt": .string(excerpt)]
    }

    /// `prompt injection? instructions to ignore earlier instructions: "ignore all previous instructions"`
    public var line: String { "\(kind.title): \(pattern): \"\(excerpt)\"" }
}

extension GuardFinding.Kind {
    public var title: String {
        switch self {
        case .override: return "prompt injection?"
        case .roleTokens: return "fake chat-template or role markers"
        case .invisible: return "invisible or direction-changing characters"
        case .encoded: return "instructions hidden in an encoding"
        case .exfiltration: return "asks to reveal secrets or the system prompt"
        case .extra: return "matches a configured pattern"
        }
    }
}

/// A named, compiled pattern. NSRegularExpression is immutable once made.
struct GuardPattern: @unchecked Sendable {
    let kind: GuardFinding.Kind
    let name: String
    let regex: NSRegularExpression
    /// Lowercase words at least one of which any match contains: text with none of them is not searched
    /// (a regular expression over 100 KB costs milliseconds; looking for a few words costs microseconds).
    let needles: [[UInt8]]

    init?(kind: GuardFinding.Kind, name: String, needles: [String] = [], _ pattern: String, options: NSRegularExpression.Options = [.caseInsensitive]) {
        guard let regex = try? NSRegularExpression(pattern: pattern, options: options) else { return nil }
        self.kind = kind
        self.name = name
        self.regex = regex
        self.needles = needles.map { Array($0.utf8) }
    }

    /// Whether the pattern can match `lowered` at all.
    func mayMatch(_ lowered: [UInt8]) -> Bool {
        guard !needles.isEmpty else { return true }
        return lowered.withUnsafeBufferPointer { text in
            needles.contains { needle in
                guard let first = needle.first, needle.count <= text.count else { return false }
                var i = 0
                let last = text.count - needle.count
                while i <= last {
                    if text[i] == first {
                        var j = 1
                        while j < needle.count, text[i + j] == needle[j] { j += 1 }
                        if j == needle.count { return true }
                    }
                    i += 1
                }
                return false
            }
        }
    }
}

/// Finds prompt-injection patterns, fake role markers, invisible characters and hidden encodings in text
/// from outside (typed, pasted, stdin, files, tool results). Offline and explainable: every finding names
/// its pattern and where it is. A heuristic, measured against the labelled corpus in the tests.
public enum InputGuard {
    /// Text beyond this many characters is checked in its first and last parts only, so a huge paste
    /// costs bounded time; invisible characters are looked for everywhere.
    static let scanLimit = 400_000

    static let verbs = #"(?:ignore|disregard|forget|override|overrule|bypass|skip|drop|abandon|discard|neglect|set aside|stop following|do not follow|don't follow|pay no attention to)"#
    static let targets = #"(?:instructions?|prompts?|rules|directions|directives|guidelines|guardrails|constraints|restrictions|context|messages?|commands|orders|programming|training|system prompt|safety (?:rules|guidelines|policies))"#

    static let patterns: [GuardPattern] = [
        GuardPattern(kind: .override, name: "instructions to ignore earlier instructions", needles: ["ignor", "disregard", "forget", "overrid", "overrul", "bypass", "skip", "drop", "abandon", "discard", "neglect", "set aside", "follow", "pay no attention"],
                     #"\b\#(verbs)\b[^.\n]{0,40}?\b(?:all|any|every|the|your|these|those|previous|prior|above|earlier|preceding|former|original|initial|system|old)\b(?:(?!\bmy\b)[^.\n]){0,30}?\b\#(targets)\b"#),
        GuardPattern(kind: .override, name: "instructions to ignore earlier instructions", needles: ["ignor", "disregard", "forget", "overrid", "overrul", "bypass", "skip", "drop", "abandon", "discard", "neglect", "set aside", "follow", "pay no attention"],
                     #"\b\#(verbs)[ \t]{1,8}(?:everything|all)[ \t]{1,8}(?:above|before|previously|you (?:were|have been) told)"#),
        GuardPattern(kind: .override, name: "new instructions that replace the old ones", needles: ["instructions", "prompt", "rules"],
                     #"\b(?:new|updated|real|actual|true)[ \t]{1,8}(?:system[ \t]{1,8})?(?:instructions|prompt|rules)[ \t]{0,8}(?::|are\b|follow\b)"#),
        GuardPattern(kind: .override, name: "an unrestricted persona (DAN, developer mode)", needles: ["you are now", "from now on", "act as", "pretend", "roleplay", "switch to"],
                     #"\b(?:you are now|from now on,?[ \t]{1,8}you(?:'re| are| will)|act as|pretend (?:to be|you are)|roleplay as|switch to)\b[^.\n]{0,60}?\b(?:DAN|unrestricted|unfiltered|uncensored|jailbroken|jailbreak|developer mode|no (?:rules|restrictions|limits|filters|guidelines)|without (?:any )?(?:rules|restrictions|limits|filters))"#),
        GuardPattern(kind: .override, name: "an unrestricted persona (DAN, developer mode)", needles: ["do anything now", "jailbreak", "god mode", "developer mode"],
                     #"\b(?:do anything now|jailbreak mode|god mode enabled)\b|\bdeveloper mode (?:is )?(?:enabled|activated|on)(?=[ \t]{0,8}[.!,;:)]|[ \t]{0,8}$)"#),
        GuardPattern(kind: .override, name: "an unrestricted persona (DAN, developer mode)", needles: ["you are", "broken free", "stay in character"],
                     #"\byou are (?:now )?(?:DAN|STAN|DUDE|AIM|BetterDAN|Mongo Tom)\b|\b(?:has |have )?broken free (?:of|from)\b|\bstay in character no matter what\b"#),
        GuardPattern(kind: .override, name: "a claim that the rules no longer apply", needles: ["not have to", "disabled", "removed", "lifted", "turned off", "suspended", "proceed without"],
                     #"\bdo(?:es)? not have to (?:follow|obey|abide by)\b[^.\n]{0,30}\b(?:rules|guidelines|policies|system prompt|instructions)\b|\b(?:guardrails|restrictions|safety (?:filters|rules|guidelines)|content filters?|filters|rules)[ \t]{1,8}(?:have been|has been|are|were)[ \t]{1,8}(?:disabled|removed|lifted|turned off|suspended)\b|\bproceed without (?:any )?(?:restrictions|rules|limits|filters|guardrails)\b"#),
        GuardPattern(kind: .override, name: "a fake end of the instructions", needles: ["end of", "new rules", "new instructions"],
                     #"(?:^|\n)[-=#* \t]{0,40}end of (?:the )?(?:previous |system |original )?(?:instructions|prompt|system prompt)\b|\bnew (?:rules|instructions) from (?:the )?(?:administrator|admin|developers?|system|operator)\b"#),
        GuardPattern(kind: .override, name: "instructions addressed to an AI reading this text", needles: ["if you are", "note for", "note to", "ai:", "ai :", "llm", "agent", "assistant", "ai model"],
                     #"\bif you are an? (?:AI|LLM|language model|AI assistant|assistant|chatbot|agent)\b|\bnote (?:for|to) (?:the |any )?(?:AI|LLM|assistant|agent|AI agent|AI assistant)s?\b|(?:^|\n)[ \t]{0,8}(?://|#|<!--|/\*|>|\*)?[ \t]{0,8}(?:AI|LLM)(?: agents?| assistants?| models?)?[ \t]{0,8}:[ \t]{0,8}\S|<!--[^>]{0,40}\b(?:AI|LLM) (?:agents?|assistants?|models?)\b"#),
        GuardPattern(kind: .override, name: "instructions to ignore earlier instructions (German)", needles: ["ignorier", "vergiss", "vergessen", "missachte"],
                     #"\b(?:ignorier(?:e|en|t)?|vergiss|vergessen sie|missachte)\b[^.\n]{0,40}?\b(?:anweisungen|instruktionen|regeln|vorgaben|befehle|systemprompt)\b"#),
        GuardPattern(kind: .override, name: "instructions to ignore earlier instructions (French)", needles: ["ignore", "oublie", "ne tiens pas"],
                     #"\b(?:ignore[sz]?|oublie[sz]?|ne tiens pas compte)\b[^.\n]{0,40}?\b(?:instructions|consignes|règles|directives)\b"#),
        GuardPattern(kind: .override, name: "instructions to ignore earlier instructions (Spanish)", needles: ["ignora", "ignore", "olvid", "omite", "descarta"],
                     #"\b(?:ignora|ignore|olvida|olvide|omite|descarta)\b[^.\n]{0,40}?\b(?:instrucciones|reglas|indicaciones|directrices)\b"#),
        GuardPattern(kind: .roleTokens, name: "chat-template tokens", needles: ["<|"],
                     #"<\|(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id|end_header_id|begin_of_text)\|>"#),
        GuardPattern(kind: .roleTokens, name: "Llama instruction markers", needles: ["[inst]", "[/inst]", "<<sys>>", "<</sys>>"], #"\[/?INST\]|<</?SYS>>"#, options: []),
        GuardPattern(kind: .roleTokens, name: "system tags", needles: ["<system", "</system", "<instructions", "</instructions"], #"</?(?:system|system_prompt|instructions)>"#),
        GuardPattern(kind: .roleTokens, name: "a faked conversation turn", needles: ["human", "assistant", "system", "ai"],
                     #"(?:^|\n)[ \t]{0,8}(?:#{2,3}[ \t]{0,8})?(?:Human|Assistant|System|AI)[ \t]{0,8}:[ \t]{0,8}\S"#, options: []),
        GuardPattern(kind: .roleTokens, name: "a faked system section", needles: ["#"], #"(?:^|\n)[ \t]{0,8}#{1,3}[ \t]{0,8}(?:system|instruction|instructions)[ \t]{0,8}:?[ \t]{0,8}(?:\n|$)"#),
        GuardPattern(kind: .exfiltration, name: "a request for the system prompt or hidden instructions", needles: ["system prompt", "system message", "initial", "hidden", "developer message", "initiali", "instructions you were", "prompt above", "pre-prompt", "preprompt", "instructions above"],
                     #"\b(?:reveal|show|print|repeat|output|display|tell me|give me|leak|dump|recite|write out|what (?:is|are|were)|share|list|translate|summari[sz]e|paraphrase|rewrite|encode|spell|echo|copy|quote)\b[^.\n?]{0,40}?\b(?:your|initial|original|hidden|secret|above|previous|full|exact|entire|complete)[ \t]{1,8}(?:system[ \t]{1,8}prompt|system[ \t]{1,8}message|initial[ \t]{1,8}(?:prompt|instructions)|hidden[ \t]{1,8}(?:prompt|instructions)|(?:hidden[ \t]{1,8})?developer[ \t]{1,8}message|initiali[sz]ation[ \t]{1,8}(?:text|prompt|instructions)|instructions you were given|prompt above|pre-?prompt|instructions above)\b"#),
        GuardPattern(kind: .exfiltration, name: "a request for the system prompt or hidden instructions", needles: ["systemprompt", "system-prompt", "systemanweisungen", "prompt sys", "prompt del", "instructions cach", "instrucciones"],
                     #"\b(?:deinen?|ihren?|ton|votre|tu|su|tus|vos|tes)[ \t]{1,8}(?:\w+[ \t]{1,8})?(?:systemprompt|system-prompt|systemanweisungen|prompt (?:système|systeme|del sistema)|instructions cachées|instrucciones (?:ocultas|del sistema))\b"#),
        GuardPattern(kind: .exfiltration, name: "a request for the system prompt or hidden instructions", needles: ["repeat", "print", "output"],
                     #"\b(?:repeat|print|output)\b[^.\n]{0,30}\b(?:everything|all|the (?:text|words))[ \t]{1,8}(?:above|before this|from the (?:start|beginning))"#),
        GuardPattern(kind: .exfiltration, name: "a request for keys or secrets", needles: ["api", "secret", "credential", "password", "token", "environment variable", "env var", "private key"],
                     #"\b(?:reveal|show|print|output|display|tell me|give me|leak|dump|send|share|list|what (?:is|are))\b[^.\n?]{0,30}?\b(?:your|the (?:server'?s|system'?s|assistant'?s))[ \t]{0,8}(?:api[ _-]?keys?|secret keys?|secrets|credentials|passwords?|access tokens?|environment variables|env vars|private keys?)\b"#),
        GuardPattern(kind: .exfiltration, name: "a request for keys or secrets", needles: ["you have access", "you can access", "you can see", "you can read", "api_key", "secret", "access_token", "password", "database_url"],
                     #"\b(?:environment variables?|env vars?|secrets|credentials|api[ _-]?keys?|tokens|passwords)\b[^.\n]{0,30}\byou (?:have|can) (?:access|see|read)\b|\b(?:print|show|give|tell|reveal|output|echo|send|paste|include|value of)\b[^.\n]{0,80}[$]?\b[A-Z0-9_]*(?:API_KEY|SECRET_ACCESS_KEY|SECRET_KEY|ACCESS_TOKEN|PASSWORD|DATABASE_URL)\b"#, options: []),
        GuardPattern(kind: .exfiltration, name: "a request for keys or secrets", needles: [".aws/credentials", ".ssh/id_", "/etc/shadow", ".netrc", ".pypirc", ".git-credentials", "password", "secret word", "passphrase", "access code", "backwards", "with dashes", "letter by letter", "in reverse", "one letter at a time"],
                     #"\b(?:cat|type|print|read|open)[ \t]{1,8}[~/.\w-]*(?:\.aws/credentials|\.ssh/id_\w+|/etc/shadow|\.netrc|\.pypirc|\.git-credentials)\b|\bwhat(?:'s| is) the (?:password|secret word|passphrase|access code)[ \t]{0,8}\?|\b(?:spell|write|say|give) (?:it|the password|the secret)[ \t]{1,8}(?:backwards|with dashes|letter by letter|in reverse|one letter at a time)"#),
        GuardPattern(kind: .exfiltration, name: "sending data to an outside address", needles: ["http", "url", "webhook", "endpoint", "server"],
                     #"\b(?:send|post|upload|exfiltrate|forward|transmit|append)\b[^.\n]{0,60}?\b(?:conversation|chat history|messages|keys?|secrets|credentials|passwords?|system prompt|data|contents)\b[^.\n]{0,40}?\b(?:to|into)[ \t]{1,8}(?:https?://|the url|this url|webhook|an? (?:url|endpoint|server))"#),
        GuardPattern(kind: .exfiltration, name: "a Markdown image that carries data out", needles: ["](http", "replace"],
                     #"!\[[^\]]*\]\(https?://[^)\s]*[?&][^)\s]*=[ \t]{0,8}(?:\{|\[|%7B|<|[A-Z_]{3,}\))|\breplace[ \t]{1,8}\S+[ \t]{1,8}with[ \t]{1,8}(?:the[ \t]{1,8})?(?:user'?s?|conversation|chat|previous messages|history|api key|secrets?)"#),
        GuardPattern(kind: .exfiltration, name: "sending data to an outside address", needles: ["http", "post ", "send ", "upload "],
                     #"https?://\S+[^.\n]{0,40}\b(?:followed by|with|appending|including|plus)[ \t]{1,8}(?:your|the)[ \t]{1,8}(?:api[ _-]?key|secret|token|password|credentials|system prompt)|\b(?:post|send|upload)[ \t]{1,8}(?:them|it|both|this|these)[ \t]{1,8}(?:as a comment|to https?://|to the url)"#),
        GuardPattern(kind: .encoded, name: "an instruction to decode and follow text", needles: ["decode", "decrypt", "translate", "deobfuscate", "base64", "rot13", "rot-13", "rot 13"],
                     #"\b(?:decode|decrypt|translate|deobfuscate|base64[- ]decode|rot13)\b[^.\n]{0,40}?\b(?:and|then)[ \t]{1,8}(?:follow|execute|obey|do|run|carry out|act on|perform)\b"#),
    ].compactMap { $0 }

    /// Every finding in `text`, in order of where it starts.
    public static func scan(_ text: String, settings: GuardSettings = GuardSettings()) -> [GuardFinding] {
        var findings: [GuardFinding] = []
        let checked = text.count > scanLimit ? String(text.prefix(scanLimit / 2)) + "\n" + String(text.suffix(scanLimit / 2)) : text
        let offsetShift = text.count > scanLimit ? text.count - scanLimit : 0
        func record(_ kind: GuardFinding.Kind, _ name: String, _ range: Range<String.Index>, in source: String, shift: Bool) {
            var start = source.distance(from: source.startIndex, to: range.lowerBound)
            var end = start + source[range].count
            if shift, start > scanLimit / 2 { start += offsetShift - 1; end += offsetShift - 1 }
            findings.append(GuardFinding(kind: kind, pattern: name, start: start, end: end, excerpt: excerpt(String(source[range]))))
        }
        let lowered = Array(checked.lowercased().utf8)
        // Each expression gets 1 s: one still running then (crafted text can make a regular expression
        // backtrack for minutes) is a finding of its own, never a silent pass.
        for pattern in patterns + settings.extra where pattern.mayMatch(lowered) {
            var found = 0
            let timedOut = !pattern.regex.enumerateMatches(in: checked, within: .seconds(1)) { match in
                if let range = Range(match.range, in: checked) { record(pattern.kind, pattern.name, range, in: checked, shift: true) }
                found += 1
                return found < 20
            }
            if timedOut {
                findings.append(GuardFinding(kind: pattern.kind, pattern: "\(pattern.name) (the text could not be checked in time)",
                                             start: 0, end: 0, excerpt: ""))
            }
        }
        findings += invisibleFindings(text)
        findings += encodedFindings(checked)
        return deduplicated(findings)
    }

    /// Zero-width and bidi-control characters, and Unicode tag characters. ZWJ/ZWNJ count only between
    /// two ASCII letters: emoji sequences and Indic or Persian text need them.
    static func invisibleFindings(_ text: String) -> [GuardFinding] {
        var findings: [GuardFinding] = []
        var offset = 0
        var previous: Character?
        var characters = text.makeIterator()
        var current = characters.next()
        while let character = current {
            let next = characters.next()
            for scalar in character.unicodeScalars {
                let value = scalar.value
                var name: String?
                switch value {
                case 0x200B, 0x2060, 0x180E: name = "zero-width characters"
                case 0xFEFF where offset > 0: name = "zero-width characters"
                case 0x202A...0x202E, 0x2066...0x2069: name = "bidirectional control characters"
                case 0xE0000...0xE007F where character.unicodeScalars.first?.value != 0x1F3F4:
                    // Tag characters after a black flag spell a subdivision flag (England, Scotland, Wales).
                    name = "Unicode tag characters (invisible text)"
                case 0x200C, 0x200D:
                    // A joiner is part of the character it follows; inside a word of ASCII letters it hides text.
                    let base = character.unicodeScalars.first.map { $0.isASCII && Character($0).isLetter } ?? false
                    let before = base || (previous.map { $0.isASCII && $0.isLetter } ?? false)
                    let after = next?.unicodeScalars.first.map { $0.isASCII && Character($0).isLetter } ?? false
                    if before, after { name = "zero-width characters inside a word" }
                default: break
                }
                if let name {
                    findings.append(GuardFinding(kind: .invisible, pattern: name, start: offset, end: offset + 1, excerpt: "<U+\(String(value, radix: 16, uppercase: true))>"))
                    if findings.count >= 50 { return findings }
                }
            }
            previous = character
            current = next
            offset += 1
        }
        return findings
    }

    static let base64Run = try! NSRegularExpression(pattern: #"[A-Za-z0-9+/_-]{16,}={0,2}"#)
    static let hexRun = try! NSRegularExpression(pattern: #"\b(?:[0-9a-fA-F]{2}[\s:]?){12,}"#)
    static let reversalMention = try! NSRegularExpression(pattern: #"\bbackwards?\b|\breversed?\b|\bin reverse\b"#, options: [.caseInsensitive])
    static let leetWord = try! NSRegularExpression(pattern: #"\b[a-z]*[0-9][a-z]+[0-9]*[a-z]*\b"#, options: [.caseInsensitive])
    static let rotationMention = try! NSRegularExpression(pattern: #"\brot[- ]?13\b|\bcaesar\b"#, options: [.caseInsensitive])
    static let charCodeRun = try! NSRegularExpression(pattern: #"\b\d{2,3}(?:\s*,\s*\d{2,3}){7,}"#)

    /// Base64 or hex runs that decode to text which itself reads as an injection or a request for secrets;
    /// rot13 text when the message speaks of rot13.
    static func encodedFindings(_ text: String) -> [GuardFinding] {
        var findings: [GuardFinding] = []
        let range = NSRange(text.startIndex..., in: text)
        func check(_ decoded: String, _ how: String, _ match: NSRange) {
            guard decoded.count >= 8 else { return }
            let printable = decoded.unicodeScalars.filter { $0.value >= 0x20 && $0.value < 0x7F || $0 == "\n" }.count
            guard printable * 10 >= decoded.unicodeScalars.count * 9 else { return }
            let inner = patterns.filter { $0.kind == .override || $0.kind == .exfiltration || $0.kind == .roleTokens }
            let innerRange = NSRange(decoded.startIndex..., in: decoded)
            let lowered = Array(decoded.lowercased().utf8)
            guard inner.contains(where: { $0.mayMatch(lowered) && $0.regex.firstMatch(in: decoded, range: innerRange) != nil }),
                  let textRange = Range(match, in: text) else { return }
            let start = text.distance(from: text.startIndex, to: textRange.lowerBound)
            findings.append(GuardFinding(kind: .encoded, pattern: "instructions hidden in \(how)", start: start, end: start + text[textRange].count,
                                         excerpt: excerpt(how + ": " + decoded)))
        }
        for match in base64Run.matches(in: text, range: range).prefix(200) {
            guard let swiftRange = Range(match.range, in: text) else { continue }
            var run = text[swiftRange].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
            while run.count % 4 != 0 { run += "=" }
            if let data = Data(base64Encoded: run), let decoded = String(data: data, encoding: .utf8) { check(decoded, "base64", match.range) }
        }
        for match in hexRun.matches(in: text, range: range).prefix(200) {
            guard let swiftRange = Range(match.range, in: text) else { continue }
            let digits = text[swiftRange].filter(\.isHexDigit)
            var bytes: [UInt8] = []
            var index = digits.startIndex
            while index < digits.endIndex, let next = digits.index(index, offsetBy: 2, limitedBy: digits.endIndex) {
                if let byte = UInt8(digits[index..<next], radix: 16) { bytes.append(byte) }
                index = next
            }
            check(String(decoding: bytes, as: UTF8.self), "hex", match.range)
        }
        func mentions(_ regex: NSRegularExpression) -> Bool { regex.firstMatch(in: text, range: range) != nil }
        if mentions(reversalMention) {
            check(String(text.reversed()), "reversed text", range)
        }
        // Leetspeak: digits standing for letters inside words.
        if mentions(leetWord) {
            let leet: [Character: Character] = ["0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "@": "a", "$": "s"]
            let plain = String(text.map { leet[$0] ?? $0 })
            if plain != text { check(plain, "leetspeak", range) }
        }
        // Character codes: fromCharCode(73,103,…) or a long list of numbers in the printable range.
        for match in charCodeRun.matches(in: text, range: range).prefix(50) {
            guard let swiftRange = Range(match.range, in: text) else { continue }
            let codes = text[swiftRange].split { !$0.isNumber }.compactMap { UInt32($0) }
            let scalars = codes.compactMap { (32...126).contains($0) ? Unicode.Scalar($0) : nil }
            if scalars.count == codes.count { check(String(String.UnicodeScalarView(scalars)), "character codes", match.range) }
        }
        if mentions(rotationMention) {
            let rotated = String(text.unicodeScalars.map { scalar -> Character in
                switch scalar.value {
                case 0x41...0x5A: return Character(Unicode.Scalar((scalar.value - 0x41 + 13) % 26 + 0x41)!)
                case 0x61...0x7A: return Character(Unicode.Scalar((scalar.value - 0x61 + 13) % 26 + 0x61)!)
                default: return Character(scalar)
                }
            })
            check(rotated, "rot13", range)
        }
        return findings
    }

    /// One finding per kind and place: overlapping matches of the same kind keep the first.
    static func deduplicated(_ findings: [GuardFinding]) -> [GuardFinding] {
        var kept: [GuardFinding] = []
        for finding in findings.sorted(by: { ($0.start, $0.end) < ($1.start, $1.end) }) {
            if kept.contains(where: { $0.kind == finding.kind && $0.start < finding.end && finding.start < $0.end }) { continue }
            kept.append(finding)
        }
        return kept
    }

    static func excerpt(_ text: String) -> String {
        var shown = TerminalSanitizer.line(text)
        if shown.count > 80 { shown = String(shown.prefix(77)) + "…" }
        return shown
    }
}

/// A request larger than `[guard] max_input_tokens` (or than the model's window after its output limit).
public struct OversizeRefusal: UserFacingError, Sendable, Equatable {
    public var model: String
    public var tokens: Int
    public var limit: Int
    public var userMessage: String {
        "guard: this request is about \(tokens) prompt tokens and \(model) takes at most \(limit) (max_input_tokens under [guard], or its "
            + "context window after the output limit); nothing was sent. Shorten it, start a new conversation, set on_oversize = \"truncate\" or [context] policy = \"compact\" (on the screen: /context trim or /context compact), or pick a model with a larger window"
    }
}

/// Findings the `[guard]` settings say to refuse on.
public struct GuardRefusal: UserFacingError, Sendable, Equatable {
    public var findings: [GuardFinding]
    public var why: String

    public init(findings: [GuardFinding], why: String) {
        self.findings = findings
        self.why = why
    }
    public var userMessage: String {
        "guard: \(why); nothing was sent: " + findings.prefix(3).map(\.line).joined(separator: "; ")
            + " (injection = \"flag\" under [guard] sends and only warns)"
    }
}

extension ChatEngine {
    /// The most prompt tokens `ref` is sent: `[guard] max_input_tokens`, else its window after the output limit.
    public func inputLimit(_ request: ChatRequest, ref: ModelRef) -> Int? {
        if let limit = config.inputGuard.maxInputTokens { return limit }
        guard let window = config.contextWindow(for: ref) else { return nil }
        return max(0, window - outputReserve(request, ref: ref))
    }

    /// The request as `on_oversize` allows it: unchanged when it fits; with its oldest turns dropped
    /// for `truncate` (never the system prompt, the newest message or those in `keep`, the pinned ones; how
    /// many were dropped is returned);
    /// else an `OversizeRefusal`. `ask` is decided by the caller, which can ask a person.
    public func fitInput(_ request: ChatRequest, ref: ModelRef, allowTruncate: Bool, keep: Set<Int> = []) throws(OversizeRefusal) -> (request: ChatRequest, dropped: Int) {
        guard let limit = inputLimit(request, ref: ref) else { return (request, 0) }
        let tokens = TokenEstimator.estimate(request)
        guard tokens > limit else { return (request, 0) }
        guard allowTruncate else { throw OversizeRefusal(model: ref.description, tokens: tokens, limit: limit) }
        // Each message is estimated once and the oldest are dropped by subtraction: estimating the
        // whole request again after each drop made a 10,000-message session take minutes.
        var remaining = tokens
        var drop = Set<Int>()
        let last = request.messages.count - 1
        for index in request.messages.indices where remaining > limit {
            guard index < last else { break }
            if request.messages[index].role == .system || keep.contains(index) { continue }
            remaining -= TokenEstimator.estimate(request.messages[index])
            drop.insert(index)
        }
        guard remaining <= limit else { throw OversizeRefusal(model: ref.description, tokens: remaining, limit: limit) }
        var trimmed = request
        trimmed.messages = request.messages.indices.filter { !drop.contains($0) }.map { request.messages[$0] }
        return (trimmed, drop.count)
    }
}
