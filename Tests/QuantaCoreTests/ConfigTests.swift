import Foundation
import Testing
import QuantaTestSupport
@testable import QuantaCore

@Suite struct SubmitConfigTests {
    @Test func readsBpsKeysAndReportsUnknownOnesOnce() throws {
        let c = try config("""
        requestMemory: 4096
        requestCpus: 2
        requestWalltime: "01:30:00"
        numberOfRetries: 3
        retryUnlessExit: [1, 2, 3]
        memoryMultiplier: 1.5
        memoryLimit: 64G
        project: someone
        campaign: hsc-rc2
        pipetask:
          isr: {requestMemory: 8G, executor: builtin, builtin: isr, colour: blue}
        cluster:
          c1: {pipetasks: "isr, calibrate", dimensions: "visit, detector", equalDimensions: "visit:exposure", requestMemory: 10000, flavour: x}
        payload:
          output: u/me/out
        """)
        #expect(c.global.requestMemory == 4096)
        #expect(c.global.requestWalltime == 5400)
        #expect(c.global.retryUnlessExit == [1, 2, 3])
        #expect(c.global.memoryLimit == 65536)
        #expect(c.settings(forTask: "isr").requestMemory == 8192)
        #expect(c.settings(forTask: "isr").requestCpus == 2)
        #expect(c.settings(forTask: "other").requestMemory == 4096)
        #expect(c.clusters[0].pipetasks == ["isr", "calibrate"])
        #expect(c.clusters[0].equalDimensions.map { [$0.0, $0.1] } == [["visit", "exposure"]])
        #expect(c.clusters[0].settings.requestMemory == 10000)
        #expect(c.payload["output"] == "u/me/out")
        #expect(c.ignoredKeys == ["campaign", "cluster.c1.flavour", "pipetask.isr.colour", "project"])
    }

    @Test func defaultsAreBps() throws {
        let s = try config("").settings(forTask: "x")
        #expect(s.requestMemory == 2048)
        #expect(s.requestCpus == 1)
        #expect(s.numberOfRetries == 5)
        #expect(s.retryUnlessExit == [1, 2])
    }

    @Test func badValuesNameFileAndKey() throws {
        #expect {
            try config("pipetask: {isr: {requestMemory: lots}}")
        } throws: { e in ((e as? QuantaError)?.message ?? "").hasPrefix("test.yaml: pipetask.isr.requestMemory") }
        #expect {
            try config("cluster: {c: {dimensions: visit}}")
        } throws: { e in ((e as? QuantaError)?.message ?? "").contains("cluster.c: needs 'pipetasks'") }
        #expect {
            try config("requestMemory: [1, 2")
        } throws: { e in ((e as? QuantaError)?.message ?? "").hasPrefix("test.yaml: not valid YAML") }
    }
}

@Suite struct SiteConfigTests {
    let machine = (cores: 2, memoryMB: 24576)

    @Test func shippedSitesParse() throws {
        let local = try SiteConfig.load(path: repoRoot + "/site-configs/local.yaml", machine: machine)
        #expect(local.scheduler == .local)
        #expect(local.partitions[0].coresPerNode == 2)
        #expect(local.partitions[0].memoryPerNodeMB == 24576)
        let hpc = try SiteConfig.load(path: repoRoot + "/site-configs/hpc-example.yaml", machine: machine)
        #expect(hpc.scheduler == .slurm)
        #expect(hpc.partitions.map(\.name) == ["normal", "bigmem", "debug"])
        #expect(hpc.partitions[1].memoryPerNodeMB == 1024 * 1024)
        #expect(hpc.partitions[2].maxWalltime == 3600)
        #expect(hpc.maxRunningPerArray == 200)
        #expect(hpc.account == "rubin")
        #expect(hpc.umask == "0002")
        #expect(hpc.environment.count == 2)
    }

