import ArgumentParser
import Foundation
import ParleyCore
import ParleyKit

/// `parley cost`: spend from the usage ledger, by day, model and provider.
struct Cost: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cost", abstract: "Show what requests cost: today, the last days, by model and by provider.")

    @Option(help: "How many days back, today included.")
    var days = 7

    @Flag(help: "Print JSON instead of tables.")
    var json = false

    @Option(help: "Show one grouping only: day, model, provider, rule (the [router] rule that chose the model) or user (whose request: the ledger's user or the gateway token's name).")
    var by: String?

    func run() async throws {
        do {
            let only = try by.map { name throws -> Ledger.ReportGroup in
                guard let group = Ledger.ReportGroup(rawValue: name) else { throw ValidationError("--by: expected day, model, provider, rule or user") }
                return group
            }
            guard days >= 1 else { throw ValidationError("--days must be at least 1") }
            let engine = try ChatEngine.fromEnvironment()
            let ledger = try engine.stores.ledger()
            let firstDay = Ledger.day(of: Date().addingTimeInterval(-Double(days - 1) * 86_400))
            let today = Ledger.day(of: Date())
            let todaySpend = try await ledger.spend(SpendScope(.day(today)))
            let month = try await ledger.spend(SpendScope(.month(today)))
            let byDay = try await ledger.report(groupedBy: .day, since: firstDay)
            let byModel = try await ledger.report(groupedBy: .model, since: firstDay)
            let byProvider = try await ledger.report(groupedBy: .provider, since: firstDay)
            let byRule = try await ledger.report(groupedBy: .rule, since: firstDay)
            let byUser = try await ledger.report(groupedBy: .user, since: firstDay)
            if json {
                func lines(_ lines: [Ledger.ReportLine]) -> JSONValue {
                    .array(lines.map { line in
                        ["key": .string(line.key), "requests": .number(Double(line.requests)),
                         "prompt_tokens": .number(Double(line.promptTokens)), "completion_tokens": .number(Double(line.completionTokens)),
                         "cached_tokens": .number(Double(line.cachedTokens)), "cost_usd": .number(line.dollars),
                         "unpriced_requests": .number(Double(line.unpriced)), "errors": .number(Double(line.errors)),
                         "cache_hits": .number(Double(line.cacheHits))]
                    })
                }
                let report: JSONValue = [
                    "ledger": .string(ledger.location), "since": .string(firstDay),
                    "today": ["day": .string(today), "cost_usd": .number(todaySpend.dollars), "unpriced_requests": .number(Double(todaySpend.unpriced))],
                    "month": ["cost_usd": .number(month.dollars), "unpriced_requests": .number(Double(month.unpriced))],
                    "budget": ["daily": engine.config.budget.daily.map { .number($0) } ?? .null,
                               "monthly": engine.config.budget.monthly.map { .number($0) } ?? .null,
                               "session": engine.config.budget.session.map { .number($0) } ?? .null],
                    "by_day": lines(byDay), "by_model": lines(byModel), "by_provider": lines(byProvider), "by_rule": lines(byRule),
                    "by_user": lines(byUser),
                ]
                Terminal.standardOutput.line(report.serialized())
                return
            }
            func limit(_ value: Double?) -> String { value.map { " of \(formatDollars($0))" } ?? "" }
            Terminal.standardOutput.line("today \(today): \(money(todaySpend))\(limit(engine.config.budget.daily)) · this month: \(money(month))\(limit(engine.config.budget.monthly))")
            Terminal.standardOutput.line("ledger: \(ledger.location)")
            if byDay.isEmpty {
                Terminal.standardOutput.line("\nno requests in the last \(days) days")
                return
            }
            var groups = [(Ledger.ReportGroup.day, byDay), (.model, byModel), (.provider, byProvider)]
            // Routing rules only once something was routed (or when asked for).
            if byRule.contains(where: { $0.key != "(not routed)" }) { groups.append((.rule, byRule)) }
            // Users only once the ledger holds more than one (a team's, or a gateway's clients).
            if byUser.count > 1 { groups.append((.user, byUser)) }
            if let only { groups = [(only, [.day: byDay, .model: byModel, .provider: byProvider, .rule: byRule, .user: byUser][only] ?? [])] }
            for (group, lines) in groups {
                let title = group.rawValue
                Terminal.standardOutput.line("")
                Terminal.standardOutput.line(table(title: title, lines))
            }
        } catch let error as ValidationError {
            throw error
        } catch {
            throw fail(error)
        }
    }

    func money(_ spend: Ledger.Spend) -> String {
        formatDollars(spend.dollars) + (spend.unpriced > 0 ? " + \(spend.unpriced) unpriced" : "")
    }

    func table(title: String, _ lines: [Ledger.ReportLine]) -> String {
        let header = [title, "requests", "in", "out", "cached", "cost", "errors"]
        let rows = lines.map { line in
            [line.key, "\(line.requests)" + (line.cacheHits > 0 ? " (\(line.cacheHits) cached)" : ""), "\(line.promptTokens)", "\(line.completionTokens)",
             "\(line.cachedTokens)", formatDollars(line.dollars) + (line.unpriced > 0 ? " +\(line.unpriced)?" : ""), "\(line.errors)"]
        }
        return formatTable(header, rows)
    }
}

