import Foundation

/// One Server-Sent Event: the `event:` name (nil when absent) and its `data:` lines joined with "\n".
public struct SSEEvent: Sendable, Equatable {
    public var event: String?
    public var data: String
    public var id: String?

    public init(event: String? = nil, data: String, id: String? = nil) {
        self.event = event
        self.data = data
        self.id = id
    }
}

/// An incremental SSE decoder (WHATWG "event stream" rules): bytes in, events out, any chunking.
///
/// Works on bytes so a UTF-8 character split across chunks is joined before it is decoded; accepts
/// LF, CR and CRLF line ends, including a CR at the end of one chunk and its LF at the start of the next.
public struct SSEDecoder: Sendable {
    private var line: [UInt8] = []
    private var data: [UInt8] = []
    private var hasData = false
    private var eventName: String?
    private var lastID: String?
    private var skippedBOM = false
    private var sawCR = false

    public init() {}

    /// Feeds a chunk and returns every event it completed.
    public mutating func feed<Bytes: Sequence>(_ chunk: Bytes) -> [SSEEvent] where Bytes.Element == UInt8 {
        var events: [SSEEvent] = []
        feed(chunk) { events.append($0) }
        return events
    }

    /// Feeds a chunk, calling `emit` for each completed event (no intermediate array on the hot path).
    public mutating func feed<Bytes: Sequence>(_ chunk: Bytes, emit: (SSEEvent) -> Void) where Bytes.Element == UInt8 {
        for byte in chunk {
            if !skippedBOM {
                // The stream may start with U+FEFF (EF BB BF); drop it, byte by byte, only at the very start.
                let bom: [UInt8] = [0xEF, 0xBB, 0xBF]
                if line.count < 3, byte == bom[line.count], data.isEmpty {
                    line.append(byte)
                    if line.count == 3 { line.removeAll(keepingCapacity: true); skippedBOM = true }
                    continue
                }
                skippedBOM = true
            }
            if sawCR {
                sawCR = false
                if byte == 0x0A { continue }
            }
            if byte == 0x0A {
                processLine(emit: emit)
            } else if byte == 0x0D {
                sawCR = true
                processLine(emit: emit)
            } else {
                line.append(byte)
            }
        }
    }

    /// Call at end of stream: a final event without its blank line is not dispatched (per the spec),
    /// but is reported so callers can tell a clean end from a truncated one.
    public var hasPendingData: Bool { hasData || !line.isEmpty }

    private mutating func processLine(emit: (SSEEvent) -> Void) {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty {
            dispatch(emit: emit)
            return
        }
        if line[0] == UInt8(ascii: ":") { return }  // comment
        let colon = line.firstIndex(of: UInt8(ascii: ":"))
        let fieldEnd = colon ?? line.count
        var valueStart = colon.map { $0 + 1 } ?? line.count
        if valueStart < line.count, line[valueStart] == 0x20 { valueStart += 1 }
        let field = line[0..<fieldEnd]
        let value = line[valueStart..<line.count]
        if field.elementsEqual("data".utf8) {
            if hasData { data.append(0x0A) }
            data.append(contentsOf: value)
            hasData = true
        } else if field.elementsEqual("event".utf8) {
            eventName = String(decoding: value, as: UTF8.self)
        } else if field.elementsEqual("id".utf8) {
            if !value.contains(0) { lastID = String(decoding: value, as: UTF8.self) }
        }
        // `retry` and unknown fields are ignored.
    }

    private mutating func dispatch(emit: (SSEEvent) -> Void) {
        defer {
            data.removeAll(keepingCapacity: true)
            hasData = false
            eventName = nil
        }
        guard hasData else { return }
        emit(SSEEvent(event: eventName, data: String(decoding: data, as: UTF8.self), id: lastID))
    }
}

/// An incremental newline-delimited JSON splitter: bytes in, one line of bytes per JSON value out.
public struct NDJSONDecoder: Sendable {
    private var buffer: [UInt8] = []

    public init() {}

    public mutating func feed<Bytes: Sequence>(_ chunk: Bytes) -> [[UInt8]] where Bytes.Element == UInt8 {
        var lines: [[UInt8]] = []
        for byte in chunk {
            if byte == 0x0A {
                appendLine(to: &lines)
            } else {
                buffer.append(byte)
            }
        }
        return lines
    }

    /// At end of stream: the last line if it had no newline after it.
    public mutating func finish() -> [[UInt8]] {
        var lines: [[UInt8]] = []
        appendLine(to: &lines)
        return lines
    }

    private mutating func appendLine(to lines: inout [[UInt8]]) {
        defer { buffer.removeAll(keepingCapacity: true) }
        var line = buffer[...]
        while let last = line.last, last == 0x0D || last == 0x20 || last == 0x09 { line = line.dropLast() }
        while let first = line.first, first == 0x20 || first == 0x09 { line = line.dropFirst() }
        if !line.isEmpty { lines.append(Array(line)) }
    }
}
