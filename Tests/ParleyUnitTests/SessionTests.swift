import Foundation
import Testing
import ParleyCore
@testable import ParleyKit
import ParleyProviders
#if canImport(Glibc)
import Glibc
#endif

/// Session files on a real directory: the format, bad files, finding, and the write lock.
@Suite struct SessionTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("parley-sessions-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    var store: SessionStore { SessionStore(directory: directory) }

    func sample(title: String = "Rust or Go?", at time: Date = Date(timeIntervalSince1970: 1_764_000_000.123)) -> Session {
        var session = Session(id: Session.newID(now: time), title: title, model: "anthropic:claude-haiku-4-5", systemPrompt: "Be brief.", now: time)
        var user = SessionMessage(parentID: nil, role: .user, content: "Which is faster?\n日本語 👍🏽", createdAt: time)
        user.status = .complete
        var reply = SessionMessage(parentID: user.id, role: .assistant, content: "It depends.", provider: "anthropic", model: "claude-haiku-4-5", createdAt: time)
        reply.completedAt = time.addingTimeInterval(1.5)
        reply.usage = Usage(promptTokens: 12, completionTokens: 3, cachedTokens: 4, cacheWriteTokens: 2, accounting: .cachedOutsidePrompt)
        reply.cost = 0.000123
        reply.timeToFirstTokenMs = 210.5
        reply.durationMs = 1500
        reply.finishReason = "tool_calls"
        reply.toolCalls = [ToolCall(id: "call_1", name: "lookup", arguments: "{\"q\":\"speed\"}")]
        var tool = SessionMessage(parentID: reply.id, role: .tool, content: "{\"answer\":42}", createdAt: time)
        tool.toolCallID = "call_1"
        var failed = SessionMessage(parentID: tool.id, role: .assistant, content: "partial", provider: "groq", model: "llama", createdAt: time, status: .error)
        failed.error = "groq: rate limited"
        session.messages = [user, reply, tool, failed]
        return session
    }

    @Test func everyFieldSurvivesARoundTrip() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let session = sample()
        try store.save(session)
        let loaded = try store.load(store.url(for: session.id))
        #expect(loaded == session)
        // Readable keys, the format number first among equals, dates in RFC 3339 with milliseconds.
        let text = try String(contentsOf: store.url(for: session.id), encoding: .utf8)
        #expect(text.contains("\"format\" : 2"))
        #expect(text.contains("\"created_at\" : \"2025-11-24T16:00:00.123Z\""))
        #expect(text.contains("\"parent_id\""))
        #expect(text.contains("\"tool_call_id\" : \"call_1\""))
    }

    @Test func filesAre0600InA0700Directory() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let session = sample()
        try store.save(session)
        let file = try FileManager.default.attributesOfItem(atPath: store.url(for: session.id).path)
        let folder = try FileManager.default.attributesOfItem(atPath: directory.path)
        #expect((file[.posixPermissions] as? Int) == 0o600)
        #expect((folder[.posixPermissions] as? Int) == 0o700)
    }

    @Test func badFilesAreNamedLeftAloneAndTheRestStillList() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let good = sample()
        try store.save(good)
        let full = try Data(contentsOf: store.url(for: good.id))
        let bad: [(String, Data, String)] = [
            ("truncated.json", full.prefix(full.count / 2), "is not valid JSON (truncated or corrupt)"),
            ("empty.json", Data(), "is empty"),
            ("newer.json", Data("{\"format\": 3, \"id\": \"n\"}".utf8), "was written by a newer Parley (format 3); this one reads format 2"),
            ("other.json", Data("{\"hello\": 1}".utf8), "has no \"format\" field"),
            ("wrong.json", Data("{\"format\": 1, \"id\": \"w\", \"title\": 5}".utf8), "at title"),
        ]
        for (name, data, _) in bad { try data.write(to: directory.appendingPathComponent(name)) }
        let (sessions, problems) = store.list()
        #expect(sessions.map(\.id) == [good.id])
        for (name, data, message) in bad {
            let problem = problems.first { $0.path.hasSuffix(name) }
            #expect(problem?.userMessage.contains(message) == true, "\(name): \(problem?.userMessage ?? "no problem reported")")
            #expect(problem?.userMessage.hasSuffix("the file is left as it is") == true)
            #expect(try Data(contentsOf: directory.appendingPathComponent(name)) == data)
        }
    }

    @Test func findsTheNewestAnIDPrefixOrATitlePrefix() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        #expect(throws: SessionNotFound.self) { try store.find(nil) }
        let old = sample(title: "Old question", at: Date(timeIntervalSince1970: 1_700_000_000))
        var new = sample(title: "New question", at: Date(timeIntervalSince1970: 1_800_000_000))
        new.updatedAt = Date(timeIntervalSince1970: 1_800_000_000)
        try store.save(old)
        try store.save(new)
        #expect(try store.find(nil).id == new.id)  // saving stamps updated_at; the later save is newest
        #expect(try store.find(String(old.id.prefix(8))).id == old.id)
        #expect(try store.find("old q").id == old.id)
        #expect(throws: SessionNotFound.self) { try store.find("nothing like it") }
    }

    /// `--resume` opens the newest session that reads; a newer file that does not is named, not passed
    /// over in silence, and an older bad file is not mentioned.
    @Test func theNewestSessionThatReadsNamesNewerFilesThatDoNot() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let good = sample(title: "Kept", at: Date(timeIntervalSince1970: 1_700_000_000))
        try store.save(good)
        let goodFile = directory.appendingPathComponent("\(good.id).json").path
        let older = directory.appendingPathComponent("20200101-000000-aaaa.json")
        try Data("{ not json".utf8).write(to: older)
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -3600)], ofItemAtPath: older.path)
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -60)], ofItemAtPath: goodFile)
        #expect(try store.newest().passedOver.isEmpty)

        let cut = directory.appendingPathComponent("20300101-000000-bbbb.json")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: goodFile))
        try bytes.prefix(bytes.count / 2).write(to: cut)
        let (opened, named) = try store.newest()
        #expect(opened.id == good.id)
        #expect(try store.find(nil).id == good.id)
        #expect(named.map(\.path) == [cut.path])
        #expect(named.first?.userMessage.hasSuffix("the file is left as it is") == true)
        #expect(try Data(contentsOf: cut) == bytes.prefix(bytes.count / 2))
    }

    @Test func aSecondWriterIsRefusedWithThePidAndTheLockIsFreedOnRelease() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let first = try store.lock("s1")
        do {
            _ = try store.lock("s1")
            Issue.record("a second lock on the same session must fail")
        } catch let error as SessionInUse {
            #expect(error.pid == getpid())
            #expect(error.userMessage.contains("open in another Parley process"))
        }
        first.release()
        let again = try store.lock("s1")
        again.release()
    }

    @Test func aLockLeftByAKilledProcessIsTakenOver() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        try AtomicFile.ensureDirectory(directory)
        let lockFile = directory.appendingPathComponent("s2.lock").path
        // A process that holds the lock itself (no children sharing the descriptor), then is killed.
        let holder = try ChildProcess.spawn(["python3", "-c", "import fcntl, time; f = open('\(lockFile)', 'a'); fcntl.flock(f, fcntl.LOCK_EX); time.sleep(30)"])
        var refused = false
        for _ in 0..<100 {  // until the child holds it
            do { try store.lock("s2").release(); usleep(20_000) } catch is SessionInUse { refused = true; break }
        }
        #expect(refused)
        holder.signal(SIGKILL)
        _ = holder.wait()
        let taken = try store.lock("s2")
        taken.release()
    }

    @Test func theJournalHoldsStreamedTextUntilTheNextFullSave() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let recorder = SessionRecorder(store: store, session: Session(model: "local:smollm2"))
        let id = recorder.startTurn(userText: "Tell me a story", model: ModelRef(provider: "local", model: "smollm2"), system: nil).reply
        let file = store.url(for: recorder.snapshot.id)
        // On disk before any reply: the prompt, and the reply opened as streaming.
        let started = try store.load(file)
        #expect(started.messages.map(\.content) == ["Tell me a story", ""])
        #expect(started.messages.last?.status == .streaming)
        usleep(1_100_000)
        recorder.appendText("Once upon", to: id)  // a second after the last write: flushed to the journal
        recorder.appendText(" a time", to: id)    // within the next second: kept in memory
        recorder.close()
        let journal = try String(contentsOf: store.journalURL(for: recorder.snapshot.id), encoding: .utf8)
        #expect(journal == "{\"message\":\"\(id)\",\"append\":\"Once upon\"}\n")
        #expect(try store.load(file).messages.last?.content == "Once upon")
        // A torn last line (killed mid-write) is ignored.
        let handle = try FileHandle(forWritingTo: store.journalURL(for: recorder.snapshot.id))
        handle.seekToEndOfFile()
        handle.write(Data("{\"message\":\"\(id)\",\"app".utf8))
        try handle.close()
        #expect(try store.load(file).messages.last?.content == "Once upon")
        // A full save folds it in and removes the journal.
        try store.save(try store.load(file))
        #expect(!FileManager.default.fileExists(atPath: store.journalURL(for: recorder.snapshot.id).path))
        #expect(try store.load(file).messages.last?.content == "Once upon")
    }

    @Test func aRetryAnswersTheSameUserMessageBesideTheEarlierReply() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let recorder = SessionRecorder(store: store, session: Session(model: "local:smollm2"))
        let model = ModelRef(provider: "local", model: "smollm2")
        let first = recorder.startTurn(userText: "hi", model: model, system: nil).reply
        recorder.finishReply(first, status: .error, result: nil, error: "cut off")
        let second = recorder.startTurn(userText: nil, model: model, system: nil).reply
        recorder.close()
        let saved = try store.load(store.url(for: recorder.snapshot.id))
        #expect(saved.messages.count == 3)
        #expect(saved.messages[1].parentID == saved.messages[0].id)
        #expect(saved.messages[2].id == second && saved.messages[2].parentID == saved.messages[0].id)
        #expect(saved.currentBranch.map(\.id) == [saved.messages[0].id, second])
    }

    /// Issue 16: an edited prompt goes beside the one it replaces; moving between the two branches is
    /// saved (`current_leaf`) and read back by both readers; a turn after a move continues that branch.
    @Test func anEditedPromptIsANewBranchAndTheChosenBranchIsSavedAndContinued() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let recorder = SessionRecorder(store: store, session: Session(model: "local:smollm2"))
        let model = ModelRef(provider: "local", model: "smollm2")
        let first = recorder.startTurn(userText: "one", model: model, system: nil)
        recorder.appendText("reply one", to: first.reply)
        recorder.finishReply(first.reply, status: .complete, result: nil)
        let second = recorder.startTurn(userText: "two", model: model, system: nil)
        recorder.finishReply(second.reply, status: .complete, result: nil)
        // "two" edited into "TWO": beside it, answering the same reply.
        let edited = recorder.startTurn(userText: "TWO", editing: second.user, model: model, system: nil)
        recorder.finishReply(edited.reply, status: .complete, result: nil)
        var session = recorder.snapshot
        #expect(session.messages.count == 6)
        #expect(session.currentBranch.map(\.content) == ["one", "reply one", "TWO", ""])
        let positions = session.siblingPositions
        #expect(positions[edited.user!]?.index == 2 && positions[edited.user!]?.count == 2)
        #expect(positions[first.user!] == nil)

        // Back to the first version: the branch runs down to its reply, and that is what is saved.
        let moved = try #require(recorder.switchBranch(at: edited.user!, by: -1))
        #expect(moved.sibling == second.user)
        #expect(recorder.switchBranch(at: second.user!, by: -1) == nil, "there is none before the first")
        recorder.close()
        let file = store.url(for: session.id)
        let text = try String(contentsOf: file, encoding: .utf8)
        #expect(text.contains("\"current_leaf\" : \"\(second.reply)\""), "\(text)")
        session = try store.load(file)
        #expect(session.currentBranch.map(\.content) == ["one", "reply one", "two", ""])
        #expect(session.chatMessages == [.user("one"), .assistant("reply one"), .user("two")])
        let codable = try SessionStore.codableDecode(Data(text.utf8), path: file.path)
        #expect(codable.leaf == second.reply && codable.currentBranch.map(\.id) == session.currentBranch.map(\.id))

        // The next prompt follows the branch on screen, not the last message of the file.
        let reopened = SessionRecorder(store: store, session: session)
        let third = reopened.startTurn(userText: "three", model: model, system: nil)
        reopened.close()
        let after = try store.load(file)
        #expect(after.leaf == nil)
        #expect(after.currentBranch.map(\.content) == ["one", "reply one", "two", "", "three", ""])
        #expect(after.messages.first(where: { $0.id == third.user })?.parentID == second.reply)
    }

    @Test func aRetriedReplyStaysInTheFileOnABranchOfItsOwn() {
        var session = Session(model: "local:smollm2")
        let user = SessionMessage(parentID: nil, role: .user, content: "hi")
        let first = SessionMessage(parentID: user.id, role: .assistant, content: "first")
        let second = SessionMessage(parentID: user.id, role: .assistant, content: "second")
        session.messages = [user, first, second]
        #expect(session.currentBranch.map(\.content) == ["hi", "second"])
        #expect(session.chatMessages == [.user("hi"), .assistant("second")])
    }

    @Test func titlesComeFromTheFirstLineCutAtAWord() {
        #expect(Session.title(from: "  Short one\nsecond line") == "Short one")
        let long = Session.title(from: String(repeating: "word ", count: 30))
        #expect(long.hasSuffix("…") && long.count <= 61 && !long.contains("wor…"))
    }
}

