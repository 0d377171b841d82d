import Foundation
import ParleyCore
import Stencil

/// A reusable prompt: a TOML file `NAME.toml` in the project's `.parley/templates/` or in
/// `$XDG_CONFIG_HOME/parley/templates/` (the project's wins). `system` and `prompt` are Stencil
/// templates (variables, `if`, `for`, filters); `[[examples]]` are few-shot pairs sent as real
/// user/assistant messages before the prompt; `schema` asks for structured output.
public struct PromptTemplate: Sendable {
    public struct Variable: Sendable, Equatable {
        public var name: String
        public var defaultValue: String?
        public var required: Bool
        public var description: String?
        public var line: Int
    }

    public struct Example: Sendable, Equatable {
        public var user: String
        public var assistant: String
    }

    public var name: String
    public var file: URL
    public var description: String?
    public var model: String?
    public var temperature: Double?
    public var maxTokens: Int?
    public var system: String?
    public var prompt: String?
    public var variables: [Variable]
    public var examples: [Example]
    /// A schema spec as `--schema` takes it: JSON Schema text or the concise form.
    public var schema: String?
    /// The file line each template text starts on, for errors inside it.
    var systemLine = 0
    var promptLine = 0

    /// The largest template file read.
    static let maxFileBytes = 1_048_576

    public init(name: String, file: URL, text: String) throws(TemplateError) {
        self.name = name
        self.file = file
        let table: TOMLTable
        do { table = try TOMLParser.parse(text) } catch {
            throw TemplateError(file: file, line: error.line, message: error.message)
        }
        let rawLines = text.split(separator: "\n", omittingEmptySubsequences: false)
        /// A multi-line string that opens with a newline starts on the next line.
        func firstLine(_ value: TOMLValue) -> Int {
            let line = value.line
            guard line >= 1, line <= rawLines.count else { return line }
            let raw = rawLines[line - 1].trimmingCharacters(in: .whitespaces)
            return raw.hasSuffix("\"\"\"") || raw.hasSuffix("'''") ? line + 1 : line
        }
        func string(_ key: String, in table: TOMLTable) throws(TemplateError) -> String? {
            guard let value = table[key] else { return nil }
            guard case let .string(text, _) = value else {
                throw TemplateError(file: file, line: value.line, message: "`\(key)` must be a string, found \(value.kindName)")
            }
            return text
        }
        let known: Set<String> = ["description", "model", "temperature", "max_tokens", "system", "prompt", "vars", "examples", "schema"]
        for (key, value) in table.entries where !known.contains(key) {
            throw TemplateError(file: file, line: value.line,
                                message: "unknown key `\(key)` (a template has \(known.sorted().joined(separator: ", ")))")
        }
        description = try string("description", in: table)
        model = try string("model", in: table)
        system = try string("system", in: table)
        prompt = try string("prompt", in: table)
        schema = try string("schema", in: table)
        if let value = table["system"] { systemLine = firstLine(value) }
        if let value = table["prompt"] { promptLine = firstLine(value) }
        func checkedTemperature(_ value: Double, line: Int) throws(TemplateError) -> Double {
            guard (0...2).contains(value) else { throw TemplateError(file: file, line: line, message: "`temperature` must be between 0 and 2") }
            return value
        }
        switch table["temperature"] {
        case nil: temperature = nil
        case let .float(value, line)?: temperature = try checkedTemperature(value, line: line)
        case let .integer(value, line)?: temperature = try checkedTemperature(Double(value), line: line)
        case let value?:
            throw TemplateError(file: file, line: value.line, message: "`temperature` must be a number, found \(value.kindName)")
        }
        switch table["max_tokens"] {
        case nil: maxTokens = nil
        case let .integer(count, line)?:
            guard (1...10_000_000).contains(count) else { throw TemplateError(file: file, line: line, message: "`max_tokens` must be from 1 to 10000000") }
            maxTokens = count
        case let value?:
            throw TemplateError(file: file, line: value.line, message: "`max_tokens` must be an integer, found \(value.kindName)")
        }
        variables = []
        if let value = table["vars"] {
            guard case let .table(vars) = value else {
                throw TemplateError(file: file, line: value.line, message: "`vars` must be a table of [vars.NAME] tables")
            }
            for (name, entry) in vars.entries {
                guard case let .table(spec) = entry else {
                    throw TemplateError(file: file, line: entry.line, message: "[vars.\(name)] must be a table (default, required, description)")
                }
                guard Self.isVariableName(name) else {
                    throw TemplateError(file: file, line: entry.line, message: "`\(name)` is not a variable name (letters, digits and _, not starting with a digit)")
                }
                var required = false
                if let flag = spec["required"] {
                    guard case let .bool(value, _) = flag else {
                        throw TemplateError(file: file, line: flag.line, message: "vars.\(name).required must be true or false")
                    }
                    required = value
                }
                variables.append(Variable(name: name, defaultValue: try string("default", in: spec), required: required,
                                          description: try string("description", in: spec), line: spec.line))
            }
        }
        examples = []
        if let value = table["examples"] {
            guard case let .array(items, _) = value else {
                throw TemplateError(file: file, line: value.line, message: "`examples` must be [[examples]] tables with `user` and `assistant`")
            }
            for item in items {
                guard case let .table(pair) = item, let user = try string("user", in: pair), let assistant = try string("assistant", in: pair) else {
                    throw TemplateError(file: file, line: item.line, message: "each [[examples]] needs `user` and `assistant` strings")
                }
                examples.append(Example(user: user, assistant: assistant))
            }
        }
    }

