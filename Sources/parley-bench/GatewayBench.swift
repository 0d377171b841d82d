import AsyncHTTPClient
import Foundation
import NIOCore
import ParleyCore
import ParleyKit
import ParleyTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Issue 18's gateway figures: what `parley serve` adds to a streamed request over calling the
/// upstream directly (p50, p99 of time to the first content byte and of the whole request), and 50
/// concurrent streams through it (throughput, errors, the gateway's memory and CPU).
func gatewayBenchmark(requests: Int) async throws {
    // The upstream: a loopback provider streaming 20 words at once, or (for the concurrency run) 400
    // words 5 ms apart.
    let quick = FaultServer.events(.openAI, words: (0..<20).map { "w\($0) " })
    let slow = FaultServer.events(.openAI, words: (0..<400).map { "w\($0) " })
    let upstream = try await ScriptedHTTPServer { request in
        let stream = request.bodyText.contains("\"max_tokens\":400") ? slow : quick
        var steps: [ScriptedHTTPServer.Step] = [.head(status: 200, headers: [("Content-Type", "text/event-stream")]), .write(Array(stream.open.joined().utf8))]
        if stream.words.count > 20 {
            for word in stream.words { steps += [.write(Array(word.utf8)), .pause(.milliseconds(5))] }
        } else {
            steps.append(.write(Array(stream.words.joined().utf8)))
        }
        return steps + [.write(Array((stream.close + [stream.end]).joined().utf8)), .end]
    }
    let home = FileManager.default.temporaryDirectory.appendingPathComponent("parley-bench-gateway-\(getpid())")
    try FileManager.default.createDirectory(at: home.appendingPathComponent("config/parley"), withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: home) }
    try """
        [providers.up]
        base_url = "\(upstream.baseURL)/v1"
        models = ["m"]
        max_retries = 0
        """.write(to: home.appendingPathComponent("config/parley/config.toml"), atomically: true, encoding: .utf8)
    var environment = ProcessInfo.processInfo.environment
    environment["XDG_CONFIG_HOME"] = home.appendingPathComponent("config").path
    environment["XDG_DATA_HOME"] = home.appendingPathComponent("data").path
    let output = home.appendingPathComponent("serve.out").path
    let gateway = try ChildProcess.spawn(["/bin/sh", "-c", "exec \(ChildProcess.shellQuote(parley)) serve --port 0 > \(ChildProcess.shellQuote(output)) 2>/dev/null"],
                                         environment: environment)
    defer { gateway.signal(SIGTERM); _ = gateway.wait() }
    var port = 0
    for _ in 0..<400 where port == 0 {
        usleep(25_000)
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        if let range = text.range(of: "127.0.0.1:") { port = Int(text[range.upperBound...].prefix { $0.isNumber }) ?? 0 }
    }
    guard port != 0 else { print("parley serve did not start"); return }

    var configuration = HTTPClient.Configuration(timeout: .init(connect: .seconds(5), read: .seconds(30)))
    configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 64
    let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)

    /// One streamed request: time to the first content byte and to the end, in ms; nil on an error.
    func once(_ base: String, maxTokens: Int) async -> (first: Double, total: Double, chunks: Int)? {
        var request = HTTPClientRequest(url: base + "/chat/completions")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: #"{"model":"up:m","stream":true,"max_tokens":\#(maxTokens),"messages":[{"role":"user","content":"Count."}]}"#))
        let start = ContinuousClock.now
        do {
            let response = try await client.execute(request, timeout: .seconds(60))
            guard response.status == .ok else {
                let body = try await response.body.collect(upTo: 1 << 16)
                FileHandle.standardError.write(Data("gateway bench: HTTP \(response.status.code): \(String(buffer: body).prefix(300))\n".utf8))
                return nil
            }
            var first: Double?
            var chunks = 0
            var tail = ""
            for try await buffer in response.body {
                let text = String(buffer: buffer)
                if first == nil, text.contains("\"content\":\"w") { first = (ContinuousClock.now - start).milliseconds }
                chunks += text.components(separatedBy: "\"content\":\"w").count - 1
                tail = String((tail + text).suffix(32))
            }
            guard tail.contains("[DONE]") else {
                FileHandle.standardError.write(Data("gateway bench: the stream ended without [DONE]: …\(tail)\n".utf8))
                return nil
            }
            return (first ?? 0, (ContinuousClock.now - start).milliseconds, chunks)
        } catch {
            FileHandle.standardError.write(Data("gateway bench: \(error)\n".utf8))
            return nil
        }
    }

    let direct = upstream.baseURL + "/v1", through = "http://127.0.0.1:\(port)/v1"
    for _ in 0..<20 { _ = await once(direct, maxTokens: 20); _ = await once(through, maxTokens: 20) }
    var results: [String: (first: [Double], total: [Double], errors: Int)] = ["direct": ([], [], 0), "gateway": ([], [], 0)]
    for _ in 0..<requests {
        for (name, base) in [("direct", direct), ("gateway", through)] {
            if let result = await once(base, maxTokens: 20) {
                results[name]!.first.append(result.first)
                results[name]!.total.append(result.total)
            } else {
                results[name]!.errors += 1
            }
        }
    }
    func p(_ values: [Double], _ q: Double) -> Double { percentile(values, q) ?? .nan }
    for name in ["direct", "gateway"] {
        let r = results[name]!
        print(String(format: "%@, %d streamed requests of 20 chunks: first content p50 %.2f ms p99 %.2f ms; whole request p50 %.2f ms p99 %.2f ms; %d errors",
                     name, requests, p(r.first, 0.5), p(r.first, 0.99), p(r.total, 0.5), p(r.total, 0.99), r.errors))
    }
    let d = results["direct"]!, g = results["gateway"]!
    print(String(format: "added by the gateway: first content p50 +%.2f ms, p99 +%.2f ms; whole request p50 +%.2f ms, p99 +%.2f ms",
                 p(g.first, 0.5) - p(d.first, 0.5), p(g.first, 0.99) - p(d.first, 0.99), p(g.total, 0.5) - p(d.total, 0.5), p(g.total, 0.99) - p(d.total, 0.99)))

    // 50 concurrent streams of 400 chunks each (5 ms apart upstream: about 2 s per stream).
    let before = processFigures(gateway.pid)
    let started = ContinuousClock.now
    let outcomes = await withTaskGroup(of: (Double, Int)?.self) { group in
        for _ in 0..<50 { group.addTask { await once(through, maxTokens: 400).map { ($0.total, $0.chunks) } } }
        var all: [(Double, Int)?] = []
        for await outcome in group { all.append(outcome) }
        return all
    }
    let wall = (ContinuousClock.now - started).seconds
    let after = processFigures(gateway.pid)
    let done = outcomes.compactMap { $0 }
    let chunks = done.map(\.1).reduce(0, +)
    try? await client.shutdown()
    print(String(format: "50 concurrent streams of 400 chunks through the gateway: %d complete, %d errors, %d chunks in %.2f s (%.0f chunks/s); per stream p50 %.2f s, max %.2f s; "
                 + "gateway CPU %.2f s, resident %.1f MB before, peak %.1f MB",
                 done.count, 50 - done.count, chunks, wall, Double(chunks) / wall, (percentile(done.map(\.0), 0.5) ?? 0) / 1000,
                 (done.map(\.0).max() ?? 0) / 1000, after.cpu - before.cpu, before.rssMB, after.peakMB))
    await upstream.shutdown()
}

/// CPU seconds (user + system), resident and peak resident MB of a process, from /proc.
func processFigures(_ pid: Int32) -> (cpu: Double, rssMB: Double, peakMB: Double) {
    let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    func kilobytes(_ field: String) -> Double {
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field) }) else { return 0 }
        return Double(line.filter(\.isNumber)) ?? 0
    }
    let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
    let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
    let ticks = fields.count > 13 ? (Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0) : 0
    return (ticks / Double(sysconf(Int32(_SC_CLK_TCK))), kilobytes("VmRSS:") / 1024, kilobytes("VmHWM:") / 1024)
}
