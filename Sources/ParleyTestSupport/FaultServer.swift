import Foundation

/// A provider that misbehaves on purpose, playing the OpenAI or the Anthropic wire format. Each request
/// gets the next fault of its script (the last one repeats); it counts what it received.
public final class FaultServer: Sendable {
    public enum Format: Sendable { case openAI, anthropic }

    public enum Fault: Sendable {
        /// A normal streamed reply.
        case ok
        /// 429 with `retry-after` (seconds) and/or `retry-after-ms`.
        case rateLimited(retryAfter: String?, retryAfterMs: String?)
        /// A non-2xx status with the provider's error body; extra headers (e.g. `x-should-retry`).
        case status(Int, message: String, headers: [(String, String)])
        /// Closes the connection before sending a response head.
        case resetBeforeHead
        /// Sends part of the reply, then closes the connection.
        case resetMidStream
        /// Sends nothing for this long, then a normal reply.
        case stallBeforeFirstByte(Duration)
        /// Sends part of the reply, then nothing for this long, then the rest.
        case stallMidStream(Duration)
        /// A normal reply, one byte per write.
        case drip
        /// Part of the reply, then one chunk that is not JSON.
        case malformedChunk
        /// Part of the reply, then the format's error event.
        case inStreamError(message: String)
        /// An error event before any text (Anthropic's overloaded_error in a 200 stream).
        case inStreamErrorFirst(message: String)
        /// The whole reply but without `[DONE]` / `message_stop`.
        case noTerminator
        /// A reply of about this many bytes of stream.
        case huge(bytes: Int)

        // Hostile answers (issue 11): each tries to crash Parley, cheat the ledger, escape the terminal,
        // take the key elsewhere or exhaust memory.

        /// A normal reply whose usage holds these JSON numbers as written (`9223372036854775807`, `-100000000`).
        case usage(prompt: String, completion: String)
        /// A normal reply with these extra response headers (rate-limit fields, say).
        case headers([(String, String)])
        /// `307 Temporary Redirect` to `location`.
        case redirect(location: String)
        /// The start of an event, then this many megabytes without a line end, then nothing more.
        case endlessLine(megabytes: Int)
    }

    public let server: ScriptedHTTPServer
    public let format: Format
    /// The reply every successful answer carries.
    public static let replyWords = ["Hello", " from", " the", " fault", " server", "."]
    public static var replyText: String { replyWords.joined() }

    public init(format: Format, script: [Fault]) async throws {
        self.format = format
        let counter = Counter()
        server = try await ScriptedHTTPServer { _ in
            let index = counter.next()
            return FaultServer.steps(script[min(index, script.count - 1)], format: format)
        }
    }

    public var baseURL: String { server.baseURL }
    /// What to put in a provider's base_url for this format.
    public var providerBaseURL: String { format == .openAI ? server.baseURL + "/v1" : server.baseURL }
    public var requestCount: Int { server.requestCount }
    public var requests: [ScriptedHTTPServer.Request] { server.requests }
    public var clientClosures: [ContinuousClock.Instant] { server.clientClosures }
    public func shutdown() async { await server.shutdown() }

    static let sseHead = ScriptedHTTPServer.Step.head(status: 200, headers: [("Content-Type", "text/event-stream")])

