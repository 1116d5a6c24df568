import FuzzDriver
import Foundation

nonisolated(unsafe) private var testOneInput: (UnsafeRawBufferPointer) -> Void = { _ in }

/// libFuzzer's name for the target, which its runtime also refers to.
@_cdecl("LLVMFuzzerTestOneInput")
func llvmFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    testOneInput(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

/// Runs libFuzzer with `body` as the target: called once per input, on one thread; a trap, crash
/// or sanitizer report in it is a finding.
public func fuzz(_ body: @escaping (UnsafeRawBufferPointer) -> Void) -> Never {
    testOneInput = body
    exit(quanta_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv, llvmFuzzerTestOneInput))
}
