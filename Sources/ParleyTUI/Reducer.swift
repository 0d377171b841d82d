import Foundation
import ParleyCore
import ParleyKit

/// What happened, from the keyboard, the terminal or the engine.
public enum Action: Equatable, Sendable {
    case input(InputEvent)
    case resize(width: Int, height: Int)
    case engine(EngineEvent)
    case editorClosed(String?)
    case themeChanged(String)
    case modelChanged(name: String, contextWindow: Int?, turnCostText: String)
    /// What is known of the model before any reply: its window, and whether its price is (else "?").
    case modelFacts(name: String, contextWindow: Int?, priceKnown: Bool)
    case showNote(String)
    /// A copy the terminal can take (checked off the UI thread): written, and said.
    case clipboardReady(text: String, what: String)
    case showError(String)
    /// Saved sessions for /load completion.
    case sessionChoices([String])
    /// Template names, for /template completion.
    case templateChoices([String])
    /// A rendered template: its system prompt and few-shot pairs set up the conversation, its prompt
    /// becomes the draft to edit and send.
    case templateApplied(name: String, system: String?, examples: [ChatMessage], draft: String)
    /// Puts text in the prompt line (a command to complete, say).
    case setDraft(String)
    /// The `[guard]` settings from the config.
    case guardSettings(GuardSettings)
    /// `auto` chose a model for the turn in progress.
    case routed(model: String, rule: String)
    /// A saved session, read off the UI thread, replaces the conversation on screen.
    case openSession(Session, resumed: Bool)
    /// The size of an opened conversation, estimated before any reply reports usage.
    case contextEstimated(tokens: Int)
    /// The time now, given by the runtime before the actions it stamps.
    case clock(Date)
    /// The turn in progress is on disk: its prompt's id (nil for a retry) and its reply's.
    case turnRecorded(user: String?, reply: String)
    /// The current branch moved (←/→ on a picked message): the session as it is now, with `select` picked.
    case branchSwitched(Session, select: String)
    /// A summary now stands in for the older messages in what is sent.
    case summaryAdded(ActiveSummary)
    /// A tool call waits for the user's decision.
    case askToolApproval(ToolApprovalRequest)
}

extension Action {
    /// Posted for one turn: dropped when it arrives after another turn started.
    var belongsToTurn: Bool {
        switch self {
        case .engine, .turnRecorded: return true
        default: return false
        }
    }
}

/// What the engine reports about the reply in flight.
public enum EngineEvent: Equatable, Sendable {
    case connecting
    case waiting
    case retrying(seconds: Int, reason: String)
    case delta(String)
    case firstToken(milliseconds: Double)
    case usage(promptTokens: Int, completionTokens: Int)
    case finished(tokensPerSecond: Double?)
    /// The finished reply checked against `/schema`: pretty JSON when it is valid, else the violations.
    case checkedJSON(pretty: String?, problems: [String])
    /// Costs as text ("$0.0123", "?"); `warn` when spend has reached 80 % of a limit.
    case spend(turn: String, session: String, today: String, warn: Bool)
    /// The model failed before any output; `to` answers instead.
    case fellBack(from: String, to: String, reason: String)
    /// The reply is replayed from the response cache.
    case cacheHit
    /// The provider's rate limits when they are low; nil when they are not (or were not sent).
    case rateLimit(String?)
    case stopped
    case failed(String)
    /// The reply asked for these tool calls; they run next.
    case toolCalls([ToolCall])
    /// A tool call started (shown as a block, and on the status bar).
    case toolStarted(ToolInfo)
    /// It ended: its result (sanitized) and how.
    case toolFinished(callID: String, text: String, status: ToolInfo.Status, milliseconds: Int)
    /// The next round of a turn with tools: a new reply streams.
    case nextRound
}

/// Side effects, described as data; the runtime carries them out.
public enum Effect: Equatable, Sendable {
    /// `retry`: the last user turn is sent again (its earlier reply stays in the session on a branch).
    /// `editing`: the prompt sent replaces that earlier one of the user's, on a new branch. `context`:
    /// what fitting the request to the window needs (ids, pins, the summary).
    case send(messages: [ChatMessage], system: String?, retry: Bool = false, guardAccepted: [String]? = nil, editing: String? = nil,
              context: TurnContext = TurnContext())
    /// /compact: summarize the older messages now (`context` as for a send).
    case compact(messages: [ChatMessage], system: String?, context: TurnContext)
    /// /pin, /unpin: saved in the session.
    case setPinned(messageID: String, Bool)
    /// The user's answer to a tool call's approval prompt.
    case decideTool(id: Int, ToolDecision)
    /// /tools: the MCP servers' tools; /mcp: the servers' state.
    case listTools
    case mcpState
    /// The current branch moves to the sibling `delta` steps from that message.
    case switchBranch(messageID: String, delta: Int)
    /// The conversation was forgotten (/new): the next message opens a new session.
    case newSession
    /// The screen shows this session now: the runtime writes to it and takes its model.
    case sessionOpened(Session)
    case stop
    case quit
    case switchModel(String)
    case listModels
    case setTheme(String)
    case listSessions
    /// /context: say how big the conversation is against the model's window, and what happens when it does not fit.
    case reportContext
    /// An id, id prefix or title prefix.
    case loadSession(String)
    case renameSession(String)
    /// Markdown to this path, or beside the session file when empty.
    case exportSession(String)
    case openEditor(String)
    /// /cache on|off; nil asks what it is.
    case setCache(Bool?)
    /// /schema SPEC, "off", or "" to ask what it is.
    case setSchema(String)
    /// /template NAME [KEY=VALUE …]
    case applyTemplate(String)
    case appendHistory(String)
    case redraw
    /// Ctrl-Z: give the terminal back to the shell and stop until `fg`.
    case suspend
    /// /copy, Alt-W: this text to the terminal's clipboard (OSC 52) if it can take it; `what` names it.
    case copy(text: String, what: String)
    /// Parley's OSC 52 sequence with this text, to the terminal.
    case writeClipboard(String)
}

