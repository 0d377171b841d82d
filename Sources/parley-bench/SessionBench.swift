import Foundation
import ParleyCore
import ParleyKit
#if canImport(Glibc)
import Glibc
#endif

/// A session like a long real one: alternating prompts and Markdown replies with usage and timings.
func syntheticSession(messages: Int) -> Session {
    var session = Session(title: "A long conversation", model: "local:smollm2")
    var parent: String?
    for i in 0..<messages {
        var message: SessionMessage
        if i % 2 == 0 {
            message = SessionMessage(parentID: parent, role: .user, content: "Question \(i / 2): how do I count the words in a large file without reading it all into memory?")
        } else {
            message = SessionMessage(parentID: parent, role: .assistant, content: sampleReply(i / 2), provider: "local", model: "smollm2")
            message.usage = Usage(promptTokens: 900, completionTokens: 160, cachedTokens: 0, cacheWriteTokens: 0, accounting: .cachedInsidePrompt)
            message.cost = 0
            message.timeToFirstTokenMs = 95
            message.durationMs = 1400
            message.finishReason = "stop"
            message.completedAt = Date()
        }
        parent = message.id
        session.messages.append(message)
    }
    return session
}

/// What saving costs as a session grows, and resuming a 10,000-message session in the real binary.
func sessionBenchmark() async throws {
    let home = FileManager.default.temporaryDirectory.appendingPathComponent("parley-bench-sessions-\(getpid())")
    defer { try? FileManager.default.removeItem(at: home) }
    let store = SessionStore(directory: home.appendingPathComponent("data/parley/sessions"))
    for count in [100, 1_000, 10_000] {
        let session = syntheticSession(messages: count)
        var samples: [Double] = []
        for _ in 0..<7 {
            let start = ContinuousClock.now
            try store.save(session)
            samples.append((ContinuousClock.now - start).milliseconds)
        }
        let size = (try? FileManager.default.attributesOfItem(atPath: store.url(for: session.id).path)[.size] as? Int) ?? 0
        print(String(format: "one save (encode, write, fsync, rename, fsync dir) of %d messages, %.2f MB: median %.1f ms, max %.1f ms",
                     count, Double(size) / 1e6, median(samples), samples.max() ?? 0))
        // A streaming flush: one journal line with a second's worth of text, appended and fsynced.
        var flushes: [Double] = []
        for _ in 0..<20 {
            let start = ContinuousClock.now
            try store.appendJournal(SessionJournalEntry(message: session.messages.last!.id, append: String(repeating: " token", count: 60)), for: session.id)
            flushes.append((ContinuousClock.now - start).milliseconds)
        }
        print(String(format: "  a streaming flush into it (journal append + fsync): median %.2f ms", median(flushes)))
        try? FileManager.default.removeItem(at: store.journalURL(for: session.id))
        if count != 10_000 { try? FileManager.default.removeItem(at: store.url(for: session.id)) }
    }

    // Resume sessions of 1,000, 10,000 and 50,000 messages in tmux: Enter → the resumed screen painted.
    try? FileManager.default.removeItem(at: store.directory)
    for count in [1_000, 10_000, 50_000] {
        let session = syntheticSession(messages: count)
        try store.save(session)
        let size = Double((try? FileManager.default.attributesOfItem(atPath: store.url(for: session.id).path)[.size] as? Int) ?? 0) / 1e6
        let tmux = TmuxSession()
        tmux.startShell(home: home)
        var rss = 0.0
        let times = try await tmux.timeStarts("\(parley) --resume", until: "resumed", runs: 5) { pid in
            // Settled: after the /load list is read (at 0.5 s) and the context estimated.
            try await Task.sleep(for: .milliseconds(1500))
            rss = processUsage(pid).rssMB
        }
        tmux.run(["kill-server"])
        print(String(format: "resume of %d messages (%.1f MB) to the first painted screen: median %.0f ms, min %.0f ms over %d runs; resident %.1f MB after it",
                     count, size, median(times), times.min() ?? 0, times.count, rss))
        try store.remove(session.id)
    }
}

/// Where a resume's time goes, in process: read, decode, branch, estimate.
func resumePartsBenchmark(path: String) throws {
    func time(_ label: String, _ body: () throws -> Void) rethrows {
        var samples: [Double] = []
        for _ in 0..<5 {
            let start = ContinuousClock.now
            try body()
            samples.append((ContinuousClock.now - start).milliseconds)
        }
        print(String(format: "%@: median %.1f ms", label, median(samples)))
    }
    let url = URL(fileURLWithPath: path)
    var data = Data()
    try time("read") { data = try PrivateFile.read(path, limit: SessionStore.maxFileBytes) }
    var session: Session?
    try time("decode") { session = try SessionStore.decode(data, path: path, name: url.deletingPathExtension().lastPathComponent) }
    try time("JSONValue.parse") { _ = try JSONValue.parse(Array(data)) }
    let store = SessionStore(directory: url.deletingLastPathComponent())
    time("summaries") { _ = store.summaries() }
    try time("find newest") { _ = try store.find(nil) }
    var messages: [ChatMessage] = []
    time("chatMessages") { messages = session!.chatMessages }
    time("estimate") { _ = TokenEstimator.estimate(ChatRequest(model: "", messages: messages)) }
}
