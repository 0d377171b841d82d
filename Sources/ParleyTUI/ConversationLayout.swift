import Foundation
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
    public enum Kind: Hashable, Sendable { case user, assistant, note, error }
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
    /// A number no other version of any entry's text has, in any copy of the state: the row cache is
    /// keyed by it, so copies can never read each other's rows, without hashing the text per frame.
    public private(set) var revision: UInt64 = ChatEntry.nextRevision()

    private static let revisions = Atomic<UInt64>(0)
    static func nextRevision() -> UInt64 { revisions.add(1, ordering: .relaxed).newValue }

    /// Equal by what is shown; the revision is only the cache's key.
    public static func == (lhs: ChatEntry, rhs: ChatEntry) -> Bool {
        lhs.id == rhs.id && lhs.kind == rhs.kind && lhs.model == rhs.model && lhs.time == rhs.time
            && lhs.text == rhs.text && lhs.status == rhs.status
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
            let height = rows(for: entries[firstMeasured]).count
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
        let height = rows(for: entry, index: firstMeasured + ends.count).count
        ends.append((ends.last ?? 0) + height)
    }

    /// The entry at `index` changed (text grew, or status changed).
    public mutating func update(_ entry: ChatEntry, at index: Int) {
        let k = index - firstMeasured
        guard k >= 0, k < ends.count else { return }
        let start = k == 0 ? 0 : ends[k - 1]
        let height = rows(for: entry, index: index).count
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
            let entryRows = cachedRows(for: entries[firstMeasured + k], index: firstMeasured + k)
            let from = max(0, range.lowerBound - start)
            let to = min(entryRows.count, range.upperBound - start)
            if from < to { out += entryRows[from..<to] }
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

    private mutating func rows(for entry: ChatEntry, index: Int? = nil) -> [RenderedRow] {
        let rows: [RenderedRow]
        if entry.status == .streaming {
            if streaming?.id != entry.id || streaming?.width != width { streaming = StreamingLayout(id: entry.id, width: width) }
            rows = header(entry) + streaming!.update(entry.text, layout: self) + [RenderedRow()]
        } else {
            if streaming?.id == entry.id { streaming = nil }
            rows = buildRows(for: entry)
        }
        if let index { cache.put(RowKey(entry, index: index, width: width), rows) }
        return rows
    }

    func buildRows(for entry: ChatEntry) -> [RenderedRow] {
        var styler = MarkdownStyler()
        var body: [RenderedRow] = []
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
        if case let .failed(message) = entry.status {
            body += wrap(StyledLine(chars: ("⚠ " + message).map { StyledChar($0, .error) }))
        }
        return header(entry) + body + [RenderedRow()]
    }

    func header(_ entry: ChatEntry) -> [RenderedRow] {
        let time = clockTime(entry.time)
        let role: StyleRole
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
        case .error: role = .error; text = "▌ error"
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
        let available = max(1, width - Self.margin)
        let margin = Array(repeating: StyledChar(" ", line.fill ?? .text), count: Self.margin)
        var rows: [RenderedRow] = []
        var current: [StyledChar] = []
        var currentWidth = 0
        var lastSpace: Int?
        let indent = min(line.hangingIndent, available / 2)
        func flush(_ chars: [StyledChar]) { rows.append(RenderedRow(chars: margin + chars, fill: line.fill)) }
        for styled in line.chars {
            let w = DisplayWidth.of(styled.character)
            if currentWidth + w > available, !current.isEmpty {
                if let space = lastSpace, space > indent {
                    let head = Array(current[..<space])
                    let tail = Array(current[(space + 1)...])
                    flush(head)
                    current = Array(repeating: StyledChar(" ", line.fill ?? .text), count: indent) + tail
                } else {
                    flush(current)
                    current = Array(repeating: StyledChar(" ", line.fill ?? .text), count: indent)
                }
                currentWidth = current.reduce(0) { $0 + DisplayWidth.of($1.character) }
                lastSpace = nil
            }
            if styled.character == " " { lastSpace = current.count }
            current.append(styled)
            currentWidth += w
        }
        flush(current)
        return rows
    }
}

/// The streaming entry's finished lines, wrapped once; only the unfinished last line is redone per frame.
struct StreamingLayout: Sendable {
    let id: Int
    let width: Int
    var processedUTF8 = 0
    var styler = MarkdownStyler()
    var doneRows: [RenderedRow] = []

    init(id: Int, width: Int) {
        self.id = id
        self.width = width
    }

    mutating func update(_ text: String, layout: ConversationLayout) -> [RenderedRow] {
        if text.utf8.count < processedUTF8 { self = StreamingLayout(id: id, width: width) }
        let utf8 = text.utf8
        var start = utf8.index(utf8.startIndex, offsetBy: processedUTF8)
        while let newline = utf8[start...].firstIndex(of: 0x0A) {
            let line = text[start..<newline]
            doneRows += layout.wrap(styler.style(line: line))
            start = utf8.index(after: newline)
            processedUTF8 = utf8.distance(from: utf8.startIndex, to: start)
        }
        var tailStyler = styler
        return doneRows + layout.wrap(tailStyler.style(line: text[start...]))
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

    init(_ entry: ChatEntry, index: Int, width: Int) {
        self.index = index
        id = entry.id
        kind = entry.kind
        revision = entry.revision
        status = entry.status
        time = entry.time
        self.width = width
    }
}

/// A small memo of built rows; touched only on the UI thread. One version per entry index is kept:
/// a streaming entry's rows replace its earlier ones instead of piling up under each new text length.
final class RowCache: @unchecked Sendable {
    private var rows: [RowKey: [RenderedRow]] = [:]
    private var keyForIndex: [Int: RowKey] = [:]
    private var order: [Int] = []
    static let capacity = 96

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
