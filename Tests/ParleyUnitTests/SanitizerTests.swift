import Testing
@testable import ParleyCore

@Suite struct SanitizerTests {
    /// Hostile input and what must be left of it.
    static let corpus: [(String, String)] = [
        ("plain text stays", "plain text stays"),
        ("keep\ttabs\nand newlines", "keep\ttabs\nand newlines"),
        ("red \u{1B}[31mtext\u{1B}[0m", "red text"),
        ("cursor\u{1B}[2J\u{1B}[H home", "cursor home"),
        ("private \u{1B}[?1049h mode", "private  mode"),
        ("title \u{1B}]0;pwned\u{07}done", "title done"),
        ("title ST \u{1B}]2;pwned\u{1B}\\done", "title ST done"),
        ("link \u{1B}]8;;https://evil.example\u{1B}\\click\u{1B}]8;;\u{1B}\\ end", "link click end"),
        ("clip \u{1B}]52;c;ZWNobyBwd25lZA==\u{07}board", "clip board"),
        ("dcs \u{1B}P1$r0m\u{1B}\\x", "dcs x"),
        ("sos \u{1B}Xhidden\u{1B}\\ pm \u{1B}^hidden\u{1B}\\ apc \u{1B}_hidden\u{1B}\\.", "sos  pm  apc ."),
        ("c1 csi \u{9B}31mred\u{9B}0m", "c1 csi red"),
        ("c1 osc \u{9D}0;t\u{9C}after", "c1 osc after"),
        ("c1 dcs \u{90}q#0\u{9C}after", "c1 dcs after"),
        ("nel\u{85}ind\u{84}", "nelind"),
        ("lone esc \u{1B}", "lone esc "),
        ("esc then unicode \u{1B}é", "esc then unicode é"),
        ("charset \u{1B}(0lqk\u{1B}(B", "charset lqk"),
        ("keypad \u{1B}=x\u{1B}>", "keypad x"),
        ("bell\u{07} bs\u{08} cr\r del\u{7F} nul\u{0} vt\u{0B} ff\u{0C}", "bell bs cr del nul vt ff"),
        ("esc esc \u{1B}\u{1B}[1mbold", "esc esc bold"),
        ("csi broken by newline \u{1B}[12\nnext", "csi broken by newline \nnext"),
        ("emoji 👩‍👩‍👧 and 日本 stay", "emoji 👩‍👩‍👧 and 日本 stay"),
    ]

    @Test(arguments: corpus.indices)
    func hostileSequenceWholeAndSplit(_ index: Int) {
        let (input, expected) = Self.corpus[index]
        var whole = TerminalSanitizer()
        #expect(whole.sanitize(input) == expected)
        // Split into two chunks at every scalar boundary.
        let scalars = Array(input.unicodeScalars)
        for position in 0...scalars.count {
            var sanitizer = TerminalSanitizer()
            var first = String.UnicodeScalarView(); first.append(contentsOf: scalars[..<position])
            var second = String.UnicodeScalarView(); second.append(contentsOf: scalars[position...])
            let out = sanitizer.sanitize(String(first)) + sanitizer.sanitize(String(second))
            #expect(out == expected, "split at scalar \(position)")
        }
        // And as bytes, split at every byte.
        let bytes = Array(input.utf8)
        for position in 0...bytes.count {
            var sanitizer = TerminalSanitizer()
            let out = sanitizer.sanitize(bytes: bytes[..<position]) + sanitizer.sanitize(bytes: bytes[position...])
            #expect(out == expected, "byte split at \(position)")
        }
    }

    @Test func c1ControlsAsRawBytesAreRemoved() {
        var sanitizer = TerminalSanitizer()
        // 0x9B as a single byte is an 8-bit CSI on some terminals; it is not valid UTF-8 and must go.
        let bytes: [UInt8] = Array("a".utf8) + [0x9B] + Array("31mb".utf8) + [0x9D] + Array("c".utf8) + [0xC3, 0xA9]
        #expect(sanitizer.sanitize(bytes: bytes) == "a31mbcé")
    }

    @Test func unterminatedControlStringDoesNotSwallowEverything() {
        var sanitizer = TerminalSanitizer()
        let hostile = "\u{1B}]0;" + String(repeating: "x", count: TerminalSanitizer.maxControlStringLength + 10) + "visible"
        let out = sanitizer.sanitize(hostile)
        #expect(out.hasSuffix("visible"))
        #expect(!out.contains("\u{1B}"))
    }
}
