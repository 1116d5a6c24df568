import Foundation
import Testing
import QuantaTestSupport
@testable import QuantaCore

@Suite struct ClusteringTests {
    @Test func oneQuantumPerJobByDefault() throws {
        let g = pipelineGraph(visits: [1, 2], detectors: [0, 1, 2])
        let order = try g.validate(source: "g")
        let c = try Clustering.cluster(g, config: try config(""), order: order)
        #expect(c.jobs.count == g.quanta.count)
        #expect(c.jobs.allSatisfy { $0.quanta.count == 1 })
        // A gather job waits on the three calibrate jobs of its visit.
        let gather = c.jobs.indices.first { c.jobs[$0].cluster == "gather" }!
        #expect(c.upstream[gather].count == 3)
        #expect(c.upstream[gather].allSatisfy { c.jobs[Int($0)].cluster == "calibrate" })
    }

    @Test func chainOfTasksForTheSameDataID() throws {
        let g = pipelineGraph(visits: [1], detectors: [0, 1])
        let cfg = try config("""
        cluster:
          perDetector:
            pipetasks: isr, calibrate
        pipetask:
          isr: {requestMemory: 1000, requestWalltime: 600}
          calibrate: {requestMemory: 3000, requestCpus: 2, requestWalltime: 1200}
        """)
        let c = try Clustering.cluster(g, config: cfg, order: try g.validate(source: "g"))
        let chains = c.jobs.filter { $0.cluster == "perDetector" }
        #expect(chains.count == 2)
        for job in chains {
            #expect(job.quanta.map { g.taskLabel(ofQuantum: Int($0)) } == ["isr", "calibrate"])
            #expect(job.resources == ResourceRequest(memoryMB: 3000, cpus: 2, walltime: 1800))
        }
    }

    @Test func dimensionClusteringGroupsByVisit() throws {
        let g = pipelineGraph(visits: [1, 2], detectors: [0, 1, 2])
        let cfg = try config("""
        cluster:
          byVisit:
            pipetasks: [isr, calibrate]
            dimensions: visit
        """)
        let c = try Clustering.cluster(g, config: cfg, order: try g.validate(source: "g"))
        let byVisit = c.jobs.filter { $0.cluster == "byVisit" }
        #expect(byVisit.count == 2)
        #expect(byVisit.allSatisfy { $0.quanta.count == 6 })
        // Inside a job every isr runs before the calibrate that reads its output.
        for job in byVisit {
            let labels = job.quanta.map { g.taskLabel(ofQuantum: Int($0)) }
            for (i, q) in job.quanta.enumerated() where labels[i] == "calibrate" {
                let input = g.inputs(of: Int(q)).first!
                let producer = g.producers()[Int(input)]
                #expect(job.quanta.firstIndex(of: producer)! < i)
            }
        }
    }

    @Test func partitionsSortNumericallyNotAsStrings() throws {
        let g = pipelineGraph(visits: [1], detectors: [2, 10, 1, 9])
        let cfg = try config("""
        cluster:
          c:
            pipetasks: isr
            dimensions: visit
            partitionDimensions: detector
            partitionMaxClusters: 2
        """)
        let c = try Clustering.cluster(g, config: cfg, order: try g.validate(source: "g"))
        let parts = c.jobs.filter { $0.cluster == "c" }.map { job in
            job.quanta.map { g.dataID(ofQuantum: Int($0))["detector"]! }
        }
        #expect(parts.count == 2)
        // As strings "10" < "2"; numerically the halves are {1, 2} and {9, 10}.
        #expect(Set(parts[0]) == [.int(1), .int(2)])
        #expect(Set(parts[1]) == [.int(9), .int(10)])
    }

    @Test func partitionMaxSizeCapsQuantaPerJob() throws {
        let g = pipelineGraph(visits: [1], detectors: Array(0..<7))
        let cfg = try config("""
        cluster:
          c: {pipetasks: isr, dimensions: visit, partitionDimensions: detector, partitionMaxSize: 3}
        """)
        let c = try Clustering.cluster(g, config: cfg, order: try g.validate(source: "g"))
        #expect(c.jobs.filter { $0.cluster == "c" }.map(\.quanta.count) == [3, 3, 1])
    }

    @Test func clusteringThatCreatesACycleIsAnError() throws {
        // isr and gather in one cluster per visit, calibrate alone: the cluster job both feeds and
        // waits on the calibrate jobs.
        let g = pipelineGraph(visits: [1], detectors: [0, 1])
        let cfg = try config("""
        cluster:
          bad: {pipetasks: "isr, gather", dimensions: visit}
        """)
        #expect {
            try Clustering.cluster(g, config: cfg, order: try g.validate(source: "g"))
        } throws: { e in
            let m = (e as? QuantaError)?.message ?? ""
            return m.contains("cycle") && m.contains("bad") && m.contains("calibrate")
        }
    }

    @Test func unknownClusterDimensionNamesTaskAndDimension() throws {
        let g = pipelineGraph(visits: [1], detectors: [0])
        let cfg = try config("cluster: {c: {pipetasks: gather, dimensions: detector}}")
        #expect {
            try Clustering.cluster(g, config: cfg, order: try g.validate(source: "g"))
        } throws: { e in
            let m = (e as? QuantaError)?.message ?? ""
            return m.contains("'detector'") && m.contains("'gather'")
        }
    }
}

