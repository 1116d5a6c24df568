#!/usr/bin/env bash
# The whole test suite (what .ci/run calls): installs what is missing, builds, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export QUANTA_BIN_DIR
QUANTA_BIN_DIR=$(swift build --show-bin-path)
set +e
swift build --build-tests 2>&1 | grep -vE '^(\[[0-9]+/[0-9]+\] |Fetching |Fetched |Computing |Computed |Creating working copy|Working copy of )'
built=${PIPESTATUS[0]}
set -e
[ "$built" -eq 0 ] || { echo "quanta: build failed (exit $built); the compiler's messages are above" >&2; exit "$built"; }
log=$(mktemp)
# Every test's scratch directory (NSTemporaryDirectory) in one place: removed when all pass, kept
# for a look when something fails.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/quanta-tests.XXXXXX")
set +e
TMPDIR=$scratch swift test --skip-build --disable-xctest 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
if [ "$status" -eq 0 ]; then rm -rf "$scratch"; else echo "the tests' files are kept in $scratch"; fi
# Counted from Swift Testing's own lines: passed and failed tests, and what neither ran to an end
# nor failed (tests and whole suites switched off for want of SLURM, PostgreSQL or the LSST venv).
total=$(grep -oE 'Test run with [0-9]+ tests?' "$log" | grep -oE '[0-9]+' | tail -1)
passed_tests=$(grep -E '^✔ Test .* passed' "$log" | grep -vc '^✔ Test run with' || true)
failed_tests=$(grep -E '^✘ Test ' "$log" | grep -E ' failed after ' | grep -vc 'Test run' || true)
skipped_tests=$(( ${total:-0} - passed_tests - failed_tests ))
skipped_suites=$(grep -E '^➜ Suite .* skipped' "$log" | sed -E 's/^➜ Suite ([^ ]+) skipped: (.*)$/  \1: \2/' || true)
rm -f "$log"
echo
echo "${passed_tests} passed, ${failed_tests} failed, ${skipped_tests} skipped"
[ -z "$skipped_suites" ] || printf 'skipped suites:\n%s\n' "$skipped_suites"
exit "$status"
