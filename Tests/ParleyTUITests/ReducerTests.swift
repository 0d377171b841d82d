import Foundation
import Testing
import ParleyCore
@testable import ParleyTUI
import ParleyKit

@Suite struct ReducerTests {
    func fresh() -> ChatState {
        var state = ChatState(width: 60, height: 20, model: "local:smollm2")
        _ = reduce(&state, .resize(width: 60, height: 20))
        state.modelChoices = [ModelChoice(name: "local:smollm2", keyStatus: "local"), ModelChoice(name: "groq:llama-3.3-70b-versatile", keyStatus: "no key")]
        state.themeNames = ["dark", "light", "basic16", "high-contrast"]
        return state
    }

    @Test func enterSendsTheConversationAndStartsAStreamingReply() {
        var state = fresh()
        state.systemPrompt = "be brief"
        type(&state, "hello")
        let effects = reduce(&state, .input(.key(.enter)))
        #expect(effects == [.appendHistory("hello"), .send(messages: [.user("hello")], system: "be brief")])
        #expect(state.busy)
        #expect(state.entries.map(\.kind) == [.user, .assistant])
        #expect(state.entries[1].status == .streaming)
        #expect(state.input.isEmpty)
        _ = reduce(&state, .engine(.delta("hi there")))
        _ = reduce(&state, .engine(.finished(tokensPerSecond: 50)))
        type(&state, "again")
        let second = reduce(&state, .input(.key(.enter)))
        #expect(second.last == .send(messages: [.user("hello"), .assistant("hi there"), .user("again")], system: "be brief"))
    }

    @Test func escapeAndCtrlCStopAReplyButNeverQuit() {
        var state = fresh()
        type(&state, "q")
        _ = reduce(&state, .input(.key(.enter)))
        #expect(reduce(&state, .input(.key(.escape))) == [.stop])
        _ = reduce(&state, .engine(.delta("partial")))
        _ = reduce(&state, .engine(.stopped))
        #expect(state.entries.last?.status == .stopped)
        #expect(state.entries.last?.text == "partial")
        #expect(!state.busy)
        type(&state, "q2")
        _ = reduce(&state, .input(.key(.enter)))
        #expect(reduce(&state, .input(.key(.control("c")))) == [.stop])
    }

    @Test func ctrlCTwiceOnAnEmptyIdlePromptQuits() {
        var state = fresh()
        #expect(reduce(&state, .input(.key(.control("c")))).isEmpty)
        #expect(state.notice == "press Ctrl-C again to quit")
        #expect(reduce(&state, .input(.key(.control("c")))) == [.quit])
        var other = fresh()
        _ = reduce(&other, .input(.key(.control("c"))))
        _ = reduce(&other, .input(.key(.character("a"))))
        #expect(reduce(&other, .input(.key(.control("c")))).isEmpty)  // clears the input instead
        #expect(other.input.isEmpty)
    }

    @Test func ctrlDOnEmptyPromptAndSlashQuitQuit() {
        var state = fresh()
        #expect(reduce(&state, .input(.key(.control("d")))) == [.quit])
        type(&state, "/quit")
        #expect(reduce(&state, .input(.key(.enter))).contains(.quit))
    }

    @Test func altEnterAndCtrlJInsertNewlinesAndTheInputGrows() {
        var state = fresh()
        type(&state, "one")
        _ = reduce(&state, .input(.key(.alt("\r"))))
        type(&state, "two")
        _ = reduce(&state, .input(.key(.control("j"))))
        type(&state, "three")
        #expect(state.input.text == "one\ntwo\nthree")
        #expect(state.inputRows == 3)
        let lines = screen(state)
        #expect(lines[state.height - 4] == "› one")
        #expect(lines[state.height - 2] == "  three")
        for _ in 0..<20 { _ = reduce(&state, .input(.key(.alt("\r")))) }
        #expect(state.inputRows == (state.height - 2) / 3)
    }

