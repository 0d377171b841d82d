import Foundation
import NIOCore
import NIOPosix

/// Where a reply's tasks run: the body reader, the retry loop, the turn and the screen's consumer.
/// Each hands events to the next through an AsyncStream; on the global pool every hand-off woke
/// another worker thread (a futex wake and a context switch per token, most of a fast stream's CPU).
/// They all prefer this executor, which runs them on the event loop that reads the connection (the
/// transport's clients use this loop alone), so a network read and everything it causes happen on
/// one thread without waking another. What runs here must not block for long: a turn's blocking work
/// is a few short SQLite reads and writes (the budget check, the ledger row, the cache) at its start
/// and end; session files are written on the recorder's own queue, and waits are `Task.sleep`.
public final class StreamExecutor: TaskExecutor, @unchecked Sendable {
    public static let shared = StreamExecutor()

    /// One event loop: a terminal client has a stream or two at a time.
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let loop: any EventLoop

    private init() {
        loop = Self.group.next()
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        loop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
