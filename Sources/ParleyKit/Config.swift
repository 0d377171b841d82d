import Foundation
import ParleyCore
import ParleyProviders

/// A config problem, naming the file, the line and what was expected.
public struct ConfigError: UserFacingError, Sendable, Equatable {
    public var file: String
    public var line: Int?
    public var message: String

    public init(file: String, line: Int?, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var userMessage: String {
        if let line { return "\(file):\(line): \(message)" }
        return "\(file): \(message)"
    }
}

/// A provider as configured: a preset with the user's changes, or a custom OpenAI-compatible server.
public struct ProviderConfig: Sendable {
    public var name: String
    public var format: WireFormat
    /// Empty for `local`, whose address is known only once its server runs.
    public var baseURL: String
    public var apiKeyVariable: String?
    public var dialect: OpenAIDialect
    public var models: [String]
    public var timeouts: TransportTimeouts
    public var headers: [(String, String)]
    public var isPreset: Bool
    /// Config `max_tokens`: the reply length limit when a request sets none.
    public var maxTokens: Int?
    /// Config `max_retries`: attempts after the first, before any output (default 2).
    public var maxRetries: Int?
}

/// Settings for the bundled local model server.
public struct LocalSettings: Sendable, Equatable {
    /// A GGUF file to serve instead of the bundled SmolLM2.
    public var modelPath: String?
    public var contextSize: Int = 8192
    /// Seconds a server started by Parley stays up unused before it stops itself.
    public var idleShutdownSeconds: Int = 900
    public var threads: Int?

    public init() {}
}

/// Parley's configuration: built-in presets, with `config.toml` laid over them.
public struct ParleyConfig: Sendable {
    public var providers: [String: ProviderConfig]
    /// Names in the order `parley models` shows them.
    public var providerOrder: [String]
    public var aliases: [String: String]
    public var defaultModel: String
    public var local: LocalSettings
    /// The file it came from, if any, for messages.
    public var source: String?

    /// The presets alone, as with no config file.
    public static var builtIn: ParleyConfig {
        var providers: [String: ProviderConfig] = [:]
        for preset in ProviderPreset.all {
            providers[preset.name] = ProviderConfig(
                name: preset.name, format: preset.format, baseURL: preset.baseURL, apiKeyVariable: preset.apiKeyVariable,
                dialect: preset.dialect, models: preset.models, timeouts: preset.timeouts, headers: [], isPreset: true
            )
        }
        return ParleyConfig(
            providers: providers, providerOrder: ProviderPreset.all.map(\.name), aliases: [:],
            defaultModel: "local:\(LocalRuntime.modelName)", local: LocalSettings(), source: nil
        )
    }

    /// Loads `config.toml` if it exists; a missing file is not an error, a bad one is.
    public static func load(from file: URL) throws(ConfigError) -> ParleyConfig {
        guard FileManager.default.fileExists(atPath: file.path) else { return builtIn }
        let text: String
        do {
            let data = try Data(contentsOf: file)
            guard let decoded = String(data: data, encoding: .utf8) else {
                throw ConfigError(file: file.path, line: nil, message: "is not UTF-8 text")
            }
            text = decoded
        } catch let error as ConfigError {
            throw error
        } catch {
            throw ConfigError(file: file.path, line: nil, message: "cannot be read: \(error.localizedDescription)")
        }
        return try parse(text, file: file.path)
    }