    static func isVariableName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, !("0"..."9").contains(first) else { return false }
        return name.unicodeScalars.allSatisfy { $0 == "_" || ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) }
    }

    /// The messages the template produces with these variable values: the system prompt, each example
    /// as a user/assistant pair, then the prompt. `input` is stdin and the prompt arguments; a template
    /// without `prompt` sends `input` as the prompt.
    public func render(values: [String: String], input: String?) throws(TemplateError) -> RenderedTemplate {
        var context: [String: String] = [:]
        let declared = Set(variables.map(\.name))
        for name in values.keys.sorted() where !declared.contains(name) && name != "input" {
            let known = variables.map(\.name).joined(separator: ", ")
            throw TemplateError(file: file, line: nil, message: "--var \(name): the template has no variable `\(name)` (it has: \(known.isEmpty ? "none" : known), and input)")
        }
        for variable in variables {
            if let value = values[variable.name] ?? variable.defaultValue {
                context[variable.name] = value
            } else if variable.required {
                throw TemplateError(file: file, line: variable.line,
                                    message: "variable `\(variable.name)` is required: pass --var \(variable.name)=VALUE" + (variable.description.map { " (\($0))" } ?? ""))
            } else {
                context[variable.name] = ""
            }
        }
        if let input { context["input"] = input }
        let renderedSystem = try system.map { text throws(TemplateError) in try Self.render(text, context: context, file: file, firstLine: systemLine) }
        var pairs: [ChatMessage] = []
        for example in examples { pairs += [.user(example.user), .assistant(example.assistant)] }
        let promptText = try prompt.map { text throws(TemplateError) in try Self.render(text, context: context, file: file, firstLine: promptLine) }
            ?? input.flatMap { $0.isEmpty ? nil : $0 }
        return RenderedTemplate(system: renderedSystem.flatMap { $0.isEmpty ? nil : $0 }, examples: pairs, prompt: promptText, promptLine: promptLine)
    }

    /// What a template may ask of the renderer, checked before Stencil sees it: a template can come with
    /// a cloned project, and Stencil itself traps on some arguments (a negative `indent`) and has no
    /// limits on loops or nesting.
    static let maxTemplateBytes = 65_536, maxTags = 1_000, maxNesting = 16, maxLoopNesting = 2, maxRange = 1_000, maxOutput = 1 << 20

    static func checkLimits(_ text: String, file: URL, firstLine: Int) throws(TemplateError) {
        func fail(_ message: String, at offset: String.Index? = nil) -> TemplateError {
            let line = offset.map { text[..<$0].filter { $0 == "\n" }.count + firstLine } ?? firstLine
            return TemplateError(file: file, line: line, message: message)
        }
        guard text.utf8.count <= maxTemplateBytes else { throw fail("the template text is larger than 64 KB") }
        var depth = 0, loops: [Bool] = [], tags = 0
        var index = text.startIndex
        while let open = text.range(of: "{%", range: index..<text.endIndex) {
            guard let close = text.range(of: "%}", range: open.upperBound..<text.endIndex) else { break }
            tags += 1
            guard tags <= maxTags else { throw fail("more than \(maxTags) tags", at: open.lowerBound) }
            let body = text[open.upperBound..<close.lowerBound].trimmingCharacters(in: CharacterSet(charactersIn: "-+ \t\n"))
            let word = body.split(separator: " ", maxSplits: 1).first.map(String.init) ?? ""
            switch word {
            case "for", "if", "ifnot", "filter":
                depth += 1
                loops.append(word == "for")
                guard depth <= maxNesting else { throw fail("tags nest more than \(maxNesting) deep", at: open.lowerBound) }
                guard loops.filter({ $0 }).count <= maxLoopNesting else { throw fail("`for` loops nest more than \(maxLoopNesting) deep", at: open.lowerBound) }
            case "endfor", "endif", "endfilter":
                depth = max(0, depth - 1)
                if !loops.isEmpty { loops.removeLast() }
            case "include", "extends", "block", "now":
                throw fail("`{% \(word) %}` is not available in Parley's templates", at: open.lowerBound)
            default: break
            }
            // Ranges only between whole numbers written in the template, at most 1,000 apart.
            for range in body.matches(of: /(\S+)\.\.\.(\S+)/) {
                guard let low = Int(range.1), let high = Int(range.2), abs(high - low) <= maxRange else {
                    throw fail("a range must be between two numbers at most \(maxRange) apart, found \(range.0)", at: open.lowerBound)
                }
            }
            index = close.upperBound
        }
        // `indent` only with a literal width from 0 to 64 (Stencil traps on a negative one).
        for match in text.matches(of: /\|\s*indent\s*(?::\s*([^|}\s,]+))?/) {
            if let width = match.1, !(Int(width).map { (0...64).contains($0) } ?? false) {
                throw fail("`indent` takes a width from 0 to 64, found \(width)", at: match.range.lowerBound)
            }
        }
    }

    /// Stencil with no loader (no file can be included); like Jinja, no whitespace is trimmed unless a tag asks (`{%- … -%}`).
    static func render(_ text: String, context: [String: String], file: URL, firstLine: Int) throws(TemplateError) -> String {
        try checkLimits(text, file: file, firstLine: firstLine)
        let environment = Environment(trimBehaviour: .nothing)
        do {
            // Like Jinja, a single trailing newline (a TOML `"""` on its own line) is not kept.
            let rendered = try environment.renderTemplate(string: text, context: context)
            guard rendered.utf8.count <= maxOutput else {
                throw TemplateError(file: file, line: firstLine, message: "the template renders to more than 1 MB")
            }
            return rendered.hasSuffix("\n") ? String(rendered.dropLast()) : rendered
        } catch let error as TemplateError {
            throw error
        } catch let error as TemplateSyntaxError {
            let line = error.token.map { Int($0.sourceMap.location.lineNumber) }.flatMap { $0 > 0 ? firstLine + $0 - 1 : nil }
            throw TemplateError(file: file, line: line ?? firstLine, message: error.reason)
        } catch {
            throw TemplateError(file: file, line: firstLine, message: "\(error)")
        }
    }
}

