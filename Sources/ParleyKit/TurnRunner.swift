import Foundation
import ParleyCore
import ParleyProviders

/// What a turn reports beyond the provider's own events.
public enum TurnEvent: Sendable, Equatable {
    case chat(ChatEvent)
    /// The request is about to go to this model (its endpoint is ready): time to first token counts from here.
    case sending(ModelRef)
    /// `from` failed before any output for a reason that is not the request's own; the same
    /// conversation goes to `to` now. `reason` is the line the user would have seen.
    case fallingBack(from: ModelRef, to: ModelRef, reason: String)
    /// The reply is replayed from the response cache: nothing is sent, nothing is billed.
    case cacheHit
    /// The turn's cost so far, live as usage arrives (nil: the model's price is unknown).
    case cost(Double?)
    /// The first token of the reply arrived, this long after the request was sent (from the turn's own
    /// clock, the same the ledger and the session keep).
    case firstToken(milliseconds: Double)
    /// A fallback model's window is smaller than the conversation: its `dropped` oldest messages are not
    /// sent to it (the session keeps them).
    case trimmed(ModelRef, dropped: Int)
    /// The turn's one fold of the reply, sent once as the last event, whether it completed, was stopped
    /// or failed (a failure is thrown right after it). Ledger, session, `ask` and the screen all read this.
    /// Indirect, so every other event stays small in the stream's buffer.
    indirect case finished(TurnResult)
}

/// What a turn produced: the reply of the model that answered (or last tried), folded once, with the
/// instant it ended, so every reader reports the same time to first token, duration and rate.
public struct TurnResult: Sendable, Equatable {
    public var model: ModelRef
    public var reply: ReplyAccumulator
    public var end: ContinuousClock.Instant
    /// Dollars, nil when the price is unknown.
    public var cost: Double?
    public var fromCache: Bool

    public init(model: ModelRef, reply: ReplyAccumulator, end: ContinuousClock.Instant, cost: Double?, fromCache: Bool) {
        self.model = model
        self.reply = reply
        self.end = end
        self.cost = cost
        self.fromCache = fromCache
    }

    public var timeToFirstTokenMs: Double? { reply.timeToFirstToken?.milliseconds }
    public var durationMs: Double { reply.totalDuration(until: end).milliseconds }
    /// Nil for a cached reply: it was not generated at any rate.
    public var tokensPerSecond: Double? { fromCache ? nil : reply.tokensPerSecond(until: end) }
}

/// Per-turn choices that are not in the request.
public struct TurnOptions: Sendable {
    /// The session the turn belongs to, for the ledger and the session budget.
    public var session: String?
    /// Use the response cache (nil: as the config says).
    public var cache: Bool?
    /// Refuse when this one request could cost more (ask `--budget`).
    public var requestLimit: Double?
    /// Try the configured fallback chain when the model fails.
    public var fallback = true
    /// The `[router]` rule that chose the model (`-m auto`), for the ledger.
    public var routeRule: String?
    /// Whom the ledger rows and a `scope = "user"` budget are for (the gateway's token name); nil: the engine's user.
    public var user: String?

    public init(session: String? = nil, cache: Bool? = nil, requestLimit: Double? = nil, fallback: Bool = true, user: String? = nil) {
        self.user = user
        self.session = session
        self.cache = cache
        self.requestLimit = requestLimit
        self.fallback = fallback
    }
}

