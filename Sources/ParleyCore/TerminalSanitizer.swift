import Foundation

/// Removes everything from model output that a terminal would act on rather than show: CSI, OSC (titles,
/// OSC 8 links, OSC 52 clipboard writes), DCS/SOS/PM/APC strings, C1 controls (as raw bytes and as code
/// points), lone ESC, other C0 controls and DEL. Keeps `\n` and `\t`. Stateful, so a sequence split across
/// chunks is still removed whole. Bidirectional overrides and isolates, and invisible characters that can
/// hide text (zero-width space, word joiner, BOM, ...) are shown as `<U+202E>` rather than acted on, so
/// text cannot be made to read differently from what it is ("Trojan Source"). Zero-width joiner and
/// non-joiner stay: emoji sequences and several scripts need them, and they reorder nothing.
public struct TerminalSanitizer: Sendable {
    enum State: Sendable {
        case ground
        case escape
        case escapeIntermediate
        case csi
        /// OSC, DCS, SOS, PM, APC: consumed up to BEL (OSC) or ST (`ESC \` or U+009C).
        case controlString
        case controlStringEscape
    }

    /// A control string longer than this is abandoned (its text stays removed), so one unterminated
    /// OSC cannot swallow the rest of a reply.
    public static let maxControlStringLength = 4096

    private var state: State = .ground
    private var stringLength = 0
    private var utf8Pending: [UInt8] = []

    public init() {}

    /// Sanitizes text that is already decoded.
    public mutating func sanitize(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars { process(scalar, into: &out) }
        return String(out)
    }

    /// Sanitizes raw bytes: decodes UTF-8 across chunk boundaries and drops bytes that are not valid UTF-8
    /// (which covers C1 controls sent as single bytes 0x80–0x9F).
    public mutating func sanitize(bytes: some Sequence<UInt8>) -> String {
        var out = String.UnicodeScalarView()
        for byte in bytes {
            if utf8Pending.isEmpty {
                if byte < 0x80 { process(Unicode.Scalar(byte), into: &out); continue }
                if byte < 0xC2 || byte > 0xF4 { continue }  // lone continuation byte, C1 byte or invalid lead
                utf8Pending.append(byte)
                continue
            }
            guard byte & 0xC0 == 0x80 else {
                // The sequence broke off; drop it and treat this byte afresh.
                utf8Pending.removeAll()
                out.append(contentsOf: sanitize(bytes: CollectionOfOne(byte)).unicodeScalars)
                continue
            }
            utf8Pending.append(byte)
            let lead = utf8Pending[0]
            let needed = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2
            if utf8Pending.count == needed {
                var iterator = utf8Pending.makeIterator()
                var decoder = UTF8()
                if case let .scalarValue(scalar) = decoder.decode(&iterator) { process(scalar, into: &out) }
                utf8Pending.removeAll()
            }
        }
        return String(out)
    }

    private mutating func process(_ scalar: Unicode.Scalar, into out: inout String.UnicodeScalarView) {
        let value = scalar.value
        switch state {
        case .ground:
            handleGround(scalar, into: &out)
        case .escape:
            switch value {
            case 0x5B: state = .csi  // [
            case 0x5D, 0x50, 0x58, 0x5E, 0x5F: startString()  // ] P X ^ _
            case 0x1B: state = .escape
            case 0x20...0x2F: state = .escapeIntermediate
            case 0x30...0x7E: state = .ground  // a complete two-character escape
            default:
                // A lone ESC: drop it and show what follows.
                state = .ground
                handleGround(scalar, into: &out)
            }
        case .escapeIntermediate:
            switch value {
            case 0x20...0x2F: break
            case 0x30...0x7E: state = .ground
            default: state = .ground; handleGround(scalar, into: &out)
            }
        case .csi:
            switch value {
            case 0x30...0x3F, 0x20...0x2F: break  // parameters and intermediates
            case 0x40...0x7E: state = .ground  // final byte
            default: state = .ground; handleGround(scalar, into: &out)
            }
        case .controlString:
            stringLength += 1
            switch value {
            case 0x07, 0x9C: state = .ground
            case 0x1B: state = .controlStringEscape
            default: if stringLength > Self.maxControlStringLength { state = .ground }
            }
        case .controlStringEscape:
            if value == 0x5C {  // ESC \ is the string terminator
                state = .ground
            } else {
                state = .escape
                process(scalar, into: &out)
            }
        }
    }

    private mutating func handleGround(_ scalar: Unicode.Scalar, into out: inout String.UnicodeScalarView) {
        switch scalar.value {
        case 0x0A, 0x09: out.append(scalar)
        case 0x1B: state = .escape
        case 0x9B: state = .csi
        case 0x9D, 0x90, 0x98, 0x9E, 0x9F: startString()
        case 0x00...0x1F, 0x7F, 0x80...0x9F: break  // other C0, DEL and C1 controls
        case 0x061C, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069,  // bidi marks, embeddings, overrides, isolates
             0x200B, 0x2060...0x2064, 0xFEFF, 0x180E, 0x115F, 0x1160, 0x3164, 0xFFA0:  // invisible or blank-looking
            out.append(contentsOf: Self.visible(scalar).unicodeScalars)
        default: out.append(scalar)
        }
    }

    /// How an invisible or reordering character is shown: `<U+202E>`.
    static func visible(_ scalar: Unicode.Scalar) -> String {
        let hex = String(scalar.value, radix: 16, uppercase: true)
        return "<U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex + ">"
    }

    /// One line of text from outside (a provider's error message, a name from a file) made safe to show
    /// anywhere: sanitized, line breaks and tabs turned into spaces, at most `limit` characters.
    public static func line(_ text: String, limit: Int = 1000) -> String {
        var sanitizer = TerminalSanitizer()
        var out = ""
        for character in sanitizer.sanitize(text) {
            if out.count >= limit { out += "…"; break }
            out.append(character == "\n" || character == "\t" ? " " : character)
        }
        return out
    }

    private mutating func startString() {
        state = .controlString
        stringLength = 0
    }
}
