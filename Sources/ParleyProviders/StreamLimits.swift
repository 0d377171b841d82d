import Foundation
import ParleyCore

/// How much of a response Parley reads before it gives up on it. Whatever a server sends, memory stays
/// within these (config: `max_event_kb`, `max_reply_mb`, `max_error_kb` per provider).
public struct StreamLimits: Sendable, Hashable {
    /// One SSE line or event, one NDJSON line. A real chunk is a few hundred bytes; a tool call's
    /// arguments may come whole in one event, hence the room.
    public var maxEventBytes: Int
    /// The whole streamed body of one reply. The largest legitimate reply (128k output tokens with the
    /// OpenAI format's ~250 bytes of framing each) is about 32 MB.
    public var maxReplyBytes: Int
    /// A non-2xx answer's body, of which only the message is shown.
    public var maxErrorBytes: Int

    public static let standard = StreamLimits(maxEventBytes: 4 << 20, maxReplyBytes: 128 << 20, maxErrorBytes: 64 << 10)

    public init(maxEventBytes: Int, maxReplyBytes: Int, maxErrorBytes: Int) {
        self.maxEventBytes = maxEventBytes
        self.maxReplyBytes = maxReplyBytes
        self.maxErrorBytes = maxErrorBytes
    }
}

/// A response passed one of `StreamLimits`.
public struct StreamLimitExceeded: Error, Sendable, Equatable {
    public enum What: Sendable, Equatable { case event, reply }
    public var what: What
    public var limit: Int

    public init(what: What, limit: Int) {
        self.what = what
        self.limit = limit
    }

    func providerError(provider: String) -> ProviderError {
        switch what {
        case .event:
            return ProviderError(kind: .malformed, provider: provider,
                                 message: "sent one stream event longer than \(Self.size(limit)) (max_event_kb); the reply was stopped",
                                 hint: "this is a provider or proxy fault; raise max_event_kb for this provider only if it is expected")
        case .reply:
            return ProviderError(kind: .malformed, provider: provider,
                                 message: "sent more than \(Self.size(limit)) of stream for one reply (max_reply_mb); the reply was stopped",
                                 hint: "raise max_reply_mb for this provider if such replies are expected")
        }
    }

    static func size(_ bytes: Int) -> String {
        bytes >= 1 << 20 ? "\(bytes >> 20) MB" : "\(bytes >> 10) KB"
    }
}

/// Token counts from a provider's usage object. A count that is present but not a whole number from 0 to
/// `max` is a protocol error naming the field: billing a negative count would lower the day's spend and
/// defeat a budget, and a count past any context window is not one a model produced.
struct TokenCounts {
    static let max = 1_000_000_000
    let json: JSONValue
    let field: String
    let provider: String

    init(_ json: JSONValue, field: String, provider: String) {
        self.json = json
        self.field = field
        self.provider = provider
    }

    /// The count at `path`: nil when absent or null, thrown when invalid.
    subscript(_ path: String...) -> Int? {
        get throws(ProviderError) {
            var value: JSONValue? = json
            for key in path { value = value?[key] }
            guard let value, !value.isNull else { return nil }
            if let count = value.int, count >= 0, count <= Self.max { return count }
            let name = ([field].filter { !$0.isEmpty } + path).joined(separator: ".")
            let shown = value.double.map { $0 == $0.rounded() && abs($0) < 1e30 ? String(format: "%.0f", $0) : String($0) } ?? value.serialized()
            throw ProviderError(kind: .malformed, provider: provider,
                                message: "sent \(name) = \(String(shown.prefix(40))), which is not a token count (a whole number from 0 to \(Self.max))",
                                hint: "this is a provider or proxy fault; the reply's usage is not trusted")
        }
    }
}
