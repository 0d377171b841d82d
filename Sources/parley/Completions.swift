import ArgumentParser
import Foundation
import ParleyKit

/// Dynamic shell completions (`parley --generate-completion-script bash|zsh|fish` installs the script;
/// the shell then runs parley to ask for candidates): model names and aliases, session ids, template
/// names, read from the user's own config and files. Anything that fails to load completes nothing.
enum Completions {
    /// Candidates that start with what is typed so far.
    static func matching(_ candidates: [String], _ prefix: String) -> [String] {
        candidates.filter { $0.hasPrefix(prefix) }
    }

    static let models = CompletionKind.custom { _, _, prefix in
        guard let engine = try? ChatEngine.fromEnvironment() else { return [] }
        var names = ["auto"]
        for name in engine.config.providerOrder {
            guard let provider = engine.config.providers[name] else { continue }
            names += provider.models.map { "\(name):\($0)" }
        }
        names += engine.config.aliases.keys.sorted()
        return matching(names, prefix)
    }

    static let sessions = CompletionKind.custom { _, _, prefix in
        guard let engine = try? ChatEngine.fromEnvironment() else { return [] }
        let store = SessionStore(directory: SessionStore.directory(paths: engine.paths, environment: engine.environment, override: nil))
        return matching(store.summaries().sessions.map(\.id), prefix)
    }

    static let templates = CompletionKind.custom { _, _, prefix in
        guard let engine = try? ChatEngine.fromEnvironment() else { return [] }
        return matching(TemplateLibrary(paths: engine.paths).names().map(\.name), prefix)
    }
}