public enum Commands {
    public static let all: [(name: String, help: String)] = [
        ("/model", "[NAME]  switch model (and provider); no name opens a list"),
        ("/models", "list providers and models"),
        ("/system", "TEXT  set the system prompt (empty clears it)"),
        ("/retry", "ask again for the last reply (the earlier one stays, as another branch)"),
        ("/edit-message", "[N]  edit your N-th last message (default the last) and send it as a new branch; also Alt-↑ then Enter"),
        ("/branch", "prev|next  show another branch of the picked message, or of the last reply (also Alt-↑ then ←/→)"),
        ("/new", "start a new conversation"),
        ("/clear", "clear the screen, keep the conversation as context"),
        ("/theme", "NAME  switch theme"),
        ("/cache", "on|off  answer repeated temperature-0 requests from the response cache"),
        ("/template", "NAME [KEY=VALUE …]  use a prompt template (Tab completes; asks for what it needs)"),
        ("/schema", "SPEC|off  answers must be JSON: JSON Schema, a file, or fields like `name, age int`"),
        ("/sessions", "list saved sessions"),
        ("/load", "SESSION  open a saved session (id, id prefix or title; Tab completes)"),
        ("/rename", "TITLE  rename this session"),
        ("/export", "[FILE]  write this session as Markdown"),
        ("/context", "[trim|compact|refuse]  the conversation's size against the model's window; what happens when it does not fit: trim leaves out the oldest messages, compact sends a summary of them, refuse sends nothing"),
        ("/compact", "[show]  summarize the older messages now (they stay here and in the file; the summary is sent instead); show: the summary"),
        ("/tools", "the tools MCP servers offer the model ([mcp.servers] in the config)"),
        ("/mcp", "the MCP servers and what each is doing"),
        ("/pin", "pin the picked message (or your last one): always sent, never trimmed or summarized; /unpin undoes it"),
        ("/copy", "[-R] [N]  copy the last reply (or the R-th from last), or its code block N, to the clipboard (also Alt-W)"),
        ("/edit", "edit the draft in $EDITOR (also Ctrl-X Ctrl-E)"),
        ("/help", "this help (also F1, or ? on an empty prompt)"),
        ("/quit", "leave (also Ctrl-D on an empty prompt, or Ctrl-C twice)"),
    ]
}

/// The pure update: state and action in, changed state and effects out. No I/O.
public func reduce(_ state: inout ChatState, _ action: Action) -> [Effect] {
    // Streamed text is laid out once per frame, not per token: every other action first sees the
    // layout brought up to date.
    if case .engine(.delta) = action {} else { settleLayout(&state) }
    switch action {
    case let .resize(width, height):
        let followed = state.scrollFromBottom == 0
        state.width = width
        state.height = height
        state.layout.rebuild(state.entries, width: width, rows: max(ConversationLayout.rebuildRows, state.scrollFromBottom + 2 * height))
        state.scrollFromBottom = followed ? 0 : min(state.scrollFromBottom, state.maxScroll)
        return [.redraw]
    case let .input(.paste(text)):
        // A paste edits the draft: a held-back message is not sent without being looked at again.
        state.pendingGuard = nil
        state.notice = nil
        state.quitArmed = false
        var sanitizer = TerminalSanitizer()
        state.input.insert(sanitizer.sanitize(text))
        return []
    case let .input(.key(key)):
        return handleKey(&state, key)
    case let .engine(event):
        handleEngine(&state, event)
        return []
    case let .editorClosed(text):
        if let text { state.input.set(text.hasSuffix("\n") ? String(text.dropLast()) : text) }
        return [.redraw]
    case let .themeChanged(name):
        state.themeName = name
        state.notice = "theme: \(name)"
        return []
    case let .modelChanged(name, contextWindow, turnCostText):
        state.status.model = name
        state.status.contextWindow = contextWindow
        state.status.turnCost = turnCostText
        state.notice = "now talking to \(name)"
        return []
    case let .modelFacts(name, contextWindow, priceKnown):
        state.status.model = name
        state.status.contextWindow = contextWindow
        state.status.turnCost = priceKnown ? "$0.00" : "?"
        return []
    case let .clipboardReady(text, what):
        appendEntry(&state, ChatEntry(id: state.makeID(), kind: .note, time: state.now, text: "copied \(what) (\(text.count) characters) to the clipboard"))
        return [.writeClipboard(text)]
    case let .showNote(text):
        appendEntry(&state, ChatEntry(id: state.makeID(), kind: .note, time: state.now, text: text))
        return []
    case let .sessionChoices(choices):
        state.sessionChoices = choices
        return []
    case let .templateChoices(names):
        state.templateNames = names
        return []
    case let .templateApplied(name, system, examples, draft):
        state.systemPrompt = system
        state.carriedContext += examples
        state.input.set(draft)
        let pairs = examples.count / 2
        appendEntry(&state, ChatEntry(id: state.makeID(), kind: .note, time: state.now,
                                      text: "template \(name): " + (system == nil ? "no system prompt" : "system prompt set")
                                        + (pairs > 0 ? ", \(pairs) example\(pairs == 1 ? "" : "s") sent before the conversation" : "")
                                        + (draft.isEmpty ? "" : "; its prompt is in the input line: edit it, Enter sends")))
        return []
    case let .setDraft(text):
        state.input.set(text)
        return []
    case let .guardSettings(settings):
        state.guardSettings = settings
        return []
    case let .routed(model, rule):
        state.status.model = "auto → \(model) (\(rule))"
        updateLast(&state) { $0.model = "\(model) · auto (\(rule))" }
        return []
    case let .openSession(session, resumed):
        show(session, in: &state)
        appendEntry(&state, ChatEntry(id: state.makeID(), kind: .note, time: state.now,
                                      text: "\(resumed ? "resumed" : "loaded") “\(session.title)” (\(session.messages.count) messages)"))
        if let summary = state.summary {
            // Never sent unseen: a summary in a file from elsewhere is text that goes with every request.
            appendEntry(&state, ChatEntry(id: state.makeID(), kind: .note, time: state.now,
                                          text: "a summary by \(summary.model) stands in for the \(summary.covers) oldest messages in what is sent (/compact show shows it)"))
        }
        return [.sessionOpened(session)]
    case let .contextEstimated(tokens):
        state.status.contextUsed = tokens
        return []
    case let .clock(date):
        state.now = date
        return []
    case let .turnRecorded(user, reply):
        if let user, let index = state.entries.lastIndex(where: { $0.kind == .user }), state.entries[index].messageID == nil {
            state.entries[index].messageID = user
        }
        if let index = state.entries.lastIndex(where: { $0.kind == .assistant }) { state.entries[index].messageID = reply }
        return []
    case let .askToolApproval(request):
        var request = request
        request.shownAt = state.now
        state.pendingApproval = request
        state.notice = nil
        return []
    case let .summaryAdded(summary):
        state.summary = summary
        appendEntry(&state, ChatEntry(id: state.makeID(), kind: .note, time: state.now,
                                      text: "compacted: a summary by \(summary.model) of the \(summary.covers) oldest messages is sent in their place "
                                        + "(they stay here and in the file; /compact show shows it)"))
        return []
    case let .branchSwitched(session, select):
        // The whole branch is shown again (what was cleared with /clear too), and is what is sent.
        show(session, in: &state)
        if let index = state.entries.lastIndex(where: { $0.messageID == select }) {
            selectEntry(&state, index)
            if let branch = state.entries[index].branch { state.notice = "branch \(branch.index) of \(branch.count)" }
        }
        return []
    case let .showError(text):
        // In the conversation, where a long message can be read whole, and in the status bar.
        appendEntry(&state, ChatEntry(id: state.makeID(), kind: .error, time: state.now, text: text))
        state.notice = text
        return []
    }
}

