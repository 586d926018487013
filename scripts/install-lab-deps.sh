#!/usr/bin/env bash
# Installs, from Debian's archive only, every system package the lab and the
# test suite run for real: PostgreSQL 15 and pgvector, etcd, Patroni, HAProxy,
# PgBouncer, pgBackRest, Prometheus and exporters, and sshd for the SSH
# transport tests. Idempotent: a second run installs nothing.
#
# Why a build for pgvector: bookworm has no pgvector package, so it is built
# from Debian trixie's *source* package (see LAB.md); the extra apt source is
# removed afterwards so the host's package set stays bookworm.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

PG_MAJOR="${PG_MAJOR:-15}"
PKGS=(
  "postgresql-${PG_MAJOR}" "postgresql-server-dev-${PG_MAJOR}" "postgresql-${PG_MAJOR}-pgaudit"
  patroni etcd-server etcd-client haproxy pgbouncer pgbackrest
  prometheus prometheus-postgres-exporter prometheus-node-exporter python3-psycopg2
  openssh-server build-essential dpkg-dev nftables iproute2 procps
  socat
)

# Debian's postgresql-common would otherwise create and start a 15/main
# cluster on 5432 on hosts where service starts are allowed.
mkdir -p /etc/postgresql-common
if ! grep -qs '^create_main_cluster *= *false' /etc/postgresql-common/createcluster.conf; then
  echo 'create_main_cluster = false' >> /etc/postgresql-common/createcluster.conf
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

PG_CONFIG="/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config"
if [ ! -f "$("$PG_CONFIG" --sharedir)/extension/vector.control" ]; then
  echo "install-lab-deps: building pgvector from Debian trixie source" >&2
  bash "$(dirname "$0")/../templates/scripts/build-extension-from-debian-source.sh" "$PG_CONFIG" pgvector trixie
else
  echo "install-lab-deps: pgvector present" >&2
fi
