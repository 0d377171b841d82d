import Foundation
import ParleyCore
import ParleyKit
#if canImport(Glibc)
import Glibc
#endif

// `parley-mcp`: the process that holds Parley's MCP servers, started by Parley when tools are first
// needed (see MCPHub in ParleyKit). The official Swift SDK links FoundationNetworking, and with it
// libcurl, GnuTLS, OpenSSL's libcrypto and ICU: 8 MB resident in every Parley process, tools or not.
// Here they cost nothing until a server is used.
//
// Protocol, one JSON object per line. The first line from Parley is the settings:
//   {"settings": MCPSettings.json, "log_directory": "…"}
// then requests with an id, answered in any order:
//   {"id": 1, "op": "tools", "servers": ["time"] | null} → {"id": 1, "tools": [OfferedTool.json], "problems": ["…"]}
//   {"id": 2, "op": "call", "tool": OfferedTool.json, "arguments": "{…}"} → {"id": 2, "text": "…", "is_error": false}
//   {"id": 3, "op": "states"} → {"id": 3, "states": [["time", "running, …"]]}
//   {"id": 4, "op": "shutdown"} → {"id": 4, "done": true}, and the host exits.
// End of input is a shutdown too.

@main
enum ParleyMCPHost {
    static func main() async {
        signal(SIGPIPE, SIG_IGN)
        becomeSubreaper()
        // Parley's death reaches this host as SIGTERM (setpriv --pdeathsig TERM), as do a kill and a
        // hangup: every server, and whatever they left behind, goes with it at once.
        for number in [SIGTERM, SIGHUP, SIGINT] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                ServerGroups.killEverything()
                exit(0)
            }
            source.resume()
            Signals.sources.append(source)
        }
        let input = LineInput()
        guard let first = input.next(), let header = try? JSONValue.parse(first),
              let settings = header["settings"].flatMap(MCPSettings.init(json:)), let logDirectory = header["log_directory"]?.string else {
            FileHandle.standardError.write(Data("parley-mcp: is started by parley, which sends its settings first\n".utf8))
            exit(2)
        }
        let hub = ServerHub(settings: settings, logDirectory: URL(fileURLWithPath: logDirectory), environment: ProcessInfo.processInfo.environment)
        // Requests are read on a thread of their own and handled side by side; the host ends at
        // shutdown or when Parley closes the pipe.
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread {
                while let line = input.next() {
                    guard let request = try? JSONValue.parse(line) else { continue }
                    if request["op"]?.string == "shutdown" {
                        Task { await handle(request, hub: hub); done.resume() }
                        return
                    }
                    Task { await handle(request, hub: hub) }
                }
                Task { await hub.shutdown(); done.resume() }
            }
        }
        ServerGroups.killEverything()
        exit(0)
    }

    static func handle(_ request: JSONValue, hub: ServerHub) async {
        let id = request["id"] ?? .null
        switch request["op"]?.string {
        case "tools":
            let names = request["servers"]?.array?.compactMap(\.string)
            let (tools, problems) = await hub.tools(servers: names)
            Output.send(.object([("id", id), ("tools", .array(tools.map(\.json))), ("problems", .array(problems.map { .string($0) }))]))
        case "call":
            guard let tool = request["tool"].flatMap(OfferedTool.init(json:)) else {
                Output.send(.object([("id", id), ("text", "a call without its tool"), ("is_error", true)]))
                return
            }
            let outcome = await hub.call(tool, arguments: request["arguments"]?.string ?? "{}")
            Output.send(.object([("id", id), ("text", .string(outcome.text)), ("is_error", .bool(outcome.isError))]))
        case "states":
            let states = await hub.states()
            Output.send(.object([("id", id), ("states", .array(states.map { .array([.string($0.server), .string($0.state)]) }))]))
        case "shutdown":
            await hub.shutdown()
            Output.send(.object([("id", id), ("done", true)]))
        default:
            Output.send(.object([("id", id), ("error", "unknown op")]))
        }
    }
}

/// The signal sources, kept alive for the life of the process.
enum Signals {
    nonisolated(unsafe) static var sources: [any DispatchSourceSignal] = []
}

/// Answers to Parley, one line each, whole.
enum Output {
    static let lock = NSLock()

    static func send(_ value: JSONValue) {
        let bytes = Array((value.serialized() + "\n").utf8)
        lock.withLock {
            var offset = 0
            while offset < bytes.count {
                let n = bytes[offset...].withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) }
                if n < 0, errno == EINTR { continue }
                if n <= 0 {
                    // Parley is gone: so is everything this host started.
                    ServerGroups.killEverything()
                    exit(0)
                }
                offset += n
            }
        }
    }
}

/// Lines from Parley on stdin (blocking reads; 64 MB at most without a newline).
final class LineInput: @unchecked Sendable {
    private var lines = LineSplitter(limit: 64 << 20)
    private var buffer = [UInt8](repeating: 0, count: 65_536)

    func next() -> [UInt8]? {
        while true {
            if let line = lines.next() { return line }
            let n = buffer.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { return nil }
            lines.append(buffer[0..<n])
            if lines.isOverLimit { return nil }
        }
    }
}
