import Foundation
import ParleyCore
import ParleyKit
import ParleyProviders
#if canImport(Glibc)
import Glibc
#endif

/// The full-screen chat's interpreter: it runs actions through the reducer and carries out the effects
/// (turns, sessions, models, the editor, suspending); `ChatRuntime` is the loop that feeds it.
public final class ChatApp: @unchecked Sendable {
    let engine: ChatEngine
    let themes: ThemeStore
    var state: ChatState
    /// The loop that feeds this interpreter; set while `run` runs.
    var runtime: ChatRuntime?
    var screen: (any Screen)? { runtime?.screen }
    let queue = ActionQueue()
    /// The model the next message goes to: resolved once, when it is chosen.
    var modelRef: ModelRef
    var replyTask: Task<Void, Never>?
    var turn = 0
    /// /cache on|off for this chat; nil follows the config.
    var cacheChoice: Bool?
    /// `/model auto` (or `-m auto`): each turn's model comes from the router.
    var autoRoute = false
    /// `/schema`: what every answer must be, until `/schema off`.
    var structured: StructuredOutput?
    var structuredSpec: String?
    let historyFile: URL
    let sessions: SessionStore
    /// The session being written; created with the first message, replaced by /new.
    var recorder: SessionRecorder?
    /// The MCP servers, started when their tools are first offered; nil without `[mcp.servers]`.
    lazy var hub: MCPHub? = engine.config.mcp.servers.isEmpty ? nil
        : MCPHub(settings: engine.config.mcp, logDirectory: engine.paths.dataDirectory.appendingPathComponent("logs"), environment: engine.environment)
    let approvals = ToolApprovals()
    /// Models already told they get no tools.
    var toolsNotOffered = Set<ModelRef>()
    /// Lines shown when the screen opens: what `TerminalCheck` adjusted (locale, TERM).
    public var startupNotes: [String] = []

    public init(engine: ChatEngine, model: String?, system: String?, sessions: SessionStore, resume: Session? = nil) throws {
        self.engine = engine
        self.sessions = sessions
        let requested = model ?? resume?.model ?? engine.defaultModelName
        let routing = requested == "auto"
        let ref = try engine.config.resolve(routing ? engine.config.routerDefault : requested)
        modelRef = ref
        autoRoute = routing
        themes = ThemeStore(configDirectory: engine.paths.configDirectory, environment: engine.environment, executable: engine.executablePath)
        historyFile = engine.paths.dataDirectory.appendingPathComponent("history.jsonl")
        state = ChatState(width: 80, height: 24, model: ref.description, timeZone: .local)
        state.systemPrompt = system
        state.modelChoices = Self.modelChoices(engine)
        state.themeNames = themes.names
        state.history = Self.loadHistory(historyFile)
        _ = reduce(&state, modelFacts(ref))
        _ = reduce(&state, .guardSettings(engine.config.inputGuard))
        if routing { _ = reduce(&state, .modelChanged(name: "auto", contextWindow: nil, turnCostText: "$0.00")) }
        if let resume {
            // What the command line says (--model, --system) wins over what the session last used.
            for case let .sessionOpened(session) in reduce(&state, .openSession(resume, resumed: true)) { adopt(session, takeModel: model == nil) }
            if let system { state.systemPrompt = system }
        }
    }

    /// Runs on the terminal until the user quits or a signal asks to end; the terminal is restored on
    /// every path.
    public func run() throws {
        // Named, so `top -H` and the benchmarks can tell the screen's thread apart.
        try? "parley-ui".write(toFile: "/proc/thread-self/comm", atomically: false, encoding: .utf8)
        let noColor = !(engine.environment["NO_COLOR"] ?? "").isEmpty
        let (theme, themeError) = initialTheme()
        let screen = TerminalScreen(theme: theme, noColor: noColor)
        defer { screen.restore() }
        SignalPipe.install(queue)
        run(on: screen, input: STDIN_FILENO, themeName: theme.name, themeError: themeError)
    }

    /// The chat loop on any screen, reading keys from `input`: the terminal's, or a recording screen and
    /// a pipe in tests, which drive the same loop, reducer and effects in process. Returns on quit.
    public func run(on screen: any Screen, input: Int32, themeName: String? = nil, themeError: String? = nil) {
        let runtime = ChatRuntime(screen: screen, input: input, app: self)
        self.runtime = runtime
        // A session resumed before the loop started has left its file's bytes freed but held.
        runtime.trimPending = true
        defer { self.runtime = nil }
        state.themeName = themeName ?? state.themeName
        let size = screen.size
        _ = reduce(&state, .resize(width: size.width, height: size.height))
        for note in startupNotes { _ = reduce(&state, .showNote(note)) }
        if let themeError { _ = reduce(&state, .showError(themeError)) }
        warmUp()
        loadSessionChoices()
        let library = TemplateLibrary(paths: engine.paths)
        Task.detached { [queue] in queue.post(.templateChoices(library.names().map(\.name))) }
        runtime.run()
        replyTask?.cancel()
        approvals.declineAll()
        recorder?.close()
        shutDownTools()
    }

    /// The MCP servers shut down as the spec says (stdin closed, then signals), at most about 4 s.
    func shutDownTools() {
        guard let hub else { return }
        let done = DispatchSemaphore(value: 0)
        Task.detached { await hub.shutdown(); done.signal() }
        _ = done.wait(timeout: .now() + 5)
    }

