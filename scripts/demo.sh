#!/usr/bin/env bash
# Two payments and two refunds through the local stack (make run):
#  1. a NATIVE order prepaid at WeChat (wechatpay-sim), paid by the user;
#     WeChat's signed v3 notification makes it PAID;
#  2. the same, but WeChat's notifications are all lost; the order's
#     workflow finds the payment with its own order query;
#  3. a partial refund of the first order (it stays PAID), then a refund of
#     the rest (it becomes REFUNDED), each confirmed by WeChat's refund
#     query.
# The order API needs the bearer token that `make run` put in .run/api-token.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -s .run/api-token ]]; then
  echo "no .run/api-token: start the stack with make run first" >&2; exit 1
fi
AUTH="Authorization: Bearer $(cat .run/api-token)"
API=http://127.0.0.1:${RUN_API_PORT:-8080}
SIM=http://127.0.0.1:${RUN_SIM_PORT:-8090}
UI=http://127.0.0.1:${RUN_TEMPORAL_UI_PORT:-8233}

wait_status() { # path pattern seconds
  local body
  for _ in $(seq 1 $(( $3 * 2 ))); do
    body=$(curl -fsS -H "$AUTH" "$API$1")
    if grep -q "$2" <<<"$body"; then echo "$body"; return 0; fi
    sleep 0.5
  done
  echo "$1 did not show $2 in $3 s:" >&2; echo "$body" >&2; return 1
}

wait_paid() { # out_trade_no seconds
  local body
  for _ in $(seq 1 $(( $2 * 2 ))); do
    body=$(curl -fsS -H "$AUTH" "$API/orders/$1")
    if grep -q '"status":"PAID"' <<<"$body"; then echo "$body"; return 0; fi
    sleep 0.5
  done
  echo "order $1 did not become PAID in $2 s:" >&2; echo "$body" >&2; return 1
}

pay() { # label out_trade_no sim-options
  echo "== $1: order $2 (¥12.34)"
  echo "-- create it and prepay at WeChat (NATIVE: a QR code URL comes back)"
  curl -fsS -XPOST "$API/orders" -H "$AUTH" -d "{\"out_trade_no\":\"$2\",\"amount_fen\":1234,\"description\":\"demo order\",\"trade_type\":\"NATIVE\"}"; echo
  echo "-- the user scans and pays"
  curl -fsS -XPOST "$SIM/sim/pay" -d "{\"out_trade_no\":\"$2\"$3}"; echo
}

N1=DEMO$(date +%Y%m%d%H%M%S)A
pay "notified payment" "$N1" ""
echo "-- WeChat notifies; the workflow confirms with WeChat's order query, checks the amount, marks it paid"
wait_paid "$N1" 30
echo

N2=DEMO$(date +%Y%m%d%H%M%S)B
pay "lost notifications" "$N2" ',"drop":true'
echo "-- no notification comes; after ORDER_QUERY_AFTER the workflow asks WeChat itself"
wait_paid "$N2" 60
echo

echo "== refunds of order $N1"
echo "-- a partial refund (¥2.34): accepted here at once, asked of WeChat under R1-$N1"
curl -fsS -XPOST "$API/orders/$N1/refunds" -H "$AUTH" -d "{\"out_refund_no\":\"R1-$N1\",\"amount_fen\":234,\"reason\":\"one item missing\"}"; echo
echo "-- SUCCESS once WeChat's refund query says so; the order stays PAID"
wait_status "/orders/$N1/refunds/R1-$N1" '"status":"SUCCESS"' 60
echo "-- a refund of the rest (¥10.00): the order becomes REFUNDED"
curl -fsS -XPOST "$API/orders/$N1/refunds" -H "$AUTH" -d "{\"out_refund_no\":\"R2-$N1\",\"amount_fen\":1000,\"reason\":\"order cancelled\"}"; echo
wait_status "/orders/$N1" '"status":"REFUNDED"' 60
echo

echo "Both paid, the first refunded in two steps. In the Temporal UI:"
echo "  $UI/namespaces/default/workflows?query=OutTradeNo%3D%22$N1%22"
echo "  $UI/namespaces/default/workflows?query=OutTradeNo%3D%22$N2%22"
