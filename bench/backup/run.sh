#!/usr/bin/env bash
# Backups and restores on a lab with a generated database (issue 13, performance):
# full backup throughput against a plain tar of the same data directory on the same disk,
# an incremental backup after ~5% of the pages changed, a scratch PITR restore, an in-place
# PITR restore until sprint 3's criteria pass again, and the RPO observed with the
# configured archive_timeout when the whole cluster is killed.
#
#   npm run build
#   ip netns add irb && ip netns exec irb ip link set lo up
#   /work/bin/labslot ip netns exec irb bash bench/backup/run.sh [--subnet 127.0.131] [--scale 70] [--out bench/backup/results]
#
# Heavy (a 1 GiB database is written, backed up, tarred and restored several times): run it once.
# Only the built CLI is used, as an operator would, plus psql/pgbench against the leader and
# tar/lz4 on the same disk. Every figure goes to <out>/run-<date>.json and a summary to stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
subnet=127.0.131
scale=70
out=$here/results
rpo_seconds=90
while [ $# -gt 0 ]; do
  case $1 in
    --subnet) subnet=$2; shift 2 ;;
    --scale) scale=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --rpo-seconds) rpo_seconds=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
dir=$(mktemp -d /tmp/dpgc-bench-backup-XXXXXX)
chmod 755 "$dir"
cfg=$dir/dpgc.yaml
json=$out/run-$(date -u +%Y%m%dT%H%M%SZ).json
export CI=true NO_COLOR=1
d() { node "$repo/bin/dpgc.js" -c "$cfg" "$@"; }
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
record() { # record KEY JSON-VALUE
  local tmp; tmp=$(mktemp)
  jq --arg k "$1" --argjson v "$2" '.[$k] = $v' "$json" > "$tmp" && mv "$tmp" "$json"
}
say() { echo "[$(date -u +%T)] $*" >&2; }
cleanup() {
  say "lab down"
  d --yes lab down >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

echo '{}' > "$json"
record method "$(jq -n --arg m "$(nproc) × $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem/{print $2}') GiB, Linux $(uname -r)" \
  --arg pgbr "$(pgbackrest version)" --arg disk "$(df -h /tmp | awk 'NR==2{print $1" "$2}')" --arg load "$(load)" --arg scale "$scale" \
  '{machine:$m, pgbackrest:$pgbr, disk:$disk, loadStart:$load, pgbenchScale:($scale|tonumber), date:(now|todate)}')"

say "lab init on $subnet.x"
d lab init --subnet "$subnet" --dir "$dir/lab" >/dev/null
t0=$(now)
say "dpgc up (sprints 0-4)"
# On a shared machine sprint 3's lag criterion can miss under the neighbours' load: `up` is safe to repeat.
tries=0
until d --yes up > "$dir/up.log" 2>&1; do
  tries=$((tries + 1))
  grep -E '^FAIL' "$dir/up.log" >&2 || true
  [ $tries -lt 3 ] || { tail -40 "$dir/up.log" >&2; exit 1; }
  say "dpgc up again (attempt $((tries + 1)))"
done
record up "$(jq -n --arg s "$(secs "$t0" "$(now)")" --arg t "$((tries + 1))" '{seconds:($s|tonumber), attempts:($t|tonumber)}')"
record config "$(node -e "import('$repo/dist/src/config/load.js').then(async m=>{const i=await m.loadInventory('$cfg');console.log(JSON.stringify({archive_timeout:i.backup.archive_timeout,schedule:i.backup.schedule,timings:i.timings}))})")"

status=$(d --json status || true)
leader=$(jq -r '.leader' <<<"$status")
laddr=$(jq -r --arg l "$leader" '.members[] | select(.name==$l) | .address' <<<"$status")
replica=$(jq -r --arg l "$leader" '[.members[] | select(.name!=$l)][0].name' <<<"$status")
pgdata_of() { node -e "import('$repo/dist/src/config/load.js').then(async m=>{const p=await import('$repo/dist/src/config/paths.js');const i=await m.loadInventory('$cfg');console.log(p.hostPaths(i,i.hosts.find(h=>h.name==='$1')).pgData)})"; }
port=$(node -e "import('$repo/dist/src/config/load.js').then(async m=>{const i=await m.loadInventory('$cfg');console.log(i.ports.postgres)})")
# The superuser's password, from the lab's 0600 secrets file, into a 0600 pgpass: never in argv.
pw=$(node -e "import('$repo/dist/src/config/secrets.js').then(async m=>process.stdout.write(await new m.Secrets(m.secretsPathFor('$cfg')).get('postgres_superuser')))")
printf '*:*:*:postgres:%s\n' "$pw" > "$dir/pgpass"; chmod 600 "$dir/pgpass"
export PGPASSFILE=$dir/pgpass PGHOST=$laddr PGPORT=$port PGUSER=postgres
q() { psql -X -At -d "${DB:-postgres}" -c "$1"; }

say "generating the database (pgbench scale $scale) on $leader"
q "CREATE DATABASE benchdata" >/dev/null
t0=$(now)
pgbench -i -q -s "$scale" benchdata 2> "$dir/pgbench-init.log"
gen=$(secs "$t0" "$(now)")
dbsize=$(DB=benchdata q "SELECT pg_database_size('benchdata')")
clustersize=$(q "SELECT sum(pg_database_size(datname)) FROM pg_database")
record data "$(jq -n --arg g "$gen" --arg d "$dbsize" --arg c "$clustersize" '{generateSeconds:($g|tonumber), benchdataBytes:($d|tonumber), allDatabasesBytes:($c|tonumber)}')"
say "benchdata: $((dbsize / 1048576)) MiB"
# Let the replicas replay it all (a backup from a standby waits for that anyway; timed apart).
q "CHECKPOINT" >/dev/null

say "full backup"
l=$(load); t0=$(now)
full=$(d --json backup --type full)
fullwall=$(secs "$t0" "$(now)")
record fullBackup "$(jq --arg w "$fullwall" --arg l "$l" '{wallSeconds:($w|tonumber), load:$l, type, seconds, label:.backup.label, sizeBytes:.backup.sizeBytes, repoBytes:.backup.repoBytes, durationS:.backup.durationS}' <<<"$full")"

# The same data directory, on the same disk, by tar: the standby the backup was read from is busy
# only replaying, like the primary's copy would be. Plain, then through lz4 (pgBackRest's compress-type here).
pgdata=$(pgdata_of "$replica")
say "tar of $replica's data directory ($pgdata)"
l=$(load); t0=$(now)
tar -cf "$dir/plain.tar" -C "$pgdata" . 2>/dev/null || true
tarplain=$(secs "$t0" "$(now)"); tarbytes=$(stat -c %s "$dir/plain.tar"); rm -f "$dir/plain.tar"
t0=$(now)
tar -cf - -C "$pgdata" . 2>/dev/null | lz4 -1 -q > "$dir/lz4.tar.lz4" || true
tarlz4=$(secs "$t0" "$(now)"); lz4bytes=$(stat -c %s "$dir/lz4.tar.lz4"); rm -f "$dir/lz4.tar.lz4"
record tar "$(jq -n --arg p "$tarplain" --arg b "$tarbytes" --arg z "$tarlz4" --arg zb "$lz4bytes" --arg l "$l" '{plainSeconds:($p|tonumber), plainBytes:($b|tonumber), lz4Seconds:($z|tonumber), lz4Bytes:($zb|tonumber), load:$l}')"

say "change ~5% of pgbench_accounts' pages, then an incremental backup"
rows=$((scale * 100000))
t0=$(now)
DB=benchdata q "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= $((rows / 20))" >/dev/null
upd=$(secs "$t0" "$(now)")
q "CHECKPOINT" >/dev/null
l=$(load); t0=$(now)
incr=$(d --json backup --type incr)
incrwall=$(secs "$t0" "$(now)")
record incrBackup "$(jq --arg w "$incrwall" --arg u "$upd" --arg l "$l" --arg r "$((rows / 20))" '{wallSeconds:($w|tonumber), updateSeconds:($u|tonumber), rowsUpdated:($r|tonumber), load:$l, type, seconds, label:.backup.label, sizeBytes:.backup.sizeBytes, repoBytes:.backup.repoBytes, durationS:.backup.durationS}' <<<"$incr")"

say "markers, T, more writes"
q "CREATE TABLE IF NOT EXISTS public.bench_marker (seq int PRIMARY KEY, phase text)" >/dev/null
q "INSERT INTO public.bench_marker SELECT g, 'before' FROM generate_series(1, 5) g" >/dev/null
# A minute of traffic before T, so recovery replays real WAL after the backup.
pgbench -n -T 30 -c 4 benchdata > /dev/null 2>&1
sleep 1; T=$(q "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"); sleep 1
q "INSERT INTO public.bench_marker SELECT g, 'after' FROM generate_series(6, 10) g" >/dev/null
pgbench -n -T 10 -c 4 benchdata > /dev/null 2>&1

say "scratch PITR restore to $T"
l=$(load); t0=$(now)
scratch=$(d --json restore --target-time "$T" --scratch)
record scratchRestore "$(jq --arg w "$(secs "$t0" "$(now)")" --arg l "$l" --arg t "$T" '{target:$t, wallSeconds:($w|tonumber), load:$l, restoreSeconds, recoverySeconds, walReplayedBytes}' <<<"$scratch")"

say "in-place PITR restore to $T"
l=$(load); t0=$(now)
rc=0
inplace=$(d --json --yes restore --target-time "$T" --in-place) || rc=$?
ipwall=$(secs "$t0" "$(now)")
[ -n "$inplace" ] || { say "in-place restore failed (exit $rc)"; exit 1; }
# Exit 1: the data is back but a sprint 3 criterion failed (under load, the lag one): measured again until it passes.
again=0
if [ $rc -eq 1 ]; then
  for i in 1 2 3; do
    again=$i
    d verify --sprint 3 > "$dir/verify.log" 2>&1 && break
    grep -E '^FAIL' "$dir/verify.log" >&2 || true
  done
  ipwall=$(secs "$t0" "$(now)")
fi
markers=$(q "SELECT string_agg(phase || ':' || n, ' ') FROM (SELECT phase, count(*) n FROM public.bench_marker GROUP BY phase ORDER BY phase) x")
record inPlaceRestore "$(jq --arg w "$ipwall" --arg l "$l" --arg m "$markers" --arg t "$T" --arg rc "$rc" --arg a "$again" '{target:$t, exit:($rc|tonumber), verifyAgain:($a|tonumber), wallSeconds:($w|tonumber), load:$l, markers:$m, ok, leader, timeline, set, newSet, walReplayedBytes, phases:.seconds, restoreSeconds:.totalSeconds, sprint3Seconds:.sprint3.seconds, sprint3Passed:.sprint3.passed}' <<<"$inplace")"

say "RPO: ${rpo_seconds}s of commits, then SIGKILL of every database host"
rpo=$(node "$here/rpo.mjs" "$cfg" "$rpo_seconds")
record rpo "$rpo"
record loadEnd "$(jq -n --arg l "$(load)" '$l')"

jq . "$json"
say "written: $json"