    /// Asks the loop to read the screen's size again (what SIGWINCH does on a terminal).
    public func screenResized() {
        var byte = UInt8(ascii: "W")
        _ = write(queue.writeFD, &byte, 1)
    }

    func initialTheme() -> (Theme, String?) {
        let name = engine.environment["PARLEY_THEME"].flatMap { $0.isEmpty ? nil : $0 } ?? "dark"
        do {
            return (try themes.load(name), nil)
        } catch {
            return (Theme.fallback, describe(error) + "; using the built-in fallback theme")
        }
    }

    /// Starts the local server (or checks the endpoint) in the background so the first reply is quick.
    func warmUp() {
        let engine = self.engine, model = modelRef, queue = self.queue
        let session = recorder?.snapshot.id, turn = self.turn
        // Before any reply the turn costs $0.00 where the price is known, "?" where it is not.
        let priced = engine.config.pricing(for: model) != nil
        Task.detached {
            do { _ = try await engine.prepare(model) } catch { queue.post(.showError(describe(error))) }
            // After the endpoint check, so opening the ledger does not compete with the first paint.
            queue.post(.engine(await Self.spendEvent(engine, session: session, turnCost: priced ? 0 : nil)), turn: turn)
        }
    }

    /// Runs actions through the reducer, the clock first: the reducer stamps what it adds with the
    /// time an action gives it, never reading the system clock itself.
    func dispatch(_ actions: [Action]) {
        guard !actions.isEmpty else { return }
        _ = reduce(&state, .clock(Date()))
        for action in actions {
            let effects = reduce(&state, action)
            runtime?.dirty = true
            switch action {
            // After these, memory that served a transient copy is free: a reply's stream, a paste, a
            // session file's bytes and the work of estimating or listing sessions off the UI thread.
            case .engine(.finished), .engine(.stopped), .engine(.failed), .input(.paste), .openSession, .contextEstimated, .sessionChoices:
                runtime?.trimPending = true
            default: break
            }
            for effect in effects { perform(effect) }
        }
    }

    // MARK: effects

    func perform(_ effect: Effect) {
        switch effect {
        case let .send(messages, system, retry, guardAccepted, editing, context):
            send(messages, system: system, retry: retry, guardAccepted: guardAccepted, editing: editing, context: context)
        case let .compact(messages, system, context): compactNow(messages, system: system, context: context)
        case let .setPinned(messageID, pinned): currentRecorder().setPinned(messageID, pinned)
        case let .switchBranch(messageID, delta): switchBranch(messageID, delta: delta)
        case .newSession:
            recorder?.close()
            recorder = nil
        case let .sessionOpened(session): adopt(session)
        case let .decideTool(id, decision): approvals.decide(id, decision)
        case .listTools: listTools()
        case .mcpState: mcpState()
        case .stop:
            approvals.declineAll()
            replyTask?.cancel()
            replyTask = nil
            turn += 1
            dispatch([.engine(.stopped)])
        case .quit:
            replyTask?.cancel()
            runtime?.stop()
        case let .switchModel(name): switchModel(name)
        case .listModels: dispatch([.showNote(modelList())])
        case let .setTheme(name):
            do {
                let theme = try themes.load(name)
                screen?.setTheme(theme)
                dispatch([.themeChanged(theme.name)])
            } catch {
                dispatch([.showError(describe(error))])
            }
        case let .setCache(choice):
            if let choice { cacheChoice = choice }
            let on = cacheChoice ?? engine.config.cache.enabled
            var note = "response cache \(on ? "on" : "off")"
            if on, engine.config.cache.onlyDeterministic, engine.config.temperature != 0 {
                note += " — it keeps temperature-0 replies only, and this chat sends none: set temperature = 0 in config.toml (or only_temperature_zero = false under [cache])"
            }
            dispatch([.showNote(note)])
        case let .setSchema(argument): setSchema(argument)
        case let .applyTemplate(argument): applyTemplate(argument)
        case .listSessions: listSessions()
        case let .loadSession(query): loadSession(query)
        case let .renameSession(title):
            currentRecorder().rename(title)
            dispatch([.showNote("renamed to “\(title)”")])
        case let .exportSession(path): exportSession(path)
        case let .openEditor(draft): openEditor(draft)
        case let .appendHistory(text): appendHistory(text)
        case .redraw: screen?.invalidate()
        case let .copy(text, what): copy(text, what: what)
        case let .writeClipboard(text): screen?.copyToClipboard(Clipboard.osc52(text))
        case .reportContext: reportContext()
        case .suspend:
            suspendToShell()
            if let screen {
                let size = screen.refreshSize()
                dispatch([.resize(width: size.width, height: size.height)])
            }
        }
    }

    /// /tools: what the servers offer (starting them), off the UI thread.
    func listTools() {
        guard let hub else {
            dispatch([.showNote("no MCP servers: add [mcp.servers.NAME] with command = \"…\" to the config, or `parley mcp import FILE`")])
            return
        }
        let queue = self.queue, model = modelRef, supported = engine.config.supportsTools(modelRef)
        Task.detached {
            let (tools, problems) = await hub.tools()
            var lines = tools.map { tool in
                "\(tool.name)  [\(tool.approve.rawValue)]  " + TerminalSanitizer.line(String((tool.description.split(separator: "\n").first ?? "").prefix(100)))
            }
            if lines.isEmpty { lines = ["no tools"] }
            if !supported { lines.append("\(model) does not take tools, so none is offered to it (tools = true under [models.\"\(model)\"] if it does)") }
            queue.post(.showNote(lines.joined(separator: "\n")))
            for problem in problems { queue.post(.showError(problem)) }
        }
    }

