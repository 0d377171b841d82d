import Foundation
import Testing
@testable import ParleyTUI
import ParleyKit

@Suite struct DisplayWidthTests {
    @Test(arguments: [
        ("a", 1), ("é", 1), ("e\u{301}", 1), ("日", 2), ("한", 2), ("ｱ", 1), ("Ａ", 2), ("😀", 2),
        ("👩‍👩‍👧", 2), ("🇫🇷", 2), ("❤️", 2), ("1️⃣", 2), ("\u{200B}", 0), ("\u{7}", 0),
    ] as [(String, Int)])
    func widths(_ text: String, _ expected: Int) {
        #expect(DisplayWidth.of(Character(text)) == expected)
    }
}

@Suite struct CellGridTests {
    @Test func wideCharacterAtTheEdgeNeverOverflows() {
        var grid = CellGrid(width: 5, height: 1)
        let end = grid.put("ab日本", row: 0, column: 0, role: .text)
        #expect(end == 5)
        #expect(grid.text(row: 0) == "ab日 ")
        #expect(grid[0, 3].isContinuation)
        #expect(grid[0, 4].text == " ")
    }

    @Test func combiningMarksStayWithTheirBase() {
        var grid = CellGrid(width: 4, height: 1)
        grid.put("e\u{301}x", row: 0, column: 0, role: .text)
        #expect(grid[0, 0].text == "e\u{301}")
        #expect(grid[0, 1].text == "x")
    }
}

@Suite struct LayoutTests {
    @Test func wrapsByDisplayWidthAndNoRowOverflows() {
        var state = ChatState(width: 24, height: 30, model: "local:smollm2")
        _ = reduce(&state, .resize(width: 24, height: 30))
        type(&state, "x")
        _ = reduce(&state, .input(.key(.enter)))
        let text = "日本語のテキストはとても長いので折り返す必要があります 👩‍👩‍👧 and e\u{301}e\u{301} done"
        _ = reduce(&state, .engine(.delta(text)))
        let frame = Renderer.render(state)
        for row in 0..<frame.grid.height {
            let width = frame.grid.text(row: row).reduce(0) { $0 + DisplayWidth.of($1) }
            #expect(width <= 24, "row \(row) is \(width) cells: \(frame.grid.text(row: row))")
        }
        let joined = frame.grid.lines.joined()
        #expect(joined.contains("👩‍👩‍👧"))
        #expect(joined.contains("e\u{301}e\u{301}"))
        // Every character of the reply is on screen, in order.
        let shown = frame.grid.lines.map { $0.trimmingCharacters(in: .whitespaces) }.joined()
        #expect(shown.contains(text.replacingOccurrences(of: " ", with: "")) || shown.replacingOccurrences(of: " ", with: "").contains(text.replacingOccurrences(of: " ", with: "")))
    }

    @Test func markdownWhileStreamingNeverMovesEarlierText() {
        var state = ChatState(width: 50, height: 30, model: "local:smollm2")
        _ = reduce(&state, .resize(width: 50, height: 30))
        type(&state, "x")
        _ = reduce(&state, .input(.key(.enter)))
        let reply = "# Title\nSome **bold** and *it* and `code` here.\n- item one\n> quoted\n```swift\nlet x = 1\n```\nafter"
        var previous: [String] = []
        for character in reply {
            _ = reduce(&state, .engine(.delta(String(character))))
            let lines = Array(screen(state).prefix(state.paneHeight))
            // Text already on screen stays where it is: a row may only gain characters at its end.
            for (i, line) in previous.enumerated() where !line.isEmpty && !line.hasPrefix("▌") {
                #expect(lines[i].hasPrefix(line), "row \(i) moved: '\(line)' became '\(lines[i])'")
            }
            previous = lines
        }
        let grid = Renderer.render(state).grid
        func roles(of needle: String) -> [StyleRole] {
            for row in 0..<grid.height {
                let text = grid.text(row: row)
                if let range = text.range(of: needle) {
                    let start = text.distance(from: text.startIndex, to: range.lowerBound)
                    // Map characters to columns (all ASCII here).
                    return (start..<(start + needle.count)).map { grid[row, $0].role }
                }
            }
            // Missing text fails the test: an empty list would make every allSatisfy below pass.
            Issue.record("'\(needle)' is not on the screen")
            return []
        }
        #expect(roles(of: "Title").allSatisfy { $0 == .heading })
        #expect(roles(of: "bold").allSatisfy { $0 == .bold })
        #expect(roles(of: "it*").first == .italic)
        #expect(roles(of: "code").allSatisfy { $0 == .inlineCode })
        #expect(roles(of: "- item").first == .bullet)
        #expect(roles(of: "quoted").allSatisfy { $0 == .quote })
        #expect(roles(of: "```swift").allSatisfy { $0 == .codeLabel })
        #expect(roles(of: "let x = 1").allSatisfy { $0 == .codeBlock })
        #expect(roles(of: "after").allSatisfy { $0 == .text })
        // The code block's background runs to the right edge.
        let codeRow = (0..<grid.height).first { grid.text(row: $0).contains("let x = 1") }!
        #expect(grid[codeRow, grid.width - 1].role == .codeBlock)
    }