    /// The reply as the format's stream events: opening events, one per word, closing events, terminator.
    public static func events(_ format: Format, words: [String] = replyWords) -> (open: [String], words: [String], close: [String], end: String) {
        func json(_ text: String) -> String {
            let escaped = text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            return "\"\(escaped)\""
        }
        switch format {
        case .openAI:
            return ([#"data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"# + "\n\n"],
                    words.map { #"data: {"choices":[{"index":0,"delta":{"content":"# + json($0) + "}}]}\n\n" },
                    [#"data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"# + "\n\n",
                     #"data: {"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":6,"total_tokens":18}}"# + "\n\n"],
                    "data: [DONE]\n\n")
        case .anthropic:
            return (["event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n",
                     "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"],
                    words.map { "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\(json($0))}}\n\n" },
                    ["event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
                     "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":6}}\n\n"],
                    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
        }
    }

    static func errorBody(_ format: Format, status: Int, message: String) -> String {
        switch format {
        case .openAI:
            return #"{"error":{"message":"\#(message)","type":"\#(status == 429 ? "rate_limit_exceeded" : "invalid_request_error")","code":null}}"#
        case .anthropic:
            let type = status == 529 ? "overloaded_error" : status == 429 ? "rate_limit_error" : status == 401 ? "authentication_error" : "invalid_request_error"
            return #"{"type":"error","error":{"type":"\#(type)","message":"\#(message)"}}"#
        }
    }

    static func inStreamError(_ format: Format, message: String) -> String {
        switch format {
        case .openAI: return #"data: {"error":{"message":"\#(message)","type":"server_error"}}"# + "\n\n"
        case .anthropic: return "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"\(message)\"}}\n\n"
        }
    }

    public static func steps(_ fault: Fault, format: Format) -> [ScriptedHTTPServer.Step] {
        let stream = events(format)
        func bytes(_ parts: [String]) -> [UInt8] { Array(parts.joined().utf8) }
        let firstHalf = stream.open + stream.words.prefix(3)
        let secondHalf = Array(stream.words.dropFirst(3)) + stream.close + [stream.end]
        switch fault {
        case .ok:
            return [sseHead, .write(bytes(firstHalf)), .write(bytes(secondHalf)), .end]
        case let .rateLimited(retryAfter, retryAfterMs):
            var headers: [(String, String)] = []
            if let retryAfter { headers.append(("retry-after", retryAfter)) }
            if let retryAfterMs { headers.append(("retry-after-ms", retryAfterMs)) }
            return ScriptedHTTPServer.json(errorBody(format, status: 429, message: "Rate limit reached; slow down"), status: 429, headers: headers)
        case let .status(status, message, headers):
            return ScriptedHTTPServer.json(errorBody(format, status: status, message: message), status: status, headers: headers)
        case .resetBeforeHead:
            return [.close]
        case .resetMidStream:
            return [sseHead, .write(bytes(firstHalf)), .pause(.milliseconds(20)), .close]
        case let .stallBeforeFirstByte(duration):
            return [.pause(duration), sseHead, .write(bytes(firstHalf + secondHalf)), .end]
        case let .stallMidStream(duration):
            return [sseHead, .write(bytes(firstHalf)), .pause(duration), .write(bytes(secondHalf)), .end]
        case .drip:
            return [sseHead] + bytes(firstHalf + secondHalf).map { .write([$0]) } + [.end]
        case .malformedChunk:
            let broken = format == .openAI ? "data: {\"choices\":[{\"delta\":{\"content\":\"oops\"\n\n" : "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\n\n"
            return [sseHead, .write(bytes(firstHalf)), .write(Array(broken.utf8)), .write(bytes(secondHalf)), .end]
        case let .inStreamError(message):
            return [sseHead, .write(bytes(firstHalf)), .write(Array(inStreamError(format, message: message).utf8)), .end]
        case let .inStreamErrorFirst(message):
            return [sseHead, .write(bytes(Array(stream.open.prefix(1)))), .write(Array(inStreamError(format, message: message).utf8)), .end]
        case .noTerminator:
            return [sseHead, .write(bytes(firstHalf + stream.words.dropFirst(3) + stream.close)), .end]
        case let .huge(total):
            // Words of 8 bytes: about 60 bytes of stream each in the OpenAI format.
            let perWord = events(format, words: ["abcdefg "]).words[0]
            let perMegabyte = String(repeating: perWord, count: max(1, 1_000_000 / perWord.utf8.count))
            let chunk = Array(perMegabyte.utf8)
            let count = max(1, total / chunk.count)
            return [sseHead, .write(bytes(stream.open))] + Array(repeating: .write(chunk), count: count)
                + [.write(bytes(stream.close + [stream.end])), .end]
        case let .usage(prompt, completion):
            let close: [String]
            switch format {
            case .openAI:
                close = [#"data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"# + "\n\n",
                         #"data: {"choices":[],"usage":{"prompt_tokens":\#(prompt),"completion_tokens":\#(completion)}}"# + "\n\n"]
            case .anthropic:
                close = ["event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"input_tokens\":\(prompt),\"output_tokens\":\(completion)}}\n\n"]
            }
            return [sseHead, .write(bytes(stream.open + stream.words + close + [stream.end])), .end]
        case let .headers(extra):
            return [.head(status: 200, headers: [("Content-Type", "text/event-stream")] + extra), .write(bytes(firstHalf + secondHalf)), .end]
        case let .redirect(location):
            return [.head(status: 307, headers: [("Location", location), ("Content-Length", "0")]), .end]
        case let .endlessLine(megabytes):
            let start = format == .openAI ? #"data: {"choices":[{"index":0,"delta":{"content":""# : "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\""
            let megabyte = [UInt8](repeating: UInt8(ascii: "a"), count: 1 << 20)
            return [sseHead, .write(bytes(firstHalf)), .write(Array(start.utf8))] + Array(repeating: .write(megabyte), count: megabytes) + [.end]
        }
    }
}

final class Counter: @unchecked Sendable {
    private var value = 0
    private let lock = NSLock()
    func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        defer { value += 1 }
        return value
    }
}
