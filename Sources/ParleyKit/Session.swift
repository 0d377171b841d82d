import Foundation
import ParleyCore

/// One conversation as it is kept on disk: `sessions/ID.json`, format 2 (see sessions/README.md).
/// Format 1 (the same but for camelCase usage keys) is read, and written as 2 on the next save.
public struct Session: Codable, Sendable, Equatable {
    public static let currentFormat = 2

    public var format: Int
    public var id: String
    public var title: String
    public var createdAt: Date
    public var updatedAt: Date
    public var systemPrompt: String?
    /// The model the session continues with (`provider:model`).
    public var model: String
    public var messages: [SessionMessage]
    /// The message the current branch ends at, when that is not the last message of the file (after
    /// moving to another branch with the sibling keys); nil: the last message.
    public var leaf: String?
    /// Summaries written by `/compact` or `context = "compact"`: each stands in for the messages of its
    /// branch up to `summaryThrough` in what is sent (the messages themselves stay in `messages`).
    public var summaries: [SessionMessage]?

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
    /// By hand (gmtime_r): a DateFormatter loads ICU's data, about 5 MB resident, for the first message.
    public static func newID(now: Date = Date()) -> String {
        var seconds = time_t(now.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let random = String(UInt16.random(in: 0...UInt16.max), radix: 16)
        return "\(parts.tm_year + 1900)\(two(parts.tm_mon + 1))\(two(parts.tm_mday))-\(two(parts.tm_hour))\(two(parts.tm_min))\(two(parts.tm_sec))-"
            + String(repeating: "0", count: 4 - random.count) + random
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
        // Most sessions have no branches: each message follows the one before it, and the branch is all
        // of them (checked in one pass, without the table below).
        if leaf == nil, isLinear { return messages }
        var byID: [String: SessionMessage] = [:]
        for message in messages { byID[message.id] = message }
        var branch: [SessionMessage] = []
        var next = leaf.flatMap { byID[$0] } ?? messages.last
        var seen = Set<String>()
        while let message = next, !seen.contains(message.id) {
            seen.insert(message.id)
            branch.append(message)
            next = message.parentID.flatMap { byID[$0] }
        }
        return branch.reversed()
    }

    /// The newest summary that covers part of the current branch, and how many of the branch's messages
    /// it covers (those up to and including its `summaryThrough`).
    public var activeSummary: (summary: SessionMessage, covers: Int)? {
        guard let summaries, !summaries.isEmpty else { return nil }
        let branch = currentBranch
        var position: [String: Int] = [:]
        for (index, message) in branch.enumerated() { position[message.id] = index }
        for summary in summaries.reversed() {
            if let through = summary.summaryThrough, let index = position[through] { return (summary, index + 1) }
        }
        return nil
    }

    /// Each message follows the one before it: no branches anywhere.
    var isLinear: Bool {
        messages.first?.parentID == nil
            && !messages.indices.dropFirst().contains(where: { messages[$0].parentID != messages[$0 - 1].id })
    }

    /// The message a new one follows: the end of the current branch.
    public var tip: String? {
        if let leaf, messages.contains(where: { $0.id == leaf }) { return leaf }
        return messages.last?.id
    }

    /// Where each message of the current branch stands among its siblings (messages of the same role
    /// with the same parent: replies asked again with /retry, or prompts edited and sent again), by id;
    /// only messages that have siblings are in it. In file order, so the newest is the last.
    public var siblingPositions: [String: (index: Int, count: Int)] {
        if leaf == nil, isLinear { return [:] }
        var groups: [String: [String]] = [:]
        for message in messages { groups[Self.siblingKey(message), default: []].append(message.id) }
        var positions: [String: (index: Int, count: Int)] = [:]
        for message in currentBranch {
            guard let group = groups[Self.siblingKey(message)], group.count > 1, let index = group.firstIndex(of: message.id) else { continue }
            positions[message.id] = (index + 1, group.count)
        }
        return positions
    }

    private static func siblingKey(_ message: SessionMessage) -> String {
        message.role.rawValue + ":" + (message.parentID ?? "")
    }

    /// Moves the current branch to the sibling `delta` steps from `id` (−1 the one before, +1 the one
    /// after), continuing down to that sibling's latest reply. Returns the sibling and its position, or nil
    /// when there is no sibling that way (nothing changes then).
    public mutating func switchBranch(at id: String, by delta: Int) -> (sibling: String, index: Int, count: Int)? {
        guard let message = messages.first(where: { $0.id == id }) else { return nil }
        let key = Self.siblingKey(message)
        let group = messages.filter { Self.siblingKey($0) == key }
        guard let index = group.firstIndex(where: { $0.id == id }), group.indices.contains(index + delta) else { return nil }
        // Down the newest child at each step: where that branch was left.
        var children: [String: String] = [:]
        for message in messages { if let parent = message.parentID { children[parent] = message.id } }
        var end = group[index + delta].id
        var seen: Set<String> = [end]
        while let child = children[end], seen.insert(child).inserted { end = child }
        leaf = end == messages.last?.id ? nil : end
        return (group[index + delta].id, index + delta + 1, group.count)
    }

    /// The conversation as a provider is sent it: user and assistant turns with text, tool calls and results.
    public var chatMessages: [ChatMessage] { Self.chatMessages(currentBranch) }

    /// What is sent for the current branch: with a summary, only the messages after the ones it covers
    /// (and pinned ones), the summary going with the system prompt.
    public var sentMessages: (messages: [ChatMessage], summary: String?) {
        guard let active = activeSummary else { return (chatMessages, nil) }
        let kept = currentBranch.enumerated().filter { $0.offset >= active.covers || $0.element.pinned == true }.map(\.element)
        return (Self.chatMessages(kept), active.summary.content)
    }

    static func chatMessages(_ messages: [SessionMessage]) -> [ChatMessage] {
        messages.compactMap { message in
            switch message.role {
            case .user: return .user(message.content)
            case .assistant:
                guard !message.content.isEmpty || !(message.toolCalls ?? []).isEmpty else { return nil }
                return ChatMessage(role: .assistant, content: message.content,
                                   toolCalls: message.toolCalls ?? [])
            case .tool: return ChatMessage(role: .tool, content: message.content, toolCallID: message.toolCallID, isError: message.status == .error ? true : nil)
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
    /// For replies under `auto`: the `[router]` rule that chose the model ("default" when none matched).
    public var routeRule: String?
    /// For user messages sent despite input-guard findings: each finding's kind and pattern (never the text).
    public var guardAccepted: [String]?
    /// `/pin`: always sent, never trimmed or summarized away.
    public var pinned: Bool?
    /// For a summary (in `Session.summaries`): the last message it covers, and how many it covers.
    public var summaryThrough: String?
    public var summaryCount: Int?

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
        case failedAttempts = "failed_attempts", fromCache = "from_cache", routeRule = "route_rule", guardAccepted = "guard_accepted"
        case pinned, summaryThrough = "summary_through", summaryCount = "summary_count"
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
        case leaf = "current_leaf", summaries
        case createdAt = "created_at", updatedAt = "updated_at", systemPrompt = "system_prompt"
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(RFC3339.format(date))
        }
        return encoder
    }()

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = RFC3339.parse(text) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "expected an RFC 3339 time, found \"\(text)\"")
            }
            return date
        }
        return decoder
    }()

    /// Always the current format, whatever format the session was read from.
    public func encoded() throws -> Data {
        var current = self
        current.format = Self.currentFormat
        return try Self.encoder.encode(current)
    }
}

