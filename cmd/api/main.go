// Command api serves WeChat Pay's notify endpoints and the order API (see
// package api).
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/payflow/payflow/api"
	"github.com/payflow/payflow/config"
	"github.com/payflow/payflow/gateway"
	"github.com/payflow/payflow/handoff"
	"github.com/payflow/payflow/internal/boot"
	"github.com/payflow/payflow/internal/httpserve"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "api:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		return err
	}
	// Fail closed, before connecting to anything: no order API open to
	// the network without tokens.
	if err := cfg.CheckAPIAccess(); err != nil {
		return err
	}
	logger := boot.Logger()
	if len(cfg.APITokens) == 0 {
		logger.Warn("API_TOKENS is not set: the order API needs no token, so it listens on loopback only", "addr", cfg.APIAddr)
	} else {
		logger.Info("order API: bearer tokens required", "tokens", len(cfg.APITokens))
	}
	deps, err := boot.Connect(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer deps.Close()
	st, tc, tel := deps.Store, deps.Temporal, deps.Telemetry
	wechat, err := boot.LoadWeChat(cfg, time.Now)
	if err != nil {
		return err
	}
	v2, v3 := wechat.Parsers()
	if v2 == nil {
		logger.Warn("API v2 notifications are not configured (WECHATPAY_API_KEY)")
	}
	if v3 == nil {
		logger.Warn("API v3 notifications are not configured (WECHATPAY_APIV3_KEY and WECHATPAY_PUBLIC_KEY_FILE or WECHATPAY_PLATFORM_CERT_DIR)")
	}
	gw := &gateway.Gateway{Temporal: tc, TaskQueue: cfg.TaskQueue, Metrics: tel.Metrics, QueryAfter: cfg.OrderQueryAfter}
	srv := &api.Server{
		Orders: st, Temporal: tc, Gateway: gw,
		Handoff: &handoff.Handoff{Gateway: gw, Store: st, Logger: logger},
		AppID:   cfg.AppID, MchID: cfg.MchID, V2: v2, V3: v3,
		Logger: logger, Now: time.Now, Metrics: tel.Metrics, MetricsHandler: tel.Handler(),
		OrderTimeout: cfg.OrderTimeout, CanPrepay: cfg.NotifyURL != "",
		RefundsUnavailable:       refundsUnavailable(cfg),
		Tokens:                   cfg.APITokens,
		Bills:                    &api.Reconciliations{Runs: st, Temporal: tc, TaskQueue: cfg.TaskQueue, PollInterval: cfg.BillPollInterval},
		MaxNotificationsInFlight: cfg.NotifyMaxInFlight,
		Backpressure: &api.Backpressure{
			Count: st.NotificationBacklog, Limit: cfg.NotifyShedBacklog,
			Lag: api.DefaultBackpressureLag, Window: api.DefaultBackpressureWindow,
			Every: api.DefaultBackpressureEvery, Stale: api.DefaultBackpressureStale,
			Logger: logger, Metrics: tel.Metrics, Now: time.Now,
		},
	}
	go srv.Backpressure.Run(ctx)
	return httpserve.Serve(ctx, httpServer(cfg.APIAddr, srv.Handler()), logger)
}

// httpServer is the shared listener set-up with the api's WriteTimeout,
// which outlasts every wait of an order API request (api.RequestTimeout).
func httpServer(addr string, h http.Handler) *http.Server {
	hs := httpserve.New(addr, h)
	hs.WriteTimeout = api.WriteTimeout
	return hs
}

// refundsUnavailable says why refunds cannot be made, or "" when they can.
func refundsUnavailable(cfg config.Config) string {
	if err := cfg.RefundsConfigured(); err != nil {
		return "refunds are not available: " + err.Error()
	}
	return ""
}
