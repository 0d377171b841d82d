import Foundation

extension NSRegularExpression {
    /// Whether the expression matches anywhere in `text`, or nil when the search was still running after
    /// `limit` (an expression that backtracks exponentially). ICU calls back during one match attempt
    /// with `.reportProgress`, which is where the search is stopped (see SchemaPattern.search).
    public func matches(_ text: String, within limit: Duration) -> Bool? {
        let deadline = DispatchTime.now().uptimeNanoseconds &+ UInt64(limit.components.seconds) * 1_000_000_000
            &+ UInt64(limit.components.attoseconds / 1_000_000_000)
        var found: Bool? = false
        var calls = 0
        enumerateMatches(in: text, options: [.reportProgress], range: NSRange(location: 0, length: text.utf16.count)) { result, _, stop in
            if result != nil {
                found = true
                stop.pointee = true
                return
            }
            calls &+= 1
            if calls & 15 == 0, DispatchTime.now().uptimeNanoseconds >= deadline {
                found = nil
                stop.pointee = true
            }
        }
        return found
    }
}