    @Test func emacsEditing() {
        var state = fresh()
        type(&state, "hello brave world")
        _ = reduce(&state, .input(.key(.control("w"))))
        #expect(state.input.text == "hello brave ")
        _ = reduce(&state, .input(.key(.control("a"))))
        _ = reduce(&state, .input(.key(.alt("d"))))
        #expect(state.input.text == " brave ")
        _ = reduce(&state, .input(.key(.control("e"))))
        _ = reduce(&state, .input(.key(.alt("b"))))
        _ = reduce(&state, .input(.key(.control("k"))))
        #expect(state.input.text == " ")
        _ = reduce(&state, .input(.key(.control("y"))))
        #expect(state.input.text == " brave ")
        _ = reduce(&state, .input(.key(.control("u"))))
        #expect(state.input.text == "")
        type(&state, "日本e\u{301}")
        _ = reduce(&state, .input(.key(.left)))
        _ = reduce(&state, .input(.key(.backspace)))
        #expect(state.input.text == "日e\u{301}")
        _ = reduce(&state, .input(.key(.delete)))
        #expect(state.input.text == "日")
    }

    @Test func historyWithUpAndDownKeepsTheDraft() {
        var state = fresh()
        state.history = ["first", "second"]
        type(&state, "draft")
        _ = reduce(&state, .input(.key(.up)))
        #expect(state.input.text == "second")
        _ = reduce(&state, .input(.key(.up)))
        #expect(state.input.text == "first")
        _ = reduce(&state, .input(.key(.up)))
        #expect(state.input.text == "first")
        _ = reduce(&state, .input(.key(.down)))
        _ = reduce(&state, .input(.key(.down)))
        #expect(state.input.text == "draft")
    }

    @Test func tabCompletesCommandsAndArguments() {
        var state = fresh()
        type(&state, "/mo")
        _ = reduce(&state, .input(.key(.tab)))
        #expect(state.input.text == "/model")
        _ = reduce(&state, .input(.key(.tab)))
        #expect(state.input.text == "/model" || state.input.text == "/models")
        var other = fresh()
        type(&other, "/model gr")
        _ = reduce(&other, .input(.key(.tab)))
        #expect(other.input.text == "/model groq:llama-3.3-70b-versatile")
        var theme = fresh()
        type(&theme, "/theme hi")
        _ = reduce(&theme, .input(.key(.tab)))
        #expect(theme.input.text == "/theme high-contrast")
    }

    @Test func commands() {
        var state = fresh()
        type(&state, "/frobnicate")
        #expect(reduce(&state, .input(.key(.enter))) == [.appendHistory("/frobnicate")])
        #expect(state.notice?.hasPrefix("unknown command /frobnicate; commands: /model /models /system") == true)
        type(&state, "/model groq:llama-3.3-70b-versatile")
        #expect(reduce(&state, .input(.key(.enter))).last == .switchModel("groq:llama-3.3-70b-versatile"))
        type(&state, "/model")
        _ = reduce(&state, .input(.key(.enter)))
        #expect(state.overlay == .modelPicker(selected: 0))
        _ = reduce(&state, .input(.key(.down)))
        #expect(reduce(&state, .input(.key(.enter))) == [.switchModel("groq:llama-3.3-70b-versatile")])
        type(&state, "/system be terse")
        _ = reduce(&state, .input(.key(.enter)))
        #expect(state.systemPrompt == "be terse")
        type(&state, "/theme light")
        #expect(reduce(&state, .input(.key(.enter))).last == .setTheme("light"))
        #expect(reduce(&state, .input(.key(.f1))).isEmpty)
        #expect(state.overlay == .help)
        _ = reduce(&state, .input(.key(.escape)))
        #expect(state.overlay == nil)
        _ = reduce(&state, .input(.key(.character("?"))))
        #expect(state.overlay == .help)
    }

    @Test func anOpenedSessionIsShownAsItWasWithStoppedAndFailedRepliesMarked() {
        var state = conversation(turns: 2)
        var session = Session(title: "Old talk", model: "groq:llama", systemPrompt: "Be brief.")
        let q1 = SessionMessage(parentID: nil, role: .user, content: "first question")
        var a1 = SessionMessage(parentID: q1.id, role: .assistant, content: "half an ans", provider: "local", model: "smollm2", status: .streaming)
        a1.status = .streaming
        let q2 = SessionMessage(parentID: a1.id, role: .user, content: "second question")
        var a2 = SessionMessage(parentID: q2.id, role: .assistant, content: "", provider: "groq", model: "llama", status: .error)
        a2.error = "groq: rate limited"
        session.messages = [q1, a1, q2, a2]
        let effects = reduce(&state, .openSession(session, resumed: false))
        #expect(effects == [.sessionOpened(session)])
        #expect(state.entries.map(\.text) == ["first question", "half an ans", "second question", "", "loaded “Old talk” (4 messages)"])
        #expect(state.entries[1].status == .stopped && state.entries[1].model == "local:smollm2")
        #expect(state.entries[3].status == .failed("groq: rate limited"))
        #expect(state.systemPrompt == "Be brief.")
        #expect(state.contextMessages == [.user("first question"), .assistant("half an ans"), .user("second question")])
        let lines = screen(state)
        #expect(lines.contains { $0.contains("local:smollm2") && $0.contains("· stopped") })
        #expect(lines.contains { $0.contains("⚠ groq: rate limited") })
    }

