#!/usr/bin/env bash
# Installs what Quanta needs on Debian 12 (only what is missing), then builds it.
# Safe to run again. Build flags can be passed through QUANTA_BUILD_FLAGS (e.g. "-c release").
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libcfitsio-dev libslurm-dev libzstd-dev zlib1g-dev libsqlite3-dev pkg-config)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "quanta setup: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
  for d in /opt/swift/usr/bin /usr/share/swift/usr/bin; do
    [ -x "$d/swift" ] && export PATH="$d:$PATH" && break
  done
fi
command -v swift >/dev/null 2>&1 || { echo "quanta setup: swift not found; install Swift 6 and put it on PATH" >&2; exit 1; }

echo "quanta setup: building (first build takes a few minutes)" >&2
# shellcheck disable=SC2086
set +e
# The compiler's step lines become one progress line a minute ("compiling 310/812: GRDB"); its
# messages (errors, warnings) pass through.
swift build ${QUANTA_BUILD_FLAGS:-} 2>&1 | awk -v start="$(date +%s)" '
  /^\[[0-9]+\/[0-9]+\] / {
    now = systime(); if (now - last >= 60) { split($1, n, "[][/]"); printf "quanta setup: compiling %s/%s (%d s so far): %s\n", n[2], n[3], now - start, $3 > "/dev/stderr"; fflush(); last = now }
    next }
  /^(Fetching |Fetched |Computing |Computed |Creating working copy|Working copy of )/ { next }
  { print; fflush() }'
built=${PIPESTATUS[0]}
set -e
[ "$built" -eq 0 ] || { echo "quanta: build failed (exit $built); the compiler's messages are above" >&2; exit "$built"; }