    @Test func halfArrivedBoldIsPlainUntilClosed() {
        var styler = MarkdownStyler()
        let open = styler.style(line: "a **bo")
        #expect(open.chars.allSatisfy { $0.role == .text })
        let closed = styler.style(line: "a **bold**")
        #expect(closed.chars.map(\.character) == Array("a **bold**"))
        #expect(closed.chars[4].role == .bold)
    }

    @Test func unclosedFenceStylesFollowingLinesAsCodeRightAway() {
        var styler = MarkdownStyler()
        _ = styler.style(line: "```python")
        #expect(styler.style(line: "print(1)").chars.allSatisfy { $0.role == .codeBlock })
    }
}

@Suite struct ScrollTests {
    @Test func followsTheReplyAtTheBottom() {
        var state = conversation(turns: 10)
        let lines = screen(state)
        #expect(lines[state.paneHeight - 2].contains("answer 9 line 2"))
        _ = reduce(&state, .input(.key(.enter)))  // empty input: nothing
        #expect(state.scrollFromBottom == 0)
    }

    @Test func scrolledUpViewStaysPutWhileTextArrivesAndSaysSo() {
        var state = conversation(turns: 10)
        type(&state, "more")
        _ = reduce(&state, .input(.key(.enter)))
        _ = reduce(&state, .input(.key(.pageUp)))
        #expect(state.scrollFromBottom > 0)
        let before = screen(state)
        for i in 0..<20 { _ = reduce(&state, .engine(.delta("streamed line \(i)\n"))) }
        let after = screen(state)
        #expect(Array(after[0..<(state.paneHeight - 1)]) == Array(before[0..<(state.paneHeight - 1)]))
        #expect(after[state.paneHeight - 1].contains("new text below"))
        _ = reduce(&state, .input(.key(.end)))
        #expect(state.scrollFromBottom == 0)
        #expect(!state.newTextBelow)
        #expect(screen(state).contains { $0.contains("streamed line 19") })
    }

    @Test func pageUpHomeAndWheelAreClamped() {
        var state = conversation(turns: 30)
        _ = reduce(&state, .input(.key(.home)))
        #expect(state.scrollFromBottom == state.maxScroll)
        #expect(screen(state)[0].contains("you"))
        for _ in 0..<100 { _ = reduce(&state, .input(.key(.pageUp))) }
        #expect(state.scrollFromBottom == state.maxScroll)
        _ = reduce(&state, .input(.key(.wheelDown)))
        #expect(state.scrollFromBottom == state.maxScroll - 3)
    }

    @Test func tenThousandMessagesRenderOnlyWhatIsVisible() {
        var state = conversation(turns: 5000, replyLines: 1)
        #expect(state.entries.count == 10_000)
        let frame = Renderer.render(state)
        #expect(frame.grid.lines.contains { $0.contains("answer 4999 line 0") })
        _ = reduce(&state, .input(.key(.home)))
        #expect(Renderer.render(state).grid.lines[1].contains("question 0"))
    }

    @Test func resizeMeasuresOnlyTheBottomAndPageUpReachesTheFirstMessage() {
        var state = conversation(turns: 2000, replyLines: 1)
        _ = reduce(&state, .resize(width: 50, height: 20))
        // Only the rows near the view are wrapped after a resize; older entries wait until scrolled to.
        #expect(state.layout.firstMeasured > 0)
        #expect(state.layout.totalRows >= ConversationLayout.rebuildRows)
        #expect(screen(state).contains { $0.contains("answer 1999 line 0") })
        var pages = 0
        while state.scrollFromBottom < state.maxScroll || state.layout.firstMeasured > 0 {
            _ = reduce(&state, .input(.key(.pageUp)))
            pages += 1
            if pages > 10_000 { break }
        }
        #expect(state.layout.firstMeasured == 0)
        #expect(screen(state)[1].contains("question 0"))
        // The measured heights match a full rebuild at the same width.
        var full = state.layout
        full.rebuild(state.entries, width: 50, rows: .max)
        #expect(full.ends == state.layout.ends)
    }

