/// How run-quantum runs a task's quanta; chosen at plan time, stored in the snapshot.
public enum Executor: String, Sendable, Codable, CaseIterable {
    /// A command template per quantum (`pipetask.<label>.command`).
    case command
    /// One of run-quantum's built-in FITS tasks (`pipetask.<label>.builtin`).
    case builtin
    /// LSST quanta through `pipetask run-qbb` (`python/quanta_lsst/run_job.py`), a job at a time.
    case lsst

    /// The ones a submit config may name (`executor:`); `lsst` follows from the graph.
    public static let configurable: [Executor] = [.builtin, .command]
}