public struct RenderedTemplate: Sendable, Equatable {
    public var system: String?
    /// The few-shot pairs, user then assistant.
    public var examples: [ChatMessage]
    /// The rendered `prompt`, else the input; nil when there is neither.
    public var prompt: String?
    var promptLine: Int

    /// What `ask` sends: the examples, then the prompt, which must not be empty.
    public func messages(file: URL) throws(TemplateError) -> [ChatMessage] {
        guard let prompt, !prompt.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw TemplateError(file: file, line: promptLine == 0 ? nil : promptLine,
                                message: promptLine == 0 ? "the template has no `prompt`: give the prompt as an argument or on stdin"
                                                         : "the prompt is empty once rendered; check its variables")
        }
        return examples + [.user(prompt)]
    }
}

/// An error in a template names the file, the line and what to do.
public struct TemplateError: UserFacingError, Sendable, Equatable, CustomStringConvertible {
    public var file: URL
    public var line: Int?
    public var message: String

    public init(file: URL, line: Int?, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var userMessage: String { "\(file.path)\(line.map { ":\($0)" } ?? ""): \(message)" }
    public var description: String { userMessage }
}

/// Where templates are found: the project's `.parley/templates/` (in the working directory or the
/// nearest parent that has one), then the user's config directory.
public struct TemplateLibrary: Sendable {
    public var directories: [URL]

