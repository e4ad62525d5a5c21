// Package sim is a local stand-in for WeChat Pay, for development and
// tests. It serves WeChat's own API paths (v2 XML and v3 JSON: order query,
// prepay, close) under the configured merchant, keeps trades in memory, and
// lets an operator play the user ("the user paid") through JSON endpoints
// under /sim/. Each payment is announced to the merchant's notify URL in
// the v2 or v3 format with WeChat's retry schedule, and every delivery
// attempt is recorded for inspection.
//
// Endpoints (see Server.Handler):
//   - API v2 (XML, signed with the API key): POST /pay/orderquery,
//     POST /pay/unifiedorder, POST /pay/closeorder;
//   - API v3 (JSON; requests signed with the merchant key, answers signed by
//     WeChat Pay's key): GET /v3/pay/transactions/out-trade-no/{no}?mchid=,
//     GET /v3/pay/transactions/id/{transaction_id}?mchid=,
//     POST /v3/pay/transactions/jsapi, POST /v3/pay/transactions/native,
//     POST /v3/pay/transactions/out-trade-no/{no}/close,
//     POST /v3/refund/domestic/refunds, GET /v3/refund/domestic/refunds/{no};
//   - trade bills: GET /v3/bill/tradebill and GET /v3/billdownload/file
//     (the request signed by the merchant, the gzip file unsigned, its
//     uncompressed SHA-1 in tradebill's hash_value), POST /pay/downloadbill
//     (v2), in WeChat's format, built from the sandbox's own trades and refunds;
//   - operator: POST /sim/pay (PayRequest), POST /sim/trades/{no}/notify,
//     GET /sim/trades/{no} (TradeView), POST/GET/DELETE /sim/faults (fault
//     rules, FaultsView), POST and GET /sim/bills/{date} (BillSwitches: omit
//     a trade, change an amount, add a trade or a refund, a wrong hash,
//     STATEMENT_CREATING for a while, refused links, N synthetic rows),
//     GET /healthz.
//
// As WeChat behaves (digest §11), by default: a v2 notification of an
// HMAC-SHA256 order carries no sign_type (a 64-digit sign), and some MD5
// ones carry sign_type=MD5; a merchant's reply that is not well-formed
// SUCCESS XML (whitespace between tags, "success", JSON, HTML), or for v3
// not 200/204, fails and is resent on WeChat's schedule; a v2 closeorder
// sooner than 5 minutes (scaled by SIM_TIME_SCALE) after the order is
// refused with a signed SYSTEMERROR.
//
// Faults (faults.go): every WeChat API path is wrapped by Server.call under
// a call name (v2.orderquery, v2.unifiedorder, v2.closeorder, v3.query,
// v3.prepay, v3.close; notifications v2.notify and v3.notify), and gets
// faults from operator rules (POST /sim/faults, or "faults" in /sim/pay)
// or at random (SIM_FAULTS rate, SIM_FAULT_SEED printed at start,
// SIM_FAULT_CALLS, SIM_FAULT_KINDS): 429 FREQUENCY_LIMITED, 500
// SYSTEM_ERROR, an unsigned 503, 202, a proxy's unsigned 403/404 page,
// WeChat's decisive words unsigned, v2 SYSTEMERROR without sign, a bad
// signature, a key the merchant does not hold, a skewed clock, a slow
// answer, signature probes and concurrent duplicate notifications.
// GET /sim/faults counts what was injected.
//
// Environment (LoadConfig): SIM_ADDR, WECHATPAY_APPID, WECHATPAY_MCHID,
// WECHATPAY_API_KEY, SIM_NOTIFY_URL, SIM_TIME_SCALE, SIM_QUERY_DELAY, and
// for API v3 SIM_KEYS_DIR (a GenerateKeys directory), WECHATPAY_APIV3_KEY,
// SIM_PLATFORM_KEY, SIM_NOTIFY_URL_V3, SIM_NOTIFY_VERSION,
// SIM_DROP_NOTIFICATIONS; the fault model's SIM_FAULTS, SIM_FAULT_SEED,
// SIM_FAULT_CALLS, SIM_FAULT_KINDS. Without SIM_KEYS_DIR the v3 paths
// answer 500.
//
// Refunds (refunds.go): POST /v3/refund/domestic/refunds and GET
// /v3/refund/domestic/refunds/{no} as WeChat's, executed once per
// out_refund_no, PROCESSING for SIM_REFUND_PROCESSING (10s, scaled by
// SIM_TIME_SCALE), notified in v3 (REFUND.*) or v2 (req_info; to
// SIM_REFUND_NOTIFY_URL, SIM_NOTIFY_URL when unset); operator endpoints
// POST /sim/refunds (a merchant-portal refund, notified in v2 XML),
// GET /sim/refunds (RefundSummary: executions per out_refund_no and each
// trade's refunded total), GET /sim/refunds/{no} (RefundView),
// POST /sim/refunds/{no}/options (RefundOptions: ABNORMAL, CLOSED,
// NOT_ENOUGH, SYSTEM_ERROR after accepting, refusals, dropped
// notifications, v2 format) and POST /sim/refunds/{no}/notify.
//
// Choices where WeChat leaves room: a v3 query of a USERPAYING trade is
// 200 with that trade_state (not 202); v2 closeorder of a closed trade is
// result_code FAIL err_code ORDERCLOSED (as WeChat documents), v3 close of
// a closed trade 204; v3 notifications are sent for successful payments
// only, and are signed afresh at each attempt (same body).
//
// Layout:
//   - trades.go: the in-memory trade store and its JSON views;
//   - notifier.go: deliveries and retries, independent of the wire format;
//   - v2.go, v2order.go: the API v2 notification format and /pay/* handlers;
//   - v3.go, v3keys.go: the API v3 format, request verification, answer
//     signing and /v3/* handlers, and the key directory they read;
//   - keygen.go: GenerateKeys (wechatpay-sim keygen);
//   - operator.go: the /sim/* endpoints; faults.go, faults_operator.go: the
//     fault model and /sim/faults;
//   - v2sign.go: the sandbox's own v2 signer, checked against WeChat's
//     published vectors;
//   - bills.go: trade bills (v3 tradebill and download, v2 downloadbill) and their switches;
//   - server.go: configuration, routing and the process lifecycle.
package sim
