import Foundation
import Testing
import QuantaCore

/// Campaigns end to end on the local backend (issue 16, first part): `quanta campaign run`, gates,
/// approve, tick with an injected clock, the tick lock across processes, a tick killed with -9.
@Suite struct CampaignTests {
    /// Status text without the elapsed-time column, which varies run to run.
    static func plain(_ text: String) -> String {
        text.replacingOccurrences(of: "(?m)^(  \\S+ +\\S+ +)[0-9.]+ (?:s|min|h) +", with: "$1", options: .regularExpression)
    }

    /// A synthetic repository and graph, the synth commands, and a campaign file using them.
    func setUp(_ cli: CLI, campaign: String) throws {
        #expect(try cli.run(["repo", "create", "repo"]).status == .exited(0))
        let synth = try cli.run(["graph", "synth", "--visits", "2", "--detectors", "2", "--patches", "1", "--patches-per-visit", "1",
                                 "--out", "g.qgn", "--repo", "repo"])
        #expect(synth.status == .exited(0), "\(synth.output)")
        try FileManager.default.copyItem(atPath: CLI.repoRoot + "/scripts/synth-commands.yaml", toPath: cli.path("cmd.yaml"))
        try campaign.write(toFile: cli.path("c.yaml"), atomically: true, encoding: .utf8)
    }

    @Test func stepsRunInOrderThroughTheirGatesAndAPersonApproves() throws {
        let cli = try CLI()
        try setUp(cli, campaign: """
        name: trial
        repository: repo
        config: cmd.yaml
        output: u/test/trial
        notify: echo "$QUANTA_CAMPAIGN_EVENT run $QUANTA_RUN" >> notified.txt
        steps:
          - name: prepare
            script: echo prepared {value} > prep-$QUANTA_VALUE.txt
            over: [a, b]
          - name: process
            after: prepare
            graph: g.qgn
            gate:
              maxFailedFraction: 0.1
              datasetTypes: [calexp, visitSummary]
              command: 'test -f prep-a.txt && test -f prep-b.txt && test "$QUANTA_COLLECTION" = u/test/trial/1/process'

          - name: signoff
            after: process
            script: "true"
            gate: manual
        """)
        let db = cli.path("db.sqlite")
        let run = try cli.run(["campaign", "run", "c.yaml", "--db", db])
        #expect(run.status == .exited(2), "held for a person: \(run.output)")
        #expect(run.stdout.contains("step signoff waits for a person: quanta campaign approve trial signoff"), "\(run.stdout)")
        // The script ran once per value, from the campaign file's directory, and the
        // graph step's outputs are in its own run, chained into the step's collection.
        #expect(cli.read(cli.path("prep-a.txt")) == "prepared a\n" && cli.read(cli.path("prep-b.txt")) == "prepared b\n")
        let chained = try cli.datasets(repo: "repo", collection: "u/test/trial/1/process")
        let made = chained.filter { ($0["run"] as? String) == "u/test/trial/1/process/all" }
        #expect(made.count == 20 && chained.count > made.count, "\(made.count) of \(chained.count): the step's outputs, then its inputs")
        let status = try cli.run(["campaign", "status", "trial", "--db", db])
        #expect(Self.plain(status.stdout).contains("prepare        passed   2 succeeded, 0 failed, 0 blocked of 2 quanta"), "\(status.stdout)")
        #expect(Self.plain(status.stdout).contains("signoff        gated"), "\(status.stdout)")
        #expect(cli.read(cli.path("notified.txt")) == "held run 1\n")

        // Not a step waiting for a person: refused with the state it is in.
        let early = try cli.run(["campaign", "approve", "trial", "process", "--db", db])
        #expect(early.status != .exited(0) && early.stderr.contains("step process of trial run 1 is passed, not waiting for a person"), "\(early.output)")
        let typo = try cli.run(["campaign", "approve", "trial", "signof", "--db", db])
        #expect(typo.stderr.contains("no step 'signof'; did you mean 'signoff'?"), "\(typo.output)")
        #expect(try cli.run(["campaign", "approve", "trial", "signoff", "--db", db]).status == .exited(0))
        let tick = try cli.run(["campaign", "tick", "--db", db])
        #expect(tick.stdout.contains("trial: run 1 succeeded"), "\(tick.output)")
        #expect(cli.read(cli.path("notified.txt")) == "held run 1\nsucceeded run 1\n")
        let log = try cli.run(["campaign", "log", "trial", "--db", db]).stdout
        #expect(log.contains("step signoff passed: approved") && log.contains("run 1 succeeded: every step passed"), "\(log)")
        // Each step that passed went first into the run's chain: the newest step's outputs first.
        let collections = try cli.run(["repo", "collections", "repo"]).stdout
        #expect(collections.contains("u/test/trial/1/process"), "\(collections)")
        let runChain = try cli.datasets(repo: "repo", collection: "u/test/trial/1")
        #expect(runChain.filter { ($0["run"] as? String) == "u/test/trial/1/process/all" }.count == 20, "\(runChain.count)")
        // --json: the same state for machines.
        let json = try cli.run(["campaign", "status", "trial", "--db", db, "--json"])
        let doc = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        let runs = doc?["runs"] as? [[String: Any]]
        #expect(runs?.first?["state"] as? String == "succeeded", "\(json.stdout)")
        let steps = runs?.first?["steps"] as? [[String: Any]]
        #expect(steps?.map { $0["state"] as? String } == ["passed", "passed", "passed"], "\(json.stdout)")
        #expect(log.contains(ProcessInfo.processInfo.environment["USER"] ?? NSUserName()), "the person who approved is logged")
    }

