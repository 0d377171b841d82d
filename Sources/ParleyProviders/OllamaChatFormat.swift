import Foundation
import ParleyCore

/// Ollama's native `/api/chat`: newline-delimited JSON, ending with an object whose `done` is true.
public enum OllamaChatFormat {
    public static func makeRequest(_ request: ChatRequest, baseURL: String, extraHeaders: [(String, String)] = []) throws -> HTTPRequestSpec {
        var messages: [JSONValue] = []
        if let system = request.combinedSystemPrompt { messages.append(["role": "system", "content": .string(system)]) }
        for message in request.messages where message.role != .system {
            var members: [(String, JSONValue)] = [("role", .string(message.role.rawValue)), ("content", .string(message.content))]
            if !message.toolCalls.isEmpty {
                members.append(("tool_calls", .array(message.toolCalls.map { call in
                    ["function": ["name": .string(call.name), "arguments": (try? JSONValue.parse(call.arguments)) ?? [:]]]
                })))
            }
            messages.append(.object(members))
        }
        var options: [(String, JSONValue)] = []
        if let temperature = request.temperature { options.append(("temperature", .number(temperature))) }
        if let seed = request.seed { options.append(("seed", .number(Double(seed)))) }
        if let maxTokens = request.maxTokens { options.append(("num_predict", .number(Double(maxTokens)))) }
        var members: [(String, JSONValue)] = [
            ("model", .string(request.model)), ("messages", .array(messages)), ("stream", true),
        ]
        if !options.isEmpty { members.append(("options", .object(options))) }
        switch request.responseFormat {
        case nil: break
        case .jsonObject: members.append(("format", "json"))
        case let .jsonSchema(_, schema, _): members.append(("format", schema))
        }
        if !request.tools.isEmpty {
            members.append(("tools", .array(try request.tools.map { tool in
                ["type": "function", "function": [
                    "name": .string(tool.name), "description": .string(tool.description),
                    "parameters": try tool.parameters(),
                ]]
            })))
        }
        return HTTPRequestSpec(
            url: joinURL(baseURL, "api/chat"),
            headers: HeaderFields([("Content-Type", "application/json"), ("Accept", "application/x-ndjson")] + extraHeaders),
            body: Array(JSONValue.object(members).serialized().utf8)
        )
    }

    public struct Decoder: ChatStreamDecoder {
        public let provider: String
        private var lines: NDJSONDecoder
        private var nextToolIndex = 0
        public private(set) var sawTerminator = false

        public init(provider: String, limits: StreamLimits = .standard) {
            self.provider = provider
            lines = NDJSONDecoder(maxLineBytes: limits.maxEventBytes)
        }

        /// Nothing after the `done` line is read; lines completed before an over-long one are handled first.
        public mutating func feed(_ bytes: UnsafeRawBufferPointer, emit: (ChatEvent) -> Void) throws {
            guard !sawTerminator else { return }
            var complete: [[UInt8]] = []
            var overLimit: StreamLimitExceeded?
            do { try lines.feed(bytes, into: &complete) } catch let error as StreamLimitExceeded { overLimit = error }
            for line in complete where !sawTerminator {
                try handle(line, emit: emit)
            }
            if let overLimit, !sawTerminator { throw overLimit.providerError(provider: provider) }
        }

        /// The last line may come without its newline: it is handled, not taken for a cut-off stream.
        public mutating func finish(emit: (ChatEvent) -> Void) throws {
            if !sawTerminator { for line in lines.finish() where !sawTerminator { try handle(line, emit: emit) } }
            if !sawTerminator { throw ProviderError.cutOff(provider: provider) }
        }

        private mutating func handle(_ line: [UInt8], emit: (ChatEvent) -> Void) throws {
            guard let json = try? JSONValue.parse(line) else {
                throw ProviderError.malformed(provider: provider, data: String(decoding: line, as: UTF8.self))
            }
            if let error = json["error"], !error.isNull {
                emit(.error(.inStream(json, provider: provider)))
                return
            }
            if let message = json["message"] {
                if let thinking = message["thinking"]?.string, !thinking.isEmpty { emit(.thinkingDelta(thinking)) }
                if let text = message["content"]?.string, !text.isEmpty { emit(.textDelta(text)) }
                for call in message["tool_calls"]?.array ?? [] {
                    let function = call["function"]
                    let arguments = function?["arguments"].map { $0.string ?? $0.serialized() } ?? "{}"
                    emit(.toolCallDelta(ToolCallDelta(
                        index: nextToolIndex, id: call["id"]?.string ?? "call_\(nextToolIndex)",
                        name: function?["name"]?.string, argumentsFragment: arguments
                    )))
                    nextToolIndex += 1
                }
            }
            if json["done"]?.bool == true {
                sawTerminator = true
                emit(.finish(FinishReason(providerValue: json["done_reason"]?.string ?? "stop")))
                let counts = TokenCounts(json, field: "", provider: provider)
                emit(.usage(Usage(
                    promptTokens: try counts["prompt_eval_count"] ?? 0,
                    completionTokens: try counts["eval_count"] ?? 0,
                    accounting: .cachedInsidePrompt
                )))
                // Durations are in nanoseconds.
                let evalNanos = json["eval_duration"]?.double
                let evalCount = json["eval_count"]?.double
                emit(.timings(ServerTimings(
                    promptMilliseconds: json["prompt_eval_duration"]?.double.map { $0 / 1e6 },
                    predictedMilliseconds: evalNanos.map { $0 / 1e6 },
                    predictedPerSecond: (evalNanos.flatMap { n in evalCount.map { c in n > 0 && c >= 0 ? c / (n / 1e9) : 0 } })
                )))
            }
        }
    }
}
