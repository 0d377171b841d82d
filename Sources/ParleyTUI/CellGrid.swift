import Foundation

/// What a cell is drawn as; a theme turns roles into colours and attributes.
public enum StyleRole: String, CaseIterable, Sendable {
    case text, dim, userHeader = "user", assistantHeader = "assistant", note, error
    case heading, bold, italic, inlineCode = "code", codeBlock = "code_block", codeLabel = "code_label"
    case quote, bullet, marker
    case input, prompt, status, statusAccent = "status_accent", statusWarn = "status_warn", newBelow = "new_below"
    case overlay, overlaySelected = "overlay_selected"
}

/// One terminal cell. A wide grapheme takes its cell and the next, whose `text` is empty.
public struct Cell: Equatable, Sendable {
    public var text: String
    public var role: StyleRole

    public init(text: String = " ", role: StyleRole = .text) {
        self.text = text
        self.role = role
    }

    public static let blank = Cell()
    public var isContinuation: Bool { text.isEmpty }
}

/// The screen as the renderer draws it and tests read it. No I/O.
public struct CellGrid: Equatable, Sendable {
    public let width: Int
    public let height: Int
    public private(set) var cells: [Cell]

    public init(width: Int, height: Int) {
        self.width = max(0, width)
        self.height = max(0, height)
        cells = Array(repeating: .blank, count: self.width * self.height)
    }

    public subscript(row: Int, column: Int) -> Cell {
        get { cells[row * width + column] }
        set { cells[row * width + column] = newValue }
    }

    /// Fills a row from `column` to the end with blanks of `role`.
    public mutating func fill(row: Int, from column: Int = 0, role: StyleRole) {
        guard row >= 0, row < height else { return }
        for c in max(0, column)..<width { self[row, c] = Cell(text: " ", role: role) }
    }

    /// Writes graphemes from `column`, clipping at the right edge; a wide grapheme that would not fit
    /// is replaced by a blank so no cell overflows. Returns the column after the last cell written.
    @discardableResult
    public mutating func put(_ text: some Sequence<Character>, row: Int, column: Int, role: StyleRole) -> Int {
        var c = column
        for character in text {
            c = put(character, row: row, column: c, role: role)
            if c >= width { break }
        }
        return c
    }

    @discardableResult
    public mutating func put(_ character: Character, row: Int, column: Int, role: StyleRole) -> Int {
        guard row >= 0, row < height, column >= 0, column < width else { return column }
        let w = DisplayWidth.of(character)
        if w == 0 { return column }
        if w == 2 {
            guard column + 1 < width else {
                self[row, column] = Cell(text: " ", role: role)
                return column + 1
            }
            self[row, column] = Cell(text: String(character), role: role)
            self[row, column + 1] = Cell(text: "", role: role)
            return column + 2
        }
        self[row, column] = Cell(text: String(character), role: role)
        return column + 1
    }

    /// A row as text (continuations skipped), for tests and for reading the screen.
    public func text(row: Int) -> String {
        var out = ""
        for c in 0..<width where !self[row, c].isContinuation { out += self[row, c].text }
        return out
    }

    /// The whole grid as lines with trailing spaces removed.
    public var lines: [String] {
        (0..<height).map { row in
            var line = text(row: row)
            while line.hasSuffix(" ") { line.removeLast() }
            return line
        }
    }

    public func roles(row: Int) -> [StyleRole] { (0..<width).map { self[row, $0].role } }

    /// Whether row `row` equals `other`'s row `otherRow` (same width).
    func sameRow(_ row: Int, as other: CellGrid, row otherRow: Int) -> Bool {
        guard width == other.width else { return false }
        return cells[(row * width)..<((row + 1) * width)] == other.cells[(otherRow * width)..<((otherRow + 1) * width)]
    }

    /// This grid with rows 0..<rows moved up by `by` (what a terminal's scroll of that region shows):
    /// the rows that came in at the bottom of the region are unknown, so they are marked with a cell no
    /// frame ever draws and are all put again.
    func scrolled(rows: Int, by: Int) -> CellGrid {
        var copy = self
        for row in 0..<rows {
            for column in 0..<width {
                copy.cells[row * width + column] = row + by < rows ? cells[(row + by) * width + column] : Cell(text: "\u{0}", role: .text)
            }
        }
        return copy
    }
}
