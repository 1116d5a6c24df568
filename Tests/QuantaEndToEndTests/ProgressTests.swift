import Foundation
import Testing
import QuantaCore

/// Seeing how far a run is (issue 17): progress lines in logs, `status --watch`, a per-task plan
/// table past a screenful.
@Suite struct ProgressTests {
    /// A synthetic graph whose commands take a moment, so a run is seen in progress.
    func slowSubmission(_ cli: CLI) throws {
        let synth = try cli.run(["graph", "synth", "--visits", "4", "--detectors", "3", "--patches", "1", "--patches-per-visit", "1",
                                 "--out", "g.qgn", "--repo", "repo"])
        #expect(synth.status == .exited(0), "\(synth.output)")
        let config = (try String(contentsOfFile: CLI.repoRoot + "/scripts/synth-commands.yaml", encoding: .utf8))
            .replacingOccurrences(of: "{command: \"", with: "{command: \"sleep 0.4; ")
        try config.write(toFile: cli.path("slow.yaml"), atomically: true, encoding: .utf8)
        #expect(try cli.run(["plan", "g.qgn", "--repo", "repo", "--config", "slow.yaml", "--out", "sub"]).status == .exited(0))
    }

    /// Not a terminal (a log): `quanta run` writes a plain progress line every few seconds with
    /// counts, rate and ETA, and `status --watch` one summary line per look until the run ends.
    @Test func logsGetPlainProgressLinesAndWatchFollowsToTheEnd() throws {
        let cli = try CLI()
        try slowSubmission(cli)
        let env = ["QUANTA_PROGRESS": "1", "QUANTA_PROGRESS_EVERY": "1"]
        let runner = try cli.launch(["run", "sub", "-j", "1"], log: cli.path("run.log"), environment: env)
        // A report while it runs says it is partial.
        let deadline = Date().addingTimeInterval(20)
        while (try? FileManager.default.contentsOfDirectory(atPath: cli.path("sub/manifests/isr")))?.isEmpty ?? true, Date() < deadline { usleep(100_000) }
        let partial = try cli.run(["report", "sub", "--out", "partial.html"])
        #expect(partial.stdout.contains("partial (jobs still running)") && cli.read(cli.path("partial.html")).contains("Partial report"), "\(partial.output)")
        let watch = try cli.run(["status", "sub", "--watch", "0.5", "--exit-zero"], environment: env)
        var st: Int32 = 0
        waitpid(runner, &st, 0)
        #expect(watch.status == .exited(0), "\(watch.output)")
        let looks = watch.stdout.split(separator: "\n").filter { $0.contains("sub: ") && $0.contains("quanta — ") }
        #expect(looks.count >= 2, "one line per look while it runs: \(watch.stdout)")
        #expect(looks.first?.contains("pending") == true, "\(looks)")
        #expect(watch.stdout.contains("task ") && watch.stdout.contains("Merge:"), "the final table after the run: \(watch.stdout)")
        let log = cli.read(cli.path("run.log"))
        let lines = log.split(separator: "\n").filter { $0.hasPrefix("running ") }
        #expect(lines.count >= 2, "\(log)")
        #expect(lines.contains { $0.contains(" pending") && $0.contains("/s") || $0.contains("/min") }, "rate: \(lines)")
        #expect(lines.contains { $0.contains("ETA ") }, "\(lines)")
        #expect(!log.contains("\u{1B}["), "no terminal escapes in a log")
    }

    /// Past a screenful of arrays, plan prints one row per task; plan.txt keeps every array.
    @Test func aLongPlanIsSummarisedPerTask() throws {
        let cli = try CLI()
        #expect(try cli.run(["graph", "synth", "--visits", "60", "--detectors", "10", "--out", "g.qgn", "--repo", "repo"]).status == .exited(0))
        let site = (try String(contentsOfFile: CLI.repoRoot + "/site-configs/local.yaml", encoding: .utf8))
            .replacingOccurrences(of: "\nname: local\n", with: "\nname: small-arrays\n").replacingOccurrences(of: "maxArraySize: 1001", with: "maxArraySize: 20")
        try site.write(toFile: cli.path("small.yaml"), atomically: true, encoding: .utf8)
        let plan = try cli.run(["plan", "g.qgn", "--repo", "repo", "--config", CLI.repoRoot + "/scripts/synth-commands.yaml",
                                "--site", "small.yaml", "--out", "sub"])
        #expect(plan.status == .exited(0), "\(plan.output)")
        #expect(plan.stdout.contains("task           arrays  elements  quanta  memory  after"), "\(plan.stdout)")
        #expect(plan.stdout.contains("calibrate          30       600     600") && plan.stdout.contains("the full table is in plan.txt"), "\(plan.stdout)")
        #expect(plan.stdout.split(separator: "\n").count < 30, "\(plan.stdout)")
        let full = cli.read(cli.path("sub/plan.txt"))
        #expect(full.contains("calibrate-30") && full.split(separator: "\n").count > 80, "\(full.prefix(400))")
    }
}

