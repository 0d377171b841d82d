import Foundation
import ParleyCore

/// When to ask again, with the semantics of the official OpenAI and Anthropic SDKs: 408, 409, 429 and
/// every 5xx (Anthropic's 529 included), connection errors and timeouts before the first byte of a
/// reply; `x-should-retry` overrides; the delay comes from `retry-after-ms`, else `retry-after`, when it
/// is at most 60 s, else from an exponential backoff (0.5 s doubling, capped at 8 s, minus up to 25 %
/// jitter). Never 400, 401, 403, 404, 413 or 422. Only before any output: a reply that has started is
/// not retried silently.
public struct RetryPolicy: Sendable, Equatable {
    public var maxRetries: Int
    public var initialDelay: Double
    public var maxDelay: Double

    public init(maxRetries: Int = 2, initialDelay: Double = 0.5, maxDelay: Double = 8) {
        self.maxRetries = maxRetries
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
    }

    public static let standard = RetryPolicy()

    public static func isRetryable(_ error: ProviderError) -> Bool {
        if let header = error.shouldRetry { return header }
        switch error.kind {
        case .http:
            guard let status = error.status else { return false }
            return status == 408 || status == 409 || status == 429 || status >= 500
        case .connection, .connectTimeout, .firstTokenTimeout: return true
        case .inStream, .cutOff, .malformed, .idleTimeout, .totalTimeout, .missingKey, .cancelled: return false
        }
    }

    /// Seconds to wait before the next attempt, or nil when `error` is not worth another one.
    /// `random` is in 0..<1 (injected so tests can pin the jitter).
    public func delay(for error: ProviderError, retriesSoFar: Int, random: Double) -> Double? {
        guard retriesSoFar < maxRetries, Self.isRetryable(error) else { return nil }
        if let after = error.retryAfter, after >= 0, after <= 60 { return after }
        let backoff = min(initialDelay * pow(2, Double(retriesSoFar)), maxDelay)
        return backoff * (1 - 0.25 * random)
    }

    /// A few words for the status bar: why the attempt failed.
    public static func reason(_ error: ProviderError) -> String {
        switch (error.kind, error.status) {
        case (.http, 429?): return "rate limited"
        case (.http, 529?): return "overloaded"
        case let (.http, status?): return "HTTP \(status)"
        case (.connectTimeout, _), (.firstTokenTimeout, _): return "timed out"
        case (.connection, _): return "connection failed"
        default: return error.kind.rawValue
        }
    }

    /// The server's requested wait: `retry-after-ms`, else `retry-after` as seconds or an HTTP date.
    public static func retryAfter(_ headers: HeaderFields, now: Date = Date()) -> Double? {
        func header(_ name: String) -> String? { headers[name] }
        if let ms = header("retry-after-ms").flatMap(Double.init), ms.isFinite { return ms / 1000 }
        guard let value = header("retry-after") else { return nil }
        if let seconds = Double(value), seconds.isFinite { return seconds }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return formatter.date(from: value).map { $0.timeIntervalSince(now) }
    }

    /// `x-should-retry: true|false`, when the server says.
    public static func shouldRetryHeader(_ headers: HeaderFields) -> Bool? {
        switch headers["x-should-retry"]?.lowercased() {
        case "true": return true
        case "false": return false
        default: return nil
        }
    }
}
