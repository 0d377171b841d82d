import ArgumentParser
import Foundation
import ParleyCore
import ParleyKit
import ParleyProviders

/// `parley models`: what is configured, which keys are set, which local servers answer.
struct Models: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "models", abstract: "List providers and models, their keys, and whether local servers are reachable.")

    @Flag(help: "Print the bundled pricing catalog (JSON, dated) and exit.")
    var catalog = false

    func run() async throws {
        if catalog {
            Terminal.standardOutput.line(PricingCatalog.bundledJSON)
            return
        }
        do {
            let engine = try ChatEngine.fromEnvironment()
            let config = engine.config
            Terminal.standardOutput.line("default model: \(engine.defaultModelName)" + (config.source.map { "  (config: \($0))" } ?? "  (no config file)"))
            for name in config.providerOrder {
                guard let provider = config.providers[name] else { continue }
                Terminal.standardOutput.line("")
                let status = await status(of: provider, engine: engine)
                Terminal.standardOutput.line("\(name)  [\(provider.format.rawValue)]  \(status)")
                let models = provider.models.isEmpty ? ["(any model name: \(name):MODEL)"] : provider.models.map { "\(name):\($0)" }
                for model in models { Terminal.standardOutput.line("  " + describe(model, config: config)) }
            }
            Terminal.standardOutput.line("\nprices: US dollars per million tokens (input / cached input / cache write / output), bundled catalog of \(PricingCatalog.bundled.asOf); override under [models.\"provider:model\"]")
            if !config.aliases.isEmpty {
                Terminal.standardOutput.line("\naliases:")
                for (alias, target) in config.aliases.sorted(by: { $0.key < $1.key }) { Terminal.standardOutput.line("  \(alias) → \(target)") }
            }
        } catch {
            throw fail(error)
        }
    }

    /// `provider:model` padded, then its prices and context window, or "price unknown".
    func describe(_ name: String, config: ParleyConfig) -> String {
        let padded = name.padding(toLength: max(name.count, 40), withPad: " ", startingAt: 0)
        guard let ref = try? config.resolve(name) else { return name }
        guard let price = config.pricing(for: ref) else { return padded + "  price unknown" }
        var text = padded + "  "
        if price.input == 0, price.output == 0 {
            text += "free (runs here)"
        } else {
            func dollars(_ value: Double?) -> String { value.map { String(format: "%g", $0) } ?? "-" }
            text += "$\(dollars(price.input)) / \(dollars(price.cachedInput)) / \(dollars(price.cacheWrite)) / \(dollars(price.output))"
        }
        if let window = price.contextWindow { text += "  ctx \(window >= 1000 ? "\(window / 1000)k" : "\(window)")" }
        if let maxOutput = price.maxOutput { text += "  max out \(maxOutput >= 1000 ? "\(maxOutput / 1000)k" : "\(maxOutput)")" }
        return text
    }

    func status(of provider: ProviderConfig, engine: ChatEngine) async -> String {
        if provider.name == "local" {
            let runtime = engine.localRuntime
            guard runtime.installation() != nil else { return "not installed: run `parley setup`" }
            if let state = runtime.readState() { return "installed; llama-server running on 127.0.0.1:\(state.port)" }
            return "installed; starts on first use"
        }
        let baseURL = engine.config.baseURL(of: provider, environment: engine.environment)
        var parts = [baseURL]
        if let variable = provider.apiKeyVariable {
            let set = !(engine.environment[variable] ?? "").isEmpty
            parts.append(set ? "key: \(variable) is set" : "key: \(variable) is NOT set")
        }
        if provider.format == .ollamaChat || baseURL.contains("127.0.0.1") || baseURL.contains("localhost") {
            parts.append(await reachable(baseURL) ? "reachable" : "not reachable")
        }
        return parts.joined(separator: "  ")
    }

    func reachable(_ baseURL: String) async -> Bool {
        let spec = HTTPRequestSpec(url: baseURL, method: "GET")
        let timeouts = TransportTimeouts(connect: .seconds(1), firstToken: .seconds(2), idle: .seconds(2))
        guard let response = try? await AsyncHTTPTransport.shared.send(spec, timeouts: timeouts) else { return false }
        do { for try await _ in response.body {} } catch {}
        return true
    }
}
