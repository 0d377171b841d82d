import Foundation
import GRDB
import ParleyCore
#if canImport(Glibc)
import Glibc
#endif

/// The usage ledger: one row per model tried for a turn (with the HTTP attempts it took), in SQLite
/// at `DATA/usage.sqlite`. Figures only — never the prompt or the reply text. The team's ledger on
/// PostgreSQL (`PostgresLedger`) keeps the same rows.
public final class Ledger: UsageLedger {
    public struct Entry: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
        public static let databaseTableName = "request"
        public enum Outcome: String, Codable, Sendable { case ok, error, stopped, refused }

        public var id: Int64?
        /// Made when the row is made and kept wherever it is copied, so a row kept locally while the
        /// team's database was down is written there exactly once.
        public var uid: String?
        /// Who the request was for: the ledger's user, or the gateway token's name.
        public var user: String?
        /// Seconds since 1970.
        public var time: Double
        /// The local calendar day, `YYYY-MM-DD`, so "today" and "this month" are the user's.
        public var day: String
        public var session: String?
        public var provider: String
        public var model: String
        public var promptTokens: Int
        public var completionTokens: Int
        public var cachedTokens: Int
        public var cacheWriteTokens: Int
        /// US dollars; nil when the model's price is unknown.
        public var cost: Double?
        /// The provider reported no usage (a stopped reply, say): the cost is from estimated tokens.
        public var costEstimated: Bool
        public var ttftMs: Double?
        public var durationMs: Double
        public var tokensPerSecond: Double?
        /// HTTP attempts: 1 plus the retries.
        public var attempts: Int
        /// The model (`provider:model`) that failed before this one was tried.
        public var fallbackFrom: String?
        public var cacheHit: Bool
        /// The `[router]` rule that chose the model under `-m auto` ("default" when none matched).
        public var routeRule: String?
        public var outcome: Outcome
        /// For errors: the error's kind and status (`http 429`, `idleTimeout`), not its text.
        public var error: String?

        enum CodingKeys: String, CodingKey {
            case id, uid, time, day, session, provider, model, cost, attempts, outcome, error, costEstimated = "cost_estimated", user = "user_name"
            case promptTokens = "prompt_tokens", completionTokens = "completion_tokens", cachedTokens = "cached_tokens"
            case cacheWriteTokens = "cache_write_tokens", ttftMs = "ttft_ms", durationMs = "duration_ms"
            case tokensPerSecond = "tokens_per_second", fallbackFrom = "fallback_from", cacheHit = "cache_hit", routeRule = "route_rule"
        }

        public init(time: Date = Date(), session: String?, user: String? = nil, routeRule: String? = nil, ref: ModelRef, usage: Usage?, cost: Double?, costEstimated: Bool = false, ttftMs: Double?, durationMs: Double,
                    tokensPerSecond: Double? = nil, attempts: Int, fallbackFrom: String? = nil, cacheHit: Bool = false,
                    outcome: Outcome, error: String? = nil) {
            self.uid = UUID().uuidString
            self.user = user
            self.time = time.timeIntervalSince1970
            self.day = Ledger.day(of: time)
            self.session = session
            self.provider = ref.provider
            self.model = ref.model
            self.promptTokens = usage?.totalPromptTokens ?? 0
            self.completionTokens = usage?.completionTokens ?? 0
            self.cachedTokens = usage?.cachedTokens ?? 0
            self.cacheWriteTokens = usage?.cacheWriteTokens ?? 0
            self.cost = cost
            self.costEstimated = costEstimated
            self.ttftMs = ttftMs
            self.durationMs = durationMs
            self.tokensPerSecond = tokensPerSecond
            self.attempts = attempts
            self.fallbackFrom = fallbackFrom
            self.cacheHit = cacheHit
            self.routeRule = routeRule
            self.outcome = outcome
            self.error = error
        }

