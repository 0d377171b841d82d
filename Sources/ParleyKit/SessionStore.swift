import Foundation
import ParleyCore
#if canImport(Glibc)
import Glibc
#endif

/// A session file that cannot be read; it is left exactly as it is.
public struct SessionFileError: UserFacingError, Sendable {
    public var path: String
    public var problem: String
    public var userMessage: String { "\(TerminalSanitizer.line(path, limit: 300)): \(problem); the file is left as it is" }
}

/// A session name that matches more than one session: nothing is opened or deleted.
public struct SessionAmbiguous: UserFacingError, Sendable {
    public var query: String
    public var matches: [(id: String, title: String)]
    public var userMessage: String {
        let shown = matches.prefix(10).map { "\($0.id) “\($0.title)”" }.joined(separator: ", ")
        let more = matches.count > 10 ? " and \(matches.count - 10) more" : ""
        return "'\(query)' matches \(matches.count) sessions: \(shown)\(more); give more of the id"
    }
}

/// Session ids become file names, so only a fixed alphabet is accepted: letters, digits, `-` and `_`,
/// 1 to 64 of them (Parley's own are `20261125-173100-ab12`). Anything else, `../x` or `a/b` or an
/// empty id, never reaches a path.
public enum SessionID {
    public static let maxLength = 64

    public static func isValid(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= maxLength && id.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x2D || byte == 0x5F
        }
    }

    public static func validate(_ id: String) throws(SessionIDError) {
        guard isValid(id) else { throw SessionIDError(id: id) }
    }
}

public struct SessionIDError: UserFacingError, Sendable {
    public var id: String
    public var userMessage: String {
        "'\(id.prefix(80))' is not a session id (letters, digits, '-' and '_', at most \(SessionID.maxLength)); nothing was read or written"
    }
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

    /// The file of a session. Callers validate the id first; an invalid one still maps to a name inside
    /// the directory (its other characters replaced), never to a path outside it.
    public func url(for id: String) -> URL { file(id, "json") }

    public func journalURL(for id: String) -> URL { file(id, "journal") }

    func lockURL(for id: String) -> URL { file(id, "lock") }