    @Test func aFailedGateFailsTheRunAndStopsWhatComesAfter() throws {
        let cli = try CLI()
        try setUp(cli, campaign: """
        name: strict
        repository: repo
        config: cmd.yaml
        steps:
          - name: check
            script: test {value} != bad
            over: [good, bad, fine]
            gate: {maxFailedFraction: 0.2}
          - name: later
            after: check
            graph: g.qgn
          - name: typed
            graph: g.qgn
            gate: {datasetTypes: [calexp, neverMade]}
        """)
        let run = try cli.run(["campaign", "run", "c.yaml", "--db", cli.path("db.sqlite")])
        #expect(run.status == .exited(1), "\(run.output)")
        #expect(Self.plain(run.stdout).contains("check          failed   2 succeeded, 1 failed, 0 blocked of 3 quanta; allowed 20.0 % failed"), "\(run.stdout)")
        #expect(Self.plain(run.stdout).contains("later          waiting"), "\(run.stdout)")
        #expect(Self.plain(run.stdout).contains("typed          failed   gate: no neverMade in ") && run.stdout.contains("/strict/1/typed"), "\(run.stdout)")
        #expect(FileManager.default.fileExists(atPath: cli.path("runs/strict/1/check/all/plan.json")), "the runs sit beside the database")
        #expect(!FileManager.default.fileExists(atPath: cli.path("runs/strict/1/later")), "nothing of a step after a failed gate")
    }

