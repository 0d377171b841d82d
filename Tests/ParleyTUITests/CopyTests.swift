import Foundation
import Testing
@testable import ParleyTUI

/// Issue 16, copy: what `/copy` names, the numbers on code blocks, and the exact bytes written.
@Suite struct CopyTests {
    static let reply = "Two ways:\n```swift\nlet a = 1\n```\nor\n~~~\nprint(2)\n\n~~~\nand one cut off:\n```\nunfinished"

    func state(replies: [String]) -> ChatState {
        var state = ChatState(width: 60, height: 20, model: "local:smollm2")
        _ = reduce(&state, .resize(width: 60, height: 20))
        for reply in replies {
            type(&state, "q")
            _ = reduce(&state, .input(.key(.enter)))
            _ = reduce(&state, .engine(.delta(reply)))
            _ = reduce(&state, .engine(.finished(tokensPerSecond: 10)))
        }
        return state
    }

    @Test func codeBlocksAreTheFencedPartsIncludingOneCutOff() {
        #expect(CodeBlocks.extract(Self.reply) == ["let a = 1", "print(2)\n", "unfinished"])
        #expect(CodeBlocks.extract("no code here").isEmpty)
    }

    @Test func copyNamesTheLastReplyAnEarlierOneOrABlock() throws {
        let state = state(replies: ["first ```x``` inline only", Self.reply])
        func copy(_ argument: String) -> [Effect] {
            var s = state
            s.input.set("/copy" + (argument.isEmpty ? "" : " " + argument))
            return reduce(&s, .input(.key(.enter)))
        }
        #expect(copy("").contains(.copy(text: Self.reply, what: "the last reply")))
        #expect(copy("2").contains(.copy(text: "print(2)\n", what: "code block 2 of the last reply")))
        #expect(copy("-2").contains(.copy(text: "first ```x``` inline only", what: "reply -2")))
        var s = state
        s.input.set("/copy 9")
        _ = reduce(&s, .input(.key(.enter)))
        #expect(s.notice == "/copy: the last reply has 3 code blocks")
        s.input.set("/copy -2 1")
        _ = reduce(&s, .input(.key(.enter)))
        #expect(s.notice == "/copy: reply -2 has no code block")
        s.input.set("/copy -5")
        _ = reduce(&s, .input(.key(.enter)))
        #expect(s.notice == "/copy: there are only 2 replies")
        // Alt-W: the last reply.
        #expect(reduce(&s, .input(.key(.alt("w")))) == [.copy(text: Self.reply, what: "the last reply")])
    }

    @Test func aBlockIsNumberedWhereItEnds() {
        var styler = MarkdownStyler()
        let lines = Self.reply.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            String(styler.style(line: line).chars.map(\.character))
        }
        #expect(lines.filter { $0.hasPrefix("```") || $0.hasPrefix("~~~") } == ["```swift", "``` [1]", "~~~", "~~~ [2]", "```"])
    }

    /// The text goes base64-encoded inside Parley's own sequence: nothing in it can end the sequence.
    @Test func theSequenceIsOSC52WithTheTextInBase64() {
        let text = "a\u{1B}]52;c;evil\u{07}b — ü"
        #expect(Clipboard.osc52(text) == "\u{1B}]52;c;" + Data(text.utf8).base64EncodedString() + "\u{07}")
        #expect(!Clipboard.osc52(text).dropFirst().dropLast().contains("\u{07}"))
        #expect(Clipboard.problem(environment: ["TMUX": "/tmp/s,1,0"], tmuxSetting: "external")?.contains("set-clipboard is external") == true)
        #expect(Clipboard.problem(environment: ["TMUX": "/tmp/s,1,0"], tmuxSetting: "on") == nil)
        #expect(Clipboard.problem(environment: ["VTE_VERSION": "7600"], tmuxSetting: nil)?.contains("VTE") == true)
        #expect(Clipboard.problem(environment: ["TERM": "xterm-kitty"], tmuxSetting: nil) == nil)
    }
}
