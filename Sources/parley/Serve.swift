import ArgumentParser
import Foundation
import ParleyCore
import ParleyKit
import ParleyServe

/// `parley serve`: the gateway (see `Gateway`).
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve every configured model over an OpenAI-compatible (and Anthropic-compatible) HTTP API, with Parley's cache, budgets, retries, fallback and ledger.",
        discussion: """
            Endpoints: POST /v1/chat/completions, POST /v1/messages, GET /v1/models, GET /health.
            Tokens: PARLEY_SERVE_TOKENS="alice:TOKEN,ci:TOKEN2" or --tokens-file FILE (mode 0600, one "NAME TOKEN" per line); \
            each request's ledger row carries the token's name. Without tokens the gateway listens on loopback only.
            """
    )

    @Option(help: "The address to listen on.") var host = "127.0.0.1"
    @Option(help: "The port (0: any free port; the line on stdout names it).") var port = 8080
    @Option(name: .customLong("tokens-file"), help: "A file of NAME TOKEN lines, readable only by you (0600).") var tokensFile: String?
    @Option(name: .customLong("max-body-mb"), help: "The largest request body accepted, in MB.") var maxBodyMB = 8
    @Option(name: .customLong("max-connections"), help: "Connections served at once; more wait to be accepted.") var maxConnections = 512

    func run() async throws {
        do {
            guard (0...65_535).contains(port) else { throw ValidationError("--port: expected 0 to 65535") }
            guard (1...1024).contains(maxBodyMB) else { throw ValidationError("--max-body-mb: expected 1 to 1024") }
            guard (1...100_000).contains(maxConnections) else { throw ValidationError("--max-connections: expected 1 to 100000") }
            let engine = try ChatEngine.fromEnvironment()
            var tokens = try GatewayTokens.parse(environment: engine.environment["PARLEY_SERVE_TOKENS"] ?? "", source: "PARLEY_SERVE_TOKENS")
            if let tokensFile { tokens.merge(try GatewayTokens.load(tokensFile)) { first, _ in first } }
            let settings = Gateway.Settings(host: host, port: port, tokens: tokens, maxBodyBytes: maxBodyMB << 20, maxConnections: maxConnections)
            let gateway = try Gateway(engine: engine, settings: settings) { line in Terminal.standardError.say("parley serve: \(line)\n") }
            let host = self.host, names = Set(tokens.values).sorted()
            try await gateway.run { port in
                Terminal.standardOutput.line("parley serve: listening on http://\(host.contains(":") ? "[\(host)]" : host):\(port)/v1 "
                    + (names.isEmpty ? "(no tokens: loopback only)" : "(\(names.count) token\(names.count == 1 ? "" : "s"): \(names.joined(separator: ", ")))"))
            }
        } catch let error as ValidationError {
            throw error
        } catch {
            throw fail(error)
        }
    }
}

/// Bearer tokens and the names they stand for, from the environment or a private file.
enum GatewayTokens {
    struct Problem: UserFacingError {
        var message: String
        var userMessage: String { "parley serve: \(message)" }
    }

    /// `name:token` pairs separated by commas, spaces or newlines.
    static func parse(environment text: String, source: String) throws -> [String: String] {
        var tokens: [String: String] = [:]
        for item in text.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\n" }) {
            guard let colon = item.firstIndex(of: ":") else { throw Problem(message: "\(source): expected name:token pairs separated by commas") }
            try add(String(item[..<colon]), String(item[item.index(after: colon)...]), to: &tokens, source: source)
        }
        return tokens
    }

    /// One `NAME TOKEN` per line, `#` comments; the file must be a regular file only its owner can read.
    static func load(_ path: String) throws -> [String: String] {
        var info = stat()
        guard lstat(path, &info) == 0 else { throw Problem(message: "the tokens file \(path) cannot be read (\(String(cString: strerror(errno))))") }
        guard info.st_mode & S_IFMT == S_IFREG else { throw Problem(message: "the tokens file \(path) is not a regular file") }
        guard info.st_mode & 0o077 == 0, info.st_uid == geteuid() else {
            throw Problem(message: "the tokens file \(path) can be read by others or belongs to another user; chmod 600 it")
        }
        let text = String(decoding: try PrivateFile.read(path, limit: 1 << 20), as: UTF8.self)
        var tokens: [String: String] = [:]
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if fields.isEmpty || fields[0].hasPrefix("#") { continue }
            guard fields.count == 2 else { throw Problem(message: "\(path):\(number + 1): expected NAME TOKEN") }
            try add(String(fields[0]), String(fields[1]), to: &tokens, source: "\(path):\(number + 1)")
        }
        return tokens
    }

    static func add(_ name: String, _ token: String, to tokens: inout [String: String], source: String) throws {
        guard UserName.isValid(name) else { throw Problem(message: "\(source): a token's name must be 1 to 64 letters, digits, '.', '_', '@' or '-'") }
        guard token.utf8.count >= 16, token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw Problem(message: "\(source): the token for \(name) must be at least 16 printable characters (openssl rand -hex 24 makes one)")
        }
        guard tokens[token] == nil else { throw Problem(message: "\(source): the token for \(name) is given twice") }
        tokens[token] = name
    }
}