    @Test func walltimeDecidesThePartition() throws {
        let hpc = try SiteConfig.load(path: repoRoot + "/site-configs/hpc-example.yaml", machine: machine)
        let p = try hpc.partition(for: ResourceRequest(memoryMB: 4096, cpus: 4, walltime: 7200), preferred: "normal", task: "t")
        #expect(p.name == "normal")
        #expect {
            try hpc.partition(for: ResourceRequest(memoryMB: 4096, cpus: 4, walltime: 7200), preferred: "debug", task: "isr")
        } throws: { e in
            let m = (e as? QuantaError)?.message ?? ""
            return m.contains("'isr'") && m.contains("02:00:00") && m.contains("max walltime 01:00:00")
        }
    }

    @Test func valuesThatWouldBreakSbatchLinesAreRefused() throws {
        #expect {
            try SiteConfig.parse("partitions: [{name: normal, coresPerNode: 1, memoryPerNode: 1G}]\naccount: \"a\\n#SBATCH --x\"", source: "s.yaml", machine: machine)
        } throws: { e in ((e as? QuantaError)?.message ?? "").hasPrefix("s.yaml: account") }
        #expect {
            try SiteConfig.parse("partitions: []", source: "s.yaml", machine: machine)
        } throws: { e in ((e as? QuantaError)?.message ?? "").contains("list at least one partition") }
    }
}

@Suite struct SmallPieces {
    @Test func dimensionValuesSortNumerically() {
        let ids = [10, 9, 100, 2].map { DataID([("detector", .int(Int64($0)))]) }
        #expect(ids.sorted().map { $0["detector"]! } == [.int(2), .int(9), .int(10), .int(100)])
    }

    @Test func dataIDJSONRoundTrips() throws {
        let id = DataID([("instrument", .string("HSC \"x\" $(y)\n")), ("visit", .int(903334))])
        #expect(try DataID(json: id.json) == id)
        #expect(id.json == #"[["instrument","HSC \"x\" $(y)\n"],["visit",903334]]"#)
    }

    @Test func units() {
        #expect(Units.megabytes("4G") == 4096)
        #expect(Units.megabytes(2048) == 2048)
        #expect(Units.megabytes("1.5GB") == 1536)
        #expect(Units.seconds("1-02:03:04") == 93784)
        #expect(Units.seconds("10:00") == 600)
        #expect(Units.seconds(3600) == 3600)
        #expect(Units.seconds("abc") == nil)
        #expect(Units.slurmTime(93784) == "1-02:03:04")
    }

    @Test func pathComponentsHaveNoSlashesOrControls() {
        #expect(PathSanitizer.component("a/b\nc") == "a%2Fb%0Ac")
        #expect(PathSanitizer.component("..") == "%2E%2E")
        #expect(PathSanitizer.component(".") == "%2E")
        #expect(PathSanitizer.component("") == "%")
        #expect(PathSanitizer.safeName("it's $(x)") == "it_s___x_")
    }

    /// Issue 12: `a/b` and `a_b` (and `new\nline` / `new_line`) shared one datastore file.
    @Test func pathEscapingIsReversibleAndInjective() {
        let values = ["a/b", "a_b", "a%2Fb", "new\nline", "new_line", "", ".", "..", "%", "_", "x\u{7f}", "é/ü", "1_detector2"]
        for v in values {
            #expect(PathSanitizer.unescape(PathSanitizer.component(v)) == v)
            #expect(PathSanitizer.unescape(PathSanitizer.escape(v, underscore: true)) == v)
            #expect(!PathSanitizer.component(v).contains("/"))
        }
        #expect(Set(values.map(PathSanitizer.component)).count == values.count)
        // Fragments of one dataset type's data IDs: `_` inside a value must not pass for the joint.
        let ids = [DataID([("visit", .string("1_detector2")), ("detector", .string("3"))]),
                   DataID([("visit", .string("1")), ("detector", .string("2_detector3"))]),
                   DataID([("visit", .string("a/b")), ("detector", .int(1))]),
                   DataID([("visit", .string("a_b")), ("detector", .int(1))])]
        #expect(Set(ids.map(\.pathFragment)).count == ids.count)
        #expect(DataID([("visit", .int(903334)), ("detector", .int(42))]).pathFragment == "visit903334_detector42")
    }

