// Command worker runs payment workflows and activities (see package worker).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/payflow/payflow/config"
	"github.com/payflow/payflow/internal/boot"
	"github.com/payflow/payflow/worker"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
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
	return worker.Run(ctx, cfg, boot.Logger())
}