    /// /mcp: each server's state.
    func mcpState() {
        guard let hub else { dispatch([.showNote("no MCP servers configured")]); return }
        let queue = self.queue
        Task.detached {
            let states = await hub.states()
            queue.post(.showNote(states.map { "\($0.server): \(TerminalSanitizer.line($0.state))" }.joined(separator: "\n")))
        }
    }

    /// /context: the conversation's estimated size against what the model takes, off the UI thread.
    func reportContext() {
        let engine = self.engine, queue = self.queue, model = modelRef
        let (messages, context) = state.sendContext()
        let request = ChatRequest(model: model.model, system: Self.withSummary(state.systemPrompt, context.summary), messages: messages)
        let policy = state.contextPolicy ?? engine.config.contextPolicy(for: model)
        let summary = state.summary
        Task.detached {
            let tokens = TokenEstimator.estimate(request)
            var lines = ["this conversation: \(request.messages.count) messages sent, about \(tokens) tokens (estimated)"]
            if let summary { lines.append("a summary by \(summary.model) stands in for the \(summary.covers) oldest (/compact show)") }
            if let limit = engine.inputLimit(request, ref: model) {
                let window = engine.config.contextWindow(for: model).map { "its window of \($0) after the output limit" } ?? "[guard] max_input_tokens"
                let overflow: String
                switch policy {
                case .trim: overflow = "the oldest messages will be left out of what is sent (/context compact summarizes them, /context refuse sends nothing)"
                case .compact: overflow = "the oldest messages will be summarized by \(engine.config.context.summaryModel) and the summary sent instead (/context trim leaves them out)"
                case .refuse: overflow = "it will not be sent: /context trim leaves out the oldest messages, /context compact summarizes them, /new starts afresh, /model picks a larger window"
                }
                lines.append("\(model) takes about \(limit) (\(window)): " + (tokens <= limit ? "it fits" : overflow))
            } else {
                lines.append("\(model)'s window is not known; set context_window under [models.\"\(model)\"]")
            }
            queue.post(.showNote(lines.joined(separator: "\n")))
        }
    }

    /// /copy and Alt-W: OSC 52 to the terminal, and a note that says what was copied or why it cannot be.
    func copy(_ text: String, what: String) {
        guard text.utf8.count <= Clipboard.maxBytes else {
            dispatch([.showError("\(what) is \(text.utf8.count / 1000) KB, more than terminals take through OSC 52 (\(Clipboard.maxBytes / 1000) KB); /export writes it to a file")])
            return
        }
        // Asking tmux runs a process: off the UI thread, which then writes the sequence (.clipboardReady).
        let environment = engine.environment, queue = self.queue
        Task.detached {
            var tmuxSetting: String?
            if environment["TMUX"] != nil {
                // tmux finds its server through $TMUX, which children are not otherwise given.
                var childEnvironment = ChildProcess.childEnvironment(environment)
                childEnvironment["TMUX"] = environment["TMUX"]
                if let answer = try? ChildProcess.capture(["tmux", "show-options", "-gv", "set-clipboard"], environment: childEnvironment,
                                                          discardingErrors: true), answer.status == 0 {
                    tmuxSetting = answer.output.trimmingCharacters(in: .whitespacesAndNewlines)
                }
            }
            if let problem = Clipboard.problem(environment: environment, tmuxSetting: tmuxSetting) {
                queue.post(.showError("/copy: \(problem)"))
            } else {
                queue.post(.clipboardReady(text: text, what: what))
            }
        }
    }

    /// Ctrl-Z: back to the shell until `fg`. A reply that is streaming is not stopped: its bytes wait in
    /// the socket while the process is stopped and are read, shown and saved after `fg`; its idle and
    /// first-token limits count from the moment it was continued.
    func suspendToShell() {
        guard let screen else { return }
        screen.suspendToShell()
        SuspendTracker.noteResumed()
        runtime?.dirty = true
    }

    // MARK: sessions

    static func choices(_ sessions: [SessionSummary]) -> [String] {
        sessions.map(\.id) + sessions.map(\.title).filter { !$0.isEmpty }
    }

    /// Reads the sessions directory off the UI thread, for /load completion.
    func loadSessionChoices() {
        let store = sessions, queue = self.queue
        Task.detached {
            // After the first screen, not competing with it (a resumed session is read at the same time).
            try? await Task.sleep(for: .milliseconds(500))
            queue.post(.sessionChoices(Self.choices(store.summaries().sessions)))
        }
    }

    /// Reads the sessions directory off the UI thread and lists it as a note.
    func listSessions() {
        let store = sessions, queue = self.queue
        Task.detached {
            let (found, problems) = store.summaries()
            var lines = found.prefix(20).map { "\($0.id)  \($0.messageCount) msgs  \($0.model)  \($0.title)" }
            if found.count > 20 { lines.append("… \(found.count - 20) more (parley sessions list)") }
            if found.isEmpty { lines.append("no saved sessions yet in \(store.directory.path)") }
            lines += problems.map(\.userMessage)
            queue.post(.sessionChoices(Self.choices(found)))
            queue.post(.showNote(lines.joined(separator: "\n") + "\n/load SESSION opens one (Tab completes)"))
        }
    }

