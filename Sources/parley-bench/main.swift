import Foundation
import ParleyCore
import ParleyKit
import ParleyProviders
import ParleyTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `parley-bench`: the figures in the README, measured against the real `parley` binary.
///
///     parley-bench decode [CHUNKS]   ask's decode throughput on a synthetic OpenAI stream, next to curl
///     parley-bench startup [RUNS]    process start-up time of `parley --version`
///     parley-bench ttft [RUNS]       time to first token of `parley ask` against the warm local server
///     parley-bench screen [MESSAGES] frame, keystroke, token, resize and paste costs of the screen's core
///     parley-bench tui [TOKENS]      the real screen in tmux: start-up, idle and streaming CPU, typing, paste
///     parley-bench sessions          save cost by session size; resuming 10,000 messages in the real binary
///     parley-bench cancel [RUNS]     stop → the provider sees the connection closed
///     parley-bench cache [RUNS]      a cache hit replaying a 2,000-token reply
///     parley-bench estimate          the prompt-token estimate against the local model's own count
///     parley-bench hostile           peak memory of the real binary against streams that never end or are huge
///     parley-bench schema [RUNS]     validations per second for a 6-field schema; what --schema adds to ask
///     parley-bench guard             the input guard's time per 100 KB; the router's time per request
///     parley-bench rates             the screen's CPU per 1,000 streamed tokens at 100, 1,000 and 5,000 tokens/s
///     parley-bench hour [EXCHANGES]  the screen's resident memory over an hour's exchanges, compressed
///     parley-bench resume-parts FILE where a resume's time goes, in process (read, decode, branch, estimate)
///     parley-bench write-session N HOME  writes an N-message session into HOME, for profiling by hand

let binDirectory = URL(fileURLWithPath: ChatEngine.currentExecutable()).deletingLastPathComponent()
let parley = ProcessInfo.processInfo.environment["PARLEY_BIN"] ?? binDirectory.appendingPathComponent("parley").path

struct Measurement {
    var wall: Double
    var cpu: Double
    var status: Int32
}

/// Runs a command with stdout to `stdoutPath`, returning wall time and the child's user+system CPU time.
func measure(_ arguments: [String], environment: [String: String]? = nil, stdoutPath: String = "/dev/null") throws -> Measurement {
    var before = rusage()
    getrusage(RUSAGE_CHILDREN.rawValue, &before)
    let start = ContinuousClock.now
    let quoted = arguments.map(ChildProcess.shellQuote).joined(separator: " ")
    let child = try ChildProcess.spawn(["/bin/sh", "-c", "exec \(quoted) > \(ChildProcess.shellQuote(stdoutPath))"], environment: environment)
    let status = child.wait()
    let wall = (ContinuousClock.now - start).seconds
    var after = rusage()
    getrusage(RUSAGE_CHILDREN.rawValue, &after)
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    let cpu = seconds(after.ru_utime) - seconds(before.ru_utime) + seconds(after.ru_stime) - seconds(before.ru_stime)
    return Measurement(wall: wall, cpu: cpu, status: status)
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
}

/// One OpenAI chunk per token, shaped like OpenAI's own (id, model and fingerprint included), then the
/// usage chunk and [DONE].
func syntheticStream(chunks: Int) -> [UInt8] {
    var out = [UInt8]()
    out.reserveCapacity(chunks * 140)
    for i in 0..<chunks {
        let token = i % 10 == 9 ? "\\n" : " tok\(i % 1000)"
        out += Array("data: {\"id\":\"chatcmpl-AbCdEfGhIjKlMnOpQrStUvWxYz012\",\"object\":\"chat.completion.chunk\",\"created\":1732000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_0ba0d124f1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\(token)\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n".utf8)
    }
    out += Array("data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n".utf8)
    out += Array("data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":\(chunks),\"total_tokens\":\(chunks + 5)}}\n\n".utf8)
    out += Array("data: [DONE]\n\n".utf8)
    return out
}

