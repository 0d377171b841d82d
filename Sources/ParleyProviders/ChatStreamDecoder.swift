import Foundation
import ParleyCore

/// Turns a provider's response body, in chunks of any size, into `ChatEvent`s. One per wire format.
public protocol ChatStreamDecoder: Sendable {
    /// Feeds the next bytes of the body and calls `emit` for each event they complete.
    mutating func feed(_ bytes: UnsafeRawBufferPointer, emit: (ChatEvent) -> Void) throws
    /// Whether the format's end marker has arrived.
    var sawTerminator: Bool { get }
    /// At the end of the body: handles what was left without a line end, then throws if the stream
    /// was cut off (ended without its end marker), which is never a success.
    mutating func finish(emit: (ChatEvent) -> Void) throws
}

extension ChatStreamDecoder {
    /// Feeds a whole byte array and collects the events; for tests and small bodies.
    public mutating func decode(_ bytes: [UInt8]) throws -> [ChatEvent] {
        var events: [ChatEvent] = []
        try bytes.withUnsafeBytes { raw in try feed(raw) { events.append($0) } }
        return events
    }

    /// Feeds a whole body and finishes it; for tests, fuzzing and small bodies.
    public mutating func decodeAll(_ bytes: [UInt8]) throws -> [ChatEvent] {
        var events = try decode(bytes)
        try finish { events.append($0) }
        return events
    }
}

extension ProviderError {
    /// An error object inside a stream that began with 200, the same for all three formats.
    static func inStream(_ json: JSONValue, provider: String) -> ProviderError {
        let parsed = ProviderErrorBody.parse(json) ?? ("the provider reported an error in the stream", nil)
        return ProviderError(kind: .inStream, provider: provider, message: parsed.message, type: parsed.type,
                             hint: parsed.type == "overloaded_error" ? "the service is overloaded; try again shortly" : nil)
    }

    static func malformed(provider: String, data: String) -> ProviderError {
        let sample = TerminalSanitizer.line(String(data.prefix(2000)), limit: 120)
        return ProviderError(
            kind: .malformed, provider: provider,
            message: "sent a stream chunk that is not valid JSON: \(sample)",
            hint: "this is a provider or proxy fault; try again or use another model"
        )
    }
}

/// Pulls the message out of the error bodies every provider uses:
/// `{"error":{"message":...,"type":...}}`, `{"type":"error","error":{...}}`, `{"error":"..."}`, `{"message":...}`.
public enum ProviderErrorBody {
    /// The message comes back as one safe line (see `message(from:)`).
    public static func parse(_ json: JSONValue) -> (message: String, type: String?)? {
        guard let (message, type) = find(json) else { return nil }
        return (TerminalSanitizer.line(message), type.map { TerminalSanitizer.line($0, limit: 80) })
    }

    static func find(_ json: JSONValue) -> (message: String, type: String?)? {
        if let error = json["error"] {
            if let text = error.string { return (text, nil) }
            let message = error["message"]?.string ?? error["msg"]?.string
            let type = error["type"]?.string ?? error["code"]?.string ?? error["status"]?.string
            if let message { return (message, type) }
            if let type { return (type, type) }
        }
        if let message = json["message"]?.string ?? json["detail"]?.string {
            return (message, json["type"]?.string ?? json["code"]?.string)
        }
        if let detail = json["detail"]?.array?.first?["msg"]?.string { return (detail, nil) }
        return nil
    }

    /// The message from a raw error body, falling back to its text when it is not JSON. Made one safe
    /// line here, before it goes anywhere (stderr, the screen, the session file, the ledger): a server's
    /// message may carry escape sequences or fake extra lines.
    public static func message(from body: [UInt8]) -> (message: String, type: String?) {
        if let json = try? JSONValue.parse(body), let parsed = parse(json) { return parsed }
        let text = TerminalSanitizer.line(String(decoding: body.prefix(300), as: UTF8.self))
            .trimmingCharacters(in: .whitespaces)
        return (text.isEmpty ? "no error message in the response" : text, nil)
    }
}
