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
    /// `[providers.NAME]`'s timeouts, limits and retries, laid over the preset's `timeouts`.
    public var settings = RequestSettings()
}

/// The settings a provider (`[providers.NAME]`) or a model (`[models."provider:model"]`) can give
/// every request: parsed by one function, applied to an endpoint by one function, provider first,
/// model over it.
public struct RequestSettings: Sendable, Equatable {
    public var connectTimeout: Duration?
    public var firstTokenTimeout: Duration?
    public var idleTimeout: Duration?
    public var totalTimeout: Duration?
    /// The reply length limit when a request sets none.
    public var maxTokens: Int?
    /// Attempts after the first, before any output (default 2).
    public var maxRetries: Int?
    public var maxEventBytes: Int?
    public var maxReplyBytes: Int?
    public var maxErrorBytes: Int?

    public init() {}

    static let keys = ["connect_timeout", "first_token_timeout", "idle_timeout", "total_timeout", "max_tokens", "max_retries",
                       "max_event_kb", "max_reply_mb", "max_error_kb"]

    static func parse(_ table: TOMLTable, key: String, reader: ConfigReader) throws(ConfigError) -> RequestSettings {
        var settings = RequestSettings()
        if let v = table["connect_timeout"] { settings.connectTimeout = try reader.seconds(v, "\(key).connect_timeout") }
        if let v = table["first_token_timeout"] { settings.firstTokenTimeout = try reader.seconds(v, "\(key).first_token_timeout") }
        if let v = table["idle_timeout"] { settings.idleTimeout = try reader.seconds(v, "\(key).idle_timeout") }
        if let v = table["total_timeout"] { settings.totalTimeout = try reader.seconds(v, "\(key).total_timeout") }
        if let v = table["max_tokens"] { settings.maxTokens = try reader.integer(v, "\(key).max_tokens", min: 1) }
        if let v = table["max_retries"] { settings.maxRetries = try reader.integer(v, "\(key).max_retries", min: 0, max: 20) }
        if let v = table["max_event_kb"] { settings.maxEventBytes = try reader.integer(v, "\(key).max_event_kb", min: 1, max: 1 << 20) << 10 }
        if let v = table["max_reply_mb"] { settings.maxReplyBytes = try reader.integer(v, "\(key).max_reply_mb", min: 1, max: 1 << 20) << 20 }
        if let v = table["max_error_kb"] { settings.maxErrorBytes = try reader.integer(v, "\(key).max_error_kb", min: 1, max: 1 << 20) << 10 }
        return settings
    }

    /// Lays these settings over the endpoint's: only what is set changes.
    public func apply(to endpoint: inout ProviderEndpoint) {
        if let v = connectTimeout { endpoint.timeouts.connect = v }
        if let v = firstTokenTimeout { endpoint.timeouts.firstToken = v }
        if let v = idleTimeout { endpoint.timeouts.idle = v }
        if let v = totalTimeout { endpoint.timeouts.total = v }
        if let v = maxTokens { endpoint.defaultMaxTokens = v }
        if let v = maxRetries { endpoint.retryPolicy.maxRetries = v }
        if let v = maxEventBytes { endpoint.limits.maxEventBytes = v }
        if let v = maxReplyBytes { endpoint.limits.maxReplyBytes = v }
        if let v = maxErrorBytes { endpoint.limits.maxErrorBytes = v }
    }
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

/// Settings for one model (`[models."provider:model"]`), laid over its provider's.
public struct ModelSettings: Sendable {
    public var request = RequestSettings()
    /// Models to try, in order, when this one fails for a reason that is not the request's own.
    public var fallback: [String]?
    /// Price and limits that replace or add to the bundled catalog's entry.
    public var pricing = PriceOverride()
    /// `tools = true|false`: whether the model takes tool definitions (nil: assumed, see supportsTools).
    public var supportsTools: Bool?
    /// `context = "trim" | "compact" | "refuse"` for this model (nil: `[context]` decides).
    public var context: ContextPolicy?

