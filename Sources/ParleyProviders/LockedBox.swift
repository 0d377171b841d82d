import Foundation

/// A value behind a lock, shared across threads (the transport's clients, the last resume time, the
/// team database's state).
public final class LockedBox<Value>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()

    public init(_ value: Value) { self.value = value }

    public func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
