import ParleyTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// libFuzzer's entry point; the target is named by PARLEY_FUZZ_TARGET (see scripts/fuzz).
nonisolated(unsafe) let target: String = getenv("PARLEY_FUZZ_TARGET").map { String(cString: $0) } ?? "json"

@_cdecl("LLVMFuzzerTestOneInput")
public func parleyFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    FuzzTargets.run(target, bytes)
    return 0
}
