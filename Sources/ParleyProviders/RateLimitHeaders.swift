import Foundation
import ParleyCore

/// Reads rate-limit headers: OpenAI and Groq send `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`
/// with resets as Go durations (`6m0s`, `1.5s`, `20ms`); Anthropic sends
/// `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}` with resets as RFC 3339 times.
public enum RateLimitHeaders {
    public static func parse(_ headers: HeaderFields, now: Date = Date()) -> RateLimitStatus? {
        // Counts are whole numbers from 0; anything else from the network is ignored, never trusted.
        func int(_ name: String) -> Int? { headers[name].flatMap { Int($0) }.flatMap { $0 >= 0 ? $0 : nil } }
        func present(_ prefix: String) -> Bool { headers.contains { $0.name.lowercased().hasPrefix(prefix) } }
        var status = RateLimitStatus()
        if present("x-ratelimit-") {
            status.requestsLimit = int("x-ratelimit-limit-requests")
            status.requestsRemaining = int("x-ratelimit-remaining-requests")
            status.requestsReset = headers["x-ratelimit-reset-requests"].flatMap(goDuration)
            status.tokensLimit = int("x-ratelimit-limit-tokens")
            status.tokensRemaining = int("x-ratelimit-remaining-tokens")
            status.tokensReset = headers["x-ratelimit-reset-tokens"].flatMap(goDuration)
        } else if present("anthropic-ratelimit-") {
            func reset(_ name: String) -> Double? {
                headers[name].flatMap(RFC3339.parse).map { max(0, $0.timeIntervalSince(now)) }.flatMap { $0 <= maxReset ? $0 : nil }
            }
            status.requestsLimit = int("anthropic-ratelimit-requests-limit")
            status.requestsRemaining = int("anthropic-ratelimit-requests-remaining")
            status.requestsReset = reset("anthropic-ratelimit-requests-reset")
            // Newer accounts report input and output tokens apart; the tighter one is what binds.
            for kind in ["tokens", "input-tokens", "output-tokens"] {
                guard let remaining = int("anthropic-ratelimit-\(kind)-remaining") else { continue }
                if let current = status.tokensRemaining, current <= remaining { continue }
                status.tokensRemaining = remaining
                status.tokensLimit = int("anthropic-ratelimit-\(kind)-limit")
                status.tokensReset = reset("anthropic-ratelimit-\(kind)-reset")
            }
        } else {
            return nil
        }
        return status.isEmpty ? nil : status
    }

    /// The longest reset taken at its word: a year. A longer one (or a malformed one) is ignored.
    static let maxReset: Double = 366 * 86_400

    /// Go's `time.Duration` text: `1h2m3.5s`, `6m0s`, `20ms`, `1.5s`, `300us`. Nil when malformed,
    /// negative or longer than `maxReset`.
    public static func goDuration(_ text: String) -> Double? {
        guard text.utf8.count <= 64 else { return nil }
        var rest = Substring(text)
        var total = 0.0
        var sawAny = false
        let units: [(String, Double)] = [("ms", 0.001), ("us", 0.000_001), ("µs", 0.000_001), ("ns", 0.000_000_001), ("h", 3600), ("m", 60), ("s", 1)]
        while !rest.isEmpty {
            let number = rest.prefix { $0.isNumber || $0 == "." }
            guard !number.isEmpty, let value = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            guard let (unit, scale) = units.first(where: { rest.hasPrefix($0.0) }) else { return nil }
            rest = rest.dropFirst(unit.count)
            total += value * scale
            sawAny = true
        }
        return sawAny && total.isFinite && total >= 0 && total <= maxReset ? total : nil
    }
}
