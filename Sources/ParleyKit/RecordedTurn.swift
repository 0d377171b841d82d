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

    /// `userText` nil sends the last user message again (/retry). `onEvent` sees every event with the
    /// reply as it stands after it. With `retryHint`, an error after output says how to ask again.
    public static func run(
        engine: ChatEngine, recorder: SessionRecorder, userText: String?, request: ChatRequest, model ref: ModelRef,
        options: TurnOptions = TurnOptions(), retryHint: Bool = true,
        onEvent: (TurnEvent, ReplyAccumulator) -> Void = { _, _ in }
    ) async -> Outcome {
        var reply = ReplyAccumulator()
        var turnCost: Double?
        var fromCache = false
        let replyID = recorder.startTurn(userText: userText, model: ref, system: request.system)
        var options = options
        options.session = options.session ?? recorder.snapshot.id
        do {
            for try await event in engine.turn(request, model: ref, options: options) {
                switch event {
                case let .chat(chat):
                    reply.add(chat)
                    if case let .textDelta(text) = chat { recorder.appendText(text, to: replyID) }
                case let .fallingBack(from, to, reason):
                    recorder.noteFallback(replyID, from: from, reason: reason, to: to)
                case .sending: reply = ReplyAccumulator()  // each model's reply is timed from its own request
                case .cacheHit: fromCache = true
                case let .cost(cost): turnCost = cost
                }
                onEvent(event, reply)
            }
            if Task.isCancelled {
                recorder.finishReply(replyID, status: .stopped, reply: reply, cost: turnCost)
                return .stopped
            }
            recorder.finishReply(replyID, status: .complete, reply: reply, cost: turnCost, fromCache: fromCache)
            return .complete
        } catch {
            if Task.isCancelled {
                recorder.finishReply(replyID, status: .stopped, reply: reply, cost: turnCost)
                return .stopped
            }
            var line = describe(error)
            // On the screen the line says what became of the text that arrived, and how to ask again where
            // that can help: not for a refusal, a missing or refused key, or a request rejected as such.
            // Decided from the error's kind and the reply, never from the wording of the line.
            if retryHint, Self.askingAgainCanHelp(error) {
                line += reply.text.isEmpty ? " — /retry asks again" : " — the partial reply is kept; /retry asks again"
            }
            recorder.finishReply(replyID, status: .error, reply: reply, error: line, cost: turnCost)
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