/// The session's conversation on the screen as it was: stopped and failed replies marked so.
private func show(_ session: Session, in state: inout ChatState) {
    state.entries = []
    state.carriedContext = []
    state.scrollFromBottom = 0
    state.newTextBelow = false
    state.selected = nil
    state.editing = nil
    state.summary = session.activeSummary.map { active in
        ActiveSummary(through: active.summary.summaryThrough ?? "", text: active.summary.content,
                      model: [active.summary.provider, active.summary.model].compactMap { $0 }.joined(separator: ":"),
                      covers: active.covers)
    }
    if let system = session.systemPrompt { state.systemPrompt = system }
    let positions = session.siblingPositions
    var calls: [String: ToolCall] = [:]
    for message in session.currentBranch {
        let id = state.makeID()
        defer {
            state.entries[state.entries.count - 1].messageID = message.id
            state.entries[state.entries.count - 1].branch = positions[message.id].map { BranchMark(index: $0.index, count: $0.count) }
            state.entries[state.entries.count - 1].pinned = message.pinned == true
        }
        switch message.role {
        case .user:
            state.entries.append(ChatEntry(id: id, kind: .user, time: message.createdAt, text: message.content))
        case .assistant:
            let status: ChatEntry.Status
            switch message.status {
            case .complete: status = .complete
            case .stopped, .streaming: status = .stopped
            case .error: status = .failed(message.error ?? "error")
            }
            let model = message.provider.map { "\($0):\(message.model ?? "")" } ?? message.model
            var entry = ChatEntry(id: id, kind: .assistant, model: model, time: message.createdAt, text: message.content, status: status)
            entry.toolCalls = message.toolCalls ?? []
            for call in entry.toolCalls { calls[call.id] = call }
            state.entries.append(entry)
        case .tool:
            // A result is sent again as it was; shown as its block (its text sanitized when drawn).
            var entry = ChatEntry(id: id, kind: .tool, time: message.createdAt, text: message.content)
            let call = message.toolCallID.flatMap { calls[$0] }
            entry.tool = ToolInfo(callID: message.toolCallID ?? "", name: call?.name ?? "tool", arguments: call?.arguments ?? "",
                                  status: message.status == .error ? .error : .ok)
            if message.status == .error, entry.text.hasPrefix("ERROR: ") { entry.text.removeFirst(7) }
            state.entries.append(entry)
        }
    }
    state.layout.rebuild(state.entries, width: state.width)
}

private func appendEntry(_ state: inout ChatState, _ entry: ChatEntry) {
    let before = state.layout.totalRows
    state.entries.append(entry)
    state.layout.append(entry)
    keepViewSteady(&state, grownBy: state.layout.totalRows - before)
}

/// While the user has scrolled up, new rows push the bottom away and the view stays where it is.
private func keepViewSteady(_ state: inout ChatState, grownBy rows: Int) {
    guard rows > 0, state.scrollFromBottom > 0 else { return }
    state.scrollFromBottom += rows
    state.newTextBelow = true
}

/// Lays out text streamed since the last frame (the runtime calls this before it paints; `reduce`
/// before any other action).
public func settleLayout(_ state: inout ChatState) {
    guard let index = state.pendingLayout else { return }
    state.pendingLayout = nil
    guard state.entries.indices.contains(index) else { return }
    let before = state.layout.totalRows
    state.layout.update(state.entries[index], at: index)
    keepViewSteady(&state, grownBy: state.layout.totalRows - before)
}

private func updateLast(_ state: inout ChatState, _ change: (inout ChatEntry) -> Void) {
    guard let index = state.entries.indices.last(where: { state.entries[$0].kind == .assistant }) else { return }
    let before = state.layout.totalRows
    change(&state.entries[index])
    state.layout.update(state.entries[index], at: index)
    keepViewSteady(&state, grownBy: state.layout.totalRows - before)
}

/// Tool blocks still running when a turn ends were stopped: they say so (and the model is told so).
private func settleRunningTools(_ state: inout ChatState) {
    for index in state.entries.indices.reversed() where state.entries[index].kind == .tool && state.entries[index].tool?.status == .running {
        state.entries[index].tool?.status = .error
        state.entries[index].text = "stopped before it finished"
        state.layout.update(state.entries[index], at: index)
    }
}

