import Foundation
import ParleyCore
import ParleyKit

/// A model the picker offers, and whether its key is set.
public struct ModelChoice: Equatable, Sendable {
    public var name: String
    public var keyStatus: String

    public init(name: String, keyStatus: String) {
        self.name = name
        self.keyStatus = keyStatus
    }
}

/// What the status bar shows. Costs are text the engine formats ("$0.00", "?").
public struct StatusInfo: Equatable, Sendable {
    public enum Phase: Equatable, Sendable {
        case idle, connecting, waiting
        case streaming(tokens: Int)
        case retrying(seconds: Int, reason: String)
        case fellBack(to: String, reason: String)
        case stopped
        case error(String)
        /// A tool call is running.
        case tool(String)
    }

    public var model: String
    public var phase: Phase = .idle
    public var timeToFirstTokenMs: Double?
    public var tokensPerSecond: Double?
    public var tokensIn: Int?
    public var tokensOut: Int?
    public var turnCost = "?"
    public var sessionCost = "?"
    public var todayCost = "?"
    /// This turn's reply came from the response cache.
    public var turnCached = false
    /// Spend has reached 80 % of a budget limit: the costs are drawn as a warning.
    public var spendWarning = false
    /// Set when the provider's rate limits are low.
    public var rateLimit: String?
    public var contextUsed: Int?
    public var contextWindow: Int?

    public init(model: String) { self.model = model }
}

public enum Overlay: Equatable, Sendable {
    case help
    case modelPicker(selected: Int)
}

/// Everything the screen shows. Changed only by `reduce`.
public struct ChatState: Sendable {
    public var width: Int
    public var height: Int
    public var entries: [ChatEntry] = []
    public var layout: ConversationLayout
    /// Rows scrolled up from the bottom; 0 follows the conversation.
    public var scrollFromBottom = 0
    /// An entry whose streamed text is not laid out yet (see `settleLayout`).
    public internal(set) var pendingLayout: Int?
    public var newTextBelow = false
    public var input = InputBuffer()
    public var history: [String] = []
    var historyIndex: Int?
    var draftBeforeHistory = ""
    public var status: StatusInfo
    /// A tool call waiting for the user's yes or no.
    public var pendingApproval: ToolApprovalRequest?
    public var overlay: Overlay?
    public var notice: String?
    public var busy = false
    var quitArmed = false
    var ctrlXPending = false
    public var systemPrompt: String?
    /// /context trim|compact|refuse for this session; nil: the config decides (`ParleyConfig.contextPolicy`).
    public var contextPolicy: ContextPolicy?
    /// The summary sent in place of the messages up to `through` (compaction); they stay on screen.
    public var summary: ActiveSummary?
    /// Messages from before a `/clear`: no longer on screen, still sent as context.
    public var carriedContext: [ChatMessage] = []
    public var modelChoices: [ModelChoice] = []
    public var themeNames: [String] = []
    /// Saved sessions for /load completion: ids, then titles.
    public var sessionChoices: [String] = []
    public var templateNames: [String] = []
    /// `[guard]`: what Enter checks before sending.
    public var guardSettings = GuardSettings()
    /// A message held back by the input guard: Enter sends it anyway, Esc goes back to editing it.
    public var pendingGuard: PendingGuard?
    /// The entry picked with Alt-↑ (an index into `entries`): ↑/↓ move, ←/→ switch its branch, Enter
    /// edits it, Esc lets go.
    public var selected: Int?
    /// An earlier prompt of the user's being edited in the input line: Enter sends it as a new branch.
    public var editing: EditTarget?
    public var themeName = "dark"
    var nextID = 1
    var completion: Completion?
    /// The time as the last `.clock` action gave it: new entries are stamped with it, so the reducer
    /// never reads the system clock.
    public var now = Date(timeIntervalSince1970: 0)

    struct Completion: Equatable, Sendable {
        var prefix: String
        var candidates: [String]
        var index: Int
    }

    /// `timeZone` is the one message times are shown in.
    public init(width: Int, height: Int, model: String, timeZone: ClockZone = .fixed(TimeZone(secondsFromGMT: 0) ?? .current)) {
        self.width = width
        self.height = height
        layout = ConversationLayout(width: width, timeZone: timeZone)
        status = StatusInfo(model: model)
    }

    public static let minimumWidth = 20
    public static let minimumHeight = 6
    public var isTooSmall: Bool { width < Self.minimumWidth || height < Self.minimumHeight }

