import Foundation

/// An incremental newline-delimited JSON splitter: bytes in, one line of bytes per JSON value out.
public struct NDJSONDecoder: Sendable {
    /// Longest line in bytes; past it `feed` throws.
    public let maxLineBytes: Int
    private var buffer: [UInt8] = []

    public init(maxLineBytes: Int = StreamLimits.standard.maxEventBytes) {
        self.maxLineBytes = maxLineBytes
    }

    public mutating func feed<Bytes: Sequence>(_ chunk: Bytes) throws -> [[UInt8]] where Bytes.Element == UInt8 {
        var lines: [[UInt8]] = []
        try feed(chunk, into: &lines)
        return lines
    }

    /// Appends each completed line to `lines`; the lines before an over-long one are there when it throws.
    public mutating func feed<Bytes: Sequence>(_ chunk: Bytes, into lines: inout [[UInt8]]) throws where Bytes.Element == UInt8 {
        for byte in chunk {
            if byte == 0x0A {
                appendLine(to: &lines)
            } else {
                guard buffer.count < maxLineBytes else { throw StreamLimitExceeded(what: .event, limit: maxLineBytes) }
                buffer.append(byte)
            }
        }
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
