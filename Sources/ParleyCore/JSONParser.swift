import Foundation

public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var offset: Int
    public var reason: String
    public var description: String { "invalid JSON at byte \(offset): \(reason)" }
}

extension JSONValue {
    public static func parse(_ text: String) throws(JSONParseError) -> JSONValue {
        var copy = text
        return try copy.withUTF8 { buffer in Result { () throws(JSONParseError) in try parse(buffer) } }.get()
    }

    public static func parse(_ bytes: [UInt8]) throws(JSONParseError) -> JSONValue {
        try bytes.withUnsafeBufferPointer { buffer in Result { () throws(JSONParseError) in try parse(buffer) } }.get()
    }

    public static func parse(_ bytes: ArraySlice<UInt8>) throws(JSONParseError) -> JSONValue {
        try bytes.withUnsafeBufferPointer { buffer in Result { () throws(JSONParseError) in try parse(buffer) } }.get()
    }

    /// Parses `buffer`. With `keeping`, object members whose key is not listed are checked for syntax
    /// but not built: stream chunks carry ids, model names and fingerprints that no one reads, and not
    /// allocating them roughly halves decode time.
    public static func parse(_ buffer: UnsafeBufferPointer<UInt8>, keeping keys: JSONKeySet? = nil) throws(JSONParseError) -> JSONValue {
        var parser = JSONByteParser(bytes: buffer, keys: keys)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        if parser.index != buffer.count { throw parser.error("unexpected text after the value") }
        return value
    }
}

/// The object keys a parse should build; every other member is skipped.
public struct JSONKeySet: Sendable {
    /// Keys bucketed by length, so a lookup compares only keys of the right size.
    let byLength: [[[UInt8]]]
    /// Keys kept in the outermost object, when it differs (so a top-level `id` can be skipped
    /// while a tool call's `id` is kept).
    let topLevel: [[[UInt8]]]?

    public init(_ keys: [String], topLevel: [String]? = nil) {
        byLength = Self.bucket(keys)
        self.topLevel = topLevel.map(Self.bucket)
    }

    static func bucket(_ keys: [String]) -> [[[UInt8]]] {
        var buckets = [[[UInt8]]](repeating: [], count: 64)
        for key in keys where key.utf8.count < 64 { buckets[key.utf8.count].append(Array(key.utf8)) }
        return buckets
    }

    func contains(_ key: UnsafeBufferPointer<UInt8>, depth: Int) -> Bool {
        let buckets = depth == 0 ? (topLevel ?? byLength) : byLength
        guard key.count < buckets.count, let base = key.baseAddress else { return key.isEmpty && !buckets[0].isEmpty }
        for candidate in buckets[key.count] where candidate[0] == base[0] {
            if candidate.withUnsafeBufferPointer({ memcmp($0.baseAddress!, base, key.count) == 0 }) { return true }
        }
        return false
    }
}

struct JSONByteParser {
    let bytes: UnsafeBufferPointer<UInt8>
    let keys: JSONKeySet?
    /// A `\u` escape of a lone surrogate is an error instead of becoming U+FFFD (for files, where a
    /// damaged text must be reported, not rewritten on the next save; the caller checks the bytes are
    /// UTF-8 with `UTF8Validation`).
    var strict = false
    var index = 0
    static let maxDepth = 512

    init(bytes: UnsafeBufferPointer<UInt8>, keys: JSONKeySet? = nil) {
        self.bytes = bytes
        self.keys = keys
    }

