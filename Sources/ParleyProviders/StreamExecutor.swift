import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One thread that runs a reply's tasks: the body reader, the retry loop, the turn and the screen's
/// consumer. Each hands events to the next through an AsyncStream; on the global pool every hand-off
/// woke another worker thread (a futex wake and a context switch per token, most of a fast stream's
/// CPU). With all of them preferring this executor, a network read wakes one thread and the chain
/// runs there in order. Work that blocks (a ledger write) is short and happens once per reply.
public final class StreamExecutor: TaskExecutor, @unchecked Sendable {
    public static let shared = StreamExecutor()

    private let lock = NSCondition()
    private var jobs: [UnownedJob] = []
    private var head = 0

    private init() {
        let thread = Thread { [unowned self] in self.runLoop() }
        thread.name = "parley-stream"
        thread.start()
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        lock.lock()
        jobs.append(job)
        if jobs.count - head == 1 { lock.signal() }
        lock.unlock()
    }

    private func runLoop() {
        let executor = asUnownedTaskExecutor()
        while true {
            lock.lock()
            while head == jobs.count { lock.wait() }
            let job = jobs[head]
            head += 1
            if head == jobs.count { jobs.removeAll(keepingCapacity: true); head = 0 }
            lock.unlock()
            job.runSynchronously(on: executor)
        }
    }
}
