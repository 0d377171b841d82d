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

/// A limit kept in the team's database cannot be checked while it is unreachable: the request is refused,
/// since letting it through could pass a limit that others share.
public struct SharedBudgetUnavailable: UserFacingError, Sendable, Equatable {
    public var model: String
    public var scope: BudgetScope
    public var reason: String
    public var userMessage: String {
        "budget: \(model) refused before sending — the \(scope == .team ? "team's" : "user's") spending limits are kept in the team database, "
            + "which cannot be used now (\(reason)); requests under a [budget] limit wait until it is back, or remove the limit from [budget]"
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
    /// The limits a request must fit and its worst case (estimated prompt + the most output the request
    /// allows); nil when no limit applies. Refuses at once an unpriced model under a limit, and a worst
    /// case over the request's own limit (`ask --budget`).
    func budgetPlan(_ request: ChatRequest, ref: ModelRef, pricing: ModelPricing?, options: TurnOptions) throws -> (worst: Double, limits: [BudgetLimit])? {
        let budget = config.budget
        guard budget.daily != nil || budget.monthly != nil || budget.session != nil || options.requestLimit != nil else { return nil }
        guard let pricing else { throw UnpricedModelRefusal(model: ref.description) }
        if pricing.input == 0, pricing.output == 0 { return nil }
        let worst = pricing.worstCase(promptTokens: TokenEstimator.estimate(request), outputTokens: maxOutputTokens(request, ref: ref, pricing: pricing))
        if let limit = options.requestLimit, worst > limit {
            throw BudgetRefusal(model: ref.description, limitName: "request", limit: limit, spent: 0, worstCase: worst, fix: budgetFix("--budget", ref: ref))
        }
        let today = Ledger.day(of: Date())
        let user = budget.scope == .user ? (options.user ?? userName) : nil
        var limits: [BudgetLimit] = []
        if let daily = budget.daily { limits.append(BudgetLimit(name: "daily", dollars: daily, scope: SpendScope(.day(today), user: user))) }
        if let monthly = budget.monthly { limits.append(BudgetLimit(name: "monthly", dollars: monthly, scope: SpendScope(.month(today), user: user))) }
        if let limit = budget.session, let session = options.session {
            limits.append(BudgetLimit(name: "session", dollars: limit, scope: SpendScope(.session(session))))
        }
        return limits.isEmpty ? nil : (worst, limits)
    }

    func budgetFix(_ how: String, ref: ModelRef) -> String {
        "raise \(how), set a lower max_tokens for \(ref.description), or pick a cheaper model with /model (local is free)"
    }

    func refusal(_ limit: BudgetLimit, spent: Double, worst: Double, ref: ModelRef) -> BudgetRefusal {
        BudgetRefusal(model: ref.description, limitName: limit.name, limit: limit.dollars, spent: spent, worstCase: worst,
                      fix: budgetFix("\(limit.name) under [budget] in \(config.source ?? "config.toml")", ref: ref))
    }

    /// Refuses before anything is sent when the worst case would pass a limit. The ledger checks the
    /// limits and claims the worst case in one step (see `UsageLedger.claim`); the claim's id is
    /// returned, to end with the request's ledger row. Nil: no limit applies.
    func checkBudget(_ request: ChatRequest, ref: ModelRef, pricing: ModelPricing?, options: TurnOptions) async throws -> String? {
        guard let (worst, limits) = try budgetPlan(request, ref: ref, pricing: pricing, options: options) else { return nil }
        let decision: BudgetDecision
        do {
            decision = try await stores.ledger().claim(limits, worstCase: worst, session: options.session, user: options.user ?? userName)
        } catch {
            guard stores.isShared else { throw error }
            throw SharedBudgetUnavailable(model: ref.description, scope: config.budget.scope, reason: error.userMessage)
        }
        switch decision {
        case let .granted(claim): return claim
        case let .refused(limit, spent): throw refusal(limit, spent: spent, worst: worst, ref: ref)
        }
    }

    /// Whether the budget would refuse this request now, without claiming anything (for the router's
    /// choice; the turn itself claims).
    func budgetRefusal(_ request: ChatRequest, ref: ModelRef, pricing: ModelPricing?, options: TurnOptions) async -> (any Error)? {
        do {
            guard let (worst, limits) = try budgetPlan(request, ref: ref, pricing: pricing, options: options) else { return nil }
            let ledger = try stores.ledger()
            for limit in limits {
                let spent = try await ledger.spend(limit.scope).dollars
                if spent + worst > limit.dollars { return refusal(limit, spent: spent, worst: worst, ref: ref) }
            }
            return nil
        } catch let error as LedgerError where stores.isShared {
            return SharedBudgetUnavailable(model: ref.description, scope: config.budget.scope, reason: error.userMessage)
        } catch {
            return error
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
    public func spending(session: String?) async -> (today: Ledger.Spend, month: Ledger.Spend, session: Ledger.Spend?)? {
        guard let ledger = try? stores.ledger() else { return nil }
        let today = Ledger.day(of: Date())
        let user = config.budget.scope == .user ? userName : nil
        guard let day = try? await ledger.spend(SpendScope(.day(today), user: user)),
              let month = try? await ledger.spend(SpendScope(.month(today), user: user)) else { return nil }
        var sessionSpend: Ledger.Spend?
        if let session { sessionSpend = try? await ledger.spend(SpendScope(.session(session))) }
        return (day, month, sessionSpend)
    }

    /// The status bar's costs as text: this turn, the session and today (against the daily limit when
    /// one is set; "+?" where requests had no price), and whether any limit is 80 % spent. Reads the
    /// ledger: call it off the UI thread.
    public func spendLine(session: String?, turnCost: Double?) async -> SpendLine {
        let budget = config.budget
        guard let spend = await spending(session: session) else {
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
