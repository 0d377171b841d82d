import Foundation
import ParleyCore

/// Keeps one session on disk while a conversation goes on: the user's message is written before the
/// request is sent, a streaming reply at least once a second, and at its end, stop or error. Writes
/// run on a serial queue of their own, so saving never blocks typing or drawing.
public final class SessionRecorder: @unchecked Sendable {
    public let store: SessionStore
    private let lock = NSLock()
    private var session: Session
    private let writes = DispatchQueue(label: "parley.session-writes")
    private var lastSave = ContinuousClock.now - .seconds(10)
    /// Streamed text not yet in the journal.
    private var unjournaled = ""
    private let sessionID: String
    private var writeLock: SessionLock?
    /// Read-only when another process holds the session: nothing is written.
    public let readOnly: Bool
    /// The last write error (or why the session is read-only), for the screen to show once.
    private var lastError: String?

    public init(store: SessionStore, session: Session) {
        self.store = store
        self.session = session
        sessionID = session.id
        do {
            writeLock = try store.lock(session.id)
            readOnly = false
        } catch let error as SessionInUse {
            readOnly = true
            lastError = error.userMessage
        } catch {
            // Not writable at all (a bad directory): the writes will fail and say so after each turn.
            readOnly = false
            lastError = (error as? any UserFacingError)?.userMessage ?? "\(error)"
        }
    }

    public var snapshot: Session { lock.withLock { session } }

    /// The last write error, once: after it is shown it is cleared.
    public func takeError() -> String? {
        lock.withLock {
            defer { lastError = nil }
            return lastError
        }
    }

    /// Starts a turn: the user's message, or for a retry (`userText` nil) none, the new reply then
    /// answering the last user message beside the earlier one; and the reply that will stream. With
    /// `editing`, the user's message goes beside that earlier message of theirs, as a new branch (the old
    /// one stays in the file). On disk before this returns (call it off the UI thread). Returns the ids of
    /// the user's message (nil for a retry) and of the reply.
    @discardableResult
    public func startTurn(userText: String?, editing: String? = nil, continuing: Bool = false, model ref: ModelRef, system: String?,
                          routeRule: String? = nil, guardAccepted: [String]? = nil) -> (user: String?, reply: String) {
        let ids = lock.withLock {
            // A tool round's reply follows the tool results; a retry's answers the last prompt again.
            var parent = continuing ? session.tip : session.currentBranch.last(where: { $0.role == .user })?.id
            var user: String?
            if let userText {
                if session.title.isEmpty { session.title = Session.title(from: userText) }
                var follows = session.tip
                if let editing, let edited = session.messages.first(where: { $0.id == editing }) { follows = edited.parentID }
                var message = SessionMessage(parentID: follows, role: .user, content: userText)
                message.guardAccepted = guardAccepted
                session.messages.append(message)
                parent = message.id
                user = message.id
            }
            session.systemPrompt = system
            session.model = ref.description
            var reply = SessionMessage(parentID: parent, role: .assistant, content: "", provider: ref.provider, model: ref.model, status: .streaming)
            reply.routeRule = routeRule
            session.messages.append(reply)
            // The new reply is the last message: the current branch ends there.
            session.leaf = nil
            return (user, reply.id)
        }
        saveNow(wait: true)
        return ids
    }

    /// The current branch moves to a sibling of `id` (see `Session.switchBranch`); saved. nil when there
    /// is none that way.
    public func switchBranch(at id: String, by delta: Int) -> (session: Session, sibling: String)? {
        let moved: (Session, String)? = lock.withLock {
            guard let position = session.switchBranch(at: id, by: delta) else { return nil }
            return (session, position.sibling)
        }
        if moved != nil { saveNow(wait: false) }
        return moved
    }

    /// More text arrived. Text not yet on disk is appended to the journal once a second, so a flush
    /// costs the same in a 10-message and a 10,000-message session.
    public func appendText(_ text: String, to id: String) {
        let pending: String? = lock.withLock {
            guard let index = session.messages.lastIndex(where: { $0.id == id }) else { return nil }
            session.messages[index].content += text
            unjournaled += text
            guard ContinuousClock.now - lastSave >= .seconds(1) else { return nil }
            lastSave = .now
            defer { unjournaled = "" }
            return unjournaled
        }
        guard let pending, !readOnly else { return }
        writes.async { [store] in
            do { try store.appendJournal(SessionJournalEntry(message: id, append: pending), for: self.sessionID) } catch {
                self.lock.withLock { self.lastError = (error as? any UserFacingError)?.userMessage ?? "\(error)" }
            }
        }
    }