private func handleEngine(_ state: inout ChatState, _ event: EngineEvent) {
    switch event {
    case .connecting: state.status.phase = .connecting
    case .waiting: state.status.phase = .waiting
    case let .retrying(seconds, reason): state.status.phase = .retrying(seconds: seconds, reason: reason)
    case let .firstToken(ms): state.status.timeToFirstTokenMs = ms
    case let .delta(text):
        // Appended now, laid out at the next frame (settleLayout).
        if let index = state.entries.indices.last(where: { state.entries[$0].kind == .assistant }) {
            if let pending = state.pendingLayout, pending != index { settleLayout(&state) }
            state.entries[index].text += text
            state.pendingLayout = index
        }
        let tokens: Int
        if case let .streaming(n) = state.status.phase { tokens = n + 1 } else { tokens = 1 }
        state.status.phase = .streaming(tokens: tokens)
    case let .usage(prompt, completion):
        state.status.tokensIn = prompt
        state.status.tokensOut = completion
        state.status.contextUsed = prompt + completion
    case let .finished(rate):
        state.busy = false
        state.status.tokensPerSecond = rate
        state.status.phase = .idle
        updateLast(&state) { $0.status = .complete }
    case let .checkedJSON(pretty, problems):
        if let pretty {
            updateLast(&state) { $0.text = "```json\n" + pretty + "\n```" }
            state.layout.rebuild(state.entries, width: state.width)
            appendEntry(&state, ChatEntry(id: state.makeID(), kind: .note, time: state.now, text: "✓ valid JSON for the schema"))
        } else {
            let text = "✗ the reply does not match the schema:\n" + problems.map { "  " + $0 }.joined(separator: "\n")
            appendEntry(&state, ChatEntry(id: state.makeID(), kind: .error, time: state.now, text: text))
        }
    case let .spend(turn, session, today, warn):
        state.status.turnCost = turn
        state.status.sessionCost = session
        state.status.todayCost = today
        state.status.spendWarning = warn
    case let .fellBack(from, to, reason):
        state.status.phase = .fellBack(to: to, reason: reason)
        updateLast(&state) { $0.model = "\(to) · fell back from \(from)" }
    case .cacheHit:
        state.status.turnCached = true
        updateLast(&state) { $0.model = ($0.model ?? "") + " · cached" }
    case let .rateLimit(text):
        state.status.rateLimit = text
    case .stopped:
        state.busy = false
        state.pendingApproval = nil
        state.status.phase = .stopped
        settleRunningTools(&state)
        updateLast(&state) { $0.status = .stopped }
    case let .failed(message):
        state.busy = false
        state.pendingApproval = nil
        settleRunningTools(&state)
        state.status.phase = .error(message)
        updateLast(&state) { $0.status = .failed(message) }
    case let .toolCalls(calls):
        updateLast(&state) { $0.toolCalls = calls; $0.status = .complete }
    case let .toolStarted(info):
        state.pendingApproval = nil
        state.status.phase = .tool(info.name)
        var entry = ChatEntry(id: state.makeID(), kind: .tool, time: state.now, text: "")
        entry.tool = info
        appendEntry(&state, entry)
    case let .toolFinished(callID, text, status, milliseconds):
        state.pendingApproval = nil
        guard let index = state.entries.lastIndex(where: { $0.kind == .tool && $0.tool?.callID == callID }) else { return }
        let before = state.layout.totalRows
        state.entries[index].text = text
        state.entries[index].tool?.status = status
        state.entries[index].tool?.milliseconds = milliseconds
        state.layout.update(state.entries[index], at: index)
        keepViewSteady(&state, grownBy: state.layout.totalRows - before)
    case .nextRound:
        state.status.phase = .connecting
        appendEntry(&state, ChatEntry(id: state.makeID(), kind: .assistant, model: state.status.model, time: state.now, text: "", status: .streaming))
    }
}

