import Foundation

/// A TOML value that remembers the line it was written on, so a config error can name it.
public indirect enum TOMLValue: Sendable, Equatable {
    case string(String, line: Int)
    case integer(Int, line: Int)
    case float(Double, line: Int)
    case bool(Bool, line: Int)
    case array([TOMLValue], line: Int)
    case table(TOMLTable)

    public var line: Int {
        switch self {
        case let .string(_, line), let .integer(_, line), let .float(_, line), let .bool(_, line), let .array(_, line): return line
        case let .table(table): return table.line
        }
    }

    /// How the value is described in "expected X, found Y" messages.
    public var kindName: String {
        switch self {
        case .string: return "a string"
        case .integer: return "an integer"
        case .float: return "a number"
        case .bool: return "true or false"
        case .array: return "an array"
        case .table: return "a table"
        }
    }
}

/// A TOML table with its keys in the order they were written.
public struct TOMLTable: Sendable, Equatable {
    public var line: Int
    public private(set) var keys: [String] = []
    public private(set) var values: [String: TOMLValue] = [:]
    /// Tables created implicitly by a dotted header may still be defined explicitly once.
    var isImplicit = false

    public init(line: Int) { self.line = line }

    public subscript(key: String) -> TOMLValue? {
        get { values[key] }
        set {
            if values[key] == nil, newValue != nil { keys.append(key) }
            if newValue == nil { keys.removeAll { $0 == key } }
            values[key] = newValue
        }
    }

    public var entries: [(String, TOMLValue)] { keys.compactMap { key in values[key].map { (key, $0) } } }
}

public struct TOMLError: Error, Sendable, Equatable, CustomStringConvertible {
    public var line: Int
    public var message: String
    public var description: String { "line \(line): \(message)" }
}

/// A TOML parser for what a config file needs: tables and arrays of tables (with dotted and quoted
/// names), dotted keys, basic/literal/multi-line strings, integers, floats, booleans, arrays and inline
/// tables. Dates are not supported and are reported as such. Written here so every value keeps its line.
public struct TOMLParser {
    private let scalars: [Unicode.Scalar]
    private var index = 0
    private var line = 1
    /// Arrays and inline tables open now. Nesting is limited (and so are dotted keys) because each
    /// level is a recursive call: a crafted file must get an error, not a stack overflow.
    private var depth = 0
    static let maxDepth = 32

    public static func parse(_ text: String) throws(TOMLError) -> TOMLTable {
        var parser = TOMLParser(scalars: Array(text.unicodeScalars))
        return try parser.parseDocument()
    }

    private init(scalars: [Unicode.Scalar]) { self.scalars = scalars }

    private var current: Unicode.Scalar? { index < scalars.count ? scalars[index] : nil }
    private func peek(_ offset: Int) -> Unicode.Scalar? { index + offset < scalars.count ? scalars[index + offset] : nil }

    private func fail(_ message: String) -> TOMLError { TOMLError(line: line, message: message) }

    private mutating func advance() {
        if current == "\n" { line += 1 }
        index += 1
    }

    private mutating func skipSpaces() {
        while let c = current, c == " " || c == "\t" { advance() }
    }

    private mutating func skipComment() {
        if current == "#" { while let c = current, c != "\n" { advance() } }
    }

    /// Skips blank lines, whitespace and comments (inside arrays).
    private mutating func skipAll() {
        while let c = current {
            if c == " " || c == "\t" || c == "\n" || c == "\r" { advance() }
            else if c == "#" { skipComment() }
            else { return }
        }
    }

    private mutating func expectLineEnd() throws(TOMLError) {
        skipSpaces()
        skipComment()
        if current == "\r" { advance() }
        guard current == nil || current == "\n" else {
            throw fail("expected the end of the line, found '\(String(current!))'")
        }
        if current == "\n" { advance() }
    }

