import Foundation
import ParleyCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The zone message times are shown in, given to the renderer: the system's local time (read through
/// libc's `localtime_r`, which costs nothing at start-up, unlike Foundation's `TimeZone.current`), or a
/// fixed zone (tests).
public enum ClockZone: Sendable, Hashable {
    case local
    case fixed(TimeZone)

    /// Seconds east of UTC at `date`.
    func offset(at date: Date) -> Int {
        switch self {
        case let .fixed(zone): return zone.secondsFromGMT(for: date)
        case .local:
            var time = time_t(date.timeIntervalSince1970.rounded(.down))
            var parts = tm()
            guard localtime_r(&time, &parts) != nil else { return 0 }
            return Int(parts.tm_gmtoff)
        }
    }
}

/// One message on the screen.
public struct ChatEntry: Equatable, Sendable {
    public enum Kind: Hashable, Sendable { case user, assistant, note, error, tool }
    public enum Status: Hashable, Sendable { case complete, streaming, stopped, failed(String) }

    public var id: Int
    public var kind: Kind
    /// `provider:model` for replies.
    public var model: String?
    public var time: Date
    /// Changed in place (`_modify`, not `didSet`, which would copy the whole text on every `+=` of a
    /// streamed token); every change takes a new revision.
    public var text: String {
        get { storedText }
        set {
            storedText = newValue
            revision = Self.nextRevision()
        }
        _modify {
            revision = Self.nextRevision()
            yield &storedText
        }
    }
    private var storedText: String
    public var status: Status
    /// The session message shown, once it is on disk (nil for notes, and for a prompt refused before it
    /// was saved): what editing and branch switching name.
    public var messageID: String?
    /// Where the message stands among its siblings (other replies to the same prompt, other versions of
    /// the same prompt): shown as "2/3" in its header. nil when it has none.
    public var branch: BranchMark?
    /// Picked with Alt-↑ to edit it or move between its branches: its header is drawn highlighted.
    public var selected = false
    /// `/pin`: always sent, never trimmed or summarized away.
    public var pinned = false
    /// For replies: the tool calls the model asked for (sent again with the conversation).
    public var toolCalls: [ToolCall] = []
    /// For `.tool` entries: the call and how it went; the text is its result.
    public var tool: ToolInfo?
    /// A tool entry shows its whole result (else its first lines).
    public var expanded = false
    /// A number no other version of any entry's text has, in any copy of the state: the row cache is
    /// keyed by it, so copies can never read each other's rows, without hashing the text per frame.
    public private(set) var revision: UInt64 = ChatEntry.nextRevision()

    private static let revisions = Atomic<UInt64>(0)
    static func nextRevision() -> UInt64 { revisions.add(1, ordering: .relaxed).newValue }

    /// Equal by what is shown; the revision is only the cache's key.
    public static func == (lhs: ChatEntry, rhs: ChatEntry) -> Bool {
        lhs.id == rhs.id && lhs.kind == rhs.kind && lhs.model == rhs.model && lhs.time == rhs.time
            && lhs.text == rhs.text && lhs.status == rhs.status && lhs.messageID == rhs.messageID && lhs.branch == rhs.branch
            && lhs.selected == rhs.selected && lhs.pinned == rhs.pinned && lhs.toolCalls == rhs.toolCalls && lhs.tool == rhs.tool
            && lhs.expanded == rhs.expanded
    }

    /// `time` has no default: the reducer takes it from the state's clock, which actions set.
    public init(id: Int, kind: Kind, model: String? = nil, time: Date, text: String, status: Status = .complete) {
        self.id = id
        self.kind = kind
        self.model = model
        self.time = time
        storedText = text
        self.status = status
    }
}

/// A tool call as its block on the screen shows it.
public struct ToolInfo: Hashable, Sendable {
    public enum Status: Hashable, Sendable { case running, ok, error, declined }
    public var callID: String
    public var name: String
    /// The arguments as the model wrote them (shown on one line, sanitized).
    public var arguments: String
    public var status: Status
    public var milliseconds: Int?

