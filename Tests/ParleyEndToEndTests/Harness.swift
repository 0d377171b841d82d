import Foundation
import ParleyKit
#if canImport(Glibc)
import Glibc
#endif

/// Runs the real `parley` binary with isolated config and data directories that share the installed
/// local runtime (so `parley setup` is needed once, not per test).
struct ParleyHarness {
    let home: URL
    let runtimeDirectory: URL

    static var binary: String {
        if let explicit = ProcessInfo.processInfo.environment["PARLEY_BIN"] { return explicit }
        // The test bundle lives beside the built products.
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("parley")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate.path }
            directory.deleteLastPathComponent()
        }
        return URL(fileURLWithPath: ChatEngine.currentExecutable()).deletingLastPathComponent().appendingPathComponent("parley").path
    }

    init(config: String? = nil) throws {
        home = FileManager.default.temporaryDirectory.appendingPathComponent("parley-e2e-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        runtimeDirectory = ParleyPaths.fromEnvironment().runtimeDirectory
        try FileManager.default.createDirectory(at: home.appendingPathComponent("config/parley"), withIntermediateDirectories: true)
        if let config {
            try config.write(to: home.appendingPathComponent("config/parley/config.toml"), atomically: true, encoding: .utf8)
        }
    }

    var environment: [String: String] {
        var environment = ProcessInfo.processInfo.environment
        for key in environment.keys where key.hasSuffix("_API_KEY") || key.hasSuffix("_BASE_URL") || key == "OLLAMA_HOST" || key == "PARLEY_MODEL" {
            environment[key] = nil
        }
        environment["XDG_CONFIG_HOME"] = home.appendingPathComponent("config").path
        environment["XDG_DATA_HOME"] = home.appendingPathComponent("data").path
        environment["PARLEY_RUNTIME_DIR"] = runtimeDirectory.path
        return environment
    }

    var paths: ParleyPaths {
        ParleyPaths(configDirectory: home.appendingPathComponent("config/parley"),
                    dataDirectory: home.appendingPathComponent("data/parley"), runtimeDirectory: runtimeDirectory)
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs `parley ARGS` with `input` on stdin; stdout and stderr are pipes (never a terminal).
    func run(_ arguments: [String], input: String = "", extraEnvironment: [String: String] = [:]) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = arguments
        process.environment = environment.merging(extraEnvironment) { $1 }
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try stdin.fileHandleForWriting.close()
        let out = stdout.fileHandleForReading.readDataToEndOfFile()
        let err = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
    }

    func cleanUp() { try? FileManager.default.removeItem(at: home) }
}