    @Test func scrolledUpViewSurvivesAResizeBeyondTheMeasuredRows() {
        var state = conversation(turns: 2000, replyLines: 1)
        for _ in 0..<400 { _ = reduce(&state, .input(.key(.pageUp))) }
        let offset = state.scrollFromBottom
        #expect(offset > ConversationLayout.rebuildRows)
        _ = reduce(&state, .resize(width: 60, height: 20))
        #expect(state.scrollFromBottom == offset)
    }
}

@Suite struct StatusBarTests {
    func status(width: Int) -> String {
        var state = conversation(width: width, height: 10, turns: 1)
        state.status.timeToFirstTokenMs = 210
        state.status.tokensPerSecond = 105
        state.status.tokensIn = 37
        state.status.tokensOut = 10
        state.status.contextUsed = 47
        state.status.contextWindow = 8192
        state.status.todayCost = "$0.00"
        return Renderer.render(state).grid.lines.last ?? ""
    }

    @Test func wideShowsEverythingInOrder() {
        let bar = status(width: 140)
        #expect(bar == " local:smollm2 │ idle │ ttft 210 ms │ 105 tok/s │ in 37 out 10 │ turn $0.00 │ session $0.00 │ today $0.00 │ ctx 0%")
    }

    @Test func spendNearALimitIsAWarningAndTodayOutranksTheRest() {
        var state = conversation(width: 60, height: 10, turns: 1)
        _ = reduce(&state, .engine(.spend(turn: "$0.012", session: "$0.85", today: "$0.85/$1.00", warn: true)))
        let rendered = Renderer.render(state)
        let bar = rendered.grid.lines.last ?? ""
        #expect(bar.contains("today $0.85/$1.00"))
        #expect(!bar.contains("session"))
        let column = bar.distance(from: bar.startIndex, to: bar.range(of: "today")!.lowerBound)
        #expect(rendered.grid[rendered.grid.height - 1, column].role == .statusWarn)
    }

    @Test func aFallbackShowsOnTheBarAndInTheRepliesHeader() {
        var state = conversation(width: 100, height: 12, turns: 0)
        type(&state, "hello")
        _ = reduce(&state, .input(.key(.enter)))
        _ = reduce(&state, .engine(.fellBack(from: "groq:llama-3.3-70b-versatile", to: "local:smollm2", reason: "rate limited")))
        let lines = screen(state)
        #expect(lines.last?.contains("fell back to local:smollm2 (rate limited)") == true)
        #expect(lines.contains { $0.contains("local:smollm2 · fell back from groq:llama-3.3-70b-versatile") })
        _ = reduce(&state, .engine(.rateLimit("rate limit: 2/100 requests")))
        #expect(screen(state).last?.contains("rate limit: 2/100 requests") == true)
        _ = reduce(&state, .engine(.cacheHit))
        _ = reduce(&state, .engine(.spend(turn: "$0.00", session: "$0.00", today: "$0.00", warn: false)))
        #expect(screen(state).last?.contains("turn $0.00 cached") == true)
        #expect(screen(state).contains { $0.contains("· fell back from groq:llama-3.3-70b-versatile · cached") })
        _ = reduce(&state, .engine(.rateLimit(nil)))
        #expect(screen(state).last?.contains("2/100") == false)
    }

    @Test func narrowDropsTheLeastImportantFirst() {
        #expect(status(width: 104) == " local:smollm2 │ idle │ ttft 210 ms │ 105 tok/s │ in 37 out 10 │ turn $0.00 │ session $0.00 │ ctx 0%")
        #expect(status(width: 100) == " local:smollm2 │ idle │ ttft 210 ms │ 105 tok/s │ in 37 out 10 │ turn $0.00 │ ctx 0%")
        #expect(status(width: 80) == " local:smollm2 │ idle │ ttft 210 ms │ 105 tok/s │ turn $0.00 │ ctx 0%")
        #expect(status(width: 50) == " local:smollm2 │ idle │ turn $0.00 │ ctx 0%")
        #expect(status(width: 30) == " local:smollm2 │ idle")
        #expect(status(width: 22) == " local:smollm2 │ idle")
        #expect(status(width: 20) == " local:smollm2")
    }

