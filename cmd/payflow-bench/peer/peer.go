// Package peer is the baseline payflow-bench compares against: a
// notification handler written the way the usual WeChat Pay tutorials write
// it, with all the work inside the HTTP request:
//
//  1. verify the v2 signature and the merchant ids;
//  2. read the order; answer SUCCESS at once if it is already PAID;
//  3. ask WeChat's order query (API v2) whether the trade is paid;
//  4. compare the amount, then UPDATE the order to PAID and INSERT its log
//     row in one transaction;
//  5. answer SUCCESS.
//
// It is deliberately not hardened: there is no row lock between the status
// read and the update and no idempotency key, so two copies of a
// notification arriving together can both pass step 2 and write two PAID
// log rows. That is the race the README describes; the benchmark counts it
// as "doubled". It verifies with the project's apiv2.NotifyParser (the same
// sequence as the api) and uses pgx directly, on the tables the store
// migrations create.
package peer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/payflow/payflow/config"
	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/wechatpay"
	"github.com/payflow/payflow/wechatpay/apiv2"
)

// maxBody caps a notification's size, as the real api does.
const maxBody = 64 << 10

// Handler serves POST /wechatpay/notify synchronously.
type Handler struct {
	DB     *pgxpool.Pool
	Notify *apiv2.NotifyParser // verifies as the real api does
	WeChat *apiv2.Client       // queries the sim
	Logger *slog.Logger
}

// ServeHTTP handles one notification from start to finish.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		reply(w, http.StatusMethodNotAllowed, false, "POST only")
		return
	}
	status, msg := h.handle(r.Context(), w, r)
	if status != http.StatusOK {
		h.Logger.Info("notification refused", "status", status, "reason", msg)
	}
	reply(w, status, status == http.StatusOK, msg)
}

func (h *Handler) handle(ctx context.Context, w http.ResponseWriter, r *http.Request) (int, string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return http.StatusBadRequest, "unreadable body"
	}
	n, err := h.Notify.Parse(r.Header, body)
	switch {
	case errors.Is(err, wechatpay.ErrBadSignature), errors.Is(err, wechatpay.ErrMissingSign):
		return http.StatusUnauthorized, "invalid sign"
	case errors.Is(err, wechatpay.ErrForeign):
		return http.StatusForbidden, "not this merchant"
	case err != nil:
		return http.StatusBadRequest, "malformed notification"
	}
	if !n.Succeeded() {
		return http.StatusOK, "OK" // a failed payment or a refund: nothing to do here
	}

	var status string
	var amount int64
	err = h.DB.QueryRow(ctx, `SELECT status, amount_fen FROM orders WHERE out_trade_no = $1`, n.OutTradeNo).Scan(&status, &amount)
	if errors.Is(err, pgx.ErrNoRows) {
		return http.StatusOK, "OK" // not ours; a tutorial acknowledges and forgets it
	}
	if err != nil {
		h.Logger.Error("read order", "out_trade_no", n.OutTradeNo, "err", err)
		return http.StatusInternalServerError, "database error"
	}
	if status == string(payment.StatusPaid) {
		return http.StatusOK, "OK"
	}

	trade, err := h.WeChat.QueryOrder(ctx, n.OutTradeNo)
	if err != nil {
		h.Logger.Error("order query", "out_trade_no", n.OutTradeNo, "err", err)
		return http.StatusInternalServerError, "order query failed"
	}
	if trade.TradeState != payment.TradeSuccess || trade.AmountFen != amount {
		return http.StatusOK, "OK" // not paid, or not for this amount: left alone
	}
	if err := h.markPaid(ctx, trade); err != nil {
		h.Logger.Error("mark paid", "out_trade_no", n.OutTradeNo, "err", err)
		return http.StatusInternalServerError, "database error"
	}
	return http.StatusOK, "OK"
}

// markPaid is the tutorial's update: no guard on the current status and a
// fresh log key per request, so a concurrent copy writes a second row.
func (h *Handler) markPaid(ctx context.Context, t payment.Trade) error {
	paidAt := t.PaidAt
	if paidAt.IsZero() {
		paidAt = time.Now()
	}
	tx, err := h.DB.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `UPDATE orders SET status = 'PAID', transaction_id = $2, paid_at = $3, updated_at = now()
		WHERE out_trade_no = $1`, t.OutTradeNo, t.TransactionID, paidAt); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO order_logs (out_trade_no, from_status, to_status, remarks, idempotency_key)
		VALUES ($1, 'PENDING', 'PAID', $2, $3)`,
		t.OutTradeNo, "paid by "+t.TransactionID+" (peer)", "peer:"+requestID()); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func reply(w http.ResponseWriter, status int, ok bool, msg string) {
	b := apiv2.Reply(ok, msg)
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func requestID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Config is what Serve needs, read from the same environment variables as
// bin/api and bin/worker.
type Config struct {
	Addr, DatabaseURL, BaseURL, AppID, MchID, APIKey string
}

// Serve runs the handler on cfg.Addr until ctx ends.
func Serve(ctx context.Context, cfg Config, logger *slog.Logger) error {
	pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("peer: database: %w", err)
	}
	defer pool.Close()
	notify, err := apiv2.NewNotifyParser(cfg.AppID, cfg.MchID, cfg.APIKey)
	if err != nil {
		return fmt.Errorf("peer: %w", err)
	}
	h := &Handler{
		DB:     pool,
		Notify: notify,
		WeChat: &apiv2.Client{BaseURL: cfg.BaseURL, AppID: cfg.AppID, MchID: cfg.MchID, APIKey: config.NewSecret(cfg.APIKey), HTTP: &http.Client{Timeout: 10 * time.Second}},
		Logger: logger,
	}
	mux := http.NewServeMux()
	mux.Handle("POST /wechatpay/notify", h)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	srv := &http.Server{Addr: cfg.Addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return fmt.Errorf("peer: %w", err)
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shut)
}
