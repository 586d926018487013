#!/usr/bin/env bash
# Builds a PostgreSQL extension from a Debian *source* package of a newer
# suite and installs it for one PostgreSQL major. Used where the host's suite
# has no binary package (bookworm has no pgvector: see docs/lab-facts.md). The extra
# deb-src entry is removed afterwards, so the host's package set is unchanged.
# One implementation, run by scripts/install-lab-deps.sh and by dpgc itself.
#
# usage: build-extension-from-debian-source.sh <pg_config> <source-package> [suite]
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
PG_CONFIG="$1"
SOURCE="$2"
SUITE="${3:-trixie}"

src=/etc/apt/sources.list.d/dpgc-${SUITE}-src.sources
work=$(mktemp -d)
cleanup() { rm -rf "$work"; if [ -f "$src" ]; then rm -f "$src"; apt-get update -qq || true; fi; }
trap cleanup EXIT
cat >"$src" <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: ${SUITE}
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
apt-get -o DPkg::Lock::Timeout=300 update -qq
cd "$work"
apt-get source -qq "$SOURCE" >/dev/null 2>&1
cd "$SOURCE"-*/
make -s PG_CONFIG="$PG_CONFIG" >/dev/null
make -s PG_CONFIG="$PG_CONFIG" install >/dev/null
