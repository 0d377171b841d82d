import Foundation
import Testing
import ParleyKit
#if canImport(Glibc)
import Glibc
#endif

/// Children get stdin, stdout and stderr and nothing else of ours.
@Suite struct ChildProcessTests {
    @Test func aChildInheritsNoOtherDescriptor() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)  // deliberately without close-on-exec
        defer { close(fds[0]); close(fds[1]) }
        let listed = try ChildProcess.capture(["ls", "/proc/self/fd"]).output.split(separator: "\n").compactMap { Int32($0) }
        #expect(listed.contains(1))
        #expect(!listed.contains(fds[0]) && !listed.contains(fds[1]), "the child holds \(listed)")
    }
}
