import Foundation

/// Where Parley reads and writes, following the XDG base directory rules.
public struct ParleyPaths: Sendable, Equatable {
    public var configDirectory: URL
    public var dataDirectory: URL
    /// The virtualenv with llama-server and the bundled model (shared by every data directory user).
    public var runtimeDirectory: URL

    public init(configDirectory: URL, dataDirectory: URL, runtimeDirectory: URL) {
        self.configDirectory = configDirectory
        self.dataDirectory = dataDirectory
        self.runtimeDirectory = runtimeDirectory
    }

    /// `$XDG_CONFIG_HOME/parley`, `$XDG_DATA_HOME/parley`, and `PARLEY_RUNTIME_DIR` or `<data>/runtime`.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> ParleyPaths {
        let home = environment["HOME"].map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser
        func base(_ variable: String, _ fallback: String) -> URL {
            if let value = environment[variable], value.hasPrefix("/") { return URL(fileURLWithPath: value) }
            return home.appendingPathComponent(fallback)
        }
        let config = base("XDG_CONFIG_HOME", ".config").appendingPathComponent("parley")
        let data = base("XDG_DATA_HOME", ".local/share").appendingPathComponent("parley")
        let runtime = environment["PARLEY_RUNTIME_DIR"].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
            ?? data.appendingPathComponent("runtime")
        return ParleyPaths(configDirectory: config, dataDirectory: data, runtimeDirectory: runtime)
    }

    public var configFile: URL { configDirectory.appendingPathComponent("config.toml") }
    public var venvDirectory: URL { runtimeDirectory.appendingPathComponent("venv") }
    /// The port and pid of the llama-server this data directory started.
    public var localServerStateFile: URL { runtimeDirectory.appendingPathComponent("server.json") }
    public var localServerLog: URL { runtimeDirectory.appendingPathComponent("server.log") }
}
