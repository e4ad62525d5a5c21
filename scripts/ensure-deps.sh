#!/usr/bin/env bash
# Installs what the tests and `make run` need from Debian, if missing:
# the PostgreSQL 15 server binaries (used from their own directory; no
# system cluster is started), and on request Chromium for the Temporal UI
# browser test (--with-browser) and nginx for the proxy configuration's
# tests (--with-nginx; its service is never started).
set -euo pipefail
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
need=()
[[ -x "$PG_BIN/initdb" && -x "$PG_BIN/pg_ctl" ]] || need+=(postgresql-15)
for opt in "$@"; do
  case $opt in
    --with-browser) command -v chromium >/dev/null || need+=(chromium) ;;
    --with-nginx) [[ -x /usr/sbin/nginx ]] || command -v nginx >/dev/null || need+=(nginx) ;;
    *) echo "ensure-deps: unknown option $opt" >&2; exit 2 ;;
  esac
done
[[ ${#need[@]} -eq 0 ]] && exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "missing Debian packages: ${need[*]} (as root: apt-get install ${need[*]})" >&2
  exit 1
fi
echo "installing ${need[*]}..." >&2
export DEBIAN_FRONTEND=noninteractive
# Packages with a service (nginx) must not start it: no daemon of a test
# dependency listens on this machine.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null
