#!/usr/bin/env bash
# Makes sure the PostgreSQL 15 server binaries are installed (Debian
# package postgresql-15). They are used from their own directory; no
# system cluster is started.
set -euo pipefail
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
if [[ -x "$PG_BIN/initdb" && -x "$PG_BIN/pg_ctl" ]]; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "PostgreSQL 15 server binaries not found in $PG_BIN: install the Debian package postgresql-15 (as root: apt-get install postgresql-15)" >&2
  exit 1
fi
echo "installing postgresql-15..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq postgresql-15 >/dev/null
