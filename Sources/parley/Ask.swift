import ArgumentParser
import Foundation
import ParleyCore
import ParleyKit
import ParleyProviders

/// `parley ask`: the engine without the screen, streaming one answer to stdout.
struct Ask: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ask",
        abstract: "Ask one question and stream the answer to stdout.",
        discussion: "The prompt comes from the arguments, from stdin, or both (stdin is appended after a blank line)."
    )

    @Argument(help: "The prompt. Read from stdin when stdin is not a terminal.")
    var prompt: [String] = []

    @Option(name: .shortAndLong, help: "provider:model, an alias, or a provider name (default: the config's default_model, or local).",
            completion: Completions.models)
    var model: String?

    @Option(name: .shortAndLong, help: "A system prompt.")
    var system: String?

    @Option(help: "Sampling temperature.")
    var temperature: Double?

    @Option(name: .customLong("max-tokens"), help: "Most tokens to generate.")
    var maxTokens: Int?

    @Option(help: "Sampling seed (OpenAI-compatible servers and Ollama; Anthropic has none).")
    var seed: Int?

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

    @Option(help: "Answer with JSON matching this schema: JSON Schema (inline or a file) or fields like 'name, age int, bio: a short bio'.")
    var schema: String?

    @Option(name: .customLong("schema-multi"), help: "Like --schema, for a list of such objects: {\"items\": [...]}.")
    var schemaMulti: String?

    @Flag(name: .customLong("json-mode"), help: "Answer with any JSON object.")
    var jsonMode = false

    @Option(help: "How many times an answer that does not match the schema is asked again, with its violations.")
    var reask = 1

    @Option(name: [.customShort("t"), .customLong("template")], help: "Use the prompt template NAME (see `parley templates list`).",
            completion: Completions.templates)
    var template: String?

    @Option(name: .customLong("var"), help: "A template variable, KEY=VALUE (repeatable); stdin and the prompt become `input`.")
    var vars: [String] = []

    @Option(help: "Tool calls from MCP servers ([mcp.servers]): auto runs every server's tools without asking (except approve = \"never\"), never offers none. Default: only servers with approve = \"auto\". ask never prompts.")
    var approve: ToolApproval?

    @Flag(help: "Print which model `-m auto` would pick, by which [router] rule, and its estimated cost; send nothing.")
    var explain = false

    func run() async throws {
        do {
            try await ask()
        } catch let error as ExitCode {
            throw error
        } catch let error as StandardOutputFailed where error.readerLeft {
            throw ExitCode(128 + SIGPIPE)
        } catch {
            throw fail(error)
        }
    }

    /// The prompt arguments and stdin, joined by a blank line; nil when there is neither and none is `required`.
    func readPrompt(required: Bool) throws -> String? {
        var parts: [String] = []
        if !prompt.isEmpty { parts.append(prompt.joined(separator: " ")) }
        if isatty(STDIN_FILENO) == 0 {
            let text = try Terminal.readStandardInput().trimmingCharacters(in: .whitespacesAndNewlines)
            if !text.isEmpty { parts.append(text) }
        }
        let text = parts.joined(separator: "\n\n")
        if !required, text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return nil }
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw ValidationError("no prompt: pass it as an argument (parley ask \"...\") or on stdin")
        }
        return text
    }

    /// Exit status when the input guard refuses to send.
    static let guardStatus: Int32 = 5

    /// The `[guard]` checks on what this run sends: findings on stderr, then as `injection` says;
    /// a request too large for the model as `on_oversize` says. "ask" asks on the terminal, and refuses
    /// when there is none to ask on.
    func guardInput(_ text: String, request: inout ChatRequest, ref: ModelRef, engine: ChatEngine) throws {
        let settings = engine.config.inputGuard
        if settings.injection != .off {
            let findings = InputGuard.scan(text, settings: settings)
            for finding in findings { Terminal.standardError.say("parley: guard: \(finding.line)\n") }
            if !findings.isEmpty {
                switch settings.injection {
                case .off, .flag: break
                case .refuse:
                    Terminal.standardError.say("parley: \(GuardRefusal(findings: findings, why: "injection = \"refuse\" under [guard]").userMessage)\n")
                    throw ExitCode(Self.guardStatus)
                case .ask:
                    guard Self.confirm("send it anyway? [y/N] ") else {
                        Terminal.standardError.say("parley: \(GuardRefusal(findings: findings, why: isatty(STDIN_FILENO) == 1 ? "not confirmed" : "injection = \"ask\" and there is no terminal to ask on").userMessage)\n")
                        throw ExitCode(Self.guardStatus)
                    }
                }
            }
        }
        do {
            // `context = "trim"` (or "compact", which needs a saved session to anchor a summary: `ask` has
            // none, so it trims) for the model or under [context] lets the oldest go, as on the screen.
            let trim = settings.onOversize == .truncate || (engine.config.models[ref]?.context ?? engine.config.context.policy).map { $0 != .refuse } == true
            let fitted = try engine.fitInput(request, ref: ref, allowTruncate: trim)
            request = fitted.request
            if fitted.dropped > 0 { Terminal.standardError.say("parley: guard: dropped the \(fitted.dropped) oldest messages to fit \(ref)\n") }
        } catch {
            guard settings.onOversize == .ask, Self.confirm("\(error.userMessage)\ndrop the oldest messages to fit? [y/N] ") else {
                Terminal.standardError.say("parley: \(error.userMessage)\n")
                throw ExitCode(Self.guardStatus)
            }
            request = try engine.fitInput(request, ref: ref, allowTruncate: true).request
        }
    }

    /// A yes from the controlling terminal; false when stdin is not one.
    static func confirm(_ question: String) -> Bool {
        guard isatty(STDIN_FILENO) == 1 else { return false }
        Terminal.standardError.say("parley: " + question)
        let answer = readLine()?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
        return answer == "y" || answer == "yes"
    }

    /// Exit status when the answer still does not match the schema after the re-asks.
    static let invalidStatus: Int32 = 3
    /// Exit status when the output limit cut the JSON answer off.
    static let truncatedStatus: Int32 = 4

    func structuredOutput(template: PromptTemplate?) throws -> StructuredOutput? {
        let chosen = [schema != nil, schemaMulti != nil, jsonMode].filter { $0 }.count
        if chosen > 1 { throw ValidationError("use one of --schema, --schema-multi and --json-mode") }
        if reask < 0 || reask > 10 { throw ValidationError("--reask must be between 0 and 10") }
        if let spec = schema ?? schemaMulti { return try StructuredOutput(spec: spec, multi: schemaMulti != nil) }
        if jsonMode { return StructuredOutput(jsonMode: ()) }
        if let template, let spec = template.schema {
            do { return try StructuredOutput(spec: spec, baseDirectory: template.file.deletingLastPathComponent()) } catch {
                throw TemplateError(file: template.file, line: nil, message: "schema: \(error.userMessage)")
            }
        }
        return nil
    }

    /// The template's system prompt, then `--system`.
    static func joinedSystem(_ parts: String?...) -> String? {
        let text = parts.compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: "\n\n")
        return text.isEmpty ? nil : text
    }

    /// `--var KEY=VALUE` pairs; a key given twice is an error.
    static func parseVars(_ pairs: [String]) throws -> [String: String] {
        var values: [String: String] = [:]
        for pair in pairs {
            guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
                throw ValidationError("--var \(TerminalSanitizer.line(pair, limit: 80)): write KEY=VALUE")
            }
            let key = String(pair[..<equals])
            guard key != "input" else { throw ValidationError("--var input: `input` is the prompt and stdin; pass it that way") }
            guard values.updateValue(String(pair[pair.index(after: equals)...]), forKey: key) == nil else {
                throw ValidationError("--var \(TerminalSanitizer.line(key, limit: 80)) is given twice")
            }
        }
        return values
    }

    func ask() async throws {
        if let temperature, !(0...2).contains(temperature) { throw ValidationError("--temperature must be between 0 and 2") }
        if let maxTokens, maxTokens < 1 { throw ValidationError("--max-tokens must be at least 1") }
        let engine = try ChatEngine.fromEnvironment()
        let values = try Self.parseVars(vars)
        if template == nil, !values.isEmpty { throw ValidationError("--var needs a template (-t NAME)") }
        let chosenTemplate = try template.map { try TemplateLibrary(paths: engine.paths).load($0) }
        let structured = try structuredOutput(template: chosenTemplate)
        if let budget, budget < 0 { throw ValidationError("--budget must be at least 0") }
        var request: ChatRequest
        let requested = model ?? chosenTemplate?.model ?? engine.defaultModelName
        let routing = requested == "auto" || explain
        var ref = try engine.config.resolve(routing ? engine.config.routerDefault : requested)
        let userText: String
        if let chosenTemplate {
            let input = try readPrompt(required: chosenTemplate.prompt == nil)
            let rendered = try chosenTemplate.render(values: values, input: input)
            userText = rendered.prompt ?? ""
            request = ChatRequest(
                model: ref.model, system: Self.joinedSystem(rendered.system, system),
                messages: try rendered.messages(file: chosenTemplate.file), temperature: temperature ?? chosenTemplate.temperature ?? engine.config.temperature,
                maxTokens: maxTokens ?? chosenTemplate.maxTokens, responseFormat: structured?.format, seed: seed
            )
        } else {
            let text = try readPrompt(required: true) ?? ""
            userText = text
            request = ChatRequest(
                model: ref.model, system: system, messages: [.user(text)], temperature: temperature ?? engine.config.temperature,
                maxTokens: maxTokens, responseFormat: structured?.format, seed: seed
            )
        }
        if explain {
            if let model, model != "auto" { Terminal.standardOutput.line("(--model \(model) is used as given; with -m auto:)") }
            Terminal.standardOutput.line(try await Route.explain(request, template: template, engine: engine, json: json))
            return
        }
        var routeRule: String?
        if routing {
            let decision = try await engine.route(request, template: template, options: TurnOptions(requestLimit: budget))
            ref = decision.model
            request.model = ref.model
            routeRule = decision.rule
            Terminal.standardError.say("parley: \(decision.summary)\n")
        }
        try guardInput(userText, request: &request, ref: ref, engine: engine)
        if estimate {
            Terminal.standardOutput.line(engine.estimate(request, model: ref).summary)
            return
        }
        guard let structured else {
            if let tools = try await toolLoop(engine: engine, ref: ref) {
                try await turnWithTools(request, tools: tools, ref: &ref, engine: engine, routeRule: routeRule)
                return
            }
            let summary = try await turn(request, ref: &ref, engine: engine, streaming: true, routeRule: routeRule)
            finish(summary, engine: engine)
            return
        }
        if !structured.unchecked.isEmpty {
            Terminal.standardError.say("parley: not checked by Parley's validator: \(structured.unchecked.joined(separator: ", "))\n")
        }
        var reasks = 0
        while true {
            let summary = try await turn(request, ref: &ref, engine: engine, streaming: false, routeRule: routeRule)
            guard let result = summary.result else { return }
            let check = structured.check(text: result.reply.text, finishReason: result.reply.finishReason)
            if case let .invalid(violations) = check, reasks < reask {
                reasks += 1
                Terminal.standardError.say("parley: the answer does not match the schema (\(violations.count) violation\(violations.count == 1 ? "" : "s"), first: \(violations[0])); asking again (\(reasks) of \(reask))\n")
                request.messages += [.assistant(StructuredOutput.echo(result.reply.text)), .user(StructuredOutput.reask(violations))]
                continue
            }
            try finishStructured(summary, result: result, check: check, reasks: reasks, engine: engine)
            return
        }
    }

    /// The tool loop when tools are to be offered: MCP servers configured, `--approve` not `never`, and
    /// some server allowed to run without asking (`approve = "auto"`, or all with `--approve auto`).
    func toolLoop(engine: ChatEngine, ref: ModelRef) async throws -> ToolLoop? {
        var settings = engine.config.mcp
        guard !settings.servers.isEmpty, approve != .never else { return nil }
        settings.servers = settings.servers.compactMap { server in
            var server = server
            if approve == .auto, server.approve == .ask { server.approve = .auto }
            return server.approve == .auto ? server : nil
        }
        guard !settings.servers.isEmpty else { return nil }
        guard engine.config.supportsTools(ref) else {
            Terminal.standardError.say("parley: \(ref) does not take tools (tools = false under [models.\"\(ref)\"], or the bundled model); answering without them\n")
            return nil
        }
        let hub = MCPHub(settings: settings, logDirectory: engine.paths.dataDirectory.appendingPathComponent("logs"), environment: engine.environment)
        let (tools, problems) = await hub.tools()
        for problem in problems { Terminal.standardError.say("parley: \(problem)\n") }
        guard !tools.isEmpty else { await hub.shutdown(); return nil }
        return ToolLoop(hub: hub, tools: tools, settings: settings)
    }

    /// Rounds of request and tool calls until the model answers: each call said on stderr, the answer
    /// streamed to stdout; the servers shut down at the end, however it ends.
    func turnWithTools(_ request: ChatRequest, tools: ToolLoop, ref: inout ModelRef, engine: ChatEngine, routeRule: String?) async throws {
        var loop = tools
        var request = request
        request.tools = loop.tools.map(\.definition)
        var total = 0.0
        var priced = true
        do {
            while true {
                let summary = try await turn(request, ref: &ref, engine: engine, streaming: true, routeRule: routeRule)
                guard let result = summary.result else { await loop.hub.shutdown(); return }
                if let cost = result.cost { total += cost } else { priced = false }
                let step = await loop.next(after: result.reply, approve: { _, _ in false }) { report in
                    let status = report.declined ? "declined" : report.outcome.isError ? "error" : "ok"
                    let name = report.tool?.name ?? TerminalSanitizer.line(String(report.call.name.prefix(80)))
                    let preview = TerminalSanitizer.line(String(report.outcome.text.prefix(160)))
                    Terminal.standardError.say("parley: tool \(name) \(TerminalSanitizer.line(String(report.call.arguments.prefix(200)))) → \(status) (\(Int(report.elapsed.milliseconds)) ms): \(preview)\n")
                }
                switch step {
                case .done:
                    await loop.hub.shutdown()
                    finish(summary, engine: engine)
                    if loop.rounds > 0 {
                        Terminal.standardError.say("parley: \(loop.rounds + 1) requests, \(loop.rounds) with tool calls; cost \(priced ? formatDollars(total) : "?")\n")
                    }
                    return
                case let .next(messages):
                    if summary.printedAny, !result.reply.text.hasSuffix("\n") { Terminal.standardOutput.write("\n") }
                    request.messages += messages
                case let .stopped(line):
                    await loop.hub.shutdown()
                    finish(summary, engine: engine)
                    Terminal.standardError.say("parley: \(line)\n")
                    throw ExitCode(1)
                }
            }
        } catch {
            await loop.hub.shutdown()
            throw error
        }
    }

    /// Prints the checked answer, or says why there is none, and exits with the documented status.
    func finishStructured(_ summary: AskSummary, result: TurnResult, check: StructuredCheck, reasks: Int, engine: ChatEngine) throws {
        let out = Terminal.standardOutput
        var violations: [JSONSchemaViolation] = []
        switch check {
        case let .valid(value):
            // The value that was checked, written by Parley: always valid JSON (whatever number forms the
            // model used), with terminal controls, bidi and zero-width characters as \u escapes.
            if !json { out.write(value.serialized() + "\n") }
        case let .invalid(found):
            violations = found
        case .truncated:
            break
        }
        if json {
            var report = jsonReport(result, summary: summary)
            if case var .object(members) = report {
                if case let .valid(value) = check { members.append(("json", value)) }
                members.append(("schema_valid", .bool(check.isValid)))
                members.append(("truncated", .bool(check == .truncated)))
                members.append(("reasks", .number(Double(reasks))))
                members.append(("violations", .array(violations.map { .string($0.description) })))
                report = .object(members)
            }
            out.write(report.serialized() + "\n")
        }
        if stats { printStats(result, summary: summary) }
        for problem in engine.stores.takeProblems() { Terminal.standardError.say("parley: \(problem)\n") }
        switch check {
        case .valid:
            return
        case .truncated:
            let limit = result.reply.usage.map { " after \($0.completionTokens) tokens" } ?? ""
            Terminal.standardError.say("parley: the answer was cut off by the output limit\(limit) before its JSON was complete; raise --max-tokens (or max_tokens in the config)\n")
            throw ExitCode(Self.truncatedStatus)
        case let .invalid(found):
            Terminal.standardError.say("parley: the answer does not match the schema after \(reasks) re-ask\(reasks == 1 ? "" : "s"):\n")
            for violation in found.prefix(50) { Terminal.standardError.say("  \(violation)\n") }
            if found.count > 50 { Terminal.standardError.say("  and \(found.count - 50) more\n") }
            throw ExitCode(Self.invalidStatus)
        }
    }

    /// One turn through the engine: retries and fallbacks said on stderr, the text streamed to stdout
    /// when `streaming`; `ref` becomes the model that answered.
    func turn(_ request: ChatRequest, ref: inout ModelRef, engine: ChatEngine, streaming: Bool, routeRule: String?) async throws -> AskSummary {
        let out = Terminal.standardOutput
        var sanitizer: TerminalSanitizer? = (sanitize || out.isTerminal) && !json ? TerminalSanitizer() : nil
        var summary = AskSummary()
        var options = TurnOptions(cache: cache, requestLimit: budget, fallback: fallback)
        options.routeRule = routeRule
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
                    if streaming, !json, case let .textDelta(delta) = event {
                        let shown = sanitizer?.sanitize(delta) ?? delta
                        if let failure = out.writeReporting(shown) { throw StandardOutputFailed(errno: failure) }
                        summary.printedAny = true
                    }
                case let .fallingBack(from, to, reason):
                    // Always said: the answer comes from another model than the one asked for.
                    Terminal.standardError.say("parley: \(reason)\nparley: falling back from \(from) to \(to)\n")
                    summary.failures.append(.init(model: from.description, error: reason))
                    ref = to
                case let .finished(result):
                    summary.result = result
                case let .trimmed(model, dropped):
                    Terminal.standardError.say("parley: the \(dropped) oldest messages are not sent to \(model), to fit its window\n")
                case .sending, .cacheHit, .cost, .firstToken:
                    break
                }
            }
        } catch {
            if summary.printedAny { out.write("\n") }
            if stats, let result = summary.result { printStats(result, summary: summary) }
            throw error
        }
        return summary
    }

    func finish(_ summary: AskSummary, engine: ChatEngine) {
        let out = Terminal.standardOutput
        guard let result = summary.result else { return }
        if json {
            out.write(jsonReport(result, summary: summary).serialized() + "\n")
        } else if summary.printedAny, !result.reply.text.hasSuffix("\n") {
            out.write("\n")
        }
        if stats { printStats(result, summary: summary) }
        for problem in engine.stores.takeProblems() { Terminal.standardError.say("parley: \(problem)\n") }
    }

    /// What the turn said besides the reply: who failed before, and the turn's own fold of the reply.
    struct AskSummary {
        var failures: [SessionMessage.FailedAttempt] = []
        var result: TurnResult?
        var printedAny = false
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

extension ToolApproval: ExpressibleByArgument {}