    private mutating func parseDocument() throws(TOMLError) -> TOMLTable {
        var root = TOMLTable(line: 1)
        var path: [String] = []
        while current != nil {
            skipAll()
            guard let c = current else { break }
            if c == "[" {
                let headerLine = line
                advance()
                let isArray = current == "["
                if isArray { advance() }
                skipSpaces()
                let keys = try parseKey()
                skipSpaces()
                guard current == "]" else { throw fail("expected ']' to close the table header") }
                advance()
                if isArray {
                    guard current == "]" else { throw fail("expected ']]' to close the array-of-tables header") }
                    advance()
                }
                try expectLineEnd()
                if isArray {
                    try appendArrayTable(&root, keys, line: headerLine)
                    path = keys + ["\u{0}last"]
                } else {
                    try defineTable(&root, keys, line: headerLine)
                    path = keys
                }
            } else {
                let keyLine = line
                let keys = try parseKey()
                skipSpaces()
                guard current == "=" else { throw fail("expected '=' after the key '\(keys.joined(separator: "."))'") }
                advance()
                skipSpaces()
                let value = try parseValue()
                try expectLineEnd()
                try insert(&root, path: path, keys: keys, value: value, line: keyLine)
            }
        }
        return root
    }

    // MARK: keys

    private mutating func parseKey() throws(TOMLError) -> [String] {
        var parts: [String] = []
        while true {
            skipSpaces()
            guard let c = current else { throw fail("expected a key") }
            if c == "\"" { parts.append(try parseBasicString()) }
            else if c == "'" { parts.append(try parseLiteralString()) }
            else {
                var key = ""
                while let c = current, c.properties.isAlphabetic || ("0"..."9").contains(c) || c == "_" || c == "-" {
                    key.unicodeScalars.append(c)
                    advance()
                }
                if key.isEmpty { throw fail("expected a key, found '\(String(c))'") }
                parts.append(key)
            }
            skipSpaces()
            if current == "." {
                guard parts.count < Self.maxDepth else { throw fail("a dotted key has more than \(Self.maxDepth) parts") }
                advance()
                continue
            }
            return parts
        }
    }

    // MARK: tables

    private func lookupTable(_ root: inout TOMLTable, _ path: [String], create: Bool, line: Int,
                             _ body: (inout TOMLTable) throws(TOMLError) -> Void) throws(TOMLError) {
        try Self.walk(&root, path[...], create: create, line: line, body)
    }

    private static func walk(_ table: inout TOMLTable, _ path: ArraySlice<String>, create: Bool, line: Int,
                             _ body: (inout TOMLTable) throws(TOMLError) -> Void) throws(TOMLError) {
        guard let key = path.first else { try body(&table); return }
        let rest = path.dropFirst()
        if key == "\u{0}last" { try body(&table); return }
        switch table[key] {
        case nil:
            var child = TOMLTable(line: line)
            child.isImplicit = true
            try walk(&child, rest, create: create, line: line, body)
            table[key] = .table(child)
        case var .table(child)?:
            try walk(&child, rest, create: create, line: line, body)
            table[key] = .table(child)
        case let .array(items, arrayLine)? where rest.first == "\u{0}last" || !items.isEmpty:
            guard case var .table(last)? = items.last else {
                throw TOMLError(line: line, message: "'\(key)' is an array of values, not of tables")
            }
            try walk(&last, rest.first == "\u{0}last" ? rest.dropFirst() : rest, create: create, line: line, body)
            var copy = items
            copy[copy.count - 1] = .table(last)
            table[key] = .array(copy, line: arrayLine)
        case let value?:
            throw TOMLError(line: line, message: "'\(key)' is already \(value.kindName) (line \(value.line)), not a table")
        }
    }

    private func defineTable(_ root: inout TOMLTable, _ keys: [String], line: Int) throws(TOMLError) {
        let parent = Array(keys.dropLast())
        let name = keys[keys.count - 1]
        try lookupTable(&root, parent, create: true, line: line) { table throws(TOMLError) in
            switch table[name] {
            case nil:
                table[name] = .table(TOMLTable(line: line))
            case var .table(existing)? where existing.isImplicit:
                existing.isImplicit = false
                existing.line = line
                table[name] = .table(existing)
            case let existing?:
                throw TOMLError(line: line, message: "[\(keys.joined(separator: "."))] is defined twice (first on line \(existing.line))")
            }
        }
    }

