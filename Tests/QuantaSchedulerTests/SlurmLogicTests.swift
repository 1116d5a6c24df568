import Foundation
import Testing
import QuantaTestSupport
import QuantaButler
import QuantaCore
@testable import QuantaScheduler
@testable import QuantaSlurm

/// Pure logic of the SLURM layer: index lists, retry memory, packing, and how attempts are
/// classified from SLURM's records (records built here; the real cluster is in SlurmTests).
@Suite struct SlurmLogicTests {
    @Test func arrayIndexExpressions() {
        #expect(ArrayIndices.parse("0-3%2") == [0, 1, 2, 3])
        #expect(ArrayIndices.parse("[1,4-6]") == [1, 4, 5, 6])
        #expect(ArrayIndices.parse("0-8:4") == [0, 4, 8])
        #expect(ArrayIndices.parse("7") == [7])
        #expect(ArrayIndices.format([9, 1, 2, 3, 7, 2]) == "1-3,7,9")
        #expect(ArrayIndices.parse(ArrayIndices.format([0, 5, 6, 7, 100])) == [0, 5, 6, 7, 100])
    }

    @Test func retryMemoryGrowsToTheCap() {
        let p = RetryPolicy(numberOfRetries: 3, retryUnlessExit: [1, 2], memoryMultiplier: 2, memoryLimitMB: 5000)
        #expect(p.memory(initial: 1000, outOfMemoryCount: 0, nodeMemoryMB: 64_000) == 1000)
        #expect(p.memory(initial: 1000, outOfMemoryCount: 2, nodeMemoryMB: 64_000) == 4000)
        #expect(p.memory(initial: 1000, outOfMemoryCount: 3, nodeMemoryMB: 64_000) == 5000)
        // Without memoryLimit the node is the cap.
        let q = RetryPolicy(numberOfRetries: 3, retryUnlessExit: [], memoryMultiplier: 3, memoryLimitMB: nil)
        #expect(q.memory(initial: 1000, outOfMemoryCount: 5, nodeMemoryMB: 8000) == 8000)
    }

    @Test func exclusiveSitesPackJobsIntoNodes() throws {
        let graph = pipelineGraph(visits: [1, 2], detectors: Array(0..<10))
        let cfg = try config("requestMemory: 4096\npipetask:\n  gather:\n    requestCpus: 4\n")
        let clustered = try Clustering.cluster(graph, config: cfg, order: try graph.validate(source: "g"))
        var site = testSite
        site.exclusive = true
        let plan = try ArrayPlanner.plan(clustered, site: site)
        let isr = plan.arrays.first { $0.label == "isr" }!
        // 16 cores and 64 GB per node, 1 cpu and 4 GB per job → 16 jobs per element.
        #expect(isr.packing?.jobsPerElement == 16)
        #expect(isr.jobCount == 20 && isr.size == 2)
        #expect(isr.resources.cpus == 16 && isr.resources.memoryMB == 16 * 4096)
        #expect(isr.element(ofJob: 17) == 1)
        // Slots line up between isr and calibrate, so element i waits for element i.
        let cal = plan.arrays.first { $0.label == "calibrate" }!
        #expect(cal.dependencies == [ArrayDependency(array: isr.name, kind: .aftercorr)])
        // gather: 4 cpus → 4 per node; 2 jobs fit one element.
        let gather = plan.arrays.first { $0.label == "gather" }!
        #expect(gather.packing?.jobsPerElement == 2 && gather.size == 1)
        #expect(abs(isr.packing!.idleFraction - (1 - 20.0 / 32.0)) < 1e-9)
        // Not exclusive: one job per element, as before.
        let plain = try ArrayPlanner.plan(clustered, site: testSite)
        #expect(plain.arrays.allSatisfy { $0.packing == nil && $0.size == $0.jobCount })
    }

    func record(_ state: SlurmJobState, reason: String = "None", exit: Int = 0, signal: Int = 0, started: Bool = true) -> SlurmJobRecord {
        SlurmJobRecord(arrayJobID: 100, jobID: 105, taskIDs: [3], state: state, reason: reason, exitCode: exit, signal: signal,
                       stderrPath: nil, memoryMB: 200, startTime: started ? 1 : nil, endTime: 2)
    }

