import CNcursesw
import Foundation
import ParleyCore
import ParleyProviders
#if canImport(Glibc)
import Glibc
#endif

/// Actions posted from other threads (network tasks, signal handlers) to the UI thread, which wakes
/// from `poll()` on a self-pipe. Engine events carry the turn they belong to, so a stopped turn's
/// late events are dropped.
final class ActionQueue: @unchecked Sendable {
    private var items: [(turn: Int, action: Action)] = []
    private let lock = NSLock()
    let readFD: Int32
    let writeFD: Int32

    init() {
        var fds: [Int32] = [0, 0]
        pipe(&fds)
        readFD = fds[0]
        writeFD = fds[1]
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
    }

    func post(_ action: Action, turn: Int = 0) {
        lock.lock()
        let wasEmpty = items.isEmpty
        items.append((turn, action))
        lock.unlock()
        // One wake-up byte per batch: the loop reads the pipe, then drains everything queued.
        if wasEmpty { wake(UInt8(ascii: "a")) }
    }

    func wake(_ byte: UInt8) {
        var b = byte
        _ = write(writeFD, &b, 1)
    }

    func drain() -> [(turn: Int, action: Action)] {
        lock.lock()
        defer { lock.unlock() }
        let out = items
        items = []
        return out
    }
}

/// Signal handlers only write a byte to the self-pipe: W for a resize, T for a request to end, Z for a
/// stop request (SIGTSTP from outside), C after the process was continued (SIGCONT).
enum SignalPipe {
    nonisolated(unsafe) static var fd: Int32 = -1

    static func install(_ queue: ActionQueue) {
        fd = queue.writeFD
        // SIGTSTP is caught so the terminal is given back before the process stops (TerminalScreen.suspendToShell).
        for signalNumber in [SIGWINCH, SIGTERM, SIGINT, SIGHUP, SIGCONT, SIGTSTP] {
            var action = sigaction()
            switch signalNumber {
            case SIGWINCH: action.__sigaction_handler.sa_handler = { _ in var b = UInt8(ascii: "W"); _ = write(SignalPipe.fd, &b, 1) }
            case SIGCONT: action.__sigaction_handler.sa_handler = { _ in var b = UInt8(ascii: "C"); _ = write(SignalPipe.fd, &b, 1) }
            case SIGTSTP: action.__sigaction_handler.sa_handler = { _ in var b = UInt8(ascii: "Z"); _ = write(SignalPipe.fd, &b, 1) }
            default: action.__sigaction_handler.sa_handler = { _ in var b = UInt8(ascii: "T"); _ = write(SignalPipe.fd, &b, 1) }
            }
            action.sa_flags = Int32(SA_RESTART)
            sigaction(signalNumber, &action, nil)
        }
        signal(SIGPIPE, SIG_IGN)
    }
}

/// The chat screen's runtime: poll() on the input descriptor and the self-pipe, the bytes signal
/// handlers write, and the frame clock (at most one frame per 16 ms, none while nothing changes). It
/// turns bytes into actions for the interpreter (`ChatApp`, which reduces them and carries out the
/// effects) and paints what the state shows. It takes any `Screen` and any descriptor, so a test
/// drives the same loop through a pipe and a recording screen.
public final class ChatRuntime {
    let screen: any Screen
    let input: Int32
    unowned let app: ChatApp
    var decoder = InputDecoder()
    var running = true
    var dirty = true
    /// Set when a reply ends or a paste arrives; the next paint returns freed memory to the system.
    var trimPending = false
    var lastFrame = ContinuousClock.now - .seconds(1)
    /// Streamed text is painted at most 30 times a second (keys are drawn at once): a scrolling reply
    /// repaints the whole pane each frame, and 60 a second doubled the screen's CPU for no text seen sooner.
    static let frameInterval = Duration.milliseconds(33)
    static let escapeWait: Int32 = 30

    init(screen: any Screen, input: Int32, app: ChatApp) {
        self.screen = screen
        self.input = input
        self.app = app
    }

    func stop() { running = false }

    /// Called first by the chat command, before a session is read: big transient buffers go back to
    /// the system when freed (see the shim).
    public static func tuneMemory() { parley_tune_malloc() }

