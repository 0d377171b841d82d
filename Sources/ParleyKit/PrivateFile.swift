import Foundation
import ParleyCore
#if canImport(Glibc)
import Glibc
#endif

/// Opens Parley's own files so that nobody else's can stand in for them: a symlink planted at the path
/// is refused (O_NOFOLLOW), the file must be a regular file owned by this user, and it is kept 0600.
/// Another local user who can write to a shared directory (or a crafted archive unpacked into ours)
/// could otherwise redirect a write, a truncate or an append to any file this user may touch.
public enum PrivateFile {
    /// Opens `path` with `flags` (O_NOFOLLOW and O_CLOEXEC added; O_CREAT makes it 0600). With `owned`,
    /// the file must be this user's (and is made 0600); without, only a regular file (for reading files
    /// that may have come from elsewhere, such as a downloaded session).
    public static func open(_ path: String, _ flags: Int32, owned: Bool = true) throws(AtomicFile.WriteError) -> Int32 {
        let fd = Glibc.open(path, flags | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let reason = errno == ELOOP ? "it is a symbolic link; Parley does not follow links for its own files (remove it)"
                : String(cString: strerror(errno))
            throw AtomicFile.WriteError(path: path, reason: reason)
        }
        do { try check(fd, path: path, owned: owned) } catch { close(fd); throw error }
        return fd
    }

    /// Checks an open file: regular; with `owned`, owned by us and made 0600 if it was looser.
    static func check(_ fd: Int32, path: String, owned: Bool) throws(AtomicFile.WriteError) {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw AtomicFile.WriteError(path: path, reason: String(cString: strerror(errno))) }
        guard info.st_mode & S_IFMT == S_IFREG else { throw AtomicFile.WriteError(path: path, reason: "it is not a regular file") }
        guard owned else { return }
        guard info.st_uid == geteuid() else {
            throw AtomicFile.WriteError(path: path, reason: "it belongs to another user (uid \(info.st_uid)); Parley uses only its own files")
        }
        // Writable by others: someone else may have changed it already, so it is refused, not repaired.
        guard info.st_mode & 0o022 == 0 else {
            throw AtomicFile.WriteError(path: path, reason: "other users can write to it; check it, then chmod 600 it or remove it")
        }
        if info.st_mode & 0o077 != 0 { fchmod(fd, 0o600) }
    }

    /// Creates the file (0600) if it is missing, or checks the one that is there, before a library
    /// (SQLite) opens it by path.
    public static func prepare(_ path: String) throws(AtomicFile.WriteError) {
        close(try open(path, O_RDWR | O_CREAT))
    }

    /// Reads a whole regular file without following a symlink, at most `limit` bytes (a bigger one is an
    /// error, not a partial read).
    public static func read(_ path: String, limit: Int = 64 << 20, owned: Bool = false, trustedOwner: Bool = false) throws(AtomicFile.WriteError) -> Data {
        // O_NONBLOCK: a FIFO or a device at the path must not hang the open; it is then refused as not regular.
        let fd: Int32
        do { fd = try open(path, O_RDONLY | O_NONBLOCK, owned: owned) } catch {
            throw AtomicFile.WriteError(path: error.path, reason: error.reason, reading: true)
        }
        if trustedOwner {
            var info = stat()
            if fstat(fd, &info) != 0 || !(info.st_uid == geteuid() || info.st_uid == 0) || info.st_mode & 0o022 != 0 {
                close(fd)
                throw AtomicFile.WriteError(path: path, reason: "it belongs to another user or others can write to it; Parley reads templates and schemas only from you or root", reading: true)
            }
        }
        defer { close(fd) }
        var data = Data()
        // A regular file is read into one buffer of its size: growing a Data by appends left freed
        // copies of every size up to the file's behind (a resumed 9 MB session held 7 MB more).
        var info = stat()
        if fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_size > 0, info.st_size <= limit {
            let size = Int(info.st_size)
            data = Data(count: size)
            var filled = 0
            while filled < size {
                let n = data.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + filled, size - filled) }
                if n < 0 { if errno == EINTR { continue }; throw AtomicFile.WriteError(path: path, reason: String(cString: strerror(errno)), reading: true) }
                if n == 0 { break }
                filled += n
            }
            // Shrunk while being read: what was there. Grown: the rest is appended below.
            if filled < size { return data.prefix(filled) }
        }
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = Glibc.read(fd, &buffer, buffer.count)
            if n < 0 { if errno == EINTR { continue }; throw AtomicFile.WriteError(path: path, reason: String(cString: strerror(errno)), reading: true) }
            if n == 0 { return data }
            data.append(contentsOf: buffer[0..<n])
            if data.count > limit { throw AtomicFile.WriteError(path: path, reason: "it is larger than \(limit >> 20) MB", reading: true) }
        }
    }

    /// A new directory only this user can enter (mkdtemp, 0700) under `TMPDIR` or /tmp, for files that
    /// must not have a name another local user could guess and plant a link at.
    public static func temporaryDirectory() throws(AtomicFile.WriteError) -> String {
        var base = FileManager.default.temporaryDirectory.path
        while base.hasSuffix("/"), base.count > 1 { base.removeLast() }
        var template = Array((base + "/parley-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw AtomicFile.WriteError(path: base, reason: String(cString: strerror(errno)))
        }
        return String(cString: made)
    }
}
