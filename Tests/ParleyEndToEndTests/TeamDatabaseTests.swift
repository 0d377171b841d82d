import Foundation
import Testing
import ParleyCore
import ParleyKit
import ParleyTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The throw-away PostgreSQL cluster `scripts/test` starts (scripts/pg-cluster); each test gets a
/// database of its own in it.
enum TeamDatabase {
    static var scripts: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("scripts")
    }

    static func baseURL() throws -> String {
        try #require(ProcessInfo.processInfo.environment["PARLEY_TEST_PG_URL"], "PARLEY_TEST_PG_URL is not set: run the tests with scripts/test, which starts a PostgreSQL cluster")
    }

    /// A new, empty database; its URL.
    static func fresh() throws -> String {
        let base = try baseURL()
        let name = "t_\(UInt32.random(in: 0...UInt32.max))"
        _ = try psql(base, "CREATE DATABASE \(name)")
        return base.replacingOccurrences(of: "/parley?", with: "/\(name)?")
    }

    @discardableResult
    static func psql(_ url: String, _ sql: String) throws -> String {
        let (status, output) = try ChildProcess.capture(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", url, "-c", sql])
        guard status == 0 else { throw GatewayTestError(message: "psql failed (\(status)) on \(sql)") }
        return output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func config(_ server: FaultServer, user: String, extra: String = "") -> String {
        """
        [ledger]
        backend = "postgres"
        user = "\(user)"

        [cache]
        backend = "postgres"
        enabled = true
        \(extra)

        [providers.team]
        base_url = "\(server.providerBaseURL)"
        models = ["m"]
        max_retries = 0

        [models."team:m"]
        input_price = 10000
        output_price = 10000
        """
    }
}

@Suite(.serialized) struct TeamDatabaseTests {
    @Test func twoHomesShareTheLedgerAndOneCachedReplyAndMigrateOnce() async throws {
        let url = try TeamDatabase.fresh()
        let server = try await FaultServer(format: .openAI, script: [.ok])
        let alice = try ParleyHarness(config: TeamDatabase.config(server, user: "alice"))
        let bob = try ParleyHarness(config: TeamDatabase.config(server, user: "bob"))
        defer { alice.cleanUp(); bob.cleanUp() }
        let environment = ["PARLEY_DATABASE_URL": url]
        // Two processes meet an empty database at once: one migrates, the other waits for it.
        let first = try ChildProcess.spawn([ParleyHarness.binary, "cost"], environment: alice.environment.merging(environment) { $1 }, output: .null)
        let second = try ChildProcess.spawn([ParleyHarness.binary, "cost"], environment: bob.environment.merging(environment) { $1 }, output: .null)
        #expect(first.wait() == 0 && second.wait() == 0)
        #expect(try TeamDatabase.psql(url, "SELECT count(*) FROM parley_migration") == "1")

        let ask = ["ask", "-m", "team:m", "--temperature", "0", "--json", "Name a color."]
        let fromAlice = try alice.run(ask, extraEnvironment: environment)
        #expect(fromAlice.status == 0, "\(fromAlice.stderr)")
        #expect(try JSONValue.parse(fromAlice.stdout)["cached"]?.bool == false)
        let fromBob = try bob.run(ask, extraEnvironment: environment)
        #expect(fromBob.status == 0, "\(fromBob.stderr)")
        let reply = try JSONValue.parse(fromBob.stdout)
        #expect(reply["cached"]?.bool == true, "bob's process answered from alice's cached reply")
        #expect(reply["text"]?.string == FaultServer.replyText)
        #expect(server.requestCount == 1)
        await server.shutdown()

        #expect(try TeamDatabase.psql(url, "SELECT user_name || ':' || cache_hit FROM request ORDER BY id") == "alice:false\nbob:true")
        // Both read the one ledger: cost by user, and the JSON report.
        let cost = try bob.run(["cost", "--by", "user"], extraEnvironment: environment)
        #expect(cost.status == 0, "\(cost.stderr)")
        #expect(cost.stdout.contains("ledger: postgres://parley@127.0.0.1:"))
        let lines = cost.stdout.split(separator: "\n")
        #expect(lines.contains { $0.hasPrefix("alice") && $0.contains("$0.18") }, "\(cost.stdout)")
        #expect(lines.contains { $0.hasPrefix("bob") && $0.contains("(1 cached)") && $0.contains("$0.00") }, "\(cost.stdout)")
        let stats = try alice.run(["stats", "--json"], extraEnvironment: environment)
        #expect(try JSONValue.parse(stats.stdout)[0]?["requests"]?.int == 1, "\(stats.stdout)")
        let cache = try alice.run(["cache", "stats"], extraEnvironment: environment)
        #expect(cache.stdout.contains("1 replies") && cache.stdout.contains("1 hits"), "\(cache.stdout)")
    }

    @Test func aTeamBudgetHoldsUnderTwentyConcurrentRequestsFromTwoGateways() async throws {
        let url = try TeamDatabase.fresh()
        // Each reply takes 400 ms, so the requests overlap.
        let server = try await FaultServer(format: .openAI, script: [.stallBeforeFirstByte(.milliseconds(400))])
        // The daily limit: $1.00. Each request's worst case: about 30 prompt tokens (estimated) + 6
        // output at $10,000/M ≈ $0.36; its real cost: 12 + 6 tokens = $0.18. Reading then writing,
        // all 20 would see $0 spent and go ahead: $3.60.
        let budget = "[budget]\ndaily = 1.0\nscope = \"team\"\n"
        let one = try ParleyHarness(config: TeamDatabase.config(server, user: "one", extra: budget))
        let two = try ParleyHarness(config: TeamDatabase.config(server, user: "two", extra: budget))
        defer { one.cleanUp(); two.cleanUp() }
        let environment = ["PARLEY_DATABASE_URL": url]
        let gateways = [try GatewayProcess(one, environment: environment), try GatewayProcess(two, environment: environment)]
        defer { gateways.forEach { $0.stop() } }
        let prompt = "Please name one primary color, and say nothing else at all in the reply, thank you very much."
        let body = #"{"model":"team:m","max_tokens":6,"messages":[{"role":"user","content":"\#(prompt)"}]}"#
        let statuses = try GatewayClients.concurrentCurls(20, in: one.home) { index in
            ["-o", "/dev/null", "-w", "%{http_code}", gateways[index % 2].baseURL + "/v1/chat/completions", "-d", body]
        }
        let answered = statuses.filter { $0 == "200" }.count
        let refused = statuses.filter { $0 == "402" }.count
        #expect(answered + refused == 20, "\(statuses)")
        #expect(answered >= 1 && refused >= 1, "\(statuses)")
        let spent = Double(try TeamDatabase.psql(url, "SELECT COALESCE(SUM(cost), 0) FROM request")) ?? 99
        #expect(spent <= 1.0, "spent \(spent) with \(answered) answered")
        #expect(abs(spent - 0.18 * Double(answered)) < 0.0001)
        #expect(try TeamDatabase.psql(url, "SELECT count(*) FROM budget_claim") == "0", "every claim ended with its row")
        #expect(try TeamDatabase.psql(url, "SELECT count(*) FROM request WHERE outcome = 'refused'") == "\(refused)")
        await server.shutdown()
    }

    @Test func whileTheDatabaseIsDownRequestsGoOnAndTheirRowsAreWrittenOnceWhenItIsBack() async throws {
        // A cluster of this test's own, to stop and start.
        let directory = "/tmp/parley-pg-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let script = TeamDatabase.scripts.appendingPathComponent("pg-cluster").path
        let (started, output) = try ChildProcess.capture([script, "start", directory])
        try #require(started == 0, "scripts/pg-cluster start failed")
        defer { _ = try? ChildProcess.capture([script, "stop", directory]) }
        let url = output.trimmingCharacters(in: .whitespacesAndNewlines)
        let server = try await FaultServer(format: .openAI, script: [.ok])
        let harness = try ParleyHarness(config: TeamDatabase.config(server, user: "carol"))
        defer { harness.cleanUp() }
        let environment = ["PARLEY_DATABASE_URL": url]
        let ask = ["ask", "-m", "team:m", "--temperature", "0.5", "Name a color."]
        #expect(try harness.run(ask, extraEnvironment: environment).status == 0)

        #expect(try ChildProcess.capture([script, "down", directory]).status == 0)
        for _ in 0..<2 {
            let result = try harness.run(ask, extraEnvironment: environment)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains(FaultServer.replyText))
            #expect(result.stderr.contains("this row and any later ones are kept in"), "\(result.stderr)")
        }
        // A team budget cannot be kept while the database is away: refused before sending, and said so.
        let budgeted = try ParleyHarness(config: TeamDatabase.config(server, user: "carol", extra: "[budget]\ndaily = 5\n"))
        defer { budgeted.cleanUp() }
        let refused = try budgeted.run(ask, extraEnvironment: environment)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("the team's spending limits are kept in the team database, which cannot be used now"), "\(refused.stderr)")
        #expect(server.requestCount == 3)

        #expect(try ChildProcess.capture([script, "up", directory]).status == 0)
        #expect(try harness.run(ask, extraEnvironment: environment).status == 0)
        // 1 before, 2 while down (written now), 1 after: each once.
        #expect(try TeamDatabase.psql(url, "SELECT count(*), count(DISTINCT uid) FROM request") == "4|4")
        let pending = harness.paths.dataDirectory.appendingPathComponent("usage-pending.sqlite").path
        #expect(try Ledger(path: pending).entries().isEmpty)
        // A copy that ran again (a crash after writing, before forgetting the local row) is written once.
        let row = try #require(try TeamDatabase.psql(url, "SELECT uid FROM request ORDER BY id LIMIT 1").split(separator: "\n").first)
        var copy = Ledger.Entry(session: nil, user: "carol", ref: ModelRef(provider: "team", model: "m"), usage: nil, cost: 0.5, ttftMs: nil, durationMs: 1, attempts: 1, outcome: .ok)
        copy.uid = String(row)
        try Ledger(path: pending).record(copy)
        #expect(try harness.run(ask, extraEnvironment: environment).status == 0)
        #expect(try TeamDatabase.psql(url, "SELECT count(*), count(DISTINCT uid) FROM request") == "5|5")
        #expect(try Ledger(path: pending).entries().isEmpty)
        await server.shutdown()
    }

    /// A client hanging up mid-stream cancels the turn; its ledger row and the end of its budget claim
    /// must still reach the database, and must not make the database look down to the next request
    /// (which, with a team budget, would be refused for everyone). Through the real gateway: in the
    /// test process itself other suites' blocking waits can starve the client's tasks.
    @Test func aClientHangingUpNeverMakesTheTeamDatabaseLookDown() async throws {
        let url = try TeamDatabase.fresh()
        let words = (0..<200).map { "w\($0) " }
        let stream = FaultServer.events(.openAI, words: words)
        let slow = try await ScriptedHTTPServer { _ in
            [.head(status: 200, headers: [("Content-Type", "text/event-stream")]), .write(Array(stream.open.joined().utf8))]
                + stream.words.flatMap { [ScriptedHTTPServer.Step.write(Array($0.utf8)), .pause(.milliseconds(50))] } + [.end]
        }
        let quick = try await FaultServer(format: .openAI, script: [.ok])
        let harness = try ParleyHarness(config: TeamDatabase.config(quick, user: "fay", extra: "[budget]\ndaily = 100\n") + """

            [providers.slow]
            base_url = "\(slow.baseURL)/v1"
            models = ["m"]

            [models."slow:m"]
            input_price = 1
            output_price = 1
            """)
        defer { harness.cleanUp() }
        let gateway = try GatewayProcess(harness, environment: ["PARLEY_DATABASE_URL": url])
        defer { gateway.stop() }
        for round in 0..<3 {
            let fd = try GatewayTests.connect(port: gateway.port)
            let body = #"{"model":"slow:m","stream":true,"max_tokens":300,"messages":[{"role":"user","content":"Count."}]}"#
            let request = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            _ = request.withCString { send(fd, $0, strlen($0), 0) }
            var received = ""
            var buffer = [UInt8](repeating: 0, count: 4096)
            while !received.contains("w1 ") {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n <= 0 { break }
                received += String(decoding: buffer[0..<n], as: UTF8.self)
            }
            close(fd)
            // At once, under the same team budget.
            let next = try GatewayClients.curl([gateway.baseURL + "/v1/chat/completions", "-d", #"{"model":"team:m","messages":[{"role":"user","content":"Hi"}]}"#])
            #expect(next.status == 200, "round \(round): \(next.body)")
        }
        var stopped = ""
        for _ in 0..<100 where stopped != "3" {
            stopped = try TeamDatabase.psql(url, "SELECT count(*) FROM request WHERE outcome = 'stopped'")
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(stopped == "3", "the hung-up requests' rows reached the database")
        #expect(try TeamDatabase.psql(url, "SELECT count(*) FROM request WHERE outcome = 'ok'") == "3")
        #expect(try TeamDatabase.psql(url, "SELECT count(*) FROM budget_claim") == "0")
        let pending = harness.paths.dataDirectory.appendingPathComponent("usage-pending.sqlite").path
        let kept = FileManager.default.fileExists(atPath: pending) ? try Ledger(path: pending).entries().count : 0
        #expect(kept == 0)
        await slow.shutdown()
        await quick.shutdown()
    }

    @Test func withoutItsURLTheTeamLedgerSaysWhatToSetAndKeepsTheRows() async throws {
        let url = try TeamDatabase.fresh()
        let server = try await FaultServer(format: .openAI, script: [.ok])
        let harness = try ParleyHarness(config: TeamDatabase.config(server, user: "erin"))
        defer { harness.cleanUp() }
        let ask = ["ask", "-m", "team:m", "--temperature", "0.5", "Name a color."]
        let unset = try harness.run(ask)
        #expect(unset.status == 0, "\(unset.stderr)")
        #expect(unset.stderr.contains("PARLEY_DATABASE_URL cannot be used (it is not set); export PARLEY_DATABASE_URL=postgres://"), "\(unset.stderr)")
        let cost = try harness.run(["cost"])
        #expect(cost.status == 1 && cost.stderr.contains("export PARLEY_DATABASE_URL="), "\(cost.stderr)")
        #expect(try harness.run(ask, extraEnvironment: ["PARLEY_DATABASE_URL": url]).status == 0)
        #expect(try TeamDatabase.psql(url, "SELECT count(*) FROM request WHERE user_name = 'erin'") == "2")
        await server.shutdown()
    }
}