    func error(_ reason: String) -> JSONParseError { JSONParseError(offset: index, reason: reason) }

    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    mutating func parseValue(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth < Self.maxDepth else { throw error("nested too deeply") }
        guard index < bytes.count else { throw error("unexpected end") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth)
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        default: return .number(try parseNumber())
        }
    }

    mutating func expectLiteral(_ word: StaticString) throws(JSONParseError) {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw error("unexpected end") }
        let start = word.utf8Start
        for i in 0..<count where bytes[index + i] != start[i] { throw error("unknown literal") }
        index += count
    }

    mutating func parseObject(depth: Int) throws(JSONParseError) -> JSONValue {
        index += 1
        var members: [(String, JSONValue)] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") { index += 1; return .object(members) }
        members.reserveCapacity(4)
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw error("expected a key") }
            let keyStart = index
            try skipString()
            let rawKey = UnsafeBufferPointer(rebasing: bytes[(keyStart + 1)..<(index - 1)])
            let wanted = keys.map { $0.contains(rawKey, depth: depth) } ?? true
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw error("expected ':'") }
            index += 1
            skipWhitespace()
            if wanted {
                let afterKey = index
                index = keyStart
                let key = try parseString()
                index = afterKey
                members.append((key, try parseValue(depth: depth + 1)))
            } else {
                try skipValue(depth: depth + 1)
            }
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end in object") }
            if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
            if bytes[index] == UInt8(ascii: "}") { index += 1; return .object(members) }
            throw error("expected ',' or '}'")
        }
    }

    mutating func parseArray(depth: Int) throws(JSONParseError) -> JSONValue {
        index += 1
        var items: [JSONValue] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
        while true {
            skipWhitespace()
            items.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end in array") }
            if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
            if bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
            throw error("expected ',' or ']'")
        }
    }

    /// Moves past a string, checking it, without building it.
    /// JSON's number grammar exactly: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?` (the lenient
    /// reading above also takes `.5`, `1.` and `007`, which a strict reader must refuse as JSONDecoder does).
    static func isJSONNumber(_ b: UnsafeBufferPointer<UInt8>) -> Bool {
        var i = 0
        func digits() -> Int { let start = i; while i < b.count, b[i] >= 0x30, b[i] <= 0x39 { i += 1 }; return i - start }
        if i < b.count, b[i] == UInt8(ascii: "-") { i += 1 }
        guard i < b.count else { return false }
        if b[i] == 0x30 { i += 1 } else { guard digits() > 0 else { return false } }
        if i < b.count, b[i] == UInt8(ascii: ".") { i += 1; guard digits() > 0 else { return false } }
        if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            i += 1
            if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
            guard digits() > 0 else { return false }
        }
        return i == b.count
    }

    mutating func skipString() throws(JSONParseError) {
        index += 1
        guard let base = bytes.baseAddress else { throw error("unterminated string") }
        while index < bytes.count {
            // memchr is vectorised; a quote counts only if an even number of backslashes precede it.
            guard let found = memchr(base + index, Int32(UInt8(ascii: "\"")), bytes.count - index) else { break }
            let quote = base.distance(to: found.assumingMemoryBound(to: UInt8.self))
            var backslashes = 0
            while quote - backslashes - 1 >= index, bytes[quote - backslashes - 1] == UInt8(ascii: "\\") { backslashes += 1 }
            index = quote + 1
            if backslashes % 2 == 0 { return }
        }
        index = bytes.count
        throw error("unterminated string")
    }

    /// Moves past any value, checking its syntax, without building it.
    mutating func skipValue(depth: Int) throws(JSONParseError) {
        guard depth < Self.maxDepth else { throw error("nested too deeply") }
        guard index < bytes.count else { throw error("unexpected end") }
        switch bytes[index] {
        case UInt8(ascii: "\""): try skipString()
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            let close = bytes[index] == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
            let isObject = close == UInt8(ascii: "}")
            index += 1
            skipWhitespace()
            if index < bytes.count, bytes[index] == close { index += 1; return }
            while true {
                skipWhitespace()
                if isObject {
                    guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw error("expected a key") }
                    try skipString()
                    skipWhitespace()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw error("expected ':'") }
                    index += 1
                    skipWhitespace()
                }
                try skipValue(depth: depth + 1)
                skipWhitespace()
                guard index < bytes.count else { throw error("unexpected end") }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                if bytes[index] == close { index += 1; return }
                throw error("expected ',' or a closing bracket")
            }
        case UInt8(ascii: "t"): try expectLiteral("true")
        case UInt8(ascii: "f"): try expectLiteral("false")
        case UInt8(ascii: "n"): try expectLiteral("null")
        default: _ = try parseNumber()
        }
    }

    mutating func parseString() throws(JSONParseError) -> String {
        index += 1
        let start = index
        // Fast path: no escapes.
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let s = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                index += 1
                return s
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw error("control character in string") }
            index += 1
        }
        // With escapes: the decoded text is never longer than the source, so reserve that once, and
        // copy each run between escapes whole (byte-at-a-time appends were most of a session's decode).
        var end = index
        do {
            var probe = self
            probe.index = start - 1
            try probe.skipString()
            end = probe.index
        }
        var out = [UInt8]()
        out.reserveCapacity(end - start)
        out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<index]))
        while index < bytes.count {
            var run = index
            while run < bytes.count, bytes[run] != UInt8(ascii: "\"") && bytes[run] != UInt8(ascii: "\\") && bytes[run] >= 0x20 { run += 1 }
            if run > index { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[index..<run])); index = run }
            guard index < bytes.count else { break }
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                index += 1
                return String(decoding: out, as: UTF8.self)
            }
            if byte < 0x20 { throw error("control character in string") }
            index += 1
            guard index < bytes.count else { break }
            let escape = bytes[index]
            index += 1
            switch escape {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try parseHex4()
                if (0xD800..<0xDC00).contains(scalar) {
                    // A high surrogate must be followed by \u and a low surrogate; otherwise U+FFFD.
                    if index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") {
                        index += 2
                        let low = try parseHex4()
                        if (0xDC00..<0xE000).contains(low) {
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else {
                            if strict { throw error("a lone surrogate escape") }
                            appendScalar(0xFFFD, to: &out)
                            scalar = low
                        }
                    } else {
                        if strict { throw error("a lone surrogate escape") }
                        scalar = 0xFFFD
                    }
                } else if (0xDC00..<0xE000).contains(scalar) {
                    if strict { throw error("a lone surrogate escape") }
                    scalar = 0xFFFD
                }
                appendScalar(scalar, to: &out)
            default: throw error("unknown escape")
            }
        }
        throw error("unterminated string")
    }

    func appendScalar(_ value: UInt32, to out: inout [UInt8]) {
        let scalar = Unicode.Scalar(value) ?? "\u{FFFD}"
        out.append(contentsOf: Array(String(Character(scalar)).utf8))
    }

    mutating func parseHex4() throws(JSONParseError) -> UInt32 {
        guard index + 4 <= bytes.count else { throw error("short \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[index]
            let digit: UInt8
            switch b {
            case 0x30...0x39: digit = b - 0x30
            case 0x41...0x46: digit = b - 0x41 + 10
            case 0x61...0x66: digit = b - 0x61 + 10
            default: throw error("bad hex digit")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    mutating func parseNumber() throws(JSONParseError) -> Double {
        let start = index
        var isInteger = true
        var intValue: Int64 = 0
        var negative = false
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") { negative = true; index += 1 }
        let digitsStart = index
        while index < bytes.count {
            let b = bytes[index]
            if b >= 0x30 && b <= 0x39 {
                if isInteger, index - digitsStart < 18 { intValue = intValue * 10 + Int64(b - 0x30) } else { isInteger = false }
                index += 1
            } else if b == UInt8(ascii: ".") || b == UInt8(ascii: "e") || b == UInt8(ascii: "E")
                || b == UInt8(ascii: "+") || b == UInt8(ascii: "-") {
                isInteger = false
                index += 1
            } else {
                break
            }
        }
        guard index > digitsStart else { throw error("expected a value") }
        if strict, !Self.isJSONNumber(UnsafeBufferPointer(rebasing: bytes[start..<index])) { throw error("not a JSON number") }
        if isInteger { return Double(negative ? -intValue : intValue) }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        guard let value = Double(text) else { throw error("bad number") }
        // 1e999 is valid JSON syntax but no number Parley can use or write back (found by fuzzing).
        guard value.isFinite else { throw error("number out of range") }
        return value
    }
}