@Suite struct ArrayPlannerTests {
    @Test func sameLabelAndResourcesMakeOneArrayWithCorrelatedDependency() throws {
        let g = pipelineGraph(visits: [1, 2], detectors: [0, 1, 2])
        let c = try Clustering.cluster(g, config: try config(""), order: try g.validate(source: "g"))
        let plan = try ArrayPlanner.plan(c, site: testSite)
        #expect(plan.arrays.map(\.name) == ["isr", "calibrate", "gather"])
        #expect(plan.arrays.map(\.size) == [6, 6, 2])
        #expect(plan.arrays[1].dependencies == [ArrayDependency(array: "isr", kind: .aftercorr)])
        #expect(plan.arrays[2].dependencies == [ArrayDependency(array: "calibrate", kind: .afterany)])
        // Element i of calibrate reads exactly what element i of isr writes.
        for i in 0..<6 {
            let isrJob = c.jobs[Int(plan.elements[0][i])], calJob = c.jobs[Int(plan.elements[1][i])]
            #expect(g.dataID(ofQuantum: Int(isrJob.quanta[0])) == g.dataID(ofQuantum: Int(calJob.quanta[0])))
        }
    }

    @Test func splitsAtMaxArraySizeAndThrottles() throws {
        let g = pipelineGraph(visits: [1, 2, 3], detectors: Array(0..<5))
        var site = testSite
        site.maxArraySize = 4
        site.maxRunningPerArray = 2
        let c = try Clustering.cluster(g, config: try config(""), order: try g.validate(source: "g"))
        let plan = try ArrayPlanner.plan(c, site: site)
        let isr = plan.arrays.filter { $0.label == "isr" }
        #expect(isr.map(\.size) == [4, 4, 4, 3])
        #expect(isr.map(\.name) == ["isr-1", "isr-2", "isr-3", "isr-4"])
        #expect(isr[0].arraySpec == "0-3%2")
        #expect(plan.arrays.allSatisfy { $0.size <= 4 })
        // Calibrate chunks line up with isr chunks: still element-to-element.
        let cal = plan.arrays.filter { $0.label == "calibrate" }
        #expect(cal[0].dependencies == [ArrayDependency(array: "isr-1", kind: .aftercorr)])
        // Submission order: every array after those it waits for.
        var seen = Set<String>()
        for a in plan.arrays {
            #expect(a.dependencies.allSatisfy { seen.contains($0.array) })
            seen.insert(a.name)
        }
    }

    @Test func differentResourcesMakeSeparateArrays() throws {
        let g = pipelineGraph(visits: [1], detectors: [0, 1])
        let c = try Clustering.cluster(g, config: try config("pipetask: {isr: {requestMemory: 100000}}"), order: try g.validate(source: "g"))
        let plan = try ArrayPlanner.plan(c, site: testSite)
        #expect(plan.arrays.first { $0.label == "isr" }?.partition == "bigmem")
        #expect(plan.arrays.first { $0.label == "calibrate" }?.partition == "normal")
    }

    @Test func requestThatFitsNoPartitionNamesTaskRequestAndLimits() throws {
        let g = pipelineGraph(visits: [1], detectors: [0])
        let c = try Clustering.cluster(g, config: try config("pipetask: {calibrate: {requestMemory: 600G}}"), order: try g.validate(source: "g"))
        #expect {
            try ArrayPlanner.plan(c, site: testSite)
        } throws: { e in
            let m = (e as? QuantaError)?.message ?? ""
            return m.contains("'calibrate'") && m.contains("600 GB") && m.contains("bigmem: 512 GB") && m.contains("normal: 64 GB")
        }
    }

    @Test func intraArrayDependenciesFallBackToLevels() throws {
        // Quanta of one task that read each other's outputs (a chain): one array would wait on
        // itself, which SLURM cannot express; the planner splits such arrays by dependency level.
        var b = GraphBuilder(universe: ["step"])
        b.addDatasetType("x", dimensions: ["step"], storageClass: "Text")
        b.addTask(TaskNode(label: "iterate", dimensions: ["step"], inputTypes: ["x"], outputTypes: ["x"]))
        var previous = b.dataset("x", DataID([("step", .int(0))]), run: "in", location: "x0")
        for s in 1...3 {
            let next = b.dataset("x", DataID([("step", .int(Int64(s)))]), run: "out")
            b.addQuantum(task: "iterate", dataID: DataID([("step", .int(Int64(s)))]), inputs: [previous], outputs: [next])
            previous = next
        }
        let g = b.graph
        let c = try Clustering.cluster(g, config: try config(""), order: try g.validate(source: "g"))
        let plan = try ArrayPlanner.plan(c, site: testSite)
        #expect(plan.arrays.count == 3)
        #expect(plan.arrays.allSatisfy { a in !a.dependencies.contains { $0.array == a.name } })
    }
}