    public init() {}
}

/// Budget limits in US dollars; nil for none.
public struct BudgetSettings: Sendable, Equatable {
    public var daily: Double?
    public var monthly: Double?
    public var session: Double?
    /// Whose spend the daily and monthly limits count: everyone's on the ledger (`team`, the default; on
    /// one person's SQLite file that is that person), or only this user's rows (`user`).
    public var scope: BudgetScope = .team

    public init(daily: Double? = nil, monthly: Double? = nil, session: Double? = nil) {
        self.daily = daily
        self.monthly = monthly
        self.session = session
    }
}

public enum BudgetScope: String, Sendable, Equatable { case team, user }

/// Where the ledger or the cache lives: a SQLite file in the data directory (one person), or a
/// PostgreSQL database a team shares, reached at the URL in an environment variable.
public enum StoreBackend: String, Sendable, Equatable { case sqlite, postgres }

/// `[ledger]`: the backend, and the name its rows carry for `parley cost --by user` and `scope = "user"`.
public struct LedgerSettings: Sendable, Equatable {
    public var backend: StoreBackend = .sqlite
    /// The environment variable that holds the PostgreSQL URL (never the config file: it holds a password).
    public var urlVariable = "PARLEY_DATABASE_URL"
    /// The user's name in the ledger; nil: `PARLEY_USER`, else the login name.
    public var user: String?

