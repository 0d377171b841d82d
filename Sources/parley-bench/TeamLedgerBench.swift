import Foundation
import ParleyKit

/// Issue 18's ledger figure: `parley cost` (the whole process) on a team ledger of `rows` rows in
/// PostgreSQL, spread over 30 days, 6 models and 20 users; with, for contrast, the same report summed
/// from the raw rows instead of the daily roll-up. Needs `PARLEY_DATABASE_URL` (a database it may
/// create another in, as `scripts/pg-cluster start` gives).
func teamLedgerBenchmark(rows: Int) async throws {
    guard let base = ProcessInfo.processInfo.environment["PARLEY_DATABASE_URL"], base.contains("/parley?") else {
        print("team-ledger: set PARLEY_DATABASE_URL to a cluster's postgres://USER@HOST:PORT/parley?sslmode=disable (scripts/pg-cluster start DIR prints one)")
        exit(64)
    }
    func psql(_ url: String, _ sql: String) throws -> String {
        let (status, output) = try ChildProcess.capture(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", url, "-c", sql])
        guard status == 0 else { throw BenchError("psql failed on \(sql.prefix(60))") }
        return output
    }
    let name = "bench_\(getpid())"
    _ = try psql(base, "CREATE DATABASE \(name)")
    defer { _ = try? psql(base, "DROP DATABASE \(name)") }
    let url = base.replacingOccurrences(of: "/parley?", with: "/\(name)?")
    let home = FileManager.default.temporaryDirectory.appendingPathComponent("parley-bench-ledger-\(getpid())")
    try FileManager.default.createDirectory(at: home.appendingPathComponent("config/parley"), withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: home) }
    try "[ledger]\nbackend = \"postgres\"\nuser = \"bench\"\n".write(to: home.appendingPathComponent("config/parley/config.toml"), atomically: true, encoding: .utf8)
    var environment = ProcessInfo.processInfo.environment
    environment["XDG_CONFIG_HOME"] = home.appendingPathComponent("config").path
    environment["XDG_DATA_HOME"] = home.appendingPathComponent("data").path
    environment["PARLEY_DATABASE_URL"] = url
    func timed(_ arguments: [String], runs: Int) throws -> [Double] {
        try (0..<runs).map { _ in
            let start = ContinuousClock.now
            let (status, _) = try ChildProcess.capture([parley] + arguments, environment: environment)
            guard status == 0 else { throw BenchError("parley \(arguments.joined(separator: " ")) failed") }
            return (ContinuousClock.now - start).milliseconds
        }
    }
    _ = try timed(["cost"], runs: 1)  // migrates
    // What one request adds: 5,000 rows, each its own transaction, through the roll-up trigger.
    var statements = ""
    for i in 0..<5_000 {
        statements += "INSERT INTO request (uid, time, day, user_name, provider, model, prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, "
            + "cost, cost_estimated, duration_ms, attempts, cache_hit, outcome) VALUES ('one-\(i)', 0, '2000-01-0\(i % 9 + 1)', 'u\(i % 20)', 'p', 'm\(i % 6)', "
            + "10, 10, 0, 0, 0.001, false, 1, 1, false, 'ok');\n"
    }
    let file = home.appendingPathComponent("rows.sql").path
    try statements.write(toFile: file, atomically: true, encoding: .utf8)
    var start = ContinuousClock.now
    guard try ChildProcess.capture(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-f", file]).status == 0 else { throw BenchError("single-row inserts failed") }
    let single = (ContinuousClock.now - start).seconds
    print(String(format: "5,000 ledger rows, one transaction each, through the roll-up trigger (psql on loopback): %.2f s, %.2f ms per row", single, single / 5))
    // The million rows in bulk: the trigger is off for the fill and the roll-up is summed once, as the
    // trigger would have kept it (one bulk transaction updating the same roll-up rows a million times
    // would bloat them); the check below compares the two.
    start = ContinuousClock.now
    _ = try psql(url, "ALTER TABLE request DISABLE TRIGGER request_roll_up")
    _ = try psql(url, """
        INSERT INTO request (uid, time, day, session, user_name, provider, model, prompt_tokens, completion_tokens, cached_tokens,
            cache_write_tokens, cost, cost_estimated, ttft_ms, duration_ms, tokens_per_second, attempts, cache_hit, outcome)
        SELECT 'bench-' || i, extract(epoch FROM now()) - (i % 30) * 86400, to_char(now() - (i % 30) * interval '1 day', 'YYYY-MM-DD'),
            's' || (i % 5000), 'user' || (i % 20), (ARRAY['openai','anthropic','groq'])[1 + i % 3], 'model-' || (i % 6),
            100 + i % 900, 10 + i % 300, 0, 0, (i % 1000) / 100000.0, false, 200 + i % 700, 1000 + i % 5000, 20 + i % 80, 1, i % 17 = 0,
            CASE WHEN i % 50 = 0 THEN 'error' ELSE 'ok' END
        FROM generate_series(1, \(rows)) AS i
        """)
    _ = try psql(url, """
        INSERT INTO request_daily
        SELECT day, provider, model, COALESCE(user_name, ''), COALESCE(route_rule, ''), COUNT(*), COUNT(*) FILTER (WHERE outcome <> 'refused'),
               SUM(prompt_tokens), SUM(completion_tokens), SUM(cached_tokens), SUM(GREATEST(COALESCE(cost, 0), 0)),
               COUNT(*) FILTER (WHERE cost IS NULL AND outcome <> 'refused'), COUNT(*) FILTER (WHERE outcome = 'error'), COUNT(*) FILTER (WHERE cache_hit)
        FROM request WHERE uid LIKE 'bench-%' GROUP BY 1, 2, 3, 4, 5
        """)
    _ = try psql(url, "ALTER TABLE request ENABLE TRIGGER request_roll_up")
    _ = try psql(url, "VACUUM ANALYZE")
    let fill = (ContinuousClock.now - start).seconds
    let count = try psql(url, "SELECT count(*) FROM request").trimmingCharacters(in: .whitespacesAndNewlines)
    let check = try psql(url, "SELECT (SELECT round(SUM(GREATEST(cost, 0))::numeric, 6) FROM request) = (SELECT round(SUM(dollars)::numeric, 6) FROM request_daily)")
    print(String(format: "%@ ledger rows in all (%.1f s to write the million and sum the roll-up); roll-up equals the rows: %@", count, fill, check.trimmingCharacters(in: .whitespacesAndNewlines)))
    func line(_ label: String, _ values: [Double]) {
        print(String(format: "%@: median %.0f ms, max %.0f ms over %d runs", label, percentile(values, 0.5) ?? 0, values.max() ?? 0, values.count))
    }
    line("`parley cost` (7 days: today, month, by day, model, provider, rule, user)", try timed(["cost"], runs: 5))
    line("`parley cost --days 30 --by user`", try timed(["cost", "--days", "30", "--by", "user"], runs: 5))
    line("`parley stats` (30 days of percentiles from the raw rows)", try timed(["stats"], runs: 3))
    // The same by-model report from the raw rows, for contrast.
    let raw = try (0..<3).map { _ -> Double in
        let start = ContinuousClock.now
        _ = try psql(url, """
            SELECT provider || ':' || model, COUNT(*) FILTER (WHERE outcome <> 'refused'), SUM(prompt_tokens), SUM(completion_tokens),
                   SUM(GREATEST(cost, 0)) FROM request WHERE day >= to_char(now() - interval '6 days', 'YYYY-MM-DD') GROUP BY 1
            """)
        return (ContinuousClock.now - start).milliseconds
    }
    line("for contrast, one by-model report summed from the raw rows (psql)", raw)
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
