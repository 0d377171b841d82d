import Foundation

/// A key press, decoded from the terminal's bytes.
public enum Key: Equatable, Sendable {
    case character(Character)
    case enter, tab, backTab, backspace, delete, escape
    case up, down, left, right, home, end, pageUp, pageDown
    /// Alt-↑/↓ (or Ctrl-↑/↓): pick an earlier message to edit or to move between its branches.
    case altUp, altDown
    case f1
    /// Ctrl with a letter: `.control("a")`.
    case control(Character)
    /// Alt (Meta) with a key: `.alt("b")`; Alt-Enter is `.alt("\r")`.
    case alt(Character)
    case wheelUp, wheelDown
}

/// What the input decoder produces: keys, and pasted text as one piece.
public enum InputEvent: Equatable, Sendable {
    case key(Key)
    case paste(String)
}

/// Decodes terminal input bytes (xterm-style sequences, SGR mouse, bracketed paste) into events.
/// A lone ESC is ambiguous until more bytes come or a short wait passes: the caller calls
/// `flushEscape()` when the wait ends with nothing new.
public struct InputDecoder: Sendable {
    private var pending: [UInt8] = []
    private var pasting = false
    private var pasteBuffer: [UInt8] = []

    public init() {}

    public var hasPendingEscape: Bool { pending.first == 0x1B && !pasting }

    public mutating func feed(_ bytes: [UInt8]) -> [InputEvent] {
        pending += bytes
        var events: [InputEvent] = []
        while !pending.isEmpty {
            if pasting {
                let end: [UInt8] = Array("\u{1B}[201~".utf8)
                if let range = find(end, in: pending) {
                    pasteBuffer += pending[..<range.lowerBound]
                    pending.removeSubrange(..<range.upperBound)
                    pasting = false
                    events.append(.paste(String(decoding: pasteBuffer, as: UTF8.self).replacingOccurrences(of: "\r\n", with: "\n")
                        .replacingOccurrences(of: "\r", with: "\n")))
                    pasteBuffer = []
                    continue
                }
                // Keep a tail that might be the start of the end marker.
                let keep = min(pending.count, end.count - 1)
                pasteBuffer += pending[..<(pending.count - keep)]
                pending.removeFirst(pending.count - keep)
                return events
            }
            guard let (consumed, event) = decodeOne() else { break }
            pending.removeFirst(consumed)
            if let event { events.append(event) }
        }
        return events
    }

    /// The wait after a lone ESC ended: it was the Escape key.
    public mutating func flushEscape() -> [InputEvent] {
        guard hasPendingEscape else { return [] }
        var events: [InputEvent] = [.key(.escape)]
        pending.removeFirst()
        events += feed([])
        return events
    }

