#!/usr/bin/env bash
# Installs, from Debian's archive only, every system package the lab and the
# test suite run for real: PostgreSQL 15 and pgvector, etcd, Patroni, HAProxy,
# PgBouncer, pgBackRest, Prometheus, Alertmanager and exporters, sshd for the SSH
# transport tests, and Chromium for the HTML report's browser test.
# Idempotent: a second run installs nothing.
#
# Why a build for pgvector: bookworm has no pgvector package, so it is built
# from Debian trixie's *source* package (see docs/lab-facts.md); the extra apt source is
# removed afterwards so the host's package set stays bookworm.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

PG_MAJOR="${PG_MAJOR:-15}"
HERE="$(cd "$(dirname "$0")" && pwd)"
PKGS=(
  "postgresql-${PG_MAJOR}" "postgresql-server-dev-${PG_MAJOR}" "postgresql-${PG_MAJOR}-pgaudit"
  patroni python3-etcd etcd-server etcd-client haproxy pgbouncer pgbackrest
  prometheus prometheus-alertmanager prometheus-postgres-exporter prometheus-node-exporter python3-psycopg2
  # The security alerts read PostgreSQL's log through mtail (sprint 5).
  mtail
  openssh-server build-essential dpkg-dev nftables iproute2 procps
  socat
  # The HTML report (dpgc report) is tested in a real browser, driven by playwright-core.
  chromium fonts-dejavu-core
)

# Debian's postgresql-common would otherwise create and start a 15/main
# cluster on 5432 on hosts where service starts are allowed.
mkdir -p /etc/postgresql-common
if ! grep -qs '^create_main_cluster *= *false' /etc/postgresql-common/createcluster.conf; then
  echo 'create_main_cluster = false' >> /etc/postgresql-common/createcluster.conf
fi

# Patroni with the leader-key fix (patroni/patroni#2689, 3.0.3+): on Debian 12
# it comes from Debian 13, from the mirror this host already uses, pinned so
# that only patroni and python3-ydiff do. The same templates dpgc fills for a
# bookworm host (templates/apt/, src/components/apt-sources.ts).
. /etc/os-release
if [ "${VERSION_CODENAME:-}" = bookworm ]; then
  mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk -v RS= '
    /Types:[^\n]*deb/ && /Suites:[^\n]*[ \t]bookworm([ \t\n]|$)/ {
      if (match($0, /URIs:[ \t]*[^ \t\n]*\/debian\/?/)) { u = substr($0, RSTART, RLENGTH); sub(/URIs:[ \t]*/, "", u); sub(/\/$/, "", u); print u; exit }
    }')
  [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $3 == "bookworm" && $2 ~ /\/debian\/?$/ { sub(/\/$/, "", $2); print $2; exit }' /etc/apt/sources.list 2>/dev/null)
  [ -n "$mirror" ] || { echo "install-lab-deps: no Debian mirror for bookworm in the apt sources" >&2; exit 1; }
  changed_src=0
  tmp=$(mktemp)
  sed "s|@MIRROR@|$mirror|" "$HERE/../templates/apt/trixie.sources" >"$tmp"
  for f in "$tmp:sources.list.d/dpgc-trixie.sources" "$HERE/../templates/apt/dpgc-patroni.pref:preferences.d/dpgc-patroni.pref"; do
    src="${f%%:*}" dst="/etc/apt/${f#*:}"
    cmp -s "$src" "$dst" || { install -m 0644 "$src" "$dst"; changed_src=1; }
  done
  rm -f "$tmp"
  if ((changed_src)); then apt-get update -qq; fi
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-lab-deps: installing ${missing[*]}" >&2
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "install-lab-deps: all packages present" >&2
fi

# A host that had bookworm's Patroni before the pin: upgrade it to the pinned one.
if ! dpkg --compare-versions "$(dpkg-query -W -f='${Version}' patroni)" ge 3.0.3; then
  echo "install-lab-deps: upgrading Patroni (leader-key fix)" >&2
  apt-get install -y -qq --no-install-recommends patroni python3-ydiff >/dev/null
fi

PG_CONFIG="/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config"
if [ ! -f "$("$PG_CONFIG" --sharedir)/extension/vector.control" ]; then
  echo "install-lab-deps: building pgvector from Debian trixie source" >&2
  bash "$(dirname "$0")/../templates/scripts/build-extension-from-debian-source.sh" "$PG_CONFIG" pgvector trixie
else
  echo "install-lab-deps: pgvector present" >&2
fi
