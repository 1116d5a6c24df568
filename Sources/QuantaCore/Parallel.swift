import Dispatch

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