        public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }

        /// A cost is never negative or infinite, whatever a provider reported: spend only goes up.
        func clamped() -> Entry {
            var entry = self
            if let cost, !(cost.isFinite && cost >= 0) { entry.cost = cost.isFinite ? 0 : nil }
            return entry
        }
    }

    public let path: String
    public var location: String { path }
    let db: DatabaseQueue

    /// Opens (creating and migrating) the ledger; a file that is not a ledger is named in the error
    /// and left as it is.
    public init(path: String) throws(LedgerError) {
        self.path = path
        db = try openDatabase(path: path, what: "usage ledger", migrator: Self.migrator)
    }

    /// Schema changes are appended here as new migrations, never edited: an old ledger is brought up to date.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1 requests") { db in
            try db.create(table: "request") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("time", .double).notNull()
                t.column("day", .text).notNull().indexed()
                t.column("session", .text).indexed()
                t.column("provider", .text).notNull()
                t.column("model", .text).notNull()
                t.column("prompt_tokens", .integer).notNull()
                t.column("completion_tokens", .integer).notNull()
                t.column("cached_tokens", .integer).notNull()
                t.column("cache_write_tokens", .integer).notNull()
                t.column("cost", .double)
                t.column("cost_estimated", .boolean).notNull()
                t.column("ttft_ms", .double)
                t.column("duration_ms", .double).notNull()
                t.column("tokens_per_second", .double)
                t.column("attempts", .integer).notNull()
                t.column("fallback_from", .text)
                t.column("cache_hit", .boolean).notNull()
                t.column("outcome", .text).notNull()
                t.column("error", .text)
            }
        }
        migrator.registerMigration("v2 route rule") { db in
            try db.alter(table: "request") { t in t.add(column: "route_rule", .text) }
        }
        migrator.registerMigration("v3 users and budget claims") { db in
            try db.alter(table: "request") { t in
                t.add(column: "uid", .text)
                t.add(column: "user_name", .text)
            }
            try db.create(index: "request_uid", on: "request", columns: ["uid"], unique: true)
            try db.create(table: "budget_claim") { t in
                t.primaryKey("id", .text)
                t.column("day", .text).notNull()
                t.column("session", .text)
                t.column("user_name", .text)
                t.column("worst", .double).notNull()
                t.column("expires", .double).notNull()
            }
        }
        return migrator
    }

    public func record(_ entry: Entry) throws(LedgerError) { try record(entry, releasing: nil) }

    public func record(_ entry: Entry, releasing claim: String?) throws(LedgerError) {
        let entry = entry.clamped()
        do {
            try db.write { db in
                // A row that is already here (copied twice) is kept once: its uid is unique.
                var row = entry
                try row.insert(db, onConflict: .ignore)
                if let claim { try db.execute(sql: "DELETE FROM budget_claim WHERE id = ?", arguments: [claim]) }
            }
        } catch { throw LedgerError(path: path, reason: "\(error)") }
    }

    /// The rows kept here, oldest first, up to `limit`; and removing them once they are written elsewhere.
    func pending(limit: Int) throws(LedgerError) -> [Entry] {
        do { return try db.read { try Entry.order(Column("id")).limit(limit).fetchAll($0) } } catch { throw LedgerError(path: path, reason: "\(error)") }
    }

    func remove(ids: [Int64]) throws(LedgerError) {
        do { try db.write { db in _ = try Entry.deleteAll(db, keys: ids) } } catch { throw LedgerError(path: path, reason: "\(error)") }
    }

    public func spend(_ scope: SpendScope) throws(LedgerError) -> Spend {
        let (sql, arguments) = scope.condition(placeholder: { _ in "?" })
        return try spend(where: sql, StatementArguments(arguments))
    }

    public func claim(_ limits: [BudgetLimit], worstCase: Double, session: String?, user: String?) throws(LedgerError) -> BudgetDecision {
        do {
            return try db.writeWithoutTransaction { db in
                var decision = BudgetDecision.granted(claim: UUID().uuidString)
                // IMMEDIATE: the write lock is taken before the sums are read, so two processes cannot
                // both read the same spend and both go ahead.
                try db.inTransaction(.immediate) {
                    let now = Date().timeIntervalSince1970
                    try db.execute(sql: "DELETE FROM budget_claim WHERE expires < ?", arguments: [now])
                    for limit in limits {
                        let (sql, arguments) = limit.scope.condition(placeholder: { _ in "?" })
                        let spent = try Double.fetchOne(db, sql: "SELECT COALESCE(SUM(MAX(cost, 0)), 0) FROM request WHERE \(sql)", arguments: StatementArguments(arguments)) ?? 0
                        let open = try Double.fetchOne(db, sql: "SELECT COALESCE(SUM(worst), 0) FROM budget_claim WHERE \(sql)", arguments: StatementArguments(arguments)) ?? 0
                        if spent + open + worstCase > limit.dollars {
                            decision = .refused(limit, spent: spent + open)
                            return .rollback
                        }
                    }
                    guard case let .granted(id) = decision else { return .rollback }
                    try db.execute(sql: "INSERT INTO budget_claim (id, day, session, user_name, worst, expires) VALUES (?, ?, ?, ?, ?, ?)",
                                   arguments: [id, Ledger.day(of: Date()), session, user, worstCase, now + budgetClaimLifetime])
                    return .commit
                }
                return decision
            }
        } catch {
            throw LedgerError(path: path, reason: "\(error)")
        }
    }

    public func entries() throws(LedgerError) -> [Entry] {
        do { return try db.read { try Entry.order(Column("id")).fetchAll($0) } } catch { throw LedgerError(path: path, reason: "\(error)") }
    }

    /// Spend where `filter` holds: the known sum, and how many answered requests had no price.
    public struct Spend: Sendable, Equatable {
        public var dollars: Double
        public var unpriced: Int

        public init(dollars: Double, unpriced: Int) {
            self.dollars = dollars
            self.unpriced = unpriced
        }
    }

    func spend(where filter: String, _ arguments: StatementArguments) throws(LedgerError) -> Spend {
        do {
            return try db.read { db in
                let row = try Row.fetchOne(db, sql: """
                    SELECT COALESCE(SUM(MAX(cost, 0)), 0) AS dollars, COUNT(*) FILTER (WHERE cost IS NULL AND outcome != 'refused') AS unpriced
                    FROM request WHERE \(filter)
                    """, arguments: arguments)
                return Spend(dollars: row?["dollars"] ?? 0, unpriced: row?["unpriced"] ?? 0)
            }
        } catch {
            throw LedgerError(path: path, reason: "\(error)")
        }
    }


    /// One line of a report: requests, tokens and cost for a day, a model or a provider.
    public struct ReportLine: Sendable, Equatable {
        public var key: String
        public var requests: Int
        public var promptTokens: Int
        public var completionTokens: Int
        public var cachedTokens: Int
        public var dollars: Double
        public var unpriced: Int
        public var errors: Int
        public var cacheHits: Int
    }

    /// Totals grouped by `day`, `model` (provider:model) or `provider`, over the days from `firstDay` on.
    public func report(groupedBy group: ReportGroup, since firstDay: String) throws(LedgerError) -> [ReportLine] {
        let key = group.sqlKey
        do {
            return try db.read { db in
                try Row.fetchAll(db, sql: """
                    SELECT \(key) AS key, COUNT(*) FILTER (WHERE outcome != 'refused') AS requests,
                           SUM(prompt_tokens) AS prompt, SUM(completion_tokens) AS completion, SUM(cached_tokens) AS cached,
                           COALESCE(SUM(MAX(cost, 0)), 0) AS dollars,
                           COUNT(*) FILTER (WHERE cost IS NULL AND outcome != 'refused') AS unpriced,
                           COUNT(*) FILTER (WHERE outcome = 'error') AS errors,
                           COUNT(*) FILTER (WHERE cache_hit) AS hits
                    FROM request WHERE day >= ? GROUP BY key ORDER BY \(group == .day ? "key DESC" : "dollars DESC, key")
                    """, arguments: [firstDay]).map { row in
                    // A value that is not text (a crafted or damaged row) is shown as such, never a crash.
                    ReportLine(key: String.fromDatabaseValue(row["key"]) ?? "(not text)", requests: row["requests"], promptTokens: row["prompt"] ?? 0,
                               completionTokens: row["completion"] ?? 0, cachedTokens: row["cached"] ?? 0,
                               dollars: row["dollars"] ?? 0, unpriced: row["unpriced"] ?? 0, errors: row["errors"] ?? 0, cacheHits: row["hits"] ?? 0)
                }
            }
        } catch {
            throw LedgerError(path: path, reason: "\(error)")
        }
    }

    public enum ReportGroup: String, Sendable, CaseIterable {
        case day, model, provider, rule, user

        /// The SQL expression a report groups by, the same over the rows (SQLite) and over the team
        /// database's daily roll-up (which keeps an absent rule or user as '').
        var sqlKey: String {
            switch self {
            case .day: return "day"
            case .model: return "provider || ':' || model"
            case .provider: return "provider"
            case .rule: return "COALESCE(NULLIF(route_rule, ''), '(not routed)')"
            case .user: return "COALESCE(NULLIF(user_name, ''), '(none)')"
            }
        }
    }

    /// Speed per model over answered, uncached requests: time to first token and tokens/s percentiles.
    public struct SpeedLine: Sendable, Equatable {
        public var model: String
        public var requests: Int
        public var ttftP50: Double?
        public var ttftP95: Double?
        public var tokensPerSecondP50: Double?
        public var tokensPerSecondP95: Double?
    }

    /// Per model, or per routing rule with `byRule`.
    public func speeds(since firstDay: String, byRule: Bool = false) throws(LedgerError) -> [SpeedLine] {
        let key = (byRule ? Ledger.ReportGroup.rule : .model).sqlKey
        do {
            let rows = try db.read { db in
                try Row.fetchAll(db, sql: """
                    SELECT \(key) AS model, ttft_ms, tokens_per_second FROM request
                    WHERE day >= ? AND outcome = 'ok' AND NOT cache_hit
                    """, arguments: [firstDay])
            }
            var byModel: [String: (ttft: [Double], rate: [Double], count: Int)] = [:]
            for row in rows {
                let model = String.fromDatabaseValue(row["model"]) ?? "(not text)"
                var item = byModel[model] ?? ([], [], 0)
                item.count += 1
                if let ttft: Double = row["ttft_ms"] { item.ttft.append(ttft) }
                if let rate: Double = row["tokens_per_second"] { item.rate.append(rate) }
                byModel[model] = item
            }
            return byModel.keys.sorted().map { model in
                let item = byModel[model]!
                return SpeedLine(model: model, requests: item.count,
                                 ttftP50: percentile(item.ttft, 0.5), ttftP95: percentile(item.ttft, 0.95),
                                 tokensPerSecondP50: percentile(item.rate, 0.5), tokensPerSecondP95: percentile(item.rate, 0.95))
            }
        } catch {
            throw LedgerError(path: path, reason: "\(error)")
        }
    }


    /// `YYYY-MM-DD` in the local time zone.
    /// With localtime_r rather than Calendar, which loads ICU's data (about 10 MB resident) for one date.
    public static func day(of date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        localtime_r(&seconds, &parts)
        return String(format: "%04d-%02d-%02d", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday))
    }
}

