import Foundation
import ParleyCore
import ParleyProviders

enum Fixture {
    static func bytes(_ name: String) throws -> [UInt8] {
        guard let url = Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures") else {
            throw FixtureError.missing(name)
        }
        return Array(try Data(contentsOf: url))
    }

    enum FixtureError: Error { case missing(String) }
}

/// Feeds `bytes` to a fresh decoder in the given pieces; returns the events and whether the terminator came.
func decode<D: ChatStreamDecoder>(_ make: () -> D, _ bytes: [UInt8], splits: [Int]) throws -> (events: [ChatEvent], terminated: Bool) {
    var decoder = make()
    var events: [ChatEvent] = []
    var start = 0
    for end in splits + [bytes.count] where end >= start {
        let piece = Array(bytes[start..<end])
        try piece.withUnsafeBytes { raw in try decoder.feed(raw) { events.append($0) } }
        start = end
    }
    return (events, decoder.sawTerminator)
}

/// Decodes whole, then split at every byte position and one byte at a time, and requires the same events.
func decodeEverySplit<D: ChatStreamDecoder>(_ make: () -> D, _ bytes: [UInt8]) throws -> (events: [ChatEvent], terminated: Bool) {
    let whole = try decode(make, bytes, splits: [])
    for position in 0...bytes.count {
        let split = try decode(make, bytes, splits: [position])
        guard split.events == whole.events, split.terminated == whole.terminated else {
            throw SplitMismatch(position: position)
        }
    }
    let dripped = try decode(make, bytes, splits: Array(1..<max(1, bytes.count)))
    guard dripped.events == whole.events else { throw SplitMismatch(position: -1) }
    return whole
}

struct SplitMismatch: Error, CustomStringConvertible {
    var position: Int
    var description: String { position < 0 ? "byte-at-a-time feeding gave other events" : "split at byte \(position) gave other events" }
}

extension Array where Element == ChatEvent {
    var text: String {
        compactMap { if case let .textDelta(t) = $0 { return t } else { return nil } }.joined()
    }
    var thinking: String {
        compactMap { if case let .thinkingDelta(t) = $0 { return t } else { return nil } }.joined()
    }
    var lastUsage: Usage? {
        compactMap { if case let .usage(u) = $0 { return u } else { return nil } }.last
    }
    var finishReasons: [FinishReason] {
        compactMap { if case let .finish(r) = $0 { return r } else { return nil } }
    }
    var toolCalls: [ToolCall] {
        var assembler = ToolCallAssembler()
        for case let .toolCallDelta(delta) in self { assembler.add(delta) }
        return assembler.calls
    }
    var errors: [ProviderError] {
        compactMap { if case let .error(e) = $0 { return e } else { return nil } }
    }
}
