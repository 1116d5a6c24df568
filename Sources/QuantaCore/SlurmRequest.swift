/// One SLURM job request — an array or the final job — decided once, at plan time, and kept in
/// plan.json. The `#SBATCH` lines of the scripts, sbatch's command line (CLI backend) and the
/// libslurm descriptor are all made from this value; before (issue 15) the planner and the
/// submitter each built their own, and the final job's partition and name differed between
/// `bash submit.sh` and `quanta submit`.
public struct SlurmRequest: Sendable, Codable, Equatable {
    public var jobName: String
    /// nil: SLURM's default partition.
    public var partition: String?
    public var memoryMB: Int
    public var cpus: Int
    /// Whole nodes (`--exclusive`): a packed array, or a site or partition that says so.
    public var exclusive: Bool
    /// nil: the partition's default time limit (the final job always has one).
    public var timeMinutes: Int?
    public var account: String?
    public var qos: String?
    /// The site's extra options (`--constraint=…`): sbatch takes them, libslurm has no field.
    public var extraOptions: [String]
    /// Its logs under `logs/` in the first round (`isr.%a`, `merge`); retry rounds add `.rN`.
    public var logStem: String

    public init(jobName: String, partition: String?, memoryMB: Int, cpus: Int, exclusive: Bool, timeMinutes: Int?,
                account: String?, qos: String?, extraOptions: [String], logStem: String) {
        self.jobName = jobName
        self.partition = partition
        self.memoryMB = memoryMB
        self.cpus = cpus
        self.exclusive = exclusive
        self.timeMinutes = timeMinutes
        self.account = account
        self.qos = qos
        self.extraOptions = extraOptions
        self.logStem = logStem
    }

    /// `isr.%a.r2`: the log stem of retry round `round`.
    public func logStem(round: Int) -> String { logStem + (round > 0 ? ".r\(round)" : "") }

    /// The options in sbatch's spelling: the scripts' `#SBATCH` lines and sbatch's command line
    /// alike (`--array`, `--dependency` and `--chdir` are the submission's, not the request's).
    public func sbatchOptions(stdout: String, stderr: String) -> [String] {
        var a = ["--job-name=\(jobName)"]
        if let p = partition { a.append("--partition=\(p)") }
        a += ["--mem=\(memoryMB)M", "--cpus-per-task=\(cpus)", "--ntasks=1", "--nodes=1"]
        if exclusive { a.append("--exclusive") }
        if let t = timeMinutes { a.append("--time=\(Units.slurmTime(t * 60))") }
        if let v = account { a.append("--account=\(v)") }
        if let v = qos { a.append("--qos=\(v)") }
        a += ["--output=\(stdout)", "--error=\(stderr)"]
        return a + extraOptions
    }

    /// Seconds → whole minutes, rounded up (SLURM's unit).
    public static func minutes(_ seconds: Int?) -> Int? { seconds.map { ($0 + 59) / 60 } }
}

extension SlurmRequest {
    /// An array's request: its resources and partition within the site.
    public static func array(_ array: PlannedArray, submission: String, site: SiteConfig?) -> SlurmRequest {
        let partition = array.partition.isEmpty ? nil : array.partition
        let exclusive = array.packing != nil || site?.exclusive == true || site?.partitions.first { $0.name == array.partition }?.exclusive == true
        return SlurmRequest(jobName: PathSanitizer.safeName("\(submission).\(array.name)"), partition: partition,
                            memoryMB: array.resources.memoryMB, cpus: array.resources.cpus, exclusive: exclusive,
                            timeMinutes: minutes(array.resources.walltime), account: site?.account, qos: site?.qos,
                            extraOptions: site?.sbatchOptions ?? [],
                            logStem: SubmitDirectory.elementLogStem(array: array.name, element: "%a", packed: array.packing != nil, round: 0))
    }

    /// The final job's request: bps's `finalJob` keys (requestMemory, requestCpus, requestWalltime,
    /// queue/partition) over one default — 2048 MB, 1 cpu, the site's final-job partition, and a
    /// time limit that grows with the outputs to register.
    public static func finalJob(submission: String, site: SiteConfig?, settings: TaskSettings?, outputs: Int) -> SlurmRequest {
        let partition = settings?.partition ?? site?.finalJobPartition
        let seconds = settings?.requestWalltime ?? site?.finalJobWalltime(partition: partition, outputs: outputs) ?? 600 + outputs / 100
        return SlurmRequest(jobName: PathSanitizer.safeName("\(submission).merge"), partition: partition?.isEmpty == true ? nil : partition,
                            memoryMB: settings?.requestMemory ?? 2048, cpus: settings?.requestCpus ?? 1, exclusive: false,
                            timeMinutes: minutes(seconds), account: site?.account, qos: site?.qos, extraOptions: site?.sbatchOptions ?? [],
                            logStem: SubmitDirectory.mergeLogStem(round: 0))
    }
}
