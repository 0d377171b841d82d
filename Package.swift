// swift-tools-version:6.1
import Foundation
import PackageDescription

let packageDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path

let package = Package(
    name: "Parley",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "parley", targets: ["parley"]),
        .executable(name: "parley-bench", targets: ["parley-bench"]),
        .executable(name: "parley-mcp", targets: ["parley-mcp"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/stencilproject/Stencil", from: "0.15.1"),
        .package(url: "https://github.com/modelcontextprotocol/swift-sdk", from: "0.12.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
    ],
    targets: [
        // Plain value types; no I/O.
        .target(name: "ParleyCore"),
        // Talking to LLM APIs: transport, decoders, wire formats.
        .target(
            name: "ParleyProviders",
            dependencies: [
                "ParleyCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // The application core shared by `ask` and the screen.
        .target(name: "ParleyKit", dependencies: [
            "ParleyProviders", "ParleyCore",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Stencil", package: "Stencil"),
        ]),
        // `parley serve`: the OpenAI- and Anthropic-compatible gateway, on the same turn as `ask` and the screen.
        .target(name: "ParleyServe", dependencies: [
            "ParleyKit", "ParleyProviders", "ParleyCore",
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        // Holds the MCP servers, in a process of its own: the official Swift SDK links FoundationNetworking
        // (libcurl, GnuTLS, libcrypto, ICU), which the parley binary itself then never loads.
        .executableTarget(
            name: "parley-mcp",
            dependencies: [
                "ParleyKit", "ParleyCore",
                .product(name: "MCP", package: "swift-sdk"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The ncursesw system library, with a shim that turns its macros into functions.
        .systemLibrary(name: "CNcursesw", pkgConfig: "ncursesw", providers: [.apt(["libncurses-dev"])]),
        // The chat screen: state, reducer, layout and renderer are pure; one adapter touches ncurses.
        .target(name: "ParleyTUI", dependencies: ["ParleyKit", "ParleyProviders", "ParleyCore", "CNcursesw"]),
        .executableTarget(
            name: "parley",
            dependencies: [
                "ParleyTUI", "ParleyServe", "ParleyKit", "ParleyProviders", "ParleyCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            // Fewer pages touched at start (README, Measured; scripts/build-release links Swift's libraries
            // in): lld, no export of every symbol, relative relocations packed (RELR, glibc 2.36), and the
            // functions a start runs placed together (link/parley.order, from scripts/make-order-file).
            linkerSettings: [.unsafeFlags([
                "-use-ld=lld",
                "-Xlinker", "--no-export-dynamic", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
                "-Xlinker", "--symbol-ordering-file=\(packageDirectory)/link/parley.order", "-Xlinker", "--no-warn-symbol-ordering",
            ])]
        ),
        // Loopback HTTP servers that play providers, for tests and benchmarks.
        .target(
            name: "ParleyTestSupport",
            dependencies: [
                "ParleyCore", "ParleyProviders", "ParleyKit",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "parley-bench",
            dependencies: ["ParleyTestSupport", "ParleyKit", "ParleyProviders", "ParleyCore", "ParleyTUI",
                           .product(name: "AsyncHTTPClient", package: "async-http-client")]
        ),
        .testTarget(
            name: "ParleyUnitTests",
            dependencies: ["ParleyCore", "ParleyProviders", "ParleyKit", "ParleyServe", "ParleyTestSupport",
                           .product(name: "GRDB", package: "GRDB.swift")],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "ParleyTUITests",
            dependencies: ["ParleyTUI", "ParleyCore", "ParleyKit", "ParleyTestSupport"]
        ),
        .testTarget(
            name: "ParleyEndToEndTests",
            dependencies: ["ParleyCore", "ParleyProviders", "ParleyKit", "ParleyTestSupport"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
