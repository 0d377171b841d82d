import Foundation
import ParleyCore
import ParleyKit

/// A colour as a theme names it: the terminal's default, or one of the 256 xterm colours.
public enum ThemeColor: Equatable, Sendable {
    case terminalDefault
    case indexed(Int)

    static let names: [String: Int] = [
        "black": 0, "red": 1, "green": 2, "yellow": 3, "blue": 4, "magenta": 5, "cyan": 6, "white": 7,
        "bright_black": 8, "gray": 8, "grey": 8, "bright_red": 9, "bright_green": 10, "bright_yellow": 11,
        "bright_blue": 12, "bright_magenta": 13, "bright_cyan": 14, "bright_white": 15,
    ]

    /// The nearest of the first `count` colours (8 or 16), for terminals with fewer than 256.
    public func reduced(to count: Int) -> ThemeColor {
        guard case let .indexed(index) = self, index >= count else { return self }
        let (r, g, b) = Self.rgb(index)
        var best = 0, bestDistance = Int.max
        for candidate in 0..<count {
            let (cr, cg, cb) = Self.rgb(candidate)
            let distance = (r - cr) * (r - cr) + (g - cg) * (g - cg) + (b - cb) * (b - cb)
            if distance < bestDistance { best = candidate; bestDistance = distance }
        }
        return .indexed(best)
    }

    static func rgb(_ index: Int) -> (Int, Int, Int) {
        let basic: [(Int, Int, Int)] = [
            (0, 0, 0), (205, 0, 0), (0, 205, 0), (205, 205, 0), (0, 0, 238), (205, 0, 205), (0, 205, 205), (229, 229, 229),
            (127, 127, 127), (255, 0, 0), (0, 255, 0), (255, 255, 0), (92, 92, 255), (255, 0, 255), (0, 255, 255), (255, 255, 255),
        ]
        if index < 16 { return basic[index] }
        if index < 232 {
            let i = index - 16
            let steps = [0, 95, 135, 175, 215, 255]
            return (steps[i / 36], steps[(i / 6) % 6], steps[i % 6])
        }
        let gray = 8 + (index - 232) * 10
        return (gray, gray, gray)
    }

    static func nearest(red: Int, green: Int, blue: Int) -> Int {
        var best = 16, bestDistance = Int.max
        for index in 16..<256 {
            let (r, g, b) = rgb(index)
            let distance = (r - red) * (r - red) + (g - green) * (g - green) + (b - blue) * (b - blue)
            if distance < bestDistance { best = index; bestDistance = distance }
        }
        return best
    }
}

/// How one role is drawn.
public struct RoleStyle: Equatable, Sendable {
    public var foreground: ThemeColor = .terminalDefault
    public var background: ThemeColor = .terminalDefault
    public var bold = false
    public var italic = false
    public var underline = false
    public var reverse = false
    public var dim = false

    public init() {}
}

/// A theme: a style per role. Loaded from TOML; a broken file names the file and the key.
public struct Theme: Equatable, Sendable {
    public var name: String
    public var styles: [StyleRole: RoleStyle]

    public func style(_ role: StyleRole) -> RoleStyle { styles[role] ?? styles[.text] ?? RoleStyle() }

    /// Works on any terminal, colour or not: attributes only.
    public static let fallback: Theme = {
        var styles: [StyleRole: RoleStyle] = [:]
        func set(_ role: StyleRole, _ change: (inout RoleStyle) -> Void) {
            var style = RoleStyle()
            change(&style)
            styles[role] = style
        }
        set(.text) { _ in }
        for role in [StyleRole.userHeader, .assistantHeader, .heading, .bold, .bullet, .prompt] { set(role) { $0.bold = true } }
        set(.italic) { $0.italic = true }
        for role in [StyleRole.inlineCode, .codeBlock, .codeLabel] { set(role) { $0.underline = role != .codeBlock } }
        for role in [StyleRole.dim, .marker, .note, .quote] { set(role) { $0.dim = true } }
        set(.error) { $0.bold = true; $0.underline = true }
        for role in [StyleRole.status, .statusAccent, .statusWarn, .newBelow, .overlaySelected] { set(role) { $0.reverse = true } }
        set(.statusAccent) { $0.reverse = true; $0.bold = true }
        set(.statusWarn) { $0.reverse = true; $0.bold = true }
        return Theme(name: "fallback", styles: styles)
    }()

    public static func parse(_ text: String, file: String) throws(ConfigError) -> Theme {
        let table: TOMLTable
        do { table = try TOMLParser.parse(text) } catch { throw ConfigError(file: file, line: error.line, message: error.message) }
        var theme = Theme(name: URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent, styles: Theme.fallback.styles)
        for (key, value) in table.entries {
            switch (key, value) {
            case let ("name", .string(name, _)): theme.name = name
            case let ("roles", .table(roles)):
                for (roleName, body) in roles.entries {
                    guard let role = StyleRole(rawValue: roleName) else {
                        throw ConfigError(file: file, line: body.line, message: "roles.\(roleName): unknown role; expected one of: \(StyleRole.allCases.map(\.rawValue).joined(separator: ", "))")
                    }
                    guard case let .table(fields) = body else {
                        throw ConfigError(file: file, line: body.line, message: "roles.\(roleName): expected a table like { fg = 252, bold = true }")
                    }
                    theme.styles[role] = try parseStyle(fields, key: "roles.\(roleName)", file: file)
                }
            default:
                throw ConfigError(file: file, line: value.line, message: "\(key): expected name = \"...\" or a [roles] table")
            }
        }
        return theme
    }

