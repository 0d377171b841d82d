import Foundation
import ParleyCore
import ParleyKit
import ParleyProviders

/// The code libFuzzer drives (`scripts/fuzz`), and that the unit tests replay over the corpora it
/// found (`Tests/ParleyUnitTests/Fixtures/fuzz/TARGET/`). Each target feeds hostile bytes to one
/// parser and checks what must hold whatever the input: no trap, and a property (chunking does not
/// change the result, a parsed value survives a round trip, no control character gets through).
/// A broken property is a `preconditionFailure`, so libFuzzer records the input as a crash.
public enum FuzzTargets {
    public static let names = ["sse", "ndjson", "openai", "anthropic", "ollama", "json", "toml", "session", "ratelimit", "rfc3339", "sanitizer"]

    public static func run(_ target: String, _ data: [UInt8]) {
        switch target {
        case "sse": sse(data)
        case "ndjson": ndjson(data)
        case "openai": wireFormat(data) { OpenAIChatFormat.Decoder(provider: "fuzz", limits: limits) }
        case "anthropic": wireFormat(data) { AnthropicMessagesFormat.Decoder(provider: "fuzz", limits: limits) }
        case "ollama": wireFormat(data) { OllamaChatFormat.Decoder(provider: "fuzz", limits: limits) }
        case "json": json(data)
        case "toml": _ = try? TOMLParser.parse(String(decoding: data, as: UTF8.self))
        case "session": session(data)
        case "ratelimit": rateLimit(data)
        case "rfc3339": _ = RFC3339.parse(String(decoding: data, as: UTF8.self))
        case "sanitizer": sanitizer(data)
        default: preconditionFailure("unknown fuzz target \(target); targets: \(names.joined(separator: ", "))")
        }
    }

    /// Small limits, so the fuzzer reaches the over-limit paths too.
    static let limits = StreamLimits(maxEventBytes: 512, maxReplyBytes: 1 << 20, maxErrorBytes: 256)

    /// Where to split an input in two: from its first byte, so the fuzzer controls it.
    static func split(_ data: [UInt8]) -> Int { data.isEmpty ? 0 : Int(data[0]) % (data.count + 1) }

    static func sse(_ data: [UInt8]) {
        func decode(_ chunks: [ArraySlice<UInt8>]) -> [SSEEvent]? {
            var decoder = SSEDecoder(maxEventBytes: 512)
            var events: [SSEEvent] = []
            do { for chunk in chunks { events += try decoder.feed(chunk) } } catch { return nil }
            return events
        }
        let cut = split(data)
        let whole = decode([data[...]])
        let parts = decode([data[..<cut], data[cut...]])
        let bytewise = decode(data.indices.map { data[$0...$0] })
        precondition(whole == parts && whole == bytewise, "SSE events depend on how the bytes were split")
    }

    static func ndjson(_ data: [UInt8]) {
        func decode(_ chunks: [ArraySlice<UInt8>]) -> [[UInt8]]? {
            var decoder = NDJSONDecoder(maxLineBytes: 512)
            var lines: [[UInt8]] = []
            do { for chunk in chunks { lines += try decoder.feed(chunk) } } catch { return nil }
            return lines + decoder.finish()
        }
        let cut = split(data)
        precondition(decode([data[...]]) == decode([data[..<cut], data[cut...]]), "NDJSON lines depend on how the bytes were split")
    }

    /// A wire format's events must not depend on where the network split the body.
    static func wireFormat<D: ChatStreamDecoder>(_ data: [UInt8], _ make: () -> D) {
        let cut = split(data)
        let whole = outcome(make(), [data[...]])
        precondition(whole == outcome(make(), [data[..<cut], data[cut...]]), "events depend on how the body was split")
    }

    /// What a decoder makes of a body fed in these chunks: its events, then the kind of error it ended
    /// with, as text that two runs can be compared by.
    public static func outcome<D: ChatStreamDecoder>(_ decoder: D, _ chunks: [ArraySlice<UInt8>]) -> String {
        var decoder = decoder
        var events: [ChatEvent] = []
        do {
            for chunk in chunks { try Array(chunk).withUnsafeBytes { raw in try decoder.feed(raw) { events.append($0) } } }
            try decoder.finish { events.append($0) }
        } catch let error as ProviderError {
            return "\(events) then \(error.kind)"
        } catch {
            return "\(events) then \(error)"
        }
        return "\(events)"
    }

    static func json(_ data: [UInt8]) {
        guard let value = try? JSONValue.parse(data) else { return }
        let text = value.serialized()
        guard let again = try? JSONValue.parse(text) else { preconditionFailure("serialized JSON does not parse: \(text)") }
        precondition(again == value, "JSON does not survive a round trip")
        _ = value.int
    }

    static func session(_ data: [UInt8]) {
        guard let session = try? SessionStore.decode(Data(data), path: "fuzz.json", name: "fuzz") else { return }
        precondition(SessionID.isValid(session.id), "a session with an unsafe id was accepted")
        guard let encoded = try? session.encoded() else { preconditionFailure("a decoded session does not encode") }
        precondition((try? SessionStore.decode(encoded, path: "fuzz.json", name: "fuzz")) != nil, "a session does not survive a round trip")
    }

    static func rateLimit(_ data: [UInt8]) {
        let text = String(decoding: data, as: UTF8.self)
        let headers = text.split(separator: "\n").map { line -> (String, String) in
            let parts = line.split(separator: ":", maxSplits: 1)
            return (String(parts.first ?? ""), parts.count > 1 ? String(parts[1]) : "")
        }
        if let status = RateLimitHeaders.parse(HeaderFields(headers)) { _ = status.summary; _ = status.isLow }
        _ = RateLimitHeaders.goDuration(text)
    }

    static func sanitizer(_ data: [UInt8]) {
        var sanitizer = TerminalSanitizer()
        let cut = split(data)
        let out = sanitizer.sanitize(bytes: data[..<cut]) + sanitizer.sanitize(bytes: data[cut...])
        for scalar in out.unicodeScalars {
            let v = scalar.value
            precondition(v == 0x0A || v == 0x09 || (v >= 0x20 && v != 0x7F && !(0x80...0x9F).contains(v)), "a control character got through: \(v)")
            precondition(!(0x202A...0x202E).contains(v) && !(0x2066...0x2069).contains(v), "a bidi override got through")
        }
    }
}