/// `quanta report` in a real headless browser (Debian's Chromium): the page renders, has every
/// section, runs no script (so none fails), and a screenshot is written. `.ci/run` installs
/// Chromium and sets QUANTA_BROWSER_TESTS=1, so there the test cannot be skipped.
@Suite struct ReportTests {
    static let chromium = Spawn.which("chromium") ?? Spawn.which("chromium-browser")
    static let required = ProcessInfo.processInfo.environment["QUANTA_BROWSER_TESTS"] == "1"

    @Test(.enabled(if: chromium != nil || required, "needs chromium (apt-get install chromium)"))
    func theDemosReportRendersInABrowserWithEverySection() throws {
        let browser = try #require(Self.chromium, "QUANTA_BROWSER_TESTS=1 but no chromium on PATH")
        let cli = try CLI()
        let demo = try cli.run(["demo", "--workdir", "d", "--visits", "2", "--corrupt", "2", "--keep-corrupt"])
        #expect(demo.stdout.contains("Report:"), "\(demo.output)")
        // A damaged manifest is named, and the rest reported.
        let manifests = try FileManager.default.contentsOfDirectory(atPath: cli.path("d/submit/manifests/makeWarp")).sorted()
        try "{\"not\": \"a manifest".write(toFile: cli.path("d/submit/manifests/makeWarp/" + manifests[0]), atomically: true, encoding: .utf8)
        let before = cli.allFiles().filter { !$0.hasSuffix("report.html") }.sorted()
        let report = try cli.run(["report", "d/submit", "--out", "r.html"])
        #expect(report.status == .exited(0) && report.stdout.contains("r.html: "), "\(report.output)")
        #expect(cli.allFiles().filter { !$0.hasSuffix("report.html") && $0 != "r.html" }.sorted() == before, "the report changes nothing else")
        let html = cli.read(cli.path("r.html"))
        #expect(html.contains("manifests could not be read") && html.contains("makeWarp:"), "the damaged manifest is named")
        #expect(html.contains("2 × isr failed (payload), blocking") || html.contains("2 × isr failed, blocking"), "the failure group")
        // The raws' WCS place every detector of every visit: on the sky, and per visit on the focal plane.
        #expect(html.contains("On the sky: every visit") && html.contains("Focal plane, per visit"), "the sky map")
        #expect(html.components(separatedBy: "<polygon").count - 1 == 2 * 16, "16 raws, each on the sky and on its visit's focal plane")
        #expect(html.components(separatedBy: "<polygon class=\"failed\"").count - 1 == 2 * 2, "the two cut-short raws in red")
        #expect(!html.contains("<script") && !html.contains("http://") || html.contains("xmlns=\"http://www.w3.org/2000/svg\""), "self-contained")
        let flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]
        let shot = try cli.run(flags + ["--window-size=1280,3200", "--screenshot=" + cli.path("report.png"), "file://" + cli.path("r.html")],
                               executable: browser)
        let png = FileManager.default.contents(atPath: cli.path("report.png")) ?? Data()
        #expect(png.count > 20_000 && png.prefix(4) == Data([0x89, 0x50, 0x4E, 0x47]), "a PNG screenshot: \(png.count) bytes; \(shot.stderr.suffix(400))")
        #expect(!shot.stderr.contains("Uncaught") && !shot.stderr.contains("SyntaxError"), "no script errors: \(shot.stderr.suffix(400))")
        let dom = try cli.run(flags + ["--dump-dom", "file://" + cli.path("r.html")], executable: browser)
        for id in ["header", "tasks", "failures", "resources", "timeline", "map", "attempts", "totals"] {
            #expect(dom.stdout.contains("<section id=\"\(id)\">"), "section \(id) rendered")
        }
        #expect(dom.stdout.components(separatedBy: "<svg").count - 1 >= 10, "the charts are drawn")
    }

    /// `quanta tune` learns per-task requests from a finished run; `plan --learn-from` uses them
    /// and says so in plan.txt; a plan nothing ran from gives nothing to learn.
    @Test func tuneLearnsRequestsAndPlanUsesThem() throws {
        let cli = try CLI()
        #expect(try cli.run(["demo", "--workdir", "d", "--plan-only", "--visits", "1", "--detectors", "2"]).status == .exited(0))
        let never = try cli.run(["tune", "d/submit"])
        #expect(never.status != .exited(0) && never.stderr.contains("nothing to learn from"), "\(never.output)")
        #expect(try cli.run(["run", "d/submit"]).status == .exited(0))
        let tune = try cli.run(["tune", "d/submit", "--out", "learned.yaml"])
        #expect(tune.status == .exited(0) && tune.stdout.contains("isr            128 MB  512 MB     1  00:05:00"), "\(tune.output)")
        let yaml = cli.read(cli.path("learned.yaml"))
        #expect(yaml.contains("pipetask:\n  isr: {requestMemory: 128, requestCpus: 1, requestWalltime: \"00:05:00\"}"), "\(yaml)")
        // It is a submit config a person can include.
        try "includeConfigs: [d/demo-submit.yaml, learned.yaml]\n".write(toFile: cli.path("with.yaml"), atomically: true, encoding: .utf8)
        let included = try cli.run(["plan", "d/demo.qgn", "--repo", "d/repo", "--config", "with.yaml", "--output-run", "t/included", "--out", "inc"])
        func line(_ text: String, _ array: String) -> String { text.split(separator: "\n").first { $0.hasPrefix(array + " ") }.map(String.init) ?? "" }
        #expect(included.status == .exited(0) && line(included.stdout, "isr").contains(" 128 MB "), "\(included.output)")
        let learned = try cli.run(["plan", "d/demo.qgn", "--repo", "d/repo", "--config", "d/demo-submit.yaml", "--learn-from", "d/submit",
                                   "--output-run", "t/learned", "--out", "sub2"])
        #expect(learned.status == .exited(0), "\(learned.output)")
        let text = cli.read(cli.path("sub2/plan.txt"))
        #expect(text.contains("requests from history: isr 128 MB, 1 cpu, 00:05:00 — p95 of 4 successful attempts' peaks") && text.contains("was 512 MB"), "\(text)")
        #expect(line(text, "assembleCoadd").contains(" 128 MB ") && text.contains("assembleCoadd 128 MB, 1 cpu, 00:05:00") && text.contains("was 1 GB"),
                "the config's 1 GB gave way: \(text)")
    }

    /// On SLURM the report shows queue waits (from the rounds' submission times) and what SLURM's
    /// accounting says, or why it cannot (this cluster keeps no database: the completion log).
    @Test(.enabled(if: SlurmCluster.enabled, "needs the local SLURM cluster"))
    func aSlurmRunsReportHasQueueWaitsAndAccounting() throws {
        let cli = try CLI()
        let demo = try cli.run(["demo", "--workdir", "d", "--visits", "1", "--detectors", "2", "--slurm"])
        #expect(demo.status == .exited(0), "\(demo.output)")
        let html = cli.read(cli.path("d/submit/report.html"))
        #expect(html.contains("SLURM's accounting (the job completion log (sacct -c)): ") || html.contains("SLURM's accounting (the accounting database): "), "\(html.prefix(3000))")
        #expect(html.contains("COMPLETED"), "states from sacct")
        #expect(!html.contains("A local run: no queue.") && html.contains("<rect class=\"other\""), "queue waits drawn")
    }

    /// Jobs SLURM ended otherwise than completed (here cancelled) are named with their state and
    /// elapsed time from SLURM's own accounting.
    @Test(.enabled(if: SlurmCluster.enabled, "needs the local SLURM cluster"))
    func jobsSlurmEndedAreNamedFromItsAccounting() throws {
        let cli = try CLI()
        #expect(try cli.run(["graph", "synth", "--visits", "1", "--detectors", "2", "--patches", "1", "--patches-per-visit", "1",
                             "--out", "g.qgn", "--repo", "repo"]).status == .exited(0))
        let slow = (try String(contentsOfFile: CLI.repoRoot + "/scripts/synth-commands.yaml", encoding: .utf8))
            .replacingOccurrences(of: "{command: \"", with: "{command: \"sleep 30; ")
        try slow.write(toFile: cli.path("slow.yaml"), atomically: true, encoding: .utf8)
        #expect(try cli.run(["submit", "g.qgn", "--repo", "repo", "--config", "slow.yaml", "--site", "local-slurm", "--out", "sub"]).status == .exited(0))
        sleep(3)
        #expect(try cli.run(["cancel", "sub"]).status == .exited(0))
        sleep(2)
        #expect(try cli.run(["report", "sub", "--out", "r.html"]).status == .exited(0))
        let html = cli.read(cli.path("r.html"))
        #expect(html.contains("not completed: ") && html.contains("sub.isr CANCELLED after 00:00:0"), "\(html.prefix(2500))")
    }
}
