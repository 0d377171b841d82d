import Foundation
import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOPosix
import ParleyCore
import ParleyKit
import ParleyProviders

/// `parley serve`: an OpenAI-compatible (and Anthropic-compatible) HTTP endpoint in front of every
/// configured model, on the same turn as `ask` and the screen: cache, budgets, retries, fallback and
/// ledger rows tagged with the client's name.
///
/// Built on HummingbirdCore's HTTP/1.1 server with a responder of our own rather than its router: the
/// response head must wait until the model has produced content (so a failure before it is an HTTP
/// error status, never a 200 with an error inside), and the whole exchange must be cancelled when the
/// client goes away, which needs the connection's inbound side and the writer in one place.
public final class Gateway: Sendable {
    public struct Settings: Sendable {
        public var host: String
        public var port: Int
        /// Token → the client's name. Empty: no authentication, loopback only.
        public var tokens: [String: String]
        public var maxBodyBytes: Int
        /// Connections open at once; more wait in the listen queue (so idle ones cannot use up the
        /// process's file descriptors).
        public var maxConnections: Int

        public init(host: String = "127.0.0.1", port: Int = 8080, tokens: [String: String] = [:], maxBodyBytes: Int = 8 << 20, maxConnections: Int = 512) {
            self.host = host
            self.port = port
            self.tokens = tokens
            self.maxBodyBytes = maxBodyBytes
            self.maxConnections = maxConnections
        }
    }

    let engine: ChatEngine
    let settings: Settings
    let log: @Sendable (String) -> Void

    public init(engine: ChatEngine, settings: Settings, log: @escaping @Sendable (String) -> Void) throws(GatewaySetupError) {
        if settings.tokens.isEmpty, !Self.isLoopback(settings.host) {
            throw GatewaySetupError(message: "refusing to listen on \(settings.host) without tokens: anyone who can reach it could spend your keys; "
                                    + "set PARLEY_SERVE_TOKENS (name:token,...) or --tokens-file, or listen on 127.0.0.1")
        }
        self.engine = engine
        self.settings = settings
        self.log = log
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.") && host.split(separator: ".").count == 4
    }

    /// How long a connection may sit between requests, or in the middle of sending one (headers or
    /// body), before it is closed: a slow client cannot hold a connection open forever.
    static let idleTimeout: TimeAmount = .seconds(30)

