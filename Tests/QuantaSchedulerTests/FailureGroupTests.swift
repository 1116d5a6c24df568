import Foundation
import Testing
import QuantaScheduler

/// Failures grouped by task and masked first line (pure logic).
@Suite struct FailureGroupTests {
    @Test func specificsAreMasked() {
        #expect(FailureGroups.mask("No reference objects in detector 17 of visit 903334") == "No reference objects in detector N of visit N")
        #expect(FailureGroups.mask("/data/repo/u/me/run/calexp_903334.fits: cfitsio could not read rows 0..<128")
                == "<path>: cfitsio could not read rows N..<N")
        #expect(FailureGroups.mask("dataset 0196a1b2-3c4d-7e8f-9a0b-1c2d3e4f5a6b missing for {visit: 12, detector: 3}")
                == "dataset <uuid> missing for {…}")
        #expect(FailureGroups.mask("ValueError: sigma=1.5e-3 too small") == "ValueError: sigma=N too small")
        #expect(FailureGroups.mask("HSC-G band") == "HSC-G band", "letters are kept")
    }
}
