// Package sim is a local stand-in for WeChat Pay, for development and
// tests. It serves WeChat's own API paths (API v2 order query so far) under
// the configured merchant, keeps trades in memory, and lets an operator
// play the user ("the user paid") through JSON endpoints under /sim/. Each
// payment is announced to the merchant's notify URL with WeChat's retry
// schedule, and every delivery attempt is recorded for inspection.
//
// Endpoints (see Server.Handler): POST /pay/orderquery (API v2, XML),
// POST /sim/pay (PayRequest), POST /sim/trades/{out_trade_no}/notify,
// GET /sim/trades/{out_trade_no} (TradeView), GET /healthz.
//
// Environment (LoadConfig): SIM_ADDR, WECHATPAY_APPID, WECHATPAY_MCHID,
// WECHATPAY_API_KEY, SIM_NOTIFY_URL, SIM_TIME_SCALE, SIM_QUERY_DELAY.
//
// Layout, so that API v3, prepay and close can be added beside v2:
//   - trades.go: the in-memory trade store and its JSON views;
//   - notifier.go: deliveries and retries, independent of the wire format;
//   - v2.go: the API v2 notification format and the /pay/* handlers;
//   - operator.go: the /sim/* endpoints;
//   - server.go: configuration, routing and the process lifecycle.
//
// A new API version adds a notificationFormat (see formats in Server) and
// its handlers in their own file.
package sim
