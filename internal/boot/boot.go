// Package boot holds the start-up steps the api and the worker share:
// logging, connecting to PostgreSQL and Temporal with patience (the stack's
// parts may start in any order). HTTP is served by internal/httpserve.
package boot

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/payflow/payflow/config"
	"github.com/payflow/payflow/metrics"
	"github.com/payflow/payflow/store"
)

// Logger is the processes' JSON logger on stderr.
func Logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// startupWait is how long a process keeps trying to reach a dependency
// before it gives up and exits non-zero.
const startupWait = 2 * time.Minute

// Retry calls f until it succeeds, ctx ends or startupWait passes: how a
// process waits for a dependency (PostgreSQL, Temporal) at start. f must be
// safe to call again.
func Retry(ctx context.Context, logger *slog.Logger, what string, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, startupWait)
	defer cancel()
	delay := 250 * time.Millisecond
	for {
		err := f(ctx)
		if err == nil {
			return nil
		}
		logger.Warn("waiting for "+what, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// OpenStore connects to PostgreSQL and applies the embedded migrations.
func OpenStore(ctx context.Context, cfg config.Config, logger *slog.Logger) (*store.Store, error) {
	var s *store.Store
	err := Retry(ctx, logger, "postgres", func(ctx context.Context) error {
		var err error
		s, err = store.Open(ctx, cfg.DatabaseURL.Reveal())
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := s.Migrate(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("migrate: %w", err)
	}
	return s, nil
}

// DialTemporal connects to the Temporal frontend, with the SDK logging
// through slog and reporting its metrics to mh (may be nil).
func DialTemporal(ctx context.Context, cfg config.Config, logger *slog.Logger, mh client.MetricsHandler) (client.Client, error) {
	var c client.Client
	err := Retry(ctx, logger, "temporal", func(ctx context.Context) error {
		var err error
		c, err = client.DialContext(ctx, client.Options{
			HostPort:       cfg.TemporalAddress,
			Namespace:      cfg.TemporalNamespace,
			Logger:         tlog.NewStructuredLogger(logger.With("component", "temporal-sdk")),
			MetricsHandler: mh,
		})
		return err
	})
	return c, err
}

// Telemetry is a process's metrics: its own, Go's and the Temporal SDK's,
// in one registry served at /metrics.
type Telemetry struct {
	Registry *prometheus.Registry
	Metrics  *metrics.Metrics
	Temporal client.MetricsHandler
	closer   io.Closer
}

// NewTelemetry builds the registry and the Temporal SDK bridge.
func NewTelemetry() (*Telemetry, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	th, closer, err := metrics.TemporalHandler(reg)
	if err != nil {
		return nil, fmt.Errorf("temporal metrics: %w", err)
	}
	return &Telemetry{Registry: reg, Metrics: metrics.New(reg), Temporal: th, closer: closer}, nil
}

// Handler serves the registry in the Prometheus text format.
func (t *Telemetry) Handler() http.Handler { return metrics.Handler(t.Registry) }

// Close flushes the Temporal bridge; call it after the client is closed.
func (t *Telemetry) Close() error { return t.closer.Close() }

// Deps are what the api and the worker both connect to at start.
type Deps struct {
	Store     *store.Store
	Telemetry *Telemetry
	Temporal  client.Client
}

// Connect opens the store (migrated), the telemetry and the Temporal
// client reporting into it. Close releases them in reverse order, so the
// Temporal metrics bridge is flushed after the client stops.
func Connect(ctx context.Context, cfg config.Config, logger *slog.Logger) (*Deps, error) {
	st, err := OpenStore(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	tel, err := NewTelemetry()
	if err != nil {
		st.Close()
		return nil, err
	}
	tc, err := DialTemporal(ctx, cfg, logger, tel.Temporal)
	if err != nil {
		_ = tel.Close()
		st.Close()
		return nil, err
	}
	return &Deps{Store: st, Telemetry: tel, Temporal: tc}, nil
}

// Close releases what Connect opened.
func (d *Deps) Close() {
	d.Temporal.Close()
	_ = d.Telemetry.Close()
	d.Store.Close()
}
