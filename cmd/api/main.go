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
	st, err := boot.OpenStore(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer st.Close()
	tc, err := boot.DialTemporal(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer tc.Close()
	srv := &api.Server{
		Orders: st, Temporal: tc, TaskQueue: cfg.TaskQueue,
		AppID: cfg.AppID, MchID: cfg.MchID, APIKey: cfg.APIKey,
		Logger: logger, Now: time.Now,
	}
	return boot.Serve(ctx, boot.NewHTTPServer(cfg.APIAddr, srv.Handler()), logger)
}