    public init(paths: ParleyPaths, workingDirectory: URL = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)) {
        var directories: [URL] = []
        var directory = workingDirectory.standardizedFileURL
        while true {
            let candidate = directory.appendingPathComponent(".parley/templates")
            // Only a directory of this user's (or root's) that nobody else can write to: another local
            // user's /tmp/.parley must not supply templates.
            if Self.trusted(candidate.path), Self.trusted(directory.appendingPathComponent(".parley").path) { directories.append(candidate); break }
            let parent = directory.deletingLastPathComponent()
            if parent.path == directory.path { break }
            directory = parent
        }
        directories.append(paths.configDirectory.appendingPathComponent("templates"))
        self.directories = directories
    }

    /// Every template name, each from the first directory that has it.
    public func names() -> [(name: String, file: URL)] {
        var seen: Set<String> = []
        var found: [(String, URL)] = []
        for directory in directories {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
            for file in files.sorted() where file.hasSuffix(".toml") {
                let name = String(file.dropLast(5))
                guard TemplateLibrary.isName(name), seen.insert(name).inserted else { continue }
                found.append((name, directory.appendingPathComponent(file)))
            }
        }
        return found.sorted { $0.0 < $1.0 }
    }

    static func trusted(_ path: String) -> Bool {
        var info = stat()
        guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else { return false }
        return (info.st_uid == geteuid() || info.st_uid == 0) && info.st_mode & 0o022 == 0
    }

    static func isName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64 && name.unicodeScalars.allSatisfy {
            $0 == "-" || $0 == "_" || ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)
        }
    }

    public func load(_ name: String) throws(TemplateError) -> PromptTemplate {
        guard Self.isName(name) else {
            throw TemplateError(file: URL(fileURLWithPath: name), line: nil, message: "a template name is letters, digits, - and _ (it names NAME.toml)")
        }
        guard let file = names().first(where: { $0.name == name })?.file else {
            let known = names().map(\.name)
            let places = directories.map(\.path).joined(separator: " or ")
            throw TemplateError(file: URL(fileURLWithPath: "\(name).toml"), line: nil,
                                message: "no template `\(name)` in \(places)" + (known.isEmpty ? "" : " (there are: \(known.joined(separator: ", ")))"))
        }
        let data: Data
        do { data = try PrivateFile.read(file.path, limit: PromptTemplate.maxFileBytes, trustedOwner: true) } catch {
            throw TemplateError(file: file, line: nil, message: error.reason)
        }
        guard let text = String(data: data, encoding: .utf8) else { throw TemplateError(file: file, line: nil, message: "is not UTF-8 text") }
        return try PromptTemplate(name: name, file: file, text: text)
    }
}