/// `parley stats`: speed per model from the ledger.
struct Stats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stats", abstract: "Show time to first token and tokens/s per model (p50 and p95) from the usage ledger.")

    @Option(help: "How many days back, today included.")
    var days = 30

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    @Flag(name: .customLong("by-rule"), help: "Group by the [router] rule that chose the model instead of by model.")
    var byRule = false

    func run() async throws {
        do {
            let engine = try ChatEngine.fromEnvironment()
            let ledger = try engine.stores.ledger()
            let speeds = try await ledger.speeds(since: Ledger.day(of: Date().addingTimeInterval(-Double(max(days, 1) - 1) * 86_400)), byRule: byRule)
            func number(_ value: Double?) -> JSONValue { value.map { .number(($0 * 10).rounded() / 10) } ?? .null }
            if json {
                Terminal.standardOutput.line(JSONValue.array(speeds.map { line in
                    [(byRule ? "rule" : "model"): .string(line.model), "requests": .number(Double(line.requests)),
                     "ttft_ms_p50": number(line.ttftP50), "ttft_ms_p95": number(line.ttftP95),
                     "tokens_per_second_p50": number(line.tokensPerSecondP50), "tokens_per_second_p95": number(line.tokensPerSecondP95)]
                }).serialized())
                return
            }
            if speeds.isEmpty {
                Terminal.standardOutput.line("no answered requests in the last \(days) days (ledger: \(ledger.location))")
                return
            }
            func ms(_ value: Double?) -> String { value.map { String(format: "%.0f ms", $0) } ?? "-" }
            func rate(_ value: Double?) -> String { value.map { String(format: "%.1f", $0) } ?? "-" }
            Terminal.standardOutput.line(formatTable([byRule ? "rule" : "model", "requests", "ttft p50", "ttft p95", "tok/s p50", "tok/s p95"], speeds.map {
                [$0.model, "\($0.requests)", ms($0.ttftP50), ms($0.ttftP95), rate($0.tokensPerSecondP50), rate($0.tokensPerSecondP95)]
            }))
        } catch {
            throw fail(error)
        }
    }
}

/// `parley cache stats|clear`.
struct CacheCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache", abstract: "Inspect or empty the response cache.",
        subcommands: [CacheStats.self, CacheClear.self], defaultSubcommand: CacheStats.self
    )
}

struct CacheStats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stats", abstract: "How many replies are cached, their size and hits.")

    func run() async throws {
        do {
            let engine = try ChatEngine.fromEnvironment()
            let cache = try engine.stores.cache()
            let stats = try await cache.stats()
            let settings = engine.config.cache
            Terminal.standardOutput.line("response cache: \(cache.location)")
            Terminal.standardOutput.line("  \(settings.enabled ? "on" : "off (turn it on with [cache] enabled = true, /cache on, or ask --cache)")"
                + (settings.onlyDeterministic ? ", temperature-0 requests only" : ", every request"))
            Terminal.standardOutput.line("  \(stats.entries) replies, \(String(format: "%.1f", Double(stats.bytes) / 1_000_000)) MB of \(settings.maxMegabytes) MB, \(stats.hits) hits")
            Terminal.standardOutput.line("  replies expire after \(settings.ttlSeconds / 3600) hours")
        } catch {
            throw fail(error)
        }
    }
}

struct CacheClear: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "clear", abstract: "Delete every cached reply.")

    func run() async throws {
        do {
            let engine = try ChatEngine.fromEnvironment()
            let removed = try await engine.stores.cache().clear()
            Terminal.standardOutput.line("removed \(removed) cached replies")
        } catch {
            throw fail(error)
        }
    }
}

/// Left-aligned first column, right-aligned numbers.
func formatTable(_ header: [String], _ rows: [[String]]) -> String {
    let all = [header] + rows
    let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
    return all.map { row in
        row.indices.map { column in
            column == 0 ? row[column].padding(toLength: widths[column], withPad: " ", startingAt: 0)
                : String(repeating: " ", count: widths[column] - row[column].count) + row[column]
        }.joined(separator: "  ")
    }.joined(separator: "\n")
}
