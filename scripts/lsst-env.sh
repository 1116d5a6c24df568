#!/usr/bin/env bash
# Creates (or reuses) a Python virtual environment with the real LSST middleware from PyPI:
# lsst-daf-butler, lsst-pipe-base, lsst-ctrl-mpexec and zstandard, at versions known to work
# together. Used by Tests/lsst/ to make butler repositories and `.qg` quantum graphs.
#
#   scripts/lsst-env.sh [--bps] [VENV]   default: ${QUANTA_LSST_VENV:-$HOME/.cache/quanta/lsst-venv}
#
#   --bps   also install lsst-ctrl-bps (pinned) and this project's python/ package (quanta_lsst,
#           with the bps plugin quanta_lsst.bps.QuantaService); reinstalled when python/ changes.
#
# Safe to run again: a complete venv (its stamp matches the pins below) is reused at once.
# Progress goes to stderr; the last line on stdout is the venv path, so callers can do
#   venv=$(scripts/lsst-env.sh | tail -1)
# Environment: QUANTA_PYTHON (interpreter to build the venv from, default python3).
set -euo pipefail

fail() { echo "lsst-env: $*" >&2; exit 1; }
say() { echo "lsst-env: $*" >&2; }

usage="usage: scripts/lsst-env.sh [--bps] [VENV]"
bps=0
args=()
for a in "$@"; do
  case "$a" in
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --bps) bps=1 ;;
    -*) fail "unknown option '$a' ($usage)" ;;
    *) args+=("$a") ;;
  esac
