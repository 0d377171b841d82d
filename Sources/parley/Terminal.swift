import Foundation
import ParleyCore
#if canImport(Glibc)
import Glibc
#endif

/// Unbuffered writes to a file descriptor: a streamed reply must appear as it arrives.
struct Terminal: Sendable {
    let fd: Int32

    static let standardOutput = Terminal(fd: STDOUT_FILENO)
    static let standardError = Terminal(fd: STDERR_FILENO)

    var isTerminal: Bool { isatty(fd) == 1 }

    /// Text that holds anything from outside the process (a provider's message, a session title, a
    /// model name from a file or the ledger): sanitized when this stream is a terminal, as is.
    /// Everything on stderr goes through here.
    func say(_ text: String) {
        guard isTerminal else { return write(text) }
        var sanitizer = TerminalSanitizer()
        write(sanitizer.sanitize(text))
    }

    /// `say` with a line end, for what `print` would have written.
    func line(_ text: String) { say(text + "\n") }

    func write(_ text: String) {
        var text = text
        text.withUTF8 { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 { if errno == EINTR { continue }; return }
                offset += n
            }
        }
    }
}
