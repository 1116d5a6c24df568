import Foundation
import QuantaButler
import QuantaCore

/// What run-quantum asks before it runs a quantum, for every executor: did the quantum that makes
/// each of its in-graph inputs succeed? Answered from the producers' records — this job's own so
/// far, else the producing job's latest manifest — never from whether a file happens to exist.
/// `pipetask run`'s rule: a quantum with an input whose producer failed, was blocked or never ran
/// is not run (FAILED_DEP), whatever the connection's multiplicity; an input whose producer
/// succeeded without writing it (NoWorkFound) is simply absent, and the task's own rules decide.
struct Upstream {
    let dir: SubmitDirectory
    /// Latest manifests of other jobs, read once each: "array:index" → manifest (nil: none).
    private var manifests: [String: Manifest?] = [:]
    /// This job's quanta decided so far (the run order puts producers first).
    private var own: [String: QuantumRecord] = [:]
    /// Time spent reading producers' manifests (QUANTA_TIMINGS), and how many were read.
    private(set) var readSeconds = 0.0
    var manifestsRead: Int { manifests.count }

    /// The job being run: its own quanta not decided yet are run by it (LSST: in the same run-qbb),
    /// so they are no reason to hold a consumer back.
    let array: String, index: Int

    init(dir: SubmitDirectory, array: String, index: Int) {
        self.dir = dir
        self.array = array
        self.index = index
    }

    /// Why a quantum is not run: the upstream quantum and what became of it, and the failed
    /// quantum at the root of it (through any chain of blocked ones), when there is one.
    struct Blocker: Equatable {
        var why: String
        var rootTask: String?
        var rootReason: String?

        /// The record of `q`, not run.
        func record(_ q: QuantumSpec) -> QuantumRecord {
            var r = QuantumRecord(notRun: q.id, task: q.task, dataID: q.dataID, status: .blocked, reason: why)
            r.blockedByTask = rootTask
            r.blockedByReason = rootReason
            return r
        }
    }

    enum Verdict: Equatable {
        case run
        case blocked(Blocker)

        var blocker: Blocker? {
            if case .blocked(let b) = self { return b }
            return nil
        }
    }

    mutating func record(_ r: QuantumRecord) { own[r.id] = r }

    /// The producer's record, and a description of where it should be when there is none.
    mutating func outcome(of p: ProducerRef) -> (QuantumRecord?, String) {
        let id = p.quantum.lowercased
        if let r = own[id] { return (r, "") }
        let key = "\(p.array):\(p.index)"
        if manifests[key] == nil {
            let start = Date()
            manifests[key] = .some((try? Manifest.read(path: dir.manifest(array: p.array, index: p.index))) ?? nil)
            readSeconds += Date().timeIntervalSince(start)
        }
        guard let m = manifests[key]! else { return (nil, "job \(key) has no manifest: it has not run, or was killed") }
        guard let r = m.quanta.first(where: { $0.id == id }) else { return (nil, "job \(key)'s manifest does not list it") }
        return (r, "")
    }

    /// Whether `q` may run, from its producers' outcomes.
    mutating func verdict(for q: QuantumSpec) -> Verdict {
        var seen = Set<UUID>()
        for input in q.inputs {
            guard let p = input.producer, seen.insert(p.quantum).inserted else { continue }
            if p.array == array, p.index == index, own[p.quantum.lowercased] == nil { continue }
            let (r, missing) = outcome(of: p)
            let who = "\(p.task) {\(p.dataID)}"
            guard let r else { return .blocked(Blocker(why: "upstream \(who) did not run (\(missing))")) }
            switch r.status {
            case .succeeded, .noWork: continue
            case .failed:
                return .blocked(Blocker(why: "upstream \(who) failed\(r.reason.map { ": \(Self.short($0))" } ?? "")",
                                        rootTask: p.task, rootReason: r.reason))
            case .blocked:
                return .blocked(Blocker(why: "upstream \(who) was blocked", rootTask: r.blockedByTask, rootReason: r.blockedByReason))
            }
        }
        return .run
    }

    /// Inputs absent by design: their producer succeeded (or ended with no work) without writing them.
    mutating func notProduced(_ q: QuantumSpec) -> [DatasetSpec] {
        q.inputs.filter { input in
            guard let p = input.producer, let r = outcome(of: p).0, r.status.isSuccess else { return false }
            return !r.outputs.contains { $0.id == input.id.lowercased }
        }
    }

    static func short(_ s: String) -> String { s.count > 160 ? String(s.prefix(160)) + "…" : s }
}
