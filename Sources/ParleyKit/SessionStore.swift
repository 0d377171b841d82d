import Foundation
import ParleyCore
#if canImport(Glibc)
import Glibc
#endif

/// A session file that cannot be read; it is left exactly as it is.
public struct SessionFileError: UserFacingError, Sendable {
    public var path: String
    public var problem: String
    public var userMessage: String { "\(path): \(problem); the file is left as it is" }
}

public struct SessionNotFound: UserFacingError, Sendable {
    public var query: String
    public var userMessage: String {
        query.isEmpty ? "there are no saved sessions yet" : "no session matches '\(query)'; `parley sessions list` shows them"
    }
}

/// Another Parley process is writing this session.
public struct SessionInUse: UserFacingError, Sendable {
    public var id: String
    public var pid: Int32?
    public var userMessage: String {
        "session \(id) is open in another Parley process\(pid.map { " (pid \($0))" } ?? ""); it is shown read-only"
    }
}

/// The sessions directory: one `ID.json` per session, written atomically, 0600 in a 0700 directory.
public struct SessionStore: Sendable {
    public let directory: URL

    public init(directory: URL) { self.directory = directory }

    /// `--sessions-dir`, else `PARLEY_SESSIONS_DIR`, else `$XDG_DATA_HOME/parley/sessions`.
    public static func directory(paths: ParleyPaths, environment: [String: String], override: String? = nil) -> URL {
        if let override, !override.isEmpty { return URL(fileURLWithPath: override) }
        if let variable = environment["PARLEY_SESSIONS_DIR"], !variable.isEmpty { return URL(fileURLWithPath: variable) }
        return paths.dataDirectory.appendingPathComponent("sessions")
    }

    public func url(for id: String) -> URL { directory.appendingPathComponent("\(id).json") }

    public func journalURL(for id: String) -> URL { directory.appendingPathComponent("\(id).journal") }

    /// Writes the whole session, then removes its journal (whose text the file now holds).
    public func save(_ session: Session) throws {
        try AtomicFile.write(try session.encoded(), to: url(for: session.id))
        unlink(journalURL(for: session.id).path)
    }

