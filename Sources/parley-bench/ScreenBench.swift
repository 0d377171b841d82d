import Foundation
import ParleyCore
import ParleyTUI
#if canImport(Glibc)
import Glibc
#endif

/// Resident memory of this process, from /proc/self/statm.
func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    return fields.count > 1 ? (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    let sorted = values.sorted()
    return sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

/// A reply shaped like a real one: a paragraph with inline styling, a list, a fenced code block.
func sampleReply(_ i: Int) -> String {
    """
    Here is answer **\(i)**: the function below reads a file *line by line* and counts words, \
    which keeps memory flat even for very large inputs. It uses `split(separator:)` on each line.

    - open the file with `FileHandle`
    - read it in 64 KB blocks
    - count the words of each complete line

    ```swift
    func countWords(in path: String) throws -> Int {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        return text.split { $0 == " " || $0 == "\\n" }.count
    }
    ```

    That is all; 日本語 and emoji 👍🏽 wrap by display width too.
    """
}

/// The screen's pure core with 10,000 messages: the work between a keystroke (or a token) and a frame,
/// short of the terminal write. Uses the same reducer and renderer as the app.
func screenBenchmark(messages: Int) {
    let width = 120, height = 40
    var state = ChatState(width: width, height: height, model: "local:smollm2")
    let memoryBefore = residentBytes()
    var start = ContinuousClock.now
    var textBytes = 0
    for i in 0..<(messages / 2) {
        let prompt = "Question \(i): how do I count the words in a large file without reading it all into memory?"
        state.input.set(prompt)
        _ = reduce(&state, .input(.key(.enter)))
        let reply = sampleReply(i)
        _ = reduce(&state, .engine(.delta(reply)))
        _ = reduce(&state, .engine(.finished(tokensPerSecond: 100)))
        textBytes += prompt.utf8.count + reply.utf8.count
    }
    let building = (ContinuousClock.now - start).seconds
    var frame = Renderer.render(state)
    let memoryAfter = residentBytes()
    print(String(format: "%d messages (%.1f MB of text, %d rows at %dx%d) added through the reducer in %.2f s; resident memory %.0f MB → %.0f MB",
                 state.entries.count, Double(textBytes) / 1e6, state.layout.totalRows, width, height, building,
                 Double(memoryBefore) / 1e6, Double(memoryAfter) / 1e6))

    func timed(_ runs: Int, _ body: () -> Void) -> [Double] {
        (0..<runs).map { _ in
            let t = ContinuousClock.now
            body()
            return (ContinuousClock.now - t).milliseconds
        }
    }
    func report(_ label: String, _ samples: [Double]) {
        print(String(format: "%@: median %.3f ms, p99 %.3f ms, max %.3f ms (%d runs)", label, median(samples), percentile(samples, 0.99), samples.max() ?? 0, samples.count))
    }

    report("full frame render at the bottom", timed(500) { frame = Renderer.render(state) })
    report("keystroke → frame (reduce + render)", timed(1000) {
        _ = reduce(&state, .input(.key(.character("x"))))
        frame = Renderer.render(state)
    })
    state.input.set("")
    report("PgUp → frame, walking up through history", timed(1000) {
        _ = reduce(&state, .input(.key(.pageUp)))
        frame = Renderer.render(state)
    })
    _ = reduce(&state, .input(.key(.end)))
    state.input.set("Another question?")
    _ = reduce(&state, .input(.key(.enter)))
    // As the runtime does: the layout is settled on the state itself before each frame.
    let longLine = timed(2000) {
        _ = reduce(&state, .engine(.delta(" token")))
        settleLayout(&state)
        frame = Renderer.render(state)
    }
    report("streamed token → frame, a line growing to 12 KB (reduce + render, \(state.entries.count - 2) messages above)", longLine)
    // (Both with the screen full of the line: a frame's cost follows the cells drawn, not the line's length.)
    print(String(format: "  the same while the line is at 6 KB: median %.3f ms; at 12 KB: median %.3f ms",
                 median(Array(longLine[1000..<1200])), median(Array(longLine.suffix(200)))))
    report("streamed token → frame, short lines", timed(2000) {
        _ = reduce(&state, .engine(.delta(Int.random(in: 0..<12) == 0 ? " token\n" : " token")))
        settleLayout(&state)
        frame = Renderer.render(state)
    })
    _ = reduce(&state, .engine(.finished(tokensPerSecond: 100)))
    report("resize → frame (re-wraps the rows near the view)", timed(5) {
        _ = reduce(&state, .resize(width: state.width == width ? 100 : width, height: height))
        frame = Renderer.render(state)
    })

    // A 1 MB bracketed paste: decoded, inserted, and the frames after it.
    var line = "let value = compute(input, with: options) // a line of pasted source code, about eighty bytes\n"
    while line.utf8.count < 100 { line += " " }
    let paste = String(repeating: line, count: 1_000_000 / line.utf8.count)
    var decoder = InputDecoder()
    let bytes = Array("\u{1B}[200~".utf8) + Array(paste.utf8) + Array("\u{1B}[201~".utf8)
    start = ContinuousClock.now
    var events: [InputEvent] = []
    var offset = 0
    while offset < bytes.count {  // as read(2) delivers it from the terminal
        events += decoder.feed(Array(bytes[offset..<min(offset + 4096, bytes.count)]))
        offset += 4096
    }
    for event in events { _ = reduce(&state, .input(event)) }
    frame = Renderer.render(state)
    print(String(format: "1 MB paste (%d lines): decoded, inserted and drawn in %.1f ms", paste.split(separator: "\n").count, (ContinuousClock.now - start).milliseconds))
    report("keystroke → frame with the 1 MB draft", timed(200) {
        _ = reduce(&state, .input(.key(.character("x"))))
        frame = Renderer.render(state)
    })
    withExtendedLifetime(frame) {}
}
