import Foundation
import Testing
import QuantaCore

/// The butler's query language as `dataQuery:`, `--where` and group queries use it.
@Suite struct DataQueryTests {
    func id(_ pairs: [(String, DimensionValue)]) -> DataID { DataID(pairs) }

    @Test func comparesListsRangesAndLogic() throws {
        let q = try DataQuery.parse("instrument = 'HSC' AND (band IN ('g', 'r') OR visit >= 1000) AND NOT detector IN (0..3, 9..13:2)")
        let g5 = id([("instrument", .string("HSC")), ("band", .string("g")), ("visit", .int(10)), ("detector", .int(5))])
        #expect(q.matches { g5[$0] } == true)
        let g2 = id([("instrument", .string("HSC")), ("band", .string("g")), ("visit", .int(10)), ("detector", .int(2))])
        #expect(q.matches { g2[$0] } == false)
        let i11 = id([("instrument", .string("HSC")), ("band", .string("i")), ("visit", .int(1000)), ("detector", .int(11))])
        #expect(q.matches { i11[$0] } == false, "11 is in 9..13:2")
        let i12 = id([("instrument", .string("HSC")), ("band", .string("i")), ("visit", .int(1000)), ("detector", .int(12))])
        #expect(q.matches { i12[$0] } == true)
        // Keywords in any case, <> and == as != and =, numbers as text compare as text.
        #expect(try DataQuery.parse("band <> 'g' and detector == '3'").matches { ["band": .string("r"), "detector": .int(3)][$0] } == true)
        // Quotes doubled inside a string.
        #expect(try DataQuery.parse("band = 'it''s'").matches { _ in .string("it's") } == true)
    }

    /// What a data ID does not know yet is undecided, never a false no.
    @Test func unknownDimensionsLeaveTheAnswerOpen() throws {
        let q = try DataQuery.parse("band = 'g' AND patch = 3")
        #expect(q.matches { ["band": .string("g")][$0] } == nil)
        #expect(q.matches { ["band": .string("r")][$0] } == false, "false AND unknown is false")
        #expect(try DataQuery.parse("band = 'g' OR patch = 3").matches { ["band": .string("g")][$0] } == true)
        #expect(q.admits(id([("band", .string("g"))])) && !q.admits(id([("band", .string("r"))])))
        #expect(q.dimensions == ["band", "patch"])
        // The text form parses back to the same query.
        #expect(try DataQuery.parse(q.description) == q)
    }

    @Test(arguments: [
        ("band = g", "g is not a value; quote strings: band = 'g'"),
        ("band = 'g", "a string opened with ' is not closed"),
        ("band 'g'", "expected =, !=, <, <=, >, >= or IN after band, found 'g'"),
        ("(band = 'g'", "expected ')' at the end"),
        ("", "empty"),
        ("visit IN (5..1)", "the range 5..1 is empty"),
        ("band = 'g' AND", "ends where a comparison should follow"),
        ("visit = 99999999999999999999", "99999999999999999999 is too large a number"),
        ("band ~ 'g'", "unexpected character '~'"),
        ("visit IN (1..3:0)", "a range's stride is a number above 0: 1..10:2"),
    ])
    func mistakesAreOneLine(_ text: String, _ why: String) {
        #expect(throws: QuantaError(.usage, "data query \"\(text)\": \(why)")) { try DataQuery.parse(text) }
    }

    @Test func unknownDimensionsAreNamed() {
        #expect(throws: QuantaError(.usage, "data query \"bnd = 'g'\": unknown dimension 'bnd'; did you mean 'band'? (known: band, visit)")) {
            try DataQuery.parse("bnd = 'g'", known: ["band", "visit"])
        }
    }

    /// Any bytes give a query or an error: bit flips of valid queries, deep nesting, junk.
    @Test func anyBytesGiveAnErrorNeverATrap() {
        var rng = SystemRandomNumberGenerator()
        let seeds = ["instrument='HSC' AND visit IN (1..10:2, 30) OR NOT (band != \"r\")", "tract=9813 and patch in (1,2,3)"]
        var parsed = 0
        for _ in 0..<5000 {
            var bytes = Array(seeds.randomElement(using: &rng)!.utf8)
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let i = Int.random(in: 0..<bytes.count, using: &rng)
                bytes[i] ^= UInt8(1 << Int.random(in: 0..<8, using: &rng))
            }
            if (try? DataQuery.parse(String(decoding: bytes, as: UTF8.self))) != nil { parsed += 1 }
        }
        #expect(parsed > 0 && parsed < 5000, "\(parsed) of 5000 flipped queries still parse")
        #expect(throws: QuantaError.self) { try DataQuery.parse(String(repeating: "(", count: 10_000) + "band = 'g'") }
        #expect(throws: QuantaError.self) { try DataQuery.parse(String(repeating: "NOT ", count: 10_000) + "band = 'g'") }
        #expect(throws: QuantaError.self) { try DataQuery.parse("\u{0}\u{FFFD}'") }
    }
}