    /// Error rules: a known unprocessable failure is accepted (the gate passes), a transient one is
    /// retried (a command that fails once, then succeeds), an unknown one counts against the gate,
    /// a `fail` rule stops the step whatever the gate.
    @Test func rulesAcceptKnownFailuresAndRetryTransientOnes() throws {
        let cli = try CLI()
        try setUp(cli, campaign: """
        name: rules
        repository: repo
        rules:
          - {task: known, message: "No reference objects", class: pipeline, action: accept}
          - {message: "Connection reset", class: infrastructure, action: retry}
          - {task: fatal, message: "disk quota", class: infrastructure, action: fail}
        steps:
          - name: known
            script: 'if [ {value} = bad ]; then echo "No reference objects supplied" >&2; exit 1; fi'
            over: [ok1, ok2, bad]
          - name: flaky
            after: known
            script: 'echo {value} >> tries.txt; if [ ! -f flaky-{value} ]; then touch flaky-{value}; echo "Connection reset by peer" >&2; exit 1; fi'
            over: [x, y]
          - name: fatal
            after: flaky
            script: 'echo "disk quota exceeded" >&2; exit 1'
            gate: {maxFailedFraction: 1}
        """)
        let run = try cli.run(["campaign", "run", "c.yaml", "--db", cli.path("db.sqlite"), "--poll", "0.2"])
        #expect(run.status == .exited(1), "\(run.output)")
        #expect(Self.plain(run.stdout).contains("known          passed   2 succeeded, 1 failed (1 accepted by a rule), 0 blocked of 3 quanta"), "\(run.stdout)")
        #expect(Self.plain(run.stdout).contains("flaky          passed   2 succeeded, 0 failed, 0 blocked of 2 quanta"), "\(run.stdout)")
        #expect(run.stdout.contains("retrying 2 jobs (a retry rule matched)"), "\(run.stdout)")
        #expect(cli.read(cli.path("tries.txt")).split(separator: "\n").sorted() == ["x", "x", "y", "y"], "each ran twice")
        #expect(Self.plain(run.stdout).contains("fatal          failed   a fail rule matched 1 failures, e.g. fatal {"), "\(run.stdout)")
    }

    @Test func aScheduledRunStartsWhenItIsDueAndNotBefore() throws {
        let cli = try CLI()
        try setUp(cli, campaign: """
        name: nightly
        repository: repo
        config: cmd.yaml
        schedule: "0 3 * * *"
        steps:
          - name: one
            script: "true"
        """)
        let db = cli.path("db.sqlite")
        #expect(try cli.run(["campaign", "run", "c.yaml", "--db", db]).status == .exited(0))
        #expect(try cli.run(["campaign", "list", "--db", db]).stdout.contains("run 1"))
        // Due at the next 03:00 after run 1 started: a tick an hour before does nothing.
        let next = Calendar.current.nextDate(after: Date(), matching: DateComponents(hour: 3, minute: 0), matchingPolicy: .nextTime)!
        let before = try cli.run(["campaign", "tick", "--db", db, "--now", Timestamp.iso8601(next.addingTimeInterval(-3600))])
        #expect(before.stdout.contains("nightly: run 1 succeeded"), "\(before.output)")
        let due = try cli.run(["campaign", "tick", "--db", db, "--now", Timestamp.iso8601(next.addingTimeInterval(60))])
        #expect(due.stdout.contains("nightly: run 2 started"), "\(due.output)")
        #expect(due.stdout.contains("succeeded"), "\(due.output)")
        let bad = try cli.run(["campaign", "tick", "--db", db, "--now", "tomorrow"])
        #expect(bad.status != .exited(0) && bad.stderr.contains("--now: 'tomorrow' is not a time like 2026-12-01T03:00:00Z"), "\(bad.output)")
    }

    /// Two ticks at once (overlapping cron): the second backs off. A tick killed with -9 mid-step:
    /// the next one takes the lock over, finds the group it had started, and finishes it — the
    /// group is intended once and its script runs once per value.
    @Test func oneTickAtATimeAndAKilledTickIsFinishedByTheNext() throws {
        let cli = try CLI()
        try setUp(cli, campaign: """
        name: slow
        repository: repo
        config: cmd.yaml
        steps:
          - name: wait
            script: echo {value} >> ran.txt; sleep 4
            over: [x]
          - name: after
            after: wait
            script: "true"
        """)
        let db = cli.path("db.sqlite")
        let first = try cli.launch(["campaign", "run", "c.yaml", "--db", db], log: cli.path("first.log"))
        // While its script runs, `campaign run` holds the tick lock: a tick backs off.
        let deadline = Date().addingTimeInterval(30)
        while cli.read(cli.path("ran.txt")).isEmpty && Date() < deadline { usleep(100_000) }
        #expect(cli.read(cli.path("ran.txt")) == "x\n")
        let meanwhile = try cli.run(["campaign", "tick", "--db", db])
        #expect(meanwhile.stdout.contains("another tick is running"), "\(meanwhile.output)")
        kill(first, SIGKILL)
        var st: Int32 = 0
        waitpid(first, &st, 0)
        // Its process is gone: the next tick takes the lock over and finishes the run.
        let next = try cli.run(["campaign", "tick", "--db", db])
        #expect(next.stdout.contains("slow: run 1 succeeded"), "\(next.output)")
        let log = try cli.run(["campaign", "log", "slow", "--db", db]).stdout
        #expect(log.components(separatedBy: "group all intended").count - 1 == 2, "one intent per step's group: \(log)")
        // The killed run's element was finished by the tick (run-quantum does not run a job twice
        // once it succeeded; the one killed mid-way ran again).
        #expect(["x\n", "x\nx\n"].contains(cli.read(cli.path("ran.txt"))))
    }
}