func decodeBenchmark(chunks: Int) async throws {
    let body = syntheticStream(chunks: chunks)
    let blocks = stride(from: 0, to: body.count, by: 65_536).map { Array(body[$0..<min($0 + 65_536, body.count)]) }
    let server = try await ScriptedHTTPServer { _ in
        [.head(status: 200, headers: [("Content-Type", "text/event-stream")])] + blocks.map { .write($0) } + [.end]
    }
    defer { Task { await server.shutdown() } }
    let home = FileManager.default.temporaryDirectory.appendingPathComponent("parley-bench-\(getpid())")
    let configDirectory = home.appendingPathComponent("config/parley")
    try FileManager.default.createDirectory(at: configDirectory, withIntermediateDirectories: true)
    try """
    [providers.bench]
    base_url = "\(server.baseURL)/v1"
    models = ["synthetic"]
    """.write(to: configDirectory.appendingPathComponent("config.toml"), atomically: true, encoding: .utf8)
    var environment = ProcessInfo.processInfo.environment
    environment["XDG_CONFIG_HOME"] = home.appendingPathComponent("config").path
    environment["XDG_DATA_HOME"] = home.appendingPathComponent("data").path
    let output = home.appendingPathComponent("out.txt").path
    print("stream: \(chunks) chunks, \(body.count / 1_000_000) MB, served from loopback")
    var parleyRuns: [Measurement] = []
    var curlRuns: [Measurement] = []
    for _ in 0..<3 {
        parleyRuns.append(try measure([parley, "ask", "-m", "bench:synthetic", "go"], environment: environment, stdoutPath: output))
        curlRuns.append(try measure(["curl", "-sN", "-X", "POST", "-H", "Content-Type: application/json", "-d", "{}", server.baseURL + "/v1/chat/completions"]))
    }
    let printed = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
    guard parleyRuns.allSatisfy({ $0.status == 0 }) else { print("parley ask failed"); exit(1) }
    let p = parleyRuns.min { $0.wall < $1.wall }!
    let c = curlRuns.min { $0.wall < $1.wall }!
    print(String(format: "parley ask: %.3f s wall, %.3f s CPU, %.2f M tokens/s (%d bytes of text printed)", p.wall, p.cpu, Double(chunks) / p.wall / 1e6, printed))
    print(String(format: "curl -sN:   %.3f s wall, %.3f s CPU, %.2f M chunks/s (raw bytes, no decoding)", c.wall, c.cpu, Double(chunks) / c.wall / 1e6))
    try? FileManager.default.removeItem(at: home)
}

/// The decoder alone, in process: bytes in 64 KB blocks, events out, adjacent text joined as the client does.
func decoderBenchmark(chunks: Int) throws {
    let body = syntheticStream(chunks: chunks)
    var best = Double.infinity
    var characters = 0
    for _ in 0..<5 {
        let start = ContinuousClock.now
        var decoder = OpenAIChatFormat.Decoder(provider: "bench")
        var text = 0
        try body.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let block = UnsafeRawBufferPointer(rebasing: raw[offset..<min(offset + 65_536, raw.count)])
                try decoder.feed(block) { event in if case let .textDelta(t) = event { text += t.utf8.count } }
                offset += 65_536
            }
        }
        best = min(best, (ContinuousClock.now - start).seconds)
        characters = text
    }
    print(String(format: "decoder only: %.3f s for %d chunks, %.2f M tokens/s (%d bytes of text)", best, chunks, Double(chunks) / best / 1e6, characters))
}

func startupBenchmark(runs: Int) throws {
    var walls: [Double] = []
    for _ in 0..<runs { walls.append(try measure([parley, "--version"]).wall) }
    print(String(format: "parley --version: median %.1f ms, min %.1f ms over %d runs", median(walls) * 1000, (walls.min() ?? 0) * 1000, runs))
}