    /// Finds and reads the session off the UI thread; the reducer then shows it.
    func loadSession(_ query: String) {
        let store = sessions, queue = self.queue
        Task.detached {
            do { queue.post(.openSession(try store.find(query), resumed: false)) } catch { queue.post(.showError(describe(error))) }
        }
    }

    /// The session on screen is now the one written to, and its model the one talked to.
    func adopt(_ session: Session, takeModel: Bool = true) {
        recorder?.close()
        let recorder = SessionRecorder(store: sessions, session: session)
        recorder.settleInterrupted()
        self.recorder = recorder
        if takeModel, let ref = try? engine.config.resolve(session.model), ref != modelRef {
            modelRef = ref
            dispatch([modelFacts(ref)])
        }
        if let problem = recorder.takeError() { dispatch([.showError(problem)]) }
        estimateContext(session)
    }

    /// The status bar shows the conversation's size at once, not "ctx 0" until the next reply; estimated
    /// off the UI thread (10,000 messages take tens of milliseconds).
    func estimateContext(_ session: Session) {
        let queue = self.queue
        Task.detached { Self.postEstimate(of: session, to: queue) }
    }

    /// What is sent for `session` (the summary and the messages after it), estimated, to the status bar.
    static func postEstimate(of session: Session, to queue: ActionQueue) {
        let sent = session.sentMessages
        let request = ChatRequest(model: "", system: withSummary(session.systemPrompt, sent.summary), messages: sent.messages)
        queue.post(.contextEstimated(tokens: TokenEstimator.estimate(request)))
    }

    /// Markdown of this session, written off the UI thread.
    func exportSession(_ path: String) {
        guard let recorder, !recorder.snapshot.messages.isEmpty else { dispatch([.showError("nothing to export yet")]); return }
        let session = recorder.snapshot, queue = self.queue
        let target = path.isEmpty ? sessions.directory.appendingPathComponent("\(session.id).md")
            : URL(fileURLWithPath: (path as NSString).expandingTildeInPath)
        Task.detached {
            do {
                try AtomicFile.write(Data(session.markdown().utf8), to: target)
                queue.post(.showNote("exported to \(target.path)"))
            } catch {
                queue.post(.showError(describe(error)))
            }
        }
    }

    /// After a turn's last write: a failed save is said on screen (the conversation is still there).
    static func reportSaveProblem(_ recorder: SessionRecorder, _ queue: ActionQueue) {
        recorder.waitForWrites()
        if let problem = recorder.takeError() { queue.post(.showError("the session was not saved: \(problem)")) }
    }

    /// The recorder for this conversation, opening a new session with its first message.
    func currentRecorder() -> SessionRecorder {
        if let recorder, recorder.readOnly {
            // The session is another process's: what is typed here goes on in a copy, never lost.
            let copy = SessionRecorder(store: sessions, session: recorder.copy())
            self.recorder = copy
            dispatch([.showNote("that session is open elsewhere; continuing in a copy: \(copy.snapshot.id)")])
            return copy
        }
        if let recorder { return recorder }
        let recorder = SessionRecorder(store: sessions, session: Session(model: modelRef.description, systemPrompt: state.systemPrompt))
        self.recorder = recorder
        return recorder
    }

    /// ←/→ on a picked message: the recorder moves the current branch (and saves it); the screen shows it.
    /// Off the UI thread: walking a 100,000-message tree takes most of a second.
    func switchBranch(_ messageID: String, delta: Int) {
        let wasReadOnly = recorder?.readOnly == true
        let recorder = currentRecorder()
        let queue = self.queue
        Task.detached {
            guard let moved = recorder.switchBranch(at: messageID, by: delta) else {
                queue.post(.showError("that branch is not in the session file; /load it again"))
                return
            }
            queue.post(.branchSwitched(moved.session, select: moved.sibling))
            // (Said again: showing the branch replaced the screen, and the note with it.)
            if wasReadOnly { queue.post(.showNote("that session is open elsewhere; this branch is in a copy: \(moved.session.id)")) }
            Self.postEstimate(of: moved.session, to: queue)
        }
    }

    /// The system prompt as sent when a summary stands in for older messages.
    static func withSummary(_ system: String?, _ summary: String?) -> String? {
        guard let summary else { return system }
        return (system.map { $0 + "\n\n" } ?? "")
            + "Summary of the earlier part of this conversation (its messages are not repeated here):\n" + summary
    }

    struct NothingToCompact: Error {}

