import Foundation
import ParleyCore

/// Streams a chat reply from any provider as `ChatEvent`s, whatever its wire format.
public protocol ChatProvider: Sendable {
    func stream(_ request: ChatRequest, endpoint: ProviderEndpoint) -> AsyncThrowingStream<ChatEvent, any Error>
}

/// The live provider: builds the request for the endpoint's format, sends it, decodes the body.
public struct ChatClient: ChatProvider {
    public let transport: any HTTPTransport
    /// Waits between attempts (injected by tests).
    let sleep: @Sendable (Double) async throws -> Void
    /// Jitter source in 0..<1 (injected by tests).
    let random: @Sendable () -> Double

    public init(
        transport: any HTTPTransport = AsyncHTTPTransport.shared,
        sleep: @escaping @Sendable (Double) async throws -> Void = { try await Task.sleep(for: .seconds($0)) },
        random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }
    ) {
        self.transport = transport
        self.sleep = sleep
        self.random = random
    }

    /// Events arrive as the network delivers them; adjacent text deltas from one network read are joined,
    /// so a fast stream costs one hop per read rather than per token. Cancelling the consumer cancels the
    /// request and closes the connection.
    public func stream(_ request: ChatRequest, endpoint: ProviderEndpoint) -> AsyncThrowingStream<ChatEvent, any Error> {
        let transport = self.transport, sleep = self.sleep, random = self.random
        return AsyncThrowingStream { continuation in
            let task = Task(executorPreference: StreamExecutor.shared) {
                var retries = 0
                while true {
                    let progress = AttemptProgress()
                    do {
                        try await Self.attempt(request, endpoint: endpoint, transport: transport, continuation: continuation, progress: progress)
                        continuation.finish()
                        return
                    } catch {
                        let failure = Self.classify(error, endpoint: endpoint)
                        // Only before any output: a reply that has begun ends as an error, its text kept.
                        if !progress.started, !Task.isCancelled,
                           let delay = endpoint.retryPolicy.delay(for: failure, retriesSoFar: retries, random: random()) {
                            retries += 1
                            continuation.yield(.retrying(attempt: retries, of: endpoint.retryPolicy.maxRetries,
                                                         delaySeconds: delay, reason: RetryPolicy.reason(failure)))
                            do { try await sleep(delay) } catch {
                                continuation.finish(throwing: Self.classify(error, endpoint: endpoint))
                                return
                            }
                            continue
                        }
                        continuation.finish(throwing: failure)
                        return
                    }
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// One attempt, raced against a watchdog that enforces the first-token, idle and total limits; when
    /// the watchdog wins, the request task is cancelled, which closes the connection.
    static func attempt(
        _ request: ChatRequest, endpoint: ProviderEndpoint, transport: any HTTPTransport,
        continuation: AsyncThrowingStream<ChatEvent, any Error>.Continuation, progress: AttemptProgress
    ) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await run(request, endpoint: endpoint, transport: transport, continuation: continuation, progress: progress) }
            group.addTask { try await watch(progress, endpoint: endpoint) }
            try await group.next()
            group.cancelAll()
        }
    }

    static func watch(_ progress: AttemptProgress, endpoint: ProviderEndpoint) async throws {
        let timeouts = endpoint.timeouts
        while true {
            let (started, lastChunk) = progress.state
            // Time the process spent stopped (Ctrl-Z) is not the server's silence: count from the resume.
            let resumed = SuspendTracker.lastResume
            let idleFrom = resumed.map { max($0, lastChunk) } ?? lastChunk
            let waitFrom = resumed.map { max($0, progress.start) } ?? progress.start
            var deadline = started ? idleFrom + timeouts.idle : waitFrom + timeouts.firstToken
            if let total = timeouts.total { deadline = min(deadline, progress.start + total) }
            if ContinuousClock.now >= deadline {
                if let total = timeouts.total, ContinuousClock.now >= progress.start + total {
                    throw ProviderError(kind: .totalTimeout, provider: endpoint.name, message: "the reply took longer than \(format(total))",
                                        hint: "raise total_timeout for \(endpoint.name) if such replies are expected")
                }
                if started {
                    throw ProviderError(kind: .idleTimeout, provider: endpoint.name,
                                        message: "the reply stalled: nothing arrived for \(format(timeouts.idle))")
                }
                throw ProviderError(kind: .firstTokenTimeout, provider: endpoint.name,
                                    message: "no reply began within \(format(timeouts.firstToken))",
                                    hint: "the server may be overloaded; try again, or raise first_token_timeout for this provider or model")
            }
            // Before the first token, the reply may start at any moment, and from then the idle limit
            // counts: wake by then to look again. No timers tick in between.
            let wake = started ? deadline : min(deadline, ContinuousClock.now + timeouts.idle)
            try await Task.sleep(until: wake, clock: .continuous)
        }
    }

    static func run(
        _ request: ChatRequest, endpoint: ProviderEndpoint, transport: any HTTPTransport,
        continuation: AsyncThrowingStream<ChatEvent, any Error>.Continuation, progress: AttemptProgress
    ) async throws {
        try endpoint.requireKey()
        let spec = try endpoint.makeRequest(request)
        let response = try await transport.send(spec, timeouts: endpoint.timeouts)
        progress.chunkArrived()
        if let limits = RateLimitHeaders.parse(response.headers) { continuation.yield(.rateLimit(limits)) }
        guard (200..<300).contains(response.status) else {
            let maxErrorBody = endpoint.limits.maxErrorBytes
            var body: [UInt8] = []
            for try await chunk in response.body {
                body += chunk.prefix(maxErrorBody - body.count)
                if body.count >= maxErrorBody { break }
            }
            var error = endpoint.httpError(status: response.status, body: body)
            if (300..<400).contains(response.status) {
                // Redirects are not followed (the transport is set so): a redirect to another origin would
                // take the key and the configured headers with it. Say where it pointed.
                let location = response.headers["location"].map { " to " + TerminalSanitizer.line(String($0.prefix(300)), limit: 200) } ?? ""
                error.message = "answered with a redirect\(location)"
            }
            error.retryAfter = RetryPolicy.retryAfter(response.headers)
            error.shouldRetry = RetryPolicy.shouldRetryHeader(response.headers)
            throw error
        }
        var decoder = endpoint.makeDecoder()
        var batch: [ChatEvent] = []
        var bodyBytes = 0
        for try await chunk in response.body {
            try Task.checkCancellation()
            progress.chunkArrived()
            bodyBytes += chunk.count
            if bodyBytes > endpoint.limits.maxReplyBytes {
                throw StreamLimitExceeded(what: .reply, limit: endpoint.limits.maxReplyBytes).providerError(provider: endpoint.name)
            }
            var pendingText = ""
            // A bad event ends the reply, but what came before it in the same read is passed on first.
            var failure: (any Error)?
            do {
                try chunk.withUnsafeBytes { raw in
                    try decoder.feed(raw) { event in
                        if case let .textDelta(text) = event {
                            pendingText += text
                        } else {
                            if !pendingText.isEmpty { batch.append(.textDelta(pendingText)); pendingText = "" }
                            batch.append(event)
                        }
                    }
                }
            } catch {
                failure = error
            }
            if !pendingText.isEmpty { batch.append(.textDelta(pendingText)) }
            if let failure { batch.append(.error(ChatClient.classify(failure, endpoint: endpoint))) }
            for event in batch {
                if case let .error(error) = event { throw error }
                continuation.yield(event)
                switch event {
                case .textDelta, .thinkingDelta, .toolCallDelta: progress.markStarted()
                default: break
                }
            }
            batch.removeAll(keepingCapacity: true)
            if decoder.sawTerminator { break }
        }
        var trailing: [ChatEvent] = []
        try decoder.finish { trailing.append($0) }
        for event in trailing {
            if case let .error(error) = event { throw error }
            continuation.yield(event)
        }
    }

    /// Maps transport and runtime errors onto `ProviderError`, naming the provider and the fix.
    public static func classify(_ error: any Error, endpoint: ProviderEndpoint) -> ProviderError {
        if let error = error as? ProviderError { return error }
        if error is CancellationError {
            return ProviderError(kind: .cancelled, provider: endpoint.name, message: "stopped")
        }
        let transport = error as? TransportError ?? .other(String(describing: error))
        switch transport {
        case .connectTimeout:
            return ProviderError(kind: .connectTimeout, provider: endpoint.name,
                                 message: "could not connect to \(endpoint.baseURL) within \(format(endpoint.timeouts.connect))",
                                 hint: "check the network or the base URL")
        case .readTimeout:
            return ProviderError(kind: .idleTimeout, provider: endpoint.name,
                                 message: "the reply stalled: nothing arrived for \(format(endpoint.timeouts.idle))")
        case .deadlineExceeded:
            return ProviderError(kind: .firstTokenTimeout, provider: endpoint.name,
                                 message: "no response within \(format(endpoint.timeouts.firstToken))",
                                 hint: "the server may be overloaded; try again, or raise first_token_timeout for this provider or model")
        case .cancelled:
            return ProviderError(kind: .cancelled, provider: endpoint.name, message: "stopped")
        case .closedEarly:
            return ProviderError(kind: .connection, provider: endpoint.name,
                                 message: "the server closed the connection before the reply was complete",
                                 hint: "try again")
        case .connectionRefused:
            return ProviderError(kind: .connection, provider: endpoint.name,
                                 message: "nothing is listening at \(endpoint.baseURL)",
                                 hint: "start the server, or pick another model with --model or /model")
        case .cannotConnect:
            return ProviderError(kind: .connection, provider: endpoint.name,
                                 message: "could not connect to \(endpoint.baseURL)",
                                 hint: "check the network, the base URL, or pick another model")
        case let .other(description):
            return ProviderError(kind: .connection, provider: endpoint.name,
                                 message: "the connection to \(endpoint.baseURL) failed (\(TerminalSanitizer.line(description, limit: 200)))", hint: "try again")
        }
    }

    static func format(_ duration: Duration) -> String {
        let seconds = duration.seconds
        return seconds == seconds.rounded() ? "\(Int(seconds)) s" : String(format: "%.1f s", seconds)
    }
}

/// When the process was last continued after a stop (Ctrl-Z, SIGSTOP), so timeouts do not count the
/// time it could not read. Set by the screen; read by every request's watchdog.
public enum SuspendTracker {
    private static let box = LockedBox<ContinuousClock.Instant?>(nil)

    public static func noteResumed() { box.withLock { $0 = .now } }
    public static var lastResume: ContinuousClock.Instant? { box.withLock { $0 } }
}

/// What one attempt has received so far, shared between the request task and its watchdog.
final class AttemptProgress: @unchecked Sendable {
    let start = ContinuousClock.now
    private var startedFlag = false
    private var lastChunk = ContinuousClock.now
    private let lock = NSLock()

    /// Whether reply content (text, thinking, a tool call) has been passed on: from then on the attempt
    /// is not retried and cannot fall back.
    var started: Bool { lock.withLock { startedFlag } }
    var state: (started: Bool, lastChunk: ContinuousClock.Instant) { lock.withLock { (startedFlag, lastChunk) } }
    func chunkArrived() { lock.withLock { lastChunk = .now } }
    func markStarted() { lock.withLock { startedFlag = true } }
}