/// Campaigns on the local SLURM cluster: steps submitted as SLURM arrays through `Submission`, and
/// the self-resubmitting tick job advancing a campaign by itself.
@Suite(.enabled(if: SlurmCluster.enabled, "needs the local SLURM cluster: scripts/slurm-cluster.sh start; QUANTA_SLURM_TESTS=1"))
struct CampaignSlurmTests {
    @Test func theTickJobAdvancesACampaignOnSlurmByItself() throws {
        let cli = try CLI()
        #expect(try cli.run(["repo", "create", "repo"]).status == .exited(0))
        #expect(try cli.run(["graph", "synth", "--visits", "2", "--detectors", "2", "--patches", "1", "--patches-per-visit", "1",
                             "--out", "g.qgn", "--repo", "repo"]).status == .exited(0))
        try FileManager.default.copyItem(atPath: CLI.repoRoot + "/scripts/synth-commands.yaml", toPath: cli.path("cmd.yaml"))
        try """
        name: onslurm
        repository: repo
        site: local-slurm
        config: cmd.yaml
        steps:
          - name: prepare
            script: echo $SLURM_ARRAY_JOB_ID {value} >> prepared.txt
            over: [a, b, c]
          - name: process
            after: prepare
            graph: g.qgn
        """.write(toFile: cli.path("c.yaml"), atomically: true, encoding: .utf8)
        let db = cli.path("state/db.sqlite")
        let start = try cli.run(["campaign", "start", "c.yaml", "--db", db])
        #expect(start.status == .exited(0) && start.stdout.contains("run 1 started"), "\(start.output)")
        let schedule = try cli.run(["campaign", "schedule", "--slurm", "--seconds", "3", "--db", db])
        #expect(schedule.status == .exited(0) && schedule.stdout.contains("submitted quanta-tick-"), "\(schedule.output)")
        defer { _ = try? cli.run(["campaign", "schedule", "--stop", "--db", db]) }
        // A second schedule finds the first instead of doubling it.
        let again = try cli.run(["campaign", "schedule", "--slurm", "--seconds", "3", "--db", db])
        #expect(again.stdout.contains("is already queued"), "\(again.output)")
        var status = ""
        let deadline = Date().addingTimeInterval(240)
        while Date() < deadline {
            status = try cli.run(["campaign", "status", "onslurm", "--db", db]).stdout
            if status.contains("run 1: succeeded") || status.contains("run 1: failed") { break }
            sleep(2)
        }
        #expect(status.contains("run 1: succeeded"), "\(status)\n\(cli.read(cli.path("state/tick.log")))")
        #expect(CampaignTests.plain(status).contains("process        passed   16 succeeded"), "\(status)")
        // The script ran as one SLURM array: three elements, one array job id.
        let lines = cli.read(cli.path("prepared.txt")).split(separator: "\n")
        #expect(lines.count == 3 && Set(lines.map { $0.split(separator: " ")[0] }).count == 1, "\(lines)")
        let log = try cli.run(["campaign", "log", "onslurm", "--db", db]).stdout
        #expect(log.contains("tick") && log.contains("group all submitted: on SLURM"), "\(log)")
        let stop = try cli.run(["campaign", "schedule", "--stop", "--db", db])
        #expect(stop.stdout.contains("will not submit itself again"), "\(stop.output)")
    }

    /// Ticks killed with -9 at random points (12 of them) while they plan and submit six groups to
    /// SLURM, then ticks until the run ends: every group's arrays were submitted exactly once (by
    /// the submit directories' records and by SLURM's own list of jobs), and each dataset merged once.
    @Test func ticksKilledAtRandomPointsSubmitEveryGroupOnce() throws {
        let cli = try CLI()
        let demo = try cli.run(["demo", "--workdir", "d", "--plan-only", "--visits", "3", "--detectors", "2"])
        #expect(demo.status == .exited(0), "\(demo.output)")
        try """
        name: killed
        repository: repo
        site: local-slurm
        output: u/t/killed
        steps:
          - name: isr
            builtin: [isr]
            groups: visit
          - name: sfp
            after: isr
            builtin: [calibrate]
            groups: visit
          - name: coadd
            after: sfp
            builtin: [makeWarp, assembleCoadd, detectCoadd]
            groups: band
        """.write(toFile: cli.path("d/c.yaml"), atomically: true, encoding: .utf8)
        let db = cli.path("db.sqlite")
        #expect(try cli.run(["campaign", "start", "d/c.yaml", "--db", db]).status == .exited(0))
        // Ticks until the run ends; the first ones are killed in three ways, in turn: -9 from
        // outside after a random delay; the tick killing itself right after its N-th sbatch is
        // journaled; and right after its N-th sbatch returned, before the job id is journaled (a job
        // no record names, which the next tick must adopt rather than submit again). A tick with
        // nothing to submit ends on its own; the kills go on until 12 ticks were cut short.
        var kills: [String] = []
        var cut = 0
        var status = ""
        let deadline = Date().addingTimeInterval(300)
        var i = 0
        while Date() < deadline {
            let n = Int.random(in: 1...2)
            let mode = cut < 12 ? i % 3 : -1
            let env = mode == 1 ? ["QUANTA_TEST_KILL_AFTER_SUBMITS": String(n)] : mode == 2 ? ["QUANTA_TEST_KILL_BEFORE_JOURNAL": String(n)] : [:]
            let log = cli.path("tick\(i).log")
            let pid = try cli.launch(["campaign", "tick", "--db", db], log: log, environment: env)
            var st: Int32 = 0
            var what = env.first.map { "\($0.key)=\($0.value)" } ?? "none"
            if mode == 0 {
                let ms = Int.random(in: 5...150)
                usleep(UInt32(ms) * 1000)
                kill(pid, SIGKILL)
                what = "-9 after \(ms) ms"
            }
            waitpid(pid, &st, 0)
            // A tick that ends on its own prints a line per campaign; one killed prints none.
            if !cli.read(log).contains("killed: run 1") { cut += 1; kills.append(what) }
            i += 1
            status = try cli.run(["campaign", "status", "killed", "--db", db]).stdout
            if status.contains("run 1: succeeded") || status.contains("run 1: failed") || status.contains("run 1: held") { break }
            if mode == -1 { sleep(1) }
        }
        let delays = kills
        let activity = try cli.run(["campaign", "log", "killed", "--db", db]).stdout
        #expect(status.contains("run 1: succeeded"), "kills \(delays):\n\(status)\n\(activity)")
        let plain = CampaignTests.plain(status)
        #expect(plain.contains("isr            passed   12 succeeded, 0 failed, 0 blocked of 12 quanta"), "\(status)")
        #expect(plain.contains("sfp            passed   12 succeeded, 0 failed, 0 blocked of 12 quanta"), "\(status)")
        // Each group once in the database's intents.
        let log = try cli.run(["campaign", "log", "killed", "--db", db]).stdout
        for g in ["1000", "1002", "1004", "1006", "1008", "1010", "g", "r"] {
            #expect(log.components(separatedBy: "group \(g) intended").count - 1 == (g.count == 1 ? 1 : 2), "group \(g): \(log)")
        }
        // SLURM's own list: each job name of each submit directory was submitted once.
        let squeue = try cli.run(["--states=all", "-h", "-o", "%F|%j|%Z"], executable: Spawn.which("squeue") ?? "/usr/bin/squeue").stdout
        var ids: [String: Set<String>] = [:]
        for line in squeue.split(separator: "\n") {
            let f = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            guard f.count == 3, f[2].hasPrefix(cli.cwd) else { continue }
            ids["\(f[2]) \(f[1])", default: []].insert(f[0])
        }
        #expect(ids.count >= 6 * 2 + 6 * 2 + 2 * 4, "\(ids.keys.sorted())")
        #expect(cut >= 10, "only \(cut) ticks were cut short: \(kills)")
        let twice = ids.filter { $0.value.count > 1 }
        #expect(twice.isEmpty, "submitted more than once: \(twice) (kills: \(delays))")
        // Every dataset registered once: 4 visits × 2 detectors of postISRCCD, calexp and src.
        let calexps = try cli.datasets(repo: "d/repo", collection: "u/t/killed/1").filter { ($0["datasetType"] as? String) == "calexp" }
        #expect(calexps.count == 12 && Set(calexps.compactMap { $0["dataID"] as? String }).count == 12, "\(calexps.count)")
    }

    /// A tick while the controller does not answer (slurm.conf pointing at a port nobody listens on)
    /// says so and leaves the group intended; the next tick, with SLURM back, submits it once.
    @Test func aTickWhileSlurmDoesNotAnswerChangesNothing() throws {
        let cli = try CLI()
        #expect(try cli.run(["demo", "--workdir", "d", "--plan-only", "--visits", "1", "--detectors", "1"]).status == .exited(0))
        try "name: unreach\nrepository: repo\nsite: local-slurm\noutput: u/t/un\nsteps:\n  - name: one\n    builtin: [isr]\n"
            .write(toFile: cli.path("d/c.yaml"), atomically: true, encoding: .utf8)
        let conf = (try? String(contentsOfFile: "/etc/slurm/slurm.conf", encoding: .utf8)) ?? ""
        try (conf + "\nSlurmctldPort=1\n").write(toFile: cli.path("unreachable.conf"), atomically: true, encoding: .utf8)
        let db = cli.path("db.sqlite")
        #expect(try cli.run(["campaign", "start", "d/c.yaml", "--db", db]).status == .exited(0))
        let away = try cli.run(["campaign", "tick", "--db", db], environment: ["SLURM_CONF": cli.path("unreachable.conf")])
        #expect(away.status == .exited(0) && away.stdout.contains("unreach: run 1: SLURM did not answer") && away.stdout.contains("nothing changed"), "\(away.output)")
        let held = try cli.run(["campaign", "status", "unreach", "--db", db]).stdout
        #expect(held.contains("all: intended"), "\(held)")
        var status = ""
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            _ = try cli.run(["campaign", "tick", "--db", db])
            status = try cli.run(["campaign", "status", "unreach", "--db", db]).stdout
            if !status.contains("run 1: running") { break }
            sleep(1)
        }
        #expect(status.contains("run 1: succeeded"), "\(status)")
        let log = try cli.run(["campaign", "log", "unreach", "--db", db]).stdout
        #expect(log.components(separatedBy: "group all intended").count == 2 && log.components(separatedBy: "group all submitted").count == 2, "\(log)")
    }

    /// `quanta demo --campaign --slurm`: the demo campaign's groups as SLURM arrays, both runs,
    /// retention, and the science check on the coadds.
    @Test func theDemoCampaignRunsOnSlurm() throws {
        let cli = try CLI()
        let r = try cli.run(["demo", "--workdir", "dc", "--campaign", "--slurm", "--visits", "1", "--detectors", "2"])
        #expect(r.status == .exited(0), "\(r.output)")
        #expect(r.stdout.contains("run 1: removed by retention") && r.stdout.contains("run 2: succeeded") && r.stdout.contains("site local-slurm"), "\(r.stdout)")
        let log = try cli.run(["campaign", "log", "demo", "--db", cli.path("dc/campaigns.sqlite")]).stdout
        #expect(log.components(separatedBy: "submitted: on SLURM").count - 1 == 6, "3 groups × 2 runs on SLURM: \(log)")
        #expect(FileManager.default.fileExists(atPath: cli.path("dc/runs/demo/2/sfp/g/slurm.json")))
    }
}
