/// Newline-delimited messages out of a byte stream read in chunks: each byte is looked at once however
/// long a line grows (the readers of MCP pipes scanned the whole buffer again on every read, which made a
/// 20 MB line take 90 s of CPU), and a line longer than `limit` is a failure, not memory.
public struct LineSplitter: Sendable {
    public let limit: Int
    private var buffer: [UInt8] = []
    /// The first byte not yet handed out.
    private var start = 0
    /// Bytes from `start` up to here hold no newline.
    private var scanned = 0

    public init(limit: Int) { self.limit = limit }

    public mutating func append<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        if start > 0, start >= buffer.count / 2 {
            buffer.removeFirst(start)
            scanned -= start
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete line (without its newline), or nil until more bytes come.
    public mutating func next() -> [UInt8]? {
        while scanned < buffer.count {
            if buffer[scanned] == UInt8(ascii: "\n") {
                let line = Array(buffer[start..<scanned])
                scanned += 1
                start = scanned
                return line
            }
            scanned += 1
        }
        return nil
    }

    /// The line being read is longer than `limit`.
    public var isOverLimit: Bool { buffer.count - start > limit }
}