/// A session written on one provider continues on another: the history is converted to its wire format.
@Suite struct SessionContinuationTests {
    @Test func anOpenAIToolCallSessionContinuesOnAnthropicAndBack() throws {
        let example = SessionSchemaTests.repository.appendingPathComponent("sessions/example-switch-tools-error.json")
        let session = try SessionStore(directory: example.deletingLastPathComponent()).load(example)
        let request = ChatRequest(model: "claude-haiku-4-5", system: session.systemPrompt, messages: session.chatMessages)

        let anthropic = try JSONValue.parse(try AnthropicMessagesFormat.makeRequest(request, baseURL: "https://api.anthropic.com", apiKey: "k").body)
        #expect(anthropic["system"]?.string == "Answer in one sentence.")
        let messages = try #require(anthropic["messages"]?.array)
        #expect(messages.map { $0["role"]?.string ?? "" } == ["user", "assistant", "user", "assistant", "user", "assistant"])
        #expect(messages[1]["content"]?[0]?["type"]?.string == "tool_use")
        #expect(messages[1]["content"]?[0]?["input"]?["city"]?.string == "Lyon")
        #expect(messages[2]["content"]?[0]?["tool_use_id"]?.string == "call_1")

        let openAI = try JSONValue.parse(try OpenAIChatFormat.makeRequest(request, baseURL: "https://api.openai.com/v1", apiKey: "k", dialect: .openAI).body)
        let turns = try #require(openAI["messages"]?.array)
        #expect(turns.first?["role"]?.string == "system")
        #expect(turns[2]["tool_calls"]?[0]?["id"]?.string == "call_1")
        #expect(turns[3]["role"]?.string == "tool")
        #expect(turns[3]["tool_call_id"]?.string == "call_1")
    }
}