    @Test func sessionCommandsAndLoadCompletion() {
        var state = fresh()
        _ = reduce(&state, .sessionChoices(["20261125-124719-e887", "Name three colours.", "Nausea remedies"]))
        type(&state, "/sessions")
        #expect(reduce(&state, .input(.key(.enter))).last == .listSessions)
        type(&state, "/load Name")
        _ = reduce(&state, .input(.key(.tab)))
        #expect(state.input.text == "/load Name three colours.")
        #expect(reduce(&state, .input(.key(.enter))).last == .loadSession("Name three colours."))
        type(&state, "/load Na")
        _ = reduce(&state, .input(.key(.tab)))
        // Two titles share "Na": both are offered, and Tab cycles through them.
        #expect(state.notice == "Name three colours.  Nausea remedies")
        #expect(state.input.text == "/load Name three colours.")
        _ = reduce(&state, .input(.key(.tab)))
        #expect(state.input.text == "/load Nausea remedies")
        state.input.set("")
        type(&state, "/rename")
        #expect(reduce(&state, .input(.key(.enter))).count == 1)  // only the history entry
        #expect(state.notice == "usage: /rename TITLE")
        type(&state, "/rename Colours")
        #expect(reduce(&state, .input(.key(.enter))).last == .renameSession("Colours"))
        type(&state, "/export ~/c.md")
        #expect(reduce(&state, .input(.key(.enter))).last == .exportSession("~/c.md"))
    }

    @Test func aRetryShowsInTheStatusBar() {
        var state = fresh()
        type(&state, "hi")
        _ = reduce(&state, .input(.key(.enter)))
        _ = reduce(&state, .engine(.retrying(seconds: 2, reason: "rate limited")))
        #expect(screen(state).last?.contains("retrying in 2 s (rate limited)") == true)
    }

    @Test func retryAsksAgainForTheLastReply() {
        var state = fresh()
        type(&state, "q")
        _ = reduce(&state, .input(.key(.enter)))
        _ = reduce(&state, .engine(.delta("half")))
        let line = "local: the reply was cut off — the partial reply is kept; /retry asks again"
        _ = reduce(&state, .engine(.failed(line)))
        #expect(state.entries.last?.status == .failed(line))
        #expect(screen(state).contains { $0.contains("/retry asks again") })
        type(&state, "/retry")
        let effects = reduce(&state, .input(.key(.enter)))
        #expect(effects.last == .send(messages: [.user("q")], system: nil, retry: true))
        #expect(state.entries.count == 2)
        #expect(state.entries.last?.text == "")
    }

