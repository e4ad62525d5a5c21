#!/usr/bin/env bash
# Installs what the tests and `make run` need from Debian, if missing:
# the PostgreSQL 15 server binaries (used from their own directory; no
# system cluster is started) and Chromium for the Temporal UI browser test.
set -euo pipefail
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
need=()
[[ -x "$PG_BIN/initdb" && -x "$PG_BIN/pg_ctl" ]] || need+=(postgresql-15)
if [[ "${1:-}" == "--with-browser" ]] && ! command -v chromium >/dev/null; then
  need+=(chromium)
fi
[[ ${#need[@]} -eq 0 ]] && exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "missing Debian packages: ${need[*]} (as root: apt-get install ${need[*]})" >&2
  exit 1
fi
echo "installing ${need[*]}..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null
