import Foundation
import Testing
import QuantaCore

/// The demo pipeline through the real binaries: plan → local run → merge → registry query.
@Suite(.serialized) struct DemoEndToEndTests {
    @Test func demoRunsAndRegistersEveryOutput() throws {
        let cli = try CLI()
        let r = try cli.run(["demo", "--workdir", "demo", "--visits", "2", "--detectors", "3"])
        #expect(r.status == .exited(0), "\(r.output)")
        let rows = r.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(rows.contains(["isr", "6", "6", "0", "0", "0", "0", "0"]))
        #expect(rows.contains(["gather", "2", "2", "0", "0", "0", "0", "0"]))
        let outputs = try cli.datasets(repo: cli.path("demo/repo"), collection: "demo/out")
        let raws = try cli.datasets(repo: cli.path("demo/repo"), collection: "demo/raw")
        // The chain holds the new run, then the inputs: 20 outputs + 6 raws.
        let own = outputs.filter { ($0["run"] as? String) != "demo/raw" }
        #expect(own.count == 6 + 6 * 2 + 2)
        #expect(raws.count == 6)
        let types = Dictionary(grouping: own, by: { $0["datasetType"] as! String }).mapValues(\.count)
        #expect(types == ["postISR": 6, "calexp": 6, "src": 6, "visitSrc": 2])
        for d in own {
            let path = cli.path("demo/repo/datastore/") + (d["path"] as! String)
            #expect(FileManager.default.fileExists(atPath: path), "\(path)")
        }
        // Every gathered catalogue holds the sources of its three detectors.
        let visitSrc = own.filter { ($0["datasetType"] as? String) == "visitSrc" }
        for d in visitSrc {
            let text = cli.read(cli.path("demo/repo/datastore/") + (d["path"] as! String))
            let detectors = Set(text.split(separator: "\n").map { $0.split(separator: ",")[2] })
            #expect(detectors == ["0", "1", "2"])
        }

        let submit = cli.path("demo/submit")
        let again = try cli.run(["rerun", submit, "--job", "isr:0"])
        #expect(again.status == .exited(0))
        #expect(again.stdout.contains("already succeeded"))
        let forced = try cli.run(["rerun", submit, "--job", "isr:0", "--force"])
        #expect(forced.status == .exited(0), "\(forced.output)")
        #expect(FileManager.default.fileExists(atPath: submit + "/manifests/isr/attempts/0.2.json"))
        #expect(cli.read(submit + "/manifests/isr/0.json").contains("\"attempt\" : 2"))

        let merge = try cli.run(["merge", submit])
        #expect(merge.status == .exited(0), "\(merge.output)")
        #expect(merge.stdout.contains("0 datasets registered, 20 already registered"))
        #expect(try cli.datasets(repo: cli.path("demo/repo"), collection: "demo/out").count == 26)
    }