    @Test func unknownPriceIsAQuestionMarkNeverZero() {
        var state = conversation(width: 120, height: 10, turns: 0)
        _ = reduce(&state, .modelChanged(name: "openai:gpt-4o-mini", contextWindow: nil, turnCostText: "?"))
        _ = reduce(&state, .input(.key(.character("x"))))
        #expect(Renderer.render(state).grid.lines.last?.contains("turn ?") == true)
    }
}

@Suite struct SizeTests {
    @Test func smallestSupportedSizeDrawsEveryPart() {
        let state = conversation(width: 20, height: 6, turns: 2)
        let lines = screen(state)
        #expect(lines.count == 6)
        #expect(lines[4].hasPrefix("›"))
        #expect(lines[5].contains("local:smollm2"))
    }

    @Test func belowThatOneLineSaysSo() {
        let state = conversation(width: 19, height: 6, turns: 1)
        #expect(screen(state)[0].hasPrefix("terminal too small"))
        #expect(Renderer.render(state).cursor == nil)
        let short = conversation(width: 40, height: 5, turns: 1)
        #expect(screen(short)[0] == "terminal too small (min 20×6)")
        // Narrower still: a shorter message, never one cut mid-word.
        #expect(screen(conversation(width: 12, height: 3, turns: 1))[0] == "too small")
        #expect(screen(conversation(width: 5, height: 1, turns: 1))[0] == "small")
    }

    @Test func resizeKeepsFollowingAndRewraps() {
        var state = conversation(width: 80, height: 20, turns: 3, replyLines: 1)
        _ = reduce(&state, .resize(width: 30, height: 10))
        #expect(screen(state).count == 10)
        #expect(screen(state).allSatisfy { $0.count <= 30 })
        #expect(state.scrollFromBottom == 0)
    }
}

/// The status bar's costs as the app computes them from the ledger.
@Suite struct SpendTests {
    func engine(budget: String) throws -> ChatEngine {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("parley-spend-\(UUID().uuidString)")
        let paths = ParleyPaths(configDirectory: home, dataDirectory: home, runtimeDirectory: home)
        return ChatEngine(config: try ParleyConfig.parse(budget, file: "c.toml"), paths: paths, environment: [:])
    }

    @Test func todayAgainstTheDailyLimitWarnsFromEightyPercent() async throws {
        let engine = try engine(budget: "[budget]\ndaily = 1.0\n")
        let gpt = ModelRef(provider: "openai", model: "gpt-4o")
        try await engine.stores.ledger().record(.init(session: "s1", ref: gpt, usage: nil, cost: 0.5, ttftMs: nil, durationMs: 1, attempts: 1, outcome: .ok), releasing: nil)
        #expect(await ChatApp.spendEvent(engine, session: "s1", turnCost: 0.5) == .spend(turn: "$0.500", session: "$0.500", today: "$0.500/$1.00", warn: false))
        try await engine.stores.ledger().record(.init(session: "s2", ref: gpt, usage: nil, cost: 0.3, ttftMs: nil, durationMs: 1, attempts: 1, outcome: .ok), releasing: nil)
        try await engine.stores.ledger().record(.init(session: "s2", ref: ModelRef(provider: "box", model: "x"), usage: nil, cost: nil, ttftMs: nil, durationMs: 1, attempts: 1, outcome: .ok), releasing: nil)
        #expect(await ChatApp.spendEvent(engine, session: "s2", turnCost: nil) == .spend(turn: "?", session: "$0.300+?", today: "$0.800+?/$1.00", warn: true))
    }
}

@Suite struct ThemeNameTests {
    /// `/theme ../../x` and `PARLEY_THEME=/etc/x` must not read a file outside the theme directories.
    @Test func aThemeNameIsNeverAPath() throws {
        #expect(ThemeStore.isValidName("high-contrast"))
        for name in ["../../x", "/etc/passwd", "a/b", "", ".hidden", "x.toml"] {
            #expect(!ThemeStore.isValidName(name), "\(name)")
        }
        // A theme-like file one level above the theme directory is not reachable by name.
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("themes-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("themes"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        try Data("[text]\nfg = 1\n".utf8).write(to: root.appendingPathComponent("secret.toml"))
        var store = ThemeStore(configDirectory: root, environment: [:], executable: "/nonexistent/parley")
        store.directories = [root.appendingPathComponent("themes")]
        #expect { _ = try store.load("../secret") } throws: { "\($0)".contains("not a theme name") || ($0 as? ConfigError)?.message.contains("not a theme name") == true }
    }
}