    private func appendArrayTable(_ root: inout TOMLTable, _ keys: [String], line: Int) throws(TOMLError) {
        let parent = Array(keys.dropLast())
        let name = keys[keys.count - 1]
        try lookupTable(&root, parent, create: true, line: line) { table throws(TOMLError) in
            switch table[name] {
            case nil:
                table[name] = .array([.table(TOMLTable(line: line))], line: line)
            case let .array(items, arrayLine)?:
                table[name] = .array(items + [.table(TOMLTable(line: line))], line: arrayLine)
            case let existing?:
                throw TOMLError(line: line, message: "'\(name)' is already \(existing.kindName) (line \(existing.line))")
            }
        }
    }

    private func insert(_ root: inout TOMLTable, path: [String], keys: [String], value: TOMLValue, line: Int) throws(TOMLError) {
        try lookupTable(&root, path + keys.dropLast(), create: true, line: line) { table throws(TOMLError) in
            let name = keys[keys.count - 1]
            if let existing = table[name] {
                throw TOMLError(line: line, message: "'\(keys.joined(separator: "."))' is set twice (first on line \(existing.line))")
            }
            table[name] = value
        }
    }

    // MARK: values

    private mutating func parseValue() throws(TOMLError) -> TOMLValue {
        let valueLine = line
        guard let c = current else { throw fail("expected a value") }
        switch c {
        case "\"":
            if peek(1) == "\"", peek(2) == "\"" { return .string(try parseMultilineBasic(), line: valueLine) }
            return .string(try parseBasicString(), line: valueLine)
        case "'":
            if peek(1) == "'", peek(2) == "'" { return .string(try parseMultilineLiteral(), line: valueLine) }
            return .string(try parseLiteralString(), line: valueLine)
        case "[": return try parseArray()
        case "{": return try parseInlineTable()
        case "t", "f":
            var word = ""
            while let c = current, c.properties.isAlphabetic { word.unicodeScalars.append(c); advance() }
            if word == "true" { return .bool(true, line: valueLine) }
            if word == "false" { return .bool(false, line: valueLine) }
            throw TOMLError(line: valueLine, message: "expected a value, found '\(word)' (strings need quotes)")
        default:
            return try parseNumber()
        }
    }

    private mutating func parseNumber() throws(TOMLError) -> TOMLValue {
        let valueLine = line
        var text = ""
        while let c = current, !(c == " " || c == "\t" || c == "\n" || c == "\r" || c == "," || c == "]" || c == "}" || c == "#") {
            text.unicodeScalars.append(c)
            advance()
        }
        if text.isEmpty { throw TOMLError(line: valueLine, message: "expected a value") }
        let clean = text.replacingOccurrences(of: "_", with: "")
        if let int = Int(clean) { return .integer(int, line: valueLine) }
        if clean.hasPrefix("0x"), let int = Int(clean.dropFirst(2), radix: 16) { return .integer(int, line: valueLine) }
        if clean == "inf" || clean == "+inf" { return .float(.infinity, line: valueLine) }
        if clean == "-inf" { return .float(-.infinity, line: valueLine) }
        if clean.first?.isNumber == true || clean.first == "-" || clean.first == "+" || clean.first == ".",
           let double = Double(clean) { return .float(double, line: valueLine) }
        if clean.count >= 10, clean.contains("-"), clean.first?.isNumber == true {
            throw TOMLError(line: valueLine, message: "dates are not supported here; quote it as a string")
        }
        throw TOMLError(line: valueLine, message: "expected a value, found '\(text)' (strings need quotes)")
    }

    private mutating func enter(_ valueLine: Int) throws(TOMLError) {
        depth += 1
        if depth > Self.maxDepth {
            throw TOMLError(line: valueLine, message: "arrays and inline tables are nested more than \(Self.maxDepth) deep")
        }
    }

    private mutating func parseArray() throws(TOMLError) -> TOMLValue {
        let valueLine = line
        try enter(valueLine)
        defer { depth -= 1 }
        advance()
        var items: [TOMLValue] = []
        while true {
            skipAll()
            if current == "]" { advance(); return .array(items, line: valueLine) }
            guard current != nil else { throw TOMLError(line: valueLine, message: "the array that starts here is never closed with ']'") }
            items.append(try parseValue())
            skipAll()
            guard current != nil else { throw TOMLError(line: valueLine, message: "the array that starts here is never closed with ']'") }
            if current == "," { advance(); continue }
            if current == "]" { advance(); return .array(items, line: valueLine) }
            throw fail("expected ',' or ']' in the array")
        }
    }

