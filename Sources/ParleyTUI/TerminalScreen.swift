import CNcursesw
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What the chat loop draws on: the terminal (`TerminalScreen`), or a recording screen in tests.
public protocol Screen: AnyObject {
    var size: (width: Int, height: Int) { get }
    /// Paints the frame (only what changed, on a terminal).
    func draw(_ frame: Frame)
    /// Reads the size again after a resize.
    func refreshSize() -> (width: Int, height: Int)
    /// The next frame is painted whole (Ctrl-L, after a suspend).
    func invalidate()
    func setTheme(_ theme: Theme)
    /// Gives the terminal back for a while ($EDITOR), and takes it again.
    func suspend()
    func resume()
    /// Ctrl-Z: back to the shell until `fg`.
    func suspendToShell()
    /// Writes Parley's own OSC 52 sequence (see `Clipboard`) to the terminal.
    func copyToClipboard(_ sequence: String)
}

/// The only code that talks to ncurses: enters the alternate screen, paints the cells that changed
/// since the last frame, and restores the terminal on every way out. Used from one thread only.
public final class TerminalScreen: Screen {
    private var previous: CellGrid?
    private var theme: Theme
    private var colorLimit: Int
    private var pairs: [Int64: Int32] = [:]
    private var active = false
    private var forceFull = true

    /// Sequences that turn on bracketed paste and SGR mouse reporting (wheel), and turn them off.
    static let enableModes = "\u{1B}[?2004h\u{1B}[?1000h\u{1B}[?1006h"
    static let disableModes = "\u{1B}[?2004l\u{1B}[?1000l\u{1B}[?1006l"

    /// Call after `TerminalCheck.prepare` chose the full screen (it set the locale and TERM).
    public init(theme: Theme, noColor: Bool) {
        self.theme = theme
        TerminalGuard.saveTerminalState()
        initscr()
        raw()
        noecho()
        nonl()
        intrflush(parley_stdscr(), false)
        keypad(parley_stdscr(), false)
        if !noColor, has_colors() {
            start_color()
            use_default_colors()
            let colors = Int(parley_colors())
            colorLimit = colors >= 256 ? 256 : colors >= 16 ? 16 : colors >= 8 ? 8 : 0
        } else {
            colorLimit = 0
        }
        active = true
        programMode = termios()
        tcgetattr(STDIN_FILENO, &programMode)
        TerminalGuard.install()
        TerminalGuard.writeRaw(Self.enableModes)
    }

    /// The terminal settings the screen runs in, put back exactly on resume: after `fg` the shell
    /// restores the settings it saw when the job stopped (the cooked ones endwin left), and ncurses'
    /// own restore does not bring back everything (Enter arrived as a newline, not a send).
    private var programMode = termios()

    public var size: (width: Int, height: Int) { (Int(parley_cols()), Int(parley_lines())) }