extension Session {
    /// This session with only the messages on its current branch (what export gives by default).
    public var currentBranchOnly: Session {
        var copy = self
        copy.messages = currentBranch
        copy.leaf = nil
        return copy
    }

    /// Readable by a person: a header per message with who wrote it, the model and the time. The
    /// current branch by default; with `allBranches` every message in the file's order, those on another
    /// branch marked, and where a branch starts, which message it answers.
    public func markdown(allBranches: Bool = false) -> String {
        let session = self
        var out = "# \(session.title.isEmpty ? "Untitled session" : session.title)\n\n"
        out += "Session `\(session.id)` · started \(Self.displayTime(session.createdAt)) · last model \(session.model)\n"
        if let system = session.systemPrompt { out += "\nSystem prompt: \(system)\n" }
        let onBranch = Set(session.currentBranch.map(\.id))
        var firstLines: [String: String] = [:]
        var previous: String?
        for message in allBranches ? session.messages : session.currentBranch {
            var header: String
            switch message.role {
            case .user: header = "You"
            case .assistant: header = [message.provider, message.model].compactMap { $0 }.joined(separator: ":")
            case .tool: header = "Tool result"
            }
            if message.fromCache == true { header += " · cached" }
            header += " · \(Self.displayTime(message.createdAt))"
            if allBranches {
                if !onBranch.contains(message.id) { header += " · another branch" }
                if let parent = message.parentID, parent != previous {
                    header += " · answers “\(firstLines[parent] ?? "an earlier message")”"
                }
                previous = message.id
            }
            firstLines[message.id] = String((message.content.split(separator: "\n").first ?? "").prefix(40))
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
        // Summaries are sent in place of older messages: shown, so nothing that is sent is hidden.
        for summary in allBranches ? session.summaries ?? [] : session.activeSummary.map({ [$0.summary] }) ?? [] {
            let by = [summary.provider, summary.model].compactMap { $0 }.joined(separator: ":")
            let anchor = firstLines[summary.summaryThrough ?? ""].map { " “\($0)”" } ?? ""
            out += "\n## Summary by \(by.isEmpty ? "a model" : by) · sent in place of the messages up to\(anchor.isEmpty ? " `\(summary.summaryThrough ?? "?")`" : anchor)\n\n\(summary.content)\n"
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
