import Foundation
import ParleyCore
import ParleyKit

/// A frame: the cells, and where the terminal cursor goes.
public struct Frame: Equatable, Sendable {
    public var grid: CellGrid
    public var cursor: (row: Int, column: Int)?

    public static func == (lhs: Frame, rhs: Frame) -> Bool {
        lhs.grid == rhs.grid && lhs.cursor?.row == rhs.cursor?.row && lhs.cursor?.column == rhs.cursor?.column
    }
}

/// The input wrapped to the screen: rows of graphemes after the prompt, and where the cursor is.
/// Only the rows that can be shown are laid out (the cursor's line and its neighbours), so a frame
/// costs the same with a one-line draft and with a 1 MB paste.
public enum InputLayout {
    public static let promptWidth = 2

    public struct Window {
        public var rows: [[Character]]
        /// Within `rows`.
        public var cursor: (row: Int, column: Int)
        /// The first row is the input's first row (it gets the prompt).
        public var startsAtTop: Bool
    }

    /// Up to `limit` rows around the cursor, as the input area shows them: the cursor's row is the
    /// last one shown unless the input has fewer rows before it.
    public static func window(_ input: InputBuffer, width: Int, limit: Int) -> Window {
        let limit = max(1, limit)
        let characters = input.characters
        let available = max(1, width - promptWidth)
        // The logical line (between newlines) that holds the cursor.
        var lineStart = input.cursor
        while lineStart > 0, characters[lineStart - 1] != "\n" { lineStart -= 1 }
        var lineEnd = input.cursor
        while lineEnd < characters.count, characters[lineEnd] != "\n" { lineEnd += 1 }
        let (cursorLine, cursorInLine) = wrap(characters[lineStart..<lineEnd], available: available,
                                              cursor: input.cursor - lineStart, atEndOfInput: lineEnd == characters.count)
        let cursor = cursorInLine ?? (cursorLine.count - 1, 0)
        // Rows before the cursor's row, line by line upwards, until the window is full.
        var before = Array(cursorLine[..<cursor.row])
        var start = lineStart
        while before.count < limit - 1, start > 0 {
            let end = start - 1
            start = end
            while start > 0, characters[start - 1] != "\n" { start -= 1 }
            before = wrap(characters[start..<end], available: available, cursor: nil, atEndOfInput: false).rows + before
        }
        let startsAtTop = start == 0 && before.count <= limit - 1
        before = Array(before.suffix(limit - 1))
        // The cursor's row and those after it, until the window is full.
        var rows = before + cursorLine[cursor.row...]
        var next = lineEnd
        while rows.count < limit, next < characters.count {
            var end = next + 1
            while end < characters.count, characters[end] != "\n" { end += 1 }
            rows += wrap(characters[(next + 1)..<end], available: available, cursor: nil, atEndOfInput: end == characters.count).rows
            next = end
        }
        return Window(rows: Array(rows.prefix(limit)), cursor: (before.count, cursor.column), startsAtTop: startsAtTop)
    }

    /// One logical line wrapped at `available` columns, and the cursor's place in it when it is on this line.
    static func wrap(_ line: ArraySlice<Character>, available: Int, cursor: Int?, atEndOfInput: Bool) -> (rows: [[Character]], cursor: (row: Int, column: Int)?) {
        var rows: [[Character]] = [[]]
        var column = 0
        var position: (row: Int, column: Int)?
        for (i, character) in line.enumerated() {
            if i == cursor { position = (rows.count - 1, column) }
            let w = max(1, DisplayWidth.of(character))
            if column + w > available {
                rows.append([])
                column = 0
                if i == cursor { position = (rows.count - 1, 0) }
            }
            rows[rows.count - 1].append(character)
            column += w
        }
        if cursor == line.count {
            // At the end of the input a full row moves the cursor to a fresh row below it.
            if atEndOfInput, column >= available { rows.append([]); column = 0 }
            position = (rows.count - 1, column)
        }
        return (rows, position)
    }
}

