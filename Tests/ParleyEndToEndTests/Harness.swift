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

    /// Runs `parley ARGS` with `input` on stdin; stdout and stderr are files (never a terminal). Files,
    /// not pipes: a pipe's reader waits for every holder of its write end, and a detached child (the
    /// local server's watchdog) could be one. Killed after `limit` seconds, so a hang is a failure.
    /// With `measuringMemory`, the run's peak resident memory (kB) is appended to stderr as `maxrss_kb=N`
    /// (a python wrapper reads it from getrusage after the binary exits).
    func run(_ arguments: [String], input: String = "", extraEnvironment: [String: String] = [:], limit: Double = 180,
             measuringMemory: Bool = false) throws -> Result {
        let base = home.appendingPathComponent("run-\(UInt32.random(in: 0...UInt32.max))")
        let paths = (input: base.path + ".in", out: base.path + ".out", err: base.path + ".err")
        try Data(input.utf8).write(to: URL(fileURLWithPath: paths.input))
        defer { for path in [paths.input, paths.out, paths.err] { try? FileManager.default.removeItem(atPath: path) } }
        let wrapper = measuringMemory ? ["python3", "-c", "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
            + "print('maxrss_kb=%d' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)"] : []
        let command = (wrapper + [Self.binary] + arguments).map(ChildProcess.shellQuote).joined(separator: " ")
        let child = try ChildProcess.spawn(["/bin/sh", "-c", "exec \(command) < \(ChildProcess.shellQuote(paths.input)) > \(ChildProcess.shellQuote(paths.out)) 2> \(ChildProcess.shellQuote(paths.err))"],
                                           environment: environment.merging(extraEnvironment) { $1 })
        let deadline = Date().addingTimeInterval(limit)
        var status = child.poll()
        while status == nil, Date() < deadline {
            usleep(5_000)
            status = child.poll()
        }
        if status == nil {
            child.signal(SIGKILL)
            _ = child.wait()
        }
        let out = (try? String(contentsOfFile: paths.out, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOfFile: paths.err, encoding: .utf8)) ?? ""
        return Result(status: status ?? -1, stdout: out, stderr: status == nil ? "killed after \(Int(limit)) s\n" + err : err)
    }

    func cleanUp() { try? FileManager.default.removeItem(at: home) }
}