    /// Until the user quits, a signal asks to end, or the input closes.
    func run() {
        var fds = [pollfd(fd: input, events: Int16(POLLIN), revents: 0), pollfd(fd: app.queue.readFD, events: Int16(POLLIN), revents: 0)]
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var lastInput = ContinuousClock.now
        var lastDrain = ContinuousClock.now - .seconds(1)
        func milliseconds(until instant: ContinuousClock.Instant) -> Int32 {
            max(0, Int32((instant - ContinuousClock.now).milliseconds.rounded(.up)))
        }
        while running {
            var timeout: Int32 = -1
            func wake(within ms: Int32) { timeout = timeout < 0 ? ms : min(timeout, ms) }
            let escapeDeadline = lastInput + .milliseconds(Int(Self.escapeWait))
            if decoder.hasPendingEscape { wake(within: milliseconds(until: escapeDeadline)) }
            let nextFrame = lastFrame + Self.frameInterval
            if dirty { wake(within: milliseconds(until: nextFrame)) }
            if dirty, timeout == 0 { paint(); continue }
            // While a reply streams, its events are taken once per frame: within a frame of the last
            // time the queue was read it is not watched, so the tokens are folded and laid out together
            // instead of waking this thread for each. Keys are still read at once (and do not hold the
            // queue back: typing never starves a reply); when no reply runs, events are taken at once.
            let nextDrain = lastDrain + Self.frameInterval
            if app.state.busy, ContinuousClock.now < nextDrain {
                fds[1].events = 0
                wake(within: milliseconds(until: nextDrain))
            } else {
                fds[1].events = Int16(POLLIN)
            }
            fds[0].revents = 0
            fds[1].revents = 0
            let ready = poll(&fds, 2, timeout)
            if ready < 0 { if errno == EINTR { continue }; break }
            if ready == 0 {
                if decoder.hasPendingEscape, ContinuousClock.now >= escapeDeadline {
                    app.dispatch(decoder.flushEscape().map { .input($0) })
                }
                if dirty, ContinuousClock.now >= nextFrame { paint() }
                continue
            }
            if fds[0].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                let n = read(input, &buffer, buffer.count)
                if n <= 0 { running = false; break }
                lastInput = .now
                app.dispatch(decoder.feed(Array(buffer[0..<n])).map { .input($0) })
                // What the user typed is drawn at once; only streamed text waits for the frame clock.
                if dirty { paint() }
            }
            if fds[1].revents & Int16(POLLIN) != 0 {
                lastDrain = .now
                var bytes = [UInt8](repeating: 0, count: 256)
                var resize = false
                while true {
                    let n = read(app.queue.readFD, &bytes, bytes.count)
                    if n <= 0 { break }
                    for b in bytes[0..<n] {
                        if b == UInt8(ascii: "W") { resize = true }
                        if b == UInt8(ascii: "T") { running = false }
                        if b == UInt8(ascii: "Z") { app.suspendToShell(); resize = true }
                        if b == UInt8(ascii: "C") {
                            // Continued after a stop Parley did not see coming (SIGSTOP): the shell has
                            // drawn over the screen; take the terminal again and redraw it all.
                            SuspendTracker.noteResumed()
                            screen.resume()
                            resize = true
                        }
                    }
                }
                if resize {
                    let size = screen.refreshSize()
                    app.dispatch([.resize(width: size.width, height: size.height)])
                }
                let current = app.turn
                app.dispatch(app.queue.drain().compactMap { item in
                    // A stopped turn's late events (and its ids) must not land on the next turn's entries.
                    if item.turn != current, item.action.belongsToTurn { return nil }
                    return item.action
                })
            }
        }
    }

    func paint() {
        settleLayout(&app.state)
        screen.draw(Renderer.render(app.state))
        lastFrame = .now
        dirty = false
        if trimPending {
            // A reply has ended or a paste arrived: give the pages their transient copies used back to
            // the system, so the process stays at what it holds, not at its busiest moment (a few ms).
            trimPending = false
            parley_release_free_memory()
        }
    }
}
