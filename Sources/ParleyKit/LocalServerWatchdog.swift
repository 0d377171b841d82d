import Dispatch
import Foundation
import ParleyCore
#if canImport(Glibc)
import Glibc
#endif

/// The parent of a running llama-server (`parley local-server`): starts it on a free loopback port, records
/// the port and pids in the state file, and stops it after the configured idle time or on a signal.
public struct LocalServerWatchdog: Sendable {
    public var runtime: LocalRuntime

    public init(runtime: LocalRuntime) { self.runtime = runtime }

    /// Runs until the server stops; never returns.
    public func run() throws -> Never {
        let installation = try runtime.requireInstallation()
        let port = try Self.freeLoopbackPort()
        // The key goes in a 0600 file, not on the command line, which every local user can read in /proc.
        let key = try runtime.makeServerKey()
        var arguments = [installation.server,
            "--model", installation.model, "--host", "127.0.0.1", "--port", String(port),
            "--ctx-size", String(runtime.settings.contextSize), "--alias", LocalRuntime.modelName, "--no-webui",
            "--api-key-file", runtime.keyFile.path,
        ]
        if let threads = runtime.settings.threads { arguments += ["--threads", String(threads)] }
        let server = try ChildProcess.spawn(arguments)
        let state = LocalRuntime.ServerState(
            port: port, serverPID: server.pid, watchdogPID: getpid(), model: installation.model, startedAt: Date(), apiKey: key
        )
        try runtime.writeState(state)
        let stateFile = runtime.paths.localServerStateFile
        @Sendable func shutdown(_ code: Int32) -> Never {
            if server.poll() == nil {
                server.signal(SIGTERM)
                _ = server.wait()
            }
            // Remove the state file only if it still describes our server.
            if let current = runtime.readState(), current.serverPID == state.serverPID {
                try? FileManager.default.removeItem(at: stateFile)
                try? FileManager.default.removeItem(at: runtime.keyFile)
            }
            exit(code)
        }
        var sources: [DispatchSourceSignal] = []
        for signalNumber in [SIGTERM, SIGINT, SIGHUP] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { shutdown(0) }
            source.resume()
            sources.append(source)
        }
        let idleLimit = TimeInterval(runtime.settings.idleShutdownSeconds)
        while true {
            sleep(2)
            if server.poll() != nil { shutdown(1) }
            if idleLimit > 0, let used = runtime.lastUsed(), Date().timeIntervalSince(used) > idleLimit {
                print("llama-server idle for \(Int(idleLimit)) s; stopping it")
                shutdown(0)
            }
            withExtendedLifetime(sources) {}
        }
    }

    /// A port on 127.0.0.1 that nothing is listening on now.
    static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw LocalRuntimeError(message: "local: cannot open a socket") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw LocalRuntimeError(message: "local: cannot find a free loopback port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
