import Testing
@testable import ParleyProviders

@Suite struct SSEDecoderTests {
    func events(_ text: String, splitAt positions: [Int] = []) throws -> [SSEEvent] {
        let bytes = Array(text.utf8)
        var decoder = SSEDecoder()
        var out: [SSEEvent] = []
        var start = 0
        for end in positions + [bytes.count] {
            out += try decoder.feed(bytes[start..<end])
            start = end
        }
        return out
    }

    @Test func lineEndingsLFCRAndCRLF() throws {
        let expected = [SSEEvent(data: "a"), SSEEvent(data: "b"), SSEEvent(data: "c")]
        #expect(try events("data: a\n\ndata: b\r\rdata: c\r\n\r\n") == expected)
    }

    @Test func crAtChunkEndWithLFInNextChunk() throws {
        let text = "data: one\r\n\r\ndata: two\r\n\r\n"
        let whole = try events(text)
        #expect(whole == [SSEEvent(data: "one"), SSEEvent(data: "two")])
        for position in 0...text.utf8.count {
            #expect(try events(text, splitAt: [position]) == whole, "split at \(position)")
        }
        // The CR ends a chunk exactly, and its LF opens the next: no empty line (and no extra dispatch) appears.
        let crIndex = Array(text.utf8).firstIndex(of: 0x0D)! + 1
        #expect(try events(text, splitAt: [crIndex]) == whole)
    }

    @Test func multipleDataLinesJoinWithNewline() throws {
        #expect(try events("data: first\ndata:second\ndata:  third\n\n") == [SSEEvent(data: "first\nsecond\n third")])
    }

    @Test func commentsAndUnknownFieldsIgnored() throws {
        #expect(try events(": keep-alive\nretry: 100\nfoo: bar\ndata: x\n\n:\n\n") == [SSEEvent(data: "x")])
    }

    @Test func eventNameAndID() throws {
        #expect(try events("event: ping\nid: 7\ndata: {}\n\ndata: y\n\n") == [
            SSEEvent(event: "ping", data: "{}", id: "7"), SSEEvent(event: nil, data: "y", id: "7"),
        ])
    }

    @Test func leadingBOMIsDroppedOnlyAtStart() throws {
        let text = "\u{FEFF}data: a\n\ndata: \u{FEFF}b\n\n"
        let whole = try events(text)
        #expect(whole == [SSEEvent(data: "a"), SSEEvent(data: "\u{FEFF}b")])
        for position in 0...text.utf8.count { #expect(try events(text, splitAt: [position]) == whole) }
    }

    @Test func utf8SplitAcrossChunks() throws {
        let text = "data: 日本語 🌦️ é\n\n"
        for position in 0...text.utf8.count {
            #expect(try events(text, splitAt: [position]) == [SSEEvent(data: "日本語 🌦️ é")])
        }
    }

    @Test func eventWithoutBlankLineIsNotDispatched() throws {
        var decoder = SSEDecoder()
        #expect(try decoder.feed(Array("data: partial\n".utf8)).isEmpty)
        #expect(decoder.hasPendingData)
    }

    @Test func fieldWithoutColonAndEmptyData() throws {
        #expect(try events("data\n\n") == [SSEEvent(data: "")])
        #expect(try events("event: x\n\n").isEmpty)
    }

    @Test func ndjsonSplitsLinesAcrossChunks() throws {
        let text = "{\"a\":1}\r\n\n  {\"b\":\"é\"}\n{\"c\":3}"
        let bytes = Array(text.utf8)
        for position in 0...bytes.count {
            var decoder = NDJSONDecoder()
            var lines = try decoder.feed(bytes[0..<position])
            lines += try decoder.feed(bytes[position...])
            lines += decoder.finish()
            #expect(lines.map { String(decoding: $0, as: UTF8.self) } == ["{\"a\":1}", "{\"b\":\"é\"}", "{\"c\":3}"])
        }
    }
}
