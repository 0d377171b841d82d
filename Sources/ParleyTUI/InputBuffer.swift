import Foundation

/// The text being typed, with a cursor, and Emacs-style editing. Graphemes, so the cursor never
/// lands inside an emoji or on a combining mark.
public struct InputBuffer: Equatable, Sendable {
    public private(set) var characters: [Character] = []
    public private(set) var cursor = 0
    /// The last killed text, for Ctrl-Y.
    public private(set) var killRing = ""

    public init(_ text: String = "") {
        characters = Array(text)
        cursor = characters.count
    }

    public var text: String { String(characters) }
    public var isEmpty: Bool { characters.isEmpty }

    public mutating func set(_ text: String) {
        characters = Array(text)
        cursor = characters.count
    }

    public mutating func insert(_ text: String) {
        let new = Array(text)
        characters.insert(contentsOf: new, at: cursor)
        cursor += new.count
    }

    public mutating func backspace() {
        guard cursor > 0 else { return }
        characters.remove(at: cursor - 1)
        cursor -= 1
    }

    public mutating func deleteForward() {
        guard cursor < characters.count else { return }
        characters.remove(at: cursor)
    }

    public mutating func left() { cursor = max(0, cursor - 1) }
    public mutating func right() { cursor = min(characters.count, cursor + 1) }

    /// Start and end of the current line (the input may hold several).
    public mutating func lineStart() {
        while cursor > 0, characters[cursor - 1] != "\n" { cursor -= 1 }
    }

    public mutating func lineEnd() {
        while cursor < characters.count, characters[cursor] != "\n" { cursor += 1 }
    }

    /// Alt-< and Alt->: the start and end of the whole input.
    public mutating func inputStart() { cursor = 0 }
    public mutating func inputEnd() { cursor = characters.count }

    public mutating func wordLeft() { cursor = previousWordStart() }
    public mutating func wordRight() { cursor = nextWordEnd() }

    func previousWordStart() -> Int {
        var i = cursor
        while i > 0, !characters[i - 1].isLetterOrDigit { i -= 1 }
        while i > 0, characters[i - 1].isLetterOrDigit { i -= 1 }
        return i
    }

    func nextWordEnd() -> Int {
        var i = cursor
        while i < characters.count, !characters[i].isLetterOrDigit { i += 1 }
        while i < characters.count, characters[i].isLetterOrDigit { i += 1 }
        return i
    }

    /// Ctrl-K: to the end of the line.
    public mutating func killToEnd() {
        var end = cursor
        while end < characters.count, characters[end] != "\n" { end += 1 }
        if end == cursor, end < characters.count { end += 1 }  // at a line end, join the next line
        kill(cursor..<end)
    }

    /// Ctrl-U: to the start of the line.
    public mutating func killToStart() {
        var start = cursor
        while start > 0, characters[start - 1] != "\n" { start -= 1 }
        kill(start..<cursor)
        cursor = start
    }

    /// Ctrl-W: the word before the cursor (with the spaces after it).
    public mutating func killWordBackward() {
        var start = cursor
        while start > 0, characters[start - 1] == " " || characters[start - 1] == "\t" { start -= 1 }
        while start > 0, characters[start - 1] != " ", characters[start - 1] != "\n", characters[start - 1] != "\t" { start -= 1 }
        kill(start..<cursor)
        cursor = start
    }

    /// Alt-D: the word after the cursor.
    public mutating func killWordForward() {
        kill(cursor..<nextWordEnd())
    }

    public mutating func yank() { insert(killRing) }

    private mutating func kill(_ range: Range<Int>) {
        guard !range.isEmpty else { return }
        killRing = String(characters[range])
        characters.removeSubrange(range)
    }

    /// Up/Down inside a multi-line input; false when already on the first/last line (history takes over).
    public mutating func moveVertically(_ delta: Int) -> Bool {
        let lines = characters.split(separator: "\n", omittingEmptySubsequences: false).map { $0.count }
        var line = 0, offset = cursor
        while line < lines.count - 1, offset > lines[line] { offset -= lines[line] + 1; line += 1 }
        let target = line + delta
        guard target >= 0, target < lines.count else { return false }
        var position = 0
        for l in 0..<target { position += lines[l] + 1 }
        cursor = position + min(offset, lines[target])
        return true
    }
}

extension Character {
    var isLetterOrDigit: Bool { isLetter || isNumber || self == "_" }
}
