import ArgumentParser
import Foundation
import ParleyCore
import ParleyKit

/// `parley route PROMPT`: where `-m auto` would send a prompt, and why; sends nothing.
struct Route: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "route",
        abstract: "Show which model `-m auto` picks for a prompt, by which [router] rule, and its estimated cost; sends nothing."
    )

    @Argument(help: "The prompt (else stdin).") var prompt: [String] = []
    @Option(help: "Route as if answering with this schema (see ask --schema).") var schema: String?
    @Option(name: [.customShort("t"), .customLong("template")], help: "Route as if using this template.", completion: Completions.templates) var template: String?
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        do {
            let engine = try ChatEngine.fromEnvironment()
            var text = prompt.joined(separator: " ")
            if isatty(STDIN_FILENO) == 0 {
                let input = try Terminal.readStandardInput().trimmingCharacters(in: .whitespacesAndNewlines)
                if !input.isEmpty { text += (text.isEmpty ? "" : "\n\n") + input }
            }
            guard !text.isEmpty else { throw ValidationError("no prompt: pass it as an argument or on stdin") }
            let format = try schema.map { try StructuredOutput(spec: $0).format }
            let request = ChatRequest(model: "", messages: [.user(text)], responseFormat: format)
            Terminal.standardOutput.line(try await Self.explain(request, template: template, engine: engine, json: json))
        } catch let error as ValidationError {
            throw error
        } catch {
            throw fail(error)
        }
    }

    /// The explanation `route` and `ask --explain` print: rule, model, what was skipped, and the
    /// estimated worst case next to the default model's.
    static func explain(_ request: ChatRequest, template: String?, engine: ChatEngine, json: Bool) async throws -> String {
        let decision = try await engine.route(request, template: template)
        var routed = request
        routed.model = decision.model.model
        let chosen = engine.estimate(routed, model: decision.model)
        let defaultRef = try engine.config.resolve(engine.config.routerDefault)
        var asDefault = request
        asDefault.model = defaultRef.model
        let baseline = engine.estimate(asDefault, model: defaultRef)
        if json {
            return JSONValue.object([
                ("rule", .string(decision.rule)),
                ("model", .string(decision.model.description)),
                ("skipped", .array(decision.skipped.map { ["model": .string($0.model.description), "reason": .string($0.reason)] })),
                ("prompt_tokens", .number(Double(chosen.promptTokens))),
                ("language", .string(decision.facts.language)),
                ("has_code", .bool(decision.facts.hasCode)),
                ("worst_case_usd", chosen.worstCase.map { .number($0) } ?? .null),
                ("default_model", .string(defaultRef.description)),
                ("default_worst_case_usd", baseline.worstCase.map { .number($0) } ?? .null),
            ]).serialized()
        }
        var lines = ["rule: \(decision.rule == "default" ? "none matched; the default" : decision.rule)",
                     "model: \(decision.model)"]
        for skip in decision.skipped { lines.append("skipped \(skip.model): \(skip.reason)") }
        lines.append("about \(chosen.promptTokens) prompt tokens; language \(decision.facts.language); \(decision.facts.hasCode ? "has code" : "no code")")
        lines.append("worst case \(chosen.worstCase.map(formatDollars) ?? "unknown") against \(baseline.worstCase.map(formatDollars) ?? "unknown") on the default model \(defaultRef)")
        lines.append("nothing was sent")
        return lines.joined(separator: "\n")
    }
}

/// `parley guard check FILE|-`: the input guard's findings as JSON.
struct GuardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "guard",
        abstract: "Check text with the input guard (prompt injection, fake role markers, invisible characters, hidden encodings).",
        subcommands: [Check.self]
    )

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "check", abstract: "Print the findings for FILE (or - for stdin) as JSON; exit 0 when there are none, 2 when there are.")

        @Argument(help: "A file, or - for stdin.") var file: String

        func run() throws {
            do {
                let settings = (try? ChatEngine.fromEnvironment().config.inputGuard) ?? GuardSettings()
                let data: Data
                let text: String
                if file == "-" {
                    text = try Terminal.readStandardInput()
                } else {
                    do { data = try PrivateFile.read(file, limit: Terminal.standardInputLimit) } catch {
                        throw ValidationError("\(TerminalSanitizer.line(file, limit: 200)): \(error.reason)")
                    }
                    text = String(decoding: data, as: UTF8.self)
                }
                let findings = InputGuard.scan(text, settings: settings)
                Terminal.standardOutput.line(JSONValue.object([
                    ("findings", .array(findings.map(\.json))),
                    ("characters", .number(Double(text.count))),
                ]).serialized())
                if !findings.isEmpty { throw ExitCode(2) }
            } catch let error as ExitCode {
                throw error
            } catch let error as ValidationError {
                throw error
            } catch {
                throw fail(error)
            }
        }
    }
}
