import Foundation

/// Walks JSON bytes in place, for hot paths that read a few fields of a known shape without building
/// a tree. Every method checks syntax; on anything unexpected it returns nil/false and the caller
/// falls back to `JSONValue.parse`.
public struct JSONCursor {
    private var parser: JSONByteParser

    /// `strict`: a `\u` escape of a lone surrogate fails the walk instead of becoming U+FFFD (check
    /// the bytes with `UTF8Validation` too, for all of JSONDecoder's strictness).
    public init(_ bytes: UnsafeBufferPointer<UInt8>, strict: Bool = false) {
        parser = JSONByteParser(bytes: bytes)
        parser.strict = strict
        parser.skipWhitespace()
    }

    /// Consumes `{`; true if an object starts here.
    public mutating func enterObject() -> Bool { enter(UInt8(ascii: "{")) }

    /// Consumes `[`; true if an array starts here.
    public mutating func enterArray() -> Bool { enter(UInt8(ascii: "[")) }

    private mutating func enter(_ open: UInt8) -> Bool {
        parser.skipWhitespace()
        guard parser.index < parser.bytes.count, parser.bytes[parser.index] == open else { return false }
        parser.index += 1
        first = true
        return true
    }

    private var first = true

    /// Moves to the next member of the object just entered; returns its raw key (escapes not decoded),
    /// positioned at the value, or nil at `}` (consumed) or on bad syntax (`failed` is set).
    public mutating func nextKey() -> UnsafeBufferPointer<UInt8>? {
        guard moveToNextItem(close: UInt8(ascii: "}")) else { return nil }
        guard parser.index < parser.bytes.count, parser.bytes[parser.index] == UInt8(ascii: "\"") else { failed = true; return nil }
        let start = parser.index
        do { try parser.skipString() } catch { failed = true; return nil }
        let key = UnsafeBufferPointer(rebasing: parser.bytes[(start + 1)..<(parser.index - 1)])
        // A key is only skipped to its closing quote, not read: strictly, a control character in it is bad
        // syntax and an escape is left to a reader that reads it (found by the damaged-file test).
        if parser.strict, key.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\\") }) { failed = true; return nil }
        parser.skipWhitespace()
        guard parser.index < parser.bytes.count, parser.bytes[parser.index] == UInt8(ascii: ":") else { failed = true; return nil }
        parser.index += 1
        parser.skipWhitespace()
        return key
    }

    /// Moves to the next element of the array just entered; false at `]` (consumed) or on bad syntax.
    public mutating func nextElement() -> Bool { moveToNextItem(close: UInt8(ascii: "]")) }

    /// The byte offset the walk has reached.
    public var position: Int { parser.index }

    /// Set when the walk met bad syntax.
    public private(set) var failed = false

    private mutating func moveToNextItem(close: UInt8) -> Bool {
        parser.skipWhitespace()
        guard parser.index < parser.bytes.count else { failed = true; return false }
        if parser.bytes[parser.index] == close { parser.index += 1; first = false; return false }
        if !first {
            guard parser.bytes[parser.index] == UInt8(ascii: ",") else { failed = true; return false }
            parser.index += 1
            parser.skipWhitespace()
        }
        first = false
        return true
    }

    /// After a nested `enterObject`/`enterArray` finished, the enclosing container continues after a comma.
    public mutating func resumeContainer() { first = false }

    public mutating func skipValue() -> Bool {
        do { try parser.skipValue(depth: 1); return true } catch { failed = true; return false }
    }

    /// Reads a string value (decoding escapes); nil if the value is not a string.
    public mutating func readString() -> String? {
        guard parser.index < parser.bytes.count, parser.bytes[parser.index] == UInt8(ascii: "\"") else { return nil }
        do { return try parser.parseString() } catch { failed = true; return nil }
    }

    /// The raw bytes of a string value without escapes or control characters (a time, an enum's name),
    /// consumed; nil, with nothing consumed, for any other value.
    public mutating func readPlainString() -> UnsafeBufferPointer<UInt8>? {
        let bytes = parser.bytes
        guard parser.index < bytes.count, bytes[parser.index] == UInt8(ascii: "\"") else { return nil }
        var end = parser.index + 1
        while end < bytes.count {
            let byte = bytes[end]
            if byte == UInt8(ascii: "\"") {
                let text = UnsafeBufferPointer(rebasing: bytes[(parser.index + 1)..<end])
                parser.index = end + 1
                return text
            }
            if byte == UInt8(ascii: "\\") || byte < 0x20 { return nil }
            end += 1
        }
        return nil
    }

    /// Reads a number; nil if the value is not one.
    public mutating func readNumber() -> Double? {
        guard parser.index < parser.bytes.count else { return nil }
        let byte = parser.bytes[parser.index]
        guard byte == UInt8(ascii: "-") || (byte >= 0x30 && byte <= 0x39) else { return nil }
        do { return try parser.parseNumber() } catch { failed = true; return nil }
    }

    /// Reads `true` or `false`; nil if the value is something else (nothing consumed).
    public mutating func readBool() -> Bool? {
        guard parser.index < parser.bytes.count else { return nil }
        do {
            switch parser.bytes[parser.index] {
            case UInt8(ascii: "t"): try parser.expectLiteral("true"); return true
            case UInt8(ascii: "f"): try parser.expectLiteral("false"); return false
            default: return nil
            }
        } catch { failed = true; return nil }
    }

    /// Builds whatever value is here, for the rare parts of a known shape.
    public mutating func readValue() -> JSONValue? {
        do { return try parser.parseValue(depth: 1) } catch { failed = true; return nil }
    }

    /// Consumes `null`; false if the value is something else (nothing consumed).
    public mutating func readNull() -> Bool {
        guard parser.index < parser.bytes.count, parser.bytes[parser.index] == UInt8(ascii: "n") else { return false }
        do { try parser.expectLiteral("null"); return true } catch { failed = true; return false }
    }

    /// True when only whitespace is left.
    public mutating func atEnd() -> Bool {
        parser.skipWhitespace()
        return parser.index == parser.bytes.count
    }
}

extension UnsafeBufferPointer where Element == UInt8 {
    /// Byte equality with an ASCII key, without making a String.
    @inlinable @inline(__always)
    public func equals(_ key: StaticString) -> Bool {
        guard count == key.utf8CodeUnitCount, let base = baseAddress else { return count == 0 && key.utf8CodeUnitCount == 0 }
        // Keys are short: a loop beats a call to memcmp (which was 8% of decoding a stream).
        let other = key.utf8Start
        for i in 0..<count where base[i] != other[i] { return false }
        return true
    }
}
