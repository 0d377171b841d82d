import Foundation
import ParleyKit
import ParleyTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A tmux session on its own socket, driven as a person would: keys in, screen read back.
struct TmuxSession {
    let socket = FileManager.default.temporaryDirectory.appendingPathComponent("parley-bench-tmux-\(getpid())").path
    let name = "bench"

    @discardableResult
    func run(_ arguments: [String]) -> String {
        (try? ChildProcess.capture(["tmux", "-S", socket] + arguments))?.output ?? ""
    }

    func type(_ text: String) { run(["send-keys", "-t", name, "-l", text]) }
    func keys(_ keys: String...) { run(["send-keys", "-t", name] + keys) }
    func screen() -> String { run(["capture-pane", "-p", "-t", name]) }

    /// Polls the screen until it contains `text`; the time it took, or nil after `seconds`.
    @discardableResult
    func wait(for text: String, seconds: Double = 30) -> Double? {
        let start = ContinuousClock.now
        while (ContinuousClock.now - start).seconds < seconds {
            if screen().contains(text) { return (ContinuousClock.now - start).milliseconds }
        }
        return nil
    }

    /// A shell at 120×40 with only `home`'s directories, as a new terminal would have.
    func startShell(home: URL) {
        run(["new-session", "-d", "-s", name, "-x", "120", "-y", "40", "env", "-i", "TERM=xterm-256color", "LANG=C.UTF-8",
             "HOME=\(home.path)", "PATH=/usr/bin:/bin", "XDG_CONFIG_HOME=\(home.path)/config", "XDG_DATA_HOME=\(home.path)/data",
             "bash", "--norc", "--noprofile"])
        type("PS1='$ '")
        keys("Enter")
    }

    /// Runs `command` at a cleared prompt `runs` times, each until the screen shows `ready`, then Ctrl-D;
    /// the milliseconds from Enter to `ready`. `whileRunning` sees the process on the first run.
    func timeStarts(_ command: String, until ready: String, runs: Int, whileRunning: (pid_t) async throws -> Void = { _ in }) async rethrows -> [Double] {
        var times: [Double] = []
        for run in 0..<runs {
            type("clear")
            keys("Enter")
            // A cleared screen is the prompt alone (capture-pane drops its trailing space).
            let cleared = ContinuousClock.now
            while screen().trimmingCharacters(in: .whitespacesAndNewlines) != "$", (ContinuousClock.now - cleared).seconds < 10 {}
            type(command)
            let start = ContinuousClock.now
            keys("Enter")
            guard wait(for: ready) != nil else { print("\(command) did not show \"\(ready)\":\n\(screen())"); exit(1) }
            times.append((ContinuousClock.now - start).milliseconds)
            if run == 0, let pid = foregroundChild() { try await whileRunning(pid) }
            keys("C-d")
            wait(for: "$ ")
        }
        return times
    }

    /// The pid of the program running in the pane's shell.
    func foregroundChild() -> pid_t? {
        let shell = run(["list-panes", "-t", name, "-F", "#{pane_pid}"]).trimmingCharacters(in: .whitespacesAndNewlines)
        let children = (try? String(contentsOfFile: "/proc/\(shell)/task/\(shell)/children", encoding: .utf8)) ?? ""
        return children.split(separator: " ").compactMap { pid_t($0) }.first
    }
}

/// Sends "go", waits until the reply has streamed to its end, and says what it cost: wall time, CPU
/// seconds of `pid`, the status bar's rate, and the usage after.
func streamOneReply(_ tmux: TmuxSession, pid: pid_t) -> (wall: Double, cpu: Double, shown: String, after: ProcessUsage) {
    tmux.type("go")
    let before = processUsage(pid)
    let start = ContinuousClock.now
    tmux.keys("Enter")
    tmux.wait(for: "streaming")
    tmux.wait(for: " tok/s", seconds: 120)
    let wall = (ContinuousClock.now - start).seconds
    let after = processUsage(pid)
    let shown = tmux.screen().split(separator: "│").first { $0.contains("tok/s") }?.trimmingCharacters(in: .whitespaces) ?? "?"
    return (wall, after.cpu - before.cpu, shown, after)
}

/// CPU seconds used so far, the context switches of all its threads and of the screen's thread
/// (each one a wake-up), and resident memory.
struct ProcessUsage {
    var cpu: Double
    /// Context switches so far, by thread id.
    var switches: [String: Int]
    var uiWakeups: Int
    var rssMB: Double

    /// Wake-ups of every thread since `earlier`: a thread that ended in between is left out (its count
    /// went with it), one that started counts whole.
    func wakeups(since earlier: ProcessUsage) -> Int {
        switches.reduce(0) { $0 + $1.value - (earlier.switches[$1.key] ?? 0) }
    }
}

