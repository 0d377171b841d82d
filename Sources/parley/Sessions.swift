import ArgumentParser
import Foundation
import ParleyCore
import ParleyKit

/// `parley sessions …`: list, show, search, export and remove saved conversations.
struct Sessions: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sessions",
        abstract: "List, show, search, export and remove saved sessions.",
        subcommands: [List.self, Show.self, Search.self, Export.self, Remove.self],
        defaultSubcommand: List.self
    )

    struct Location: ParsableArguments {
        @Option(help: "Where sessions are kept (default: $PARLEY_SESSIONS_DIR, else $XDG_DATA_HOME/parley/sessions).")
        var sessionsDir: String?

        func store() -> SessionStore {
            let environment = ProcessInfo.processInfo.environment
            return SessionStore(directory: SessionStore.directory(paths: ParleyPaths.fromEnvironment(environment), environment: environment, override: sessionsDir))
        }
    }

    /// Text from a file goes through the sanitizer before it reaches a terminal.
    static func output(_ text: String) { Terminal.standardOutput.say(text) }

    /// Files that could not be read are named on stderr; the rest still list.
    static func report(_ problems: [SessionFileError]) {
        for problem in problems { Terminal.standardError.say("parley: \(problem.userMessage)\n") }
    }

    static func cost(_ session: Session) -> String {
        let replies = session.messages.filter { $0.role == .assistant }
        if replies.isEmpty { return "$0.00" }
        let costs = replies.map(\.cost)
        guard costs.allSatisfy({ $0 != nil }) else { return "?" }
        return String(format: "$%.4f", costs.reduce(0) { $0 + ($1 ?? 0) })
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "Sessions, newest first: id, updated, messages, cost, model, title.")
        @OptionGroup var location: Location

        func run() throws {
            let (sessions, problems) = location.store().list()
            Sessions.report(problems)
            if sessions.isEmpty, problems.isEmpty { Terminal.standardOutput.line("no sessions yet in \(location.store().directory.path)") }
            for session in sessions {
                Sessions.output("\(session.id)  \(Session.displayTime(session.updatedAt))  \(String(format: "%4d", session.messages.count)) msgs  \(Sessions.cost(session))  \(session.model)  \(session.title)\n")
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "A session as Markdown on stdout (its current branch).")
        @OptionGroup var location: Location
        @Argument(help: "Session id, id prefix or title prefix.", completion: Completions.sessions) var session: String
        @Flag(help: "Every message, those on other branches (an edit, a /retry) marked.") var allBranches = false

        func run() throws {
            do { Sessions.output(try location.store().find(session).markdown(allBranches: allBranches)) } catch { throw fail(error) }
        }
    }

    struct Search: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "search", abstract: "Full-text search across sessions (case-insensitive); prints the matching lines.")
        @OptionGroup var location: Location
        @Argument(help: "Text to find.") var text: String

        func run() throws {
            let (sessions, problems) = location.store().list()
            Sessions.report(problems)
            var found = 0
            for session in sessions {
                for message in session.messages {
                    for line in message.content.split(separator: "\n") where line.localizedCaseInsensitiveContains(text) {
                        let who = message.role == .user ? "you" : [message.provider, message.model].compactMap { $0 }.joined(separator: ":")
                        Sessions.output("\(session.id)  \(session.title)  [\(who)]  \(line.trimmingCharacters(in: .whitespaces))\n")
                        found += 1
                    }
                }
            }
            if found == 0 { throw ExitCode(1) }
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "export", abstract: "A session as Markdown (for people) or JSON (the file's own format).")
        @OptionGroup var location: Location
        @Argument(help: "Session id, id prefix or title prefix.", completion: Completions.sessions) var session: String
        @Option(help: "md or json.") var format = "md"
        @Flag(help: "Every branch (json: the file as it is), not only the current one.") var allBranches = false

        func validate() throws {
            guard ["md", "json"].contains(format) else { throw ValidationError("--format must be md or json") }
        }

        func run() throws {
            do {
                let found = try location.store().find(session)
                if format == "json" {
                    let exported = allBranches ? found : found.currentBranchOnly
                    Terminal.standardOutput.say(String(decoding: try exported.encoded(), as: UTF8.self) + "\n")
                } else {
                    Sessions.output(found.markdown(allBranches: allBranches))
                }
            } catch {
                throw fail(error)
            }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Delete a session (asks first unless --yes).")
        @OptionGroup var location: Location
        @Argument(help: "Session id, id prefix or title prefix.", completion: Completions.sessions) var session: String
        @Flag(help: "Do not ask.") var yes = false

        func run() throws {
            do {
                let store = location.store()
                let found = try store.find(session)
                if !yes {
                    Terminal.standardError.say("delete “\(found.title)” (\(found.id), \(found.messages.count) messages)? [y/N] ")
                    guard let answer = readLine(), ["y", "yes"].contains(answer.lowercased()) else {
                        Terminal.standardError.say("kept\n")
                        return
                    }
                }
                try store.remove(found.id)
                Terminal.standardOutput.line("deleted \(found.id)")
            } catch {
                throw fail(error)
            }
        }
    }
}
