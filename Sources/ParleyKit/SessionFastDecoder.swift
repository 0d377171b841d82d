import Foundation
import ParleyCore

/// Reads a session file in one pass over its bytes, without a tree and without Codable: resuming a
/// 10,000-message session spent 140 ms in `JSONDecoder`, this takes a tenth of that. It accepts only
/// what Parley itself writes, typed as the Codable path types it; on anything else (a missing field, a
/// wrong type, bad syntax) it gives up with nil and the Codable path decodes the file again, so a bad
/// file's message (which field, where) comes from one place. Unknown keys are skipped, as Codable does.
enum SessionFastDecoder {
    static func decode(_ bytes: UnsafeBufferPointer<UInt8>) -> Session? {
        // Strict, as JSONDecoder is: a damaged byte is reported (by the Codable path), not replaced.
        guard UTF8Validation.isValid(bytes) else { return nil }
        var cursor = JSONCursor(bytes, strict: true)
        guard cursor.enterObject() else { return nil }
        var format: Int?, id: String?, title: String?, model: String?, system: String?
        var created: Date?, updated: Date?, messages: [SessionMessage]?, leaf: String?, summaries: [SessionMessage]?
        var seen = KeysSeen()
        while let key = cursor.nextKey() {
            guard seen.first(key) else { return nil }
            if key.equals("format") { format = cursor.readNumber().flatMap(exactInt) }
            else if key.equals("id") { id = cursor.readString() }
            else if key.equals("title") { title = cursor.readString() }
            else if key.equals("model") { model = cursor.readString() }
            else if key.equals("system_prompt") { if !cursor.readNull() { guard let text = cursor.readString() else { return nil }; system = text } }
            else if key.equals("created_at") { created = cursor.readPlainString().flatMap(RFC3339.parse) }
            else if key.equals("updated_at") { updated = cursor.readPlainString().flatMap(RFC3339.parse) }
            else if key.equals("messages") { messages = readMessages(&cursor) }
            else if key.equals("summaries") { if !cursor.readNull() { guard let read = readMessages(&cursor) else { return nil }; summaries = read } }
            else if key.equals("current_leaf") { if !cursor.readNull() { guard let text = cursor.readString() else { return nil }; leaf = text } }
            else { guard cursor.readValue() != nil else { return nil } }
            if cursor.failed { return nil }
        }
        guard !cursor.failed, cursor.atEnd(), let format, format <= Session.currentFormat, let id, let title, let model,
              let created, let updated, let messages else { return nil }
        var session = Session(id: id, title: title, model: model, systemPrompt: system, now: created)
        session.format = format
        session.updatedAt = updated
        session.messages = messages
        session.leaf = leaf
        session.summaries = summaries
        return session
    }

    private static func readMessages(_ cursor: inout JSONCursor) -> [SessionMessage]? {
        guard cursor.enterArray() else { return nil }
        var messages: [SessionMessage] = []
        while cursor.nextElement() {
            guard let message = readMessage(&cursor) else { return nil }
            messages.append(message)
        }
        return cursor.failed ? nil : messages
    }

