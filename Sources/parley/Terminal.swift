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

    /// The most stdin Parley reads for a prompt (32 MB, some eight million tokens: more than any model takes).
    static let standardInputLimit = 32 << 20

    /// Stdin, whole, up to `standardInputLimit`; more is an error, not an unbounded read.
    static func readStandardInput() throws -> String {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = Glibc.read(STDIN_FILENO, &buffer, buffer.count)
            if n < 0 { if errno == EINTR { continue }; break }
            if n == 0 { break }
            data.append(contentsOf: buffer[0..<n])
            if data.count > standardInputLimit {
                throw StandardInputTooLarge()
            }
        }
        return String(decoding: data, as: UTF8.self)
    }

    struct StandardInputTooLarge: UserFacingError {
        var userMessage: String { "stdin is larger than \(Terminal.standardInputLimit >> 20) MB; no model takes that much: send a part of it" }
    }

    /// `say` with a line end, for what `print` would have written.
    func line(_ text: String) { say(text + "\n") }

    func write(_ text: String) {
        _ = writeReporting(text)
    }

    /// Writes all of `text`; the errno of a failed write (EPIPE when the reader has gone), nil when all went.
    func writeReporting(_ text: String) -> Int32? {
        var text = text
        return text.withUTF8 { buffer -> Int32? in
            var offset = 0
            while offset < buffer.count {
                let n = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                offset += n
            }
            return nil
        }
    }
}

/// Stdout failed while an answer streamed into it: the reply is stopped (so the provider stops
/// generating, and charging for, text nobody reads).
struct StandardOutputFailed: UserFacingError {
    let errno: Int32
    /// The reader went away (`| head`): like a program killed by SIGPIPE, exit 141 and say nothing.
    var readerLeft: Bool { errno == EPIPE }
    var userMessage: String {
        "cannot write the answer to stdout: \(String(cString: strerror(errno))); the reply was stopped"
    }
}