done
[ ${#args[@]} -le 1 ] || fail "too many arguments ($usage)"
set -- ${args[@]+"${args[@]}"}

venv=${1:-${QUANTA_LSST_VENV:-$HOME/.cache/quanta/lsst-venv}}
case "$venv" in /*) ;; *) venv="$PWD/$venv" ;; esac
python=${QUANTA_PYTHON:-python3}

# What we install. The packages we ask for are pinned exactly; everything they pull in is
# held by constraints at the versions this kit was checked with (pipe_base 30.2026.500 reads and
# writes `.qg` format version 1; newer numpy/pydantic/SQLAlchemy/astropy releases have broken
# older middleware before, and pipe_base needs zstandard < 0.24).
requirements=(
  lsst-daf-butler==30.2026.4300
  lsst-pipe-base==30.2026.500
  lsst-ctrl-mpexec==30.2026.500
  zstandard==0.23.0
  # daf_butler's PostgreSQL registry (issue 18): SQLAlchemy 2's postgresql:// driver.
  "psycopg[binary]==3.3.9"
)
constraints="lsst-pex-config==30.2026.4300
lsst-resources==30.2026.4200
lsst-sphgeom==30.2026.4000
lsst-utils==30.2026.4300
annotated-types==0.8.0
astropy==8.0.2
astropy-iers-data==0.2026.11.2.0.34.55
backoff==2.2.1
boto3==1.44.5
botocore==1.44.5
certifi==2026.10.18
click==8.5.1
Deprecated==1.3.1
frozendict==2.5.1
hpgeom==1.6.1
jmespath==1.1.0
networkx==3.6.1
numpy==2.4.6
packaging==26.3
psutil==7.2.2
pyarrow==26.0.1
pydantic==2.14.3
pydantic_core==2.50.4
pyerfa==2.0.1.5
python-dateutil==2.9.0.post0
psycopg-binary==3.3.9
PyYAML==6.0.3
s3transfer==0.19.3
six==1.17.0
SQLAlchemy==2.1.9
structlog==26.1.0
threadpoolctl==3.8.0
typing-inspection==0.4.5
typing_extensions==4.16.0
urllib3==2.8.0
wcwidth==0.9.4
wrapt==2.5.2"
stamp_text="quanta lsst-env v2
${requirements[*]}
$constraints"
stamp="$venv/.quanta-lsst-env"

complete() {
  [ -x "$venv/bin/python" ] && [ -x "$venv/bin/pipetask" ] && [ -x "$venv/bin/butler" ] &&
    [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$stamp_text" ]
}

# --bps: lsst-ctrl-bps at the version checked with the pins above, and quanta_lsst from this
# checkout's python/ (installed from a copy, so setuptools leaves no build/ in the tree). Its own
# stamp holds the pin and a checksum of python/, so an edited plugin is installed again.
bps_requirement=lsst-ctrl-bps==30.2026.300
project_python="$(cd "$(dirname "$0")/.." && pwd)/python"
bps_stamp="$venv/.quanta-lsst-env-bps"
bps_stamp_text() {
  echo "quanta lsst-env bps v1"
  echo "$bps_requirement"
  (cd "$project_python" && find pyproject.toml quanta_lsst -name '*.py' -o -name pyproject.toml | LC_ALL=C sort |
    xargs sha256sum)
}
bps_complete() {
  [ -x "$venv/bin/bps" ] && [ -f "$bps_stamp" ] && [ "$(cat "$bps_stamp")" = "$(bps_stamp_text)" ]
}
install_bps() {
  [ -f "$project_python/pyproject.toml" ] || fail "--bps: $project_python/pyproject.toml not found"
  bps_complete && return 0
  local t0 log="$venv/quanta-pip-bps.log" tmp
  t0=$(date +%s.%N)
  rm -f "$bps_stamp"
  say "installing $bps_requirement and quanta_lsst (log: $log)"
  "$venv/bin/python" -m pip install --no-compile --disable-pip-version-check \
      -c "$venv/quanta-constraints.txt" "$bps_requirement" >"$log" 2>&1 ||
    { tail -n 15 "$log" >&2; fail "pip install $bps_requirement failed (full log: $log)"; }
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/quanta-lsst-py.XXXXXX")
  cp -R "$project_python/." "$tmp/"
  rm -rf "$tmp/build" "$tmp"/*.egg-info
  if ! "$venv/bin/python" -m pip install --no-compile --disable-pip-version-check --force-reinstall --no-deps \
      "$tmp" >>"$log" 2>&1; then
    rm -rf "$tmp"
    tail -n 15 "$log" >&2
    fail "pip install $project_python failed (full log: $log)"
  fi
  rm -rf "$tmp"
  env -u PYTHONDONTWRITEBYTECODE "$venv/bin/python" -c '
import lsst.ctrl.bps, lsst.ctrl.bps.cli.bps, lsst.ctrl.bps.drivers
import quanta_lsst.bps
assert issubclass(quanta_lsst.bps.QuantaService, lsst.ctrl.bps.BaseWmsService)
' >>"$log" 2>&1 || { tail -n 5 "$log" >&2; fail "lsst-ctrl-bps or quanta_lsst does not import (log: $log)"; }
  [ -x "$venv/bin/bps" ] || fail "bps missing from $venv/bin"
  bps_stamp_text > "$bps_stamp"
  say "bps and quanta_lsst ready in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
}
# Ends the script: the --bps extras if asked for, then the venv path on stdout.
finish() {
  [ $bps -eq 0 ] || install_bps
  echo "$venv"
  exit 0
}

# Warm path: nothing to do, no Python started.
if complete && { [ $bps -eq 0 ] || bps_complete; }; then
  echo "$venv"
  exit 0
fi

start=$(date +%s.%N)
mkdir -p "$(dirname "$venv")" || fail "cannot create $(dirname "$venv")"

# One installer at a time per venv (two test runs starting together).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$venv.lock" || fail "cannot write lock file $venv.lock"
  flock 9
  if complete; then finish; fi
fi

command -v "$python" >/dev/null 2>&1 || fail "'$python' not found; install Python 3.11+ or set QUANTA_PYTHON"
pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])') ||
  fail "'$python' does not run"
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' ||
  fail "$python is Python $pyver; the LSST middleware needs 3.11 or newer (set QUANTA_PYTHON)"

# Debian's python3 has venv but not ensurepip until python3-venv is installed.
if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing python3-venv (apt-get)"
    apt-get update -qq >/dev/null || fail "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv "python$pyver-venv" >/dev/null ||
      fail "apt-get install python3-venv failed"
  else
    fail "$python cannot make venvs (no ensurepip); run as root: apt-get install python3-venv"
  fi
fi

# Reuse an existing venv whose interpreter runs; rebuild one that is broken. Only a directory
# that is a venv (has pyvenv.cfg) or is empty is ever removed.
if [ -e "$venv" ] && ! "$venv/bin/python" -c '' >/dev/null 2>&1; then
  if [ -f "$venv/pyvenv.cfg" ] || [ -z "$(ls -A "$venv" 2>/dev/null)" ]; then
    say "removing broken venv $venv"
    rm -rf "$venv"
  else
    fail "$venv exists and is not a virtual environment; choose another path"
  fi
fi
if [ ! -x "$venv/bin/python" ]; then
  say "creating venv $venv (Python $pyver)"
  "$python" -m venv "$venv" || fail "python -m venv $venv failed"
fi

rm -f "$stamp"
printf '%s\n' "$constraints" > "$venv/quanta-constraints.txt"
log="$venv/quanta-pip.log"
say "installing ${requirements[*]} (log: $log)"
# --no-compile: byte-compiling all ~400 MB of wheels takes ~13 s; the import below compiles
# only what is used.
if ! "$venv/bin/python" -m pip install --no-compile --disable-pip-version-check \
      -c "$venv/quanta-constraints.txt" "${requirements[@]}" >"$log" 2>&1; then
  tail -n 15 "$log" >&2
  fail "pip install failed (full log: $log; PyPI must be reachable)"
fi
# A venv whose CLI scripts were deleted still counts as satisfied for pip: put them back.
if [ ! -x "$venv/bin/pipetask" ] || [ ! -x "$venv/bin/butler" ]; then
  "$venv/bin/python" -m pip install --no-compile --disable-pip-version-check --force-reinstall --no-deps \
    "${requirements[0]}" "${requirements[2]}" >>"$log" 2>&1 || fail "reinstalling butler/pipetask failed (log: $log)"
fi

# The stamp is written only once the middleware imports and the CLIs exist. This import also
# writes the bytecode of what butler/pipetask load (even under PYTHONDONTWRITEBYTECODE), which
# halves their start-up (~5 s -> ~2.5 s) at a fraction of the cost of compiling everything.
env -u PYTHONDONTWRITEBYTECODE "$venv/bin/python" -c '
import zstandard
import lsst.daf.butler, lsst.daf.butler.cli.butler, lsst.daf.butler.registry.databases.sqlite
import lsst.pipe.base.quantum_graph, lsst.pipe.base.tests.mocks
import lsst.pipe.base.all_dimensions_quantum_graph_builder
import lsst.ctrl.mpexec, lsst.ctrl.mpexec.cli.pipetask, lsst.ctrl.mpexec.cli.script
' >>"$log" 2>&1 || { tail -n 5 "$log" >&2; fail "installed packages do not import (log: $log)"; }
[ -x "$venv/bin/pipetask" ] && [ -x "$venv/bin/butler" ] || fail "pipetask/butler missing from $venv/bin"
printf '%s\n' "$stamp_text" > "$stamp"

end=$(date +%s.%N)
say "ready in $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s"
finish