/// Issue 12: session format 2 is snake_case throughout; format 1 files are read and migrated on save.
@Suite struct SessionFormatTests {
    static let formatOne = #"""
    {"format":1,"id":"old-one","title":"t","created_at":"2026-11-20T10:00:00.000Z","updated_at":"2026-11-20T10:00:01.000Z",
     "model":"openai:gpt-4o-mini","messages":[
      {"id":"u","role":"user","content":"hi","created_at":"2026-11-20T10:00:00.000Z","status":"complete"},
      {"id":"a","parent_id":"u","role":"assistant","content":"hello","created_at":"2026-11-20T10:00:01.000Z","status":"complete",
       "usage":{"promptTokens":12,"completionTokens":3,"cachedTokens":4,"cacheWriteTokens":0,"accounting":"cachedInsidePrompt"}}]}
    """#

    @Test func aFormatOneFileIsReadAndWrittenBackAsFormatTwo() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("parley-format-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let store = SessionStore(directory: directory)
        try Data(Self.formatOne.utf8).write(to: store.url(for: "old-one"))
        let session = try store.load(store.url(for: "old-one"))
        #expect(session.messages.last?.usage == Usage(promptTokens: 12, completionTokens: 3, cachedTokens: 4, accounting: .cachedInsidePrompt))
        try store.save(session)
        let text = try String(contentsOf: store.url(for: "old-one"), encoding: .utf8)
        #expect(text.contains("\"format\" : 2"))
        #expect(text.contains("\"prompt_tokens\" : 12") && text.contains("\"cached_inside_prompt\""))
        #expect(!text.contains("promptTokens") && !text.contains("cachedInsidePrompt"))
        let again = try store.load(store.url(for: "old-one"))
        #expect(again.messages == session.messages, "nothing is lost in the migration")
        #expect(again.format == 2)
    }

    @Test func usageWrittenBeforeFormatTwoStillDecodes() throws {
        let old = try JSONDecoder().decode(Usage.self, from: Data(#"{"promptTokens":5,"completionTokens":2,"cachedTokens":0,"cacheWriteTokens":1,"accounting":"cachedOutsidePrompt"}"#.utf8))
        #expect(old == Usage(promptTokens: 5, completionTokens: 2, cacheWriteTokens: 1, accounting: .cachedOutsidePrompt))
        let written = String(decoding: try JSONEncoder().encode(old), as: UTF8.self)
        #expect(written.contains("\"cache_write_tokens\":1") && written.contains("cached_outside_prompt"))
        #expect(try JSONDecoder().decode(Usage.self, from: Data(written.utf8)) == old)
    }
}
