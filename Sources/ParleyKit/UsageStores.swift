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
        case .postgres: ledger = try PostgresLedger(database: try database(), pendingPath: pendingPath)
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