/// Draws the state into a cell grid. Pure: the same state always gives the same frame.
public enum Renderer {
    public static func render(_ state: ChatState) -> Frame {
        if state.pendingLayout != nil {
            // The runtime settles before it paints; a caller that did not gets the same frame.
            var settled = state
            settleLayout(&settled)
            return render(settled)
        }
        var grid = CellGrid(width: state.width, height: state.height)
        guard !state.isTooSmall else {
            if state.height > 0 {
                // The longest message that fits, never one cut mid-word.
                let messages = ["terminal too small (min \(ChatState.minimumWidth)×\(ChatState.minimumHeight))", "terminal too small", "too small", "small"]
                let message = messages.first { DisplayWidth.of($0) <= state.width } ?? ""
                grid.put(message, row: 0, column: 0, role: .statusWarn)
            }
            return Frame(grid: grid, cursor: nil)
        }
        drawConversation(state, into: &grid)
        let cursor = drawInput(state, into: &grid)
        drawStatus(state, into: &grid, row: state.height - 1)
        if let overlay = state.overlay { drawOverlay(overlay, state, into: &grid) }
        return Frame(grid: grid, cursor: state.overlay == nil ? cursor : nil)
    }

    static func drawConversation(_ state: ChatState, into grid: inout CellGrid) {
        let pane = state.paneHeight
        let total = state.layout.totalRows
        let bottom = max(0, total - state.scrollFromBottom)
        let top = max(0, bottom - pane)
        let rows = state.layout.rows(top..<bottom, entries: state.entries)
        for (offset, row) in rows.enumerated() where offset < pane {
            draw(row, into: &grid, at: offset)
        }
        if state.newTextBelow, state.scrollFromBottom > 0, pane > 0 {
            grid.fill(row: pane - 1, role: .newBelow)
            grid.put("  ↓ new text below — End or PgDn to follow", row: pane - 1, column: 0, role: .newBelow)
        }
        if let pending = state.pendingGuard, pane >= 3 { drawGuardBar(pending, into: &grid, bottom: pane - 1) }
        if let approval = state.pendingApproval, pane >= 3 { drawApprovalBar(approval, into: &grid, bottom: pane - 1) }
    }

    /// A tool call waiting for a yes: the server, the tool, all of its arguments (wrapped over up to
    /// half the pane; runs of spaces said as such, so nothing hides past the edge), and the choices.
    static func drawApprovalBar(_ approval: ToolApprovalRequest, into grid: inout CellGrid, bottom: Int) {
        let width = max(10, grid.width - 3)
        let rows = approvalArgumentRows(approval.arguments, width: width)
        let room = max(1, (bottom + 1) / 2 - 2)
        var shown = Array(rows.prefix(room))
        if rows.count > room { shown[shown.count - 1] = "… \(rows.count - room + 1) more rows of arguments: n declines, then ask the model to shorten them" }
        let top = bottom - 1 - shown.count
        guard top >= 0 else { return }
        for row in top...bottom { grid.fill(row: row, role: .statusWarn) }
        grid.put(" ⚙ run \(TerminalSanitizer.line(approval.tool)) from MCP server \(TerminalSanitizer.line(approval.server))?", row: top, column: 0, role: .statusWarn)
        for (offset, line) in shown.enumerated() { grid.put("   " + line, row: top + 1 + offset, column: 0, role: .statusWarn) }
        grid.put("   y: yes · n: no · A: always this tool · S: always this server · Ctrl-C: stop", row: bottom, column: 0, role: .statusWarn)
    }

    /// The arguments as rows of `width`: sanitized, four or more spaces shown as "⟨N spaces⟩".
    static func approvalArgumentRows(_ arguments: String, width: Int) -> [String] {
        let sanitized = TerminalSanitizer.line(arguments)
        if sanitized.isEmpty { return ["(no arguments)"] }
        var text = ""
        var spaces = 0
        func flush() {
            text += spaces >= 4 ? "⟨\(spaces) spaces⟩" : String(repeating: " ", count: spaces)
            spaces = 0
        }
        for character in sanitized {
            if character == " " { spaces += 1; continue }
            flush()
            text.append(character)
        }
        flush()
        var rows: [String] = []
        var current = ""
        for character in text {
            if current.count >= width { rows.append(current); current = "" }
            current.append(character)
        }
        if !current.isEmpty { rows.append(current) }
        return rows
    }

