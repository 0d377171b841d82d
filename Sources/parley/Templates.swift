import ArgumentParser
import Foundation
import ParleyCore
import ParleyKit

/// `parley templates`: the prompt templates this directory and the user have.
struct Templates: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "templates",
        abstract: "List, show and render prompt templates (NAME.toml in .parley/templates/ or the config's templates/).",
        subcommands: [List.self, Show.self, Render.self],
        defaultSubcommand: List.self
    )

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List the templates, the project's first.")

        func run() {
            let library = TemplateLibrary(paths: ParleyPaths.fromEnvironment())
            let names = library.names()
            if names.isEmpty {
                Terminal.standardOutput.line("no templates; add NAME.toml to \(library.directories.map(\.path).joined(separator: " or "))")
                return
            }
            for (name, file) in names {
                let summary: String
                do { summary = try library.load(name).description ?? "" } catch { summary = "(broken: \(describe(error)))" }
                Terminal.standardOutput.line(name.padding(toLength: max(name.count, 20), withPad: " ", startingAt: 0) + "  " + summary + "  [\(file.path)]")
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Print a template's file and its variables.")

        @Argument(help: "The template's name.", completion: Completions.templates) var name: String

        func run() throws {
            do {
                let template = try TemplateLibrary(paths: ParleyPaths.fromEnvironment()).load(name)
                Terminal.standardOutput.line("# \(template.file.path)")
                Terminal.standardOutput.line((try? String(contentsOf: template.file, encoding: .utf8)) ?? "")
                for variable in template.variables {
                    var parts = [variable.required ? "required" : "optional"]
                    if let value = variable.defaultValue { parts.append("default \"\(value)\"") }
                    if let text = variable.description { parts.append(text) }
                    Terminal.standardOutput.line("var \(variable.name): \(parts.joined(separator: ", "))")
                }
            } catch {
                throw fail(error)
            }
        }
    }

    struct Render: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "render",
            abstract: "Print the exact messages a template would send, their estimated tokens and worst-case cost; sends nothing."
        )

        @Argument(help: "The template's name.", completion: Completions.templates) var name: String
        @Option(name: .customLong("var"), help: "A variable, KEY=VALUE (repeatable).") var vars: [String] = []
        @Option(help: "The text of the `input` variable (else stdin when it is not a terminal).") var input: String?
        @Option(name: .shortAndLong, help: "The model to estimate for (default: the template's, else the default model).", completion: Completions.models) var model: String?
        @Flag(help: "Print the request as JSON: model, system, messages, response_format.") var json = false

        func run() throws {
            do {
                let engine = try ChatEngine.fromEnvironment()
                let template = try TemplateLibrary(paths: engine.paths).load(name)
                var text = input
                if text == nil, isatty(STDIN_FILENO) == 0 {
                    text = try Terminal.readStandardInput().trimmingCharacters(in: .whitespacesAndNewlines)
                }
                let rendered = try template.render(values: try Ask.parseVars(vars), input: text)
                let ref = try engine.config.resolve(model ?? template.model ?? engine.defaultModelName)
                var format: ResponseFormat?
                if let spec = template.schema {
                    do { format = try StructuredOutput(spec: spec, baseDirectory: template.file.deletingLastPathComponent()).format } catch {
                        throw TemplateError(file: template.file, line: nil, message: "schema: \(error.userMessage)")
                    }
                }
                let messages = try rendered.messages(file: template.file)
                let request = ChatRequest(model: ref.model, system: rendered.system, messages: messages,
                                          temperature: template.temperature, maxTokens: template.maxTokens, responseFormat: format)
                let estimate = engine.estimate(request, model: ref)
                let out = Terminal.standardOutput
                if json {
                    var members: [(String, JSONValue)] = [("model", .string(ref.description))]
                    if let system = rendered.system { members.append(("system", .string(system))) }
                    members.append(("messages", .array(messages.map { ["role": .string($0.role.rawValue), "content": .string($0.content)] })))
                    if let format { members.append(("response_format", format.schema)) }
                    members.append(("estimated_prompt_tokens", .number(Double(estimate.promptTokens))))
                    members.append(("worst_case_usd", estimate.worstCase.map { .number($0) } ?? .null))
                    out.line(JSONValue.object(members).serialized())
                    return
                }
                out.line("model: \(ref)")
                if let system = rendered.system { out.line("── system\n\(system)") }
                for message in messages { out.line("── \(message.role.rawValue)\n\(message.content)") }
                if let format { out.line("── response format: JSON matching\n\(format.schema.serialized())") }
                out.line("──\n" + estimate.summary)
            } catch let error as ValidationError {
                throw error
            } catch {
                throw fail(error)
            }
        }
    }
}
