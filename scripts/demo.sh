#!/usr/bin/env bash
# One command for a new user: install what is missing, build, run 'quanta demo' here.
# Extra arguments go to 'quanta demo' (e.g. --visits 5 --detectors 8 --corrupt 2).
set -euo pipefail
here=$(pwd)
cd "$(dirname "$0")/.."
scripts/setup.sh
bin=$(swift build --show-bin-path)
cd "$here"
exec "$bin/quanta" demo "$@"