private func handleKey(_ state: inout ChatState, _ key: Key) -> [Effect] {
    let wasArmed = state.quitArmed
    state.quitArmed = false
    if key != .tab { state.completion = nil }
    if state.ctrlXPending {
        state.ctrlXPending = false
        if key == .control("e") { return [.openEditor(state.input.text)] }
    }
    if let overlay = state.overlay {
        return handleOverlayKey(&state, overlay, key)
    }
    if let approval = state.pendingApproval {
        // Only a deliberate answer runs a tool: keys typed ahead (within half a second of the bar) and
        // anything but the choices do nothing, and "always" takes a capital letter, so text typed for the
        // prompt ("thanks") can never approve.
        let early = approval.shownAt.map { state.now.timeIntervalSince($0) < ToolApprovalRequest.settle } ?? false
        let decision: ToolDecision?
        switch key {
        case .control("c"):
            state.pendingApproval = nil
            return [.decideTool(id: approval.id, .no), .stop]
        case .character("n"), .character("N"), .escape: decision = .no
        case _ where early: decision = nil
        case .character("y"), .character("Y"): decision = .yes
        case .character("A"): decision = .alwaysTool
        case .character("S"): decision = .alwaysServer
        default: decision = nil
        }
        guard let decision else {
            state.notice = "y runs it, n declines, A (capital) always runs \(approval.tool), S every tool of \(approval.server); Ctrl-C stops the turn"
            return []
        }
        state.pendingApproval = nil
        state.notice = nil
        return [.decideTool(id: approval.id, decision)]
    }
    if let pending = state.pendingGuard {
        state.pendingGuard = nil
        switch key {
        case .enter:
            // Sent anyway: the session keeps what was accepted (the kinds and patterns, not the text).
            state.input.set("")
            if state.history.last != pending.text { state.history.append(pending.text) }
            return [.appendHistory(pending.text)] + startTurn(&state, userText: pending.text,
                                                             guardAccepted: pending.findings.map { "\($0.kind.rawValue): \($0.pattern)" })
        case .escape, .control("c"):
            state.notice = "not sent; edit the message"
            return []
        default:
            break  // any other key edits the draft as usual
        }
    }
    if state.selected != nil, let effects = handleSelectionKey(&state, key) { return effects }
    state.notice = nil
    switch key {
    case .enter:
        return submit(&state)
    case .altUp:
        guard let last = state.entries.indices.last(where: { isMessage(state.entries[$0]) }) else {
            state.notice = "no message to pick yet"
            return []
        }
        selectEntry(&state, last)
        state.notice = selectionHelp(state.entries[last])
    case .altDown:
        break
    case .alt("\r"), .control("j"):
        state.input.insert("\n")
    case .escape:
        if state.busy { return [.stop] }
        if let editing = state.editing {
            state.editing = nil
            state.input.set(editing.draftBefore)
            state.notice = "edit cancelled; the conversation is as it was"
        }
    case .control("c"):
        if state.busy { return [.stop] }
        if !state.input.isEmpty { state.input.set(""); return [] }
        if wasArmed { return [.quit] }
        state.quitArmed = true
        state.notice = "press Ctrl-C again to quit"
    case .control("d"):
        if state.input.isEmpty { return state.busy ? [.stop, .quit] : [.quit] }
        state.input.deleteForward()
    case .control("a"): state.input.lineStart()
    case .control("e"): state.input.lineEnd()
    case .control("b"), .left: state.input.left()
    case .control("f"), .right: state.input.right()
    case .control("k"): state.input.killToEnd()
    case .control("u"): state.input.killToStart()
    case .control("w"), .alt("\u{7F}"): state.input.killWordBackward()
    case .control("y"): state.input.yank()
    case .control("x"): state.ctrlXPending = true
    case .control("l"): return [.redraw]
    case .control("z"): return [.suspend]
    case .alt("b"): state.input.wordLeft()
    case .alt("f"): state.input.wordRight()
    case .alt("d"): state.input.killWordForward()
    case .alt("w"):
        if case let .success(target) = copyTarget(state, "") { return [.copy(text: target.text, what: target.what)] }
        state.notice = "no reply to copy yet"
    case .alt("<"): state.input.inputStart()
    case .alt(">"): state.input.inputEnd()
    case .backspace, .control("h"): state.input.backspace()
    case .delete: state.input.deleteForward()
    case .home:
        if state.input.isEmpty {
            state.layout.measureMore(state.entries, rows: .max)
            scroll(&state, to: state.maxScroll)
        } else {
            state.input.lineStart()
        }
    case .end:
        if state.input.isEmpty { scroll(&state, to: 0) } else { state.input.lineEnd() }
    case .pageUp: scroll(&state, to: state.scrollFromBottom + max(1, state.paneHeight - 2))
    case .pageDown: scroll(&state, to: state.scrollFromBottom - max(1, state.paneHeight - 2))
    case .wheelUp: scroll(&state, to: state.scrollFromBottom + 3)
    case .wheelDown: scroll(&state, to: state.scrollFromBottom - 3)
    case .up:
        if !state.input.moveVertically(-1) { historyStep(&state, -1) }
    case .down:
        if !state.input.moveVertically(1) { historyStep(&state, 1) }
    case .tab: complete(&state)
    case .f1: state.overlay = .help
    case let .character(c):
        if c == "?", state.input.isEmpty { state.overlay = .help; return [] }
        state.input.insert(String(c))
    default: break
    }
    return []
}

// MARK: picking a message: edit it, or move between its branches

private func isMessage(_ entry: ChatEntry) -> Bool { entry.kind == .user || entry.kind == .assistant || entry.kind == .tool }

private func selectionHelp(_ entry: ChatEntry) -> String {
    "picked: ↑/↓ another message" + (entry.kind == .user ? " · Enter edits it" : "") + (entry.branch == nil ? "" : " · ←/→ its branches")
        + (entry.pinned ? " · p unpins" : " · p pins") + (entry.kind == .assistant ? " · c copies" : "") + " · Esc done"
}

private func pin(_ state: inout ChatState, _ index: Int, _ pinned: Bool) -> [Effect] {
    guard let id = state.entries[index].messageID else {
        state.notice = "that message is not saved, so it cannot be pinned"
        return []
    }
    state.entries[index].pinned = pinned
    state.layout.update(state.entries[index], at: index)
    state.notice = pinned ? "pinned: always sent, never trimmed or summarized away" : "unpinned"
    return [.setPinned(messageID: id, pinned)]
}

/// Picks entry `index` (or none), redrawing the headers that change, and scrolls it into view.
private func selectEntry(_ state: inout ChatState, _ index: Int?) {
    if let old = state.selected, state.entries.indices.contains(old) {
        state.entries[old].selected = false
        state.layout.update(state.entries[old], at: old)
    }
    state.selected = nil
    guard let index, state.entries.indices.contains(index) else { return }
    state.selected = index
    state.entries[index].selected = true
    state.layout.update(state.entries[index], at: index)
    reveal(&state, index)
}

/// Scrolls so that the entry's first row is on screen.
private func reveal(_ state: inout ChatState, _ index: Int) {
    while index < state.layout.firstMeasured, state.layout.firstMeasured > 0 {
        state.layout.measureMore(state.entries, rows: ConversationLayout.rebuildRows)
    }
    let k = index - state.layout.firstMeasured
    guard k >= 0, k < state.layout.ends.count else { return }
    let start = k == 0 ? 0 : state.layout.ends[k - 1]
    let total = state.layout.totalRows
    let top = total - state.scrollFromBottom - state.paneHeight
    let bottom = total - state.scrollFromBottom
    if start < top || start >= bottom {
        scroll(&state, to: total - start - max(1, state.paneHeight / 3))
    }
}

/// Keys while a message is picked; nil lets go of it and handles the key as usual.
private func handleSelectionKey(_ state: inout ChatState, _ key: Key) -> [Effect]? {
    guard let index = state.selected, state.entries.indices.contains(index) else {
        state.selected = nil
        return nil
    }
    let entry = state.entries[index]
    switch key {
    case .up, .altUp:
        if let previous = state.entries[..<index].lastIndex(where: isMessage) { selectEntry(&state, previous) }
        state.notice = selectionHelp(state.entries[state.selected ?? index])
        return []
    case .down, .altDown:
        if let next = state.entries[(index + 1)...].firstIndex(where: isMessage) {
            selectEntry(&state, next)
            state.notice = selectionHelp(state.entries[next])
        } else {
            selectEntry(&state, nil)
            scroll(&state, to: 0)
            state.notice = nil
        }
        return []
    case .left, .right:
        return switchBranch(&state, index, delta: key == .left ? -1 : 1)
    case .enter where entry.kind == .tool:
        state.entries[index].expanded.toggle()
        let before = state.layout.totalRows
        state.layout.update(state.entries[index], at: index)
        keepViewSteady(&state, grownBy: state.layout.totalRows - before)
        return []
    case .enter, .character("e"):
        guard entry.kind == .user else {
            state.notice = "only your own messages are edited; /retry asks again for a reply"
            return []
        }
        return beginEdit(&state, index)
    case .character("p"):
        return pin(&state, index, !entry.pinned)
    case .character("c"):
        guard entry.kind == .assistant, !entry.text.isEmpty else { state.notice = "c copies a reply; this is not one"; return [] }
        selectEntry(&state, nil)
        return [.copy(text: entry.text, what: "the picked reply")]
    case .escape, .character("q"):
        selectEntry(&state, nil)
        state.notice = nil
        return []
    default:
        selectEntry(&state, nil)
        return nil
    }
}