    public init(callID: String, name: String, arguments: String, status: Status, milliseconds: Int? = nil) {
        self.callID = callID
        self.name = name
        self.arguments = arguments
        self.status = status
        self.milliseconds = milliseconds
    }
}

/// "2/3": the second of three siblings.
public struct BranchMark: Hashable, Sendable {
    public var index: Int
    public var count: Int

    public init(index: Int, count: Int) {
        self.index = index
        self.count = count
    }
}

/// A screen row: styled characters starting at column 0, and a role for the rest of the row.
public struct RenderedRow: Equatable, Sendable {
    public var chars: [StyledChar]
    public var fill: StyleRole?

    public init(chars: [StyledChar] = [], fill: StyleRole? = nil) {
        self.chars = chars
        self.fill = fill
    }
}

/// Wraps and styles entries into rows. Heights of every entry are kept (prefix sums, so the rows on
/// screen are found by binary search); the rows themselves are kept only for a few recent entries and
/// the one streaming, so a 10,000-message conversation costs only what is visible per frame.
public struct ConversationLayout: Sendable {
    public static let margin = 2
    /// Rows measured from the bottom by `rebuild`; older entries are measured when scrolled to.
    public static let rebuildRows = 400
    /// Lines of a tool result shown until it is expanded.
    public static let toolLines = 4
    public private(set) var width: Int
    /// Entries before this index are not measured yet: after a resize or a bulk load only the rows
    /// near the bottom, where the view is, are wrapped, so the cost does not grow with the history.
    public private(set) var firstMeasured = 0
    /// `ends[k]` is the row just after entry `firstMeasured + k`, counted from the first measured entry.
    public private(set) var ends: [Int] = []
    /// Incremental state of the entry that streams (its finished lines never change).
    private var streaming: StreamingLayout?
    /// Shared by copies of the state, so it is keyed by everything a row depends on: a copy whose
    /// entries or width differ can never read another's rows.
    private let cache = RowCache()
    /// Times in headers are shown in this zone (given, not read by the renderer itself). Fixed for the
    /// layout's life, so cached rows never hold another zone's times.
    public let timeZone: ClockZone

    public init(width: Int, timeZone: ClockZone = .fixed(TimeZone(secondsFromGMT: 0) ?? .current)) {
        self.width = max(1, width)
        self.timeZone = timeZone
    }

    /// Rows of the measured entries.
    public var totalRows: Int { ends.last ?? 0 }

    /// Recomputes heights for a new width or a new list of entries, from the bottom up, until at
    /// least `rows` rows are measured (everything when the conversation is shorter).
    public mutating func rebuild(_ entries: [ChatEntry], width: Int, rows: Int = Self.rebuildRows) {
        self.width = max(1, width)
        cache.clear()
        streaming = nil
        ends = []
        firstMeasured = entries.count
        measureMore(entries, rows: rows)
    }

    /// Measures entries above the measured ones until `rows` more rows are known or none are left.
    /// Rows are counted from the bottom, so views scrolled from the bottom stay where they are.
    public mutating func measureMore(_ entries: [ChatEntry], rows wanted: Int) {
        var heights: [Int] = []
        var added = 0
        while firstMeasured > 0, added < wanted {
            firstMeasured -= 1
            let height = height(of: entries[firstMeasured])
            heights.append(height)
            added += height
        }
        guard added > 0 else { return }
        var newEnds: [Int] = []
        newEnds.reserveCapacity(heights.count + ends.count)
        var total = 0
        for height in heights.reversed() {
            total += height
            newEnds.append(total)
        }
        newEnds += ends.map { $0 + added }
        ends = newEnds
    }

    public mutating func append(_ entry: ChatEntry) {
        let height = height(of: entry, index: firstMeasured + ends.count)
        ends.append((ends.last ?? 0) + height)
    }