    /// Reads the real size after SIGWINCH and tells ncurses.
    public func refreshSize() -> (width: Int, height: Int) {
        var window = winsize()
        if ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &window) == 0, window.ws_row > 0, window.ws_col > 0 {
            resizeterm(Int32(window.ws_row), Int32(window.ws_col))
        }
        forceFull = true
        return size
    }

    public func setTheme(_ theme: Theme) {
        self.theme = theme
        pairs = [:]
        forceFull = true
    }

    public func invalidate() {
        forceFull = true
        clearok(parley_stdscr(), true)
    }

    /// Paints what changed since the last frame, then lets ncurses send the difference.
    public func draw(_ frame: Frame) {
        let grid = frame.grid
        let full = forceFull || previous?.width != grid.width || previous?.height != grid.height
        if full { erase() }
        // A streaming reply moves the conversation up a row or two per frame: every cell of the pane
        // changes, and putting each one was most of a frame's cost. When the top rows are the last
        // frame's rows moved up, ncurses scrolls that region and only the rows that came in are put.
        var before = previous
        if !full, let previous, let (rows, by) = Self.scroll(from: previous, to: grid) {
            wsetscrreg(parley_stdscr(), 0, Int32(rows - 1))
            scrollok(parley_stdscr(), true)
            wscrl(parley_stdscr(), Int32(by))
            scrollok(parley_stdscr(), false)
            wsetscrreg(parley_stdscr(), 0, Int32(grid.height - 1))
            before = previous.scrolled(rows: rows, by: by)
        }
        for row in 0..<grid.height {
            for column in 0..<grid.width {
                let cell = grid[row, column]
                if cell.isContinuation { continue }
                if !full, let before, before[row, column] == cell,
                   column + 1 >= grid.width || before[row, column + 1] == grid[row, column + 1] { continue }
                put(cell, row: row, column: column, wide: column + 1 < grid.width && grid[row, column + 1].isContinuation)
            }
        }
        if let cursor = frame.cursor {
            move(Int32(cursor.row), Int32(cursor.column))
            curs_set(1)
        } else {
            curs_set(0)
        }
        wnoutrefresh(parley_stdscr())
        doupdate()
        previous = grid
        forceFull = false
    }

    /// The region (rows 0..<rows) and distance by which `grid`'s top is `previous`'s moved up, when at
    /// least half the screen is such rows; nil otherwise.
    static func scroll(from previous: CellGrid, to grid: CellGrid) -> (rows: Int, by: Int)? {
        let height = grid.height
        guard height >= 4 else { return nil }
        for by in 1...min(8, height / 2) {
            var same = 0
            while same + by < height, grid.sameRow(same, as: previous, row: same + by) { same += 1 }
            if same >= height / 2 { return (same + by, by) }
        }
        return nil
    }

    private func put(_ cell: Cell, row: Int, column: Int, wide: Bool = false) {
        let style = theme.style(cell.role)
        var attributes = parley_a_normal()
        if style.bold { attributes |= parley_a_bold() }
        if style.italic { attributes |= parley_a_italic() }
        if style.underline { attributes |= parley_a_underline() }
        if style.dim { attributes |= parley_a_dim() }
        if style.reverse { attributes |= parley_a_reverse() }
        var pair: Int32 = 0
        if colorLimit > 0 {
            pair = colorPair(foreground: style.foreground, background: style.background)
        } else if cell.role == .codeBlock || cell.role == .inlineCode {
            attributes |= parley_a_underline()
        }
        var scalars = cell.text.unicodeScalars.map { wchar_t(bitPattern: $0.value) } + [0]
        // A zero-width joiner is never sent: terminals join it to whatever comes next (tmux drew it before
        // the following flag after a redraw), so a ZWJ sequence is drawn as its first emoji, the same way
        // on every path.
        let joined = cell.text.unicodeScalars.contains("\u{200D}")
        if joined || parley_put_cell(Int32(row), Int32(column), &scalars, attributes, pair) == ERR, let first = cell.text.unicodeScalars.first {
            // ncurses takes one spacing character per cell; a ZWJ sequence falls back to its first emoji.
            var single = [wchar_t(bitPattern: first.value), 0]
            _ = parley_put_cell(Int32(row), Int32(column), &single, attributes, pair)
            // A flag (two regional indicators) is two columns here but its first half one column to
            // curses: the second column is blanked, or it kept whatever an earlier frame left there.
            if wide, parley_wcwidth(wchar_t(bitPattern: first.value)) == 1 {
                var blank: [wchar_t] = [0x20, 0]
                _ = parley_put_cell(Int32(row), Int32(column + 1), &blank, attributes, pair)
            }
        }
    }

    private func colorPair(foreground: ThemeColor, background: ThemeColor) -> Int32 {
        func number(_ color: ThemeColor) -> Int32 {
            switch color.reduced(to: colorLimit) {
            case .terminalDefault: return -1
            case let .indexed(index): return Int32(index)
            }
        }
        let fg = number(foreground), bg = number(background)
        if fg == -1 && bg == -1 { return 0 }
        let key = Int64(fg) << 32 | Int64(UInt32(bitPattern: bg))
        if let existing = pairs[key] { return existing }
        let next = Int32(pairs.count + 1)
        guard next < parley_color_pairs() else { return 0 }
        init_extended_pair(next, fg, bg)
        pairs[key] = next
        return next
    }

    public func copyToClipboard(_ sequence: String) {
        // After the frame ncurses has sent: the sequence goes straight to the terminal and moves nothing.
        TerminalGuard.writeRaw(sequence)
    }

    /// Gives the terminal back (for $EDITOR), then takes it again with `resume`.
    public func suspend() {
        TerminalGuard.writeRaw(Self.disableModes)
        endwin()
    }

    public func resume() {
        refresh()
        tcsetattr(STDIN_FILENO, TCSADRAIN, &programMode)
        TerminalGuard.writeRaw(Self.enableModes)
        invalidate()
    }

    /// Ctrl-Z or SIGTSTP: the terminal goes back to the shell's state and the process stops, as the
    /// shell expects of a job; it returns after `fg` (SIGCONT), with the screen taken again.
    /// SIGSTOP, not SIGTSTP: SIGTSTP is caught (to get here), and putting its default back for a moment
    /// races with its delivery to another thread; SIGSTOP stops every thread before `kill` returns.
    public func suspendToShell() {
        suspend()
        kill(getpid(), SIGSTOP)
        // Stopped here until SIGCONT.
        resume()
    }

    /// Leaves the alternate screen and restores the terminal as it was. Safe to call twice.
    public func restore() {
        guard active else { return }
        active = false
        TerminalGuard.writeRaw(Self.disableModes)
        endwin()
        TerminalGuard.uninstall()
    }
}

/// Decides, before ncurses starts, whether this terminal gets the full screen: a UTF-8 locale for the
/// screen's text, and a terminfo entry that can move the cursor. Otherwise the line chat, with the reason.
public enum TerminalCheck {
    public enum Decision: Equatable, Sendable {
        /// The screen; `notes` say what was adjusted (a locale, a TERM fallback).
        case screen(notes: [String])
        /// The line chat; `reason` is one line for stderr.
        case lineChat(reason: String)
    }