    @Test func clearKeepsContextAndNewForgetsIt() {
        var state = conversation(turns: 1)
        type(&state, "/clear")
        _ = reduce(&state, .input(.key(.enter)))
        #expect(state.entries.isEmpty)
        type(&state, "next")
        let effects = reduce(&state, .input(.key(.enter)))
        if case let .send(messages, _, _, _, _, _)? = effects.last { #expect(messages.count == 3) } else { Issue.record("no send") }
        _ = reduce(&state, .engine(.finished(tokensPerSecond: nil)))
        type(&state, "/new")
        #expect(reduce(&state, .input(.key(.enter))).last == .newSession)
        type(&state, "fresh")
        #expect(reduce(&state, .input(.key(.enter))).last == .send(messages: [.user("fresh")], system: nil))
    }

    @Test func aHugePasteShowsTheRowsAroundTheCursor() {
        var state = fresh()
        let lines = (0..<10_000).map { "pasted line \($0)" }
        _ = reduce(&state, .input(.paste(lines.joined(separator: "\n"))))
        let visible = (state.height - 2) / 3
        #expect(state.inputRows == visible)
        let shown = screen(state)[(state.height - 1 - visible)..<(state.height - 1)]
        #expect(shown.last == "  pasted line 9999")
        #expect(shown.first == "  pasted line \(10_000 - visible)")
        // Back at the start, the prompt marks the first row.
        _ = reduce(&state, .input(.key(.alt("<"))))
        let top = screen(state)[(state.height - 1 - visible)..<(state.height - 1)]
        #expect(top.first == "› pasted line 0")
        #expect(Renderer.render(state).cursor?.row == state.height - 1 - visible)
    }

    @Test func pasteIsInsertedWholeAndSanitized() {
        var state = fresh()
        let effects = reduce(&state, .input(.paste("line one\nline two\u{1B}]52;c;eA==\u{7}\n")))
        #expect(effects.isEmpty)
        #expect(state.input.text == "line one\nline two\n")
        #expect(!state.busy)
    }

    @Test func ctrlXCtrlEOpensTheEditorOnTheDraft() {
        var state = fresh()
        type(&state, "draft")
        _ = reduce(&state, .input(.key(.control("x"))))
        #expect(reduce(&state, .input(.key(.control("e")))) == [.openEditor("draft")])
        _ = reduce(&state, .editorClosed("edited\n"))
        #expect(state.input.text == "edited")
    }
}

@Suite struct InputDecoderTests {
    func decode(_ chunks: [String]) -> [InputEvent] {
        var decoder = InputDecoder()
        return chunks.flatMap { decoder.feed(Array($0.utf8)) }
    }

    @Test func keysAndSequences() {
        #expect(decode(["a\r\u{1B}[A\u{1B}[B\u{1B}[5~\u{1B}[6~\u{1B}[H\u{1B}[F\u{1B}[3~\u{1B}OP\u{7F}\t\u{1}"]) == [
            .key(.character("a")), .key(.enter), .key(.up), .key(.down), .key(.pageUp), .key(.pageDown),
            .key(.home), .key(.end), .key(.delete), .key(.f1), .key(.backspace), .key(.tab), .key(.control("a")),
        ])
        #expect(decode(["\u{1B}\r", "\u{1B}b", "\n"]) == [.key(.alt("\r")), .key(.alt("b")), .key(.control("j"))])
        #expect(decode(["\u{1B}[<64;10;5M\u{1B}[<65;10;5M"]) == [.key(.wheelUp), .key(.wheelDown)])
        #expect(decode(["日", "\u{F0}\u{9F}", "\u{98}\u{80}"].map { $0 }).first == .key(.character("日")))
    }

    @Test func sequenceSplitAcrossReads() {
        #expect(decode(["\u{1B}", "[", "A"]) == [.key(.up)])
    }

    @Test func loneEscapeIsTheEscapeKeyAfterTheWait() {
        var decoder = InputDecoder()
        #expect(decoder.feed([0x1B]).isEmpty)
        #expect(decoder.hasPendingEscape)
        #expect(decoder.flushEscape() == [.key(.escape)])
    }

    @Test func bracketedPasteIsOneEventEvenWhenHuge() {
        let body = String(repeating: "pasted line with text\r\n", count: 50_000)  // about 1.1 MB
        let bytes = Array(("\u{1B}[200~" + body + "\u{1B}[201~x").utf8)
        var decoder = InputDecoder()
        var events: [InputEvent] = []
        var offset = 0
        while offset < bytes.count {
            events += decoder.feed(Array(bytes[offset..<min(offset + 4096, bytes.count)]))
            offset += 4096
        }
        #expect(events.count == 2)
        if case let .paste(text) = events.first {
            #expect(text.unicodeScalars.count == body.unicodeScalars.count - 50_000)  // CRLF became LF
            #expect(!text.contains("\r"))
        } else {
            Issue.record("no paste event")
        }
        #expect(events.last == .key(.character("x")))
    }
}

