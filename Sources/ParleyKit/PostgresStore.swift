import Foundation
import GRDB
import Logging
import ParleyCore
import ParleyProviders
import PostgresNIO

/// The team's PostgreSQL database: one connection pool shared by the ledger and the cache, migrated on
/// first use. Every operation has a deadline, and after a failure the database counts as down for a
/// few seconds, so a request never waits on it twice in a row: a dead server costs one wait, not one
/// per ledger row.
public final class PostgresDatabase: Sendable {
    /// `postgres://user@host:port/db`, never the password.
    public let location: String
    let client: PostgresClient
    let deadline: Duration
    private let state = LockedBox(ConnectionState())

    private struct ConnectionState {
        var running = false
        var migrated = false
        var downUntil: ContinuousClock.Instant?
    }

    static let logger = Logger(label: "parley.postgres", factory: { _ in SwiftLogNoOpLogHandler() })

    /// `url` as in libpq: `postgres://user:password@host:port/database?sslmode=disable|prefer|require`.
    public init(url: String, variable: String, deadline: Duration = .seconds(3)) throws(LedgerError) {
        func bad(_ why: String) -> LedgerError {
            LedgerError(path: "$\(variable)", reason: why, what: "PostgreSQL URL in", fix: "set \(variable) to postgres://USER:PASSWORD@HOST:PORT/DATABASE")
        }
        guard let parts = URLComponents(string: url), ["postgres", "postgresql"].contains(parts.scheme ?? ""), let host = parts.host, !host.isEmpty else {
            throw bad("it is not a postgres:// URL")
        }
        let port = parts.port ?? 5432
        guard (1...65_535).contains(port) else { throw bad("the port is out of range") }
        let user = parts.percentEncodedUser.flatMap { $0.removingPercentEncoding } ?? "postgres"
        let password = parts.percentEncodedPassword.flatMap { $0.removingPercentEncoding }
        let database = String(parts.path.drop { $0 == "/" }).removingPercentEncoding.flatMap { $0.isEmpty ? nil : $0 }
        let tls: PostgresClient.Configuration.TLS
        switch parts.queryItems?.first(where: { $0.name == "sslmode" })?.value ?? "prefer" {
        case "disable": tls = .disable
        case "prefer", "allow": tls = .prefer(.makeClientConfiguration())
        case "require", "verify-ca", "verify-full": tls = .require(.makeClientConfiguration())
        case let other: throw bad("sslmode \(other) is not one of disable, prefer, require")
        }
        var configuration = PostgresClient.Configuration(host: host, port: port, username: user, password: password, database: database, tls: tls)
        configuration.options.connectTimeout = deadline
        configuration.options.maximumConnections = 8
        configuration.options.keepAliveBehavior = nil
        client = PostgresClient(configuration: configuration, backgroundLogger: Self.logger)
        location = "postgres://\(user)@\(host):\(port)/\(database ?? user)"
        self.deadline = deadline
    }