    /// Sets the process's locale (and TERM when it falls back) for the screen; changes nothing else.
    public static func prepare(environment: [String: String]) -> Decision {
        var notes: [String] = []
        setlocale(LC_ALL, "")
        if !isUTF8() {
            let shown = ["LC_ALL", "LC_CTYPE", "LANG"].compactMap { name in environment[name].flatMap { $0.isEmpty ? nil : "\(name)=\($0)" } }.first ?? "no LANG"
            let candidates: [String] = ["C.UTF-8", "C.utf8", "en_US.UTF-8", "en_US.utf8"]
            guard let chosen = candidates.first(where: { name in setlocale(LC_CTYPE, name) != nil && isUTF8() }) else {
                return .lineChat(reason: "the locale (\(shown)) is not UTF-8 and no UTF-8 locale is installed, so the screen could not show or read non-ASCII text; using the line chat (install one, e.g. apt-get install locales, and set LANG=C.UTF-8)")
            }
            notes.append("the locale (\(shown)) is not UTF-8; the screen uses \(chosen) so no text is lost")
        }
        let term = environment["TERM"] ?? ""
        guard !term.isEmpty else { return .lineChat(reason: "TERM is not set, so the screen cannot be drawn; using the line chat (set TERM, e.g. TERM=xterm-256color)") }
        switch parley_term_check(term) {
        case 1:
            return .screen(notes: notes)
        case 2:
            return .lineChat(reason: "TERM=\(term) cannot move the cursor, so the full screen cannot be drawn; using the line chat")
        default:
            for candidate in fallbacks(for: term) where parley_term_check(candidate) == 1 {
                setenv("TERM", candidate, 1)
                notes.append("TERM=\(term) has no terminfo entry here; drawing as \(candidate)")
                return .screen(notes: notes)
            }
            return .lineChat(reason: "TERM=\(term) has no terminfo entry here; using the line chat (for the full screen set TERM to one `toe -a` lists, e.g. TERM=xterm-256color)")
        }
    }

    static func isUTF8() -> Bool {
        guard let codeset = parley_codeset() else { return false }
        let name = String(cString: codeset).lowercased()
        return name == "utf-8" || name == "utf8"
    }

    /// Close known entries for an unknown name, as other terminal programs guess: the family
    /// (`xterm-kitty` → `xterm-256color`, `screen.xterm-new` → `screen`), then the common defaults for
    /// names that say they have 256 colours.
    static func fallbacks(for term: String) -> [String] {
        var candidates: [String] = []
        let wide = term.contains("256") || term.contains("direct") || term.contains("truecolor")
        for family in ["xterm", "screen", "tmux", "rxvt", "linux", "vt220", "vt100"] where term.hasPrefix(family) {
            if wide { candidates.append(family + "-256color") }
            candidates.append(family)
        }
        let stem = term.split(whereSeparator: { $0 == "-" || $0 == "." }).first.map(String.init) ?? term
        if stem != term { candidates.append(stem) }
        if wide { candidates += ["xterm-256color", "screen-256color"] }
        return candidates
    }
}

/// Restores the terminal when the process dies in a way Swift code cannot catch (a trap, a crash signal),
/// using only async-signal-safe calls: write the reset sequences and put back the saved termios.
enum TerminalGuard {
    nonisolated(unsafe) static var saved = termios()
    nonisolated(unsafe) static var hasSaved = false
    /// True while the screen is ours; the emergency restore does nothing otherwise.
    nonisolated(unsafe) static var armed = false
    /// SIGQUIT too: raw mode turns Ctrl-\ off, but `kill -QUIT` from outside still ends the process.
    static let crashSignals = [SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGABRT, SIGFPE, SIGQUIT]

    static func saveTerminalState() {
        hasSaved = tcgetattr(STDIN_FILENO, &saved) == 0
    }

    static func writeRaw(_ text: String) {
        var text = text
        text.withUTF8 { _ = Glibc.write(STDOUT_FILENO, $0.baseAddress, $0.count) }
    }

    static func install() {
        armed = true
        for signalNumber in crashSignals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { signalNumber in
                TerminalGuard.emergencyRestore()
                signal(signalNumber, SIG_DFL)
                raise(signalNumber)
            }
            action.sa_flags = Int32(bitPattern: UInt32(SA_RESETHAND))
            sigaction(signalNumber, &action, nil)
        }
        atexit { TerminalGuard.emergencyRestore() }
    }

    static func uninstall() {
        armed = false
        for signalNumber in crashSignals { signal(signalNumber, SIG_DFL) }
    }

    /// Async-signal-safe: leave the alternate screen, show the cursor, turn modes off, restore termios.
    static func emergencyRestore() {
        guard armed else { return }
        armed = false
        let reset = "\u{1B}[?2004l\u{1B}[?1000l\u{1B}[?1006l\u{1B}[0m\u{1B}[?25h\u{1B}[?1049l"
        reset.utf8CString.withUnsafeBufferPointer { buffer in
            _ = Glibc.write(STDOUT_FILENO, buffer.baseAddress, buffer.count - 1)
        }
        if hasSaved { tcsetattr(STDIN_FILENO, TCSANOW, &saved) }
    }
}
