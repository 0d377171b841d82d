import Foundation

/// A request as the wire formats build it; the transport turns it into bytes on a socket.
public struct HTTPRequestSpec: Sendable {
    public var url: String
    public var method: String
    public var headers: HeaderFields
    public var body: [UInt8]

    public init(url: String, method: String = "POST", headers: HeaderFields = [], body: [UInt8] = []) {
        self.url = url
        self.method = method
        self.headers = headers
        self.body = body
    }
}

/// HTTP header fields in the order given, looked up without regard to case, as HTTP wants: the one
/// type for request and response headers alike.
public struct HeaderFields: Sendable, Equatable, Sequence, ExpressibleByArrayLiteral {
    public private(set) var fields: [(name: String, value: String)]

    public init(_ fields: [(String, String)] = []) { self.fields = fields.map { (name: $0.0, value: $0.1) } }
    public init(arrayLiteral elements: (String, String)...) { self.init(elements) }

    /// The first value of `name`, trimmed of surrounding spaces.
    public subscript(_ name: String) -> String? {
        fields.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value.trimmingCharacters(in: .whitespaces)
    }

    public mutating func add(_ name: String, _ value: String) { fields.append((name, value)) }

    public static func + (lhs: HeaderFields, rhs: [(String, String)]) -> HeaderFields {
        var result = lhs
        for (name, value) in rhs { result.add(name, value) }
        return result
    }

    public func makeIterator() -> IndexingIterator<[(name: String, value: String)]> { fields.makeIterator() }

    public static func == (lhs: HeaderFields, rhs: HeaderFields) -> Bool {
        lhs.fields.count == rhs.fields.count && zip(lhs.fields, rhs.fields).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }
}

/// Timeouts every request is sent with. Set explicitly: the library defaults (no read timeout) would
/// let a stalled provider hang a reply forever.
public struct TransportTimeouts: Sendable, Hashable {
    /// To open the TCP (and TLS) connection.
    public var connect: Duration
    /// From sending the request to the first token of the reply (the response head must come within it too).
    public var firstToken: Duration
    /// Longest silence between two chunks of the body once the reply has started.
    public var idle: Duration
    /// Longest whole reply, from sending the request to its end; nil for no limit.
    public var total: Duration?

    public init(connect: Duration = .seconds(10), firstToken: Duration = .seconds(60), idle: Duration = .seconds(60), total: Duration? = nil) {
        self.connect = connect
        self.firstToken = firstToken
        self.idle = idle
        self.total = total
    }
}
