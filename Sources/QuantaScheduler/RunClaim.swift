import Foundation
import QuantaCore

/// Claiming an LSST submission's output RUN collection in the butler repository before any job
/// starts (issue 14): two submissions given the same run name used to both run, and the second
/// merge failed on the first's init-outputs (ConflictingDefinitionError), leaving its files on disk
/// and unregistered. `run_job.py claim-run` registers the run in the registry — one row, so one
/// claimer wins, whatever the registry (SQLite or PostgreSQL) — in the site's environment, as the
/// jobs run. A run that already exists is refused unless the person asked to extend it, as
/// `pipetask --extend-run`. A Quanta repository needs none of this: its merge registers by UUID,
/// and planning refuses a run that holds datasets.
public enum RunClaim {
    struct Outcome: Decodable {
        var claimed: Bool
        var run: String
        var type: String?
        var datasets: Int?
        var error: String?
    }

    /// Registers `run` in `repo` with `driver` (`run_job.py`; nil when this install has none) or
    /// throws why not; a claim that could not be tried at all (no LSST environment here) is a note,
    /// since the merge still refuses what conflicts.
    public static func lsst(repo: String, run: String, extend: Bool, site: SiteConfig, driver: String?) throws {
        guard let driver else { return }
        let r = try LSSTMerge.runDriver(driver, ["claim-run", repo, run] + (extend ? ["--extend"] : []), site: site)
        let last = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
        guard let o = try? JSONDecoder().decode(Outcome.self, from: Data(last.utf8)) else {
            let why = r.stderr.split(separator: "\n").last.map(String.init) ?? "\(r.status)"
            StandardStreams.error("note: could not claim output run '\(run)' in \(repo) before submitting (\(why)); the merge will still refuse a conflict\n")
            return
        }
        if let e = o.error {
            throw QuantaError(.planning, "\(repo): \(e); choose another output run (--output-run, or -o for a {timestamp} name)")
        }
        if !o.claimed && !extend {
            let held = o.datasets.map { $0 == 0 ? "no datasets yet: another submission has claimed it" : "\($0) datasets" } ?? "it exists"
            throw QuantaError(.planning, "\(repo): output run '\(run)' already exists (\(held)); pass a new --output-run, leave it to bps's {timestamp} default, or pass --extend-run to add to it")
        }
    }
}
