import Foundation

extension NSRegularExpression {
    /// Calls `body` with each match in `text` (until it returns false), stopping the search once it has
    /// run for `limit`; returns false when it was stopped that way (an expression that backtracks
    /// exponentially). ICU calls back during one match attempt with `.reportProgress`, which is where
    /// the search is stopped (as SchemaPattern.search does for schemas).
    public func enumerateMatches(in text: String, within limit: Duration, _ body: (NSTextCheckingResult) -> Bool) -> Bool {
        let deadline = DispatchTime.now().uptimeNanoseconds &+ UInt64(limit.components.seconds) * 1_000_000_000
            &+ UInt64(limit.components.attoseconds / 1_000_000_000)
        var finished = true
        var calls = 0
        // Foundation's block is declared escaping though it runs only during this call.
        withoutActuallyEscaping(body) { body in
        enumerateMatches(in: text, options: [.reportProgress], range: NSRange(location: 0, length: text.utf16.count)) { result, _, stop in
            if let result {
                if !body(result) { stop.pointee = true }
                return
            }
            // Reading the clock on every call would slow a long scan; every sixteenth is enough.
            calls &+= 1
            if calls & 15 == 0, DispatchTime.now().uptimeNanoseconds >= deadline {
                finished = false
                stop.pointee = true
            }
        }
        }
        return finished
    }

    /// Whether the expression matches anywhere in `text`, or nil when the search ran past `limit`.
    public func matches(_ text: String, within limit: Duration) -> Bool? {
        var found = false
        let finished = enumerateMatches(in: text, within: limit) { _ in found = true; return false }
        return found ? true : (finished ? false : nil)
    }
}
