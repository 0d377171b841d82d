import Foundation
import Testing
import ParleyCore
@testable import ParleyTUI
@testable import ParleyKit

/// Issue 16, context that fits: the policy from the config (per model, `[context]`, `[guard]`), pins and
/// summaries in what is sent, and the split compaction makes.
@Suite struct ContextPolicyTests {
    func config(_ text: String) throws(ConfigError) -> ParleyConfig {
        try ParleyConfig.parse("[providers.box]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodels = [\"m\", \"n\"]\n" + text, file: "c.toml")
    }

    @Test func thePolicyComesFromTheModelThenContextThenTheGuard() throws {
        let m = ModelRef(provider: "box", model: "m"), n = ModelRef(provider: "box", model: "n")
        #expect(try config("").contextPolicy(for: m) == .refuse)
        #expect(try config("[guard]\non_oversize = \"truncate\"\n").contextPolicy(for: m) == .trim)
        let both = try config("[context]\npolicy = \"compact\"\nsummary_model = \"box:n\"\n[models.\"box:m\"]\ncontext = \"trim\"\n")
        #expect(both.contextPolicy(for: m) == .trim)
        #expect(both.contextPolicy(for: n) == .compact)
        #expect(both.context.summaryModel == "box:n")
        // Bad values name the line and what is expected.
        #expect(throws: ConfigError.self) { try config("[context]\npolicy = \"squash\"\n") }
        let unknown = #expect(throws: ConfigError.self) { try config("[context]\nsummary_model = \"nowhere:x\"\n") }
        #expect(unknown?.line == 5 && unknown?.message.hasPrefix("context.summary_model:") == true, "\(String(describing: unknown))")
        let wrongType = #expect(throws: ConfigError.self) { try config("[models.\"box:m\"]\ncontext = 3\n") }
        #expect(wrongType?.message.contains("box:m") == true && wrongType?.message.contains("context") == true, "\(String(describing: wrongType))")
    }

    @Test func pinnedMessagesAreMarkedSavedAndAlwaysSent() {
        var state = recordedTurns(3)
        // Alt-↑ picks the last reply, ↑ ×5 the first prompt (and no further); p pins it.
        _ = reduce(&state, .input(.key(.altUp)))
        for _ in 0..<6 { _ = reduce(&state, .input(.key(.up))) }
        #expect(state.selected == 0)
        #expect(reduce(&state, .input(.key(.character("p")))) == [.setPinned(messageID: "u0", true)])
        #expect(screen(state).contains { $0.contains("you") && $0.contains("pinned") })
        _ = reduce(&state, .input(.key(.escape)))
        // A summary through r1 stands in for the first two turns; the pinned prompt is still sent.
        state.summary = ActiveSummary(through: "r1", text: "they asked twice", model: "local:smollm2", covers: 4)
        let (messages, context) = state.sendContext()
        #expect(messages == [.user("question 0"), .user("question 2"), .assistant("answer 2")])
        #expect(context == TurnContext(ids: ["u0", "u2", "r2"], pinned: [0], summary: "they asked twice"))
        state.input.set("/unpin")
        _ = reduce(&state, .input(.key(.enter)))
        #expect(state.entries.filter(\.pinned).isEmpty == false, "/unpin without a pick is for your last prompt, which is not pinned")
        state.input.set("/compact show")
        _ = reduce(&state, .input(.key(.enter)))
        #expect(state.entries.last?.text.contains("they asked twice") == true)
        state.input.set("/compact")
        #expect(reduce(&state, .input(.key(.enter))).contains(.compact(messages: messages, system: nil, context: context)))
        state.input.set("/context compact")
        _ = reduce(&state, .input(.key(.enter)))
        #expect(state.contextPolicy == .compact)
    }

    @Test func theSplitKeepsTheNewestAndThePinnedAndStopsWhenItFits() throws {
        let engine = ChatEngine(config: try config(""), paths: ParleyPaths(configDirectory: URL(fileURLWithPath: "/nonexistent"),
                                                                           dataDirectory: URL(fileURLWithPath: "/nonexistent"),
                                                                           runtimeDirectory: URL(fileURLWithPath: "/nonexistent")), environment: [:])
        let words = String(repeating: "word ", count: 100)
        let request = ChatRequest(model: "m", system: "be brief", messages: (0..<10).map { $0 % 2 == 0 ? .user("\($0) \(words)") : .assistant("\($0) \(words)") })
        let total = TokenEstimator.estimate(request)
        #expect(engine.compactionSplit(request, limit: total + 100, allowance: 50, keepRecent: 2, keep: []).isEmpty)
        let split = engine.compactionSplit(request, limit: total / 2, allowance: 50, keepRecent: 2, keep: [1])
        #expect(split.first == 0 && !split.contains(1) && !split.contains(8) && !split.contains(9))
        var rest = request
        rest.messages = request.messages.indices.filter { !split.contains($0) }.map { request.messages[$0] }
        #expect(TokenEstimator.estimate(rest) + 50 <= total / 2)
        // Only the newest left: nothing more can go.
        #expect(engine.compactionSplit(request, limit: 10, allowance: 50, keepRecent: 10, keep: []).isEmpty)
    }

    /// Found by an attack: after /clear the summary was no longer sent (and the messages it covered were
    /// gone too); editing a prompt before the summary's last message left a stale summary reported.
    @Test func theSummaryOutlivesClearAndGoesWithAnEditBeforeIt() {
        var state = recordedTurns(3)
        state.summary = ActiveSummary(through: "r0", text: "SUMMARY", model: "local:smollm2", covers: 2)
        var cleared = state
        cleared.input.set("/clear")
        _ = reduce(&cleared, .input(.key(.enter)))
        let (messages, context) = cleared.sendContext()
        #expect(context.summary == "SUMMARY")
        #expect(messages == [.user("question 1"), .assistant("answer 1"), .user("question 2"), .assistant("answer 2")])
        // Editing question 0 (before the summary's end): the summary no longer stands for the branch.
        state.input.set("/edit-message 3")
        _ = reduce(&state, .input(.key(.enter)))
        #expect(state.editing?.messageID == "u0")
        let effects = reduce(&state, .input(.key(.enter)))
        #expect(state.summary == nil)
        #expect(effects.last == .send(messages: [.user("question 0")], system: nil, editing: "u0"))
    }
}
