import Testing
@testable import ParleyCore

@Suite struct JSONValueTests {
    @Test func parsesAndWritesRoundTrip() throws {
        let text = #"{"a":[1,2.5,-3,1e3,true,false,null],"s":"q\"\\\/\n\t\u00e9\ud83d\ude00","o":{}}"#
        let value = try JSONValue.parse(text)
        #expect(value["a"]?[1]?.double == 2.5)
        #expect(value["a"]?[3]?.double == 1000)
        #expect(value["s"]?.string == "q\"\\/\n\té😀")
        #expect(try JSONValue.parse(value.serialized()) == value)
    }

    @Test func rejectsBrokenJSON() {
        for bad in ["", "{", "{\"a\":}", "[1,]x", "\"open", "{\"a\" 1}", "nul", "[1 2]", "{\"a\":1}}"] {
            #expect(throws: JSONParseError.self, "\(bad)") { try JSONValue.parse(bad) }
        }
    }

    @Test func loneSurrogateBecomesReplacement() throws {
        #expect(try JSONValue.parse(#""\ud800x""#).string == "\u{FFFD}x")
    }

    @Test func writesControlCharactersEscapedInDocumentOrder() {
        let value: JSONValue = ["b": "\u{1B}[31m", "a": 1]
        #expect(value.serialized() == #"{"b":"\u001b[31m","a":1}"#)
    }

    @Test func deepNestingIsRefusedNotCrashed() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(deep) }
    }
}
