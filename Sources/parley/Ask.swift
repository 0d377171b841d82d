import ArgumentParser
import Foundation
import ParleyCore
import ParleyKit
import ParleyProviders

/// `parley ask`: the engine without the screen, streaming one answer to stdout.
struct Ask: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask one question and stream the answer to stdout.",
        discussion: "The prompt comes from the arguments, from stdin, or both (stdin is appended after a blank line)."
    )

    @Argument(help: "The prompt. Read from stdin when stdin is not a terminal.")
    var prompt: [String] = []

    @Option(name: .shortAndLong, help: "provider:model, an alias, or a provider name (default: the config's default_model, or local).")
    var model: String?

    @Option(name: .shortAndLong, help: "A system prompt.")
    var system: String?

    @Option(help: "Sampling temperature.")
    var temperature: Double?

    @Option(name: .customLong("max-tokens"), help: "Most tokens to generate.")
    var maxTokens: Int?

    @Flag(help: "Print one JSON object (text, provider, model, usage, timings, finish reason) instead of streaming.")
    var json = false

    @Flag(help: "Print time to first token, tokens/s and token counts to stderr.")
    var stats = false

    @Flag(help: "Strip terminal control sequences even when stdout is not a terminal.")
    var sanitize = false

    @Flag(help: "Print the estimated prompt tokens and the worst-case cost (prompt + max output), and send nothing.")
    var estimate = false

    @Flag(inversion: .prefixedNo, help: "Try the config's fallback chain when the model fails (rate limit, overload, network, missing key).")
    var fallback = true

    @Option(help: "Refuse, before sending, when this request could cost more than this many US dollars.")
    var budget: Double?

    @Flag(inversion: .prefixedNo, help: "Answer from the response cache, and store the answer there (default: the config's [cache] enabled).")
    var cache: Bool?

    func run() async throws {
        do {
            try await ask()
        } catch let error as ExitCode {
            throw error
        } catch {
            throw fail(error)
        }
    }

    func readPrompt() throws -> String {
        var parts: [String] = []
        if !prompt.isEmpty { parts.append(prompt.joined(separator: " ")) }
        if isatty(STDIN_FILENO) == 0 {
            let data = FileHandle.standardInput.readDataToEndOfFile()
            let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if !text.isEmpty { parts.append(text) }
        }
        let text = parts.joined(separator: "\n\n")
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw ValidationError("no prompt: pass it as an argument (parley ask \"...\") or on stdin")
        }
        return text
    }

    func ask() async throws {
        if let temperature, !(0...2).contains(temperature) { throw ValidationError("--temperature must be between 0 and 2") }
        if let maxTokens, maxTokens < 1 { throw ValidationError("--max-tokens must be at least 1") }
        let text = try readPrompt()
        if let budget, budget < 0 { throw ValidationError("--budget must be at least 0") }
        let engine = try ChatEngine.fromEnvironment()
        var ref = try engine.config.resolve(model ?? engine.defaultModelName)
        let request = ChatRequest(
            model: ref.model, system: system, messages: [.user(text)], temperature: temperature ?? engine.config.temperature, maxTokens: maxTokens
        )
        if estimate {
            Terminal.standardOutput.line(engine.estimate(request, model: ref).summary)
            return
        }
        let out = Terminal.standardOutput
        var sanitizer: TerminalSanitizer? = (sanitize || out.isTerminal) && !json ? TerminalSanitizer() : nil
        var summary = AskSummary()
        var printedAny = false
        let options = TurnOptions(cache: cache, requestLimit: budget, fallback: fallback)
        do {
            let showRetries = stats || isatty(STDERR_FILENO) == 1
            for try await event in engine.turn(request, model: ref, options: options) {
                switch event {
                case let .chat(event):
                    if stats, case let .rateLimit(limits) = event, limits.isLow {
                        Terminal.standardError.say("parley: \(ref.provider): \(limits.summary)\n")
                    }
                    if showRetries, case let .retrying(attempt, of, delay, reason) = event {
                        Terminal.standardError.say(String(format: "parley: %@: %@; retrying in %.1f s (retry %d of %d)\n",
                                                            ref.provider, reason, delay, attempt, of))
                    }
                    if !json, case let .textDelta(delta) = event {
                        let shown = sanitizer?.sanitize(delta) ?? delta
                        out.write(shown)
                        printedAny = true
                    }
                case let .fallingBack(from, to, reason):
                    // Always said: the answer comes from another model than the one asked for.
                    Terminal.standardError.say("parley: \(reason)\nparley: falling back from \(from) to \(to)\n")
                    summary.failures.append(.init(model: from.description, error: reason))
                    ref = to
                case let .finished(result):
                    summary.result = result
                case .sending, .cacheHit, .cost, .firstToken:
                    break
                }
            }
        } catch {
            if printedAny { out.write("\n") }
            if stats, let result = summary.result { printStats(result, summary: summary) }
            throw error
        }
        guard let result = summary.result else { return }
        if json {
            out.write(jsonReport(result, summary: summary).serialized() + "\n")
        } else if printedAny, !result.reply.text.hasSuffix("\n") {
            out.write("\n")
        }
        if stats { printStats(result, summary: summary) }
        for problem in engine.stores.takeProblems() { Terminal.standardError.say("parley: \(problem)\n") }
    }

    /// What the turn said besides the reply: who failed before, and the turn's own fold of the reply.
    struct AskSummary {
        var failures: [SessionMessage.FailedAttempt] = []
        var result: TurnResult?
    }

    func jsonReport(_ result: TurnResult, summary: AskSummary) -> JSONValue {
        let reply = result.reply
        var members: [(String, JSONValue)] = [
            ("text", .string(reply.text)),
            ("provider", .string(result.model.provider)),
            ("model", .string(result.model.model)),
        ]
        if let usage = reply.usage {
            members.append(("usage", [
                "prompt_tokens": .number(Double(usage.promptTokens)),
                "completion_tokens": .number(Double(usage.completionTokens)),
                "cached_tokens": .number(Double(usage.cachedTokens)),
                "cache_write_tokens": .number(Double(usage.cacheWriteTokens)),
                "accounting": .string(usage.accounting.rawValue),
            ]))
        } else {
            members.append(("usage", .null))
        }
        if !reply.toolCalls.calls.isEmpty {
            members.append(("tool_calls", .array(reply.toolCalls.calls.map {
                ["id": .string($0.id), "name": .string($0.name), "arguments": .string($0.arguments)]
            })))
        }
        members.append(("time_to_first_token_ms", result.timeToFirstTokenMs.map { .number(round($0 * 10) / 10) } ?? .null))
        members.append(("total_ms", .number(round(result.durationMs * 10) / 10)))
        members.append(("tokens_per_second", result.tokensPerSecond.map { .number(round($0 * 10) / 10) } ?? .null))
        members.append(("finish_reason", reply.finishReason.map { .string($0.rawValue) } ?? .null))
        members.append(("cost_usd", result.cost.map { .number($0) } ?? .null))
        members.append(("cached", .bool(result.fromCache)))
        members.append(("failed_attempts", .array(summary.failures.map { ["model": .string($0.model), "error": .string($0.error)] })))
        return .object(members)
    }

    func printStats(_ result: TurnResult, summary: AskSummary) {
        var parts = ["\(result.model)"]
        if let ttft = result.timeToFirstTokenMs { parts.append(String(format: "first token %.0f ms", ttft)) }
        if let rate = result.tokensPerSecond { parts.append(String(format: "%.1f tok/s", rate)) }
        if let usage = result.reply.usage { parts.append("in \(usage.totalPromptTokens) / out \(usage.completionTokens) tokens") }
        parts.append(String(format: "total %.0f ms", result.durationMs))
        if let reason = result.reply.finishReason { parts.append("finish \(reason.rawValue)") }
        parts.append("cost \(formatDollars(result.cost))" + (result.fromCache ? " (cached)" : ""))
        Terminal.standardError.say(parts.joined(separator: " · ") + "\n")
    }
}