func processUsage(_ pid: pid_t) -> ProcessUsage {
    let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
    let fields = stat.split(separator: ")").last.map { $0.split(separator: " ") } ?? []
    let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
    let cpu = fields.count > 12 ? ((Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)) / ticks : 0
    var threads: [String: Int] = [:], uiWakeups = 0
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
    for task in tasks {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/status", encoding: .utf8)) ?? ""
        var switches = 0
        for line in status.split(separator: "\n") where line.hasPrefix("voluntary_ctxt_switches") || line.hasPrefix("nonvoluntary_ctxt_switches") {
            switches += Int(line.split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "") ?? 0
        }
        threads[task] = switches
        if status.hasPrefix("Name:\tparley-ui") { uiWakeups = switches }
    }
    let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    let rss = status.split(separator: "\n").first { $0.hasPrefix("VmRSS") }.flatMap { Double($0.split(separator: " ")[1]) } ?? 0
    return ProcessUsage(cpu: cpu, switches: threads, uiWakeups: uiWakeups, rssMB: rss / 1024)
}

/// The real `parley` in tmux against a loopback provider that streams about 1,000 tokens/s.
func tuiBenchmark(tokens: Int) async throws {
    let (server, home) = try await streamingProvider(tokens: tokens, pause: .microseconds(900))
    let tmux = TmuxSession()
    defer {
        tmux.run(["kill-server"])
        try? FileManager.default.removeItem(at: home)
        try? FileManager.default.removeItem(atPath: tmux.socket)
    }
    tmux.startShell(home: home)

    // Start to first painted screen: from the Enter that starts it to the prompt's hint on screen.
    let starts = try await tmux.timeStarts("\(parley) --model bench:fast", until: "type a message", runs: 10)
    print(String(format: "start to first painted screen (tmux, 120x40): median %.1f ms, min %.1f ms over %d runs (capture-pane polling adds ~2 ms)",
                 median(starts), starts.min() ?? 0, starts.count))

    tmux.type("\(parley) --model bench:fast")
    tmux.keys("Enter")
    tmux.wait(for: "type a message")
    guard let pid = tmux.foregroundChild() else { print("no parley process"); exit(1) }
    try await Task.sleep(for: .seconds(1))
    let idleStart = processUsage(pid)
    try await Task.sleep(for: .seconds(10))
    let idleEnd = processUsage(pid)
    print(String(format: "idle for 10 s: %.2f s CPU, %d wake-ups of the screen's thread, %d of all threads (libdispatch's manager thread ticks once a second), resident %.1f MB",
                 idleEnd.cpu - idleStart.cpu, idleEnd.uiWakeups - idleStart.uiWakeups, idleEnd.wakeups(since: idleStart), idleEnd.rssMB))

    // A reply streaming at about 1,000 tokens/s, nobody typing.
    let (wall, cpu, shown, after) = streamOneReply(tmux, pid: pid)
    print(String(format: "streaming %d tokens in %.1f s (status bar: %@): %.2f s CPU = %.0f%% of one core, resident %.1f MB",
                 tokens, wall, shown, cpu, cpu / wall * 100, after.rssMB))

    // Keystroke to screen, idle and while a reply streams: each typed letter, until capture-pane shows it.
    func typingLatencies(_ label: String) {
        var latencies: [Double] = []
        var typed = ""
        for i in 0..<40 {
            let letter = String(UnicodeScalar(UInt8(ascii: "a") + UInt8(i % 26)))
            typed += letter
            let start = ContinuousClock.now
            tmux.type(letter)
            guard tmux.wait(for: "› " + typed, seconds: 5) != nil else { break }
            latencies.append((ContinuousClock.now - start).milliseconds)
        }
        tmux.keys("C-u")
        print(String(format: "keystroke to screen %@ (send-keys → capture-pane shows it): median %.1f ms, p90 %.1f ms, max %.1f ms over %d keys",
                     label, median(latencies), percentile(latencies, 0.9), latencies.max() ?? 0, latencies.count))
    }
    typingLatencies("idle")
    tmux.type("go")
    tmux.keys("Enter")
    tmux.wait(for: "streaming")
    typingLatencies("while streaming")
    tmux.keys("Escape")
    tmux.wait(for: "stopped")

    // A 1 MB bracketed paste through the terminal.
    var paste = ""
    var n = 0
    while paste.utf8.count < 1_000_000 { paste += "let value\(n) = compute(input, with: options) // pasted source code, about eighty bytes\n"; n += 1 }
    paste += "END-OF-PASTE"
    let pasteFile = home.appendingPathComponent("paste.txt")
    try paste.write(to: pasteFile, atomically: true, encoding: .utf8)
    tmux.keys("C-u")
    tmux.run(["load-buffer", "-b", "big", pasteFile.path])
    let pasteStart = ContinuousClock.now
    tmux.run(["paste-buffer", "-p", "-b", "big", "-t", tmux.name])
    let pasted = tmux.wait(for: "END-OF-PASTE", seconds: 60)
    print(String(format: "1 MB bracketed paste (%d lines) to its end on screen: %.0f ms", n, pasted.map { _ in (ContinuousClock.now - pasteStart).milliseconds } ?? -1))
    let afterPaste = processUsage(pid)
    print(String(format: "resident after two replies and the paste: %.1f MB", afterPaste.rssMB))
    await server.shutdown()
}