    /// Issue 12, item 9: misspellings are named with the key or label meant.
    @Test func nearMissesAreNamed() throws {
        #expect(DidYouMean.suggestion(for: "requestMemroy", among: ["requestMemory", "requestCpus"]) == "requestMemory")
        #expect(DidYouMean.suggestion(for: "project", among: ["requestMemory", "requestCpus"]) == nil)
        let c = try SubmitConfig.parse("requestMemroy: 4G\nproject: x\npipetask:\n  isr: {requestMemory: 4G, numberOfRetires: 2}\n  isrr: {requestCpus: 2}\n", source: "s.yaml")
        #expect(c.misspelledKeys.map(\.key) == ["pipetask.isr.numberOfRetires", "requestMemroy"])
        #expect(c.misspelledKeys.map(\.meant) == ["pipetask.isr.numberOfRetries", "requestMemory"])
        #expect(throws: QuantaError(.invalidConfig, "s.yaml: pipetask.isrr: no task 'isrr' in the graph; did you mean 'isr'?")) {
            try c.checkLabels(["isr", "calibrate"], strict: false)
        }
        let other = try SubmitConfig.parse("pipetask:\n  makeWarp: {requestMemory: 4G}\n", source: "s.yaml")
        #expect(try other.checkLabels(["isr"], strict: false) == ["pipetask.makeWarp: no task 'makeWarp' in this graph; its settings are not used"])
        // Quanta's own graphs are strict, except for built-in tasks a subset graph leaves out.
        let strange = try SubmitConfig.parse("pipetask:\n  gather: {requestMemory: 4G}\n", source: "s.yaml")
        #expect(throws: QuantaError.self) { try strange.checkLabels(["isr"], strict: true) }
        #expect(try other.checkLabels(["isr"], strict: true) == ["pipetask.makeWarp: no task 'makeWarp' in this graph; its settings are not used"])
    }

    /// bps's includeConfigs in a submit config: included first, deep-merged, the including file wins;
    /// `${NAME}` is kept for run time.
    @Test func includedConfigsMerge() throws {
        let dir = try temporaryDirectory()
        try "requestMemory: 1024\nnumberOfRetries: 3\npipetask:\n  isr: {requestMemory: 2048, command: 'echo ${HOME}'}\n"
            .write(toFile: dir + "/base.yaml", atomically: true, encoding: .utf8)
        try "includeConfigs: [base.yaml]\nrequestMemory: 512\npipetask:\n  isr: {requestCpus: 2}\n"
            .write(toFile: dir + "/top.yaml", atomically: true, encoding: .utf8)
        let c = try SubmitConfig.load(path: dir + "/top.yaml")
        #expect(c.global.requestMemory == 512 && c.global.numberOfRetries == 3)
        #expect(c.pipetask["isr"]?.requestMemory == 2048 && c.pipetask["isr"]?.requestCpus == 2)
        #expect(c.pipetask["isr"]?.command == "echo ${HOME}")
        try "includeConfigs: [top.yaml]\n".write(toFile: dir + "/base.yaml", atomically: true, encoding: .utf8)
        #expect(throws: QuantaError.self) { try SubmitConfig.load(path: dir + "/top.yaml") }
    }

    /// Issue 12, item 9: passwords in URLs never reach an error message.
    @Test func passwordsAreRedacted() {
        let e = QuantaError(.registry, "cannot open postgresql://quanta:s3cr%40t@db.example.org:5432/reg (timeout); also https://u:p@h/x and postgresql://nopass@h/db")
        #expect(!e.message.contains("s3cr"), "\(e.message)")
        #expect(e.message == "cannot open postgresql://quanta:***@db.example.org:5432/reg (timeout); also https://u:***@h/x and postgresql://nopass@h/db")
        #expect("\(e)" == e.message)
    }
}
