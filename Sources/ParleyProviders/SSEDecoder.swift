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
    /// Longest line, and longest event (its data lines together), in bytes; past it `feed` throws, so a
    /// server that never sends a newline cannot grow memory without bound.
    public let maxEventBytes: Int
    private var line: [UInt8] = []
    private var data: [UInt8] = []
    private var hasData = false
    private var eventName: String?
    private var lastID: String?
    private var skippedBOM = false
    private var sawCR = false
    private var bomMatched = 0

    public init(maxEventBytes: Int = StreamLimits.standard.maxEventBytes) {
        self.maxEventBytes = maxEventBytes
    }

    /// Feeds a chunk and returns every event it completed.
    public mutating func feed<Bytes: Sequence>(_ chunk: Bytes) throws -> [SSEEvent] where Bytes.Element == UInt8 {
        var events: [SSEEvent] = []
        try feed(chunk) { events.append($0) }
        return events
    }

    /// Feeds a chunk, calling `emit` for each completed event.
    public mutating func feed<Bytes: Sequence>(_ chunk: Bytes, emit: (SSEEvent) -> Void) throws where Bytes.Element == UInt8 {
        let bytes = Array(chunk)
        try bytes.withUnsafeBytes { raw in
            try feedRaw(raw) { name, id, data in
                emit(SSEEvent(event: name, data: String(decoding: data, as: UTF8.self), id: id))
            }
        }
    }

    /// The hot path: whole lines are found with a scan of the chunk and handled in place; only a line
    /// split across chunks is copied. `emit` gets the event name, the last id and the data bytes, valid during the call.
    public mutating func feedRaw(_ chunk: UnsafeRawBufferPointer, emit: (String?, String?, UnsafeRawBufferPointer) -> Void) throws {
        var index = 0
        let count = chunk.count
        if !skippedBOM {
            // The stream may start with U+FEFF (EF BB BF); drop it, byte by byte, only at the very start.
            let bom: [UInt8] = [0xEF, 0xBB, 0xBF]
            while index < count, !skippedBOM {
                if bomMatched < 3, chunk[index] == bom[bomMatched] {
                    bomMatched += 1
                    index += 1
                    if bomMatched == 3 { skippedBOM = true }
                } else {
                    // Not a BOM after all: the bytes matched so far are ordinary text.
                    line.append(contentsOf: bom[0..<bomMatched])
                    skippedBOM = true
                }
            }
        }
        while index < count {
            if sawCR {
                sawCR = false
                if chunk[index] == 0x0A { index += 1; continue }
            }
            // Find the end of this line.
            let end = Self.lineEnd(chunk, from: index)
            guard line.count + (end - index) <= maxEventBytes else { throw StreamLimitExceeded(what: .event, limit: maxEventBytes) }
            if end == count {
                line.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[index..<end]))
                return
            }
            if chunk[end] == 0x0D { sawCR = true }
            if line.isEmpty {
                try processLine(UnsafeRawBufferPointer(rebasing: chunk[index..<end]), emit: emit)
            } else {
                line.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[index..<end]))
                let whole = line
                line.removeAll(keepingCapacity: true)
                try whole.withUnsafeBytes { raw in try processLine(raw, emit: emit) }
            }
            index = end + 1
        }
    }

    /// The index of the first LF or CR at or after `start`, or `chunk.count`. memchr is vectorised.
    @inline(__always)
    static func lineEnd(_ chunk: UnsafeRawBufferPointer, from start: Int) -> Int {
        guard let base = chunk.baseAddress, start < chunk.count else { return chunk.count }
        let length = chunk.count - start
        let newline = memchr(base + start, 0x0A, length).map { base.distance(to: UnsafeRawPointer($0)) } ?? chunk.count
        let carriageReturn = memchr(base + start, 0x0D, newline - start).map { base.distance(to: UnsafeRawPointer($0)) }
        return carriageReturn ?? newline
    }

    /// Call at end of stream: a final event without its blank line is not dispatched (per the spec),
    /// but is reported so callers can tell a clean end from a truncated one.
    public var hasPendingData: Bool { hasData || !line.isEmpty }

    @inline(__always)
    static func isField(_ field: UnsafeRawBufferPointer, _ name: StaticString) -> Bool {
        field.count == name.utf8CodeUnitCount && field.assumingMemoryBound(to: UInt8.self).equals(name)
    }

    private mutating func processLine(_ line: UnsafeRawBufferPointer, emit: (String?, String?, UnsafeRawBufferPointer) -> Void) throws {
        if line.isEmpty {
            dispatch(emit: emit)
            return
        }
        if line[0] == UInt8(ascii: ":") { return }  // comment
        let colon = line.firstIndex(of: UInt8(ascii: ":"))
        let fieldEnd = colon ?? line.count
        var valueStart = colon.map { $0 + 1 } ?? line.count
        if valueStart < line.count, line[valueStart] == 0x20 { valueStart += 1 }
        let field = UnsafeRawBufferPointer(rebasing: line[0..<fieldEnd])
        let value = UnsafeRawBufferPointer(rebasing: line[valueStart..<line.count])
        if Self.isField(field, "data") {
            guard data.count + value.count + 1 <= maxEventBytes else { throw StreamLimitExceeded(what: .event, limit: maxEventBytes) }
            if hasData { data.append(0x0A) }
            data.append(contentsOf: value)
            hasData = true
        } else if Self.isField(field, "event") {
            eventName = String(decoding: value.prefix(256), as: UTF8.self)
        } else if Self.isField(field, "id") {
            if !value.contains(0) { lastID = String(decoding: value.prefix(256), as: UTF8.self) }
        }
        // `retry` and unknown fields are ignored.
    }

    private mutating func dispatch(emit: (String?, String?, UnsafeRawBufferPointer) -> Void) {
        defer {
            data.removeAll(keepingCapacity: true)
            hasData = false
            eventName = nil
        }
        guard hasData else { return }
        data.withUnsafeBytes { emit(eventName, lastID, $0) }
    }
}
