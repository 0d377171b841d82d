import Foundation
import ParleyCore

/// Prompt tokens estimated before sending, for budgets (no tokenizer for every provider can be shipped).
/// Method: UTF-8 bytes / 4 for each message's text, plus a fixed overhead per message for the chat
/// template's role markers, plus the reply primer. Calibrated against the usage SmolLM2 (llama.cpp) and
/// recorded OpenAI/Anthropic fixtures reported; the measured error is in the README
/// (`parley-bench estimate`). Budgets use the worst case, so an estimate a little high is the safe side.
public enum TokenEstimator {
    public static let bytesPerToken = 4.0
    public static let perMessageOverhead = 5
    public static let replyPrimer = 3

    public static func estimate(_ request: ChatRequest) -> Int {
        var tokens = replyPrimer
        var texts = request.messages.map { $0.content + $0.toolCalls.map { $0.name + $0.arguments }.joined() }
        if let system = request.system, !system.isEmpty { texts.append(system) }
        for tool in request.tools { texts.append(tool.name + tool.description + tool.parametersJSON) }
        for text in texts { tokens += perMessageOverhead + Int((Double(text.utf8.count) / bytesPerToken).rounded(.up)) }
        return tokens
    }
}
