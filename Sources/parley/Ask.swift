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
        var reply = ReplyAccumulator()
        var summary = AskSummary()
        var printedAny = false
        let options = TurnOptions(cache: cache, requestLimit: budget, fallback: fallback)
        do {
            let showRetries = stats || isatty(STDERR_FILENO) == 1
            for try await event in engine.turn(request, model: ref, options: options) {
                switch event {
                case let .chat(event):
                    reply.add(event)
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
                case .sending:
                    reply = ReplyAccumulator()
                case .cacheHit:
                    summary.cached = true
                case let .cost(cost):
                    summary.cost = cost
                }
            }
        } catch {
            if printedAny { out.write("\n") }
            if stats { printStats(reply, ref: ref, summary: summary) }
            throw error
        }
        let end = ContinuousClock.now
        if json {
            out.write(jsonReport(reply, ref: ref, summary: summary, end: end).serialized() + "\n")
        } else if printedAny, !reply.text.hasSuffix("\n") {
            out.write("\n")
        }
        if stats { printStats(reply, ref: ref, summary: summary, end: end) }
        for problem in engine.stores.takeProblems() { Terminal.standardError.say("parley: \(problem)\n") }
    }

    /// What the turn said besides the reply: who failed before, the cost, a cache hit.
    struct AskSummary {
        var failures: [SessionMessage.FailedAttempt] = []
        var cost: Double?
        var cached = false
    }

    func jsonReport(_ reply: ReplyAccumulator, ref: ModelRef, summary: AskSummary, end: ContinuousClock.Instant) -> JSONValue {
        var members: [(String, JSONValue)] = [
            ("text", .string(reply.text)),
            ("provider", .string(ref.provider)),
            ("model", .string(ref.model)),
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
        members.append(("time_to_first_token_ms", reply.timeToFirstToken.map { .number(round($0.milliseconds * 10) / 10) } ?? .null))
        members.append(("total_ms", .number(round(reply.totalDuration(until: end).milliseconds * 10) / 10)))
        members.append(("tokens_per_second", reply.tokensPerSecond(until: end).map { .number(round($0 * 10) / 10) } ?? .null))
        members.append(("finish_reason", reply.finishReason.map { .string($0.rawValue) } ?? .null))
        members.append(("cost_usd", summary.cost.map { .number($0) } ?? .null))
        members.append(("cached", .bool(summary.cached)))
        members.append(("failed_attempts", .array(summary.failures.map { ["model": .string($0.model), "error": .string($0.error)] })))
        return .object(members)
    }

    func printStats(_ reply: ReplyAccumulator, ref: ModelRef, summary: AskSummary, end: ContinuousClock.Instant = .now) {
        var parts = ["\(ref)"]
        if let ttft = reply.timeToFirstToken { parts.append(String(format: "first token %.0f ms", ttft.milliseconds)) }
        if let rate = reply.tokensPerSecond(until: end) { parts.append(String(format: "%.1f tok/s", rate)) }
        if let usage = reply.usage { parts.append("in \(usage.totalPromptTokens) / out \(usage.completionTokens) tokens") }
        parts.append(String(format: "total %.0f ms", reply.totalDuration(until: end).milliseconds))
        if let reason = reply.finishReason { parts.append("finish \(reason.rawValue)") }
        parts.append("cost \(formatDollars(summary.cost))" + (summary.cached ? " (cached)" : ""))
        Terminal.standardError.say(parts.joined(separator: " · ") + "\n")
    }
}
