import Foundation
import ParleyCore

/// A model's prices in US dollars per million tokens, and its limits.
public struct ModelPricing: Codable, Sendable, Equatable {
    public var input: Double
    public var output: Double
    /// Prompt tokens read from the provider's cache; nil bills them as ordinary input.
    public var cachedInput: Double?
    /// Prompt tokens written to the cache (Anthropic); nil bills them as ordinary input.
    public var cacheWrite: Double?
    public var contextWindow: Int?
    public var maxOutput: Int?

    enum CodingKeys: String, CodingKey {
        case input, output
        case cachedInput = "cached_input", cacheWrite = "cache_write", contextWindow = "context_window", maxOutput = "max_output"
    }

    public init(input: Double, output: Double, cachedInput: Double? = nil, cacheWrite: Double? = nil, contextWindow: Int? = nil, maxOutput: Int? = nil) {
        self.input = input
        self.output = output
        self.cachedInput = cachedInput
        self.cacheWrite = cacheWrite
        self.contextWindow = contextWindow
        self.maxOutput = maxOutput
    }

    /// The cost of one request from the usage the provider reported, under its accounting rule.
    /// OpenAI: cached tokens are part of the prompt tokens and billed at the cached rate.
    /// Anthropic: cache reads and writes come on top of the input tokens, each at its own rate.
    public func cost(of usage: Usage) -> Double {
        let perToken = 1.0 / 1_000_000
        var dollars = Double(usage.uncachedPromptTokens) * input
        dollars += Double(usage.cachedTokens) * (cachedInput ?? input)
        if usage.accounting == .cachedOutsidePrompt {
            dollars += Double(usage.cacheWriteTokens) * (cacheWrite ?? input)
        }
        dollars += Double(usage.completionTokens) * output
        // Decoders reject negative counts; this keeps a cost from ever lowering a day's spend regardless.
        let total = dollars * perToken
        return total.isFinite ? max(0, total) : 0
    }

    /// The most a request can cost: every prompt token at the input rate and `outputTokens` at the output rate.
    public func worstCase(promptTokens: Int, outputTokens: Int) -> Double {
        (Double(promptTokens) * input + Double(outputTokens) * output) / 1_000_000
    }
}

/// Config overrides for one model's price; set fields replace the catalog's.
public struct PriceOverride: Sendable, Equatable {
    public var input: Double?
    public var output: Double?
    public var cachedInput: Double?
    public var cacheWrite: Double?
    public var contextWindow: Int?
    public var maxOutput: Int?

    public init() {}

    func applied(to base: ModelPricing?) -> ModelPricing? {
        guard let input = input ?? base?.input, let output = output ?? base?.output else { return base }
        return ModelPricing(
            input: input, output: output,
            cachedInput: cachedInput ?? base?.cachedInput, cacheWrite: cacheWrite ?? base?.cacheWrite,
            contextWindow: contextWindow ?? base?.contextWindow, maxOutput: maxOutput ?? base?.maxOutput
        )
    }
}

/// The bundled price list (`PricingCatalog.json` is compiled in as `bundledPricingJSON`, so a copied
/// binary still has it) with the config's `[models."provider:model"]` prices laid over it.
public struct PricingCatalog: Sendable {
    public struct File: Codable, Sendable {
        public var asOf: String
        public var currency: String
        public var unit: String
        public var sources: [String: String]
        public var models: [String: ModelPricing]

        enum CodingKeys: String, CodingKey { case asOf = "as_of", currency, unit, sources, models }
    }

    public let file: File

    public static let bundled: PricingCatalog = {
        do {
            return PricingCatalog(file: try JSONDecoder().decode(File.self, from: Data(bundledPricingJSON.utf8)))
        } catch {
            preconditionFailure("the bundled pricing catalog does not parse: \(error)")
        }
    }()

    public var asOf: String { file.asOf }

    /// The catalog as shipped, for `parley models --catalog`.
    public static var bundledJSON: String { bundledPricingJSON }

    /// Providers that run on this machine: their replies cost nothing.
    public static let freeProviders: Set<String> = ["local", "ollama"]

    /// The catalog's entry: exact, else without a date suffix (`claude-sonnet-4-5-20250929`), where the
    /// undated name may be Anthropic's alias form (`claude-sonnet-4-20250514` is `claude-sonnet-4-0`,
    /// `claude-3-7-sonnet-20250219` is `claude-3-7-sonnet-latest`).
    public func entry(for ref: ModelRef) -> ModelPricing? {
        if let exact = file.models[ref.description] { return exact }
        // By hand, not NSRegularExpression: this runs before the screen's first paint.
        let model = Array(ref.model.utf8)
        func digits(_ range: Range<Int>) -> Bool { range.allSatisfy { model[$0] >= 48 && model[$0] <= 57 } }
        let n = model.count
        var cut: Int?
        if n > 9, model[n - 9] == UInt8(ascii: "-"), digits(n - 8..<n) { cut = n - 9 }
        if n > 11, model[n - 11] == UInt8(ascii: "-"), model[n - 6] == UInt8(ascii: "-"), model[n - 3] == UInt8(ascii: "-"),
           digits(n - 10..<n - 6), digits(n - 5..<n - 3), digits(n - 2..<n) { cut = n - 11 }
        guard let cut else { return nil }
        let base = "\(ref.provider):\(String(decoding: model[..<cut], as: UTF8.self))"
        return file.models[base] ?? file.models[base + "-0"] ?? file.models[base + "-latest"]
    }
}

extension ParleyConfig {
    /// The price of a model: 0 for local providers, the catalog with the config laid over it, or nil
    /// (unknown: shown as "?", never as $0).
    public func pricing(for ref: ModelRef, catalog: PricingCatalog = .bundled) -> ModelPricing? {
        let override = models[ref]?.pricing ?? PriceOverride()
        if PricingCatalog.freeProviders.contains(ref.provider) {
            let window = ref.provider == "local" ? local.contextSize : nil
            return override.applied(to: ModelPricing(input: 0, output: 0, contextWindow: window))
        }
        return override.applied(to: catalog.entry(for: ref))
    }
}

extension ParleyConfig {
    /// A model's context window: `context_window` from the config even without a price, else the catalog's.
    public func contextWindow(for ref: ModelRef) -> Int? {
        models[ref]?.pricing.contextWindow ?? pricing(for: ref)?.contextWindow
    }
}

/// Money as the screen and reports show it: cents for large sums, more digits for small ones.
public func formatDollars(_ amount: Double?) -> String {
    guard let amount, amount.isFinite else { return "?" }
    if amount == 0 { return "$0.00" }
    if amount < 0 { return "-" + formatDollars(-amount) }
    if amount >= 1 { return String(format: "$%.2f", amount) }
    if amount >= 0.01 { return String(format: "$%.3f", amount) }
    if amount >= 0.0001 { return String(format: "$%.4f", amount) }
    // Below a hundredth of a cent: two significant digits, so a tiny limit never prints as $0.0000.
    let decimals = min(12, Int((-log10(amount)).rounded(.up)) + 1)
    return String(format: "$%.\(decimals)f", amount)
}
