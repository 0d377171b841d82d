import Foundation
import Testing
import ParleyCore
import ParleyKit
import ParleyTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Issue 19: terminals as people have them. The real binary in tmux under each TERM and locale, and
/// job control (Ctrl-Z, SIGTSTP from outside, `fg`) with a reply streaming.
@Suite(.serialized) struct TerminalMatrixTests {
    typealias Tmux = ScreenTests.Tmux

    static func config(_ baseURL: String) -> String {
        "default_model = \"fake:m\"\n[providers.fake]\nbase_url = \"\(baseURL)\"\nmodels = [\"m\"]\n"
    }

    static let terms = ["xterm-256color", "xterm", "screen-256color", "tmux-256color", "linux", "vt100", "dumb", "unknown-term"]
    static let locales: [String?] = ["C", "POSIX", "C.UTF-8", nil]

    /// For each TERM and locale: the first screen (or the line chat with its reason), non-ASCII typed
    /// and sent intact, a streamed reply shown, quit, and the terminal's settings as they were.
    @Test func everyTermAndLocaleGetsAWorkingChat() async throws {
        let server = try await FaultServer(format: .openAI, script: [.ok])
        let harness = try ParleyHarness(config: Self.config(server.providerBaseURL))
        defer { harness.cleanUp() }
        let tmux = Tmux()
        tmux.start(harness, width: 110, height: 30)
        defer { tmux.run(["kill-server"]) }
        tmux.type("PS1='$ '")
        tmux.keys("Enter")
        let scratch = harness.home.path
        var failures: [String] = []
        var completed = 0
        for term in Self.terms {
            for locale in Self.locales {
                let label = "TERM=\(term) \(locale.map { "LANG=\($0)" } ?? "no locale")"
                let env = "env -u LANG -u LC_ALL -u LC_CTYPE TERM=\(term)" + (locale.map { " LANG=\($0)" } ?? "")
                let requests = server.requestCount
                // A terminal without an alternate screen (vt100) leaves the last run's screen behind: clear
                // it first, so the waits below see only this run.
                tmux.type("clear")
                tmux.keys("Enter")
                for _ in 0..<100 {
                    let screen = tmux.screen()
                    if !screen.contains("type a message"), !screen.contains("/quit to leave"), !screen.contains("EXITED-") { break }
                    try await Task.sleep(for: .milliseconds(20))
                }
                tmux.type("stty -g > \(scratch)/before; \(env) \(ParleyHarness.binary); stty -g > \(scratch)/after; echo EXIT\"\"ED-$?")  // the marker is not on the command line
                tmux.keys("Enter")
                let lineChat = term == "dumb" || term == "unknown-term"
                let first = await tmux.waitAsync(for: lineChat ? "/quit to leave" : "type a message", seconds: 30)
                guard first.contains(lineChat ? "/quit to leave" : "type a message") else {
                    failures.append("\(label): no first screen:\n\(first)")
                    tmux.keys("C-c"); tmux.keys("C-c"); tmux.keys("C-d")
                    continue
                }
                if lineChat, !first.contains("using the line chat") { failures.append("\(label): no reason for the line chat:\n\(first)") }
                if !lineChat, locale != "C.UTF-8", !first.contains("is not UTF-8; the screen uses") {
                    failures.append("\(label): no note about the locale:\n\(first)")
                }
                tmux.type("héllo 日本")
                let typed = lineChat ? "" : await tmux.waitAsync(for: "héllo 日本", seconds: 5)
                if !lineChat, !typed.contains("héllo 日本") {
                    failures.append("\(label): the typed text is not shown:\n\(tmux.screen())")
                }
                tmux.keys("Enter")
                let replied = await tmux.waitAsync(for: FaultServer.replyText, seconds: 30)
                if !replied.contains(FaultServer.replyText) { failures.append("\(label): no reply:\n\(replied)") }
                if !lineChat {
                    // Colours as the terminal offers them: 256 where it has 256, the basic 8 on xterm and
                    // linux, none on vt100.
                    let styled = tmux.run(["capture-pane", "-e", "-p", "-t", tmux.session])
                    let has256 = styled.contains("38;5;") || styled.contains("48;5;")
                    let hasBasic = styled.range(of: "\u{1B}\\[([0-9;]*;)?[34][0-7](;[0-9;]*)?m", options: .regularExpression) != nil
                    let expected: (Bool, Bool) = term.contains("256color") ? (true, true) : term == "vt100" ? (false, false) : (false, true)
                    if has256 != expected.0 || (hasBasic || has256) != expected.1 {
                        failures.append("\(label): colours 256=\(has256) basic=\(hasBasic), expected \(expected)")
                    }
                }
                // At least one request (a loaded machine may see a retry), carrying the text intact.
                if server.requestCount > requests, let body = server.requests.last?.bodyText {
                    if !body.contains("héllo 日本") { failures.append("\(label): sent \(body)") }
                } else {
                    failures.append("\(label): no request")
                }
                tmux.type("/quit")
                tmux.keys("Enter")
                let after = await tmux.waitAsync(for: "EXITED-", seconds: 30)
                if !after.contains("EXITED-0") { failures.append("\(label): did not exit cleanly:\n\(after)") }
                let before = try? String(contentsOfFile: scratch + "/before", encoding: .utf8)
                let restored = try? String(contentsOfFile: scratch + "/after", encoding: .utf8)
                if before == nil || before != restored { failures.append("\(label): stty -g changed: \(before ?? "?") → \(restored ?? "?")") }
                try? FileManager.default.removeItem(atPath: scratch + "/after")
                completed += 1
            }
        }
        await server.shutdown()
        #expect(completed == Self.terms.count * Self.locales.count)
        #expect(server.requestCount >= completed, "a request per combination")
        #expect(failures.isEmpty, "\(failures.count) of \(Self.terms.count * Self.locales.count):\n\(failures.joined(separator: "\n\n"))")
    }