private func switchBranch(_ state: inout ChatState, _ index: Int, delta: Int) -> [Effect] {
    let entry = state.entries[index]
    guard !state.busy else { state.notice = "a reply is still streaming; Esc stops it"; return [] }
    guard let branch = entry.branch else {
        state.notice = "this message has no other branch (/retry on a reply, or editing a prompt, makes one)"
        return []
    }
    guard let id = entry.messageID else { state.notice = "this message is not saved yet"; return [] }
    let target = branch.index + delta
    guard target >= 1, target <= branch.count else {
        state.notice = "branch \(branch.index) of \(branch.count): " + (delta < 0 ? "this is the first" : "this is the last")
        return []
    }
    return [.switchBranch(messageID: id, delta: delta)]
}

/// Puts an earlier prompt in the input line to edit; Enter sends it as a new branch from there.
private func beginEdit(_ state: inout ChatState, _ index: Int) -> [Effect] {
    let entry = state.entries[index]
    guard !state.busy else { state.notice = "a reply is still streaming; Esc stops it"; return [] }
    guard let id = entry.messageID else {
        state.notice = "that message was never saved (it was held back before sending); type it again instead"
        return []
    }
    selectEntry(&state, nil)
    state.editing = EditTarget(messageID: id, draftBefore: state.editing?.draftBefore ?? state.input.text)
    state.input.set(entry.text)
    state.notice = "editing: Enter sends it as a new branch (the old one stays: Alt-↑ then ←/→); Esc cancels"
    return []
}

struct CopyProblem: Error { var message: String }

/// What `/copy [-R] [N]` names: the last reply (or the R-th from last, `-1` being the last), whole
/// or its code block N as numbered on screen.
func copyTarget(_ state: ChatState, _ argument: String) -> Result<(text: String, what: String), CopyProblem> {
    var words = argument.split(separator: " ").map(String.init)
    var back = 1
    if let first = words.first, first.hasPrefix("-") {
        guard let r = Int(first.dropFirst()), r >= 1 else { return .failure(CopyProblem(message: "\(first) is not -R (-1 is the last reply, -2 the one before)")) }
        back = r
        words.removeFirst()
    }
    let replies = state.entries.filter { $0.kind == .assistant && !$0.text.isEmpty }
    guard !replies.isEmpty else { return .failure(CopyProblem(message: "there is no reply to copy yet")) }
    guard back <= replies.count else { return .failure(CopyProblem(message: "there are only \(replies.count) replies")) }
    let reply = replies[replies.count - back]
    let which = back == 1 ? "the last reply" : "reply -\(back)"
    guard let word = words.first else { return .success((reply.text, which)) }
    let blocks = CodeBlocks.extract(reply.text)
    guard words.count == 1, let n = Int(word), n >= 1 else { return .failure(CopyProblem(message: "usage: /copy [-R] [N] (N: a code block's number, shown where it ends)")) }
    guard n <= blocks.count else {
        return .failure(CopyProblem(message: blocks.isEmpty ? "\(which) has no code block" : "\(which) has \(blocks.count) code block\(blocks.count == 1 ? "" : "s")"))
    }
    return .success((blocks[n - 1], "code block \(n) of \(which)"))
}

private func scroll(_ state: inout ChatState, to offset: Int) {
    // Older entries are measured as the view reaches them.
    let needed = offset + state.paneHeight - state.layout.totalRows
    if needed > 0 { state.layout.measureMore(state.entries, rows: needed + ConversationLayout.rebuildRows / 4) }
    state.scrollFromBottom = max(0, min(offset, state.maxScroll))
    if state.scrollFromBottom == 0 { state.newTextBelow = false }
}

private func historyStep(_ state: inout ChatState, _ delta: Int) {
    guard !state.history.isEmpty else { return }
    if state.historyIndex == nil {
        guard delta < 0 else { return }
        state.draftBeforeHistory = state.input.text
        state.historyIndex = state.history.count
    }
    let next = (state.historyIndex ?? state.history.count) + delta
    if next >= state.history.count {
        state.historyIndex = nil
        state.input.set(state.draftBeforeHistory)
    } else if next >= 0 {
        state.historyIndex = next
        state.input.set(state.history[next])
    }
}

private func handleOverlayKey(_ state: inout ChatState, _ overlay: Overlay, _ key: Key) -> [Effect] {
    switch overlay {
    case .help:
        state.overlay = nil
        return []
    case let .modelPicker(selected):
        let count = state.modelChoices.count
        switch key {
        case .up, .control("p"): state.overlay = .modelPicker(selected: max(0, selected - 1))
        case .down, .control("n"): state.overlay = .modelPicker(selected: min(count - 1, selected + 1))
        case .pageUp: state.overlay = .modelPicker(selected: max(0, selected - 10))
        case .pageDown: state.overlay = .modelPicker(selected: min(count - 1, selected + 10))
        case .enter:
            state.overlay = nil
            if state.modelChoices.indices.contains(selected) { return [.switchModel(state.modelChoices[selected].name)] }
        case .escape, .control("c"), .character("q"): state.overlay = nil
        default: break
        }
        return []
    }
}

