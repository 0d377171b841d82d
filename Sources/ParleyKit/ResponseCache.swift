import Foundation
import GRDB
import ParleyCore

/// Replies kept by the SHA-256 of the canonical request, in SQLite at `DATA/cache.sqlite`, with a
/// time to live and a size cap (least recently used go first). Opt-in: see `[cache]` in the config.
public final class ResponseCache: ReplyCache {
    public struct Reply: Sendable, Equatable {
        public var text: String
        public var finishReason: String?
        /// The usage the provider reported when the reply was made (a hit itself costs nothing).
        public var usage: Usage?
        public var created: Date

        public init(text: String, finishReason: String?, usage: Usage?, created: Date) {
            self.text = text
            self.finishReason = finishReason
            self.usage = usage
            self.created = created
        }
    }

    public let path: String
    public var location: String { path }
    let db: DatabaseQueue
    let settings: CacheSettings

    public init(path: String, settings: CacheSettings) throws(LedgerError) {
        self.path = path
        self.settings = settings
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1 replies") { db in
            try db.create(table: "reply") { t in
                t.primaryKey("key", .text)
                t.column("provider", .text).notNull()
                t.column("model", .text).notNull()
                t.column("text", .text).notNull()
                t.column("finish_reason", .text)
                t.column("usage", .text)
                t.column("created", .double).notNull()
                t.column("last_used", .double).notNull().indexed()
                t.column("hits", .integer).notNull().defaults(to: 0)
                t.column("bytes", .integer).notNull()
            }
        }
        db = try openDatabase(path: path, what: "response cache", migrator: migrator)
    }

    /// Whether a request may be answered from (and stored in) the cache.
    public static func isCacheable(_ request: ChatRequest, settings: CacheSettings) -> Bool {
        !settings.onlyDeterministic || request.temperature == 0
    }

    /// The key: SHA-256 of the canonical request — provider, model, system, messages and every
    /// parameter that changes the answer — as JSON with sorted keys.
    /// The key: everything that can change the answer. `origin` is where the request goes (the base
    /// URL, or for the local model its model file: the same name at two servers is two models), and
    /// `maxTokens` the limit actually sent (the request's, else the config's).
    public static func key(for request: ChatRequest, ref: ModelRef, origin: String, maxTokens: Int?) -> String {
        struct Canonical: Encodable {
            var provider: String
            var model: String
            var origin: String
            var system: String?
            var messages: [ChatMessage]
            var temperature: Double?
            var maxTokens: Int?
            var tools: [ToolDefinition]
            var responseFormat: ResponseFormat?
            var seed: Int?
        }
        let canonical = Canonical(provider: ref.provider, model: ref.model, origin: origin, system: request.system, messages: request.messages,
                                  temperature: request.temperature, maxTokens: maxTokens, tools: request.tools,
                                  responseFormat: request.responseFormat, seed: request.seed)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let bytes = (try? encoder.encode(canonical)).map { Array($0) } ?? Array(String(describing: canonical).utf8)
        return SHA256.hex(bytes)
    }

    /// The stored reply, unless it is older than the time to live (then it is deleted).
    public func lookup(_ key: String, now: Date = Date()) -> Reply? {
        let oldest = now.timeIntervalSince1970 - Double(settings.ttlSeconds)
        return try? db.write { db -> Reply? in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM reply WHERE key = ?", arguments: [key]) else { return nil }
            let created: Double = row["created"]
            guard created >= oldest else {
                try db.execute(sql: "DELETE FROM reply WHERE key = ?", arguments: [key])
                return nil
            }
            try db.execute(sql: "UPDATE reply SET hits = hits + 1, last_used = ? WHERE key = ?", arguments: [now.timeIntervalSince1970, key])
            let usage = (row["usage"] as String?).flatMap { try? JSONDecoder().decode(Usage.self, from: Data($0.utf8)) }
            return Reply(text: row["text"], finishReason: row["finish_reason"], usage: usage, created: Date(timeIntervalSince1970: created))
        }
    }

    /// Stores a complete reply, then trims least recently used replies to the size cap.
    public func store(_ key: String, ref: ModelRef, reply: Reply) {
        let usage = reply.usage.flatMap { try? JSONEncoder().encode($0) }.map { String(decoding: $0, as: UTF8.self) }
        let cap = settings.maxMegabytes * 1_000_000
        try? db.write { db in
            try db.execute(sql: """
                INSERT OR REPLACE INTO reply (key, provider, model, text, finish_reason, usage, created, last_used, hits, bytes)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?)
                """, arguments: [key, ref.provider, ref.model, reply.text, reply.finishReason, usage,
                                 reply.created.timeIntervalSince1970, reply.created.timeIntervalSince1970, reply.text.utf8.count])
            var total = try Int.fetchOne(db, sql: "SELECT COALESCE(SUM(bytes), 0) FROM reply") ?? 0
            while total > cap, let oldest = try Row.fetchOne(db, sql: "SELECT key, bytes FROM reply ORDER BY last_used LIMIT 1") {
                try db.execute(sql: "DELETE FROM reply WHERE key = ?", arguments: [oldest["key"] as String])
                total -= oldest["bytes"] as Int
            }
        }
    }

    public struct Stats: Sendable, Equatable {
        public var entries: Int
        public var bytes: Int
        public var hits: Int
        public var oldest: Date?
    }

    public func stats() throws(LedgerError) -> Stats {
        do {
            return try db.read { db in
                let row = try Row.fetchOne(db, sql: "SELECT COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS bytes, COALESCE(SUM(hits), 0) AS hits, MIN(created) AS oldest FROM reply")
                return Stats(entries: row?["n"] ?? 0, bytes: row?["bytes"] ?? 0, hits: row?["hits"] ?? 0,
                             oldest: (row?["oldest"] as Double?).map { Date(timeIntervalSince1970: $0) })
            }
        } catch {
            throw LedgerError(path: path, reason: "\(error)", what: "response cache")
        }
    }

    /// Deletes every stored reply; returns how many there were.
    @discardableResult
    public func clear() throws(LedgerError) -> Int {
        do {
            return try db.write { db in
                try db.execute(sql: "DELETE FROM reply")
                return db.changesCount
            }
        } catch {
            throw LedgerError(path: path, reason: "\(error)", what: "response cache")
        }
    }
}
