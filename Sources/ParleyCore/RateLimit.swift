import Foundation

/// What a provider said about its rate limits in a response's headers (OpenAI and Groq `x-ratelimit-*`,
/// Anthropic `anthropic-ratelimit-*`). Any field may be missing.
public struct RateLimitStatus: Sendable, Equatable {
    public var requestsLimit: Int?
    public var requestsRemaining: Int?
    /// Seconds until the request allowance is full again.
    public var requestsReset: Double?
    public var tokensLimit: Int?
    public var tokensRemaining: Int?
    public var tokensReset: Double?

    public init(requestsLimit: Int? = nil, requestsRemaining: Int? = nil, requestsReset: Double? = nil,
                tokensLimit: Int? = nil, tokensRemaining: Int? = nil, tokensReset: Double? = nil) {
        self.requestsLimit = requestsLimit
        self.requestsRemaining = requestsRemaining
        self.requestsReset = requestsReset
        self.tokensLimit = tokensLimit
        self.tokensRemaining = tokensRemaining
        self.tokensReset = tokensReset
    }

    public var isEmpty: Bool { self == RateLimitStatus() }

    /// Low: at most a tenth of either allowance left (or none at all).
    public var isLow: Bool {
        func low(_ remaining: Int?, _ limit: Int?) -> Bool {
            guard let remaining else { return false }
            guard let limit, limit > 0 else { return remaining == 0 }
            return Double(remaining) <= Double(limit) * 0.1
        }
        return low(requestsRemaining, requestsLimit) || low(tokensRemaining, tokensLimit)
    }

    /// A few words for the status bar, e.g. "rate limit: 2/100 requests, resets in 6m0s".
    public var summary: String {
        var parts: [String] = []
        if let remaining = requestsRemaining {
            var text = "\(remaining)" + (requestsLimit.map { "/\($0)" } ?? "") + " requests"
            if let reset = requestsReset { text += " (reset \(Self.duration(reset)))" }
            parts.append(text)
        }
        if let remaining = tokensRemaining {
            var text = Self.count(remaining) + (tokensLimit.map { "/" + Self.count($0) } ?? "") + " tokens"
            if let reset = tokensReset { text += " (reset \(Self.duration(reset)))" }
            parts.append(text)
        }
        return "rate limit: " + parts.joined(separator: ", ")
    }

    static func count(_ n: Int) -> String {
        n >= 10_000 ? "\(n / 1000)k" : "\(n)"
    }

    /// Any Double is shown without trapping (headers are parsed with limits, but this is the last line).
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        if seconds >= 366 * 86_400 { return "over a year" }
        if seconds < 1 { return "\(Int((seconds * 1000).rounded())) ms" }
        let whole = Int(seconds.rounded(.up))
        if whole < 60 { return "\(whole) s" }
        if whole < 3600 { return "\(whole / 60)m\(whole % 60)s" }
        return "\(whole / 3600)h\(whole % 3600 / 60)m"
    }
}
