import Foundation
import ParleyKit
import ParleyTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `parley-bench hostile`: the real binary against a provider that sends too much, with the peak
/// resident memory of each run (from wait4, per run). Figures for the README's Security section.
func hostileBenchmark() async throws {
    let cases: [(String, FaultServer.Fault, String)] = [
        ("a line that never ends (400 MB sent, no newline)", .endlessLine(megabytes: 400), ""),
        ("a 100 MB reply (under the 128 MB max_reply_mb)", .huge(bytes: 100_000_000), ""),
        ("a 1 GB reply (stopped at the 128 MB max_reply_mb)", .huge(bytes: 1_000_000_000), ""),
        ("a 1 GB reply with max_reply_mb = 8", .huge(bytes: 1_000_000_000), "max_reply_mb = 8\n"),
    ]
    print("| stream | result | wall | peak resident memory |")
    print("|---|---|---|---|")
    for (name, fault, extra) in cases {
        let server = try await FaultServer(format: .openAI, script: [fault])
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("parley-bench-hostile-\(getpid())")
        let configDirectory = home.appendingPathComponent("config/parley")
        try FileManager.default.createDirectory(at: configDirectory, withIntermediateDirectories: true)
        try "[providers.hostile]\nbase_url = \"\(server.providerBaseURL)\"\nmodels = [\"m\"]\nmax_retries = 0\n\(extra)"
            .write(to: configDirectory.appendingPathComponent("config.toml"), atomically: true, encoding: .utf8)
        var environment = ChildProcess.childEnvironment()
        environment["XDG_CONFIG_HOME"] = home.appendingPathComponent("config").path
        environment["XDG_DATA_HOME"] = home.appendingPathComponent("data").path
        let start = ContinuousClock.now
        let child = try ChildProcess.spawn(["/bin/sh", "-c", "exec \(ChildProcess.shellQuote(parley)) ask -m hostile:m --no-fallback hi > /dev/null 2> \(ChildProcess.shellQuote(home.path + "/err"))"],
                                           environment: environment)
        var status: Int32 = 0
        var usage = rusage()
        while wait4(child.pid, &status, 0, &usage) < 0, errno == EINTR {}
        let wall = (ContinuousClock.now - start).seconds
        let error = (try? String(contentsOfFile: home.path + "/err", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        let result = status == 0 ? "complete" : "stopped: " + (error.range(of: "(max_[a-z_]+)", options: .regularExpression).map { String(error[$0]) } ?? error)
        print("| \(name) | \(result) | \(String(format: "%.2f s", wall)) | \(usage.ru_maxrss / 1024) MB |")
        await server.shutdown()
        try? FileManager.default.removeItem(at: home)
    }
}
