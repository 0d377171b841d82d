import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import ParleyProviders

/// A loopback HTTP/1.1 server that answers each request with a script: status and headers, body writes,
/// pauses, and an abrupt close. It plays providers in tests and benchmarks, including their faults.
public final class ScriptedHTTPServer: Sendable {
    /// A request as received.
    public struct Request: Sendable {
        public var method: String
        public var uri: String
        public var headers: HeaderFields
        public var body: [UInt8]

        public var bodyText: String { String(decoding: body, as: UTF8.self) }
    }

    /// One step of an answer.
    public enum Step: Sendable {
        case head(status: Int, headers: [(String, String)])
        /// Writes and flushes these bytes as one body chunk.
        case write([UInt8])
        case pause(Duration)
        /// Ends the body normally.
        case end
        /// Closes the connection at once (mid-stream, or before any head).
        case close
    }

    public typealias Handler = @Sendable (Request) -> [Step]

    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    private let state: LockedState
    public let port: Int

    public var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Requests received so far.
    public var requests: [Request] { state.withLock { $0.requests } }
    public var requestCount: Int { state.withLock { $0.requests.count } }
    /// Connections the client closed before the script finished, with the time it happened.
    public var clientClosures: [ContinuousClock.Instant] { state.withLock { $0.clientClosures } }

    public init(handler: @escaping Handler) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let state = LockedState()
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline(withErrorHandling: true).flatMap {
                    channel.pipeline.addHandler(ScriptHandler(handler: handler, state: state))
                }
            }
        do {
            channel = try await bootstrap.bind(host: "127.0.0.1", port: 0).get()
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        self.group = group
        self.state = state
        self.port = channel.localAddress?.port ?? 0
    }

    public func shutdown() async {
        try? await channel.close()
        try? await group.shutdownGracefully()
    }

    /// A 200 `text/event-stream` answer carrying `body`, written in one piece.
    public static func sse(_ body: [UInt8], status: Int = 200) -> [Step] {
        [.head(status: status, headers: [("Content-Type", "text/event-stream")]), .write(body), .end]
    }

    /// A JSON answer, as providers send errors.
    public static func json(_ body: String, status: Int, headers: [(String, String)] = []) -> [Step] {
        [.head(status: status, headers: [("Content-Type", "application/json"), ("Content-Length", String(body.utf8.count))] + headers),
         .write(Array(body.utf8)), .end]
    }
}

final class LockedState: @unchecked Sendable {
    struct Value {
        var requests: [ScriptedHTTPServer.Request] = []
        var clientClosures: [ContinuousClock.Instant] = []
    }

    private var value = Value()
    private let lock = NSLock()

    func withLock<T>(_ body: (inout Value) -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}

/// Runs on the channel's event loop only.
final class ScriptHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let handler: ScriptedHTTPServer.Handler
    let state: LockedState
    var head: HTTPRequestHead?
    var body: [UInt8] = []
    var scriptRunning = false

    init(handler: @escaping ScriptedHTTPServer.Handler, state: LockedState) {
        self.handler = handler
        self.state = state
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case let .head(requestHead):
            head = requestHead
            body = []
        case let .body(buffer):
            body += buffer.readableBytesView
        case .end:
            guard let head else { return }
            let request = ScriptedHTTPServer.Request(
                method: head.method.rawValue, uri: head.uri, headers: HeaderFields(head.headers.map { ($0.name, $0.value) }), body: body
            )
            state.withLock { $0.requests.append(request) }
            let steps = handler(request)
            scriptRunning = true
            run(steps[...], context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if scriptRunning {
            let now = ContinuousClock.now
            state.withLock { $0.clientClosures.append(now) }
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func run(_ steps: ArraySlice<ScriptedHTTPServer.Step>, context: ChannelHandlerContext) {
        var steps = steps
        while let step = steps.popFirst() {
            guard context.channel.isActive else { return }
            switch step {
            case let .head(status, headers):
                var fields = HTTPHeaders()
                for (name, value) in headers { fields.add(name: name, value: value) }
                let responseHead = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: fields)
                context.writeAndFlush(wrapOutboundOut(.head(responseHead)), promise: nil)
            case let .write(bytes):
                // The next step waits until this write has reached the socket: a client that reads
                // slowly (or stops) holds the script back, so a long script never piles up in memory.
                let buffer = context.channel.allocator.buffer(bytes: bytes)
                let written = context.eventLoop.makePromise(of: Void.self)
                context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: written)
                let rest = steps
                let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                written.futureResult.whenComplete { _ in
                    let (handler, context) = bound.value
                    handler.run(rest, context: context)
                }
                return
            case let .pause(duration):
                let rest = steps
                let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                context.eventLoop.scheduleTask(in: .nanoseconds(Self.nanoseconds(duration))) {
                    let (handler, context) = bound.value
                    handler.run(rest, context: context)
                }
                return
            case .end:
                scriptRunning = false
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            case .close:
                scriptRunning = false
                context.close(promise: nil)
                return
            }
        }
    }

    static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