private func submit(_ state: inout ChatState) -> [Effect] {
    let text = state.input.text
    let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
    guard !trimmed.isEmpty else { return [] }
    state.historyIndex = nil
    if trimmed.hasPrefix("/") {
        state.input.set("")
        var effects: [Effect] = [.appendHistory(trimmed)]
        if state.history.last != trimmed { state.history.append(trimmed) }
        effects += runCommand(&state, trimmed)
        return effects
    }
    guard !state.busy else {
        state.notice = "a reply is still streaming; Esc stops it"
        return []
    }
    let settings = state.guardSettings
    if settings.injection != .off {
        let findings = InputGuard.scan(text, settings: settings)
        if !findings.isEmpty {
            switch settings.injection {
            case .off: break
            case .flag:
                let lines = findings.prefix(3).map { "guard: " + $0.line }.joined(separator: "\n")
                state.input.set("")
                if state.history.last != text { state.history.append(text) }
                let effects = [Effect.appendHistory(text)] + startTurn(&state, userText: text, guardAccepted: findings.map { "\($0.kind.rawValue): \($0.pattern)" })
                state.notice = lines.split(separator: "\n").first.map(String.init)
                return effects
            case .ask where state.isTooSmall:
                // The bar cannot be drawn, so nothing can be confirmed: held back, as with refuse.
                state.notice = "guard held it back: " + findings[0].line
                return []
            case .ask:
                state.pendingGuard = PendingGuard(text: text, findings: findings)
                return []
            case .refuse:
                state.notice = "guard refused to send it: " + findings[0].line + " (injection = \"refuse\" under [guard])"
                return []
            }
        }
    }
    state.input.set("")
    if state.history.last != text { state.history.append(text) }
    return [.appendHistory(text)] + startTurn(&state, userText: text)
}

/// `retriedBranch`: the branch mark of the reply /retry replaced (the new one is the last of them).
private func startTurn(_ state: inout ChatState, userText: String?, guardAccepted: [String]? = nil, retriedBranch: BranchMark? = nil) -> [Effect] {
    selectEntry(&state, nil)
    var editing: String?
    var userBranch: BranchMark?
    if userText != nil, let target = state.editing {
        state.editing = nil
        // The edited prompt and what followed it leave the screen (the file keeps them, on their branch).
        if let index = state.entries.lastIndex(where: { $0.messageID == target.messageID }) {
            let count = (state.entries[index].branch?.count ?? 1) + 1
            userBranch = BranchMark(index: count, count: count)
            editing = target.messageID
            // A summary of messages that leave with the edited prompt no longer stands for this branch.
            if let summary = state.summary, state.entries[index...].contains(where: { $0.messageID == summary.through }) { state.summary = nil }
            state.entries.removeSubrange(index..<state.entries.count)
            state.layout.rebuild(state.entries, width: state.width)
            state.scrollFromBottom = 0
        }
    }
    if let userText {
        var entry = ChatEntry(id: state.makeID(), kind: .user, time: state.now, text: userText)
        entry.branch = userBranch
        appendEntry(&state, entry)
    }
    let (messages, context) = state.sendContext()
    var reply = ChatEntry(id: state.makeID(), kind: .assistant, model: state.status.model, time: state.now, text: "", status: .streaming)
    if let retriedBranch { reply.branch = BranchMark(index: retriedBranch.count + 1, count: retriedBranch.count + 1) }
    appendEntry(&state, reply)
    state.busy = true
    state.scrollFromBottom = 0
    state.newTextBelow = false
    state.status.phase = .connecting
    state.status.timeToFirstTokenMs = nil
    state.status.tokensPerSecond = nil
    state.status.tokensIn = nil
    state.status.tokensOut = nil
    state.status.turnCached = false
    state.status.rateLimit = nil
    return [.send(messages: messages, system: state.systemPrompt, retry: userText == nil, guardAccepted: guardAccepted, editing: editing,
                  context: context)]
}

