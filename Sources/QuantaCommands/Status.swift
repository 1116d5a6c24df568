import ArgumentParser
import Foundation
import QuantaCore
import QuantaScheduler

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Per task label: quanta succeeded, failed, blocked, running, pending; per array: elements by state.")

    @Argument(help: "Submit directory.")
    var dir: String

    @Flag(name: .long, help: "Machine-readable output.")
    var json = false

    @Flag(name: .long, help: "List every job that needs attention, not just the first 20.")
    var all = false

    func run() throws {
        let s = try SubmissionStatus.read(SubmitDirectory(dir))
        if json {
            print(String(decoding: try JSONEncoder.pretty.encode(s), as: UTF8.self))
        } else {
            print(s.render(showElements: all), terminator: "")
        }
    }
}