    /// Appends one line to the session's journal and syncs it: streamed text between full saves.
    public func appendJournal(_ entry: SessionJournalEntry, for id: String) throws {
        let path = journalURL(for: id).path
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw AtomicFile.WriteError(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        let line = JSONValue.object([("message", .string(entry.message)), ("append", .string(entry.append))]).serialized() + "\n"
        let ok = line.utf8CString.withUnsafeBufferPointer { buffer in
            Glibc.write(fd, buffer.baseAddress, buffer.count - 1) == buffer.count - 1
        }
        guard ok, fsync(fd) == 0 else { throw AtomicFile.WriteError(path: path, reason: String(cString: strerror(errno))) }
    }

    /// Folds a journal left by a process that did not get to its next full save (a crash or a kill)
    /// into the session. A torn last line is ignored.
    func applyJournal(to session: inout Session) {
        guard let data = FileManager.default.contents(atPath: journalURL(for: session.id).path) else { return }
        for line in data.split(separator: 0x0A) {
            guard let value = try? JSONValue.parse(Array(line)), let id = value["message"]?.string, let text = value["append"]?.string,
                  let index = session.messages.lastIndex(where: { $0.id == id }) else { continue }
            session.messages[index].content += text
        }
    }

    public func load(_ url: URL) throws -> Session {
        let path = url.path
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SessionFileError(path: path, problem: "cannot be read")
        }
        if data.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            throw SessionFileError(path: path, problem: "is empty")
        }
        struct Header: Decodable { var format: Int? }
        guard let header = try? JSONDecoder().decode(Header.self, from: data) else {
            throw SessionFileError(path: path, problem: "is not valid JSON (truncated or corrupt)")
        }
        guard let format = header.format else { throw SessionFileError(path: path, problem: "has no \"format\" field; it is not a Parley session") }
        guard format <= Session.currentFormat else {
            throw SessionFileError(path: path, problem: "was written by a newer Parley (format \(format)); this one reads format \(Session.currentFormat)")
        }
        do {
            var session = try Session.decoder.decode(Session.self, from: data)
            applyJournal(to: &session)
            return session
        } catch let DecodingError.keyNotFound(key, context) {
            throw SessionFileError(path: path, problem: "is missing \"\(key.stringValue)\"\(Self.at(context))")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            throw SessionFileError(path: path, problem: "has a wrong value\(Self.at(context))")
        } catch let DecodingError.dataCorrupted(context) {
            throw SessionFileError(path: path, problem: "\(context.debugDescription)\(Self.at(context))")
        } catch {
            throw SessionFileError(path: path, problem: "cannot be decoded: \(error)")
        }
    }

    static func at(_ context: DecodingError.Context) -> String {
        let path = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        return path.isEmpty ? "" : " at \(path.hasPrefix(".") ? String(path.dropFirst()) : path)"
    }

    /// Every session that reads, newest first, and one line for each file that does not.
    public func list() -> (sessions: [Session], problems: [SessionFileError]) {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
            .filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }
        var sessions: [Session] = []
        var problems: [SessionFileError] = []
        for file in files {
            do { sessions.append(try load(directory.appendingPathComponent(file))) } catch let error as SessionFileError {
                problems.append(error)
            } catch {
                problems.append(SessionFileError(path: directory.appendingPathComponent(file).path, problem: "\(error)"))
            }
        }
        sessions.sort { ($0.updatedAt, $0.id) > ($1.updatedAt, $1.id) }
        return (sessions, problems)
    }

    /// The most recent session for nil; else an exact id, then an id prefix, then a title prefix (any case).
    public func find(_ query: String?) throws -> Session {
        // An exact id reads one file, not the whole directory.
        if let query, !query.isEmpty, !query.contains("/"), FileManager.default.fileExists(atPath: url(for: query).path) {
            return try load(url(for: query))
        }
        let (sessions, _) = list()
        guard let query, !query.isEmpty else {
            guard let newest = sessions.first else { throw SessionNotFound(query: "") }
            return newest
        }
        if let exact = sessions.first(where: { $0.id == query }) { return exact }
        if let byID = sessions.first(where: { $0.id.hasPrefix(query) }) { return byID }
        if let byTitle = sessions.first(where: { $0.title.lowercased().hasPrefix(query.lowercased()) }) { return byTitle }
        throw SessionNotFound(query: query)
    }

    public func remove(_ id: String) throws {
        do { try FileManager.default.removeItem(at: url(for: id)) } catch {
            throw AtomicFile.WriteError(path: url(for: id).path, reason: error.localizedDescription)
        }
        try? FileManager.default.removeItem(at: directory.appendingPathComponent("\(id).lock"))
        try? FileManager.default.removeItem(at: journalURL(for: id))
    }

    /// Takes the session's write lock: an flock on `ID.lock`, which the kernel drops when the holder
    /// dies, so a lock left by a killed process is simply taken over.
    public func lock(_ id: String) throws -> SessionLock {
        try AtomicFile.ensureDirectory(directory)
        let path = directory.appendingPathComponent("\(id).lock").path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw AtomicFile.WriteError(path: path, reason: String(cString: strerror(errno))) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = pread(fd, &buffer, buffer.count, 0)
            close(fd)
            let holder = n > 0 ? Int32(String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) : nil
            throw SessionInUse(id: id, pid: holder)
        }
        ftruncate(fd, 0)
        let pid = "\(getpid())\n"
        _ = pid.withCString { pwrite(fd, $0, strlen($0), 0) }
        return SessionLock(fd: fd)
    }
}

/// Held while a process may write a session; released by `release()` or when the process ends.
public final class SessionLock: @unchecked Sendable {
    private var fd: Int32

    init(fd: Int32) { self.fd = fd }

    public func release() {
        guard fd >= 0 else { return }
        flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }

    deinit { release() }
}