    /// The entry at `index` changed (text grew, or status changed).
    public mutating func update(_ entry: ChatEntry, at index: Int) {
        let k = index - firstMeasured
        guard k >= 0, k < ends.count else { return }
        let start = k == 0 ? 0 : ends[k - 1]
        let height = height(of: entry, index: index)
        let delta = start + height - ends[k]
        if delta != 0 { for i in k..<ends.count { ends[i] += delta } }
    }

    public mutating func removeAll() {
        ends = []
        firstMeasured = 0
        streaming = nil
        cache.clear()
    }

    /// Rows `range` of the measured conversation, built only for the entries they touch.
    public func rows(_ range: Range<Int>, entries: [ChatEntry]) -> [RenderedRow] {
        guard !range.isEmpty, !ends.isEmpty else { return [] }
        var out: [RenderedRow] = []
        var k = firstEntry(containing: range.lowerBound)
        while firstMeasured + k < entries.count, k < ends.count, out.count < range.count {
            let start = k == 0 ? 0 : ends[k - 1]
            let entry = entries[firstMeasured + k]
            let from = max(0, range.lowerBound - start)
            if let streaming, streaming.id == entry.id, entry.status == .streaming {
                // Only the rows in view, from the streaming entry's parts (never the whole message joined).
                streaming.rows(from..<max(from, range.upperBound - start), header: header(entry), into: &out)
            } else {
                let entryRows = cachedRows(for: entry, index: firstMeasured + k)
                let to = min(entryRows.count, range.upperBound - start)
                if from < to { out += entryRows[from..<to] }
            }
            k += 1
        }
        return out
    }

    /// The position in `ends` of the measured entry that holds `row`.
    func firstEntry(containing row: Int) -> Int {
        var low = 0, high = ends.count - 1
        while low < high {
            let mid = (low + high) / 2
            if ends[mid] <= row { low = mid + 1 } else { high = mid }
        }
        return low
    }

    func cachedRows(for entry: ChatEntry, index: Int) -> [RenderedRow] {
        let key = RowKey(entry, index: index, width: width)
        if let rows = cache.get(key) { return rows }
        let rows = buildRows(for: entry)
        cache.put(key, rows)
        return rows
    }

    /// The entry's height in rows; its rows are built and kept in the cache, or, while it streams,
    /// only its new text is wrapped (the incremental layout keeps the rest).
    private mutating func height(of entry: ChatEntry, index: Int? = nil) -> Int {
        if entry.status == .streaming {
            if streaming?.id != entry.id || streaming?.width != width { streaming = StreamingLayout(id: entry.id, width: width) }
            var current = streaming!
            streaming = nil   // (uniquely referenced while it is updated: no copy of its rows)
            current.update(entry.text, layout: self)
            streaming = current
            return current.height
        }
        if streaming?.id == entry.id { streaming = nil }
        let rows = buildRows(for: entry)
        if let index { cache.put(RowKey(entry, index: index, width: width), rows) }
        return rows.count
    }

    func buildRows(for entry: ChatEntry) -> [RenderedRow] {
        var styler = MarkdownStyler()
        var body: [RenderedRow] = []
        if entry.kind == .tool {
            // The arguments on one line, then the result: its first lines unless expanded.
            if let tool = entry.tool { body += wrap(StyledLine(chars: ("→ " + TerminalSanitizer.line(String(tool.arguments.prefix(300)))).map { StyledChar($0, .dim) })) }
            let lines = entry.text.split(separator: "\n", omittingEmptySubsequences: false)
            let shown = entry.expanded ? lines[...] : lines.prefix(ConversationLayout.toolLines)
            for line in shown { body += wrap(StyledLine(chars: line.map { StyledChar($0 == "\t" ? " " : $0, .codeBlock) })) }
            if shown.count < lines.count {
                body += wrap(StyledLine(chars: "… \(lines.count - shown.count) more lines (Alt-↑ to pick it, Enter shows all)".map { StyledChar($0, .dim) }))
            }
            return header(entry) + body + [RenderedRow()]
        }
        if entry.kind == .user || entry.kind == .note || entry.kind == .error {
            let role: StyleRole = entry.kind == .error ? .error : entry.kind == .note ? .note : .text
            for line in entry.text.split(separator: "\n", omittingEmptySubsequences: false) {
                body += wrap(StyledLine(chars: line.map { StyledChar($0 == "\t" ? " " : $0, role) }))
            }
        } else {
            for line in entry.text.split(separator: "\n", omittingEmptySubsequences: false) {
                body += wrap(styler.style(line: line))
            }
        }
        if entry.kind == .assistant, entry.text.isEmpty, !entry.toolCalls.isEmpty {
            let count = entry.toolCalls.count
            body += wrap(StyledLine(chars: "asks for \(count) tool call\(count == 1 ? "" : "s")".map { StyledChar($0, .dim) }))
        }
        if case let .failed(message) = entry.status {
            body += wrap(StyledLine(chars: ("⚠ " + message).map { StyledChar($0, .error) }))
        }
        return header(entry) + body + [RenderedRow()]
    }