@Suite struct ThemeTests {
    static var themesDirectory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("themes")
    }

    @Test(arguments: ["dark", "light", "basic16", "high-contrast"])
    func builtInThemesLoadAndCoverEveryRole(_ name: String) throws {
        let text = try String(contentsOf: Self.themesDirectory.appendingPathComponent("\(name).toml"), encoding: .utf8)
        let theme = try Theme.parse(text, file: "\(name).toml")
        #expect(theme.name == name)
        for role in StyleRole.allCases { #expect(text.contains("\n\(role.rawValue) = "), "\(name) misses \(role.rawValue)") }
        if name == "basic16" {
            for style in theme.styles.values {
                for color in [style.foreground, style.background] {
                    if case let .indexed(index) = color { #expect(index < 16) }
                }
            }
        }
    }

    @Test func brokenThemeNamesTheFileAndTheKey() {
        #expect(throws: (any Error).self) { try Theme.parse("[roles]\nuser = { fg = \"ultraviolet\" }\n", file: "mine.toml") }
        do { _ = try Theme.parse("[roles]\nuser = { fg = \"ultraviolet\" }\n", file: "mine.toml") } catch {
            #expect(error.userMessage.hasPrefix("mine.toml:2: roles.user.fg: unknown colour \"ultraviolet\""))
        }
        do { _ = try Theme.parse("[roles]\nshouting = { bold = true }\n", file: "mine.toml") } catch {
            #expect(error.userMessage.hasPrefix("mine.toml:2: roles.shouting: unknown role"))
        }
        do { _ = try Theme.parse("[roles]\ntext = { bold = \"yes\" }\n", file: "mine.toml") } catch {
            #expect(error.userMessage == "mine.toml:2: roles.text.bold: expected true or false, found a string")
        }
    }

    @Test func coloursReduceFor16And8ColourTerminals() {
        #expect(ThemeColor.indexed(196).reduced(to: 16) == .indexed(9))
        #expect(ThemeColor.indexed(196).reduced(to: 8) == .indexed(1))
        #expect(ThemeColor.indexed(4).reduced(to: 8) == .indexed(4))
        #expect(ThemeColor.terminalDefault.reduced(to: 8) == .terminalDefault)
    }
}

@Suite struct ResumedContextTests {
    /// After --resume or /load the status bar shows the conversation's estimated size, before any reply.
    @Test func anEstimatedSizeFillsTheContextField() {
        var state = ChatState(width: 140, height: 20, model: "local:smollm2")
        _ = reduce(&state, .resize(width: 140, height: 20))
        state.status.contextWindow = 8192
        #expect(Renderer.render(state).grid.lines.last?.contains("ctx 0/8k") == true)
        _ = reduce(&state, .contextEstimated(tokens: 4096))
        #expect(Renderer.render(state).grid.lines.last?.hasSuffix("ctx 50%") == true, "\(Renderer.render(state).grid.lines.last ?? "")")
    }
}

/// Issue 12: pure means pure.
@Suite struct PureReducerTests {
    @Test func entriesAreStampedWithTheClockActionsTimeShownInTheGivenZone() throws {
        var state = ChatState(width: 60, height: 12, model: "local:smollm2", timeZone: .fixed(try #require(TimeZone(identifier: "Asia/Tokyo"))))
        _ = reduce(&state, .resize(width: 60, height: 12))
        _ = reduce(&state, .clock(Date(timeIntervalSince1970: 3_600)))  // 01:00 UTC, 10:00 in Tokyo
        for character in "hi" { _ = reduce(&state, .input(.key(.character(character)))) }
        _ = reduce(&state, .input(.key(.enter)))
        let user = try #require(state.entries.first { $0.kind == .user })
        #expect(user.time == Date(timeIntervalSince1970: 3_600))
        #expect(Renderer.render(state).grid.lines.contains { $0.contains("▌ you · 10:00") })
    }

    @Test func copiesOfTheStateNeverShowEachOthersRows() {
        var first = ChatState(width: 40, height: 10, model: "m")
        _ = reduce(&first, .resize(width: 40, height: 10))
        _ = reduce(&first, .showNote("alpha"))
        var second = first
        second.entries[0].text = "omega"  // same length, other text
        second.layout.rebuild(second.entries, width: 40)
        let a = Renderer.render(first).grid.lines.joined(separator: "\n")
        let b = Renderer.render(second).grid.lines.joined(separator: "\n")
        #expect(a.contains("alpha") && !a.contains("omega"))
        #expect(b.contains("omega") && !b.contains("alpha"))
    }
}

