import ArgumentParser
import Foundation
import ParleyCore
import ParleyKit

@main
struct Parley: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "parley",
        abstract: "Chat with large language models in a terminal.",
        version: version,
        subcommands: [Chat.self, Ask.self, Templates.self, Route.self, GuardCommand.self, Models.self, Sessions.self, Cost.self, Stats.self, CacheCommand.self, MCPCommand.self, Setup.self, LocalServer.self],
        defaultSubcommand: Chat.self
    )
}

/// Prints a user-facing error as one line on stderr and exits non-zero.
func fail(_ error: any Error) -> ExitCode {
    Terminal.standardError.say("parley: \(describe(error))\n")
    return ExitCode(1)
}

