import Foundation
import QuantaCore
import QuantaSlurm

/// `quanta demo --campaign`: the demo's image pipeline as a campaign over the demo repository —
/// step `sfp` (isr, calibrate) with one group per band and an automatic gate, step `coadd`
/// (makeWarp, assembleCoadd, detectCoadd) reading sfp's outputs, the steps collected into the
/// run's chain; then a second run, after which `retention: {keep: 1}` removes the first.
public enum DemoCampaign {
    public static let name = "demo"
    public static let output = "demo/campaign"

    /// The campaign file, beside the repository `repo/`.
    public static func file(site: String) -> String {
        """
        # The Quanta demo as a campaign (quanta demo --campaign). Run it again with:
        #   quanta campaign run demo-campaign.yaml --db campaigns.sqlite
        # and look with: quanta campaign status demo --db campaigns.sqlite
        name: \(name)
        repository: repo
        site: \(site)
        output: \(output)
        retention: {keep: 1}          # after a run succeeds, older runs' collections, files and submit dirs go
        rules:
          # A raw cut short in transfer cannot be processed: known, accepted (quanta demo --corrupt N --keep-corrupt).
          - {task: isr, message: "cfitsio could not read", class: pipeline, action: accept}
        steps:
          - name: sfp                 # single-frame processing, one submission per band
            builtin: [isr, calibrate]
            groups: band
            gate: {maxFailedFraction: 0.05, datasetTypes: [calexp, src], outputsValidated: true}
          - name: coadd               # reads sfp's calexps from the run's chain
            after: sfp
            builtin: [makeWarp, assembleCoadd, detectCoadd]
            gate: {maxFailedFraction: 0, datasetTypes: [deepCoadd, deepCoadd_obj]}

        """
    }

    public struct Outcome {
        public var runs: [(number: Int, state: RunState, seconds: Double)] = []
        /// The last run's coadd RUN collection (the science check reads it).
        public var coaddRun: String?
        public var overview: CampaignOverview?
    }

    /// Writes the file into `root` and runs the campaign twice there (database `campaigns.sqlite`).
    public static func run(root: String, site: String, backend: @escaping () throws -> any SlurmBackend,
                           note: @escaping (String) -> Void) throws -> Outcome {
        let path = root + "/demo-campaign.yaml"
        try AtomicFile.write(file(site: site), to: path)
        let spec = try CampaignFile.load(path: path)
        let store = try CampaignStore(path: root + "/campaigns.sqlite")
        let engine = CampaignEngine(store: store, actor: "demo", backend: backend, note: note)
        var outcome = Outcome()
        for _ in 0..<2 {
            let started = Date()
            let number = try engine.start(spec)
            let state = try engine.runUntilSettled(spec, run: number, poll: 0.5)
            outcome.runs.append((number, state, Date().timeIntervalSince(started)))
            guard state == .succeeded else { break }
            outcome.coaddRun = "\(output)/\(number)/coadd/\(CampaignEngine.wholeStep)"
        }
        outcome.overview = try CampaignOverview.build(spec, store: store)
        return outcome
    }
}