    /// Runs `body` against the database (started and migrated on first use) within the deadline. The
    /// work runs in a task of its own, so a caller that is cancelled (a client that hung up on the
    /// gateway, a reply stopped with Esc) still gets its ledger row written and its claim ended.
    func run<T: Sendable>(_ body: @escaping @Sendable (PostgresClient) async throws -> T) async throws(LedgerError) -> T {
        let (start, migrate, down) = state.withLock { state -> (Bool, Bool, Bool) in
            let start = !state.running
            state.running = true
            if let until = state.downUntil, until > .now { return (start, false, true) }
            return (start, !state.migrated, false)
        }
        if start {
            let client = client
            Task.detached { await client.run() }
        }
        if down { throw failure("it did not answer a moment ago") }
        // The first call of a process also connects and checks the schema (creating it on an empty
        // database): on a loaded server that takes longer than one statement should.
        let client = client, deadline = migrate ? max(deadline, .seconds(10)) : deadline
        let work = Task.detached { () async throws -> T in
            try await withThrowingTaskGroup(of: T?.self) { group in
                group.addTask {
                    if migrate { try await Self.migrate(client) }
                    return try await body(client)
                }
                group.addTask {
                    try await Task.sleep(for: deadline)
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let value = first else { throw DatabaseTimeout() }
                return value
            }
        }
        do {
            let result = try await work.value
            state.withLock { state in
                state.downUntil = nil
                if migrate { state.migrated = true }
            }
            return result
        } catch {
            // Only an unreachable or silent server counts as down; an error the server answered with
            // (a constraint, a bad value) is this statement's alone.
            if Self.isConnectionProblem(error) {
                state.withLock { $0.downUntil = .now + .seconds(5) }
            }
            throw failure(Self.describe(error))
        }
    }

    struct DatabaseTimeout: Error {}

    func failure(_ reason: String) -> LedgerError {
        LedgerError(path: location, reason: reason, what: "team database", fix: "check that PostgreSQL is running there and that the URL is right")
    }

    static func isConnectionProblem(_ error: any Error) -> Bool {
        if let error = error as? PostgresTransactionError {
            return [error.beginError, error.closureError, error.commitError].compactMap { $0 }.contains(where: isConnectionProblem)
        }
        guard let error = error as? PSQLError else { return true }
        return error.serverInfo == nil
    }

    /// A PostgreSQL error's own message; PSQLError's description hides it on purpose.
    static func describe(_ error: any Error) -> String {
        if error is DatabaseTimeout { return "no answer within the deadline" }
        if let error = error as? PostgresTransactionError, let inner = error.beginError ?? error.closureError ?? error.commitError { return describe(inner) }
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] { return message }
            if let underlying = error.underlying { return "\(underlying)" }
            return "\(error.code)"
        }
        return "\(error)"
    }

    /// Schema changes are appended as new steps, never edited. A session-level advisory lock makes two
    /// processes that start together migrate one after the other.
    static let migrations: [(name: String, sql: [String])] = [
        ("v1 ledger, roll-up, claims, cache", [
            """
            CREATE TABLE IF NOT EXISTS request (
                id bigserial PRIMARY KEY, uid text NOT NULL UNIQUE, time double precision NOT NULL, day text NOT NULL,
                session text, user_name text, provider text NOT NULL, model text NOT NULL,
                prompt_tokens bigint NOT NULL, completion_tokens bigint NOT NULL, cached_tokens bigint NOT NULL,
                cache_write_tokens bigint NOT NULL, cost double precision, cost_estimated boolean NOT NULL,
                ttft_ms double precision, duration_ms double precision NOT NULL, tokens_per_second double precision,
                attempts integer NOT NULL, fallback_from text, cache_hit boolean NOT NULL, route_rule text,
                outcome text NOT NULL, error text)
            """,
            "CREATE INDEX IF NOT EXISTS request_day ON request (day)",
            "CREATE INDEX IF NOT EXISTS request_session ON request (session) WHERE session IS NOT NULL",
            // The daily roll-up: what `parley cost` and the budgets read, so they stay fast at millions of rows.
            """
            CREATE TABLE IF NOT EXISTS request_daily (
                day text NOT NULL, provider text NOT NULL, model text NOT NULL, user_name text NOT NULL, route_rule text NOT NULL,
                rows bigint NOT NULL, requests bigint NOT NULL, prompt_tokens bigint NOT NULL, completion_tokens bigint NOT NULL,
                cached_tokens bigint NOT NULL, dollars double precision NOT NULL, unpriced bigint NOT NULL, errors bigint NOT NULL,
                cache_hits bigint NOT NULL, PRIMARY KEY (day, provider, model, user_name, route_rule))
            """,
            """
            CREATE OR REPLACE FUNCTION parley_roll_up() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO request_daily VALUES (NEW.day, NEW.provider, NEW.model, COALESCE(NEW.user_name, ''), COALESCE(NEW.route_rule, ''),
                    1, CASE WHEN NEW.outcome <> 'refused' THEN 1 ELSE 0 END, NEW.prompt_tokens, NEW.completion_tokens, NEW.cached_tokens,
                    GREATEST(COALESCE(NEW.cost, 0), 0), CASE WHEN NEW.cost IS NULL AND NEW.outcome <> 'refused' THEN 1 ELSE 0 END,
                    CASE WHEN NEW.outcome = 'error' THEN 1 ELSE 0 END, CASE WHEN NEW.cache_hit THEN 1 ELSE 0 END)
                ON CONFLICT (day, provider, model, user_name, route_rule) DO UPDATE SET
                    rows = request_daily.rows + 1, requests = request_daily.requests + EXCLUDED.requests,
                    prompt_tokens = request_daily.prompt_tokens + EXCLUDED.prompt_tokens,
                    completion_tokens = request_daily.completion_tokens + EXCLUDED.completion_tokens,
                    cached_tokens = request_daily.cached_tokens + EXCLUDED.cached_tokens,
                    dollars = request_daily.dollars + EXCLUDED.dollars, unpriced = request_daily.unpriced + EXCLUDED.unpriced,
                    errors = request_daily.errors + EXCLUDED.errors, cache_hits = request_daily.cache_hits + EXCLUDED.cache_hits;
                RETURN NULL;
            END $$
            """,
            "DROP TRIGGER IF EXISTS request_roll_up ON request",
            "CREATE TRIGGER request_roll_up AFTER INSERT ON request FOR EACH ROW EXECUTE FUNCTION parley_roll_up()",
            """
            CREATE TABLE IF NOT EXISTS budget_claim (id text PRIMARY KEY, day text NOT NULL, session text, user_name text,
                worst double precision NOT NULL, expires double precision NOT NULL)
            """,
            """
            CREATE TABLE IF NOT EXISTS reply (key text PRIMARY KEY, provider text NOT NULL, model text NOT NULL, text text NOT NULL,
                finish_reason text, usage text, created double precision NOT NULL, last_used double precision NOT NULL,
                hits bigint NOT NULL DEFAULT 0, bytes bigint NOT NULL)
            """,
            "CREATE INDEX IF NOT EXISTS reply_last_used ON reply (last_used)",
        ]),
    ]

    static func migrate(_ client: PostgresClient) async throws {
        try await client.withConnection { connection in
            try await connection.query("SELECT pg_advisory_lock(7346021)", logger: logger)
            do {
                try await connection.query("CREATE TABLE IF NOT EXISTS parley_migration (name text PRIMARY KEY, applied double precision NOT NULL)", logger: logger)
                var done: Set<String> = []
                for try await name in try await connection.query("SELECT name FROM parley_migration", logger: logger).decode(String.self) { done.insert(name) }
                for migration in migrations where !done.contains(migration.name) {
                    try await connection.query("BEGIN", logger: logger)
                    for statement in migration.sql { try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger) }
                    try await connection.query("INSERT INTO parley_migration VALUES (\(migration.name), \(Date().timeIntervalSince1970))", logger: logger)
                    try await connection.query("COMMIT", logger: logger)
                }
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger)
                _ = try? await connection.query("SELECT pg_advisory_unlock(7346021)", logger: logger)
                throw error
            }
            try await connection.query("SELECT pg_advisory_unlock(7346021)", logger: logger)
        }
    }

    /// `sql` with `$1`, `$2`… bound to `arguments`.
    static func query(_ sql: String, _ arguments: [any PostgresDynamicTypeEncodable & Sendable]) -> PostgresQuery {
        var binds = PostgresBindings(capacity: arguments.count)
        for argument in arguments { binds.append(argument) }
        return PostgresQuery(unsafeSQL: sql, binds: binds)
    }
}