    private func file(_ id: String, _ suffix: String) -> URL {
        let safe = SessionID.isValid(id) ? id : String(String.UnicodeScalarView(id.unicodeScalars.prefix(SessionID.maxLength).map {
            $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0)) ? $0 : "_"
        }))
        return directory.appendingPathComponent("\(safe.isEmpty ? "_" : safe).\(suffix)")
    }

    /// Writes the whole session, then removes its journal (whose text the file now holds).
    public func save(_ session: Session) throws {
        try SessionID.validate(session.id)
        try AtomicFile.write(try session.encoded(), to: url(for: session.id))
        unlink(journalURL(for: session.id).path)
    }

    /// Appends one line to the session's journal and syncs it: streamed text between full saves.
    public func appendJournal(_ entry: SessionJournalEntry, for id: String) throws {
        try SessionID.validate(id)
        let path = journalURL(for: id).path
        let fd = try PrivateFile.open(path, O_WRONLY | O_CREAT | O_APPEND)
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
        guard let data = try? PrivateFile.read(journalURL(for: session.id).path, limit: Self.maxFileBytes) else { return }
        for line in data.split(separator: 0x0A) {
            guard let value = try? JSONValue.parse(Array(line)), let id = value["message"]?.string, let text = value["append"]?.string,
                  let index = session.messages.lastIndex(where: { $0.id == id }) else { continue }
            session.messages[index].content += text
        }
    }

    /// The largest session file read (a 10,000-message session is about 9 MB).
    public static let maxFileBytes = 256 << 20

    public func load(_ url: URL) throws -> Session {
        let path = url.path
        let data: Data
        do { data = try PrivateFile.read(path, limit: Self.maxFileBytes) } catch {
            throw SessionFileError(path: path, problem: "cannot be read (\(error.reason))")
        }
        var session = try Self.decode(data, path: path, name: url.deletingPathExtension().lastPathComponent)
        applyJournal(to: &session)
        return session
    }

    /// A session file's bytes as a session, or a `SessionFileError` saying what is wrong with them. The
    /// id must be safe and equal to `name` (the file name without `.json`): it names the session's lock
    /// and journal, so a crafted file can never make Parley write or delete anything but its own files.
    public static func decode(_ data: Data, path: String, name: String) throws -> Session {
        if data.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            throw SessionFileError(path: path, problem: "is empty")
        }
        let session = try data.withUnsafeBytes { raw in
            try SessionFastDecoder.decode(raw.bindMemory(to: UInt8.self)) ?? codableDecode(data, path: path)
        }
        guard SessionID.isValid(session.id), session.id == name else {
            let shown = TerminalSanitizer.line(session.id, limit: 80)
            throw SessionFileError(path: path, problem: SessionID.isValid(session.id)
                ? "has the id \"\(shown)\", which is not its file name; rename the file to \(shown).json"
                : "has the id \"\(shown)\", which is not a session id (letters, digits, '-' and '_'); it is not opened")
        }
        return session
    }

    /// The slow path, for files the fast decoder gives up on: Codable, which names what is wrong and where.
    static func codableDecode(_ data: Data, path: String) throws -> Session {
        struct Header: Decodable { var format: Int? }
        guard let header = try? JSONDecoder().decode(Header.self, from: data) else {
            throw SessionFileError(path: path, problem: "is not valid JSON (truncated or corrupt)")
        }
        guard let format = header.format else { throw SessionFileError(path: path, problem: "has no \"format\" field; it is not a Parley session") }
        guard format <= Session.currentFormat else {
            throw SessionFileError(path: path, problem: "was written by a newer Parley (format \(format)); this one reads format \(Session.currentFormat)")
        }
        let session: Session
        do {
            session = try Session.decoder.decode(Session.self, from: data)
        } catch let DecodingError.keyNotFound(key, context) {
            throw SessionFileError(path: path, problem: "is missing \"\(TerminalSanitizer.line(key.stringValue, limit: 80))\"\(Self.at(context))")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            throw SessionFileError(path: path, problem: "has a wrong value\(Self.at(context))")
        } catch let DecodingError.dataCorrupted(context) {
            throw SessionFileError(path: path, problem: "\(TerminalSanitizer.line(context.debugDescription, limit: 200))\(Self.at(context))")
        } catch {
            throw SessionFileError(path: path, problem: "cannot be decoded: \(TerminalSanitizer.line("\(error)", limit: 200))")
        }
        return session
    }

    static func at(_ context: DecodingError.Context) -> String {
        let path = TerminalSanitizer.line(context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined(), limit: 200)
        return path.isEmpty ? "" : " at \(path.hasPrefix(".") ? String(path.dropFirst()) : path)"
    }

    /// Every session that reads, newest first, and one line for each file that does not.
    public func list() -> (sessions: [Session], problems: [SessionFileError]) {
        var sessions: [Session] = []
        var problems: [SessionFileError] = []
        for file in sessionFiles() {
            do { sessions.append(try load(directory.appendingPathComponent(file))) } catch let error as SessionFileError {
                problems.append(error)
            } catch {
                problems.append(SessionFileError(path: directory.appendingPathComponent(file).path, problem: "\(error)"))
            }
        }
        sessions.sort { ($0.updatedAt, $0.id) > ($1.updatedAt, $1.id) }
        return (sessions, problems)
    }

    /// Every session's summary, newest first, and one line for each file that does not read. Only the
    /// top-level fields are decoded; a file the quick reader does not take is read whole (and named if bad).
    public func summaries() -> (sessions: [SessionSummary], problems: [SessionFileError]) {
        var sessions: [SessionSummary] = []
        var problems: [SessionFileError] = []
        for file in sessionFiles() {
            let url = directory.appendingPathComponent(file)
            if let (summary, _) = quickSummary(url) {
                sessions.append(summary)
                continue
            }
            do { sessions.append(SessionSummary(try load(url))) } catch let error as SessionFileError {
                problems.append(error)
            } catch {
                problems.append(SessionFileError(path: url.path, problem: "\(error)"))
            }
        }
        sessions.sort { ($0.updatedAt, $0.id) > ($1.updatedAt, $1.id) }
        return (sessions, problems)
    }

    /// A file's summary by the quick reader, with its bytes; nil when the reader does not take it or its id
    /// is not its name (the caller then reads it whole, which names the problem).
    private func quickSummary(_ url: URL) -> (SessionSummary, Data)? {
        guard let data = try? PrivateFile.read(url.path, limit: Self.maxFileBytes),
              let summary = data.withUnsafeBytes({ SessionSummary.read($0.bindMemory(to: UInt8.self)) }),
              SessionID.isValid(summary.id), summary.id == url.deletingPathExtension().lastPathComponent else { return nil }
        return (summary, data)
    }

    private func sessionFiles() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }
    }

    /// The most recent session that reads, and the files changed after it that do not, each with its
    /// problem (`--resume` names those it passed over). Each file's summary is read, and the newest file's
    /// bytes kept and decoded (not read twice).
    public func newest() throws -> (session: Session, passedOver: [SessionFileError]) {
        var newest: (summary: SessionSummary, data: Data)?
        var unread: [URL] = []
        for file in sessionFiles() {
            let url = directory.appendingPathComponent(file)
            guard let (summary, data) = quickSummary(url) else { unread.append(url); continue }
            if newest.map({ (summary.updatedAt, summary.id) > ($0.summary.updatedAt, $0.summary.id) }) ?? true { newest = (summary, data) }
        }
        if let newest, var session = try? Self.decode(newest.data, path: url(for: newest.summary.id).path, name: newest.summary.id) {
            applyJournal(to: &session)
            return (session, problems(in: unread, newerThan: session))
        }
        for summary in summaries().sessions {
            if let session = try? load(url(for: summary.id)) { return (session, problems(in: unread, newerThan: session)) }
        }
        throw SessionNotFound(query: "")
    }

    /// Of the files the quick reader did not take, those changed since `session`'s (timestamps tick in
    /// milliseconds: the same tick counts) that do not read whole.
    private func problems(in unread: [URL], newerThan session: Session) -> [SessionFileError] {
        func modified(_ path: String) -> Date? {
            (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date
        }
        guard !unread.isEmpty, let opened = modified(url(for: session.id).path) else { return [] }
        var problems: [SessionFileError] = []
        for url in unread {
            guard let changed = modified(url.path), changed >= opened else { continue }
            do { _ = try load(url) } catch let error as SessionFileError {
                problems.append(error)
            } catch {
                problems.append(SessionFileError(path: url.path, problem: "\(error)"))
            }
        }
        return problems
    }

    /// The most recent session for nil; else an exact id, then the one session whose id starts with the
    /// query, then the one whose title does (any case). Several matches are an error that lists them; an
    /// empty query matches nothing (it is never taken to mean "the newest").
    public func find(_ query: String?) throws -> Session {
        // An exact id reads one file, not the whole directory.
        if let query, SessionID.isValid(query), FileManager.default.fileExists(atPath: url(for: query).path) {
            return try load(url(for: query))
        }
        guard let query else { return try newest().session }
        // Otherwise summaries pick the one session, and only it is read whole.
        let (sessions, _) = summaries()
        let trimmed = query.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { throw SessionNotFound(query: query) }
        if let exact = sessions.first(where: { $0.id == trimmed }) { return try load(url(for: exact.id)) }
        for matches in [sessions.filter { $0.id.hasPrefix(trimmed) },
                        sessions.filter { $0.title.lowercased().hasPrefix(trimmed.lowercased()) }] where !matches.isEmpty {
            guard matches.count == 1 else { throw SessionAmbiguous(query: trimmed, matches: matches.map { ($0.id, $0.title) }) }
            return try load(url(for: matches[0].id))
        }
        throw SessionNotFound(query: trimmed)
    }

    /// Deletes a session's file, journal and lock: only names built from a valid id, inside the directory.
    public func remove(_ id: String) throws {
        try SessionID.validate(id)
        guard unlink(url(for: id).path) == 0 else {
            throw AtomicFile.WriteError(path: url(for: id).path, reason: String(cString: strerror(errno)))
        }
        // unlink removes a link planted there itself, never what it points at.
        unlink(lockURL(for: id).path)
        unlink(journalURL(for: id).path)
    }

    /// Takes the session's write lock: an flock on `ID.lock`, which the kernel drops when the holder
    /// dies, so a lock left by a killed process is simply taken over.
    public func lock(_ id: String) throws -> SessionLock {
        try SessionID.validate(id)
        try AtomicFile.ensureDirectory(directory)
        let path = lockURL(for: id).path
        let fd = try PrivateFile.open(path, O_RDWR | O_CREAT)
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