    /// The request with its oldest messages replaced by a summary (`[context] summary_model` writes it;
    /// the session keeps it, the screen is told). With `limit`, as few as make it fit; without (/compact),
    /// all but the newest `keep_recent`. Pinned messages stay. Throws `NothingToCompact` when no saved
    /// message can anchor a summary.
    static func compacted(_ request: ChatRequest, system: String?, context: TurnContext, limit: Int?, engine: ChatEngine,
                          recorder: SessionRecorder, queue: ActionQueue) async throws -> (request: ChatRequest, pinned: [Int]) {
        let settings = engine.config.context
        let keep = Set(context.pinned)
        var gone = limit.map { engine.compactionSplit(request, limit: $0, allowance: settings.summaryTokens + 64, keepRecent: settings.keepRecent, keep: keep) }
            ?? request.messages.indices.dropLast(settings.keepRecent).filter { !keep.contains($0) }
        // The summary ends at a saved message: what follows it is sent as it is.
        while let last = gone.last, !(context.ids.indices.contains(last) && context.ids[last] != nil) { gone.removeLast() }
        guard let last = gone.last, let through = context.ids[last] else { throw NothingToCompact() }
        queue.post(.showNote("compacting: \(settings.summaryModel) is summarizing the \(gone.count) oldest messages…"))
        let summary = try await engine.summarize(gone.map { request.messages[$0] }, previous: context.summary, session: recorder.snapshot.id)
        let covers = recorder.addSummary(through: through, summary)
        queue.post(.summaryAdded(ActiveSummary(through: through, text: summary.text, model: summary.model.description, covers: covers)))
        if summary.unread > 0 {
            queue.post(.showNote("the \(summary.unread) oldest of them did not fit \(summary.model)'s window and are not in the summary"))
        }
        let goneSet = Set(gone)
        var compacted = request
        compacted.messages = request.messages.indices.filter { !goneSet.contains($0) }.map { request.messages[$0] }
        compacted.system = withSummary(system, summary.text)
        let pinned = request.messages.indices.filter { !goneSet.contains($0) }.enumerated().filter { keep.contains($0.element) }.map(\.offset)
        return (compacted, pinned)
    }

    /// /compact: the older messages summarized now, whether or not the conversation fits.
    func compactNow(_ messages: [ChatMessage], system: String?, context: TurnContext) {
        let recorder = currentRecorder(), engine = self.engine, queue = self.queue
        Task.detached(executorPreference: StreamExecutor.shared) {
            do {
                _ = try await Self.compacted(ChatRequest(model: "", system: system, messages: messages), system: system, context: context,
                                             limit: nil, engine: engine, recorder: recorder, queue: queue)
            } catch is NothingToCompact {
                queue.post(.showNote("nothing to compact: the newest \(engine.config.context.keepRecent) messages ([context] keep_recent) and pinned ones are always sent as they are"))
            } catch {
                queue.post(.showError("/compact: \(describe(error)); nothing changed"))
            }
        }
    }