    static func parseStyle(_ fields: TOMLTable, key: String, file: String) throws(ConfigError) -> RoleStyle {
        var style = RoleStyle()
        for (name, value) in fields.entries {
            switch name {
            case "fg": style.foreground = try parseColor(value, key: "\(key).fg", file: file)
            case "bg": style.background = try parseColor(value, key: "\(key).bg", file: file)
            case "bold", "italic", "underline", "reverse", "dim":
                guard case let .bool(flag, _) = value else {
                    throw ConfigError(file: file, line: value.line, message: "\(key).\(name): expected true or false, found \(value.kindName)")
                }
                switch name {
                case "bold": style.bold = flag
                case "italic": style.italic = flag
                case "underline": style.underline = flag
                case "reverse": style.reverse = flag
                default: style.dim = flag
                }
            default:
                throw ConfigError(file: file, line: value.line, message: "\(key).\(name): unknown key; expected fg, bg, bold, italic, underline, reverse or dim")
            }
        }
        return style
    }

    static func parseColor(_ value: TOMLValue, key: String, file: String) throws(ConfigError) -> ThemeColor {
        switch value {
        case let .integer(index, line):
            guard (0...255).contains(index) else { throw ConfigError(file: file, line: line, message: "\(key): expected a colour 0–255, found \(index)") }
            return .indexed(index)
        case let .string(text, line):
            let name = text.lowercased()
            if name == "default" || name == "none" { return .terminalDefault }
            if let index = ThemeColor.names[name] { return .indexed(index) }
            if name.hasPrefix("#"), name.count == 7, let rgb = Int(name.dropFirst(), radix: 16) {
                return .indexed(ThemeColor.nearest(red: rgb >> 16, green: (rgb >> 8) & 0xFF, blue: rgb & 0xFF))
            }
            throw ConfigError(file: file, line: line, message: "\(key): unknown colour \"\(text)\"; expected 0–255, a name like \"bright_blue\", \"#rrggbb\" or \"default\"")
        default:
            throw ConfigError(file: file, line: value.line, message: "\(key): expected a colour, found \(value.kindName)")
        }
    }
}

/// Finds themes: the user's in `$XDG_CONFIG_HOME/parley/themes`, then the built-in ones in the repo's
/// `themes/` (found beside the build, or at `PARLEY_THEMES_DIR`).
public struct ThemeStore: Sendable {
    public var directories: [URL]

    public init(configDirectory: URL, environment: [String: String] = ProcessInfo.processInfo.environment, executable: String) {
        var directories = [configDirectory.appendingPathComponent("themes")]
        if let explicit = environment["PARLEY_THEMES_DIR"], !explicit.isEmpty { directories.append(URL(fileURLWithPath: explicit)) }
        var directory = URL(fileURLWithPath: executable).deletingLastPathComponent()
        for _ in 0..<6 {
            let candidate = directory.appendingPathComponent("themes")
            if FileManager.default.fileExists(atPath: candidate.appendingPathComponent("dark.toml").path) {
                directories.append(candidate)
                break
            }
            directory.deleteLastPathComponent()
        }
        self.directories = directories
    }

    public var names: [String] {
        var seen = Set<String>()
        var names: [String] = []
        for directory in directories {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
            for file in files.sorted() where file.hasSuffix(".toml") {
                let name = String(file.dropLast(5))
                if seen.insert(name).inserted { names.append(name) }
            }
        }
        return names
    }

    /// Whether `name` can be a theme: letters, digits, `-` and `_` (so `/theme ../../x` or a
    /// `PARLEY_THEME` with a path never reads a file outside the theme directories).
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64 && name.unicodeScalars.allSatisfy {
            $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-" || $0 == "_")
        }
    }

    /// Loads a theme by name; an error names the file and the key.
    public func load(_ name: String) throws -> Theme {
        guard Self.isValidName(name) else {
            throw ConfigError(file: "theme '\(TerminalSanitizer.line(name, limit: 80))'", line: nil,
                              message: "is not a theme name (letters, digits, '-' and '_'); themes: \(names.joined(separator: ", "))")
        }
        for directory in directories {
            let file = directory.appendingPathComponent("\(name).toml")
            guard let data = try? PrivateFile.read(file.path, limit: 1 << 20) else { continue }
            return try Theme.parse(String(decoding: data, as: UTF8.self), file: file.path)
        }
        throw ConfigError(file: "\(name).toml", line: nil, message: "no such theme; themes: \(names.joined(separator: ", "))")
    }
}