    public static func parse(_ text: String, file: String) throws(ConfigError) -> ParleyConfig {
        let table: TOMLTable
        do {
            table = try TOMLParser.parse(text)
        } catch {
            throw ConfigError(file: file, line: error.line, message: error.message)
        }
        var config = builtIn
        config.source = file
        let reader = ConfigReader(file: file)
        try reader.allowOnly(table, ["default_model", "aliases", "providers", "local"], context: "the top level")
        if let value = table["default_model"] { config.defaultModel = try reader.string(value, "default_model") }
        if let value = table["aliases"] {
            let aliases = try reader.table(value, "aliases")
            for (name, target) in aliases.entries { config.aliases[name] = try reader.string(target, "aliases.\(name)") }
        }
        if let value = table["local"] {
            let local = try reader.table(value, "local")
            try reader.allowOnly(local, ["model_path", "context_size", "idle_shutdown_seconds", "threads"], context: "[local]")
            if let v = local["model_path"] { config.local.modelPath = try reader.string(v, "local.model_path") }
            if let v = local["context_size"] { config.local.contextSize = try reader.integer(v, "local.context_size", min: 256) }
            if let v = local["idle_shutdown_seconds"] { config.local.idleShutdownSeconds = try reader.integer(v, "local.idle_shutdown_seconds", min: 0) }
            if let v = local["threads"] { config.local.threads = try reader.integer(v, "local.threads", min: 1) }
        }
        if let value = table["providers"] {
            let providers = try reader.table(value, "providers")
            for (name, body) in providers.entries {
                let key = "providers.\(name)"
                let settings = try reader.table(body, key)
                try reader.allowOnly(settings, [
                    "base_url", "api_key_env", "format", "models", "stream_options", "max_tokens_field",
                    "connect_timeout", "first_byte_timeout", "idle_timeout", "total_timeout", "headers", "max_tokens", "max_retries",
                ], context: "[\(key)]")
                var provider = config.providers[name] ?? ProviderConfig(
                    name: name, format: .openAIChat, baseURL: "", apiKeyVariable: nil, dialect: .standard, models: [],
                    timeouts: ProviderPreset.hostedTimeouts, headers: [], isPreset: false
                )
                if name.contains(":") || name.isEmpty {
                    throw ConfigError(file: file, line: settings.line, message: "provider names cannot contain ':'")
                }
                if let v = settings["base_url"] {
                    let url = try reader.string(v, "\(key).base_url")
                    guard let parsed = URL(string: url), let scheme = parsed.scheme, ["http", "https"].contains(scheme), parsed.host != nil else {
                        throw ConfigError(file: file, line: v.line, message: "\(key).base_url: expected an http:// or https:// URL, found \"\(url)\"")
                    }
                    provider.baseURL = url
                }
                if let v = settings["api_key_env"] { provider.apiKeyVariable = try reader.string(v, "\(key).api_key_env") }
                if let v = settings["format"] {
                    let raw = try reader.string(v, "\(key).format")
                    guard let format = WireFormat(rawValue: raw) else {
                        throw ConfigError(file: file, line: v.line, message: "\(key).format: expected one of openai, anthropic, ollama; found \"\(raw)\"")
                    }
                    provider.format = format
                }
                if let v = settings["models"] { provider.models = try reader.strings(v, "\(key).models") }
                if let v = settings["stream_options"] { provider.dialect.sendsStreamOptions = try reader.bool(v, "\(key).stream_options") }
                if let v = settings["max_tokens_field"] { provider.dialect.maxTokensField = try reader.string(v, "\(key).max_tokens_field") }
                if let v = settings["max_retries"] { provider.maxRetries = try reader.integer(v, "\(key).max_retries", min: 0) }
                if let v = settings["max_tokens"] { provider.maxTokens = try reader.integer(v, "\(key).max_tokens", min: 1) }
                if let v = settings["connect_timeout"] { provider.timeouts.connect = try reader.seconds(v, "\(key).connect_timeout") }
                if let v = settings["first_byte_timeout"] { provider.timeouts.responseHead = try reader.seconds(v, "\(key).first_byte_timeout") }
                if let v = settings["idle_timeout"] { provider.timeouts.idle = try reader.seconds(v, "\(key).idle_timeout") }
                if let v = settings["total_timeout"] { provider.timeouts.total = try reader.seconds(v, "\(key).total_timeout") }
                if let v = settings["headers"] {
                    let headers = try reader.table(v, "\(key).headers")
                    provider.headers = try headers.entries.map { (name, value) throws(ConfigError) in
                        (name, try reader.string(value, "\(key).headers.\(name)"))
                    }
                }
                if !provider.isPreset, provider.baseURL.isEmpty {
                    throw ConfigError(file: file, line: settings.line, message: "[\(key)] is not a built-in provider, so it needs base_url = \"http://host:port/v1\"")
                }
                if config.providers[name] == nil { config.providerOrder.append(name) }
                config.providers[name] = provider
            }
        }
        return config
    }
}

/// Reads typed values out of TOML, turning a wrong type into "expected X, found Y" at the value's line.
struct ConfigReader {
    let file: String

    func fail(_ value: TOMLValue, _ key: String, expected: String) -> ConfigError {
        ConfigError(file: file, line: value.line, message: "\(key): expected \(expected), found \(value.kindName)")
    }

    func string(_ value: TOMLValue, _ key: String) throws(ConfigError) -> String {
        guard case let .string(s, _) = value else { throw fail(value, key, expected: "a string") }
        return s
    }

    func bool(_ value: TOMLValue, _ key: String) throws(ConfigError) -> Bool {
        guard case let .bool(b, _) = value else { throw fail(value, key, expected: "true or false") }
        return b
    }

    func integer(_ value: TOMLValue, _ key: String, min: Int) throws(ConfigError) -> Int {
        guard case let .integer(i, line) = value else { throw fail(value, key, expected: "an integer") }
        guard i >= min else { throw ConfigError(file: file, line: line, message: "\(key): expected at least \(min), found \(i)") }
        return i
    }

    func seconds(_ value: TOMLValue, _ key: String) throws(ConfigError) -> Duration {
        let number: Double
        switch value {
        case let .integer(i, _): number = Double(i)
        case let .float(f, _): number = f
        default: throw fail(value, key, expected: "a number of seconds")
        }
        guard number > 0, number <= 86_400 else {
            throw ConfigError(file: file, line: value.line, message: "\(key): expected seconds between 0 and 86400, found \(number)")
        }
        return .milliseconds(Int64(number * 1000))
    }

    func strings(_ value: TOMLValue, _ key: String) throws(ConfigError) -> [String] {
        guard case let .array(items, _) = value else { throw fail(value, key, expected: "an array of strings") }
        return try items.map { item throws(ConfigError) in try string(item, "\(key)[]") }
    }

    func table(_ value: TOMLValue, _ key: String) throws(ConfigError) -> TOMLTable {
        guard case let .table(t) = value else { throw fail(value, key, expected: "a table") }
        return t
    }

    func allowOnly(_ table: TOMLTable, _ allowed: [String], context: String) throws(ConfigError) {
        for (key, value) in table.entries where !allowed.contains(key) {
            throw ConfigError(file: file, line: value.line, message: "unknown key '\(key)' in \(context); expected one of: \(allowed.joined(separator: ", "))")
        }
    }
}
