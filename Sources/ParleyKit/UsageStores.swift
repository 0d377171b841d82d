import Foundation
import ParleyCore

/// The ledger and the cache, opened on first use and shared by every copy of the engine.
public final class UsageStores: @unchecked Sendable {
    let directory: URL
    let cacheSettings: CacheSettings
    private let lock = NSLock()
    private var openedLedger: Ledger?
    private var openedCache: ResponseCache?
    private var problems: [String] = []

    public init(directory: URL, cacheSettings: CacheSettings) {
        self.directory = directory
        self.cacheSettings = cacheSettings
    }

    public var ledgerPath: String { directory.appendingPathComponent("usage.sqlite").path }
    public var cachePath: String { directory.appendingPathComponent("cache.sqlite").path }

    public func ledger() throws(LedgerError) -> Ledger {
        lock.lock()
        defer { lock.unlock() }
        if let openedLedger { return openedLedger }
        let ledger = try Ledger(path: ledgerPath)
        openedLedger = ledger
        return ledger
    }

    public func cache() throws(LedgerError) -> ResponseCache {
        lock.lock()
        defer { lock.unlock() }
        if let openedCache { return openedCache }
        let cache = try ResponseCache(path: cachePath, settings: cacheSettings)
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