/// Opens (creating its directory, 0700) and migrates one of Parley's SQLite files; any failure names
/// the file and leaves it as it was.
func openDatabase(path: String, what: String, migrator: DatabaseMigrator) throws(LedgerError) -> DatabaseQueue {
    do {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        // The file is made (or kept) 0600 before SQLite opens it; SQLite gives its journal the same mode.
        // A symlink planted at the path is refused, not followed.
        try PrivateFile.prepare(path)
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        let db = try DatabaseQueue(path: path, configuration: configuration)
        // Two processes that open an older file at the same moment both see a migration missing; the
        // one that loses fails on the other's change ("duplicate column"). The file is then up to date.
        do { try migrator.migrate(db) } catch {
            guard try db.read({ try migrator.hasCompletedMigrations($0) }) else { throw error }
        }
        return db
    } catch {
        throw LedgerError(path: path, reason: "\(error)", what: what)
    }
}

/// Nearest-rank percentile; nil for no values.
public func percentile(_ values: [Double], _ p: Double) -> Double? {
    guard !values.isEmpty else { return nil }
    let sorted = values.sorted()
    let rank = Int((p * Double(sorted.count)).rounded(.up)) - 1
    return sorted[min(max(rank, 0), sorted.count - 1)]
}

/// The ledger or the cache database cannot be opened or written: names the file and what to do.
public struct LedgerError: UserFacingError, Sendable, Equatable {
    public var path: String
    public var reason: String
    public var what = "usage ledger"
    /// What to do; nil: the advice for a local file.
    public var fix: String?

    public init(path: String, reason: String, what: String = "usage ledger", fix: String? = nil) {
        self.path = path
        self.reason = reason
        self.what = what
        self.fix = fix
    }

    public var userMessage: String {
        "the \(what) \(path) cannot be used (\(reason)); \(fix ?? "move the file aside and Parley starts a new one")"
    }
}
