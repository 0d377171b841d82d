import Foundation

/// A grapheme and the role it is drawn with.
public struct StyledChar: Equatable, Sendable {
    public var character: Character
    public var role: StyleRole

    public init(_ character: Character, _ role: StyleRole) {
        self.character = character
        self.role = role
    }
}

/// One logical line after styling: its characters, and a role that fills the rest of the row (code blocks).
public struct StyledLine: Equatable, Sendable {
    public var chars: [StyledChar]
    public var fill: StyleRole?
    /// Indent for wrapped continuation rows (list items, quotes).
    public var hangingIndent: Int

    public init(chars: [StyledChar], fill: StyleRole? = nil, hangingIndent: Int = 0) {
        self.chars = chars
        self.fill = fill
        self.hangingIndent = hangingIndent
    }
}

/// Light Markdown, line by line, so streaming text is styled as it arrives. Markers stay on screen
/// (dimmed), so when a closing `**` or backtick arrives the text changes colour but never moves.
/// A line's style depends only on earlier lines (fence state), so finished lines never change.
public struct MarkdownStyler: Sendable, Equatable {
    public private(set) var inCodeBlock = false
    /// The role the last styled line gives plain characters (what more text on it would get).
    public private(set) var lastBase = StyleRole.text
    /// Code blocks opened so far; the closing fence shows the block's number (`/copy N` names it).
    public private(set) var blocks = 0

    public init() {}

    public mutating func style(line: Substring) -> StyledLine {
        let trimmed = line.drop { $0 == " " }
        lastBase = .text
        if trimmed.hasPrefix("```") || trimmed.hasPrefix("~~~") {
            // The fence stays as typed (so nothing shifts when its language arrives), shown as the
            // block's label line: ```swift.
            inCodeBlock.toggle()
            lastBase = .codeLabel
            var chars = line.map { StyledChar($0, .codeLabel) }
            // Numbered where the block ends, after what was typed, so nothing before it moves.
            if inCodeBlock { blocks += 1 } else { chars += " [\(blocks)]".map { StyledChar($0, .marker) } }
            return StyledLine(chars: chars, fill: .codeBlock)
        }
        if inCodeBlock {
            lastBase = .codeBlock
            return StyledLine(chars: line.map { StyledChar($0 == "\t" ? " " : $0, .codeBlock) }, fill: .codeBlock)
        }
        if let level = headingLevel(trimmed) {
            let markerCount = level + 1
            lastBase = .heading
            var chars = trimmed.prefix(markerCount).map { StyledChar($0, .marker) }
            chars += inline(trimmed.dropFirst(markerCount), base: .heading)
            return StyledLine(chars: chars)
        }
        if trimmed.hasPrefix(">") {
            let body = trimmed.dropFirst().drop { $0 == " " }
            lastBase = .quote
            var chars = [StyledChar("│", .quote), StyledChar(" ", .quote)]
            chars += inline(body, base: .quote)
            return StyledLine(chars: chars, hangingIndent: 2)
        }
        let indent = line.count - trimmed.count
        if let bulletLength = listMarkerLength(trimmed) {
            // The marker keeps its character (a `-` does not turn into `•` when its space arrives).
            var chars = Array(repeating: StyledChar(" ", .text), count: indent)
            chars += trimmed.prefix(bulletLength).map { StyledChar($0, .bullet) }
            chars += inline(trimmed.dropFirst(bulletLength), base: .text)
            return StyledLine(chars: chars, hangingIndent: indent + bulletLength)
        }
        return StyledLine(chars: inline(line, base: .text))
    }

    func headingLevel(_ line: Substring) -> Int? {
        var level = 0
        for c in line { if c == "#" { level += 1 } else { break } }
        guard (1...6).contains(level), line.count > level, line[line.index(line.startIndex, offsetBy: level)] == " " else { return nil }
        return level
    }

    func listMarkerLength(_ line: Substring) -> Int? {
        if line.hasPrefix("- ") || line.hasPrefix("* ") || line.hasPrefix("+ ") { return 2 }
        var digits = 0
        for c in line { if c.isASCII, c.isNumber { digits += 1 } else { break } }
        guard digits > 0, digits < 4 else { return nil }
        let rest = line.dropFirst(digits)
        if rest.hasPrefix(". ") || rest.hasPrefix(") ") { return digits + 2 }
        return nil
    }

    /// Bold (`**`/`__`), italic (`*`/`_`) and inline code. A span is styled only once its closing
    /// marker is on the line; until then it shows as plain text.
    func inline(_ text: Substring, base: StyleRole) -> [StyledChar] {
        let chars = Array(text)
        var out = chars.map { StyledChar($0 == "\t" ? " " : $0, base) }
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if c == "`" {
                if let close = chars[(i + 1)...].firstIndex(of: "`") {
                    out[i].role = .marker
                    out[close].role = .marker
                    for k in (i + 1)..<close { out[k].role = .inlineCode }
                    i = close + 1
                    continue
                }
            } else if (c == "*" || c == "_"), i + 1 < chars.count, chars[i + 1] == c {
                if let close = findDouble(chars, c, from: i + 2), close > i + 2 {
                    out[i].role = .marker; out[i + 1].role = .marker
                    out[close].role = .marker; out[close + 1].role = .marker
                    for k in (i + 2)..<close where out[k].role == base { out[k].role = .bold }
                    i = close + 2
                    continue
                }
            } else if c == "*" || (c == "_" && (i == 0 || !chars[i - 1].isLetter)) {
                if i + 1 < chars.count, chars[i + 1] != " ",
                   let close = chars[(i + 1)...].firstIndex(where: { $0 == c }), close > i + 1, chars[close - 1] != " " {
                    out[i].role = .marker
                    out[close].role = .marker
                    for k in (i + 1)..<close where out[k].role == base { out[k].role = .italic }
                    i = close + 1
                    continue
                }
            }
            i += 1
        }
        return out
    }

    func findDouble(_ chars: [Character], _ c: Character, from start: Int) -> Int? {
        var j = start
        while j + 1 < chars.count {
            if chars[j] == c, chars[j + 1] == c { return j }
            j += 1
        }
        return nil
    }
}