    /// `from` failed before any output and the turn went on to `to`: the reply records both.
    public func noteFallback(_ id: String, from: ModelRef, reason: String, to: ModelRef) {
        update(id) { message in
            message.failedAttempts = (message.failedAttempts ?? []) + [.init(model: from.description, error: reason)]
            message.provider = to.provider
            message.model = to.model
        }
        saveNow(wait: false)
    }

    /// The reply ended (complete, stopped or failed): the turn's fold of it is recorded and the file written.
    public func finishReply(_ id: String, status: SessionMessage.Status, result: TurnResult?, error: String? = nil) {
        update(id) { message in
            message.status = status
            message.completedAt = Date()
            message.error = error
            guard let result else { return }
            if result.fromCache { message.fromCache = true }
            message.cost = result.cost
            message.content = result.reply.text
            message.usage = result.reply.usage
            message.finishReason = result.reply.finishReason?.rawValue
            message.timeToFirstTokenMs = result.timeToFirstTokenMs
            message.durationMs = result.durationMs
            if !result.reply.toolCalls.calls.isEmpty { message.toolCalls = result.reply.toolCalls.calls }
        }
        saveNow(wait: false)
    }

    /// A reply still marked streaming was cut off by a crash or a kill: it is stopped now.
    public func settleInterrupted() {
        guard !readOnly else { return }
        let changed = lock.withLock {
            var changed = false
            for index in session.messages.indices where session.messages[index].status == .streaming {
                session.messages[index].status = .stopped
                changed = true
            }
            return changed
        }
        if changed { saveNow(wait: false) }
    }

    /// A new session with this one's messages, for writing when this one is read-only.
    public func copy() -> Session {
        var copy = snapshot
        copy.id = Session.newID()
        copy.title += " (copy)"
        return copy
    }

    /// A tool round's results, after the reply that asked for them; saved.
    public func appendToolResults(_ results: [ChatMessage]) {
        guard !results.isEmpty else { return }
        lock.withLock {
            for result in results where result.role == .tool {
                var message = SessionMessage(parentID: session.tip, role: .tool, content: result.content)
                message.toolCallID = result.toolCallID
                message.status = result.isError == true ? .error : .complete
                session.messages.append(message)
            }
            session.leaf = nil
            session.updatedAt = Date()
        }
        saveNow(wait: false)
    }

    /// `/pin`, `/unpin`: saved.
    public func setPinned(_ id: String, _ pinned: Bool) {
        update(id) { $0.pinned = pinned ? true : nil }
        saveNow(wait: false)
    }

    /// A compaction's summary, standing in for the current branch's messages up to `through`; saved
    /// (waits: it cost a request). Returns how many messages it covers.
    @discardableResult
    public func addSummary(through: String, _ summary: CompactionSummary) -> Int {
        let covers: Int = lock.withLock {
            let covers = (session.currentBranch.firstIndex(where: { $0.id == through }) ?? -1) + 1
            var message = SessionMessage(parentID: nil, role: .assistant, content: summary.text,
                                         provider: summary.model.provider, model: summary.model.model)
            message.usage = summary.usage
            message.cost = summary.cost
            message.completedAt = message.createdAt
            message.summaryThrough = through
            message.summaryCount = covers
            session.summaries = (session.summaries ?? []) + [message]
            session.updatedAt = Date()
            return covers
        }
        saveNow(wait: true)
        return covers
    }

    public func rename(_ title: String) {
        lock.withLock { session.title = title }
        saveNow(wait: false)
    }

    private func update(_ id: String, _ change: (inout SessionMessage) -> Void) {
        lock.withLock {
            guard let index = session.messages.lastIndex(where: { $0.id == id }) else { return }
            change(&session.messages[index])
            session.updatedAt = Date()
        }
    }

    /// Writes the whole file (and drops the journal it folds in) on the write queue; `wait` blocks
    /// until it is on disk. Done at message boundaries.
    public func saveNow(wait: Bool) {
        guard !readOnly else { return }
        let copy = lock.withLock {
            lastSave = .now
            unjournaled = ""
            session.updatedAt = Date()
            return session
        }
        let work: @Sendable () -> Void = { [store] in
            do { try store.save(copy) } catch {
                self.lock.withLock { self.lastError = (error as? any UserFacingError)?.userMessage ?? "\(error)" }
            }
        }
        if wait { writes.sync(execute: work) } else { writes.async(execute: work) }
    }

    public func waitForWrites() { writes.sync {} }

    /// Waits for pending writes, then lets go of the lock.
    public func close() {
        waitForWrites()
        writeLock?.release()
        writeLock = nil
    }
}
