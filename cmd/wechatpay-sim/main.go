// Command wechatpay-sim is a local stand-in for WeChat Pay: it answers
// WeChat's API paths for one merchant and sends payment notifications on
// an operator's request. See package sim for the endpoints.
//
// Configuration (environment): SIM_ADDR (127.0.0.1:8090), WECHATPAY_APPID,
// WECHATPAY_MCHID, WECHATPAY_API_KEY, SIM_NOTIFY_URL
// (http://127.0.0.1:8080/wechatpay/notify), SIM_TIME_SCALE (1),
// SIM_QUERY_DELAY (0).
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/payflow/payflow/sim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		slog.New(slog.NewJSONHandler(os.Stderr, nil)).Error("wechatpay-sim stopped", "error", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	cfg, err := sim.LoadConfig(os.Getenv)
	if err != nil {
		return err
	}
	return sim.Run(ctx, cfg, log)
}