    func send(_ messages: [ChatMessage], system: String?, retry: Bool, guardAccepted: [String]?, editing: String? = nil,
              context: TurnContext = TurnContext()) {
        turn += 1
        let recorder = currentRecorder()
        let userText = retry ? nil : messages.last(where: { $0.role == .user })?.content
        let turn = self.turn, engine = self.engine, queue = self.queue, cache = cacheChoice, structured = self.structured
        let routing = autoRoute
        let chosenPolicy = state.contextPolicy
        let hub = engine.config.supportsTools(modelRef) ? self.hub : nil
        if hub == nil, self.hub != nil, toolsNotOffered.insert(modelRef).inserted {
            // Said once per model, instead of the tools silently not being there.
            dispatch([.showNote("\(modelRef) does not take tools, so the MCP servers' tools are not offered to it (tools = true under [models.\"\(modelRef)\"] if it does)")])
        }
        let approvals = self.approvals
        var model = modelRef
        replyTask = Task.detached(executorPreference: StreamExecutor.shared) {
            var sanitizer = TerminalSanitizer()
            let session = recorder.snapshot.id
            var request = ChatRequest(model: model.model, system: Self.withSummary(system, context.summary), messages: messages,
                                      temperature: engine.config.temperature, responseFormat: structured?.format)
            var options = TurnOptions(session: session, cache: cache)
            if routing {
                // Routed off the UI thread: the budget guard reads the ledger.
                do {
                    let decision = try await engine.route(request, options: options)
                    model = decision.model
                    request.model = model.model
                    options.routeRule = decision.rule
                    queue.post(.routed(model: model.description, rule: decision.rule), turn: turn)
                    for skip in decision.skipped { queue.post(.showNote("auto skipped \(skip.model): \(skip.reason)")) }
                } catch {
                    queue.post(.engine(.failed(describe(error))), turn: turn)
                    return
                }
            }
            // A conversation too large for the model (the one routing chose, too) is summarized, trimmed or
            // refused before anything is sent, as /context, the model's `context` or [context] say; the
            // session keeps every message.
            let policy = chosenPolicy ?? engine.config.contextPolicy(for: model)
            var pinned = context.pinned
            var trim = policy == .trim
            if policy == .compact, let limit = engine.inputLimit(request, ref: model), TokenEstimator.estimate(request) > limit {
                do {
                    (request, pinned) = try await Self.compacted(request, system: system, context: context, limit: limit, engine: engine,
                                                                 recorder: recorder, queue: queue)
                } catch {
                    if Task.isCancelled { queue.post(.engine(.stopped), turn: turn); return }
                    let why = error is NothingToCompact ? "no saved message to summarize up to" : describe(error)
                    queue.post(.showError("compaction failed: \(why); the oldest messages are left out of what is sent instead"))
                }
                trim = true   // what the summary still leaves too large
            }
            do {
                let fitted = try engine.fitInput(request, ref: model, allowTruncate: trim, keep: Set(pinned))
                request = fitted.request
                if fitted.dropped > 0 { queue.post(.showNote("guard: the \(fitted.dropped) oldest messages are not sent, to fit \(model)")) }
                // The status bar counts what is sent from the start, not 0 until the provider's usage arrives.
                queue.post(.contextEstimated(tokens: TokenEstimator.estimate(request)))
            } catch {
                queue.post(.engine(.failed(describe(error))), turn: turn)
                return
            }
            // Tools from the MCP servers, when there are some and the model takes them.
            var loop: ToolLoop?
            if let hub {
                let (tools, problems) = await hub.tools()
                // A server that cannot start is said once, not with every message.
                for problem in problems where approvals.firstTime(problem) { queue.post(.showError(problem)) }
                if !tools.isEmpty {
                    loop = ToolLoop(hub: hub, tools: tools, settings: engine.config.mcp)
                    request.tools = tools.map(\.definition)
                }
            }
            var roundsCost: Double? = 0
            var round = 0
            while true {
            round += 1
            queue.post(.engine(.waiting), turn: turn)
            var result: TurnResult?
            let outcome = await RecordedTurn.run(engine: engine, recorder: recorder, userText: round == 1 ? userText : nil, request: request, model: model,
                                                 options: options, guardAccepted: round == 1 ? guardAccepted : nil, editing: round == 1 ? editing : nil,
                                                 sessionSystem: .some(system), continuing: round > 1) { event in
                switch event {
                case let .firstToken(milliseconds):
                    queue.post(.engine(.firstToken(milliseconds: milliseconds)), turn: turn)
                case let .finished(turn): result = turn
                case let .chat(.textDelta(text)):
                    let clean = sanitizer.sanitize(text)
                    if !clean.isEmpty { queue.post(.engine(.delta(clean)), turn: turn) }
                case let .chat(.retrying(_, _, delay, reason)):
                    queue.post(.engine(.retrying(seconds: Int(delay.rounded(.up)), reason: reason)), turn: turn)
                case let .chat(.usage(usage)):
                    queue.post(.engine(.usage(promptTokens: usage.totalPromptTokens, completionTokens: usage.completionTokens)), turn: turn)
                case let .chat(.rateLimit(limits)):
                    queue.post(.engine(.rateLimit(limits.isLow ? limits.summary : nil)), turn: turn)
                case .chat, .sending: break
                case let .trimmed(model, dropped):
                    queue.post(.showNote("the \(dropped) oldest messages are not sent to \(model), to fit its window"))
                case let .fallingBack(from, to, reason):
                    queue.post(.engine(.fellBack(from: from.description, to: to.description, reason: reason)), turn: turn)
                case .cacheHit:
                    queue.post(.engine(.cacheHit), turn: turn)
                case let .cost(cost):
                    // The turn's cost is the sum of its rounds.
                    let sum = roundsCost.flatMap { sum in cost.map { sum + $0 } }
                    // The ledger's sums are read off this event stream (the team's database may be a round trip away).
                    Task { queue.post(.engine(await Self.spendEvent(engine, session: session, turnCost: sum)), turn: turn) }
                }
            } onRecorded: { user, reply in
                queue.post(.turnRecorded(user: user, reply: reply), turn: turn)
            }
            if case .complete = outcome, var tools = loop, let reply = result?.reply, !reply.toolCalls.calls.isEmpty {
                roundsCost = roundsCost.flatMap { sum in result?.cost.map { sum + $0 } }
                queue.post(.engine(.toolCalls(reply.toolCalls.calls)), turn: turn)
                var sanitizer = TerminalSanitizer()
                let step = await tools.next(after: reply, approve: { tool, call in
                    await approvals.ask(tool: tool, call: call, queue: queue, turn: turn)
                }, starting: { tool, call in
                    queue.post(.engine(.toolStarted(ToolInfo(callID: call.id, name: tool?.name ?? TerminalSanitizer.line(String(call.name.prefix(80))),
                                                             arguments: call.arguments, status: .running))), turn: turn)
                }, report: { report in
                    let status: ToolInfo.Status = report.declined ? .declined : report.outcome.isError ? .error : .ok
                    queue.post(.engine(.toolFinished(callID: report.call.id, text: sanitizer.sanitize(report.outcome.text), status: status,
                                                     milliseconds: Int(report.elapsed.milliseconds))), turn: turn)
                })
                loop = tools
                switch step {
                case let .next(messages):
                    recorder.appendToolResults(messages)
                    request.messages += messages
                    queue.post(.engine(.nextRound), turn: turn)
                    continue
                case let .stopped(line):
                    if Task.isCancelled { return }
                    queue.post(.showNote(line))
                case .done: break
                }
            }
            switch outcome {
            case .stopped: return
            case .complete:
                queue.post(.engine(.finished(tokensPerSecond: result?.tokensPerSecond)), turn: turn)
                if let structured, let reply = result?.reply {
                    queue.post(.engine(Self.checked(reply, against: structured)), turn: turn)
                }
            case let .failed(line):
                queue.post(.engine(.failed(line)), turn: turn)
            }
            Self.reportSaveProblem(recorder, queue)
            for problem in engine.stores.takeProblems() { queue.post(.showError(problem)) }
            break
            }
        }
    }