/// The usage ledger in the team's PostgreSQL. Rows that cannot be written while it is down are kept in
/// a local SQLite file and copied over, each once (by its `uid`), at the next request that reaches it.
public final class PostgresLedger: UsageLedger {
    let database: PostgresDatabase
    /// Rows kept while the database was down.
    let pending: Ledger
    public var location: String { database.location }

    public init(database: PostgresDatabase, pendingPath: String) throws(LedgerError) {
        self.database = database
        pending = try Ledger(path: pendingPath)
    }

    public func record(_ entry: Ledger.Entry, releasing claim: String?) async throws(LedgerError) {
        var entry = entry.clamped()
        if entry.uid == nil { entry.uid = UUID().uuidString }
        do {
            try await flushPending()
            let row = entry
            try await database.run { client in
                try await client.withTransaction(logger: PostgresDatabase.logger) { connection in
                    try await connection.query(Self.insert(row), logger: PostgresDatabase.logger)
                    if let claim { try await connection.query("DELETE FROM budget_claim WHERE id = \(claim)", logger: PostgresDatabase.logger) }
                }
            }
        } catch {
            // Kept here and written later; the claim lapses on its own.
            try pending.record(entry)
            throw LedgerError(path: database.location, reason: "\(error.reason); this row and any later ones are kept in \(pending.path) and written there once it is back",
                              what: "team database", fix: "check that PostgreSQL is running there")
        }
    }