    private func find(_ needle: [UInt8], in haystack: [UInt8]) -> Range<Int>? {
        guard haystack.count >= needle.count else { return nil }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if Array(haystack[start..<(start + needle.count)]) == needle { return start..<(start + needle.count) }
        }
        return nil
    }

    /// Decodes one event from the front of `pending`; nil when more bytes are needed.
    private mutating func decodeOne() -> (Int, InputEvent?)? {
        let b = pending[0]
        switch b {
        case 0x1B:
            guard pending.count >= 2 else { return nil }
            let next = pending[1]
            if next == UInt8(ascii: "[") { return decodeCSI() }
            if next == UInt8(ascii: "O") {
                guard pending.count >= 3 else { return nil }
                switch pending[2] {
                case UInt8(ascii: "A"): return (3, .key(.up))
                case UInt8(ascii: "B"): return (3, .key(.down))
                case UInt8(ascii: "C"): return (3, .key(.right))
                case UInt8(ascii: "D"): return (3, .key(.left))
                case UInt8(ascii: "H"): return (3, .key(.home))
                case UInt8(ascii: "F"): return (3, .key(.end))
                case UInt8(ascii: "P"): return (3, .key(.f1))
                default: return (3, nil)
                }
            }
            if next == 0x0D || next == 0x0A { return (2, .key(.alt("\r"))) }
            if next == 0x7F || next == 0x08 { return (2, .key(.alt("\u{7F}"))) }
            if next == 0x1B {
                // ESC ESC [ A: Alt-↑ as rxvt and PuTTY send it.
                if pending.count >= 4, pending[2] == UInt8(ascii: "["), pending[3] == UInt8(ascii: "A") || pending[3] == UInt8(ascii: "B") {
                    return (4, .key(pending[3] == UInt8(ascii: "A") ? .altUp : .altDown))
                }
                return (1, .key(.escape))
            }
            if next < 0x80 {
                return (2, .key(.alt(Character(Unicode.Scalar(next)))))
            }
            return (1, .key(.escape))
        case 0x0D, 0x0A:
            // Enter sends CR; Ctrl-J sends LF and inserts a newline.
            return (1, .key(b == 0x0D ? .enter : .control("j")))
        case 0x09: return (1, .key(.tab))
        case 0x7F, 0x08: return (1, .key(.backspace))
        case 0x00: return (1, nil)
        case 0x01...0x1A: return (1, .key(.control(Character(Unicode.Scalar(b + 0x60)))))
        case 0x1C...0x1F: return (1, nil)
        default:
            // One UTF-8 character.
            let length = b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1
            guard pending.count >= length else { return nil }
            let text = String(decoding: pending[0..<length], as: UTF8.self)
            guard let character = text.first, text.unicodeScalars.first?.value != 0xFFFD || length == 3 else { return (1, nil) }
            return (length, .key(.character(character)))
        }
    }

    private mutating func decodeCSI() -> (Int, InputEvent?)? {
        // ESC [ params final
        var i = 2
        while i < pending.count {
            let c = pending[i]
            if c >= 0x40 && c <= 0x7E { break }
            i += 1
        }
        guard i < pending.count else { return pending.count > 64 ? (pending.count, nil) : nil }
        let final = pending[i]
        let params = String(decoding: pending[2..<i], as: UTF8.self)
        let length = i + 1
        if params.hasPrefix("<") {
            // SGR mouse: ESC [ < button ; x ; y M|m
            let button = Int(params.dropFirst().split(separator: ";").first ?? "") ?? -1
            if final == UInt8(ascii: "M") {
                if button == 64 { return (length, .key(.wheelUp)) }
                if button == 65 { return (length, .key(.wheelDown)) }
            }
            return (length, nil)
        }
        let numbers = params.split(separator: ";").map { Int($0) ?? 0 }
        let modifier = numbers.count > 1 ? numbers[1] : 1
        switch final {
        case UInt8(ascii: "A"): return (length, .key(modifier == 3 || modifier == 5 ? .altUp : .up))
        case UInt8(ascii: "B"): return (length, .key(modifier == 3 || modifier == 5 ? .altDown : .down))
        case UInt8(ascii: "C"): return (length, .key(modifier == 3 ? .alt("f") : .right))
        case UInt8(ascii: "D"): return (length, .key(modifier == 3 ? .alt("b") : .left))
        case UInt8(ascii: "H"): return (length, .key(.home))
        case UInt8(ascii: "F"): return (length, .key(.end))
        case UInt8(ascii: "Z"): return (length, .key(.backTab))
        case UInt8(ascii: "~"):
            switch numbers.first ?? 0 {
            case 1, 7: return (length, .key(.home))
            case 4, 8: return (length, .key(.end))
            case 3: return (length, .key(.delete))
            case 5: return (length, .key(.pageUp))
            case 6: return (length, .key(.pageDown))
            case 11: return (length, .key(.f1))
            case 200:
                pasting = true
                return (length, nil)
            default: return (length, nil)
            }
        default: return (length, nil)
        }
    }
}
