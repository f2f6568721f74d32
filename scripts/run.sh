#!/usr/bin/env bash
# The main job: build the stress tool in release mode and run it for about
# 30 seconds with the defaults (a temporary home, removed afterwards).  Its
# exit status is 0 only if every invariant held.  Extra arguments go to the
# tool, e.g. scripts/run.sh --policy unprotected
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
swift build -c release --product layered-stress
exec "$(swift build -c release --show-bin-path)/layered-stress" --duration 30 "$@"
