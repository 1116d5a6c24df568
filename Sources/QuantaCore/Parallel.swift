import Dispatch
import Foundation

/// Two pieces of independent work at once, one per core (this machine class has two).
public enum Parallel {
    /// Runs `a` and `b` at the same time and returns both results. When both throw, `a`'s error
    /// is the one thrown, so messages are the same as running them one after the other.
    public static func both<A, B>(_ a: () throws -> A, _ b: () throws -> B) throws -> (A, B) {
        let results = Results<A, B>()
        withoutActuallyEscaping(a) { a in
            withoutActuallyEscaping(b) { b in
                let work = UncheckedPair(a: a, b: b)
                DispatchQueue.concurrentPerform(iterations: 2) { i in
                    if i == 0 { results.a = Result { try work.a() } } else { results.b = Result { try work.b() } }
                }
            }
        }
        return (try results.a!.get(), try results.b!.get())
    }

    /// `transform(i)` for every i in 0..<count, spread over the cores in contiguous slices; the
    /// results in order. When several throw, the error of the lowest index wins.
    public static func map<T>(count: Int, _ transform: (Int) throws -> T) throws -> [T] {
        let slices = max(1, min(count / 64, 4 * ProcessInfo.processInfo.activeProcessorCount))
        let out = Slots<T>(count: count, slices: slices)
        withoutActuallyEscaping(transform) { transform in
            let work = UncheckedFunction(f: transform)
            DispatchQueue.concurrentPerform(iterations: slices) { s in
                for i in (s * count / slices) ..< ((s + 1) * count / slices) {
                    do { out.store(i, try work.f(i)) } catch {
                        out.fail(s, error)
                        return
                    }
                }
            }
        }
        if let e = out.errors.compactMap({ $0 }).first { throw e }
        return out.valuesUnwrapped()
    }

    /// One slot per result and one per slice, written from several threads at once. The storage is
    /// allocated once: an Array's `withUnsafeMutableBufferPointer` is a mutating access that swaps
    /// the buffer out while it runs, so calling it from two threads corrupts the heap.
    private final class Slots<T>: @unchecked Sendable {
        private let valueSlots: UnsafeMutableBufferPointer<T?>
        private let errorSlots: UnsafeMutableBufferPointer<Error?>
        init(count: Int, slices: Int) {
            valueSlots = .allocate(capacity: count)
            valueSlots.initialize(repeating: nil)
            errorSlots = .allocate(capacity: slices)
            errorSlots.initialize(repeating: nil)
        }
        deinit {
            valueSlots.deinitialize().deallocate()
            errorSlots.deinitialize().deallocate()
        }
        func store(_ i: Int, _ v: T) { valueSlots[i] = v }
        func fail(_ slice: Int, _ e: Error) { errorSlots[slice] = e }
        func valuesUnwrapped() -> [T] { valueSlots.map { $0! } }
        var errors: [Error?] { Array(errorSlots) }
    }

    private struct UncheckedFunction<T>: @unchecked Sendable {
        let f: (Int) throws -> T
    }

    // Each slot is written by one thread and read after concurrentPerform has joined both.
    private final class Results<A, B>: @unchecked Sendable {
        var a: Result<A, Error>?
        var b: Result<B, Error>?
    }

    private struct UncheckedPair<A, B>: @unchecked Sendable {
        let a: () throws -> A
        let b: () throws -> B
    }
}
