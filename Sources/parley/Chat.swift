import ArgumentParser
import Foundation
import ParleyCore
import ParleyKit
import ParleyTUI

/// `parley` with no subcommand: the full-screen chat in a terminal; a line-by-line chat on the same
/// engine when stdin or stdout is not a terminal.
struct Chat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "chat", abstract: "Chat (the default when no subcommand is given).")

    @Option(name: .shortAndLong, help: "provider:model to start with.", completion: Completions.models)
    var model: String?

    @Option(name: .shortAndLong, help: "A system prompt.")
    var system: String?

    @Flag(help: "Continue the most recent session, or the one named by SESSION.")
    var resume = false

    @Argument(help: "With --resume: a session id, id prefix or title prefix.", completion: Completions.sessions)
    var session: String?

    @Option(help: "Where sessions are kept (default: $PARLEY_SESSIONS_DIR, else $XDG_DATA_HOME/parley/sessions).")
    var sessionsDir: String?

    func validate() throws {
        if session != nil, !resume { throw ValidationError("a session name needs --resume: parley --resume \(session!)") }
    }

    func run() async throws {
        ChatRuntime.tuneMemory()
        do {
            let engine = try ChatEngine.fromEnvironment()
            let store = SessionStore(directory: SessionStore.directory(paths: engine.paths, environment: engine.environment, override: sessionsDir))
            // Without a name, the newest session that reads; any newer file that does not is named.
            let (resumed, passedOver): (Session?, [SessionFileError]) =
                !resume ? (nil, []) : session == nil ? try store.newest() : (try store.find(session), [])
            var skipped = passedOver.prefix(3).map { "not opened, newer but unreadable: \($0.userMessage)" }
            if passedOver.count > 3 { skipped.append("and \(passedOver.count - 3) more newer files that do not read: `parley sessions list` names them") }
            var decision = TerminalCheck.Decision.lineChat(reason: "")
            if isatty(STDIN_FILENO) == 1, isatty(STDOUT_FILENO) == 1 {
                decision = TerminalCheck.prepare(environment: engine.environment)
                if case let .lineChat(reason) = decision { Terminal.standardError.say("parley: \(reason)\n") }
            }
            if case let .screen(notes) = decision {
                let app = try ChatApp(engine: engine, model: model, system: system, sessions: store, resume: resumed)
                app.startupNotes = notes + skipped
                // The screen gets a thread of its own: its loop blocks in poll(), and must not hold
                // one of the few threads that run network tasks.
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    let thread = Thread {
                        do { try app.run(); continuation.resume() } catch { continuation.resume(throwing: error) }
                    }
                    thread.stackSize = 8 << 20
                    thread.start()
                }
            } else {
                for line in skipped { Terminal.standardError.say("parley: \(line)\n") }
                try await lineChat(resumed)
            }
        } catch {
            throw fail(error)
        }
    }

    /// The line chat continues a resumed conversation as context; it does not write sessions. Each
    /// message goes through the same turn as `ask` and the screen: cache, budget, retries, fallback, ledger.
    func lineChat(_ resumed: Session?) async throws {
        let engine = try ChatEngine.fromEnvironment()
        var ref = try engine.config.resolve(model ?? resumed?.model ?? engine.defaultModelName)
        var messages: [ChatMessage] = resumed?.chatMessages ?? []
        let out = Terminal.standardOutput
        out.say("parley \(Parley.version) · \(ref) · /model NAME to switch, /quit to leave\n")
        while true {
            out.write("\n> ")
            guard let line = readLine() else { out.write("\n"); return }
            let input = line.trimmingCharacters(in: .whitespaces)
            if input.isEmpty { continue }
            if input == "/quit" || input == "/exit" { return }
            if input.hasPrefix("/model") {
                let name = input.dropFirst("/model".count).trimmingCharacters(in: .whitespaces)
                if name.isEmpty { out.say("model: \(ref)\n"); continue }
                do {
                    ref = try engine.config.resolve(name)
                    out.say("now talking to \(ref)\n")
                } catch {
                    out.say("\(describe(error))\n")
                }
                continue
            }
            messages.append(.user(input))
            let request = ChatRequest(model: ref.model, system: system, messages: messages, temperature: engine.config.temperature)
            var sanitizer = TerminalSanitizer()
            var result: TurnResult?
            do {
                for try await event in engine.turn(request, model: ref) {
                    switch event {
                    case let .chat(event):
                        if case let .textDelta(delta) = event { out.write(sanitizer.sanitize(delta)) }
                        if case let .retrying(attempt, of, delay, reason) = event {
                            Terminal.standardError.say("parley: \(ref.provider): \(reason); retrying in \(String(format: "%.1f", delay)) s (retry \(attempt) of \(of))\n")
                        }
                    case let .fallingBack(from, to, reason):
                        Terminal.standardError.say("parley: \(reason)\nparley: falling back from \(from) to \(to)\n")
                    case let .finished(turn):
                        result = turn
                    case let .trimmed(model, dropped):
                        Terminal.standardError.say("parley: the \(dropped) oldest messages are not sent to \(model), to fit its window\n")
                    case .sending, .cacheHit, .cost, .firstToken:
                        break
                    }
                }
                messages.append(.assistant(result?.reply.text ?? ""))
                if let result {
                    let rate = result.tokensPerSecond.map { String(format: " · %.0f tok/s", $0) } ?? ""
                    let ttft = result.timeToFirstTokenMs.map { String(format: " · first token %.0f ms", $0) } ?? ""
                    out.say("\n[\(result.model)\(result.fromCache ? " · cached" : ttft + rate)]\n")
                }
            } catch {
                if let text = result?.reply.text, !text.isEmpty { messages.append(.assistant(text)) }
                out.say("\n\(describe(error))\n")
            }
            for problem in engine.stores.takeProblems() { Terminal.standardError.say("parley: \(problem)\n") }
        }
    }
}