    func header(_ entry: ChatEntry) -> [RenderedRow] {
        let time = clockTime(entry.time)
        var role: StyleRole
        var text: String
        switch entry.kind {
        case .user: role = .userHeader; text = "▌ you · \(time)"
        case .assistant:
            role = .assistantHeader
            text = "▌ \(entry.model ?? "assistant") · \(time)"
            switch entry.status {
            case .streaming: text += " · …"
            case .stopped: text += " · stopped"
            case .failed: text += " · error"
            case .complete: break
            }
        case .note: role = .note; text = "▌ parley"
        case .tool:
            role = .codeLabel
            let tool = entry.tool
            text = "▌ tool \(tool?.name ?? "?")"
            switch tool?.status {
            case .running?: text += " · running…"
            case .ok?: text += " · ok"
            case .error?: text += " · error"
            case .declined?: text += " · declined"
            case nil: break
            }
            if let ms = tool?.milliseconds { text += " · \(ms) ms" }
        case .error: role = .error; text = "▌ error"
        }
        if let branch = entry.branch { text += " · ‹\(branch.index)/\(branch.count)›" }
        if entry.pinned { text += " · pinned" }
        if entry.selected {
            role = .overlaySelected
            text = "▶" + text.dropFirst() + (entry.kind == .user ? " · Enter edits" : "") + (entry.branch == nil ? "" : " · ←/→ branches")
        }
        return [RenderedRow(chars: Array(text.prefix(width)).map { StyledChar($0, role) })]
    }

    /// `HH:mm` in the layout's time zone, by arithmetic on its offset (a Calendar per header would cost
    /// time and memory for two numbers).
    func clockTime(_ date: Date) -> String {
        let seconds = Int(date.timeIntervalSince1970.rounded(.down)) + timeZone.offset(at: date)
        let minutes = ((seconds / 60) % 1440 + 1440) % 1440
        let hour = minutes / 60, minute = minutes % 60
        return (hour < 10 ? "0" : "") + String(hour) + ":" + (minute < 10 ? "0" : "") + String(minute)
    }

    /// Word-wraps a styled line to the width (minus the margin); continuation rows get the hanging indent.
    func wrap(_ line: StyledLine) -> [RenderedRow] {
        var wrapper = RowWrapper(width: width, fill: line.fill, hangingIndent: line.hangingIndent)
        for styled in line.chars { wrapper.add(styled) }
        return wrapper.rows + [wrapper.currentRow]
    }
}

/// Word wrapping one character at a time: finished rows never change as characters are added (a
/// break depends only on what came before it), so a streaming line adds its new characters to the
/// wrapper it already has instead of wrapping the whole line again.
struct RowWrapper: Sendable {
    let available: Int
    let fill: StyleRole?
    let indent: Int
    let margin: [StyledChar]
    private(set) var rows: [RenderedRow] = []
    private var current: [StyledChar] = []
    private var currentWidth = 0
    private var lastSpace: Int?

