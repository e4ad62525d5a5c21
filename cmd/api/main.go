// Command api serves WeChat Pay's notify endpoints and the order API (see
// package api).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/payflow/payflow/api"
	"github.com/payflow/payflow/config"
	"github.com/payflow/payflow/handoff"
	"github.com/payflow/payflow/internal/boot"
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
	logger := boot.Logger()
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
	srv := &api.Server{
		Orders: st, Temporal: tc, TaskQueue: cfg.TaskQueue,
		Handoff: &handoff.Handoff{Temporal: tc, Store: st, TaskQueue: cfg.TaskQueue, Metrics: tel.Metrics, Logger: logger},
		AppID:   cfg.AppID, MchID: cfg.MchID, V2: v2, V3: v3,
		Logger: logger, Now: time.Now, Metrics: tel.Metrics, MetricsHandler: tel.Handler(),
		OrderTimeout: cfg.OrderTimeout, QueryAfter: cfg.OrderQueryAfter, CanPrepay: cfg.NotifyURL != "",
	}
	return boot.Serve(ctx, boot.NewHTTPServer(cfg.APIAddr, srv.Handler()), logger)
}
