import Foundation
import HTTPTypes
import HummingbirdCore
import NIOCore
import ParleyCore
import ParleyKit
import ParleyProviders

/// One response, written once: a JSON body, an error in the client's wire format, or the answer to a
/// chat request (streamed or whole). Each method returns the HTTP status it wrote, for the log.
struct Exchange: ~Copyable {
    var writer: ResponseWriter
    let format: GatewayRequest.Format

    init(writer: consuming ResponseWriter, format: GatewayRequest.Format) {
        self.writer = writer
        self.format = format
    }

    consuming func json(_ status: Int, _ value: JSONValue, headers: [(String, String)] = []) async throws -> Int {
        let body = ByteBuffer(string: value.serialized())
        var fields = Self.fields(headers)
        fields[.contentType] = "application/json"
        fields[.contentLength] = "\(body.readableBytes)"
        var out = try await writer.writeHead(HTTPResponse(status: .init(code: status), headerFields: fields))
        try await out.write(body)
        try await out.finish(nil)
        return status
    }

    consuming func error(_ error: any Error, headers: [(String, String)] = []) async throws -> Int {
        let failure = Self.gatewayError(error)
        return try await json(failure.status, Self.errorBody(failure, format: format), headers: headers + failure.headers)
    }

    static func fields(_ headers: [(String, String)]) -> HTTPFields {
        var fields = HTTPFields()
        for (name, value) in headers {
            if let name = HTTPField.Name(name) { fields.append(HTTPField(name: name, value: value)) }
        }
        return fields
    }

    /// The error body as each format's SDKs parse it.
    static func errorBody(_ error: GatewayError, format: GatewayRequest.Format) -> JSONValue {
        switch format {
        case .openAI:
            return ["error": ["message": .string(error.message), "type": .string(error.type), "param": .null, "code": error.code.map { .string($0) } ?? .null]]
        case .anthropic:
            let type: String
            switch error.status {
            case 400, 413, 422: type = error.status == 413 ? "request_too_large" : "invalid_request_error"
            case 401: type = "authentication_error"
            case 402, 403: type = "permission_error"
            case 404: type = "not_found_error"
            case 429: type = "rate_limit_error"
            case 503, 529: type = "overloaded_error"
            default: type = "api_error"
            }
            return ["type": "error", "error": ["type": .string(type), "message": .string(error.message)]]
        }
    }

    /// Any failure of a turn as an HTTP status the client's SDK acts on rightly: its own mistakes as
    /// 4xx (not retried), a budget as 402, an upstream rate limit as 429, the rest as 502/503/504.
    static func gatewayError(_ error: any Error) -> GatewayError {
        if let error = error as? GatewayError { return error }
        let message = hidingAddresses(describe(error))
        if error is BudgetRefusal || error is UnpricedModelRefusal {
            return GatewayError(status: 402, message: message, type: "insufficient_quota", code: "budget_exceeded")
        }
        if error is SharedBudgetUnavailable {
            return GatewayError(status: 503, message: message, type: "server_error", code: "budget_unavailable")
        }
        if let error = error as? ProviderError {
            switch error.kind {
            case .http:
                let status = error.status ?? 502
                if error.isContextOverflow { return GatewayError(status: 400, message: message, type: "invalid_request_error", code: "context_length_exceeded") }
                if [400, 404, 413, 422].contains(status) { return GatewayError(status: status, message: message, type: "invalid_request_error", code: "upstream_rejected") }
                if status == 429 {
                    var failure = GatewayError(status: 429, message: message, type: "rate_limit_error", code: "rate_limited")
                    if let wait = error.retryAfter { failure.headers = [("retry-after", "\(Int(wait.rounded(.up)))")] }
                    return failure
                }
                if status == 529 || status == 503 { return GatewayError(status: 503, message: message, type: "server_error", code: "upstream_overloaded") }
                return GatewayError(status: 502, message: message, type: "server_error", code: "upstream_error")
            case .connectTimeout, .firstTokenTimeout, .idleTimeout, .totalTimeout:
                return GatewayError(status: 504, message: message, type: "server_error", code: "upstream_timeout")
            case .missingKey:
                return GatewayError(status: 502, message: message, type: "server_error", code: "upstream_key_missing")
            default:
                return GatewayError(status: 502, message: message, type: "server_error", code: "upstream_error")
            }
        }
        if error is any UserFacingError {
            return GatewayError(status: 502, message: message, type: "server_error", code: "upstream_error")
        }
        return GatewayError(status: 500, message: message, type: "server_error", code: nil)
    }

    /// Clients see why a request failed, not where the gateway's upstreams and database live: every
    /// `scheme://…` address in a message becomes `(address hidden)`. The gateway's own log keeps nothing
    /// more either; `parley models` and the operator's config say where things are.
    static func hidingAddresses(_ message: String) -> String {
        var out = ""
        var rest = Substring(message)
        while let range = rest.range(of: "://") {
            var start = range.lowerBound
            while start > rest.startIndex, let previous = rest[rest.index(before: start)].asciiValue,
                  (previous >= 0x61 && previous <= 0x7A) || (previous >= 0x41 && previous <= 0x5A) || previous == 0x2B {
                start = rest.index(before: start)
            }
            guard start < range.lowerBound else {
                out += rest[..<range.upperBound]
                rest = rest[range.upperBound...]
                continue
            }
            var end = range.upperBound
            while end < rest.endIndex, !" \t\n'\")]>,;".contains(rest[end]) { end = rest.index(after: end) }
            out += rest[..<start] + "(address hidden)"
            rest = rest[end...]
        }
        return out + rest
    }

    // MARK: - Answers

