import Foundation
import ParleyCore
import ParleyProviders

/// A turn written to its session as it happens: the prompt and the opened reply before anything is
/// sent, text as it streams, a fallback as it happens, and the end (complete, stopped or failed, with
/// the partial text and the cost). The screen runs its turns through this; tests run faults through it.
public enum RecordedTurn {
    public enum Outcome: Sendable, Equatable {
        case complete
        case stopped
        /// The line the user sees (and the session file keeps).
        case failed(String)
    }

    /// `userText` nil sends the last user message again (/retry); `editing` sends it beside that earlier
    /// prompt, as a new branch. `onEvent` sees every event of the turn; `onRecorded` the ids of the prompt
    /// and the reply once they are on disk. `sessionSystem`: the system prompt the session keeps, when
    /// what is sent has more in it (a compaction's summary). `continuing`: a tool round's reply, after
    /// the tool results.
    /// With `retryHint`, an error line says how to ask again. The session gets the turn's own fold of
    /// the reply (`.finished`), so its figures are the ledger's.
    public static func run(
        engine: ChatEngine, recorder: SessionRecorder, userText: String?, request: ChatRequest, model ref: ModelRef,
        options: TurnOptions = TurnOptions(), retryHint: Bool = true, guardAccepted: [String]? = nil, editing: String? = nil,
        sessionSystem: String?? = nil, continuing: Bool = false,
        onEvent: (TurnEvent) -> Void = { _ in },
        onRecorded: (_ user: String?, _ reply: String) -> Void = { _, _ in }
    ) async -> Outcome {
        var result: TurnResult?
        let ids = recorder.startTurn(userText: userText, editing: editing, continuing: continuing, model: ref, system: sessionSystem ?? request.system, routeRule: options.routeRule,
                                     guardAccepted: guardAccepted)
        let replyID = ids.reply
        onRecorded(ids.user, ids.reply)
        var options = options
        options.session = options.session ?? recorder.snapshot.id
        do {
            for try await event in engine.turn(request, model: ref, options: options) {
                switch event {
                case let .chat(.textDelta(text)): recorder.appendText(text, to: replyID)
                case let .fallingBack(from, to, reason): recorder.noteFallback(replyID, from: from, reason: reason, to: to)
                case let .finished(turn): result = turn
                case .chat, .sending, .cacheHit, .cost, .firstToken, .trimmed: break
                }
                onEvent(event)
            }
            if Task.isCancelled {
                recorder.finishReply(replyID, status: .stopped, result: result)
                return .stopped
            }
            recorder.finishReply(replyID, status: .complete, result: result)
            return .complete
        } catch {
            if Task.isCancelled {
                recorder.finishReply(replyID, status: .stopped, result: result)
                return .stopped
            }
            var line = describe(error)
            // On the screen the line says what became of the text that arrived, and how to ask again where
            // that can help: not for a refusal, a missing or refused key, or a request rejected as such.
            // Decided from the error's kind and the reply, never from the wording of the line.
            if retryHint, Self.askingAgainCanHelp(error) {
                line += (result?.reply.text.isEmpty ?? true) ? " — /retry asks again" : " — the partial reply is kept; /retry asks again"
            }
            recorder.finishReply(replyID, status: .error, result: result, error: line)
            return .failed(line)
        }
    }

    static func askingAgainCanHelp(_ error: any Error) -> Bool {
        guard let error = error as? ProviderError else { return false }
        switch error.kind {
        case .cutOff, .malformed, .inStream, .idleTimeout, .totalTimeout: return true
        case .missingKey, .cancelled: return false
        default: return RetryPolicy.isRetryable(error)
        }
    }
}