/// A loopback provider streaming `tokens` one per write, `pause` apart, and a home whose config names it
/// `bench:fast`; for the screen benchmarks that need a provider at a given rate.
func streamingProvider(tokens: Int, pause: Duration) async throws -> (server: ScriptedHTTPServer, home: URL) {
    var body: [ScriptedHTTPServer.Step] = [.head(status: 200, headers: [("Content-Type", "text/event-stream")])]
    for i in 0..<tokens {
        let token = i % 12 == 11 ? "\\n" : " word\(i % 97)"
        body.append(.write(Array("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\(token)\"}}]}\n\n".utf8)))
        body.append(.pause(pause))
    }
    body.append(.write(Array("data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":\(tokens)}}\n\ndata: [DONE]\n\n".utf8)))
    body.append(.end)
    let steps = body
    let server = try await ScriptedHTTPServer { _ in steps }
    let home = FileManager.default.temporaryDirectory.appendingPathComponent("parley-bench-rate-\(getpid())-\(tokens)-\(UInt32.random(in: 0...UInt32.max))")
    try FileManager.default.createDirectory(at: home.appendingPathComponent("config/parley"), withIntermediateDirectories: true)
    try """
    [providers.bench]
    base_url = "\(server.baseURL)/v1"
    models = ["fast"]
    """.write(to: home.appendingPathComponent("config/parley/config.toml"), atomically: true, encoding: .utf8)
    return (server, home)
}

/// CPU of the real screen per 1,000 streamed tokens at 100, 1,000 and 5,000 tokens/s.
func streamRatesBenchmark() async throws {
    for (rate, tokens) in [(100, 1_000), (1_000, 5_000), (5_000, 10_000)] {
        let (server, home) = try await streamingProvider(tokens: tokens, pause: .microseconds(1_000_000 / rate))
        let tmux = TmuxSession()
        tmux.startShell(home: home)
        tmux.type("\(parley) --model bench:fast")
        tmux.keys("Enter")
        tmux.wait(for: "type a message")
        guard let pid = tmux.foregroundChild() else { print("no parley process"); exit(1) }
        try await Task.sleep(for: .milliseconds(500))
        let (wall, cpu, shown, _) = streamOneReply(tmux, pid: pid)
        print(String(format: "%5d tokens/s (status bar: %@): %d tokens in %.1f s, %.2f s CPU = %.0f%% of one core, %.0f ms CPU per 1,000 tokens",
                     rate, shown, tokens, wall, cpu, cpu / wall * 100, cpu / Double(tokens) * 1000 * 1000))
        tmux.run(["kill-server"])
        await server.shutdown()
        try? FileManager.default.removeItem(at: home)
    }
}

/// Resident memory of the real screen over a person's hour of chat, compressed: 60 exchanges, each a
/// prompt and a 600-token reply (streamed fast), sampled as the session grows.
func hourBenchmark(exchanges: Int) async throws {
    let (server, home) = try await streamingProvider(tokens: 600, pause: .microseconds(200))
    let tmux = TmuxSession()
    defer {
        tmux.run(["kill-server"])
        try? FileManager.default.removeItem(at: home)
    }
    tmux.startShell(home: home)
    tmux.type("\(parley) --model bench:fast")
    tmux.keys("Enter")
    tmux.wait(for: "type a message")
    guard let pid = tmux.foregroundChild() else { print("no parley process"); exit(1) }
    try await Task.sleep(for: .milliseconds(500))
    var samples: [String] = [String(format: "start %.1f", processUsage(pid).rssMB)]
    for exchange in 1...exchanges {
        tmux.type("question number \(exchange): how do I count the words in a large file without reading it all into memory?")
        tmux.keys("Enter")
        // The status bar's tok/s appears when the reply has finished.
        tmux.wait(for: "streaming", seconds: 5)
        tmux.wait(for: " tok/s", seconds: 60)
        try await Task.sleep(for: .milliseconds(50))
        if [1, 10, 20, 30, 40, 50, 60, exchanges].contains(exchange) {
            try await Task.sleep(for: .milliseconds(300))
            samples.append(String(format: "%d: %.1f", exchange, processUsage(pid).rssMB))
        }
    }
    print("resident MB after N exchanges (600-token replies): " + samples.joined(separator: ", "))
    await server.shutdown()
}
