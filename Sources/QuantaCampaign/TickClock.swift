import Foundation
import QuantaCore

/// The clock that runs `quanta campaign tick`, without a daemon: a crontab line, a `scrontab` line
/// for sites whose SLURM has it, or — where users have neither — a small SLURM job that runs one
/// tick and submits itself again with `--begin`. All three run the same command.
public struct TickClock: Sendable {
    /// The `quanta` executable the clock runs.
    public var quanta: String
    /// The campaign database.
    public var database: String
    /// Minutes between ticks (cron), or seconds (the SLURM job; cron cannot go below a minute).
    public var everyMinutes: Int
    public var everySeconds: Int?

    public init(quanta: String, database: String, everyMinutes: Int = 5, everySeconds: Int? = nil) {
        self.quanta = quanta
        self.database = database
        self.everyMinutes = everyMinutes
        self.everySeconds = everySeconds
    }

    var log: String { (database as NSString).deletingLastPathComponent + "/tick.log" }

    /// The command every clock runs.
    public var command: String {
        "\(shellQuote(quanta)) campaign tick --db \(shellQuote(database)) >> \(shellQuote(log)) 2>&1"
    }

    /// A crontab(5) line (also what `scrontab` takes).
    public var crontabLine: String {
        let minutes = everyMinutes <= 1 ? "*" : everyMinutes >= 60 ? "0" : "*/\(everyMinutes)"
        return "\(minutes) * * * * \(command)"
    }

    /// The job's name: one per database, so a second `schedule --slurm` finds the first.
    public var jobName: String { "quanta-tick-" + String(format: "%08x", CRC32.checksum(Array(database.utf8))) }

    /// The self-resubmitting SLURM job: one tick, then itself again `every` seconds later — unless
    /// one of its name is already pending (two would tick twice as often; never at once: the lock)
    /// or the `.stop` file beside the script says to stop.
    public func slurmScript(path: String, sbatchOptions: [String]) -> String {
        let every = everySeconds ?? everyMinutes * 60
        return """
        #!/bin/bash
        #SBATCH --job-name=\(jobName)
        #SBATCH --time=00:30:00
        #SBATCH --mem=1024M
        #SBATCH --ntasks=1
        #SBATCH --output=\((database as NSString).deletingLastPathComponent)/tick-slurm.out
        \(sbatchOptions.map { "#SBATCH \($0)" }.joined(separator: "\n"))
        # Written by 'quanta campaign schedule --slurm': runs one tick of every campaign in
        # \(database), then submits itself again \(every) s later. Stop it: quanta campaign schedule --stop --db …
        \(command)
        if [ ! -e \(shellQuote(path)).stop ] && [ -z "$(squeue -h -n \(jobName) -t PENDING -o %i 2>/dev/null)" ]; then
          sbatch --parsable --begin=now+\(every) \(shellQuote(path)) > /dev/null
        fi

        """
    }
}