    /// `/schema`; a template's schema names files beside the template only (`baseDirectory`).
    func setSchema(_ argument: String, baseDirectory: URL? = nil) {
        switch argument {
        case "":
            dispatch([.showNote(structuredSpec.map { "schema: \($0) (/schema off stops it)" } ?? "no schema: /schema SPEC asks for JSON (JSON Schema, a file, or fields like `name, age int`)")])
        case "off":
            structured = nil
            structuredSpec = nil
            dispatch([.showNote("schema off: answers are text again")])
        default:
            do {
                structured = try StructuredOutput(spec: argument, baseDirectory: baseDirectory)
                structuredSpec = argument
                var note = "schema set: every answer is asked for as JSON and checked"
                if let unchecked = structured?.unchecked, !unchecked.isEmpty { note += "; not checked: " + unchecked.joined(separator: ", ") }
                dispatch([.showNote(note)])
            } catch {
                dispatch([.showError("/schema: \(error.userMessage)")])
            }
        }
    }

    /// `/template NAME [KEY=VALUE …]`: a missing required variable is asked for by putting the command
    /// back in the input line with `NAME=` to fill in; the template's model and schema apply too.
    func applyTemplate(_ argument: String) {
        let words = argument.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard let name = words.first else { return }
        do {
            let template = try TemplateLibrary(paths: engine.paths).load(name)
            var values: [String: String] = [:]
            for word in words.dropFirst() {
                guard let equals = word.firstIndex(of: "="), equals != word.startIndex else {
                    dispatch([.showError("/template: `\(word)` is not KEY=VALUE")])
                    return
                }
                values[String(word[..<equals])] = String(word[word.index(after: equals)...])
            }
            if let missing = template.variables.first(where: { $0.required && $0.defaultValue == nil && (values[$0.name] ?? "").isEmpty }) {
                let given = words.dropFirst().filter { !$0.hasPrefix(missing.name + "=") }
                dispatch([.setDraft((["/template", name] + given + [missing.name + "="]).joined(separator: " ")),
                          .showNote("template \(name) needs \(missing.name)" + (missing.description.map { " (\($0))" } ?? "") + ": type it after `\(missing.name)=` and press Enter")])
                return
            }
            let rendered = try template.render(values: values, input: nil)
            if let model = template.model { switchModel(model) }
            if let spec = template.schema { setSchema(spec, baseDirectory: template.file.deletingLastPathComponent()) }
            var sanitizer = TerminalSanitizer()
            let draft = sanitizer.sanitize(rendered.prompt ?? "")
            dispatch([.templateApplied(name: name, system: rendered.system, examples: rendered.examples, draft: draft)])
        } catch {
            dispatch([.showError("/template: \(describe(error))")])
        }
    }

    /// The checked reply as the screen shows it: sanitized pretty JSON, or the violations.
    static func checked(_ reply: ReplyAccumulator, against structured: StructuredOutput) -> EngineEvent {
        switch structured.check(text: reply.text, finishReason: reply.finishReason) {
        case let .valid(value):
            var sanitizer = TerminalSanitizer()
            return .checkedJSON(pretty: sanitizer.sanitize(value.prettyPrinted()), problems: [])
        case let .invalid(violations):
            var sanitizer = TerminalSanitizer()
            return .checkedJSON(pretty: nil, problems: violations.prefix(20).map { sanitizer.sanitize($0.description) })
        case .truncated:
            return .checkedJSON(pretty: nil, problems: ["the reply was cut off by the output limit before its JSON was complete"])
        }
    }

    /// The status bar's costs: this turn, the session and today (against the daily limit when one is
    /// set), with a warning from 80 % of any limit. Reads the ledger; call it off the UI thread.
    static func spendEvent(_ engine: ChatEngine, session: String?, turnCost: Double?) async -> EngineEvent {
        let line = await engine.spendLine(session: session, turnCost: turnCost)
        return .spend(turn: line.turn, session: line.session, today: line.today, warn: line.warn)
    }

    func switchModel(_ name: String) {
        if name == "auto" {
            autoRoute = true
            let rules = engine.config.router.rules.count
            dispatch([.modelChanged(name: "auto", contextWindow: nil, turnCostText: "$0.00"),
                      .showNote("auto: each message goes to the model the [router] rules pick (\(rules) rule\(rules == 1 ? "" : "s"), default \(engine.config.routerDefault)); `parley route PROMPT` explains a choice")])
            return
        }
        let ref: ModelRef
        do { ref = try engine.config.resolve(name) } catch { dispatch([.showError(error.userMessage)]); return }
        let endpoint = engine.config.endpoint(for: ref, environment: engine.environment)
        do { try endpoint.requireKey() } catch {
            dispatch([.showError(error.userMessage)])
            return
        }
        modelRef = ref
        autoRoute = false
        let pricing = engine.config.pricing(for: ref)
        dispatch([.modelChanged(name: ref.description, contextWindow: engine.config.contextWindow(for: ref), turnCostText: pricing == nil ? "?" : "$0.00")])
        warmUp()
    }

    /// What the engine knows about a model before any reply (its context window, whether its price is
    /// known), as an action: the state changes only through the reducer.
    func modelFacts(_ ref: ModelRef) -> Action {
        let pricing = engine.config.pricing(for: ref)
        return .modelFacts(name: ref.description, contextWindow: engine.config.contextWindow(for: ref), priceKnown: pricing != nil)
    }