    /// Serves until the process ends; `onListening` gets the port (useful with port 0).
    public func run(onListening: @escaping @Sendable (Int) -> Void) async throws {
        let logger = Logger(label: "parley.serve", factory: { _ in SwiftLogNoOpLogHandler() })
        let server = Server(
            childChannelSetup: HTTP1Channel(responder: { request, writer, channel in
                try await self.respond(request, writer, channel)
            }, configuration: .init(idleTimeout: Self.idleTimeout)),
            configuration: ServerConfiguration(address: .hostname(settings.host, port: settings.port), serverName: nil,
                                               availableConnectionsDelegate: MaximumAvailableConnections(settings.maxConnections)),
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? 0) },
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            logger: logger
        )
        try await server.run()
    }

    // MARK: - Requests

    func respond(_ request: Request, _ writer: consuming ResponseWriter, _ channel: any Channel) async throws {
        let started = ContinuousClock.now
        let path = request.uri.path
        let reply = Exchange(writer: writer, format: path == "/v1/messages" ? .anthropic : .openAI)
        var client = "-"
        var status = 0
        defer { log("\(status) \(request.method.rawValue) \(TerminalSanitizer.line(String(path.prefix(80)))) \(client) \(Int((ContinuousClock.now - started).milliseconds)) ms") }
        if path == "/health" {
            // No token needed, so it says only which kind of ledger is in use, not where.
            guard request.method == .get else {
                status = try await reply.error(GatewayError(status: 405, message: "\(request.method.rawValue) is not allowed on /health", type: "invalid_request_error", code: "method_not_allowed"))
                return
            }
            status = try await reply.json(200, ["status": "ok", "ledger": .string(engine.config.ledger.backend.rawValue)])
            return
        }
        let caller: String
        switch authenticate(request.headers) {
        case let .success(name): caller = name
        case let .failure(error):
            status = try await reply.error(error)
            return
        }
        client = caller
        switch (request.method, path) {
        case (.get, "/v1/models"):
            status = try await reply.json(200, modelList())
        case (.post, "/v1/chat/completions"), (.post, "/v1/messages"):
            var request = request
            if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > settings.maxBodyBytes {
                status = try await reply.error(tooLarge())
                return
            }
            // A body that does not arrive within 30 seconds (a client trickling it) closes the connection.
            let timer = Task {
                try await Task.sleep(for: .seconds(30))
                try? await channel.close()
            }
            let body: ByteBuffer
            do { body = try await request.collectBody(upTo: settings.maxBodyBytes) } catch {
                timer.cancel()
                status = try await reply.error(tooLarge())
                return
            }
            timer.cancel()
            let parsed: GatewayRequest
            do {
                let json: JSONValue
                do { json = try JSONValue.parse(Array(body.readableBytesView)) } catch {
                    throw GatewayError.invalid("the body is not valid JSON (\(error.description))", code: "invalid_json")
                }
                parsed = reply.format == .openAI ? try GatewayRequest.openAI(json) : try GatewayRequest.anthropic(json)
            } catch {
                status = try await reply.error(error)
                return
            }
            let ref: ModelRef
            do { ref = try engine.config.resolve(parsed.model) } catch {
                status = try await reply.error(GatewayError(status: 404, message: "\(error.userMessage); GET /v1/models lists the models this gateway serves",
                                                            type: "invalid_request_error", code: "model_not_found"))
                return
            }
            var turnRequest = parsed.request
            turnRequest.model = ref.model
            let pump = TurnPump(engine.turn(turnRequest, model: ref, options: TurnOptions(user: caller)))
            // Everything from here runs while the connection's inbound side is watched: a client that
            // goes away cancels the turn, and with it the upstream request.
            var held: Exchange? = consume reply
            status = try await request.body.consumeWithInboundCloseHandler { _ in
                guard let exchange = held.take() else { return 0 }
                return try await exchange.answer(parsed, primary: ref, events: pump.events)
            } onInboundClosed: {
                pump.cancel()
            }
            pump.cancel()
        case (_, "/v1/models"), (_, "/v1/chat/completions"), (_, "/v1/messages"):
            status = try await reply.error(GatewayError(status: 405, message: "\(request.method.rawValue) is not allowed on \(path)", type: "invalid_request_error", code: "method_not_allowed"))
        default:
            status = try await reply.error(GatewayError(status: 404, message: "no such endpoint: \(String(path.prefix(80))); this gateway serves POST /v1/chat/completions, POST /v1/messages, GET /v1/models and GET /health",
                                                        type: "invalid_request_error", code: "unknown_url"))
        }
    }

    func tooLarge() -> GatewayError {
        GatewayError(status: 413, message: "the request body is larger than \(settings.maxBodyBytes / (1 << 20)) MB", type: "invalid_request_error", code: "request_too_large")
    }

    /// The client's name for the bearer token (`Authorization: Bearer T`, or Anthropic's `x-api-key: T`).
    /// Every token is compared in full, so the time taken does not tell how much of a guess was right.
    func authenticate(_ headers: HTTPFields) -> Result<String, GatewayError> {
        if settings.tokens.isEmpty { return .success(engine.userName) }
        var presented = headers[.authorization].flatMap { value -> String? in
            value.lowercased().hasPrefix("bearer ") ? String(value.dropFirst(7)).trimmingCharacters(in: .whitespaces) : nil
        }
        if presented == nil, let name = HTTPField.Name("x-api-key") { presented = headers[name] }
        guard let presented, !presented.isEmpty else {
            return .failure(GatewayError(status: 401, message: "no API key: send Authorization: Bearer TOKEN with a token from PARLEY_SERVE_TOKENS or the tokens file",
                                         type: "invalid_request_error", code: "invalid_api_key"))
        }
        var match: String?
        let given = Array(presented.utf8)
        for (token, name) in settings.tokens {
            let expected = Array(token.utf8)
            var difference = UInt8(given.count == expected.count ? 0 : 1)
            for index in expected.indices { difference |= expected[index] ^ (index < given.count ? given[index] : 0) }
            if difference == 0 { match = name }
        }
        guard let match else {
            return .failure(GatewayError(status: 401, message: "the API key is not one of this gateway's tokens", type: "invalid_request_error", code: "invalid_api_key"))
        }
        return .success(match)
    }

    /// Every configured model and alias, in OpenAI's list format.
    func modelList() -> JSONValue {
        var names: [(String, String)] = []
        let config = engine.config
        for name in config.providerOrder {
            guard let provider = config.providers[name] else { continue }
            for model in provider.models { names.append(("\(name):\(model)", name)) }
        }
        for alias in config.aliases.keys.sorted() { names.append((alias, "alias")) }
        if !names.contains(where: { $0.0 == engine.defaultModelName }) { names.insert((engine.defaultModelName, "default"), at: 0) }
        return ["object": "list", "data": .array(names.map { id, owner in
            ["id": .string(id), "object": "model", "created": 0, "owned_by": .string(owner)]
        })]
    }
}

public struct GatewaySetupError: UserFacingError, Sendable {
    public var message: String
    public var userMessage: String { "parley serve: \(message)" }
}

/// The turn's events, re-streamed from a task the gateway can cancel the moment the client leaves.
final class TurnPump: Sendable {
    let events: AsyncThrowingStream<TurnEvent, any Error>
    private let task: Task<Void, Never>

    init(_ source: AsyncThrowingStream<TurnEvent, any Error>) {
        let (events, continuation) = AsyncThrowingStream.makeStream(of: TurnEvent.self)
        self.events = events
        task = Task {
            do {
                for try await event in source { continuation.yield(event) }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
    }

    func cancel() { task.cancel() }
}
