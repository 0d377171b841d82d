import Foundation
import ParleyCore

/// Folds a stream of `ChatEvent`s into a reply and its figures: text, tool calls, usage, time to first
/// token and tokens per second. Shared by `ask` and the screen so both report the same numbers.
public struct ReplyAccumulator: Sendable, Equatable {
    public private(set) var text = ""
    public private(set) var thinking = ""
    public private(set) var toolCalls = ToolCallAssembler()
    public private(set) var usage: Usage?
    public private(set) var timings: ServerTimings?
    public private(set) var finishReason: FinishReason?
    public private(set) var deltaCount = 0

    public let startedAt: ContinuousClock.Instant
    public private(set) var firstTokenAt: ContinuousClock.Instant?
    public private(set) var lastEventAt: ContinuousClock.Instant?

    public init(startedAt: ContinuousClock.Instant = .now) {
        self.startedAt = startedAt
    }

    public mutating func add(_ event: ChatEvent, at instant: ContinuousClock.Instant = .now) {
        lastEventAt = instant
        switch event {
        case let .textDelta(delta):
            if firstTokenAt == nil { firstTokenAt = instant }
            text += delta
            deltaCount += 1
        case let .thinkingDelta(delta):
            if firstTokenAt == nil { firstTokenAt = instant }
            thinking += delta
        case let .toolCallDelta(delta):
            if firstTokenAt == nil { firstTokenAt = instant }
            toolCalls.add(delta)
        case let .usage(value): usage = value
        case let .timings(value): timings = value
        case let .finish(reason): finishReason = reason
        case .error, .retrying, .rateLimit: break
        }
    }

    public var timeToFirstToken: Duration? { firstTokenAt.map { $0 - startedAt } }

    public func totalDuration(until end: ContinuousClock.Instant = .now) -> Duration { end - startedAt }

    /// Output tokens: the provider's count, or an estimate (about four characters a token) when it sent none.
    public var completionTokens: Int {
        if let usage, usage.completionTokens > 0 { return usage.completionTokens }
        return (text.count + thinking.count + 3) / 4
    }

    /// Output tokens over the time from the first token to the last event.
    public func tokensPerSecond(until end: ContinuousClock.Instant = .now) -> Double? {
        guard let first = firstTokenAt else { return nil }
        let seconds = (end - first).seconds
        guard seconds > 0, completionTokens > 1 else { return nil }
        return Double(completionTokens - 1) / seconds
    }
}
