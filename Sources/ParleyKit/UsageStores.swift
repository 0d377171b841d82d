import Foundation
import ParleyCore

/// The ledger and the cache, opened on first use and shared by every copy of the engine: SQLite files
/// in the data directory, or the team's PostgreSQL (`[ledger] backend`, `[cache] backend`).
public final class UsageStores: @unchecked Sendable {
    let directory: URL
    let cacheSettings: CacheSettings
    let ledgerSettings: LedgerSettings
    let environment: [String: String]
    private let lock = NSLock()
    private var openedLedger: (any UsageLedger)?
    private var openedCache: (any ReplyCache)?
    private var openedDatabase: PostgresDatabase?
    private var problems: [String] = []

    public init(directory: URL, cacheSettings: CacheSettings, ledgerSettings: LedgerSettings = LedgerSettings(),
                environment: [String: String] = [:]) {
        self.directory = directory
        self.cacheSettings = cacheSettings
        self.ledgerSettings = ledgerSettings
        self.environment = environment
    }

    public var ledgerPath: String { directory.appendingPathComponent("usage.sqlite").path }
    public var cachePath: String { directory.appendingPathComponent("cache.sqlite").path }
    /// Ledger rows kept while the team's database is down.
    public var pendingPath: String { directory.appendingPathComponent("usage-pending.sqlite").path }

    /// Whether budgets are kept in a shared database (which must be reachable to keep them).
    public var isShared: Bool { ledgerSettings.backend == .postgres }

    /// The one pool to the team's database; the URL comes from the environment, never the config file.
    private func database() throws(LedgerError) -> PostgresDatabase {
        if let openedDatabase { return openedDatabase }
        let variable = ledgerSettings.urlVariable
        guard let url = environment[variable], !url.isEmpty else {
            throw LedgerError(path: "$\(variable)", reason: "it is not set", what: "PostgreSQL URL in",
                              fix: "export \(variable)=postgres://USER:PASSWORD@HOST:PORT/DATABASE, or set backend = \"sqlite\" under [ledger] and [cache]")
        }
        let database = try PostgresDatabase(url: url, variable: variable)
        openedDatabase = database
        return database
    }

    public func ledger() throws(LedgerError) -> any UsageLedger {
        lock.lock()
        defer { lock.unlock() }
        if let openedLedger { return openedLedger }
        let ledger: any UsageLedger
        switch ledgerSettings.backend {
        case .sqlite: ledger = try Ledger(path: ledgerPath)
        case .postgres:
            do { ledger = try PostgresLedger(database: try database(), pendingPath: pendingPath) } catch let error where error.what == "PostgreSQL URL in" {
                // A missing or malformed URL loses no row: they wait in the pending file like rows kept
                // while the database is down, and are written once the URL is right.
                ledger = UnconfiguredTeamLedger(problem: error, pending: try Ledger(path: pendingPath))
            }
        }
        openedLedger = ledger
        return ledger
    }

    public func cache() throws(LedgerError) -> any ReplyCache {
        lock.lock()
        defer { lock.unlock() }
        if let openedCache { return openedCache }
        let cache: any ReplyCache
        switch cacheSettings.backend {
        case .sqlite: cache = try ResponseCache(path: cachePath, settings: cacheSettings)
        case .postgres: cache = PostgresReplyCache(database: try database(), settings: cacheSettings)
        }
        openedCache = cache
        return cache
    }

    private var noted: Set<String> = []

    /// Each problem is told once per process, not at every request.
    func noteProblem(_ message: String) {
        lock.withLock { if noted.insert(message).inserted { problems.append(message) } }
    }

    /// Problems writing the ledger since the last call, to show once.
    public func takeProblems() -> [String] {
        lock.withLock {
            defer { problems = [] }
            return problems
        }
    }
}

/// The team ledger when its URL is missing or malformed: rows are kept locally, every read fails with
/// the URL's problem (so budgets kept there refuse, and `parley cost` says what to fix).
struct UnconfiguredTeamLedger: UsageLedger {
    let problem: LedgerError
    let pending: Ledger
    var location: String { problem.path }

    func record(_ entry: Ledger.Entry, releasing claim: String?) async throws(LedgerError) {
        try pending.record(entry)
        throw problem
    }

    func spend(_ scope: SpendScope) async throws(LedgerError) -> Ledger.Spend { throw problem }
    func report(groupedBy group: Ledger.ReportGroup, since firstDay: String) async throws(LedgerError) -> [Ledger.ReportLine] { throw problem }
    func speeds(since firstDay: String, byRule: Bool) async throws(LedgerError) -> [Ledger.SpeedLine] { throw problem }
    func claim(_ limits: [BudgetLimit], worstCase: Double, session: String?, user: String?) async throws(LedgerError) -> BudgetDecision { throw problem }
}
