import Foundation
import ParleyCore

/// Prompt tokens estimated before sending, for budgets (no tokenizer for every provider can be shipped,
/// and the common ones need vocabulary files fetched from the network). Method: the text is cut into
/// runs the way BPE tokenizers tend to split it — a word of ASCII letters is one token per 7 letters
/// (rounded up), digits one per 3, ASCII punctuation one per 2 in a row, a word with other letters one
/// per 2.5 UTF-8 bytes, CJK, kana and hangul 1.8 per character; plus 6 per message for the chat
/// template's role markers and 3 for the reply's. Calibrated against the prompt tokens the real local model
/// (SmolLM2 in llama.cpp) counted; its error is in the README (`parley-bench estimate`). Budgets use
/// the worst case, so an estimate on the high side is the safe one.
public enum TokenEstimator {
    public static let perMessageOverhead = 6
    public static let replyPrimer = 3

    public static func estimate(_ request: ChatRequest) -> Int {
        var tokens = replyPrimer
        // Each part on its own (no joined copies of every message): a run never spans two parts anyway
        // but for a tool call's name and arguments, which differ by at most a token.
        for message in request.messages { tokens += estimate(message) }
        if let system = request.system, !system.isEmpty { tokens += perMessageOverhead + estimate(system) }
        for tool in request.tools { tokens += perMessageOverhead + estimate(tool.name) + estimate(tool.description) + estimate(tool.parametersJSON) }
        return tokens
    }

    /// One message's share of a request's estimate.
    public static func estimate(_ message: ChatMessage) -> Int {
        var tokens = perMessageOverhead + estimate(message.content)
        for call in message.toolCalls { tokens += estimate(call.name) + estimate(call.arguments) }
        return tokens
    }

    enum Run { case none, word, digits, punctuation, wide }

    public static func estimate(_ text: String) -> Int {
        var tokens = 0.0
        var run = Run.none
        var length = 0
        var bytes = 0
        var nonASCII = false
        func close() {
            switch run {
            case .none: break
            case .word: tokens += nonASCII ? (Double(bytes) / 2.5).rounded(.up) : (Double(length) / 7).rounded(.up)
            case .digits: tokens += (Double(length) / 3).rounded(.up)
            case .punctuation: tokens += (Double(length) / 2).rounded(.up)
            case .wide: tokens += (Double(length) * 1.8).rounded(.up)
            }
            run = .none
            length = 0
            bytes = 0
            nonASCII = false
        }
        for scalar in text.unicodeScalars {
            let value = scalar.value
            let kind: Run
            if value < 0x80 {
                // ASCII by table: Unicode property lookups were nearly all of the time (275 ms for a
                // 10,000-message conversation).
                switch UInt8(value) {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"): kind = .word
                case UInt8(ascii: "0")...UInt8(ascii: "9"): kind = .digits
                case 0x09...0x0D, 0x20:
                    close()
                    if value == 0x0A { tokens += 0.5 }
                    continue
                default: kind = .punctuation
                }
            } else if (0x2E80...0x9FFF).contains(value) || (0xAC00...0xD7AF).contains(value) || (0xF900...0xFAFF).contains(value) || (0xFF00...0xFFEF).contains(value) {
                kind = .wide
            } else if scalar.properties.isAlphabetic || scalar.properties.generalCategory == .nonspacingMark {
                kind = .word
            } else if ("0"..."9").contains(scalar) {
                kind = .digits
            } else if scalar.properties.isWhitespace {
                close()
                if scalar == "\n" { tokens += 0.5 }
                continue
            } else {
                kind = .punctuation
            }
            if kind != run { close(); run = kind }
            length += 1
            bytes += value < 0x80 ? 1 : value < 0x800 ? 2 : value < 0x10000 ? 3 : 4
            if value > 0x7F { nonASCII = true }
        }
        close()
        return Int(tokens.rounded(.up))
    }
}