    /// Copies the rows kept locally; a row already there (copied before a crash) is skipped by its uid.
    func flushPending() async throws(LedgerError) {
        while true {
            let rows = try pending.pending(limit: 200)
            if rows.isEmpty { return }
            try await database.run { client in
                try await client.withTransaction(logger: PostgresDatabase.logger) { connection in
                    for row in rows { try await connection.query(Self.insert(row), logger: PostgresDatabase.logger) }
                }
            }
            try pending.remove(ids: rows.compactMap(\.id))
        }
    }

    static func insert(_ row: Ledger.Entry) -> PostgresQuery {
        let e = row.withoutNUL()
        return """
        INSERT INTO request (uid, time, day, session, user_name, provider, model, prompt_tokens, completion_tokens, cached_tokens,
            cache_write_tokens, cost, cost_estimated, ttft_ms, duration_ms, tokens_per_second, attempts, fallback_from, cache_hit,
            route_rule, outcome, error)
        VALUES (\(e.uid ?? UUID().uuidString), \(e.time), \(e.day), \(e.session), \(e.user), \(e.provider), \(e.model), \(e.promptTokens),
            \(e.completionTokens), \(e.cachedTokens), \(e.cacheWriteTokens), \(e.cost), \(e.costEstimated), \(e.ttftMs), \(e.durationMs),
            \(e.tokensPerSecond), \(e.attempts), \(e.fallbackFrom), \(e.cacheHit), \(e.routeRule), \(e.outcome.rawValue), \(e.error))
        ON CONFLICT (uid) DO NOTHING
        """
    }

    /// Day and month sums come from the daily roll-up; a session's from its rows (indexed).
    static func spendQuery(_ scope: SpendScope, claims: Bool = false) -> (sql: String, arguments: [String]) {
        let (condition, arguments) = scope.condition(placeholder: { "$\($0)" })
        if claims { return ("SELECT COALESCE(SUM(worst), 0)::double precision, 0::bigint FROM budget_claim WHERE \(condition)", arguments) }
        if case .session = scope.period {
            return ("""
                SELECT COALESCE(SUM(GREATEST(cost, 0)), 0)::double precision, COUNT(*) FILTER (WHERE cost IS NULL AND outcome <> 'refused')
                FROM request WHERE \(condition)
                """, arguments)
        }
        return ("SELECT COALESCE(SUM(dollars), 0)::double precision, COALESCE(SUM(unpriced), 0)::bigint FROM request_daily WHERE \(condition)", arguments)
    }

    public func spend(_ scope: SpendScope) async throws(LedgerError) -> Ledger.Spend {
        let (sql, arguments) = Self.spendQuery(scope)
        return try await database.run { client in
            for try await (dollars, unpriced) in try await client.query(PostgresDatabase.query(sql, arguments)).decode((Double, Int).self) {
                return Ledger.Spend(dollars: dollars, unpriced: unpriced)
            }
            return Ledger.Spend(dollars: 0, unpriced: 0)
        }
    }

