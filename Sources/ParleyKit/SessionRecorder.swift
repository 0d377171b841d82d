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
    private var writeLock: SessionLock?
    /// Read-only when another process holds the session: nothing is written.
    public let readOnly: Bool
    /// The last write error, for the screen to show once.
    public private(set) var lastError: String?

    public init(store: SessionStore, session: Session) {
        self.store = store
        self.session = session
        do {
            writeLock = try store.lock(session.id)
            readOnly = false
        } catch {
            readOnly = true
            lastError = (error as? any UserFacingError)?.userMessage ?? "\(error)"
        }
    }

    public var snapshot: Session { lock.withLock { session } }

    /// The id of the last message on the current branch.
    private var tip: String? { session.messages.last?.id }

    /// Adds the user's message and waits until it is on disk (call it off the UI thread).
    public func recordUserMessage(_ text: String, model: String, system: String?) -> String {
        let id = lock.withLock {
            if session.title.isEmpty { session.title = Session.title(from: text) }
            session.systemPrompt = system
            session.model = model
            let message = SessionMessage(parentID: tip, role: .user, content: text)
            session.messages.append(message)
            return message.id
        }
        saveNow(wait: true)
        return id
    }

    /// Opens the assistant's reply to `parentID` as streaming.
    public func beginReply(to parentID: String?, model ref: ModelRef) -> String {
        let id = lock.withLock {
            let parent = parentID ?? tip
            let message = SessionMessage(parentID: parent, role: .assistant, content: "", provider: ref.provider, model: ref.model, status: .streaming)
            session.messages.append(message)
            return message.id
        }
        return id
    }

    /// More text arrived; written if the last write is a second old.
    public func appendText(_ text: String, to id: String) {
        update(id) { $0.content += text }
        let due = lock.withLock { ContinuousClock.now - lastSave >= .seconds(1) }
        if due { saveNow(wait: false) }
    }

    /// The reply ended (complete, stopped or failed): its figures are recorded and the file written.
    public func finishReply(_ id: String, status: SessionMessage.Status, reply: ReplyAccumulator?, error: String? = nil, cost: Double? = nil) {
        update(id) { message in
            message.status = status
            message.completedAt = Date()
            message.error = error
            message.cost = cost
            if let reply {
                message.content = reply.text
                message.usage = reply.usage
                message.finishReason = reply.finishReason?.rawValue
                message.timeToFirstTokenMs = reply.timeToFirstToken?.milliseconds
                message.durationMs = (ContinuousClock.now - reply.startedAt).milliseconds
                if !reply.toolCalls.calls.isEmpty { message.toolCalls = reply.toolCalls.calls }
            }
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

    public func setSystemPrompt(_ text: String?) { lock.withLock { session.systemPrompt = text } }
    public func setModel(_ name: String) { lock.withLock { session.model = name } }

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

    /// Writes a snapshot on the write queue; `wait` blocks until it is on disk.
    public func saveNow(wait: Bool) {
        guard !readOnly else { return }
        let copy = lock.withLock {
            lastSave = .now
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

    /// Waits for pending writes, then lets go of the lock.
    public func close() {
        writes.sync {}
        writeLock?.release()
        writeLock = nil
    }
}
