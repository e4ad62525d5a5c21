// Package api is the HTTP face of the orchestrator: WeChat Pay's notify
// endpoints and the merchant's order API. It verifies and hands work to the
// order's Temporal workflow; it holds no SQL and no payment logic.
package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/mux"
	"go.temporal.io/sdk/client"

	"github.com/payflow/payflow/config"
	"github.com/payflow/payflow/gateway"
	"github.com/payflow/payflow/metrics"
	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/store"
	"github.com/payflow/payflow/wechatpay"
)

// Orders is the part of the store the api uses.
type Orders interface {
	CreateOrder(ctx context.Context, o store.NewOrder) (payment.Order, error)
	GetOrder(ctx context.Context, outTradeNo string) (payment.Order, error)
	InboxRows(ctx context.Context, state string, limit int) ([]store.InboxRow, error)
	RedriveInbox(ctx context.Context, id string) error
	GetRefund(ctx context.Context, mchID, outTradeNo, outRefundNo string) (payment.Refund, error)
	// AuditExamined keeps a verified notification in the audit trail,
	// examined (once per id; a repeat is counted): the record of events
	// that no workflow handles.
	AuditExamined(ctx context.Context, n payment.Notification, outcome payment.NotificationOutcome) error
	Ping(ctx context.Context) error
}

// Acceptor makes a verified payment or refund notification durable, held
// by its order's workflow or committed to the inbox, and says how (an
// outcome for the audit trail, logs and metrics); *handoff.Handoff is one.
type Acceptor interface {
	Accept(ctx context.Context, n payment.Notification) (outcome payment.NotificationOutcome, err error)
}

// Temporal is the part of the Temporal client the api uses itself; every
// message to an order's workflow goes through the Gateway.
type Temporal interface {
	CheckHealth(ctx context.Context, request *client.CheckHealthRequest) (*client.CheckHealthResponse, error)
}

// Server serves the HTTP API. Build it with its dependencies and mount
// Handler.
type Server struct {
	Orders   Orders
	Temporal Temporal
	Gateway  *gateway.Gateway // the one way into an order's workflow
	AppID    string
	MchID    string
	Handoff  Acceptor                     // makes verified payments and refunds durable
	V2       wechatpay.NotificationParser // /wechatpay/notify; nil when API v2 is not configured
	V3       wechatpay.NotificationParser // /wechatpay/v3/notify; nil when API v3 is not configured
	Logger   *slog.Logger
	Now      func() time.Time

	Metrics        *metrics.Metrics // nil records nothing
	MetricsHandler http.Handler     // serves GET /metrics; none when nil

	// Tokens are API_TOKENS: every request but the public routes (the
	// notify endpoints, /healthz, /readyz, /metrics) must carry one as
	// "Authorization: Bearer <token>". None: no check (bin/api then only
	// starts on a loopback address; config.CheckAPIAccess).
	Tokens []config.Secret

	// MaxNotificationsInFlight is NOTIFY_MAX_IN_FLIGHT: at most this many
	// notifications are being verified and handed over at once; one more
	// is answered 503 at once (WeChat sends it again later) instead of
	// queueing for Temporal until every hand-over misses its deadline.
	// 0: no limit.
	MaxNotificationsInFlight int
	// Backpressure, when not nil, sheds new notifications (503) while the
	// workers are behind; its Run reads their backlog.
	Backpressure *Backpressure

	OrderTimeout time.Duration // ORDER_TIMEOUT
	CanPrepay    bool          // WECHATPAY_NOTIFY_URL is set
	// RefundsUnavailable, when not empty, says why refunds cannot be made
	// (no API v3 credentials): POST …/refunds answers 501 with it.
	RefundsUnavailable string

	Bills *Reconciliations // the daily bill reconciliation; /reconciliations answers 501 when nil

	notifySlots slots
}

// slots bound how many requests are served at once; nil is no bound.
type slots chan struct{}

func newSlots(n int) slots {
	if n <= 0 {
		return nil
	}
	return make(slots, n)
}

// acquire takes a slot if one is free, without waiting.
func (s slots) acquire() bool {
	if s == nil {
		return true
	}
	select {
	case s <- struct{}{}:
		return true
	default:
		return false
	}
}

func (s slots) release() {
	if s != nil {
		<-s
	}
}

// Handler routes the interface's paths, behind the bearer-token guard.
func (s *Server) Handler() http.Handler {
	s.notifySlots = newSlots(s.MaxNotificationsInFlight)
	r := mux.NewRouter()
	r.HandleFunc("/wechatpay/notify", s.notifyV2).Methods(http.MethodPost)
	r.HandleFunc("/wechatpay/v3/notify", s.notifyV3).Methods(http.MethodPost)
	r.HandleFunc("/orders", s.createOrder).Methods(http.MethodPost)
	r.HandleFunc("/orders/{out_trade_no}", s.getOrder).Methods(http.MethodGet)
	r.HandleFunc("/orders/{out_trade_no}/close", s.closeOrder).Methods(http.MethodPost)
	r.HandleFunc("/orders/{out_trade_no}/sync", s.syncOrder).Methods(http.MethodPost)
	r.HandleFunc("/orders/{out_trade_no}/resolve", s.resolveOrder).Methods(http.MethodPost)
	r.HandleFunc("/orders/{out_trade_no}/refunds", s.createRefund).Methods(http.MethodPost)
	r.HandleFunc("/orders/{out_trade_no}/refunds/{out_refund_no}", s.getRefund).Methods(http.MethodGet)
	r.HandleFunc("/inbox", s.inboxRows).Methods(http.MethodGet)
	r.HandleFunc("/inbox/{id}/redrive", s.redriveInbox).Methods(http.MethodPost)
	r.HandleFunc("/reconciliations/{date}", s.startReconciliation).Methods(http.MethodPost)
	r.HandleFunc("/reconciliations/{date}", s.getReconciliation).Methods(http.MethodGet)
	r.HandleFunc("/healthz", s.healthz).Methods(http.MethodGet)
	r.HandleFunc("/readyz", s.readyz).Methods(http.MethodGet)
	if s.MetricsHandler != nil {
		r.Handle("/metrics", s.MetricsHandler).Methods(http.MethodGet)
	}
	return s.guard(r)
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz reports whether both PostgreSQL and Temporal answer, each within a
// short timeout, so a load balancer stops sending to an api that cannot
// record anything.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{"postgres": "ok", "temporal": "ok"}
	ready := true
	if err := s.Orders.Ping(ctx); err != nil {
		checks["postgres"], ready = "unreachable", false
		s.Logger.Warn("readiness: postgres", "err", err)
	}
	if _, err := s.Temporal.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		checks["temporal"], ready = "unreachable", false
		s.Logger.Warn("readiness: temporal", "err", err)
	}
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, checks)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers {"error": msg}; msg is always ours, never an internal
// error's text.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
