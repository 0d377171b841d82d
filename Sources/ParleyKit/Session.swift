import Foundation
import ParleyCore
#if canImport(Glibc)
import Glibc
#endif

/// One conversation as it is kept on disk: `sessions/ID.json`, format 1 (see sessions/README.md).
public struct Session: Codable, Sendable, Equatable {
    public static let currentFormat = 1

    public var format: Int
    public var id: String
    public var title: String
    public var createdAt: Date
    public var updatedAt: Date
    public var systemPrompt: String?
    /// The model the session continues with (`provider:model`).
    public var model: String
    public var messages: [SessionMessage]

    public init(id: String? = nil, title: String = "", model: String, systemPrompt: String? = nil, now: Date = Date()) {
        format = Self.currentFormat
        self.id = id ?? Self.newID(now: now)
        self.title = title
        createdAt = now
        updatedAt = now
        self.systemPrompt = systemPrompt
        self.model = model
        messages = []
    }

    /// Sortable by time, unique enough for one person's sessions: `20261125-143012-a1b2`.
    public static func newID(now: Date = Date()) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        return formatter.string(from: now) + "-" + String(format: "%04x", UInt16.random(in: 0...UInt16.max))
    }

    /// A title from the first prompt, without asking a model: its first line, cut at a word near 60 characters.
    public static func title(from prompt: String) -> String {
        let line = prompt.split(whereSeparator: \.isNewline).first.map(String.init)?.trimmingCharacters(in: .whitespaces) ?? ""
        guard line.count > 60 else { return line }
        let cut = line.prefix(60)
        let atWord = cut.lastIndex(of: " ").map { cut[..<$0] } ?? cut
        return String(atWord) + "…"
    }

    /// The messages on the current branch: from the last one back to the first through parent ids
    /// (a retried reply stays in the file, on a branch of its own).
    public var currentBranch: [SessionMessage] {
        var byID: [String: SessionMessage] = [:]
        for message in messages { byID[message.id] = message }
        var branch: [SessionMessage] = []
        var next = messages.last
        var seen = Set<String>()
        while let message = next, !seen.contains(message.id) {
            seen.insert(message.id)
            branch.append(message)
            next = message.parentID.flatMap { byID[$0] }
        }
        return branch.reversed()
    }

    /// The conversation as a provider is sent it: user and assistant turns with text, tool calls and results.
    public var chatMessages: [ChatMessage] {
        currentBranch.compactMap { message in
            switch message.role {
            case .user: return .user(message.content)
            case .assistant:
                guard !message.content.isEmpty || !(message.toolCalls ?? []).isEmpty else { return nil }
                return ChatMessage(role: .assistant, content: message.content,
                                   toolCalls: message.toolCalls ?? [])
            case .tool: return ChatMessage(role: .tool, content: message.content, toolCallID: message.toolCallID)
            }
        }
    }
}

public struct SessionMessage: Codable, Sendable, Equatable {
    public enum Role: String, Codable, Sendable { case user, assistant, tool }
    public enum Status: String, Codable, Sendable { case complete, streaming, stopped, error }

    public var id: String
    /// The message this one answers or follows; a tree, so branches need no format change.
    public var parentID: String?
    public var role: Role
    public var content: String
    public var provider: String?
    public var model: String?
    public var createdAt: Date
    public var completedAt: Date?
    public var usage: Usage?
    /// US dollars; nil when the price is unknown.
    public var cost: Double?
    public var timeToFirstTokenMs: Double?
    public var durationMs: Double?
    public var finishReason: String?
    public var status: Status
    /// For `status == .error`: the line the user saw.
    public var error: String?
    public var toolCalls: [ToolCall]?
    /// For `role == .tool`: the call this is the result of.
    public var toolCallID: String?
    /// Models tried for this reply before the one that answered, with the line each failed with.
    public var failedAttempts: [FailedAttempt]?
    /// The reply was replayed from the response cache (and cost nothing).
    public var fromCache: Bool?

    public struct FailedAttempt: Codable, Sendable, Equatable {
        /// `provider:model`.
        public var model: String
        public var error: String

        public init(model: String, error: String) {
            self.model = model
            self.error = error
        }
    }

    enum CodingKeys: String, CodingKey {
        case failedAttempts = "failed_attempts", fromCache = "from_cache"
        case id, role, content, provider, model, usage, cost, status, error
        case parentID = "parent_id", createdAt = "created_at", completedAt = "completed_at"
        case timeToFirstTokenMs = "time_to_first_token_ms", durationMs = "duration_ms", finishReason = "finish_reason"
        case toolCalls = "tool_calls", toolCallID = "tool_call_id"
    }