    public init() {}
}

/// The response cache (`[cache]`).
public struct CacheSettings: Sendable, Equatable {
    public var backend: StoreBackend = .sqlite
    public var enabled = false
    /// Cache only requests at temperature 0 (the default), or every request.
    public var onlyDeterministic = true
    public var ttlSeconds = 7 * 86_400
    public var maxMegabytes = 100

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
    /// Models tried in order after the chosen one fails (unless its `[models]` entry has its own chain).
    public var fallback: [String] = []
    /// `[models."provider:model"]`, keyed by the resolved name.
    public var models: [ModelRef: ModelSettings] = [:]
    public var budget = BudgetSettings()
    public var cache = CacheSettings()
    public var ledger = LedgerSettings()
    /// `[router]`, for `-m auto`.
    public var router = RouterSettings()
    /// `[guard]`: checks on what is sent, before it is sent.
    public var inputGuard = GuardSettings()
    /// `[context]`: what happens when a conversation outgrows the model's window.
    public var context = ContextSettings()
    /// `[mcp]`: tool servers and the tool loop's limits.
    public var mcp = MCPSettings()
    /// The sampling temperature sent when a request names none (nil: the provider's default).
    public var temperature: Double?
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
            let data: Data
            do { data = try PrivateFile.read(file.path, limit: 1 << 20) } catch {
                throw ConfigError(file: file.path, line: nil, message: "cannot be read: \(error.reason)")
            }
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
        try reader.allowOnly(table, ["default_model", "aliases", "providers", "local", "fallback", "models", "budget", "cache", "ledger", "temperature", "router", "guard", "context", "mcp"], context: "the top level")
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
                try reader.allowOnly(settings, ["base_url", "api_key_env", "format", "models", "stream_options", "max_tokens_field", "headers"]
                                     + RequestSettings.keys, context: "[\(key)]")
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
                provider.settings = try RequestSettings.parse(settings, key: key, reader: reader)
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
        if let value = table["aliases"], case let .table(aliases) = value {
            for (name, target) in aliases.entries {
                do { _ = try config.resolve(name) } catch where error.isAliasLoop {
                    throw ConfigError(file: file, line: target.line, message: "aliases.\(name): \(error.message)")
                } catch {}
            }
        }
        if let value = table["temperature"] {
            let temperature = try reader.dollars(value, "temperature", unit: "0 to 2")
            guard temperature <= 2 else { throw ConfigError(file: file, line: value.line, message: "temperature: expected a number from 0 to 2, found \(temperature)") }
            config.temperature = temperature
        }
        try parseChains(table, into: &config, reader: reader)
        if let value = table["budget"] {
            let budget = try reader.table(value, "budget")
            try reader.allowOnly(budget, ["daily", "monthly", "session", "scope"], context: "[budget]")
            if let v = budget["scope"] {
                guard let scope = BudgetScope(rawValue: try reader.string(v, "budget.scope")) else {
                    throw ConfigError(file: reader.file, line: v.line, message: "budget.scope: expected \"team\" or \"user\"")
                }
                config.budget.scope = scope
            }
            if let v = budget["daily"] { config.budget.daily = try reader.dollars(v, "budget.daily") }
            if let v = budget["monthly"] { config.budget.monthly = try reader.dollars(v, "budget.monthly") }
            if let v = budget["session"] { config.budget.session = try reader.dollars(v, "budget.session") }
        }
        if let value = table["router"] { try parseRouter(value, into: &config, reader: reader) }
        if let value = table["guard"] { config.inputGuard = try GuardSettings.parse(value, reader: reader) }
        if let value = table["mcp"] { config.mcp = try MCPSettings.parse(value, reader: reader) }
        if let value = table["context"] {
            config.context = try ContextSettings.parse(value, reader: reader)
            if let name = (try? reader.table(value, "context"))?["summary_model"] {
                do { _ = try config.resolve(config.context.summaryModel) } catch {
                    throw ConfigError(file: reader.file, line: name.line, message: "context.summary_model: \(error.message)")
                }
            }
        }
        if let value = table["cache"] {
            let cache = try reader.table(value, "cache")
            try reader.allowOnly(cache, ["enabled", "only_temperature_zero", "ttl_hours", "max_megabytes", "backend"], context: "[cache]")
            if let v = cache["backend"] { config.cache.backend = try reader.backend(v, "cache.backend") }
            if let v = cache["enabled"] { config.cache.enabled = try reader.bool(v, "cache.enabled") }
            if let v = cache["only_temperature_zero"] { config.cache.onlyDeterministic = try reader.bool(v, "cache.only_temperature_zero") }
            if let v = cache["ttl_hours"] { config.cache.ttlSeconds = try reader.integer(v, "cache.ttl_hours", min: 1, max: 87_600) * 3600 }
            if let v = cache["max_megabytes"] { config.cache.maxMegabytes = try reader.integer(v, "cache.max_megabytes", min: 1, max: 1_000_000) }
        }
        if let value = table["ledger"] {
            let ledger = try reader.table(value, "ledger")
            try reader.allowOnly(ledger, ["backend", "url_env", "user"], context: "[ledger]")
            if let v = ledger["backend"] { config.ledger.backend = try reader.backend(v, "ledger.backend") }
            if let v = ledger["url_env"] {
                let name = try reader.string(v, "ledger.url_env")
                guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
                    throw ConfigError(file: reader.file, line: v.line, message: "ledger.url_env: expected the name of an environment variable (letters, digits, _)")
                }
                config.ledger.urlVariable = name
            }
            if let v = ledger["user"] { config.ledger.user = try reader.userName(v, "ledger.user") }
        }
        return config
    }

    /// `fallback = [...]` and `[models."provider:model"]`: every name must resolve, so a typo is caught
    /// when the config loads, not when a provider fails.
    static func parseChains(_ table: TOMLTable, into config: inout ParleyConfig, reader: ConfigReader) throws(ConfigError) {
        func chain(_ value: TOMLValue, _ key: String) throws(ConfigError) -> [String] {
            let names = try reader.strings(value, key)
            for name in names {
                do { _ = try config.resolve(name) } catch {
                    throw ConfigError(file: reader.file, line: value.line, message: "\(key): \(error.message)")
                }
            }
            return names
        }
        if let value = table["fallback"] { config.fallback = try chain(value, "fallback") }
        guard let value = table["models"] else { return }
        let models = try reader.table(value, "models")
        for (name, body) in models.entries {
            let key = "models.\"\(name)\""
            let ref: ModelRef
            do { ref = try config.resolve(name) } catch {
                throw ConfigError(file: reader.file, line: body.line, message: "[\(key)]: \(error.message)")
            }
            let table = try reader.table(body, key)
            try reader.allowOnly(table, ["fallback", "input_price", "output_price", "cached_input_price", "cache_write_price", "context_window", "max_output", "tools", "context"]
                                 + RequestSettings.keys, context: "[\(key)]")
            var settings = ModelSettings()
            settings.request = try RequestSettings.parse(table, key: key, reader: reader)
            if let v = table["fallback"] { settings.fallback = try chain(v, "\(key).fallback") }
            if let v = table["tools"] { settings.supportsTools = try reader.bool(v, "\(key).tools") }
            if let v = table["context"] { settings.context = try ContextPolicy.parse(v, "\(key).context", reader: reader) }
            if let v = table["input_price"] { settings.pricing.input = try reader.dollars(v, "\(key).input_price") }
            if let v = table["output_price"] { settings.pricing.output = try reader.dollars(v, "\(key).output_price") }
            if let v = table["cached_input_price"] { settings.pricing.cachedInput = try reader.dollars(v, "\(key).cached_input_price") }
            if let v = table["cache_write_price"] { settings.pricing.cacheWrite = try reader.dollars(v, "\(key).cache_write_price") }
            if let v = table["context_window"] { settings.pricing.contextWindow = try reader.integer(v, "\(key).context_window", min: 1) }
            if let v = table["max_output"] { settings.pricing.maxOutput = try reader.integer(v, "\(key).max_output", min: 1) }
            config.models[ref] = settings
        }
    }

    /// The models to try after `ref` fails: its own chain, else the top-level one; never itself.
    public func fallbackChain(after ref: ModelRef) -> [ModelRef] {
        let names = models[ref]?.fallback ?? fallback
        var seen: Set<ModelRef> = [ref]
        return names.compactMap { try? resolve($0) }.filter { seen.insert($0).inserted }
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

    /// An integer in `min...max`; the default ceiling keeps every product Parley forms with it (hours
    /// to seconds, megabytes to bytes) far from overflow.
    func integer(_ value: TOMLValue, _ key: String, min: Int, max: Int = 1_000_000_000) throws(ConfigError) -> Int {
        guard case let .integer(i, line) = value else { throw fail(value, key, expected: "an integer") }
        guard i >= min else { throw ConfigError(file: file, line: line, message: "\(key): expected at least \(min), found \(i)") }
        guard i <= max else { throw ConfigError(file: file, line: line, message: "\(key): expected at most \(max), found \(i)") }
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

    func dollars(_ value: TOMLValue, _ key: String, unit: String = "US dollars") throws(ConfigError) -> Double {
        let number: Double
        switch value {
        case let .integer(i, _): number = Double(i)
        case let .float(f, _): number = f
        default: throw fail(value, key, expected: "a number (\(unit))")
        }
        guard number >= 0, number.isFinite else {
            throw ConfigError(file: file, line: value.line, message: "\(key): expected a number (\(unit)) of at least 0, found \(number)")
        }
        return number
    }

    func backend(_ value: TOMLValue, _ key: String) throws(ConfigError) -> StoreBackend {
        guard let backend = StoreBackend(rawValue: try string(value, key)) else {
            throw ConfigError(file: file, line: value.line, message: "\(key): expected \"sqlite\" or \"postgres\"")
        }
        return backend
    }

    func userName(_ value: TOMLValue, _ key: String) throws(ConfigError) -> String {
        let name = try string(value, key)
        guard UserName.isValid(name) else {
            throw ConfigError(file: file, line: value.line, message: "\(key): expected 1 to 64 letters, digits, '.', '_', '@' or '-'")
        }
        return name
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