    private mutating func parseInlineTable() throws(TOMLError) -> TOMLValue {
        let valueLine = line
        try enter(valueLine)
        defer { depth -= 1 }
        advance()
        var table = TOMLTable(line: valueLine)
        skipSpaces()
        if current == "}" { advance(); return .table(table) }
        while true {
            skipSpaces()
            let keyLine = line
            let keys = try parseKey()
            skipSpaces()
            guard current == "=" else { throw fail("expected '=' in the inline table") }
            advance()
            skipSpaces()
            let value = try parseValue()
            try insert(&table, path: [], keys: keys, value: value, line: keyLine)
            skipSpaces()
            if current == "," { advance(); continue }
            if current == "}" { advance(); return .table(table) }
            throw fail("expected ',' or '}' in the inline table")
        }
    }

    private mutating func parseBasicString() throws(TOMLError) -> String {
        advance()
        var out = ""
        while let c = current {
            if c == "\"" { advance(); return out }
            if c == "\n" { break }
            if c == "\\" { out.unicodeScalars.append(try parseEscape()); continue }
            out.unicodeScalars.append(c)
            advance()
        }
        throw fail("the string is not closed with '\"' on this line")
    }

    private mutating func parseEscape() throws(TOMLError) -> Unicode.Scalar {
        advance()
        guard let e = current else { throw fail("unfinished escape") }
        advance()
        switch e {
        case "n": return "\n"
        case "t": return "\t"
        case "r": return "\r"
        case "b": return "\u{08}"
        case "f": return "\u{0C}"
        case "e": return "\u{1B}"
        case "\"": return "\""
        case "\\": return "\\"
        case "u", "U":
            let count = e == "u" ? 4 : 8
            var hex = ""
            for _ in 0..<count {
                guard let h = current else { throw fail("short unicode escape") }
                hex.unicodeScalars.append(h)
                advance()
            }
            guard let value = UInt32(hex, radix: 16), let scalar = Unicode.Scalar(value) else { throw fail("bad unicode escape \\\(e)\(hex)") }
            return scalar
        default: throw fail("unknown escape '\\\(String(e))'")
        }
    }

    private mutating func parseLiteralString() throws(TOMLError) -> String {
        advance()
        var out = ""
        while let c = current {
            if c == "'" { advance(); return out }
            if c == "\n" { break }
            out.unicodeScalars.append(c)
            advance()
        }
        throw fail("the string is not closed with \"'\" on this line")
    }

    /// Skips the three opening quotes and a newline right after them, as TOML says.
    private mutating func openMultiline() -> Int {
        let startLine = line
        advance(); advance(); advance()
        if current == "\r" { advance() }
        if current == "\n" { advance() }
        return startLine
    }

    private mutating func parseMultilineBasic() throws(TOMLError) -> String {
        let startLine = openMultiline()
        var out = ""
        while let c = current {
            if c == "\"", peek(1) == "\"", peek(2) == "\"" { advance(); advance(); advance(); return out }
            if c == "\\" {
                // A backslash at the end of a line trims the newline and the next line's leading whitespace.
                var look = 1
                while let n = peek(look), n == " " || n == "\t" || n == "\r" { look += 1 }
                if peek(look) == "\n" {
                    advance()
                    while let n = current, n == " " || n == "\t" || n == "\r" || n == "\n" { advance() }
                    continue
                }
                out.unicodeScalars.append(try parseEscape())
                continue
            }
            out.unicodeScalars.append(c)
            advance()
        }
        throw TOMLError(line: startLine, message: "the multi-line string that starts here is never closed with '\"\"\"'")
    }

    private mutating func parseMultilineLiteral() throws(TOMLError) -> String {
        let startLine = openMultiline()
        var out = ""
        while let c = current {
            if c == "'", peek(1) == "'", peek(2) == "'" { advance(); advance(); advance(); return out }
            out.unicodeScalars.append(c)
            advance()
        }
        throw TOMLError(line: startLine, message: "the multi-line string that starts here is never closed with \"'''\"")
    }
}
