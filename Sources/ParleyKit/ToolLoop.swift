import Foundation
import ParleyCore

/// The rounds of one turn with tools: after each reply that asks for tool calls, the calls are approved
/// or declined, run on their MCP servers, and their results become the messages of the next request,
/// until the model answers without asking, `max_tool_rounds` is reached, or it asks for the same call
/// again. Every round is a request through the engine's turn like any other (budget, ledger row,
/// retries, fallback); this only decides what the next round sends.
public struct ToolLoop: Sendable {
    public let hub: MCPHub
    public let tools: [OfferedTool]
    public let maxRounds: Int
    public private(set) var rounds = 0
    private var seen = Set<String>()

    /// What a call became.
    public struct CallReport: Sendable, Equatable {
        public var call: ToolCall
        /// nil when the model named a tool that is not offered.
        public var tool: OfferedTool?
        public var outcome: ToolOutcome
        public var declined: Bool
        public var elapsed: Duration
    }

    public enum Step: Sendable, Equatable {
        /// No tool calls: the reply is the answer.
        case done
        /// Send these messages after the conversation so far, and go on.
        case next([ChatMessage])
        /// Stopped, with the line that says why; the reply so far is the answer.
        case stopped(String)
    }

    public init(hub: MCPHub, tools: [OfferedTool], settings: MCPSettings) {
        self.hub = hub
        self.tools = tools
        maxRounds = settings.maxToolRounds
    }

    /// The step after `reply`. `approve` decides a call whose server says `approve = "ask"`; `report`
    /// hears each call as it ends (to show it and record it).
    public mutating func next(after reply: ReplyAccumulator, approve: (OfferedTool, ToolCall) async -> Bool,
                              starting: (OfferedTool?, ToolCall) -> Void = { _, _ in },
                              report: (CallReport) -> Void) async -> Step {
        let calls = reply.toolCalls.calls
        guard !calls.isEmpty else { return .done }
        rounds += 1
        if rounds > maxRounds {
            return .stopped("stopped: the model asked for tools \(maxRounds) rounds in a row (max_tool_rounds under [mcp])")
        }
        var messages = [ChatMessage(role: .assistant, content: reply.text, toolCalls: calls)]
        for call in calls {
            let key = call.name + "\u{0}" + Self.canonical(call.arguments)
            guard seen.insert(key).inserted else {
                return .stopped("stopped: the model asked for the same call again, \(TerminalSanitizer.line(String(call.name.prefix(80)))) \(TerminalSanitizer.line(String(call.arguments.prefix(120))))")
            }
        }
        for call in calls {
            var started = ContinuousClock.now
            guard let tool = tools.first(where: { $0.name == call.name }) else {
                starting(nil, call)
                let outcome = ToolOutcome(text: "there is no tool named \(TerminalSanitizer.line(String(call.name.prefix(80)))); the tools are: "
                                            + tools.map(\.name).joined(separator: ", "), isError: true)
                report(CallReport(call: call, tool: nil, outcome: outcome, declined: false, elapsed: .zero))
                messages.append(Self.resultMessage(call, outcome))
                continue
            }
            let allowed: Bool
            switch tool.approve {
            case .auto: allowed = true
            case .never: allowed = false
            case .ask: allowed = await approve(tool, call)
            }
            if Task.isCancelled { return .stopped("stopped") }
            started = ContinuousClock.now
            starting(tool, call)
            // (The hub cuts a long result to max_result_chars, saying so.)
            let outcome = allowed ? await hub.call(tool, arguments: call.arguments)
                : ToolOutcome(text: "the user declined to run this tool call", isError: true)
            report(CallReport(call: call, tool: tool, outcome: outcome, declined: !allowed, elapsed: ContinuousClock.now - started))
            messages.append(Self.resultMessage(call, outcome))
            if Task.isCancelled { return .stopped("stopped") }
        }
        return .next(messages)
    }

    /// A result as the tool message sent back; an error says so in its first word, since not every wire
    /// format has an error flag (Anthropic's `is_error` is set too).
    static func resultMessage(_ call: ToolCall, _ outcome: ToolOutcome) -> ChatMessage {
        ChatMessage(role: .tool, content: outcome.isError ? "ERROR: " + outcome.text : outcome.text, toolCallID: call.id,
                    isError: outcome.isError ? true : nil)
    }

    /// Arguments compared as JSON values, so spacing and key order do not make two calls differ.
    static func canonical(_ arguments: String) -> String {
        guard let value = try? JSONValue.parse(Array(arguments.utf8)) else { return arguments }
        return sorted(value).serialized()
    }

    private static func sorted(_ value: JSONValue) -> JSONValue {
        switch value {
        case let .object(members): return .object(members.map { ($0.0, sorted($0.1)) }.sorted { $0.0 < $1.0 })
        case let .array(items): return .array(items.map(sorted))
        default: return value
        }
    }
}
