import Foundation
import ParleyCore
import ParleyKit
import ParleyTestSupport

/// Issue 14's figures: validations per second for a 6-field schema, and what checking adds to `ask`
/// (the real binary against a loopback provider, with and without `--schema`).
func schemaBenchmark(runs: Int) async throws {
    let schemaText = #"{"type":"object","properties":{"name":{"type":"string","minLength":2,"maxLength":20},"#
        + #""age":{"type":"integer","minimum":0,"maximum":120},"email":{"type":"string","pattern":"^[a-z]+@[a-z]+\\.[a-z]+$"},"#
        + #""role":{"type":"string","enum":["admin","user","guest"]},"score":{"type":"number","minimum":0,"maximum":1},"#
        + #""tags":{"type":"array","items":{"type":"string","maxLength":12},"maxItems":3}},"#
        + #""required":["name","age","email","role","score","tags"],"additionalProperties":false}"#
    let answer = #"{"name":"Ada Lovelace","age":36,"email":"ada@example.org","role":"admin","score":0.93,"tags":["math","engines"]}"#
    let output = try StructuredOutput(spec: schemaText)
    let schema = try JSONSchema(try JSONValue.parse(schemaText))
    let value = try JSONValue.parse(answer)

    // The validator alone, on a parsed value.
    var valid = 0
    let iterations = 200_000
    var start = ContinuousClock.now
    for _ in 0..<iterations where schema.validate(value).isEmpty { valid += 1 }
    let seconds = (ContinuousClock.now - start).seconds
    precondition(valid == iterations)
    // What ask does per answer: strip, parse and validate the reply's text.
    start = ContinuousClock.now
    for _ in 0..<20_000 { precondition(output.check(text: answer, finishReason: .stop).isValid) }
    let perCheck = (ContinuousClock.now - start).seconds / 20_000
    // Compiling the schema, once per ask.
    start = ContinuousClock.now
    for _ in 0..<2_000 { _ = try StructuredOutput(spec: schemaText) }
    let perCompile = (ContinuousClock.now - start).seconds / 2_000
    print(String(format: "6-field schema: %.0f validations/s (%.1f µs each); parse + validate of the reply %.1f µs; compiling the schema %.1f µs",
                 Double(iterations) / seconds, seconds / Double(iterations) * 1e6, perCheck * 1e6, perCompile * 1e6))

    // The real binary: `ask` with and without --schema against the same loopback reply.
    var body = ""
    for piece in [String(answer.prefix(40)), String(answer.dropFirst(40))] {
        body += "data: " + JSONValue.object([("choices", [["index": 0, "delta": ["content": .string(piece)]]])]).serialized() + "\n\n"
    }
    body += "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"
    let reply = ScriptedHTTPServer.sse(Array(body.utf8))
    let server = try await ScriptedHTTPServer { _ in reply }
    let home = FileManager.default.temporaryDirectory.appendingPathComponent("parley-bench-schema-\(getpid())")
    try FileManager.default.createDirectory(at: home.appendingPathComponent("parley"), withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: home) }
    try "[providers.bench]\nbase_url = \"\(server.baseURL)/v1\"\nmodels = [\"m\"]\n".write(to: home.appendingPathComponent("parley/config.toml"), atomically: true, encoding: .utf8)
    let schemaFile = home.appendingPathComponent("schema.json")
    try schemaText.write(to: schemaFile, atomically: true, encoding: .utf8)
    var environment = ProcessInfo.processInfo.environment
    environment["XDG_CONFIG_HOME"] = home.path
    environment["XDG_DATA_HOME"] = home.appendingPathComponent("data").path
    var plain: [Double] = [], checked: [Double] = []
    for _ in 0..<runs {
        let a = try measure([parley, "ask", "-m", "bench:m", "profile"], environment: environment)
        let b = try measure([parley, "ask", "-m", "bench:m", "--schema", schemaFile.path, "profile"], environment: environment)
        precondition(a.status == 0 && b.status == 0, "ask failed")
        plain.append(a.wall * 1000)
        checked.append(b.wall * 1000)
    }
    await server.shutdown()
    print(String(format: "`parley ask` on loopback, %d runs each: median %.1f ms plain, %.1f ms with --schema (%+.1f ms)",
                 runs, median(plain), median(checked), median(checked) - median(plain)))
}
