#!/usr/bin/env bash
# Creates an order, has wechatpay-sim "pay" it (WeChat then sends its signed
# notification to the api), and waits until the order is PAID.
set -euo pipefail
API=http://127.0.0.1:${RUN_API_PORT:-8080}
SIM=http://127.0.0.1:${RUN_SIM_PORT:-8090}
UI=http://127.0.0.1:${RUN_TEMPORAL_UI_PORT:-8233}
NO=DEMO$(date +%Y%m%d%H%M%S)$RANDOM
echo "1. create order $NO (¥12.34)"
curl -fsS -XPOST "$API/orders" -d "{\"out_trade_no\":\"$NO\",\"amount_fen\":1234,\"description\":\"demo order\"}"; echo
echo "2. the user pays: wechatpay-sim marks the trade paid and notifies the api"
curl -fsS -XPOST "$SIM/sim/pay" -d "{\"out_trade_no\":\"$NO\",\"amount_fen\":1234}"; echo
echo "3. waiting for the workflow: query confirmation, amount verification, mark paid, order log"
for _ in $(seq 1 60); do
  body=$(curl -fsS "$API/orders/$NO")
  if grep -q '"status":"PAID"' <<<"$body"; then
    echo "$body"
    echo
    echo "PAID. See it in the Temporal UI: $UI/namespaces/default/workflows?query=OutTradeNo%3D%22$NO%22"
    exit 0
  fi
  sleep 0.5
done
echo "order did not become PAID in 30s:" >&2; echo "$body" >&2; exit 1