private func runCommand(_ state: inout ChatState, _ line: String) -> [Effect] {
    let parts = line.split(separator: " ", maxSplits: 1)
    let name = String(parts[0])
    let argument = parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : ""
    switch name {
    case "/quit", "/exit", "/q": return [.quit]
    case "/help": state.overlay = .help
    case "/model":
        if argument.isEmpty {
            let current = state.modelChoices.firstIndex { $0.name == state.status.model } ?? 0
            state.overlay = .modelPicker(selected: current)
        } else {
            return [.switchModel(argument)]
        }
    case "/models": return [.listModels]
    case "/sessions": return [.listSessions]
    case "/load":
        guard !state.busy else { state.notice = "a reply is still streaming; Esc stops it"; return [] }
        guard !argument.isEmpty else { return [.listSessions] }
        return [.loadSession(argument)]
    case "/rename":
        guard !argument.isEmpty else { state.notice = "usage: /rename TITLE"; return [] }
        return [.renameSession(argument)]
    case "/export": return [.exportSession(argument)]
    case "/context":
        guard !argument.isEmpty else { return [.reportContext] }
        guard let policy = ContextPolicy(rawValue: argument) else { state.notice = "usage: /context [trim|compact|refuse]"; return [] }
        state.contextPolicy = policy
        let text: String
        switch policy {
        case .trim: text = "a conversation too long for the model is sent without its oldest messages (this session; the file keeps them all)"
        case .compact: text = "a conversation too long for the model is sent with its oldest messages replaced by a summary ([context] summary_model writes it; the file keeps them all)"
        case .refuse: text = "a conversation too long for the model is not sent; /context trim leaves out its oldest messages, /context compact summarizes them"
        }
        appendEntry(&state, ChatEntry(id: state.makeID(), kind: .note, time: state.now, text: text))
    case "/compact":
        if argument == "show" {
            guard let summary = state.summary else { state.notice = "no summary yet: /compact writes one"; return [] }
            appendEntry(&state, ChatEntry(id: state.makeID(), kind: .note, time: state.now,
                                          text: "summary by \(summary.model) of the \(summary.covers) oldest messages, sent in their place:\n\n\(summary.text)"))
            return []
        }
        guard argument.isEmpty else { state.notice = "usage: /compact [show]"; return [] }
        guard !state.busy else { state.notice = "a reply is still streaming; Esc stops it"; return [] }
        let (messages, context) = state.sendContext()
        return [.compact(messages: messages, system: state.systemPrompt, context: context)]
    case "/tools": return [.listTools]
    case "/mcp": return [.mcpState]
    case "/pin", "/unpin":
        guard let index = state.selected ?? state.entries.indices.last(where: { state.entries[$0].kind == .user }) else {
            state.notice = "nothing to pin yet"
            return []
        }
        return pin(&state, index, name == "/pin")
    case "/edit-message":
        let back = argument.isEmpty ? 1 : Int(argument) ?? 0
        let prompts = state.entries.indices.filter { state.entries[$0].kind == .user }
        guard back >= 1 else { state.notice = "usage: /edit-message [N] (1 is your last message, 2 the one before)"; return [] }
        guard back <= prompts.count else {
            state.notice = prompts.isEmpty ? "no message of yours on the screen to edit" : "there are only \(prompts.count) of your messages on the screen"
            return []
        }
        return beginEdit(&state, prompts[prompts.count - back])
    case "/branch":
        guard argument == "prev" || argument == "next" else { state.notice = "usage: /branch prev|next"; return [] }
        guard let index = state.selected ?? state.entries.indices.last(where: { state.entries[$0].branch != nil }) else {
            state.notice = "no message here has another branch (/retry on a reply, or editing a prompt, makes one)"
            return []
        }
        return switchBranch(&state, index, delta: argument == "prev" ? -1 : 1)
    case "/copy":
        switch copyTarget(state, argument) {
        case let .success(target): return [.copy(text: target.text, what: target.what)]
        case let .failure(problem): state.notice = "/copy: \(problem.message)"
        }
    case "/system":
        state.systemPrompt = argument.isEmpty ? nil : argument
        state.notice = argument.isEmpty ? "system prompt cleared" : "system prompt set"
    case "/retry":
        guard !state.busy else { state.notice = "a reply is still streaming; Esc stops it"; return [] }
        guard let last = state.entries.lastIndex(where: isMessage), state.entries[...last].contains(where: { $0.kind == .user }) else {
            state.notice = "nothing to retry yet"
            return []
        }
        // The conversation ends at a prompt with no reply (a branch left there): it is answered now.
        guard state.entries[last].kind == .assistant else { return startTurn(&state, userText: nil) }
        let replaced = state.entries.remove(at: last)
        state.layout.rebuild(state.entries, width: state.width)
        return startTurn(&state, userText: nil, retriedBranch: replaced.branch ?? BranchMark(index: 1, count: 1))
    case "/new":
        guard !state.busy else { state.notice = "a reply is still streaming; Esc stops it"; return [] }
        state.selected = nil
        state.editing = nil
        state.entries = []
        state.carriedContext = []
        state.layout.removeAll()
        state.scrollFromBottom = 0
        state.status.sessionCost = state.status.turnCost == "?" ? "?" : "$0.00"
        state.notice = "new conversation"
        return [.newSession]
    case "/clear":
        guard !state.busy else { state.notice = "a reply is still streaming; Esc stops it"; return [] }
        state.carriedContext = state.contextMessages
        state.selected = nil
        state.editing = nil
        state.entries = []
        state.layout.removeAll()
        state.scrollFromBottom = 0
        state.notice = "screen cleared; the conversation is still sent as context (/new forgets it)"
    case "/theme":
        if argument.isEmpty {
            state.notice = "themes: " + state.themeNames.joined(separator: ", ")
        } else {
            return [.setTheme(argument)]
        }
    case "/edit": return [.openEditor(state.input.text)]
    case "/schema": return [.setSchema(argument)]
    case "/template":
        guard !state.busy else { state.notice = "a reply is still streaming; Esc stops it"; return [] }
        guard !argument.isEmpty else {
            state.notice = state.templateNames.isEmpty ? "no templates (see `parley templates list`)" : "templates: " + state.templateNames.joined(separator: ", ")
            return []
        }
        return [.applyTemplate(argument)]
    case "/cache":
        switch argument.lowercased() {
        case "on": return [.setCache(true)]
        case "off": return [.setCache(false)]
        case "": return [.setCache(nil)]
        default: state.notice = "/cache on or /cache off"
        }
    default:
        state.notice = "unknown command \(name); commands: " + Commands.all.map(\.name).joined(separator: " ")
    }
    return []
}

/// Tab: completes a command name, or the argument of /model and /theme; repeated Tab cycles.
private func complete(_ state: inout ChatState) {
    if var completion = state.completion, !completion.candidates.isEmpty {
        completion.index = (completion.index + 1) % completion.candidates.count
        state.input.set(completion.prefix + completion.candidates[completion.index])
        state.completion = completion
        return
    }
    let text = state.input.text
    guard text.hasPrefix("/") else { return }
    let prefix: String
    let word: String
    let pool: [String]
    if let space = text.firstIndex(of: " ") {
        let command = String(text[..<space])
        prefix = command + " "
        word = String(text[text.index(after: space)...])
        switch command {
        case "/model": pool = ["auto"] + state.modelChoices.map(\.name)
        case "/theme": pool = state.themeNames
        case "/load": pool = state.sessionChoices
        case "/template": pool = state.templateNames
        default: pool = []
        }
    } else {
        prefix = ""
        word = text
        pool = Commands.all.map(\.name)
    }
    let candidates = pool.filter { $0.hasPrefix(word) }
    guard !candidates.isEmpty else {
        state.notice = "no completion for \(word.isEmpty ? "an empty argument" : word)"
        return
    }
    if candidates.count == 1 {
        state.input.set(prefix + candidates[0] + (prefix.isEmpty && ["/model", "/theme", "/system", "/schema", "/template"].contains(candidates[0]) ? " " : ""))
        return
    }
    let common = candidates.dropFirst().reduce(candidates[0]) { common, next in String(common.commonPrefix(with: next)) }
    if common.count > word.count {
        state.input.set(prefix + common)
    } else {
        state.completion = ChatState.Completion(prefix: prefix, candidates: candidates, index: 0)
        state.input.set(prefix + candidates[0])
    }
    state.notice = candidates.prefix(8).joined(separator: "  ") + (candidates.count > 8 ? "  …" : "")
}