extension ChatEngine {
    /// One turn: the response cache, the budget check, the request with its retries, and the fallback
    /// chain, each model tried recorded in the ledger. `ask` and the screen both go through here.
    public func turn(_ request: ChatRequest, model: ModelRef, options: TurnOptions = TurnOptions()) -> AsyncThrowingStream<TurnEvent, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task(executorPreference: StreamExecutor.shared) { await runTurn(request, model: model, options: options, continuation: continuation) }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    func runTurn(_ request: ChatRequest, model primary: ModelRef, options: TurnOptions,
                 continuation: AsyncThrowingStream<TurnEvent, any Error>.Continuation) async {
        let request = request.answeringEveryToolCall()
        let chain = [primary] + (options.fallback ? config.fallbackChain(after: primary) : [])
        // Each key is a hash of the whole conversation: made once per model, used to look up and to store.
        let cacheKeys = chain.map { cacheKey(for: request, ref: $0, options: options) }
        var options = options
        if options.user == nil { options.user = userName }
        // A stored answer from any model of the chain serves, before anything is sent.
        for (ref, key) in zip(chain, cacheKeys) {
            guard let key, let cache = openCache(), let hit = await cache.lookup(key, now: Date()) else { continue }
            let started = ContinuousClock.now
            var reply = ReplyAccumulator(startedAt: started)
            continuation.yield(.cacheHit)
            var events = Self.replayChunks(hit.text).map { ChatEvent.textDelta($0) }
            if let reason = hit.finishReason { events.append(.finish(FinishReason(rawValue: reason) ?? .other)) }
            for event in events {
                reply.add(event)
                continuation.yield(.chat(event))
            }
            continuation.yield(.cost(0))
            let end = ContinuousClock.now
            await record(Ledger.Entry(session: options.session, user: options.user, routeRule: options.routeRule, ref: ref, usage: nil, cost: 0, ttftMs: 0,
                                durationMs: (end - started).milliseconds, attempts: 0, cacheHit: true, outcome: .ok))
            continuation.yield(.finished(TurnResult(model: ref, reply: reply, end: end, cost: 0, fromCache: true)))
            continuation.finish()
            return
        }
        var lastFailure: (ref: ModelRef, reason: String)?
        /// The last model's reply, folded: what `.finished` carries however the turn ends.
        var result = TurnResult(model: primary, reply: ReplyAccumulator(), end: .now, cost: nil, fromCache: false)
        func finish(throwing error: (any Error)? = nil) {
            continuation.yield(.finished(result))
            if let error { continuation.finish(throwing: error) } else { continuation.finish() }
        }
        for (index, ref) in chain.enumerated() {
            if let lastFailure { continuation.yield(.fallingBack(from: lastFailure.ref, to: ref, reason: lastFailure.reason)) }
            var request = request
            request.model = ref.model
            let fallbackFrom = lastFailure?.ref.description
            if index > 0 {
                // The request was fitted to the first model; a fallback with a smaller window gets the
                // newest messages that fit it, or is passed over when even they do not.
                do {
                    let fitted = try fitInput(request, ref: ref, allowTruncate: true, keep: [])
                    request = fitted.request
                    if fitted.dropped > 0 { continuation.yield(.trimmed(ref, dropped: fitted.dropped)) }
                } catch {
                    result = TurnResult(model: ref, reply: ReplyAccumulator(), end: .now, cost: 0, fromCache: false)
                    if index == chain.count - 1 { finish(throwing: error); return }
                    lastFailure = (ref, error.userMessage)
                    continue
                }
            }
            let pricing = config.pricing(for: ref)
            let isLast = index == chain.count - 1

            let cacheKey = cacheKeys[index]
            /// The budget claim this model's request holds until its row is written.
            let claim: String?
            do {
                claim = try await checkBudget(request, ref: ref, pricing: pricing, options: options)
            } catch {
                await record(Ledger.Entry(session: options.session, user: options.user, routeRule: options.routeRule, ref: ref, usage: nil, cost: 0, ttftMs: nil, durationMs: 0, attempts: 0,
                                    fallbackFrom: fallbackFrom, outcome: .refused, error: "budget"))
                result = TurnResult(model: ref, reply: ReplyAccumulator(), end: .now, cost: 0, fromCache: false)
                if isLast { finish(throwing: error); return }
                lastFailure = (ref, (error as? any UserFacingError)?.userMessage ?? "\(error)")
                continue
            }

            var reply = ReplyAccumulator()
            var attempts = 1
            /// The ledger row for how this model's attempt ended; the turn's result is taken at the same instant.
            func entry(_ outcome: Ledger.Entry.Outcome, error: String? = nil) -> Ledger.Entry {
                let (cost, estimated) = Self.cost(of: reply, request: request, pricing: pricing)
                let end = ContinuousClock.now
                result = TurnResult(model: ref, reply: reply, end: end, cost: cost, fromCache: false)
                return Ledger.Entry(session: options.session, user: options.user, routeRule: options.routeRule, ref: ref, usage: reply.usage, cost: cost, costEstimated: estimated,
                                    ttftMs: reply.timeToFirstToken?.milliseconds, durationMs: reply.totalDuration(until: end).milliseconds,
                                    tokensPerSecond: reply.tokensPerSecond(until: end), attempts: attempts,
                                    fallbackFrom: fallbackFrom, outcome: outcome, error: error)
            }
            do {
                let (_, endpoint) = try await prepare(ref)
                reply = ReplyAccumulator()
                continuation.yield(.sending(ref))
                for try await event in stream(request, endpoint: endpoint) {
                    let hadFirst = reply.firstTokenAt != nil
                    reply.add(event)
                    continuation.yield(.chat(event))
                    if !hadFirst, let ttft = reply.timeToFirstToken { continuation.yield(.firstToken(milliseconds: ttft.milliseconds)) }
                    switch event {
                    case .retrying: attempts += 1
                    case let .usage(usage): continuation.yield(.cost(pricing?.cost(of: usage)))
                    default: break
                    }
                }
                if Task.isCancelled {
                    await record(entry(.stopped), releasing: claim)
                    finish()
                    return
                }
                let final = entry(.ok)
                continuation.yield(.cost(final.cost))
                await record(final, releasing: claim)
                if let cacheKey, !reply.text.isEmpty, let cache = openCache() {
                    await cache.store(cacheKey, ref: ref, reply: .init(text: reply.text, finishReason: reply.finishReason?.rawValue, usage: reply.usage, created: Date()))
                }
                finish()
                return
            } catch {
                let cancelled = Task.isCancelled || (error as? ProviderError)?.kind == .cancelled || error is CancellationError
                let final = entry(cancelled ? .stopped : .error, error: cancelled ? nil : Self.errorLabel(error))
                continuation.yield(.cost(final.cost))
                await record(final, releasing: claim)
                if cancelled { finish(); return }
                let produced = reply.firstTokenAt != nil
                if produced || isLast || !Self.isFallbackWorthy(error) {
                    finish(throwing: explainOverflow(error, request: request, pricing: pricing))
                    return
                }
                lastFailure = (ref, (error as? any UserFacingError)?.userMessage ?? "\(error)")
            }
        }
    }

