import Foundation
import Testing
import QuantaTestSupport
@testable import QuantaCore

/// Values a graph or config can carry that must never run anything in a script.
let hostileValues = [
    "plain", "with space", "it's", "say \"hi\"", "$(touch PWNED_subst)", "`touch PWNED_backtick`",
    "a;touch PWNED_semicolon", "line1\ntouch PWNED_newline", "$HOME", "\\", "'", "'\"'\"'", "*", "-n", "",
    "tab\there", "a|touch PWNED_pipe", "&& touch PWNED_and", "日本語",
]

@Suite struct QuotingTests {
    /// Each quoted value, passed through a real /bin/sh, comes back byte for byte and runs nothing.
    @Test(arguments: hostileValues)
    func shellGetsTheValueBackAndRunsNothing(_ value: String) throws {
        let dir = try temporaryDirectory()
        let out = dir + "/out"
        var o = Spawn.Options()
        o.workingDirectory = dir
        let status = try Spawn.run("/bin/sh", ["-c", "printf '%s' \(shellQuote(value)) > out"], environment: ["PATH": "/usr/bin:/bin", "HOME": "/root"], options: o)
        #expect(status.succeeded)
        #expect(String(decoding: FileManager.default.contents(atPath: out) ?? Data(), as: UTF8.self) == value)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(files == ["out"])
    }

    @Test func commandTemplateQuotesEverySubstitution() throws {
        let t = try CommandTemplate("cp {input:raw} {output:calexp} # {dataId} {dim:visit} {task}")
        let id = DataID([("visit", .string("$(touch X)")), ("detector", .int(1))])
        let line = t.render(task: "it's", dataID: id, inputs: [("raw", "/d/a b.fits")], outputs: [("calexp", "/d/`x`.fits")])
        #expect(line == "cp '/d/a b.fits' '/d/`x`.fits' # 'visit=$(touch X), detector=1' '$(touch X)' 'it'\\''s'")
    }

    @Test func commandTemplateChecksPlaceholders() throws {
        let task = TaskNode(label: "isr", dimensions: ["visit"], inputTypes: ["raw"], outputTypes: ["postISR"])
        #expect(throws: QuantaError.self) { try CommandTemplate("x {bogus}") }
        #expect(throws: QuantaError.self) { try CommandTemplate("x {input:calexp}").check(task: task, source: "c.yaml") }
        #expect(throws: QuantaError.self) { try CommandTemplate("x {dim:detector}").check(task: task, source: "c.yaml") }
        try CommandTemplate("x {input:raw} {output:postISR} {dim:visit}").check(task: task, source: "c.yaml")
    }
}
