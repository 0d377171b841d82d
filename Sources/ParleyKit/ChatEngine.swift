import Foundation
import ParleyCore
import ParleyProviders

/// The application core that `ask` and the screen share: resolves a model name to a provider endpoint
/// (starting the local server when needed) and streams replies through the provider layer.
public struct ChatEngine: Sendable {
    public var config: ParleyConfig
    public var paths: ParleyPaths
    public var environment: [String: String]
    public var provider: any ChatProvider
    /// This program's path, used to start the local server's watchdog.
    public var executablePath: String
    /// The usage ledger and the response cache in the data directory.
    public var stores: UsageStores

    public init(
        config: ParleyConfig, paths: ParleyPaths, environment: [String: String] = ProcessInfo.processInfo.environment,
        provider: any ChatProvider = ChatClient(), executablePath: String = ChatEngine.currentExecutable()
    ) {
        self.config = config
        self.paths = paths
        self.environment = environment
        self.provider = provider
        self.executablePath = executablePath
        self.stores = UsageStores(directory: paths.dataDirectory, cacheSettings: config.cache, ledgerSettings: config.ledger, environment: environment)
    }

    /// Whose requests these are, in the ledger: `[ledger] user`, `PARLEY_USER`, else the login name.
    public var userName: String { UserName.current(config: config.ledger, environment: environment) }

    /// Loads the config from its usual place, for the command line.
    public static func fromEnvironment() throws -> ChatEngine {
        let environment = ProcessInfo.processInfo.environment
        let paths = ParleyPaths.fromEnvironment(environment)
        let configFile = environment["PARLEY_CONFIG"].map { URL(fileURLWithPath: $0) } ?? paths.configFile
        let config = try ParleyConfig.load(from: configFile)
        return ChatEngine(config: config, paths: paths, environment: environment)
    }

    public static func currentExecutable() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    public var localRuntime: LocalRuntime { LocalRuntime(paths: paths, settings: config.local) }

    /// The model to use when none is named: `PARLEY_MODEL`, then the config's `default_model`.
    public var defaultModelName: String { environment["PARLEY_MODEL"].flatMap { $0.isEmpty ? nil : $0 } ?? config.defaultModel }

    /// Resolves the name and makes its endpoint ready (for `local`, a healthy server).
    public func prepare(model name: String?) async throws -> (ModelRef, ProviderEndpoint) {
        try await prepare(try config.resolve(name ?? defaultModelName))
    }

    /// Makes the model's endpoint ready: for `local`, a healthy server; for the rest, a key if it needs one.
    public func prepare(_ ref: ModelRef) async throws -> (ModelRef, ProviderEndpoint) {
        if ref.provider == "local" {
            let (port, key, _) = try await localRuntime.ensureServer(executable: executablePath)
            return (ref, config.endpoint(for: ref, environment: environment, local: (port, key)))
        }
        let endpoint = config.endpoint(for: ref, environment: environment)
        try endpoint.requireKey()
        return (ref, endpoint)
    }

    /// Streams one reply. For the local server, use is recorded so its idle shutdown is pushed back.
    public func stream(_ request: ChatRequest, endpoint: ProviderEndpoint) -> AsyncThrowingStream<ChatEvent, any Error> {
        if endpoint.name == "local" { localRuntime.touch() }
        var request = request
        if request.maxTokens == nil { request.maxTokens = endpoint.defaultMaxTokens }
        return provider.stream(request, endpoint: endpoint)
    }
}