    @Test func failedJobBlocksDownstreamAndRestartFinishes() throws {
        let cli = try CLI()
        let r = try cli.run(["demo", "--workdir", "demo", "--visits", "2", "--detectors", "3", "--corrupt", "1"])
        #expect(r.status == .exited(1), "a run with failures must not exit 0: \(r.output)")
        let submit = cli.path("demo/submit")
        let status = try JSONSerialization.jsonObject(with: Data(try cli.run(["status", submit, "--json"]).stdout.utf8)) as! [String: Any]
        let tasks = Dictionary(uniqueKeysWithValues: (status["tasks"] as! [[String: Any]]).map {
            ($0["label"] as! String, $0["counts"] as! [String: Int])
        })
        #expect(tasks["isr"] == ["succeeded": 5, "failed": 1])
        #expect(tasks["calibrate"] == ["succeeded": 5, "blocked": 1])
        #expect(tasks["gather"] == ["succeeded": 1, "blocked": 1])
        let failed = (status["elements"] as! [[String: Any]]).first { ($0["state"] as? String) == "failed" }!
        #expect((failed["reason"] as? String)?.contains("corrupt image") == true)
        let blocked = (status["elements"] as! [[String: Any]]).filter { ($0["state"] as? String) == "blocked" }
        #expect(blocked.allSatisfy { ($0["reason"] as? String)?.contains("missing input") == true })

        // The merge still registered everything that was made.
        let partial = try cli.datasets(repo: cli.path("demo/repo"), collection: "demo/out").filter { ($0["run"] as? String) != "demo/raw" }
        #expect(partial.count == 20 - 1 - 2 - 1)

        // Fix the cause (replace the corrupt raw with a good one), then restart.
        let rawDir = cli.path("demo/repo/datastore/demo/raw/raw")
        let raws = try FileManager.default.contentsOfDirectory(atPath: rawDir).sorted()
        let sizes = raws.map { (try? FileManager.default.attributesOfItem(atPath: "\(rawDir)/\($0)")[.size] as? Int) ?? 0 }
        let good = raws[sizes.firstIndex(of: sizes.max()!)!]
        for (name, size) in zip(raws, sizes) where size < sizes.max()! {
            try FileManager.default.removeItem(atPath: "\(rawDir)/\(name)")
            try FileManager.default.copyItem(atPath: "\(rawDir)/\(good)", toPath: "\(rawDir)/\(name)")
        }
        let restart = try cli.run(["restart", submit])
        #expect(restart.status == .exited(0), "\(restart.output)")
        #expect(restart.stdout.contains("Restarting 3 jobs"))
        let all = try cli.datasets(repo: cli.path("demo/repo"), collection: "demo/out").filter { ($0["run"] as? String) != "demo/raw" }
        #expect(all.count == 20)
        #expect(Set(all.map { $0["id"] as! String }).count == 20)
        #expect(Set(all.map { "\($0["datasetType"]!)\($0["dataID"]!)" }).count == 20)
    }

    @Test func killedMergeResumesAndRegistersEachDatasetOnce() throws {
        let cli = try CLI()
        let plan = try cli.run(["demo", "--workdir", "demo", "--visits", "8", "--detectors", "8", "--size", "16", "--plan-only"])
        #expect(plan.status == .exited(0), "\(plan.output)")
        let submit = cli.path("demo/submit")
        let run = try cli.run(["run", submit, "--no-merge"])
        #expect(run.status == .exited(0), "\(run.output)")
        let expected = 64 + 64 * 2 + 8

        let log = cli.path("merge.log")
        let pid = try cli.launch(["merge", submit, "--batch-size", "10", "--batch-pause-ms", "200"], log: log)
        let deadline = Date().addingTimeInterval(60)
        while !cli.read(log).contains("committed 20/") && Date() < deadline { usleep(20_000) }
        kill(pid, SIGKILL)
        #expect(Spawn.wait(pid) == .signaled(SIGKILL))
        let partial = try cli.datasets(repo: cli.path("demo/repo"), collection: "demo/out/" + runSuffix(cli))
        #expect(partial.count >= 20 && partial.count < expected, "killed merge registered \(partial.count)")

        let again = try cli.run(["merge", submit])
        #expect(again.status == .exited(0), "\(again.output)")
        let all = try cli.datasets(repo: cli.path("demo/repo"), collection: "demo/out").filter { ($0["run"] as? String) != "demo/raw" }
        #expect(all.count == expected)
        #expect(Set(all.map { $0["id"] as! String }).count == expected)
        #expect(Set(all.map { "\($0["datasetType"]!)\($0["dataID"]!)" }).count == expected)
    }

    private func runSuffix(_ cli: CLI) throws -> String {
        let plan = try JSONSerialization.jsonObject(with: Data(cli.read(cli.path("demo/submit/plan.json")).utf8)) as! [String: Any]
        return String((plan["outputRun"] as! String).dropFirst("demo/out/".count))
    }
}