    init(width: Int, fill: StyleRole?, hangingIndent: Int) {
        available = max(1, width - ConversationLayout.margin)
        self.fill = fill
        indent = min(hangingIndent, available / 2)
        margin = Array(repeating: StyledChar(" ", fill ?? .text), count: ConversationLayout.margin)
    }

    mutating func add(_ styled: StyledChar) {
        let w = DisplayWidth.of(styled.character)
        if currentWidth + w > available, !current.isEmpty {
            if let space = lastSpace, space > indent {
                let head = Array(current[..<space])
                let tail = Array(current[(space + 1)...])
                rows.append(RenderedRow(chars: margin + head, fill: fill))
                current = Array(repeating: StyledChar(" ", fill ?? .text), count: indent) + tail
            } else {
                rows.append(RenderedRow(chars: margin + current, fill: fill))
                current = Array(repeating: StyledChar(" ", fill ?? .text), count: indent)
            }
            currentWidth = current.reduce(0) { $0 + DisplayWidth.of($1.character) }
            lastSpace = nil
        }
        if styled.character == " " { lastSpace = current.count }
        current.append(styled)
        currentWidth += w
    }

    /// The row being filled, as it would be drawn now.
    var currentRow: RenderedRow { RenderedRow(chars: margin + current, fill: fill) }
    var rowCount: Int { rows.count + 1 }
}

/// The streaming entry's finished lines, wrapped once; only the unfinished last line is redone, once
/// per frame. Its rows are the header, `doneRows`, `tailRows` and a blank row, never joined into one array.
struct StreamingLayout: Sendable {
    let id: Int
    let width: Int
    var processedUTF8 = 0
    var styler = MarkdownStyler()
    var doneRows: [RenderedRow] = []
    /// The unfinished last line, wrapped so far.
    var tail: TailLine?

    /// The last line as far as it has arrived. New text that cannot change how the earlier part is
    /// styled or where it breaks (no `*`, `_` or backtick, which may close a span; the line long enough
    /// that its kind — heading, list, quote — is settled; an ASCII character on each side of the join,
    /// so no grapheme spans it) is added to the wrapper; anything else styles and wraps the line again.
    /// So a token costs the same on a 12 KB line as on a short one.
    struct TailLine: Sendable {
        var utf8Count: Int
        var wrapper: RowWrapper
        var base: StyleRole
        var endsInASCII: Bool
        var settled: Bool
    }

    init(id: Int, width: Int) {
        self.id = id
        self.width = width
    }

    var height: Int { 1 + doneRows.count + (tail?.wrapper.rowCount ?? 1) + 1 }

    mutating func update(_ text: String, layout: ConversationLayout) {
        if text.utf8.count < processedUTF8 { self = StreamingLayout(id: id, width: width) }
        let utf8 = text.utf8
        var start = utf8.index(utf8.startIndex, offsetBy: processedUTF8)
        // The tail has no newline up to what it holds: only the new text is searched.
        let searched = utf8.index(start, offsetBy: tail?.utf8Count ?? 0, limitedBy: utf8.endIndex) ?? start
        if let newline = utf8[searched...].firstIndex(of: 0x0A) {
            var next: String.UTF8View.Index? = newline
            while let newline = next {
                let line = text[start..<newline]
                doneRows += layout.wrap(styler.style(line: line))
                start = utf8.index(after: newline)
                processedUTF8 = utf8.distance(from: utf8.startIndex, to: start)
                tail = nil
                next = utf8[start...].firstIndex(of: 0x0A)
            }
        }
        let line = text[start...]
        let count = line.utf8.count
        if var current = tail, current.settled, count >= current.utf8Count {
            tail = nil   // (uniquely referenced while it grows)
            let added = line.utf8.dropFirst(current.utf8Count)
            if added.isEmpty || Self.canExtend(current, with: added) {
                for character in Substring(added) { current.wrapper.add(StyledChar(character, current.base)) }
                current.utf8Count = count
                current.endsInASCII = (added.last ?? 0x41) < 0x80
                tail = current
                return
            }
        }
        var tailStyler = styler
        let styled = tailStyler.style(line: line)
        var wrapper = RowWrapper(width: width, fill: styled.fill, hangingIndent: styled.hangingIndent)
        for character in styled.chars { wrapper.add(character) }
        let leadingSpaces = line.utf8.prefix { $0 == 0x20 }.count
        tail = TailLine(utf8Count: count, wrapper: wrapper, base: tailStyler.lastBase,
                        endsInASCII: (line.utf8.last ?? 0x41) < 0x80, settled: count >= 16 && leadingSpaces < 8)
    }

