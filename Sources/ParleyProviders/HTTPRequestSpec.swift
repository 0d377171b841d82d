import Foundation

/// A request as the wire formats build it; the transport turns it into bytes on a socket.
public struct HTTPRequestSpec: Sendable {
    public var url: String
    public var method: String
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(url: String, method: String = "POST", headers: [(String, String)] = [], body: [UInt8] = []) {
        self.url = url
        self.method = method
        self.headers = headers
        self.body = body
    }

    public func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
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
