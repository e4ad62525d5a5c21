// Package worker runs the payment workflow and its activities. Any number
// of workers may poll the same task queue; Temporal hands each task to one.
package worker

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/payflow/payflow/activities"
	"github.com/payflow/payflow/config"
	"github.com/payflow/payflow/gateway"
	"github.com/payflow/payflow/handoff"
	"github.com/payflow/payflow/internal/boot"
	"github.com/payflow/payflow/internal/httpserve"
	"github.com/payflow/payflow/metrics"
	"github.com/payflow/payflow/workflows"
)

// Run connects, registers and polls until ctx ends, then drains: running
// activities get WorkerStopTimeout to finish, after which Temporal retries
// them elsewhere.
func Run(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	wechat, err := NewWeChat(ctx, cfg)
	if err != nil {
		return err
	}
	refunds, err := NewRefundsAPI(ctx, cfg, wechat, logger)
	if err != nil {
		return err
	}
	deps, err := boot.Connect(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer deps.Close()
	st, c, tel := deps.Store, deps.Temporal, deps.Telemetry
	if err := setUpTemporal(ctx, c, cfg, logger); err != nil {
		return err
	}

	w := sdkworker.New(c, cfg.TaskQueue, Options(cfg, tel.Metrics))
	w.RegisterWorkflow(workflows.PaymentWorkflow)
	w.RegisterWorkflow(workflows.SafetyNetWorkflow)
	gw := &gateway.Gateway{Temporal: c, TaskQueue: cfg.TaskQueue, Metrics: tel.Metrics}
	w.RegisterActivity(&activities.Activities{
		Orders: st, WeChat: wechat, AppID: cfg.AppID, MchID: cfg.MchID, NotifyURL: cfg.NotifyURL, Now: time.Now,
		Metrics:  tel.Metrics,
		Settings: activities.Settings{QueryAfter: cfg.OrderQueryAfter, OrderTimeout: cfg.OrderTimeout, RefundQueryAfter: cfg.RefundQueryAfter},
	})
	w.RegisterActivity(&activities.SafetyNet{Store: st, Temporal: c, Handover: gw, WorkflowID: workflows.WorkflowID, MchID: cfg.MchID, Metrics: tel.Metrics})
	w.RegisterActivity(&activities.Refunds{
		Store: st, WeChat: refunds, MchID: cfg.MchID, NotifyURL: cfg.RefundNotifyURL, Now: time.Now, Metrics: tel.Metrics,
	})
	tel.Registry.MustRegister(openRefundsCollector(st, cfg.MchID))
	if err := setupBills(ctx, w, c, st, cfg, gw, tel.Metrics, logger); err != nil {
		return err
	}
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	logger.Info("worker polling", "task_queue", cfg.TaskQueue, "namespace", cfg.TemporalNamespace, "api_version", cfg.APIVersion)

	// The inbox relay: notifications the api committed to PostgreSQL while
	// Temporal was unreachable go to their workflows once it answers.
	relay := &handoff.Relay{
		Handoff:  &handoff.Handoff{Gateway: gw, Store: st, Logger: logger},
		Inbox:    st,
		Interval: time.Second,
		Metrics:  tel.Metrics,
		Logger:   logger,
	}
	relayDone := make(chan struct{})
	go func() { defer close(relayDone); relay.Run(ctx) }()
	defer func() { <-relayDone }()

	health := &health{store: st, temporal: c, metrics: tel.Handler()}
	err = httpserve.Serve(ctx, httpserve.New(cfg.WorkerAddr, health.handler()), logger)
	w.Stop()
	logger.Info("worker stopped")
	return err
}

// setUpTemporal registers the search attributes and the safety net's
// schedule. A Temporal server that has just restarted can refuse them for
// a moment (Unavailable, a stream cancelled), so they are tried again as
// the dial is (boot.Retry): both are idempotent.
func setUpTemporal(ctx context.Context, c client.Client, cfg config.Config, logger *slog.Logger) error {
	return boot.Retry(ctx, logger, "temporal set-up", func(ctx context.Context) error {
		if err := EnsureSearchAttributes(ctx, c, cfg.TemporalNamespace, logger); err != nil {
			return err
		}
		return EnsureSafetyNetSchedule(ctx, c, cfg, logger)
	})
}

// Options are the SDK worker's options: the concurrency settings of cfg
// (WORKER_*; 0 keeps the SDK's default) and the activity metrics.
func Options(cfg config.Config, m *metrics.Metrics) sdkworker.Options {
	return sdkworker.Options{
		WorkerStopTimeout:                       10 * time.Second,
		Interceptors:                            []interceptor.WorkerInterceptor{metrics.ActivityInterceptor(m)},
		MaxConcurrentWorkflowTaskExecutionSize:  cfg.WorkerWorkflowTasks,
		MaxConcurrentLocalActivityExecutionSize: cfg.WorkerLocalActivities,
		MaxConcurrentWorkflowTaskPollers:        cfg.WorkerWorkflowPollers,
		StickyScheduleToStartTimeout:            cfg.WorkerStickyTimeout,
	}
}

// health serves the worker's own liveness, readiness and metrics.
type health struct {
	store    interface{ Ping(context.Context) error }
	temporal client.Client
	metrics  http.Handler
}

func (h *health) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h.metrics)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := h.store.Ping(ctx); err != nil {
			http.Error(w, "postgres unreachable", http.StatusServiceUnavailable)
			return
		}
		if _, err := h.temporal.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
			http.Error(w, "temporal unreachable", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	return mux
}
