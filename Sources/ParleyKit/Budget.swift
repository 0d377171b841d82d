import Foundation
import ParleyCore
import ParleyProviders

/// A request refused before anything was sent, because its worst case would pass a spending limit.
public struct BudgetRefusal: UserFacingError, Sendable, Equatable {
    public var model: String
    public var limitName: String
    public var limit: Double
    public var spent: Double
    public var worstCase: Double
    public var fix: String

    public var userMessage: String {
        "budget: \(model) refused before sending — \(limitName) spend \(formatDollars(spent)) plus this request's worst case "
            + "\(formatDollars(worstCase)) would pass the \(limitName) limit of \(formatDollars(limit)); \(fix)"
    }
}

/// The price of a model is unknown while a spending limit is set, so the limit cannot be kept.
public struct UnpricedModelRefusal: UserFacingError, Sendable, Equatable {
    public var model: String
    public var userMessage: String {
        "budget: the price of \(model) is unknown, so a spending limit cannot be kept; add input_price and output_price "
            + "(dollars per million tokens) under [models.\"\(model)\"] in config.toml, or pick another model with /model"
    }
}

/// Budgets and estimates: what a request may cost, checked before anything is sent.
extension ChatEngine {
    /// Refuses before anything is sent when the worst case (estimated prompt + the most output the
    /// request allows) would pass the request, daily, monthly or session limit.
    func checkBudget(_ request: ChatRequest, ref: ModelRef, pricing: ModelPricing?, options: TurnOptions) throws {
        let budget = config.budget
        guard budget.daily != nil || budget.monthly != nil || budget.session != nil || options.requestLimit != nil else { return }
        guard let pricing else { throw UnpricedModelRefusal(model: ref.description) }
        if pricing.input == 0, pricing.output == 0 { return }
        let worst = pricing.worstCase(promptTokens: TokenEstimator.estimate(request), outputTokens: maxOutputTokens(request, ref: ref, pricing: pricing))
        func fix(_ how: String) -> String {
            "raise \(how), set a lower max_tokens for \(ref.description), or pick a cheaper model with /model (local is free)"
        }
        func check(_ name: String, _ limit: Double?, _ spent: () throws -> Double, how: String) throws {
            guard let limit else { return }
            let spent = try spent()
            if spent + worst > limit {
                throw BudgetRefusal(model: ref.description, limitName: name, limit: limit, spent: spent, worstCase: worst,
                                    fix: fix(how))
            }
        }
        try check("request", options.requestLimit, { 0 }, how: "--budget")
        let today = Ledger.day(of: Date())
        let file = config.source ?? "config.toml"
        try check("daily", budget.daily, { try stores.ledger().spend(onDay: today).dollars }, how: "daily under [budget] in \(file)")
        try check("monthly", budget.monthly, { try stores.ledger().spend(inMonthOf: today).dollars }, how: "monthly under [budget] in \(file)")
        if let session = options.session {
            try check("session", budget.session, { try stores.ledger().spend(session: session).dollars }, how: "session under [budget] in \(file)")
        }
    }

    /// What a request is expected to cost before it is sent.
    public struct Estimate: Sendable, Equatable {
        public var model: ModelRef
        public var promptTokens: Int
        public var maxOutputTokens: Int
        /// Prompt at the input rate plus every allowed output token; nil when the price is unknown.
        public var worstCase: Double?

        public var summary: String {
            "\(model): about \(promptTokens) prompt tokens (estimated), up to \(maxOutputTokens) output tokens; worst case "
                + (worstCase.map(formatDollars) ?? "unknown (no price for this model; add one under [models.\"\(model)\"])")
        }
    }

    public func estimate(_ request: ChatRequest, model ref: ModelRef) -> Estimate {
        let pricing = config.pricing(for: ref)
        let prompt = TokenEstimator.estimate(request)
        let output = maxOutputTokens(request, ref: ref, pricing: pricing)
        return Estimate(model: ref, promptTokens: prompt, maxOutputTokens: output,
                        worstCase: pricing?.worstCase(promptTokens: prompt, outputTokens: output))
    }

    /// The most output a request allows: its max_tokens, the config's, the model's limit, else 8,192.
    func maxOutputTokens(_ request: ChatRequest, ref: ModelRef, pricing: ModelPricing?) -> Int {
        request.maxTokens ?? config.endpoint(for: ref, environment: environment).defaultMaxTokens ?? pricing?.maxOutput ?? 8192
    }

    /// Spend for the status bar: today, this month, and the session's.
    public func spending(session: String?) -> (today: Ledger.Spend, month: Ledger.Spend, session: Ledger.Spend?)? {
        guard let ledger = try? stores.ledger() else { return nil }
        let today = Ledger.day(of: Date())
        guard let day = try? ledger.spend(onDay: today), let month = try? ledger.spend(inMonthOf: today) else { return nil }
        return (day, month, session.flatMap { try? ledger.spend(session: $0) })
    }

    /// The status bar's costs as text: this turn, the session and today (against the daily limit when
    /// one is set; "+?" where requests had no price), and whether any limit is 80 % spent. Reads the
    /// ledger: call it off the UI thread.
    public func spendLine(session: String?, turnCost: Double?) -> SpendLine {
        let budget = config.budget
        guard let spend = spending(session: session) else {
            return SpendLine(turn: formatDollars(turnCost), session: "?", today: "?", warn: false)
        }
        func text(_ spend: Ledger.Spend?) -> String {
            guard let spend else { return "$0.00" }
            return formatDollars(spend.dollars) + (spend.unpriced > 0 ? "+?" : "")
        }
        var today = text(spend.today)
        if let daily = budget.daily { today += "/" + formatDollars(daily) }
        let pairs = [(spend.today.dollars, budget.daily), (spend.month.dollars, budget.monthly), (spend.session?.dollars ?? 0, budget.session)]
        let warn = pairs.contains { spent, limit in limit.map { spent >= 0.8 * $0 } ?? false }
        return SpendLine(turn: formatDollars(turnCost), session: text(spend.session), today: today, warn: warn)
    }
}

/// Spend as the status bar shows it.
public struct SpendLine: Sendable, Equatable {
    public var turn: String
    public var session: String
    public var today: String
    /// Some limit is at least 80 % spent.
    public var warn: Bool
}