    func manifest(_ status: QuantumStatus, jobID: String = "100", failureClass: FailureClass? = nil, exit: Int? = nil) -> Manifest {
        Manifest(submission: "s", array: "a", index: 3, attempt: 1, status: status, firstError: status == .succeeded ? nil : "a: boom",
                 startedAt: "", endedAt: "", seconds: 1, host: "h", slurmJobID: "105", slurmArrayJobID: jobID, maxRSSKB: 0,
                 quanta: [QuantumRecord(id: "q", task: "a", dataID: "[]", status: status, reason: nil, seconds: 1, log: nil, outputs: [], exitCode: exit)],
                 failureClass: failureClass)
    }

    func classify(_ r: SlurmJobRecord?, _ m: Manifest?, stderr: String? = nil) -> AttemptClassifier.Outcome {
        AttemptClassifier.classify(SlurmAttempt(round: 0, arrayJobID: 100, element: 3, memoryMB: 200, record: r), manifest: m) { stderr }
    }

    @Test func attemptsAreClassifiedFromSlurmAndTheManifest() {
        #expect(classify(record(.completed), manifest(.succeeded)).state == .succeeded)
        let failed = classify(record(.completed), manifest(.failed, exit: 3))
        #expect(failed.state == .failed && failed.failureClass == .failed && failed.exitCode == 3)
        // A manifest of an earlier attempt does not count for this one.
        #expect(classify(record(.completed), manifest(.succeeded, jobID: "99")).reason == "exited 0 without writing a manifest")
        #expect(classify(record(.outOfMemory, exit: 0, signal: 125), nil).failureClass == .outOfMemory)
        #expect(classify(record(.failed, signal: 9), nil, stderr: "slurmstepd: error: Exceeded job memory limit").failureClass == .outOfMemory)
        #expect(classify(record(.completed), manifest(.failed, failureClass: .outOfMemory)).failureClass == .outOfMemory)
        let plainFail = classify(record(.failed, exit: 2), nil, stderr: "line one\nfatal: disk full\n")
        #expect(plainFail.failureClass == .failed && plainFail.exitCode == 2 && plainFail.reason == "exit code 2: fatal: disk full")
        #expect(classify(record(.timeout), manifest(.failed, failureClass: .terminated)).failureClass == .timeout)
        #expect(classify(record(.nodeFail), nil).failureClass == .nodeFailure)
        #expect(classify(record(.preempted), nil).failureClass == .preempted)
        #expect(classify(record(.cancelled), nil).state == .cancelled)
        #expect(classify(record(.cancelled, reason: "DependencyNeverSatisfied", started: false), nil).state == .blocked)
        #expect(classify(record(.pending, reason: "Dependency"), nil).state == .pending)
        #expect(classify(record(.running), nil).state == .running)
        // No SLURM record any more: the attempt's own manifest decides.
        #expect(classify(nil, manifest(.blocked)).state == .blocked)
    }

    @Test func scontrolLinesParse() {
        let f = CLISlurmBackend.fields("JobId=12 ArrayJobId=10 ArrayTaskId=2 JobName=a b JobState=OUT_OF_MEMORY Reason=OutOfMemory ExitCode=0:125")
        #expect(f["JobId"] == "12" && f["ArrayTaskId"] == "2" && f["JobName"] == "a b" && f["ExitCode"] == "0:125")
        #expect(SlurmJobState(text: "CANCELLED+") == .cancelled)
        #expect(SlurmJobState(text: "OUT_OF_MEMORY") == .outOfMemory)
        #expect(SlurmJobState(base: 11) == .outOfMemory)
    }

    @Test func sbatchArgumentsCarryEveryField() {
        let request = SlurmRequest(jobName: "sub.a", partition: "debug", memoryMB: 400, cpus: 2, exclusive: true, timeMinutes: 2,
                                   account: nil, qos: nil, extraOptions: ["--constraint=x"], logStem: "a.%a")
        var s = SlurmSubmission(script: "/d/scripts/a.sbatch", request: request, array: "1,4%2",
                                stdout: "/d/logs/a.%a.r1.out", stderr: "/d/logs/a.%a.r1.err", workDir: "/d")
        s.dependency = "afterany:7"
        let a = CLISlurmBackend.arguments(s)
        for want in ["--array=1,4%2", "--mem=400M", "--cpus-per-task=2", "--dependency=afterany:7", "--kill-on-invalid-dep=yes",
                     "--time=00:02:00", "--exclusive", "--partition=debug", "--output=/d/logs/a.%a.r1.out", "--constraint=x"] {
            #expect(a.contains(want), "\(want) missing from \(a)")
        }
        #expect(a.last == "/d/scripts/a.sbatch")
    }
}
