#!/usr/bin/env bash
# What sprint 5's rolling restart (pgaudit into shared_preload_libraries) costs the application.
#
#   npm run build && bash bench/rolling-restart/run.sh [SUBNET]        (default 127.0.73; about 10 minutes)
#
# Method: a lab brought up to sprint 4 (`dpgc sprint 0` … `dpgc sprint 4`), then the upgrade bench's
# writer (bench/upgrade/writer.mjs: one client through PgBouncer → HAProxy → leader, an insert every
# ~20 ms, reconnecting on error) runs while `dpgc sprint 5` issues certificates, turns TLS on (a
# reload), preloads pgaudit and restarts the members one at a time (replicas, one switchover, the
# old leader). The writer reports acknowledged writes, lost ones (read back afterwards) and the
# longest gap between two acknowledgements.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
subnet=${1:-127.0.73}

work=$(mktemp -d /tmp/dpgc-rolling-XXXXXX)
chmod 755 "$work"
cfg="$work/dpgc.yaml"
dpgc() { CI=true NO_COLOR=1 node "$root/bin/dpgc.js" -c "$cfg" "$@"; }
cleanup() { mkdir -p /tmp/dpgc-rolling-logs && cp "$work"/*.log "$work"/*.json /tmp/dpgc-rolling-logs/ 2>/dev/null; dpgc --yes lab down >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

dpgc lab init --subnet "$subnet" --dir "$work/lab" >/dev/null
start=$(date +%s)
for s in 0 1 2 3 4; do dpgc --yes sprint "$s" > "$work/sprint$s.log" 2>&1; done
echo "lab up to sprint 4 in $(( $(date +%s) - start )) s" >&2

rm -f "$work/stop"
node "$root/bench/upgrade/writer.mjs" "$cfg" "$work/stop" > "$work/writer.json" &
writer=$!
sleep 3
start=$(date +%s.%N)
code=0
dpgc --yes sprint 5 > "$work/sprint5.log" 2>&1 || code=$?
took=$(echo "$(date +%s.%N) - $start" | bc)
sleep 3
touch "$work/stop"
wait "$writer"
step=$(grep -o 'Restart members that do not load pgaudit.*' "$work/sprint5.log" | tail -1 || true)

cat <<REPORT
## Sprint 5's rolling restart under a writer ($(date -u +%Y-%m-%dT%H:%MZ))

Machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, load average before the run $(cut -d' ' -f1-3 /proc/loadavg); lab on $subnet.
Method: bench/rolling-restart/run.sh (header). \`dpgc sprint 5\` exit $code in ${took%.*} s.

- the restart step: ${step:-see sprint5.log}
- writer through PgBouncer: $(cat "$work/writer.json")
REPORT
