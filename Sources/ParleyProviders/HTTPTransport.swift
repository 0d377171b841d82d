import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import ParleyCore

/// A streamed HTTP response: status and headers first, then the body as it arrives.
public struct HTTPStreamingResponse: Sendable {
    public var status: Int
    public var headers: HeaderFields
    public var body: ResponseBody
}

/// A response body as Parley reads it: chunks of bytes, with the transport's errors already turned
/// into `TransportError`. Nothing of async-http-client or NIO shows outside this file.
public struct ResponseBody: AsyncSequence, Sendable {
    public typealias Element = BodyChunk
    let base: HTTPClientResponse.Body

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: HTTPClientResponse.Body.AsyncIterator

        public mutating func next() async throws -> BodyChunk? {
            do { return try await base.next().map(BodyChunk.init) } catch { throw TransportError(error) }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: base.makeAsyncIterator()) }
}

/// Bytes of a response body, read in place (no copy on the hot path).
public struct BodyChunk: Sendable {
    let buffer: ByteBuffer

    public var count: Int { buffer.readableBytes }
    public var bytes: [UInt8] { Array(buffer.readableBytesView) }
    public func prefix(_ length: Int) -> ArraySlice<UInt8> { ArraySlice(buffer.readableBytesView.prefix(max(0, length))) }
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try buffer.withUnsafeReadableBytes(body)
    }
}

/// What can go wrong in the transport, typed here where the library's errors are known, so the rest of
/// Parley reasons about kinds (retry, fall back, what to tell the user) and never about error text.
public enum TransportError: Error, Sendable, Equatable {
    case connectTimeout
    /// No byte arrived within the read timeout (a backstop; ChatClient's watchdog usually fires first).
    case readTimeout
    /// The response head did not come within the request's deadline.
    case deadlineExceeded
    case cancelled
    /// The server closed the connection before the response was complete.
    case closedEarly
    /// Nothing is listening at the address.
    case connectionRefused
    /// The connection could not be made (DNS, routing, TLS): the library's description.
    case cannotConnect(String)
    /// Anything else, described.
    case other(String)

    init(_ error: any Error) {
        if let error = error as? TransportError { self = error; return }
        if error is CancellationError { self = .cancelled; return }
        if let error = error as? HTTPClientError {
            switch error {
            case .connectTimeout: self = .connectTimeout; return
            case .readTimeout: self = .readTimeout; return
            case .deadlineExceeded: self = .deadlineExceeded; return
            case .cancelled: self = .cancelled; return
            case .remoteConnectionClosed: self = .closedEarly; return
            default: break
            }
        }
        if let error = error as? IOError, error.errnoCode == ECONNREFUSED { self = .connectionRefused; return }
        if let error = error as? NIOConnectionError {
            if error.connectionErrors.contains(where: { ($0.error as? IOError)?.errnoCode == ECONNREFUSED }) {
                self = .connectionRefused
            } else {
                self = .cannotConnect(String(describing: error))
            }
            return
        }
        if error is ChannelError { self = .closedEarly; return }
        self = .other(String(describing: error))
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
            // The gateway streams many replies from one provider at once; async-http-client's default
            // of 8 connections per host made the ninth wait for a free one until the connect timeout.
            configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 256
            configuration.httpVersion = .automatic
            // On the stream executor's event loop, so reading a reply and handling it share a thread.
            let client = HTTPClient(eventLoopGroup: StreamExecutor.group, configuration: configuration)
            clients[timeouts] = client
            return client
        }
    }

    /// Sends the request; every failure is a `TransportError`.
    public func send(_ spec: HTTPRequestSpec, timeouts: TransportTimeouts) async throws -> HTTPStreamingResponse {
        var request = HTTPClientRequest(url: spec.url)
        request.method = HTTPMethod(rawValue: spec.method)
        for (name, value) in spec.headers { request.headers.add(name: name, value: value) }
        if !spec.body.isEmpty { request.body = .bytes(spec.body) }
        let response: HTTPClientResponse
        do {
            response = try await client(for: timeouts).execute(request, deadline: .now() + .nanoseconds(timeouts.firstToken.nanoseconds))
        } catch {
            throw TransportError(error)
        }
        return HTTPStreamingResponse(
            status: Int(response.status.code),
            headers: HeaderFields(response.headers.map { ($0.name, $0.value) }),
            body: ResponseBody(base: response.body)
        )
    }
}
