#!/usr/bin/env bash
# Brings up the whole local stack in the background: PostgreSQL (a cluster
# in .run/pg), the Temporal dev server with its Web UI, wechatpay-sim, the
# worker and the api. State and logs live in .run/; `make stop` stops it all.
# The api runs as in production: its order API needs the bearer token in
# .run/api-token (made once, mode 0600).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUN=$ROOT/.run
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_PORT=${RUN_PG_PORT:-5432}
TEMPORAL_PORT=${RUN_TEMPORAL_PORT:-7233}
UI_PORT=${RUN_TEMPORAL_UI_PORT:-8233}
API_PORT=${RUN_API_PORT:-8080}
WORKER_PORT=${RUN_WORKER_PORT:-8081}
SIM_PORT=${RUN_SIM_PORT:-8090}
mkdir -p "$RUN/logs"

as_pg() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
running() { [[ -f "$RUN/$1.pid" ]] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }
start() { # name command...: start a process in its own session, log to .run/logs
  local name=$1; shift
  if running "$name"; then echo "  $name already running"; return; fi
  setsid "$@" >>"$RUN/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$RUN/$name.pid"
}
wait_http() { # url what
  for _ in $(seq 1 120); do
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
    sleep 0.5
  done
  echo "timed out waiting for $2 ($1); see $RUN/logs/" >&2; exit 1
}

# Throwaway keys for the local stack, made once: the merchant's API key
# and certificate, the APIv3 key, WeChat Pay public keys and a platform
# certificate (the sim holds their private halves).
"$ROOT/bin/wechatpay-sim" keygen -dir "$RUN/keys" >/dev/null
set -a
source "$RUN/keys/keys.env"
WECHATPAY_APPID=wx8888888888888888
WECHATPAY_MCHID=1900000109
set +a

# The order API's bearer token (API_TOKENS), made once: 64 hex characters.
if [[ ! -s "$RUN/api-token" ]]; then
  (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$RUN/api-token")
fi
chmod 600 "$RUN/api-token"

echo "postgres on 127.0.0.1:$PG_PORT"
if [[ ! -f "$RUN/pg/PG_VERSION" ]]; then
  mkdir -p "$RUN/pg"
  [[ $(id -u) -eq 0 ]] && chown postgres "$RUN/pg"
  as_pg "$PG_BIN/initdb" -D "$RUN/pg" -U postgres --auth=trust -E UTF8 >"$RUN/logs/initdb.log"
fi
if ! as_pg "$PG_BIN/pg_ctl" -D "$RUN/pg" status >/dev/null 2>&1; then
  [[ $(id -u) -eq 0 ]] && chown postgres "$RUN/logs" && touch "$RUN/logs/postgres.log" && chown postgres "$RUN/logs/postgres.log"
  as_pg "$PG_BIN/pg_ctl" -D "$RUN/pg" -l "$RUN/logs/postgres.log" -w \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $RUN/pg" start >/dev/null
fi
if ! psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "select 1 from pg_database where datname='payments'" | grep -q 1; then
  psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "create database payments"
fi

echo "temporal dev server on 127.0.0.1:$TEMPORAL_PORT, UI on $UI_PORT"
start temporal "$ROOT/bin/temporal" server start-dev --ip 127.0.0.1 --port "$TEMPORAL_PORT" \
  --ui-port "$UI_PORT" --db-filename "$RUN/temporal.db" --sqlite-pragma journal_mode=wal --log-level warn
wait_http "http://127.0.0.1:$UI_PORT/" "Temporal UI"

export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/payments?sslmode=disable"
export TEMPORAL_ADDRESS="127.0.0.1:$TEMPORAL_PORT"
export WECHATPAY_BASE_URL="http://127.0.0.1:$SIM_PORT"
export WECHATPAY_API_VERSION=${WECHATPAY_API_VERSION:-v3}
export WECHATPAY_NOTIFY_URL="http://127.0.0.1:$API_PORT/wechatpay/v3/notify"
# Short for the demo: with no notification after 5 s the workflow asks
# WeChat itself (production default: 1m).
export ORDER_QUERY_AFTER=${ORDER_QUERY_AFTER:-5s}
export API_ADDR="127.0.0.1:$API_PORT" WORKER_ADDR="127.0.0.1:$WORKER_PORT"
# Refunds are asked with API v3, so WeChat notifies them in v3 format; a
# refund in the sandbox stays PROCESSING for a few seconds.
export WECHATPAY_REFUND_NOTIFY_URL="http://127.0.0.1:$API_PORT/wechatpay/v3/notify"
export REFUND_QUERY_AFTER=${REFUND_QUERY_AFTER:-5s} SIM_REFUND_PROCESSING=${SIM_REFUND_PROCESSING:-3s}
export SIM_ADDR="127.0.0.1:$SIM_PORT" SIM_NOTIFY_VERSION=v3
export SIM_NOTIFY_URL="http://127.0.0.1:$API_PORT/wechatpay/notify"
export SIM_NOTIFY_URL_V3="http://127.0.0.1:$API_PORT/wechatpay/v3/notify"

echo "wechatpay-sim, worker, api"
start wechatpay-sim "$ROOT/bin/wechatpay-sim"
start worker "$ROOT/bin/worker"
# API_TOKENS only in the api's environment (never on a command line).
(API_TOKENS=$(<"$RUN/api-token") && export API_TOKENS && start api "$ROOT/bin/api")
wait_http "http://127.0.0.1:$SIM_PORT/healthz" "wechatpay-sim"
wait_http "http://127.0.0.1:$WORKER_PORT/readyz" "worker"
wait_http "http://127.0.0.1:$API_PORT/readyz" "api"

cat <<MSG

The local stack is up (logs in .run/logs, stop it with: make stop)
  api            http://127.0.0.1:$API_PORT   (POST /orders, GET /orders/{out_trade_no}, POST /wechatpay/notify)
  API token      .run/api-token: the order API needs "Authorization: Bearer <it>" (the notify endpoints do not)
  Temporal UI    http://127.0.0.1:$UI_PORT/namespaces/default/workflows
  wechatpay-sim  http://127.0.0.1:$SIM_PORT   (POST /sim/pay: "the user paid")
  PostgreSQL     postgres://postgres@127.0.0.1:$PG_PORT/payments

Demo: a notified payment, one whose notifications are all lost, and two refunds:
  make demo
or by hand:
  curl -s -XPOST http://127.0.0.1:$API_PORT/orders -H "Authorization: Bearer \$(cat .run/api-token)" -d '{"out_trade_no":"DEMO0001","amount_fen":1234,"description":"demo","trade_type":"NATIVE"}'
  curl -s -XPOST http://127.0.0.1:$SIM_PORT/sim/pay -d '{"out_trade_no":"DEMO0001"}'
  curl -s http://127.0.0.1:$API_PORT/orders/DEMO0001 -H "Authorization: Bearer \$(cat .run/api-token)"
then refund part of it, and see the refund once WeChat confirms it:
  curl -s -XPOST http://127.0.0.1:$API_PORT/orders/DEMO0001/refunds -H "Authorization: Bearer \$(cat .run/api-token)" -d '{"out_refund_no":"R0001","amount_fen":234,"reason":"one item missing"}'
  curl -s http://127.0.0.1:$API_PORT/orders/DEMO0001/refunds/R0001 -H "Authorization: Bearer \$(cat .run/api-token)"
MSG
