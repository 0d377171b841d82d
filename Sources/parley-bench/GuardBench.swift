import Foundation
import ParleyCore
import ParleyKit

/// Issue 17's figures: the input guard's time per 100 KB of text (prose, code, and text full of
/// base64 runs it must decode), and the router's time per request.
func guardBenchmark() async throws {
    let prose = String(repeating: "The quarterly report shows steady growth in every region, and the team expects more of the same next year. ", count: 1_000)
    let code = String(repeating: "func total(_ items: [Item]) -> Int { items.reduce(0) { $0 + $1.price } } // ignore the cached value\n", count: 1_000)
    let encoded = String(repeating: Data("just an ordinary sentence about weather and lunch".utf8).base64EncodedString() + " ", count: 1_500)
    for (name, text) in [("prose", prose), ("code", code), ("base64-heavy", encoded)] {
        let sample = String(text.prefix(100_000))
        var times: [Double] = []
        for _ in 0..<20 {
            let start = ContinuousClock.now
            let findings = InputGuard.scan(sample)
            times.append((ContinuousClock.now - start).milliseconds)
            precondition(findings.isEmpty, "\(name): \(findings.first!.line)")
        }
        print(String(format: "guard, 100 KB of %@: median %.1f ms, max %.1f ms", name, median(times), times.max() ?? 0))
    }
    let config = try ParleyConfig.parse("""
    [router]
    default = "local"
    [[router.rules]]
    name = "hard"
    any_regex = ["\\\\bprove\\\\b", "step by step"]
    model = "local"
    [[router.rules]]
    name = "code"
    has_code = true
    model = "local"
    [[router.rules]]
    name = "german"
    language = "de"
    model = "local"
    """, file: "bench.toml")
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("parley-bench-route-\(getpid())")
    defer { try? FileManager.default.removeItem(at: root) }
    let engine = ChatEngine(config: config, paths: ParleyPaths(configDirectory: root, dataDirectory: root, runtimeDirectory: root), environment: [:])
    let request = ChatRequest(model: "", messages: [.user("Can you explain, step by step, how a hash map grows when it is full?")], maxTokens: 200)
    let runs = 2_000
    let start = ContinuousClock.now
    for _ in 0..<runs { _ = try await engine.route(request) }
    print(String(format: "routing one request (3 rules, no budget): %.1f µs", (ContinuousClock.now - start).seconds / Double(runs) * 1e6))
}