    private static func readMessage(_ cursor: inout JSONCursor) -> SessionMessage? {
        guard cursor.enterObject() else { return nil }
        var id: String?, role: SessionMessage.Role?, content: String?, created: Date?, status: SessionMessage.Status?
        var message = SessionMessage(id: "", parentID: nil, role: .user, content: "")
        // Optional fields: absent or null is nil; any other type is a reason to give up.
        func optionalString(_ cursor: inout JSONCursor) -> String?? {
            if cursor.readNull() { return .some(nil) }
            return cursor.readString().map { .some($0) }
        }
        func optionalDouble(_ cursor: inout JSONCursor) -> Double?? {
            if cursor.readNull() { return .some(nil) }
            return cursor.readNumber().map { .some($0) }
        }
        var seen = KeysSeen()
        while let key = cursor.nextKey() {
            guard seen.first(key) else { return nil }
            switch key.count {
            case 2 where key.equals("id"): id = cursor.readString()
            case 4 where key.equals("role"): role = cursor.readPlainString().flatMap(Self.role)
            case 7 where key.equals("content"): content = cursor.readString()
            case 10 where key.equals("created_at"): created = cursor.readPlainString().flatMap(RFC3339.parse)
            case 6 where key.equals("status"): status = cursor.readPlainString().flatMap(Self.status)
            default:
                if key.equals("parent_id") { guard let v = optionalString(&cursor) else { return nil }; message.parentID = v }
                else if key.equals("provider") { guard let v = optionalString(&cursor) else { return nil }; message.provider = v }
                else if key.equals("model") { guard let v = optionalString(&cursor) else { return nil }; message.model = v }
                else if key.equals("finish_reason") { guard let v = optionalString(&cursor) else { return nil }; message.finishReason = v }
                else if key.equals("error") { guard let v = optionalString(&cursor) else { return nil }; message.error = v }
                else if key.equals("tool_call_id") { guard let v = optionalString(&cursor) else { return nil }; message.toolCallID = v }
                else if key.equals("route_rule") { guard let v = optionalString(&cursor) else { return nil }; message.routeRule = v }
                else if key.equals("summary_through") { guard let v = optionalString(&cursor) else { return nil }; message.summaryThrough = v }
                else if key.equals("summary_count") {
                    if !cursor.readNull() { guard let n = cursor.readNumber().flatMap(exactInt) else { return nil }; message.summaryCount = n }
                } else if key.equals("pinned") {
                    if !cursor.readNull() { guard let flag = cursor.readBool() else { return nil }; message.pinned = flag }
                }
                else if key.equals("cost") { guard let v = optionalDouble(&cursor) else { return nil }; message.cost = v }
                else if key.equals("time_to_first_token_ms") { guard let v = optionalDouble(&cursor) else { return nil }; message.timeToFirstTokenMs = v }
                else if key.equals("duration_ms") { guard let v = optionalDouble(&cursor) else { return nil }; message.durationMs = v }
                else if key.equals("completed_at") {
                    if !cursor.readNull() { guard let date = cursor.readPlainString().flatMap(RFC3339.parse) else { return nil }; message.completedAt = date }
                } else if key.equals("from_cache") {
                    if !cursor.readNull() { guard let flag = cursor.readBool() else { return nil }; message.fromCache = flag }
                } else if key.equals("usage") {
                    if !cursor.readNull() { guard let usage = readUsage(&cursor) else { return nil }; message.usage = usage }
                } else if key.equals("tool_calls") {
                    if !cursor.readNull() { guard let calls = cursor.readValue().flatMap(readToolCalls) else { return nil }; message.toolCalls = calls }
                } else if key.equals("failed_attempts") {
                    if !cursor.readNull() { guard let attempts = cursor.readValue().flatMap(readAttempts) else { return nil }; message.failedAttempts = attempts }
                } else if key.equals("guard_accepted") {
                    if !cursor.readNull() { guard let kinds = cursor.readValue().flatMap(readStrings) else { return nil }; message.guardAccepted = kinds }
                } else {
                    // Unknown keys are built, not skipped, so their escapes are checked as strictly.
                    guard cursor.readValue() != nil else { return nil }
                }
            }
            if cursor.failed { return nil }
        }
        guard !cursor.failed, let id, let role, let content, let created, let status else { return nil }
        message.id = id
        message.role = role
        message.content = content
        message.createdAt = created
        message.status = status
        return message
    }

    static func role(_ raw: UnsafeBufferPointer<UInt8>) -> SessionMessage.Role? {
        raw.equals("user") ? .user : raw.equals("assistant") ? .assistant : raw.equals("tool") ? .tool : nil
    }

    static func status(_ raw: UnsafeBufferPointer<UInt8>) -> SessionMessage.Status? {
        raw.equals("complete") ? .complete : raw.equals("streaming") ? .streaming : raw.equals("stopped") ? .stopped : raw.equals("error") ? .error : nil
    }

    /// Keys of one object: Codable keeps the first of a repeated key and reads `\u` escapes in keys, which
    /// this reader does not, so an object with either is left to Codable.
    /// Keys are compared by a 64-bit hash: two different keys with the same hash only send the file to
    /// Codable, and a repeated key is never missed.
    struct KeysSeen {
        private var hashes: [UInt64] = []

        mutating func first(_ key: UnsafeBufferPointer<UInt8>) -> Bool {
            var hash: UInt64 = 0xCBF2_9CE4_8422_2325
            for byte in key {
                if byte == UInt8(ascii: "\\") { return false }
                hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3
            }
            if hashes.contains(hash) { return false }
            hashes.append(hash)
            return true
        }
    }

    /// A JSON number as an Int, when it is a whole number in Int's range.
    static func exactInt(_ number: Double) -> Int? {
        guard number.rounded() == number, abs(number) < 9.0e15 else { return nil }
        return Int(number)
    }

