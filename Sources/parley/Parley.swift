import ArgumentParser
import Foundation
import ParleyCore
import ParleyKit

/// The entry point. Swift's async main parks the main thread with `pthread_exit`, which unwinds the
/// thread's stack through the binary's unwind tables: 1 MB of them stayed resident for the life of the
/// screen. Here the main thread waits on a semaphore instead, while the command runs on the task pool
/// as before (nothing in Parley or its packages runs on the main actor).
@main
enum Entry {
    static func main() {
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            await Parley.main()
            done.signal()
        }
        done.wait()
    }
}

/// Every command writes out its `commandName`: ArgumentParser derives a missing one with
/// `String(describing:)`, a dynamic cast that scans all the binary's protocol conformances.
struct Parley: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "parley",
        abstract: "Chat with large language models in a terminal.",
        version: version,
        subcommands: [Chat.self, Ask.self, Templates.self, Route.self, GuardCommand.self, Models.self, Sessions.self, Cost.self, Stats.self, CacheCommand.self, MCPCommand.self, Serve.self, Setup.self, LocalServer.self],
        defaultSubcommand: Chat.self
    )
}

/// Prints a user-facing error as one line on stderr and exits non-zero.
func fail(_ error: any Error) -> ExitCode {
    Terminal.standardError.say("parley: \(describe(error))\n")
    return ExitCode(1)
}

