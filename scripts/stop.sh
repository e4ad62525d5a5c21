#!/usr/bin/env bash
# Stops what scripts/run.sh started: SIGTERM first (clean drain), then the
# PostgreSQL cluster.
set -uo pipefail
cd "$(dirname "$0")/.."
RUN=$PWD/.run
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
for name in api worker wechatpay-sim temporal; do
  f=$RUN/$name.pid
  [[ -f $f ]] || continue
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$pid" 2>/dev/null || true
    echo "stopped $name"
  fi
  rm -f "$f"
done
if [[ -f $RUN/pg/PG_VERSION ]]; then
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$RUN/pg" stop -m fast >/dev/null 2>&1 && echo "stopped postgres"
  else "$PG_BIN/pg_ctl" -D "$RUN/pg" stop -m fast >/dev/null 2>&1 && echo "stopped postgres"; fi
fi
exit 0