    /// Usage as its Codable reads it: format 2's snake_case keys, or format 1's camelCase ones when
    /// neither snake_case count is there; the cache counts may be absent or null.
    private static func readUsage(_ cursor: inout JSONCursor) -> Usage? {
        guard cursor.enterObject() else { return nil }
        var accounting: CacheAccounting?
        // prompt, completion, cached, cache write: snake_case, then camelCase; nil = absent, .some(nil) = null.
        var counts = [Int??](repeating: nil, count: 8)
        while let key = cursor.nextKey() {
            let slot: Int
            if key.equals("accounting") {
                switch cursor.readPlainString() {
                case let raw? where raw.equals("cached_inside_prompt") || raw.equals("cachedInsidePrompt"): accounting = .cachedInsidePrompt
                case let raw? where raw.equals("cached_outside_prompt") || raw.equals("cachedOutsidePrompt"): accounting = .cachedOutsidePrompt
                default: return nil
                }
                continue
            } else if key.equals("prompt_tokens") { slot = 0 } else if key.equals("completion_tokens") { slot = 1 }
            else if key.equals("cached_tokens") { slot = 2 } else if key.equals("cache_write_tokens") { slot = 3 }
            else if key.equals("promptTokens") { slot = 4 } else if key.equals("completionTokens") { slot = 5 }
            else if key.equals("cachedTokens") { slot = 6 } else if key.equals("cacheWriteTokens") { slot = 7 }
            else { guard cursor.readValue() != nil else { return nil }; continue }
            if cursor.readNull() { counts[slot] = .some(nil); continue }
            guard let number = cursor.readNumber().flatMap(exactInt) else { return nil }
            counts[slot] = .some(number)
        }
        guard !cursor.failed, let accounting else { return nil }
        let base = counts[0] != nil || counts[1] != nil ? 0 : 4
        // Required counts must be numbers; optional ones may be absent or null (then 0).
        guard let prompt = counts[base] ?? nil, let completion = counts[base + 1] ?? nil else { return nil }
        return Usage(promptTokens: prompt, completionTokens: completion, cachedTokens: (counts[base + 2] ?? nil) ?? 0,
                     cacheWriteTokens: (counts[base + 3] ?? nil) ?? 0, accounting: accounting)
    }

    private static func readToolCalls(_ value: JSONValue) -> [ToolCall]? {
        guard let items = value.array else { return nil }
        var calls: [ToolCall] = []
        for item in items {
            guard let id = item["id"]?.string, let name = item["name"]?.string, let arguments = item["arguments"]?.string else { return nil }
            calls.append(ToolCall(id: id, name: name, arguments: arguments))
        }
        return calls
    }

    private static func readAttempts(_ value: JSONValue) -> [SessionMessage.FailedAttempt]? {
        guard let items = value.array else { return nil }
        var attempts: [SessionMessage.FailedAttempt] = []
        for item in items {
            guard let model = item["model"]?.string, let error = item["error"]?.string else { return nil }
            attempts.append(SessionMessage.FailedAttempt(model: model, error: error))
        }
        return attempts
    }

    private static func readStrings(_ value: JSONValue) -> [String]? {
        guard let items = value.array else { return nil }
        var strings: [String] = []
        for item in items {
            guard let text = item.string else { return nil }
            strings.append(text)
        }
        return strings
    }
}

/// What a list of sessions shows, read without decoding any message: the messages array is only
/// skipped over (its syntax checked) and counted.
public struct SessionSummary: Sendable, Equatable {
    public var id: String
    public var title: String
    public var model: String
    public var updatedAt: Date
    public var messageCount: Int

    public init(id: String, title: String, model: String, updatedAt: Date, messageCount: Int) {
        self.id = id
        self.title = title
        self.model = model
        self.updatedAt = updatedAt
        self.messageCount = messageCount
    }

    public init(_ session: Session) {
        self.init(id: session.id, title: session.title, model: session.model, updatedAt: session.updatedAt, messageCount: session.messages.count)
    }

    /// nil when the file is not exactly what Parley writes; the caller then reads it whole.
    static func read(_ bytes: UnsafeBufferPointer<UInt8>) -> SessionSummary? {
        var cursor = JSONCursor(bytes)
        guard cursor.enterObject() else { return nil }
        var format: Int?, id: String?, title: String?, model: String?, updated: Date?, count: Int?
        while let key = cursor.nextKey() {
            if key.equals("format") { format = cursor.readNumber().flatMap(SessionFastDecoder.exactInt) }
            else if key.equals("id") { id = cursor.readString() }
            else if key.equals("title") { title = cursor.readString() }
            else if key.equals("model") { model = cursor.readString() }
            else if key.equals("updated_at") { updated = cursor.readString().flatMap(RFC3339.parse) }
            else if key.equals("messages") {
                guard cursor.enterArray() else { return nil }
                var n = 0
                while cursor.nextElement() {
                    guard cursor.skipValue() else { return nil }
                    n += 1
                }
                count = n
            } else { guard cursor.skipValue() else { return nil } }
            if cursor.failed { return nil }
        }
        guard !cursor.failed, cursor.atEnd(), let format, format <= Session.currentFormat, let id, let title, let model,
              let updated, let count else { return nil }
        return SessionSummary(id: id, title: title, model: model, updatedAt: updated, messageCount: count)
    }
}
