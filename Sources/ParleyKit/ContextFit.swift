import Foundation
import ParleyCore
import ParleyProviders

/// What happens when the next request would not fit the model's window: `context = …` under
/// `[context]` or `[models."provider:model"]`, or `/context` for one session.
public enum ContextPolicy: String, Sendable, CaseIterable {
    /// The oldest messages are left out of what is sent (never the system prompt, pinned messages or the newest).
    case trim
    /// The oldest messages are replaced in what is sent by a summary another model writes.
    case compact
    /// Nothing is sent; the line says what to do.
    case refuse
}

/// `[context]`.
public struct ContextSettings: Sendable, Equatable {
    /// nil: `[guard] on_oversize` decides (truncate → trim, else refuse), as before `[context]` existed.
    public var policy: ContextPolicy?
    /// The model that writes summaries; the local model by default, so compaction costs nothing.
    public var summaryModel = "local"
    /// Messages at the end of the conversation that are always sent as they are when compacting.
    public var keepRecent = 4
    /// The longest summary asked for, in tokens.
    public var summaryTokens = 512

    public init() {}

    static func parse(_ value: TOMLValue, reader: ConfigReader) throws(ConfigError) -> ContextSettings {
        let table = try reader.table(value, "context")
        try reader.allowOnly(table, ["policy", "summary_model", "keep_recent", "summary_tokens"], context: "[context]")
        var settings = ContextSettings()
        if let v = table["policy"] { settings.policy = try ContextPolicy.parse(v, "context.policy", reader: reader) }
        if let v = table["summary_model"] { settings.summaryModel = try reader.string(v, "context.summary_model") }
        if let v = table["keep_recent"] { settings.keepRecent = try reader.integer(v, "context.keep_recent", min: 1, max: 1000) }
        if let v = table["summary_tokens"] { settings.summaryTokens = try reader.integer(v, "context.summary_tokens", min: 32, max: 32_000) }
        return settings
    }
}

extension ContextPolicy {
    static func parse(_ value: TOMLValue, _ key: String, reader: ConfigReader) throws(ConfigError) -> ContextPolicy {
        let raw = try reader.string(value, key)
        guard let policy = ContextPolicy(rawValue: raw) else {
            throw ConfigError(file: reader.file, line: value.line, message: "\(key): expected trim, compact or refuse, found \"\(raw)\"")
        }
        return policy
    }
}

extension ParleyConfig {
    /// The model's own `context`, else `[context] policy`, else what `[guard] on_oversize` says.
    public func contextPolicy(for ref: ModelRef) -> ContextPolicy {
        models[ref]?.context ?? context.policy ?? (inputGuard.onOversize == .truncate ? .trim : .refuse)
    }
}

/// A summary written to stand in for older messages.
public struct CompactionSummary: Sendable, Equatable {
    public var text: String
    public var model: ModelRef
    public var usage: Usage?
    public var cost: Double?
    /// Messages of the transcript left out because even the summary model could not read them all.
    public var unread: Int
}

extension ChatEngine {
    /// How many of the oldest messages must go (into a summary, or out) for the rest, plus `allowance`
    /// tokens for the summary, to fit `limit`: never the newest `keepRecent` messages, never a pinned one
    /// (`keep`). Returns the indices, oldest first; empty when nothing can or need go.
    public func compactionSplit(_ request: ChatRequest, limit: Int, allowance: Int, keepRecent: Int, keep: Set<Int>) -> [Int] {
        var remaining = TokenEstimator.estimate(request) + allowance
        guard remaining > limit else { return [] }
        var gone: [Int] = []
        let protected = max(1, keepRecent)
        for index in request.messages.indices.dropLast(protected) where remaining > limit {
            if keep.contains(index) || request.messages[index].role == .system { continue }
            remaining -= TokenEstimator.estimate(request.messages[index])
            gone.append(index)
        }
        return gone
    }

    /// A summary of `messages` (and of an earlier summary they continue), written by `[context]
    /// summary_model` through the same turn as any request: budget, ledger row, retries. The transcript
    /// is cut from its oldest end to fit the summary model's window.
    public func summarize(_ messages: [ChatMessage], previous: String?, session: String?) async throws -> CompactionSummary {
        let ref = try config.resolve(config.context.summaryModel)
        let window = config.contextWindow(for: ref) ?? 4096
        let instructions = """
            You are compacting a long conversation so that it can go on with less context. Write a concise \
            summary of it: the facts, names, numbers, decisions, code and open questions that later messages \
            may refer to, in the order they came up. Write only the summary, in plain text.
            """
        var lines: [String] = []
        for message in messages {
            let who = message.role == .user ? "User" : message.role == .assistant ? "Assistant" : "Tool"
            lines.append("\(who): \(message.content)")
        }
        // Newest first until the window (after the instructions and the summary's room) is used up.
        let budget = max(256, window - config.context.summaryTokens - TokenEstimator.estimate(instructions) - 64)
        var kept: [String] = []
        var used = previous.map { TokenEstimator.estimate($0) + 8 } ?? 0
        for line in lines.reversed() {
            let cost = TokenEstimator.estimate(line) + 4
            guard used + cost <= budget else { break }
            used += cost
            kept.append(line)
        }
        let unread = lines.count - kept.count
        var transcript = kept.reversed().joined(separator: "\n\n")
        if let previous { transcript = "Summary of what came before:\n\(previous)\n\n" + transcript }
        var request = ChatRequest(model: ref.model, system: instructions, messages: [.user("The conversation:\n\n" + transcript)])
        request.maxTokens = config.context.summaryTokens
        request.temperature = 0
        var result: TurnResult?
        for try await event in turn(request, model: ref, options: TurnOptions(session: session, cache: false)) {
            if case let .finished(turn) = event { result = turn }
        }
        guard let result, !result.reply.text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw CompactionFailed(model: ref.description)
        }
        var sanitizer = TerminalSanitizer()
        return CompactionSummary(text: sanitizer.sanitize(result.reply.text).trimmingCharacters(in: .whitespacesAndNewlines),
                                 model: result.model, usage: result.reply.usage, cost: result.cost, unread: unread)
    }
}

public struct CompactionFailed: UserFacingError, Sendable {
    public var model: String
    public var userMessage: String { "\(model) wrote an empty summary" }
}