    /// The input rows on screen: its wrapped lines around the cursor, at most a third of the screen.
    public var inputWindow: InputLayout.Window {
        InputLayout.window(input, width: width, limit: max(1, (height - 2) / 3))
    }

    public var inputRows: Int { inputWindow.rows.count }

    public var paneHeight: Int { max(0, height - inputRows - 1) }
    public var maxScroll: Int { max(0, layout.totalRows - paneHeight) }

    /// The conversation as the provider will see it.
    public var contextMessages: [ChatMessage] { sendContext().messages }

    /// The conversation as the provider will see it, and what the runtime needs to fit it to the window:
    /// each message's session id, the pinned ones, the summary standing in for older ones.
    public func sendContext() -> (messages: [ChatMessage], context: TurnContext) {
        // Up to the summary's last message only pinned messages are sent: the summary stands in for the
        // rest. When that message is no longer on screen (/clear), what was carried was built without
        // the covered messages, and the summary is still sent.
        let covered = summary.flatMap { summary in entries.lastIndex(where: { $0.messageID == summary.through }) }
        var messages = covered == nil ? carriedContext : []
        var context = TurnContext(summary: summary?.text)
        var ids: [String?] = Array(repeating: nil, count: messages.count)
        for (index, entry) in entries.enumerated() {
            if let covered, index <= covered, !entry.pinned { continue }
            let message: ChatMessage
            switch entry.kind {
            case .user: message = .user(entry.text)
            case .assistant where !entry.text.isEmpty || !entry.toolCalls.isEmpty:
                message = ChatMessage(role: .assistant, content: entry.text, toolCalls: entry.toolCalls)
            case .tool where entry.tool.map({ $0.status != .running }) ?? false:
                let failed = entry.tool?.status == .error || entry.tool?.status == .declined
                message = ChatMessage(role: .tool, content: (failed ? "ERROR: " : "") + entry.text, toolCallID: entry.tool?.callID,
                                      isError: failed ? true : nil)
            default: continue
            }
            if entry.pinned { context.pinned.append(messages.count) }
            messages.append(message)
            ids.append(entry.messageID)
        }
        if ids.contains(where: { $0 != nil }) { context.ids = ids }
        return (messages, context)
    }

    mutating func makeID() -> Int {
        defer { nextID += 1 }
        return nextID
    }
}

/// A message the input guard held back, with what it found.
public struct PendingGuard: Sendable, Equatable {
    public var text: String
    public var findings: [GuardFinding]
}

/// The prompt being edited, and the draft that was in the input line before (Esc puts it back).
public struct EditTarget: Sendable, Equatable {
    public var messageID: String
    public var draftBefore: String
}

/// A summary sent in place of the messages up to `through`.
public struct ActiveSummary: Sendable, Equatable {
    public var through: String
    public var text: String
    public var model: String
    public var covers: Int

    public init(through: String, text: String, model: String, covers: Int) {
        self.through = through
        self.text = text
        self.model = model
        self.covers = covers
    }
}

/// What the runtime needs besides the messages to fit a request to the model's window. Empty (equal to
/// `TurnContext()`) for a conversation with no saved messages, pins or summary.
public struct TurnContext: Sendable, Equatable {
    /// Each message's session id (nil for what is not in the session: a template's examples); empty when
    /// none has one.
    public var ids: [String?] = []
    /// Indices of pinned messages: never trimmed or summarized away.
    public var pinned: [Int] = []
    /// The summary that stands in for older messages (sent with the system prompt).
    public var summary: String?

    public init(ids: [String?] = [], pinned: [Int] = [], summary: String? = nil) {
        self.ids = ids
        self.pinned = pinned
        self.summary = summary
    }
}

/// A tool call the user is asked about: y runs it, n declines, A always runs this tool, S this server.
public struct ToolApprovalRequest: Sendable, Equatable {
    public var id: Int
    public var server: String
    public var tool: String
    public var arguments: String
    /// When the bar appeared (the reducer's clock): keys before `settle` has passed are typed ahead.
    public var shownAt: Date?
    public static let settle = 0.5

    public init(id: Int, server: String, tool: String, arguments: String) {
        self.id = id
        self.server = server
        self.tool = tool
        self.arguments = arguments
    }
}

/// The answer to a `ToolApprovalRequest`.
public enum ToolDecision: Sendable, Equatable {
    case yes, no, alwaysTool, alwaysServer
}
