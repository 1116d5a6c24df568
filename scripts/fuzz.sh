#!/usr/bin/env bash
# Builds the libFuzzer targets (Fuzz/, one per binary reader) with AddressSanitizer and runs each
# for SECONDS (default 60) from its committed seed corpus (Fuzz/corpus/<reader>/). Any trap, crash,
# sanitizer report or timeout fails the script; the input that did it is kept and printed, and
# belongs in the corpus as a regression input once the reader is fixed.
#   scripts/fuzz.sh [SECONDS] [TARGET...]     e.g. scripts/fuzz.sh 600 FuzzSnapshot
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
seconds=${1:-60}
shift || true
flags=(--package-path Fuzz -c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing)
swift build "${flags[@]}" 2>&1 | { grep -vE '^\[[0-9]+/[0-9]+\] |Cannot export local symbol' || true; }
bin=$(swift build "${flags[@]}" --show-bin-path)
declare -A corpus=([FuzzNativeGraph]=qgn [FuzzLSSTGraph]=qg [FuzzSnapshot]=snapshot [FuzzStatusCache]=status-cache [FuzzManifest]=manifest)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(FuzzNativeGraph FuzzLSSTGraph FuzzSnapshot FuzzStatusCache FuzzManifest)
out=${FUZZ_OUT:-$(mktemp -d)}
failed=0
printf '%-16s %10s %12s %8s\n' target execs/s execs corpus
for t in "${targets[@]}"; do
  c=${corpus[$t]}
  mkdir -p "$out/$t"  # new inputs go here; the committed corpus is only read
  if ! ASAN_OPTIONS=detect_leaks=0 "$bin/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
       -print_final_stats=1 -artifact_prefix="$out/$t-" "$out/$t" "Fuzz/corpus/$c" >"$out/$t.log" 2>&1; then
    failed=1
    echo "$t: FAILED — log $out/$t.log"
    grep -m1 -E "ERROR|Fatal error|deadly signal|timeout" "$out/$t.log" || true
    for a in "$out/$t"-*; do [ -e "$a" ] && { echo "input: $a"; xxd "$a" | head -8; }; done
    continue
  fi
  final_stat() { grep -m1 "$1" "$out/$t.log" | awk '{print $2}'; }
  printf '%-16s %10s %12s %8s\n' "$t" "$(final_stat stat::average_exec_per_sec)" "$(final_stat stat::number_of_executed_units)" \
    "$(ls "$out/$t" | wc -l)"
done
exit $failed