    /// A context overflow says how big the conversation is and how big the window, and what to do.
    func explainOverflow(_ error: any Error, request: ChatRequest, pricing: ModelPricing?) -> any Error {
        guard var error = error as? ProviderError, error.isContextOverflow else { return error }
        let window = pricing?.contextWindow.map { " and the model's window is \($0) tokens" } ?? ""
        error.hint = "this conversation is about \(TokenEstimator.estimate(request)) tokens (estimated)\(window); "
            + "/new starts a fresh one, /clear hides old messages but still sends them, or /model picks one with a larger window"
        return error
    }

    /// Fallback is for failures that are not the request's own: rate limits, overload, server errors,
    /// the network, timeouts, a missing or refused key, an unknown model, a budget. Never for a
    /// request the provider rejected as such (400, 413, 422), which another model would reject too.
    public static func isFallbackWorthy(_ error: any Error) -> Bool {
        if error is CancellationError { return false }
        guard let error = error as? ProviderError else { return true }
        switch error.kind {
        case .cancelled: return false
        case .http: return ![400, 413, 422].contains(error.status ?? 0)
        default: return true
        }
    }

    static func errorLabel(_ error: any Error) -> String {
        guard let error = error as? ProviderError else { return String(describing: type(of: error)) }
        return error.status.map { "\(error.kind.rawValue) \($0)" } ?? error.kind.rawValue
    }

    /// The reply's cost from the usage the provider reported; when it reported none (a stopped reply),
    /// from the estimated prompt and the text that arrived, flagged as estimated.
    static func cost(of reply: ReplyAccumulator, request: ChatRequest, pricing: ModelPricing?) -> (Double?, Bool) {
        // A request that failed before any output is not billed, whatever the model's price.
        if reply.usage == nil, reply.firstTokenAt == nil { return (0, false) }
        guard let pricing else { return (nil, false) }
        if let usage = reply.usage { return (pricing.cost(of: usage), false) }
        if pricing.input == 0 && pricing.output == 0 { return (0, false) }
        let usage = Usage(promptTokens: TokenEstimator.estimate(request), completionTokens: reply.completionTokens)
        return (pricing.cost(of: usage), true)
    }

    /// The cache key for `request` sent to `ref` (the key names the model itself), or nil when the
    /// cache is off or the request is not cacheable.
    func cacheKey(for request: ChatRequest, ref: ModelRef, options: TurnOptions) -> String? {
        guard options.cache ?? config.cache.enabled, ResponseCache.isCacheable(request, settings: config.cache) else { return nil }
        let endpoint = config.endpoint(for: ref, environment: environment)
        let origin: String
        if ref.provider == "local" {
            // The local server's port changes from run to run; the model file it serves is what answers.
            origin = "local model " + (config.local.modelPath ?? localRuntime.installation()?.model ?? "unknown")
        } else {
            origin = endpoint.baseURL
        }
        return ResponseCache.key(for: request, ref: ref, origin: origin, maxTokens: request.maxTokens ?? endpoint.defaultMaxTokens)
    }

    /// A cached reply comes back as a stream of small pieces, so the screen and `ask` treat it like any other.
    static func replayChunks(_ text: String) -> [String] {
        var chunks: [String] = []
        var current = ""
        for character in text {
            current.append(character)
            if current.utf8.count >= 64 { chunks.append(current); current = "" }
        }
        if !current.isEmpty { chunks.append(current) }
        return chunks
    }

    /// The cache, or nil with the reason noted for the user once (a broken cache never stops a reply).
    func openCache() -> (any ReplyCache)? {
        do { return try stores.cache() } catch {
            stores.noteProblem(error.userMessage)
            return nil
        }
    }

    func record(_ entry: Ledger.Entry, releasing claim: String? = nil) async {
        do { try await stores.ledger().record(entry, releasing: claim) } catch { stores.noteProblem(error.userMessage) }
    }
}