    public func claim(_ limits: [BudgetLimit], worstCase: Double, session: String?, user: String?) async throws(LedgerError) -> BudgetDecision {
        try await flushPending()
        return try await database.run { client in
            try await client.withTransaction(logger: PostgresDatabase.logger) { connection in
                // One claim at a time on this database, until this transaction ends.
                try await connection.query("SELECT pg_advisory_xact_lock(7346022)", logger: PostgresDatabase.logger)
                let now = Date().timeIntervalSince1970
                try await connection.query("DELETE FROM budget_claim WHERE expires < \(now)", logger: PostgresDatabase.logger)
                for limit in limits {
                    var spent = 0.0
                    for claims in [false, true] {
                        let (sql, arguments) = Self.spendQuery(limit.scope, claims: claims)
                        for try await (dollars, _) in try await connection.query(PostgresDatabase.query(sql, arguments), logger: PostgresDatabase.logger).decode((Double, Int).self) {
                            spent += dollars
                        }
                    }
                    if spent + worstCase > limit.dollars { return BudgetDecision.refused(limit, spent: spent) }
                }
                let id = UUID().uuidString
                try await connection.query("""
                    INSERT INTO budget_claim VALUES (\(id), \(Ledger.day(of: Date())), \(session), \(user), \(worstCase), \(now + budgetClaimLifetime))
                    """, logger: PostgresDatabase.logger)
                return BudgetDecision.granted(claim: id)
            }
        }
    }

    public func report(groupedBy group: Ledger.ReportGroup, since firstDay: String) async throws(LedgerError) -> [Ledger.ReportLine] {
        let key = group.sqlKey
        let sql = """
            SELECT \(key) AS key, SUM(requests)::bigint, SUM(prompt_tokens)::bigint, SUM(completion_tokens)::bigint, SUM(cached_tokens)::bigint,
                   SUM(dollars)::double precision AS dollars, SUM(unpriced)::bigint, SUM(errors)::bigint, SUM(cache_hits)::bigint
            FROM request_daily WHERE day >= $1 GROUP BY 1 ORDER BY \(group == .day ? "key DESC" : "dollars DESC, key")
            """
        return try await database.run { client in
            var lines: [Ledger.ReportLine] = []
            let rows = try await client.query(PostgresDatabase.query(sql, [firstDay]))
            for try await (key, requests, prompt, completion, cached, dollars, unpriced, errors, hits)
                in rows.decode((String, Int, Int, Int, Int, Double, Int, Int, Int).self) {
                lines.append(Ledger.ReportLine(key: key, requests: requests, promptTokens: prompt, completionTokens: completion, cachedTokens: cached,
                                               dollars: dollars, unpriced: unpriced, errors: errors, cacheHits: hits))
            }
            return lines
        }
    }

    public func speeds(since firstDay: String, byRule: Bool) async throws(LedgerError) -> [Ledger.SpeedLine] {
        let key = (byRule ? Ledger.ReportGroup.rule : .model).sqlKey
        let sql = """
            SELECT \(key) AS key, COUNT(*),
                   percentile_disc(0.5) WITHIN GROUP (ORDER BY ttft_ms), percentile_disc(0.95) WITHIN GROUP (ORDER BY ttft_ms),
                   percentile_disc(0.5) WITHIN GROUP (ORDER BY tokens_per_second), percentile_disc(0.95) WITHIN GROUP (ORDER BY tokens_per_second)
            FROM request WHERE day >= $1 AND outcome = 'ok' AND NOT cache_hit GROUP BY 1 ORDER BY 1
            """
        return try await database.run { client in
            var lines: [Ledger.SpeedLine] = []
            let rows = try await client.query(PostgresDatabase.query(sql, [firstDay]))
            for try await (model, count, t50, t95, r50, r95) in rows.decode((String, Int, Double?, Double?, Double?, Double?).self) {
                lines.append(Ledger.SpeedLine(model: model, requests: count, ttftP50: t50, ttftP95: t95, tokensPerSecondP50: r50, tokensPerSecondP95: r95))
            }
            return lines
        }
    }

    /// How many rows wait locally for the database.
    public func pendingCount() -> Int { (try? pending.db.read { try Ledger.Entry.fetchCount($0) }) ?? 0 }
}

extension Ledger.Entry {
    /// PostgreSQL's text cannot hold NUL, which a model name or a session id from outside could carry;
    /// in the ledger it becomes U+FFFD rather than a row the server refuses.
    func withoutNUL() -> Ledger.Entry {
        func clean(_ text: String?) -> String? { text.map { $0.utf8.contains(0) ? $0.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}") : $0 } }
        var copy = self
        copy.session = clean(session)
        copy.user = clean(user)
        copy.provider = clean(provider) ?? ""
        copy.model = clean(model) ?? ""
        copy.fallbackFrom = clean(fallbackFrom)
        copy.routeRule = clean(routeRule)
        copy.error = clean(error)
        return copy
    }
}

/// The response cache in the team's PostgreSQL: one person's answer serves the next (same key rules
/// as the SQLite cache). A database that is down is a miss.
public final class PostgresReplyCache: ReplyCache {
    let database: PostgresDatabase
    let settings: CacheSettings
    public var location: String { database.location }

