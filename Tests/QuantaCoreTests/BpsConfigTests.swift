import Foundation
import Testing
import QuantaTestSupport
import QuantaCore

/// bps submit YAML files as people have them: includes, ${ENV}, {placeholders}, site.<name>.
@Suite struct BpsConfigTests {
    func write(_ dir: String, _ name: String, _ text: String) throws -> String {
        let path = dir + "/" + name
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func includesEnvironmentPlaceholdersAndSite() throws {
        let dir = try temporaryDirectory()
        _ = try write(dir, "base.yaml", """
        pipelineYaml: ${KIT}/pipeline.yaml
        computeSite: local
        requestMemory: 2048
        site:
          slurm:
            class: lsst.ctrl.bps.parsl.sites.Slurm
            nodes: 4
            cores_per_node: 16
            mem_per_node: 64
            walltime: "02:00:00"
            qos: normal
            account: rubin
            scheduler_options: |
              #SBATCH --partition=milano --constraint=haswell
            retries: 1
        payload:
          payloadName: step1
          butlerConfig: ${REPO}
          inCollection: HSC/defaults
        """)
        let top = try write(dir, "bps.yaml", """
        includeConfigs:
          - base.yaml
        computeSite: slurm
        operator: alice
        requestMemory: 4096
        pipetask:
          isr:
            requestMemory: 8G
        """)
        let bps = try BpsConfig.load(path: top, environment: ["KIT": "/kit", "REPO": "/repo"], now: Date(timeIntervalSince1970: 0))
        #expect(bps.pipelineYaml == "/kit/pipeline.yaml")
        #expect(bps.butlerConfig == "/repo")
        #expect(bps.output == "u/alice/step1")
        #expect(bps.outputRun == "u/alice/step1/19700101T000000Z")
        // The including file wins; per-task settings still apply.
        #expect(bps.submit.settings(forTask: "calibrate").requestMemory == 4096)
        #expect(bps.submit.settings(forTask: "isr").requestMemory == 8192)
        let site = try #require(try bps.site(machine: (2, 8000)))
        #expect(site.scheduler == .slurm)
        #expect(site.partitions == [Partition(name: "milano", nodes: 4, coresPerNode: 16, memoryPerNodeMB: 64 * 1024, maxWalltime: 7200)])
        #expect(site.account == "rubin" && site.qos == "normal" && site.sbatchOptions == ["--constraint=haswell"])
        #expect(site.ignoredKeys == ["retries"])
        // The site round-trips through the copy kept in each submit directory.
        let again = try SiteConfig.parse(site.yamlText, source: "copy", machine: (2, 8000))
        #expect(again.partitions == site.partitions && again.account == site.account && again.sbatchOptions == site.sbatchOptions)
        // Parsl's walltime (its blocks' limit) is each job's --time when it sets no requestWalltime.
        #expect(site.defaultWalltime == 7200 && again.defaultWalltime == 7200)
        let graph = pipelineGraph(visits: [1], detectors: [0, 1])
        let order = try graph.validate(source: "g")
        let untimed = try ArrayPlanner.plan(try Clustering.cluster(graph, config: try config(""), order: order), site: site)
        #expect(untimed.arrays.allSatisfy { $0.resources.walltime == 7200 }, "\(untimed.arrays.map(\.resources))")
        let timed = try ArrayPlanner.plan(try Clustering.cluster(graph, config: try config("requestWalltime: 600"), order: order), site: site)
        #expect(timed.arrays.allSatisfy { $0.resources.walltime == 600 }, "\(timed.arrays.map(\.resources))")
    }

    /// bps submit's flags win over the file; -o moves a default {output}/{timestamp} run with it;
    /// extraQgraphOptions reaches pipetask qgraph as a shell would split it (issue 14).
    @Test func commandLineFlagsWinOverTheFile() throws {
        let dir = try temporaryDirectory()
        let path = try write(dir, "team.yaml", """
        wmsServiceClass: lsst.ctrl.bps.parsl.ParslService
        computeSite: slurm
        submitPath: /work/submit/{outputRun}
        extraQgraphOptions: "-c 'isr:doWrite=False' --skip-existing-in \\"a b\\",c"
        payload:
          payloadName: step1
        """)
        #expect(throws: QuantaError.self) { try BpsConfig.load(path: path) }  // no repo, no pipeline
        var bps = try BpsConfig.load(path: path, environment: [:], now: Date(timeIntervalSince1970: 0), validate: false)
        bps.apply(butlerConfig: "/repo", pipelineYaml: "DRP.yaml#step1", inCollection: "HSC/defaults", output: "u/team/r",
                  outputRun: nil, dataQuery: "band = 'r'")
        try bps.validate()
        #expect(bps.butlerConfig == "/repo" && bps.pipelineYaml == "DRP.yaml#step1" && bps.inCollection == "HSC/defaults")
        #expect(bps.output == "u/team/r" && bps.outputRun == "u/team/r/19700101T000000Z" && bps.dataQuery == "band = 'r'")
        #expect(bps.submitPath == "/work/submit/u/team/r/19700101T000000Z", "\(bps.submitPath ?? "-")")
        #expect(bps.qgraphConfigs == ["-c", "isr:doWrite=False", "--skip-existing-in", "a b,c"], "\(bps.qgraphConfigs)")
        bps.apply(butlerConfig: nil, pipelineYaml: nil, inCollection: nil, output: nil, outputRun: "u/team/r/mine", dataQuery: nil)
        #expect(bps.outputRun == "u/team/r/mine" && bps.submitPath == "/work/submit/u/team/r/mine")
        #expect(throws: QuantaError.self) { try ShellWords.split("-c 'unclosed", source: "x") }
    }

    @Test func clearErrors() throws {
        let dir = try temporaryDirectory()
        let unset = try write(dir, "a.yaml", "pipelineYaml: ${NOPE}/p.yaml\npayload:\n  butlerConfig: /r\n")
        #expect(throws: QuantaError.self) { try BpsConfig.load(path: unset, environment: [:]) }
        do { _ = try BpsConfig.load(path: unset, environment: [:]) } catch let e as QuantaError {
            #expect(e.message.contains("${NOPE}") && e.message.contains(unset))
        }
        let noRepo = try write(dir, "b.yaml", "pipelineYaml: p.yaml\n")
        do { _ = try BpsConfig.load(path: noRepo, environment: [:]); Issue.record("accepted a file without butlerConfig") } catch let e as QuantaError {
            #expect(e.message.contains("payload.butlerConfig"))
        }
        let loop = try write(dir, "c.yaml", "includeConfigs: [c.yaml]\n")
        do { _ = try BpsConfig.load(path: loop, environment: [:]); Issue.record("accepted an include cycle") } catch let e as QuantaError {
            #expect(e.message.contains("cycle"))
        }
    }
}