    static func modelChoices(_ engine: ChatEngine) -> [ModelChoice] {
        var choices: [ModelChoice] = []
        for name in engine.config.providerOrder {
            guard let provider = engine.config.providers[name] else { continue }
            let status: String
            if let variable = provider.apiKeyVariable {
                status = (engine.environment[variable] ?? "").isEmpty ? "no key: \(variable)" : "key set"
            } else {
                status = name == "local" ? "local, free" : "no key needed"
            }
            for model in provider.models { choices.append(ModelChoice(name: "\(name):\(model)", keyStatus: status)) }
        }
        for (alias, target) in engine.config.aliases.sorted(by: { $0.key < $1.key }) {
            choices.append(ModelChoice(name: alias, keyStatus: "alias for \(target)"))
        }
        return choices
    }

    func modelList() -> String {
        var lines = ["models (use /model NAME; any provider:model works):"]
        for choice in state.modelChoices {
            lines.append("  \(choice.name == modelRef.description ? "●" : " ") \(choice.name)  — \(choice.keyStatus)")
        }
        return lines.joined(separator: "\n")
    }

    func openEditor(_ draft: String) {
        // A fresh 0700 directory, so no other user can guess the name and plant a link or read the draft.
        let file: URL
        do {
            let directory = try PrivateFile.temporaryDirectory()
            file = URL(fileURLWithPath: directory).appendingPathComponent("draft.md")
            try AtomicFile.write(Data(draft.utf8), to: file)
        } catch {
            dispatch([.showError(describe(error))])
            return
        }
        defer { try? FileManager.default.removeItem(at: file.deletingLastPathComponent()) }
        let editor = [engine.environment["VISUAL"], engine.environment["EDITOR"]].compactMap { $0 }.first { !$0.isEmpty } ?? "vi"
        screen?.suspend()
        // The user's own editor gets the user's whole environment (its plugins may need it).
        let status = (try? ChildProcess.spawn(["/bin/sh", "-c", "\(editor) \"$1\"", "sh", file.path], environment: engine.environment,
                                              stdinNull: false).wait()) ?? -1
        screen?.resume()
        if status == 0, let data = try? PrivateFile.read(file.path, limit: 64 << 20) {
            dispatch([.editorClosed(String(decoding: data, as: UTF8.self))])
        } else {
            dispatch([.editorClosed(nil), .showError("the editor (\(editor)) exited with status \(status); the draft is unchanged")])
        }
    }

    // MARK: history

    static func loadHistory(_ file: URL) -> [String] {
        guard let data = try? PrivateFile.read(file.path, limit: 64 << 20) else { return [] }
        var items: [String] = []
        for line in data.split(separator: 0x0A).suffix(1000) {
            if let value = try? JSONValue.parse(Array(line)), let text = value.string { items.append(text) }
        }
        return items
    }

    func appendHistory(_ text: String) {
        do { try AtomicFile.ensureDirectory(historyFile.deletingLastPathComponent()) } catch { return }
        guard let fd = try? PrivateFile.open(historyFile.path, O_WRONLY | O_CREAT | O_APPEND) else { return }
        defer { close(fd) }
        var line = JSONValue.string(text).serialized() + "\n"
        line.withUTF8 { _ = write(fd, $0.baseAddress, $0.count) }
    }
}


/// Tool calls waiting for the user's answer on the screen, the tools and servers the user said to
/// always run in this session, and the server problems already said. The turn's task waits; the UI
/// thread answers.
final class ToolApprovals: @unchecked Sendable {
    private let lock = NSLock()
    private var waiting: [Int: CheckedContinuation<ToolDecision, Never>] = [:]
    private var nextID = 1
    private var alwaysTools = Set<String>()
    private var alwaysServers = Set<String>()
    private var said = Set<String>()

    /// Whether this line about the servers is new in this session.
    func firstTime(_ line: String) -> Bool { lock.withLock { said.insert(line).inserted } }

    /// Whether to run `call`: yes at once when the user said "always" for it, else asked on the screen.
    func ask(tool: OfferedTool, call: ToolCall, queue: ActionQueue, turn: Int) async -> Bool {
        if lock.withLock({ alwaysTools.contains(tool.name) || alwaysServers.contains(tool.server) }) { return true }
        if Task.isCancelled { return false }
        let decision: ToolDecision = await withCheckedContinuation { continuation in
            let id = lock.withLock {
                defer { nextID += 1 }
                waiting[nextID] = continuation
                return nextID
            }
            queue.post(.askToolApproval(ToolApprovalRequest(id: id, server: tool.server, tool: tool.name, arguments: call.arguments)), turn: turn)
        }
        switch decision {
        case .yes: return true
        case .no: return false
        case .alwaysTool: lock.withLock { _ = alwaysTools.insert(tool.name) }; return true
        case .alwaysServer: lock.withLock { _ = alwaysServers.insert(tool.server) }; return true
        }
    }

    func decide(_ id: Int, _ decision: ToolDecision) {
        let continuation = lock.withLock { waiting.removeValue(forKey: id) }
        continuation?.resume(returning: decision)
    }

    /// A stopped turn (or quitting) declines whatever was waiting.
    func declineAll() {
        let all = lock.withLock { () -> [CheckedContinuation<ToolDecision, Never>] in
            defer { waiting = [:] }
            return Array(waiting.values)
        }
        for continuation in all { continuation.resume(returning: .no) }
    }
}