    /// The input guard's bar: what it found, the message around the match with the match highlighted,
    /// and the two choices.
    static func drawGuardBar(_ pending: PendingGuard, into grid: inout CellGrid, bottom: Int) {
        guard let first = pending.findings.first else { return }
        let more = pending.findings.count > 1 ? " (+\(pending.findings.count - 1) more)" : ""
        for row in (bottom - 2)...bottom { grid.fill(row: row, role: .statusWarn) }
        grid.put(" ⚠ guard: \(first.kind.title): \(first.pattern)\(more)", row: bottom - 2, column: 0, role: .statusWarn)
        let characters = Array(pending.text)
        let start = min(max(0, first.start), characters.count), end = min(max(start, first.end), characters.count)
        func shown(_ slice: ArraySlice<Character>) -> String {
            TerminalSanitizer.line(String(slice).replacingOccurrences(of: "\n", with: " ⏎ "))
        }
        let before = (start > 30 ? "…" : "") + shown(characters[max(0, start - 30)..<start])
        let match = first.kind == .invisible ? first.excerpt : shown(characters[start..<min(end, start + 60)])
        let after = shown(characters[end..<min(characters.count, end + 30)]) + (end + 30 < characters.count ? "…" : "")
        var column = grid.put("   " + before, row: bottom - 1, column: 0, role: .statusWarn)
        column = grid.put(match, row: bottom - 1, column: column, role: .error)
        grid.put(after, row: bottom - 1, column: column, role: .statusWarn)
        grid.put("   Enter: send anyway · Esc: edit it", row: bottom, column: 0, role: .statusWarn)
    }

    static func draw(_ row: RenderedRow, into grid: inout CellGrid, at line: Int) {
        if let fill = row.fill { grid.fill(row: line, role: fill) }
        var column = 0
        for styled in row.chars {
            column = grid.put(styled.character, row: line, column: column, role: styled.role)
            if column >= grid.width { break }
        }
    }

    static func drawInput(_ state: ChatState, into grid: inout CellGrid) -> (row: Int, column: Int) {
        let window = state.inputWindow
        let (rows, cursor) = (window.rows, window.cursor)
        let top = state.paneHeight
        for (i, row) in rows.enumerated() {
            let line = top + i
            grid.fill(row: line, role: .input)
            grid.put(i == 0 && window.startsAtTop ? "› " : "  ", row: line, column: 0, role: .prompt)
            grid.put(row, row: line, column: InputLayout.promptWidth, role: .input)
        }
        if state.input.isEmpty, !state.busy {
            grid.put("type a message · Enter sends · /help", row: top, column: InputLayout.promptWidth, role: .dim)
        }
        return (top + cursor.row, InputLayout.promptWidth + cursor.column)
    }

    /// The status bar's fields, most important first; narrow terminals drop from the end of this list.
    public static func statusFields(_ state: ChatState) -> [(text: String, role: StyleRole, priority: Int)] {
        let s = state.status
        var fields: [(String, StyleRole, Int)] = [(s.model, .statusAccent, 0)]
        if let notice = state.notice {
            fields.append((notice, .statusWarn, 1))
        } else {
            switch s.phase {
            case .idle: fields.append(("idle", .status, 1))
            case .connecting: fields.append(("connecting…", .status, 1))
            case .waiting: fields.append(("waiting for first token", .status, 1))
            case let .streaming(n): fields.append(("streaming \(n) tok", .status, 1))
            case let .retrying(seconds, reason): fields.append(("retrying in \(seconds) s (\(reason))", .statusWarn, 1))
            case let .fellBack(to, reason): fields.append(("fell back to \(to) (\(reason))", .statusWarn, 1))
            case .stopped: fields.append(("stopped", .statusWarn, 1))
            case let .tool(name): fields.append(("tool \(name)… (Esc stops)", .statusAccent, 1))
            case let .error(message): fields.append(("error: \(message)", .statusWarn, 1))
            }
        }
        if let ttft = s.timeToFirstTokenMs { fields.append((String(format: "ttft %.0f ms", ttft), .status, 4)) }
        if let rate = s.tokensPerSecond { fields.append((String(format: "%.0f tok/s", rate), .status, 5)) }
        if let tokensIn = s.tokensIn, let tokensOut = s.tokensOut { fields.append(("in \(tokensIn) out \(tokensOut)", .status, 6)) }
        let costRole: StyleRole = s.spendWarning ? .statusWarn : .status
        fields.append(("turn \(s.turnCost)" + (s.turnCached ? " cached" : ""), costRole, 3))
        fields.append(("session \(s.sessionCost)", costRole, 7))
        fields.append(("today \(s.todayCost)", costRole, s.spendWarning ? 3 : 8))
        if let limits = s.rateLimit { fields.append((limits, .statusWarn, 4)) }
        if let used = s.contextUsed, let window = s.contextWindow, window > 0 {
            let percent = min(100, used * 100 / window)
            fields.append(("ctx \(percent)%", percent >= 80 ? .statusWarn : .status, 2))
        } else if let window = s.contextWindow {
            fields.append(("ctx 0/\(window / 1000)k", .status, 2))
        }
        return fields
    }