    public init(database: PostgresDatabase, settings: CacheSettings) {
        self.database = database
        self.settings = settings
    }

    public func lookup(_ key: String, now: Date) async -> ResponseCache.Reply? {
        let oldest = now.timeIntervalSince1970 - Double(settings.ttlSeconds)
        let stamp = now.timeIntervalSince1970
        return try? await database.run { client -> ResponseCache.Reply? in
            let rows = try await client.query("""
                UPDATE reply SET hits = hits + 1, last_used = \(stamp) WHERE key = \(key) AND created >= \(oldest)
                RETURNING text, finish_reason, usage, created
                """)
            for try await (text, finish, usage, created) in rows.decode((String, String?, String?, Double).self) {
                let decoded = usage.flatMap { try? JSONDecoder().decode(Usage.self, from: Data($0.utf8)) }
                return ResponseCache.Reply(text: text, finishReason: finish, usage: decoded, created: Date(timeIntervalSince1970: created))
            }
            return nil
        }
    }

    public func store(_ key: String, ref: ModelRef, reply: ResponseCache.Reply) async {
        // PostgreSQL's text holds no NUL: such a reply is not cached rather than changed.
        guard !reply.text.utf8.contains(0), !ref.model.utf8.contains(0) else { return }
        let usage = reply.usage.flatMap { try? JSONEncoder().encode($0) }.map { String(decoding: $0, as: UTF8.self) }
        let cap = settings.maxMegabytes * 1_000_000
        let created = reply.created.timeIntervalSince1970
        let oldest = Date().timeIntervalSince1970 - Double(settings.ttlSeconds)
        _ = try? await database.run { client in
            try await client.withTransaction(logger: PostgresDatabase.logger) { connection in
                try await connection.query("""
                    INSERT INTO reply VALUES (\(key), \(ref.provider), \(ref.model), \(reply.text), \(reply.finishReason), \(usage), \(created), \(created), 0, \(reply.text.utf8.count))
                    ON CONFLICT (key) DO UPDATE SET text = EXCLUDED.text, finish_reason = EXCLUDED.finish_reason, usage = EXCLUDED.usage,
                        created = EXCLUDED.created, last_used = EXCLUDED.last_used, bytes = EXCLUDED.bytes
                    """, logger: PostgresDatabase.logger)
                try await connection.query("DELETE FROM reply WHERE created < \(oldest)", logger: PostgresDatabase.logger)
                // Least recently used first, until the rest fits the cap.
                try await connection.query("""
                    DELETE FROM reply WHERE key IN (SELECT key FROM (SELECT key, SUM(bytes) OVER (ORDER BY last_used DESC, key) AS running FROM reply) r WHERE running > \(cap))
                    """, logger: PostgresDatabase.logger)
            }
        }
    }

    public func stats() async throws(LedgerError) -> ResponseCache.Stats {
        try await database.run { client in
            let rows = try await client.query("SELECT COUNT(*), COALESCE(SUM(bytes), 0)::bigint, COALESCE(SUM(hits), 0)::bigint, MIN(created) FROM reply")
            for try await (count, bytes, hits, oldest) in rows.decode((Int, Int, Int, Double?).self) {
                return ResponseCache.Stats(entries: count, bytes: bytes, hits: hits, oldest: oldest.map { Date(timeIntervalSince1970: $0) })
            }
            return ResponseCache.Stats(entries: 0, bytes: 0, hits: 0, oldest: nil)
        }
    }

    @discardableResult
    public func clear() async throws(LedgerError) -> Int {
        try await database.run { client in
            var count = 0
            for try await _ in try await client.query("DELETE FROM reply RETURNING 1").decode(Int.self) { count += 1 }
            return count
        }
    }
}
