#!/usr/bin/env bash
# A rolling upgrade from Debian 12's Patroni 3.0.2 (no leader-key fix, patroni/patroni#2689) to the
# Patroni dpgc installs, under a writer through PgBouncer: what `dpgc sprint 3` costs the application.
#
#   npm run build && bash bench/upgrade/run.sh [SUBNET]        (default 127.0.72; about 6 minutes)
#
# Method: the script re-runs itself in a private mount namespace, where /usr/bin/patroni is
# replaced (bind mount, seen by this script's processes only) by a switch that runs Patroni 3.0.2,
# unpacked from Debian 12's own .deb, or the installed one, by the word in a file. A lab is brought
# up with 3.0.2 (`dpgc up`: sprint 3 ends with s3.patroni.leader-key failing, as it must), the
# switch is flipped, a writer starts through PgBouncer, and `dpgc sprint 3` runs its rolling
# restart (replicas, one switchover, the old leader). The writer reports acknowledged writes, lost
# ones (read back afterwards), and the longest gap between two acknowledgements.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
subnet=${1:-127.0.72}
if [ -z "${DPGC_UPGRADE_NS:-}" ]; then
  exec unshare -m --propagation private env DPGC_UPGRADE_NS=1 bash "$0" "$@"
fi

work=$(mktemp -d /tmp/dpgc-upgrade-XXXXXX)
chmod 755 "$work"
cfg="$work/dpgc.yaml"
dpgc() { CI=true NO_COLOR=1 node "$root/bin/dpgc.js" -c "$cfg" "$@"; }
# The logs outlive the lab (in /tmp/dpgc-upgrade-logs) for a run that went wrong.
cleanup() { mkdir -p /tmp/dpgc-upgrade-logs && cp "$work"/*.log "$work"/*.json /tmp/dpgc-upgrade-logs/ 2>/dev/null; dpgc --yes lab down >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

( cd "$work" && apt-get download -q patroni=3.0.2-1 >/dev/null && dpkg -x patroni_3.0.2-1_all.deb old )
new=$(readlink -f /usr/bin/patroni)
cp "$new" "$work/patroni-new"
echo old > "$work/version"
cat > "$work/patroni" <<SWITCH
#!/bin/sh
# The validator is always the new Patroni's: 3.0.2 has no --ignore-listen-port.
case " \$* " in *" --validate-config "*) exec python3 $work/patroni-new "\$@";; esac
if [ "\$(cat $work/version)" = old ]; then
  PYTHONPATH=$work/old/usr/lib/python3/dist-packages exec python3 $work/old/usr/bin/patroni "\$@"
fi
exec python3 $work/patroni-new "\$@"
SWITCH
chmod 755 "$work/patroni"
mount --bind "$work/patroni" /usr/bin/patroni

dpgc lab init --subnet "$subnet" --dir "$work/lab" >/dev/null
printf 'timings:\n  profile: balanced\n' >> "$cfg"
start=$(date +%s)
dpgc --yes up > "$work/up.log" 2>&1 || true
echo "lab up on Patroni 3.0.2 in $(( $(date +%s) - start )) s" >&2
# verify exits 1 here (the leader-key criterion fails on 3.0.2, as it must): keep its document, not its exit code.
leaderKey() { { dpgc --json verify --sprint 3 2>/dev/null || true; } | node -e 'const d=JSON.parse(require("fs").readFileSync(0));const r=(d.results??[]).find(x=>x.id==="s3.patroni.leader-key");console.log(r?`${r.verdict} ${r.value??""}`:"not measured")'; }
before=$(leaderKey)
echo "before: s3.patroni.leader-key $before" >&2

echo new > "$work/version"
rm -f "$work/stop"
node "$here/writer.mjs" "$cfg" "$work/stop" > "$work/writer.json" &
writer=$!
sleep 3
start=$(date +%s.%N)
code=0
dpgc --yes sprint 3 > "$work/sprint3.log" 2>&1 || code=$?
took=$(echo "$(date +%s.%N) - $start" | bc)
sleep 3
touch "$work/stop"
wait "$writer"
after=$(leaderKey)
step=$(grep -o 'Restart members still running.*' "$work/sprint3.log" | tail -1 || true)

cat <<REPORT
## Rolling upgrade Patroni 3.0.2 → ${after#pass }  ($(date -u +%Y-%m-%dT%H:%MZ))

Machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, load average before the run $(cut -d' ' -f1-3 /proc/loadavg); lab on $subnet, timings profile balanced.
Method: bench/upgrade/run.sh (header). \`dpgc sprint 3\` exit $code in ${took%.*} s.

- s3.patroni.leader-key before: $before; after: $after
- the step: $step
- writer through PgBouncer: $(cat "$work/writer.json")
REPORT
