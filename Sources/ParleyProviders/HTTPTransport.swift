import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import ParleyCore

/// A streamed HTTP response: status and headers first, then the body as it arrives.
public struct HTTPStreamingResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: any AsyncSequence<ByteBuffer, any Error> & Sendable

    public init(status: Int, headers: [(String, String)], body: any AsyncSequence<ByteBuffer, any Error> & Sendable) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }
}

/// The seam between wire formats and the network; the live one is `AsyncHTTPTransport`.
public protocol HTTPTransport: Sendable {
    func send(_ request: HTTPRequestSpec, timeouts: TransportTimeouts) async throws -> HTTPStreamingResponse
}

/// The transport on async-http-client. One client per distinct set of timeouts, kept for the life of
/// the process, because async-http-client sets connect and read timeouts per client, not per request.
public final class AsyncHTTPTransport: HTTPTransport {
    public static let shared = AsyncHTTPTransport()

    private let clients = LockedBox<[TransportTimeouts: HTTPClient]>([:])

    public init() {}

    private func client(for timeouts: TransportTimeouts) -> HTTPClient {
        clients.withLock { clients in
            if let existing = clients[timeouts] { return existing }
            var configuration = HTTPClient.Configuration()
            // The read timeout is only a backstop: ChatClient's watchdog enforces first-token and idle
            // limits itself (AHC's read timeout cannot tell "before the first token" from "between chunks").
            configuration.timeout = .init(
                connect: .nanoseconds(timeouts.connect.nanoseconds),
                read: .nanoseconds(max(timeouts.idle, timeouts.firstToken).nanoseconds + 1_000_000_000)
            )
            configuration.decompression = .disabled
            // Redirects are answered, never followed: async-http-client would send the key and every
            // configured header again to whatever host a Location names (see ChatClient.run).
            configuration.redirectConfiguration = .disallow
            // A refused connection fails at once instead of being retried until the connect timeout.
            configuration.connectionPool.retryConnectionEstablishment = false
            configuration.httpVersion = .automatic
            let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
            clients[timeouts] = client
            return client
        }
    }

    public func send(_ spec: HTTPRequestSpec, timeouts: TransportTimeouts) async throws -> HTTPStreamingResponse {
        var request = HTTPClientRequest(url: spec.url)
        request.method = HTTPMethod(rawValue: spec.method)
        for (name, value) in spec.headers { request.headers.add(name: name, value: value) }
        if !spec.body.isEmpty { request.body = .bytes(spec.body) }
        let response = try await client(for: timeouts).execute(
            request, deadline: .now() + .nanoseconds(timeouts.firstToken.nanoseconds)
        )
        return HTTPStreamingResponse(
            status: Int(response.status.code),
            headers: response.headers.map { ($0.name, $0.value) },
            body: response.body
        )
    }
}