func ttftBenchmark(runs: Int) throws {
    // One warm-up starts (or finds) the local server.
    _ = try measure([parley, "ask", "--max-tokens", "4", "hi"])
    var ttfts: [Double] = []
    var walls: [Double] = []
    let temp = FileManager.default.temporaryDirectory.appendingPathComponent("parley-bench-ttft-\(getpid()).json").path
    for _ in 0..<runs {
        let m = try measure([parley, "ask", "--json", "--max-tokens", "8", "Say hello."], stdoutPath: temp)
        guard m.status == 0, let data = FileManager.default.contents(atPath: temp),
              let json = try? JSONValue.parse(Array(data)), let ttft = json["time_to_first_token_ms"]?.double else {
            print("parley ask failed; is the local runtime installed (parley setup)?"); exit(1)
        }
        ttfts.append(ttft)
        walls.append(m.wall * 1000)
    }
    try? FileManager.default.removeItem(atPath: temp)
    // From starting the process to its first byte on stdout: what a person at a shell waits.
    var firstBytes: [Double] = []
    for _ in 0..<runs {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: parley)
        process.arguments = ["ask", "--max-tokens", "8", "Say hello."]
        let pipe = Pipe()
        process.standardOutput = pipe
        let start = ContinuousClock.now
        try process.run()
        _ = pipe.fileHandleForReading.readData(ofLength: 1)
        firstBytes.append((ContinuousClock.now - start).milliseconds)
        _ = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
    }
    print(String(format: "local smollm2, warm server, %d runs: process start to first token on stdout median %.1f ms (min %.1f); request to first token median %.1f ms; whole `parley ask --max-tokens 8` median %.1f ms",
                 runs, median(firstBytes), firstBytes.min() ?? 0, median(ttfts), median(walls)))
}

let arguments = Array(CommandLine.arguments.dropFirst())
let count = arguments.count > 1 ? Int(arguments[1]) : nil
switch arguments.first {
case "decode": try await decodeBenchmark(chunks: count ?? 200_000)
case "decoder": try decoderBenchmark(chunks: count ?? 200_000)
case "startup": try startupBenchmark(runs: count ?? 20)
case "ttft": try ttftBenchmark(runs: count ?? 10)
case "screen": screenBenchmark(messages: count ?? 10_000)
case "tui": try await tuiBenchmark(tokens: count ?? 10_000)
case "sessions": try await sessionBenchmark()
case "cancel": try await cancelBenchmark(runs: count ?? 50)
case "cache": try await cacheBenchmark(runs: count ?? 50)
case "estimate": try await estimateBenchmark()
case "hostile": try await hostileBenchmark()
case "schema": try await schemaBenchmark(runs: count ?? 20)
case "guard": try await guardBenchmark()
case "gateway": try await gatewayBenchmark(requests: count ?? 500)
case "team-ledger": try await teamLedgerBenchmark(rows: count ?? 1_000_000)
case "rates": try await streamRatesBenchmark()
case "hour": try await hourBenchmark(exchanges: count ?? 60)
case "resume-parts": try resumePartsBenchmark(path: arguments[1])
case "write-session":
    // For profiling by hand: `parley-bench write-session 10000 DIR` writes DIR/data/parley/sessions/ID.json.
    guard arguments.count > 2 else { print("usage: parley-bench write-session MESSAGES HOME"); exit(64) }
    let store = SessionStore(directory: URL(fileURLWithPath: arguments[2]).appendingPathComponent("data/parley/sessions"))
    try store.save(syntheticSession(messages: count ?? 10_000))
default:
    print("usage: parley-bench decode [CHUNKS] | decoder [CHUNKS] | startup [RUNS] | ttft [RUNS] | screen [MESSAGES] | tui [TOKENS] | sessions | cancel [RUNS] | cache [RUNS] | estimate | hostile | schema [RUNS] | guard | gateway [REQUESTS] | team-ledger [ROWS]")
    exit(2)
}
