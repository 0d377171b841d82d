import Foundation
import ParleyCore

/// The usage ledger, wherever it is kept: a SQLite file for one person (`Ledger`), a PostgreSQL
/// database for a team (`PostgresLedger`). Every method is a short transaction of its own.
public protocol UsageLedger: Sendable {
    /// Where the rows are, for messages and `parley cost` (a path, or a URL without its password).
    var location: String { get }
    /// Appends one row; with `releasing`, ends that budget claim in the same transaction.
    func record(_ entry: Ledger.Entry, releasing claim: String?) async throws(LedgerError)
    func spend(_ scope: SpendScope) async throws(LedgerError) -> Ledger.Spend
    func report(groupedBy group: Ledger.ReportGroup, since firstDay: String) async throws(LedgerError) -> [Ledger.ReportLine]
    func speeds(since firstDay: String, byRule: Bool) async throws(LedgerError) -> [Ledger.SpeedLine]
    /// Atomically (one writer at a time, across processes and machines): refuses when, for some limit,
    /// the spend so far plus the claims still open plus `worstCase` would pass it; otherwise opens a
    /// claim of `worstCase` that counts until `record(_:releasing:)` ends it (or it expires). So N
    /// requests started together cannot pass a limit, where reading then writing would let each see
    /// the same spend.
    func claim(_ limits: [BudgetLimit], worstCase: Double, session: String?, user: String?) async throws(LedgerError) -> BudgetDecision
}

/// Which rows a spend counts: a day, a month or a session, and one user's or everyone's.
public struct SpendScope: Sendable, Equatable {
    public enum Period: Sendable, Equatable {
        /// `YYYY-MM-DD`
        case day(String)
        /// `YYYY-MM`
        case month(String)
        case session(String)
    }

    public var period: Period
    /// Nil: every user's rows.
    public var user: String?

    public init(_ period: Period, user: String? = nil) {
        self.period = period
        self.user = user
    }

    /// The SQL condition on a table with `day`, `session` and `user_name` columns, and its arguments
    /// (the same text in SQLite and PostgreSQL once placeholders are numbered).
    func condition(placeholder: (Int) -> String, firstIndex: Int = 1) -> (sql: String, arguments: [String]) {
        var sql: String
        var arguments: [String]
        switch period {
        case let .day(day): (sql, arguments) = ("day = \(placeholder(firstIndex))", [day])
        case let .month(month): (sql, arguments) = ("day LIKE \(placeholder(firstIndex))", [String(month.prefix(7)) + "-%"])
        case let .session(session): (sql, arguments) = ("session = \(placeholder(firstIndex))", [session])
        }
        if let user {
            sql += " AND user_name = \(placeholder(firstIndex + 1))"
            arguments.append(user)
        }
        return (sql, arguments)
    }
}

/// One spending limit as a claim checks it.
public struct BudgetLimit: Sendable, Equatable {
    /// `daily`, `monthly`, `session`.
    public var name: String
    public var dollars: Double
    public var scope: SpendScope

    public init(name: String, dollars: Double, scope: SpendScope) {
        self.name = name
        self.dollars = dollars
        self.scope = scope
    }
}

public enum BudgetDecision: Sendable, Equatable {
    /// Go ahead; the claim's id is passed to `record(_:releasing:)`.
    case granted(claim: String)
    /// `spent` counts the claims of requests still running.
    case refused(BudgetLimit, spent: Double)
}

/// How long a claim counts when its request never records (a process killed mid-turn).
let budgetClaimLifetime: Double = 15 * 60

/// A name in the ledger (a login, a gateway token's name): short and plain, so it is safe in a
/// terminal, a header and a SQL argument alike.
public enum UserName {
    public static func isValid(_ name: String) -> Bool {
        (1...64).contains(name.utf8.count) && name.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "@")
        }
    }

    /// `[ledger] user`, else `PARLEY_USER`, else the login name, else "local".
    public static func current(config: LedgerSettings, environment: [String: String]) -> String {
        if let name = config.user { return name }
        for key in ["PARLEY_USER", "USER", "LOGNAME"] {
            if let name = environment[key], isValid(name) { return name }
        }
        return "local"
    }
}

/// The response cache, wherever it is kept: SQLite (`ResponseCache`) or PostgreSQL (`PostgresReplyCache`).
/// A cache that fails is a miss, never a failed reply.
public protocol ReplyCache: Sendable {
    var location: String { get }
    func lookup(_ key: String, now: Date) async -> ResponseCache.Reply?
    func store(_ key: String, ref: ModelRef, reply: ResponseCache.Reply) async
    func stats() async throws(LedgerError) -> ResponseCache.Stats
    @discardableResult
    func clear() async throws(LedgerError) -> Int
}