    /// The words of the reply to round `tag`.
    static func words(_ tag: String) -> [String] { (1...40).map { " \(tag)\($0)" } }

    /// A reply of 40 words, one every 80 ms: long enough to be stopped in the middle.
    static func slowReply(_ tag: String) -> [ScriptedHTTPServer.Step] {
        let words = Self.words(tag)
        let stream = FaultServer.events(.openAI, words: words)
        var steps: [ScriptedHTTPServer.Step] = [.head(status: 200, headers: [("Content-Type", "text/event-stream")]), .write(Array(stream.open.joined().utf8))]
        for word in stream.words { steps += [.write(Array(word.utf8)), .pause(.milliseconds(80))] }
        return steps + [.write(Array((stream.close.joined() + stream.end).utf8)), .end]
    }

    @Test func ctrlZAndSIGTSTPSuspendAndFgResumesWithTheReplyComplete() async throws {
        let server = try await ScriptedHTTPServer { request in Self.slowReply(request.bodyText.contains("round 1") ? "b" : "a") }
        let harness = try ParleyHarness(config: Self.config(server.baseURL + "/v1"))
        defer { harness.cleanUp() }
        let tmux = Tmux()
        tmux.startParleyInShell(harness)
        defer { tmux.run(["kill-server"]) }
        try #require(await tmux.waitAsync(for: "type a message").contains("type a message"))
        for (round, how) in ["Ctrl-Z", "SIGTSTP"].enumerated() {
            let tag = round == 0 ? "a" : "b"
            tmux.type("Count, round \(round).")
            tmux.keys("Enter")
            try #require(await tmux.waitAsync(for: " \(tag)3", seconds: 10).contains(" \(tag)3"))
            if how == "Ctrl-Z" {
                tmux.keys("C-z")
            } else {
                let shell = tmux.run(["list-panes", "-t", tmux.session, "-F", "#{pane_pid}"]).trimmingCharacters(in: .whitespacesAndNewlines)
                let children = try String(contentsOfFile: "/proc/\(shell)/task/\(shell)/children", encoding: .utf8).split(separator: " ").compactMap { Int32($0) }
                try #require(children.count == 1)
                kill(children[0], SIGTSTP)
            }
            let stopped = await tmux.waitAsync(for: "Stopped", seconds: 10)
            #expect(stopped.contains("Stopped"), "\(how): the shell says the job stopped:\n\(stopped)")
            tmux.type("echo shell-is-back")
            tmux.keys("Enter")
            #expect(await tmux.waitAsync(for: "shell-is-back\n$", seconds: 5).contains("shell-is-back"), "\(how): the shell reads the terminal while Parley is stopped")
            try await Task.sleep(for: .milliseconds(1_500))  // the reply would have ended by now; it waits in the socket instead
            tmux.type("fg")
            tmux.keys("Enter")
            let resumed = await tmux.waitAsync(for: " \(tag)40", seconds: 15)
            #expect(resumed.contains(" \(tag)40"), "\(how): after fg the reply goes on to its end:\n\(resumed)")
            #expect(resumed.contains("Count, round \(round)."), "\(how): the screen is redrawn")
            #expect(await tmux.waitAsync(for: "│ idle │", seconds: 10).contains("│ idle │"), "\(how): the reply ends")
        }
        tmux.type("/quit")
        tmux.keys("Enter")
        // Parley has exited (its last save done) when the shell has no child left.
        let shell = tmux.run(["list-panes", "-t", tmux.session, "-F", "#{pane_pid}"]).trimmingCharacters(in: .whitespacesAndNewlines)
        for _ in 0..<200 {
            let children = (try? String(contentsOfFile: "/proc/\(shell)/task/\(shell)/children", encoding: .utf8)) ?? ""
            if children.trimmingCharacters(in: .whitespaces).isEmpty { break }
            try await Task.sleep(for: .milliseconds(25))
        }
        await server.shutdown()

        let sessions = SessionStore(directory: harness.paths.dataDirectory.appendingPathComponent("sessions")).list().sessions
        let replies = sessions.first?.messages.filter { $0.role == .assistant } ?? []
        #expect(replies.count == 2)
        #expect(replies.map(\.content) == [Self.words("a").joined(), Self.words("b").joined()], "\(replies.map(\.content))")
        #expect(replies.allSatisfy { $0.status == .complete })
    }
}