    public init(id: String = UUID().uuidString.lowercased(), parentID: String?, role: Role, content: String,
                provider: String? = nil, model: String? = nil, createdAt: Date = Date(), status: Status = .complete) {
        self.id = id
        self.parentID = parentID
        self.role = role
        self.content = content
        self.provider = provider
        self.model = model
        self.createdAt = createdAt
        self.status = status
    }
}

/// One line of `ID.journal`: text streamed into a message since the last full save.
public struct SessionJournalEntry: Sendable, Equatable {
    public var message: String
    public var append: String

    public init(message: String, append: String) {
        self.message = message
        self.append = append
    }
}

extension Session {
    enum CodingKeys: String, CodingKey {
        case format, id, title, model, messages
        case createdAt = "created_at", updatedAt = "updated_at", systemPrompt = "system_prompt"
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(Session.formatDate(date))
        }
        return encoder
    }()

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = Session.parseDate(text) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "expected an RFC 3339 time, found \"\(text)\"")
            }
            return date
        }
        return decoder
    }()

    /// RFC 3339 in UTC with milliseconds, by hand: a formatter object per call was most of a save's time.
    static func formatDate(_ date: Date) -> String {
        var milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded())
        var seconds = time_t(milliseconds / 1000)
        milliseconds %= 1000
        if milliseconds < 0 { milliseconds += 1000; seconds -= 1 }
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(milliseconds), 3))Z"
    }

    /// RFC 3339: `2026-11-25T12:47:09Z`, with optional fractional seconds and a `Z` or `±hh:mm` offset.
    static func parseDate(_ text: String) -> Date? {
        let b = Array(text.utf8)
        func number(_ from: Int, _ count: Int) -> Int? {
            guard from + count <= b.count else { return nil }
            var value = 0
            for i in from..<(from + count) {
                guard b[i] >= 48, b[i] <= 57 else { return nil }
                value = value * 10 + Int(b[i] - 48)
            }
            return value
        }
        guard b.count >= 20, b[4] == 45, b[7] == 45, b[10] == 84 || b[10] == 116, b[13] == 58, b[16] == 58,
              let year = number(0, 4), let month = number(5, 2), let day = number(8, 2),
              let hour = number(11, 2), let minute = number(14, 2), let second = number(17, 2),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
        var i = 19
        var fraction = 0.0
        if i < b.count, b[i] == 46 {
            i += 1
            var scale = 0.1
            let start = i
            while i < b.count, b[i] >= 48, b[i] <= 57 { fraction += Double(b[i] - 48) * scale; scale /= 10; i += 1 }
            guard i > start else { return nil }
        }
        var offset = 0
        if i < b.count, b[i] == 90 || b[i] == 122 {
            i += 1
        } else if i + 6 == b.count, b[i] == 43 || b[i] == 45, b[i + 3] == 58, let h = number(i + 1, 2), let m = number(i + 4, 2) {
            offset = (h * 3600 + m * 60) * (b[i] == 43 ? 1 : -1)
            i += 6
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        let seconds = timegm(&parts)
        return Date(timeIntervalSince1970: Double(seconds - offset) + fraction)
    }

    public func encoded() throws -> Data { try Self.encoder.encode(self) }
}

extension Session {
    /// Readable by a person: a header per message with who wrote it, the model and the time.
    public func markdown() -> String {
        let session = self
        var out = "# \(session.title.isEmpty ? "Untitled session" : session.title)\n\n"
        out += "Session `\(session.id)` · started \(Self.displayTime(session.createdAt)) · last model \(session.model)\n"
        if let system = session.systemPrompt { out += "\nSystem prompt: \(system)\n" }
        for message in session.currentBranch {
            var header: String
            switch message.role {
            case .user: header = "You"
            case .assistant: header = [message.provider, message.model].compactMap { $0 }.joined(separator: ":")
            case .tool: header = "Tool result"
            }
            if message.fromCache == true { header += " · cached" }
            header += " · \(Self.displayTime(message.createdAt))"
            switch message.status {
            case .complete: break
            case .streaming, .stopped: header += " · stopped"
            case .error: header += " · error"
            }
            out += "\n## \(header)\n\n"
            for attempt in message.failedAttempts ?? [] { out += "> \(attempt.model) failed first: \(attempt.error)\n\n" }
            out += "\(message.content)\n"
            if message.status == .error, let error = message.error { out += "\n> error: \(error)\n" }
        }
        return out
    }

    /// Local time to the minute, as people read it in listings and exports.
    public static func displayTime(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyy-MM-dd HH:mm"
        return formatter.string(from: date)
    }
}