    static func canExtend(_ tail: TailLine, with added: Substring.UTF8View.SubSequence) -> Bool {
        // (A fence line ends in its block's number, which more text would have to stay after.)
        guard tail.endsInASCII, tail.base != .codeLabel, let first = added.first, first >= 0x20, first < 0x7F else { return false }
        return !added.contains { $0 == UInt8(ascii: "*") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "`") || $0 == 0x09 }
    }

    /// Rows `range` of the entry (0 is the header), appended to `out`.
    func rows(_ range: Range<Int>, header: [RenderedRow], into out: inout [RenderedRow]) {
        let tailCount = tail?.wrapper.rowCount ?? 1
        for row in range.clamped(to: 0..<height) {
            if row == 0 { out.append(header.first ?? RenderedRow()) }
            else if row <= doneRows.count { out.append(doneRows[row - 1]) }
            else if row <= doneRows.count + tailCount {
                let k = row - 1 - doneRows.count
                if let wrapper = tail?.wrapper, k < wrapper.rows.count { out.append(wrapper.rows[k]) }
                else { out.append(tail?.wrapper.currentRow ?? RenderedRow(chars: Array(repeating: StyledChar(" ", .text), count: ConversationLayout.margin))) }
            } else { out.append(RenderedRow()) }
        }
    }
}

/// What a cached entry's rows depend on.
struct RowKey: Hashable {
    var index: Int
    var id: Int
    var kind: ChatEntry.Kind
    var revision: UInt64
    var status: ChatEntry.Status
    var time: Date
    var width: Int
    var branch: BranchMark?
    var selected: Bool
    var pinned: Bool
    var tool: ToolInfo?
    var expanded: Bool
    var toolCallCount: Int

    init(_ entry: ChatEntry, index: Int, width: Int) {
        self.index = index
        id = entry.id
        kind = entry.kind
        revision = entry.revision
        status = entry.status
        time = entry.time
        self.width = width
        branch = entry.branch
        selected = entry.selected
        pinned = entry.pinned
        tool = entry.tool
        expanded = entry.expanded
        toolCallCount = entry.toolCalls.count
    }
}

/// A small memo of built rows; touched only on the UI thread. One version per entry index is kept:
/// a streaming entry's rows replace its earlier ones instead of piling up under each new text length.
final class RowCache: @unchecked Sendable {
    private var rows: [RowKey: [RenderedRow]] = [:]
    private var keyForIndex: [Int: RowKey] = [:]
    private var order: [Int] = []
    /// Entries whose rows are kept: a 40-row screen never shows more than 40 entries, and each kept
    /// reply of a few hundred tokens holds about 70 KB of rows (96 entries made a long session's
    /// memory climb by 7 MB before it levelled off).
    static let capacity = 40

    func get(_ key: RowKey) -> [RenderedRow]? { rows[key] }

    func put(_ key: RowKey, _ value: [RenderedRow]) {
        if let previous = keyForIndex[key.index] {
            if previous != key { rows[previous] = nil }
        } else {
            order.append(key.index)
        }
        keyForIndex[key.index] = key
        rows[key] = value
        if order.count > Self.capacity {
            let evicted = order.removeFirst()
            if let old = keyForIndex.removeValue(forKey: evicted) { rows[old] = nil }
        }
    }

    func clear() {
        rows = [:]
        keyForIndex = [:]
        order = []
    }
}
