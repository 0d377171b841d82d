import Foundation
import Testing
import ParleyProviders
@testable import ParleyKit

@Suite struct ConfigTests {
    @Test func noFileMeansPresetsAndLocalDefault() throws {
        let config = try ParleyConfig.load(from: URL(fileURLWithPath: "/nonexistent/parley/config.toml"))
        #expect(config.defaultModel == "local:smollm2")
        #expect(Set(config.providerOrder) == ["local", "openai", "anthropic", "groq", "mistral", "openrouter", "ollama"])
        #expect(try config.resolve("local") == ModelRef(provider: "local", model: "smollm2"))
    }

    @Test func fullConfigParses() throws {
        let text = """
        # my setup
        default_model = "fast"

        [aliases]
        fast = "groq:llama-3.3-70b-versatile"
        smart = "anthropic:claude-sonnet-4-5"

        [local]
        context_size = 4096
        idle_shutdown_seconds = 60

        [providers.openai]
        idle_timeout = 30.5
        headers = { "OpenAI-Organization" = "org-1" }

        [providers.box]
        base_url = "http://127.0.0.1:8000/v1"
        api_key_env = "BOX_KEY"
        models = [
          "qwen2.5-7b",   # main
          'llama-3-8b',
        ]
        stream_options = false
        """
        let config = try ParleyConfig.parse(text, file: "config.toml")
        #expect(try config.resolve(config.defaultModel) == ModelRef(provider: "groq", model: "llama-3.3-70b-versatile"))
        #expect(try config.resolve("smart").provider == "anthropic")
        #expect(try config.resolve("box") == ModelRef(provider: "box", model: "qwen2.5-7b"))
        #expect(try config.resolve("llama-3-8b") == ModelRef(provider: "box", model: "llama-3-8b"))
        #expect(config.local.contextSize == 4096)
        let openai = try #require(config.providers["openai"])
        #expect(config.endpoint(for: ModelRef(provider: "openai", model: "gpt-4o-mini"), environment: [:]).timeouts.idle == .milliseconds(30_500))
        #expect(openai.headers.first?.0 == "OpenAI-Organization")
        let box = try #require(config.providers["box"])
        #expect(!box.dialect.sendsStreamOptions)
        // A custom provider's key is optional: with BOX_KEY unset the request goes without one.
        let endpoint = config.endpoint(for: ModelRef(provider: "box", model: "x"), environment: [:])
        #expect(!endpoint.requiresKey)
        #expect(endpoint.apiKey == nil)
        #expect(config.endpoint(for: ModelRef(provider: "box", model: "x"), environment: ["BOX_KEY": "s"]).apiKey == "s")
    }

    @Test(arguments: [
        ("default_model = 3\n", 1, "default_model: expected a string, found an integer"),
        ("\n\n[providers.openai]\nidle_timeout = \"soon\"\n", 4, "providers.openai.idle_timeout: expected a number of seconds, found a string"),
        ("[local]\ncontext_size = 10\n", 2, "local.context_size: expected at least 256, found 10"),
        ("defualt_model = \"x\"\n", 1, "unknown key 'defualt_model' in the top level"),
        ("[providers.mine]\nmodels = [\"a\"]\n", 1, "needs base_url"),
        ("[providers.mine]\nbase_url = \"ftp://x\"\n", 2, "expected an http:// or https:// URL"),
        ("[providers.mine]\nbase_url = \"http://x\"\nformat = \"grpc\"\n", 3, "expected one of openai, anthropic, ollama"),
        ("a = \"unterminated\n", 1, "not closed"),
        ("default_model = local\n", 1, "strings need quotes"),
        ("[aliases]\nx = \"a\"\n[aliases]\n", 3, "defined twice"),
        ("x = [1,\n2\n", 1, "never closed"),
        ("[ledger]\nbackend = \"mysql\"\n", 2, "ledger.backend: expected \"sqlite\" or \"postgres\""),
        ("[ledger]\nurl_env = \"MY URL\"\n", 2, "ledger.url_env: expected the name of an environment variable"),
        ("[ledger]\nuser = \"al ice\"\n", 2, "ledger.user: expected 1 to 64 letters"),
        ("[ledger]\npassword = \"x\"\n", 2, "unknown key 'password' in [ledger]"),
        ("[budget]\nscope = \"crew\"\n", 2, "budget.scope: expected \"team\" or \"user\""),
        ("[cache]\nbackend = \"redis\"\n", 2, "cache.backend: expected \"sqlite\" or \"postgres\""),
    ] as [(String, Int, String)])
    func badConfigNamesFileLineAndExpectation(_ text: String, _ line: Int, _ fragment: String) {
        do {
            _ = try ParleyConfig.parse(text, file: "/home/u/.config/parley/config.toml")
            Issue.record("expected an error for \(text)")
        } catch {
            #expect(error.line == line, "\(error.userMessage)")
            #expect(error.userMessage.hasPrefix("/home/u/.config/parley/config.toml:\(line): "))
            #expect(error.userMessage.contains(fragment), "\(error.userMessage)")
        }
    }

