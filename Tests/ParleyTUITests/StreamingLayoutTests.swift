import Foundation
import Testing
import ParleyTestSupport
@testable import ParleyTUI

/// The streaming layout extends the last line's wrapper instead of wrapping it again, and lays out
/// once per frame: whatever pieces the text arrives in and whenever frames are drawn, the rows must
/// be exactly those of the whole text laid out at once.
@Suite struct StreamingLayoutTests {

    static let words = ["word", "a", "longerwordthatgoeson", " ", " ", " ", "**bold**", "*it", "_x_", "`code`", "\t", "日本語", "e\u{301}", "👍", "🏽",
                        "\u{200D}", "#", "# ", "- ", "1. ", "> ", "```", "\n", "\n", "snake_case", "    ", "x" + String(repeating: "y", count: 150)]

    func rows(_ state: ChatState) -> [[String]] {
        var state = state
        settleLayout(&state)
        return state.layout.rows(0..<state.layout.totalRows, entries: state.entries).map { row in row.chars.map { "\($0.character)\($0.role)" } }
    }

    @Test func streamedPiecesLayOutAsTheWholeText() {
        var rng = SeededGenerator(seed: 42)
        for round in 0..<150 {
            let width = [20, 37, 60, 120].randomElement(using: &rng)!
            var state = ChatState(width: width, height: 30, model: "local:smollm2")
            _ = reduce(&state, .resize(width: width, height: 30))
            type(&state, "q")
            _ = reduce(&state, .input(.key(.enter)))
            var text = ""
            for _ in 0..<Int.random(in: 1...80, using: &rng) {
                // Long runs of one line too, so the wrapper is extended across many rows.
                let piece = (0..<Int.random(in: 1...6, using: &rng)).map { _ in Self.words.randomElement(using: &rng)! }.joined()
                text += piece
                _ = reduce(&state, .engine(.delta(piece)))
                if Bool.random(using: &rng) { settleLayout(&state) }   // a frame, sometimes
            }
            // The same entry with the whole text, laid out from scratch.
            var fresh = ChatState(width: width, height: 30, model: "local:smollm2")
            _ = reduce(&fresh, .resize(width: width, height: 30))
            type(&fresh, "q")
            _ = reduce(&fresh, .input(.key(.enter)))
            _ = reduce(&fresh, .engine(.delta(text)))
            fresh.entries = state.entries
            fresh.layout.rebuild(fresh.entries, width: width)
            #expect(rows(state) == rows(fresh), "round \(round), width \(width): \(text.debugDescription)")
        }
    }
}

/// The screen scrolls the terminal's region when the conversation moved up, and puts only what came
/// in: the model of what the terminal then shows must be exact.
@Suite struct ScrollDetectionTests {
    func grid(_ rows: [String], width: Int = 10) -> CellGrid {
        var grid = CellGrid(width: width, height: rows.count)
        for (row, text) in rows.enumerated() { _ = grid.put(text, row: row, column: 0, role: .text) }
        return grid
    }

    @Test func aConversationMovedUpIsSeenAsAScrollOfItsRegion() throws {
        let before = grid(["a", "b", "c", "d", "e", "f", "status", "input"])
        let after = grid(["c", "d", "e", "f", "g", "h", "status", "input"])
        let found = try #require(TerminalScreen.scroll(from: before, to: after))
        #expect(found.by == 2)
        #expect(found.rows == 6, "the status bar and input are outside the region")
        let shown = before.scrolled(rows: found.rows, by: found.by)
        // The moved rows are what the terminal now shows; the two that came in are unknown.
        for row in 0..<4 { #expect(shown.text(row: row) == after.text(row: row)) }
        for row in 4..<6 { #expect(shown[row, 0].text == "\u{0}") }
        for row in 6..<8 { #expect(shown.text(row: row) == before.text(row: row)) }
    }

    @Test func unrelatedFramesAreNotScrolled() {
        #expect(TerminalScreen.scroll(from: grid(["a", "b", "c", "d", "e", "f"]), to: grid(["x", "y", "z", "a", "b", "c"])) == nil)
        #expect(TerminalScreen.scroll(from: grid(["a", "b", "c", "d"]), to: grid(["a", "b", "c", "d"])) == nil)
    }
}
