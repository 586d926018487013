#!/usr/bin/env bash
# Runs bench/pool-capacity.mjs with an open-file limit that fits thousands of
# agents (each is one socket in the load generator). Needs root (the lab runs
# daemons as their users) and a built dpgc (`npm run build`).
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)"
exec node bench/pool-capacity.mjs "$@"