    @Test func unknownModelsAndProvidersSayWhatExists() throws {
        let config = ParleyConfig.builtIn
        #expect(throws: ModelResolutionError.self) { try config.resolve("nope:model") }
        do { _ = try config.resolve("gpt-9") } catch {
            #expect(error.userMessage.contains("provider:model"))
        }
        do { _ = try config.resolve("nope:model") } catch {
            #expect(error.userMessage.contains("known providers: local, openai"))
        }
        #expect(try config.resolve("openai:gpt-5-preview") == ModelRef(provider: "openai", model: "gpt-5-preview"))
    }

    @Test func baseURLEnvironmentVariablesAsTheOfficialClients() {
        let config = ParleyConfig.builtIn
        let env = ["OPENAI_BASE_URL": "http://proxy:9000/v1", "ANTHROPIC_BASE_URL": "http://proxy:9001", "OLLAMA_HOST": "0.0.0.0:11500"]
        #expect(config.endpoint(for: ModelRef(provider: "openai", model: "m"), environment: env).baseURL == "http://proxy:9000/v1")
        #expect(config.endpoint(for: ModelRef(provider: "anthropic", model: "m"), environment: env).baseURL == "http://proxy:9001")
        #expect(config.endpoint(for: ModelRef(provider: "ollama", model: "m"), environment: env).baseURL == "http://127.0.0.1:11500")
        #expect(config.endpoint(for: ModelRef(provider: "ollama", model: "m"), environment: ["OLLAMA_HOST": "https://gpu.lan"]).baseURL == "https://gpu.lan:443")
        #expect(config.endpoint(for: ModelRef(provider: "openai", model: "m"), environment: [:]).baseURL == "https://api.openai.com/v1")
    }

    @Test func missingKeyNamesTheVariable() {
        let endpoint = ParleyConfig.builtIn.endpoint(for: ModelRef(provider: "openai", model: "gpt-4o-mini"), environment: [:])
        #expect(endpoint.requiresKey)
        #expect(endpoint.missingKeyError().userMessage == "openai: OPENAI_API_KEY is not set; export it or pick another model with --model or /model")
        let groq = ParleyConfig.builtIn.endpoint(for: ModelRef(provider: "groq", model: "x"), environment: ["GROQ_API_KEY": "gsk"])
        #expect(groq.apiKey == "gsk")
    }

    @Test func tomlFeatures() throws {
        let table = try TOMLParser.parse("""
        a.b.c = 1
        "quoted key" = 'lit\\eral'
        multi = \"\"\"
        line one \\
          continued\"\"\"
        [[servers]]
        name = "x"
        [[servers]]
        name = "y"
        hex = 0xff
        neg = -1_000
        f = 6.5e-1
        """)
        guard case let .table(a)? = table["a"], case let .table(b)? = a["b"] else { Issue.record("dotted keys"); return }
        #expect(b["c"] == .integer(1, line: 1))
        #expect(table["quoted key"] == .string("lit\\eral", line: 2))
        #expect(table["multi"] == .string("line one continued", line: 3))
        guard case let .array(servers, _)? = table["servers"], case let .table(second) = servers[1] else { Issue.record("array of tables"); return }
        #expect(servers.count == 2)
        #expect(second["name"] == .string("y", line: 9))
        #expect(second["hex"] == .integer(255, line: 10))
        #expect(second["neg"] == .integer(-1000, line: 11))
        #expect(second["f"] == .float(0.65, line: 12))
    }

    /// Issue 15: tools are offered as `server__tool`, valid for every provider (1–64 of [a-zA-Z0-9_-]) and
    /// never two alike; `[mcp.servers]` reads with its lines named on errors; globs allow and deny.
    @Test func mcpNamesAndSettings() throws {
        let long = String(repeating: "x", count: 80)
        let names = MCPNames.offered([("time", "get_current_time"), ("my.srv", "do it!"), ("my_srv", "do_it_"), ("a", long), ("a", long + "y"),
                                      ("time", "get_current_time")])
        #expect(names[0] == "time__get_current_time")
        #expect(Set(names).count == names.count, "\(names)")
        for name in names {
            #expect((1...64).contains(name.count) && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }, "\(name)")
        }
        let config = try ParleyConfig.parse("""
            [mcp]
            max_tool_rounds = 3
            [mcp.servers.files]
            command = "npx"
            args = ["-y", "server"]
            approve = "never"
            allow = ["read_*"]
            deny = ["read_secret?"]
            call_timeout = 5
            [mcp.servers.files.env]
            ROOT = "/tmp"
            """, file: "c.toml")
        let server = try #require(config.mcp.server("files"))
        #expect(config.mcp.maxToolRounds == 3 && server.args == ["-y", "server"] && server.approve == .never && server.env == ["ROOT": "/tmp"])
        #expect(server.callTimeout == .seconds(5))
        #expect(server.offers("read_file") && !server.offers("write_file") && !server.offers("read_secrets") && server.offers("read_secrets_list"))
        let missing = #expect(throws: ConfigError.self) { try ParleyConfig.parse("[mcp.servers.x]\nargs = []\n", file: "c.toml") }
        #expect(missing?.message.contains("command is missing") == true && missing?.line == 1, "\(String(describing: missing))")
        let badApprove = #expect(throws: ConfigError.self) { try ParleyConfig.parse("[mcp.servers.x]\ncommand = \"a\"\napprove = \"maybe\"\n", file: "c.toml") }
        #expect(badApprove?.message == "mcp.servers.x.approve: expected ask, auto or never, found \"maybe\"" && badApprove?.line == 3)
    }
}