    /// Holds everything back until the model has produced content: until then a failure (after the
    /// turn's retries and fallbacks) is still an HTTP error status. Then streams, or answers whole.
    consuming func answer(_ request: GatewayRequest, primary: ModelRef, events: AsyncThrowingStream<TurnEvent, any Error>) async throws -> Int {
        var iterator = events.makeAsyncIterator()
        var state = AnswerState(model: primary)
        var held: [ChatEvent] = []
        var failure: (any Error)?
        var contentStarted = false
        while !(contentStarted && request.stream) {
            let event: TurnEvent?
            do { event = try await iterator.next() } catch {
                failure = error
                break
            }
            guard let event else { break }
            if let chat = state.take(event) {
                held.append(chat)
                if case .textDelta = chat { contentStarted = true }
                if case .toolCallDelta = chat { contentStarted = true }
            }
        }
        if let failure, !(contentStarted && request.stream) { return try await error(failure, headers: state.headers) }
        if !request.stream {
            guard let result = state.result else { return 0 }  // the client went away
            return try await json(200, Self.whole(result, request: request), headers: state.headers + [("x-parley-cost-usd", result.cost.map { String(format: "%.6f", $0) } ?? "unknown")])
        }
        guard contentStarted || state.result != nil else { return 0 }
        var fields = Self.fields(state.headers)
        fields[.contentType] = "text/event-stream"
        fields[.cacheControl] = "no-cache"
        var out = try await writer.writeHead(HTTPResponse(status: .ok, headerFields: fields))
        var encoder = StreamEncoder(format: request.format, includeUsage: request.includeUsage, model: state.model)
        try await out.write(ByteBuffer(string: encoder.start() + held.map { encoder.encode($0) }.joined()))
        do {
            while let event = try await iterator.next() {
                guard let chat = state.take(event) else { continue }
                let text = encoder.encode(chat)
                if !text.isEmpty { try await out.write(ByteBuffer(string: text)) }
            }
            guard let result = state.result else { return 200 }  // the client went away
            try await out.write(ByteBuffer(string: encoder.end(result)))
        } catch {
            // After content has started the status is sent; the stream ends with an error event the SDKs raise.
            try await out.write(ByteBuffer(string: encoder.failure(Self.gatewayError(error))))
        }
        try await out.finish(nil)
        return 200
    }

    /// A non-streamed answer in the client's format.
    static func whole(_ result: TurnResult, request: GatewayRequest) -> JSONValue {
        let reply = result.reply
        let calls = reply.toolCalls.calls
        let usage = reply.usage
        let prompt = usage?.totalPromptTokens ?? 0, completion = usage?.completionTokens ?? reply.completionTokens
        switch request.format {
        case .openAI:
            var message: [(String, JSONValue)] = [("role", "assistant"), ("content", reply.text.isEmpty && !calls.isEmpty ? .null : .string(reply.text))]
            if !calls.isEmpty {
                message.append(("tool_calls", .array(calls.map { call in
                    ["id": .string(call.id), "type": "function", "function": ["name": .string(call.name), "arguments": .string(call.arguments)]]
                })))
            }
            return ["id": .string("chatcmpl-" + StreamEncoder.randomID()), "object": "chat.completion", "created": .number(Date().timeIntervalSince1970.rounded(.down)),
                    "model": .string(result.model.description),
                    "choices": [["index": 0, "message": .object(message), "finish_reason": .string(StreamEncoder.openAIFinish(reply.finishReason, calls: !calls.isEmpty))]],
                    "usage": ["prompt_tokens": .number(Double(prompt)), "completion_tokens": .number(Double(completion)), "total_tokens": .number(Double(prompt + completion))]]
        case .anthropic:
            var content: [JSONValue] = []
            if !reply.text.isEmpty { content.append(["type": "text", "text": .string(reply.text)]) }
            for call in calls {
                content.append(["type": "tool_use", "id": .string(call.id), "name": .string(call.name), "input": (try? JSONValue.parse(call.arguments)) ?? [:]])
            }
            return ["id": .string("msg_" + StreamEncoder.randomID()), "type": "message", "role": "assistant", "model": .string(result.model.description),
                    "content": .array(content), "stop_reason": .string(StreamEncoder.anthropicStop(reply.finishReason, calls: !calls.isEmpty)), "stop_sequence": .null,
                    "usage": ["input_tokens": .number(Double(prompt)), "output_tokens": .number(Double(completion))]]
        }
    }
}

/// What the turn said about itself before and while the reply came: which model, a fallback, a cache hit.
struct AnswerState {
    var model: ModelRef
    var fellBackFrom: ModelRef?
    var cacheHit = false
    var result: TurnResult?

    init(model: ModelRef) { self.model = model }

    /// Notes the turn's own events; returns the reply's events a client sees.
    mutating func take(_ event: TurnEvent) -> ChatEvent? {
        switch event {
        case let .fallingBack(from, to, _):
            if fellBackFrom == nil { fellBackFrom = from }
            model = to
        case let .sending(ref): model = ref
        case .cacheHit: cacheHit = true
        case let .finished(result):
            self.result = result
            model = result.model
        case let .chat(chat):
            switch chat {
            case .textDelta, .toolCallDelta, .finish, .usage: return chat
            default: return nil
            }
        case .cost, .firstToken, .trimmed: break
        }
        return nil
    }

    var headers: [(String, String)] {
        // The connection closes after a chat answer (watching it for a client that leaves consumes its
        // inbound side), so clients are told not to send another request on it.
        var headers = [("x-parley-model", model.description), ("x-parley-cache", cacheHit ? "hit" : "miss"), ("connection", "close")]
        if let fellBackFrom { headers.append(("x-parley-fallback-from", fellBackFrom.description)) }
        return headers
    }
}
