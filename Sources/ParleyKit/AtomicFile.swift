import Foundation
import ParleyCore
#if canImport(Glibc)
import Glibc
#endif

/// Writes files the crash-safe way: temp file beside the target, fsync, rename, fsync of the directory.
/// Every file Parley writes is mode 0600 in a 0700 directory.
public enum AtomicFile {
    public struct WriteError: UserFacingError, Sendable {
        public var path: String
        public var reason: String
        /// Raised by a read (PrivateFile.read): the message says so.
        public var reading = false
        public var userMessage: String { "cannot \(reading ? "read" : "write") \(path): \(reason)" }

        public init(path: String, reason: String, reading: Bool = false) {
            self.path = path
            self.reason = reason
            self.reading = reading
        }
    }

    public static func write(_ data: Data, to url: URL) throws {
        let directory = url.deletingLastPathComponent()
        try ensureDirectory(directory)
        let temp = directory.appendingPathComponent(".\(url.lastPathComponent).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp")
        let fd = open(temp.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw WriteError(path: url.path, reason: String(cString: strerror(errno))) }
        var ok = false
        defer {
            if !ok { unlink(temp.path) }
        }
        let written = data.withUnsafeBytes { raw -> Bool in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 { if errno == EINTR { continue }; return false }
                offset += n
            }
            return true
        }
        let synced = written && fsync(fd) == 0
        close(fd)
        guard synced else { throw WriteError(path: url.path, reason: String(cString: strerror(errno))) }
        guard rename(temp.path, url.path) == 0 else { throw WriteError(path: url.path, reason: String(cString: strerror(errno))) }
        ok = true
        let dirFD = open(directory.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirFD >= 0 { fsync(dirFD); close(dirFD) }
    }

    /// Creates the directory (and parents) with mode 0700 if it is missing.
    public static func ensureDirectory(_ url: URL) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue { return }
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw WriteError(path: url.path, reason: error.localizedDescription)
        }
    }
}