    static func drawStatus(_ state: ChatState, into grid: inout CellGrid, row: Int) {
        grid.fill(row: row, role: .status)
        var fields = statusFields(state).map { (text: $0.text, role: $0.role, priority: $0.priority) }
        let separator = " │ "
        func width(_ fs: [(text: String, role: StyleRole, priority: Int)]) -> Int {
            fs.reduce(0) { $0 + DisplayWidth.of($1.text) } + max(0, fs.count - 1) * separator.count + 2
        }
        // Drop the least important fields first; the state (or notice) is shortened rather than dropped.
        while fields.count > 2, width(fields) > grid.width {
            let drop = fields.indices.max { fields[$0].priority < fields[$1].priority }!
            fields.remove(at: drop)
        }
        if fields.count == 2, width(fields) > grid.width {
            let room = grid.width - width([fields[0]]) - separator.count - 1
            if room >= 4 {
                fields[1].text = truncate(fields[1].text, to: room)
            } else {
                fields.removeLast()
            }
        }
        if width(fields) > grid.width { fields[0].text = truncate(fields[0].text, to: max(1, grid.width - 3)) }
        var column = 1
        for (i, field) in fields.enumerated() {
            if i > 0 { column = grid.put(separator, row: row, column: column, role: .status) }
            column = grid.put(field.text, row: row, column: column, role: field.role)
        }
    }

    static func truncate(_ text: String, to width: Int) -> String {
        var out = ""
        var used = 0
        for character in text {
            let w = DisplayWidth.of(character)
            if used + w > width - 1 { return out + "…" }
            out.append(character)
            used += w
        }
        return out
    }

    static func drawOverlay(_ overlay: Overlay, _ state: ChatState, into grid: inout CellGrid) {
        var lines: [(String, StyleRole)] = []
        var title = ""
        switch overlay {
        case .help:
            title = " help — any key closes "
            lines = Commands.all.map { ("\($0.name) \($0.help)", .overlay) }
            lines += [
                ("", .overlay),
                ("Enter send · Alt-Enter/Ctrl-J newline · Esc/Ctrl-C stop a reply", .overlay),
                ("PgUp/PgDn, wheel scroll · Home/End top/bottom (empty prompt)", .overlay),
                ("Ctrl-A/E/B/F/K/U/W/Y, Alt-B/F/D/</> edit · Up/Down history · Tab completes", .overlay),
                ("Alt-W copies the last reply (/copy N: its code block N)", .overlay),
                ("Alt-↑ picks a message: ↑/↓ another · Enter edits a prompt · ←/→ its branches (‹2/3›) · Esc done", .overlay),
            ]
        case let .modelPicker(selected):
            title = " model — Enter picks, Esc closes "
            let visible = max(1, grid.height - 6)
            let start = max(0, min(selected - visible / 2, state.modelChoices.count - visible))
            for (i, choice) in state.modelChoices.enumerated().dropFirst(start).prefix(visible) {
                let marker = choice.name == state.status.model ? "● " : "  "
                lines.append(("\(marker)\(choice.name)  \(choice.keyStatus)", i == selected ? .overlaySelected : .overlay))
            }
        }
        let boxWidth = min(grid.width - 2, max(DisplayWidth.of(title) + 4, (lines.map { DisplayWidth.of($0.0) }.max() ?? 0) + 4))
        let boxHeight = min(grid.height - 2, lines.count + 2)
        guard boxWidth > 4, boxHeight > 2 else { return }
        let left = (grid.width - boxWidth) / 2
        let top = max(0, (grid.height - boxHeight) / 2)
        for r in 0..<boxHeight {
            for c in 0..<boxWidth { grid[top + r, left + c] = Cell(text: " ", role: .overlay) }
        }
        grid.put(String("┌" + String(repeating: "─", count: boxWidth - 2) + "┐"), row: top, column: left, role: .overlay)
        grid.put(title.prefix(boxWidth - 4), row: top, column: left + 2, role: .overlaySelected)
        for (i, line) in lines.prefix(boxHeight - 2).enumerated() {
            let row = top + 1 + i
            grid.put("│", row: row, column: left, role: .overlay)
            if line.1 == .overlaySelected {
                for c in (left + 1)..<(left + boxWidth - 1) { grid[row, c] = Cell(text: " ", role: .overlaySelected) }
            }
            let end = left + boxWidth - 1
            var column = left + 2
            for character in line.0 {
                if column + DisplayWidth.of(character) > end - 1 { break }
                column = grid.put(character, row: row, column: column, role: line.1)
            }
            grid.put("│", row: row, column: end, role: .overlay)
        }
        grid.put(String("└" + String(repeating: "─", count: boxWidth - 2) + "┘"), row: top + boxHeight - 1, column: left, role: .overlay)
    }
}
