package metrics_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/payflow/payflow/metrics"
)

func TestRefundMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	text := scrape(t, reg)
	// Known series start at zero, so an alert's increase() sees the first event.
	assertLines(t, text,
		`payflow_orders_final_total{status="REFUNDED"} 0`,
		`payflow_refunds_total{status="ABNORMAL"} 0`,
		`payflow_refunds_total{status="SUCCESS"} 0`,
		`payflow_refund_applies_total{outcome="not_enough"} 0`,
		`payflow_refund_applies_total{outcome="ambiguous"} 0`,
		`payflow_refund_success_seconds_count 0`,
	)

	m.RefundStatus("PROCESSING")
	m.RefundStatus("ABNORMAL")
	m.RefundStatus("SUCCESS")
	m.RefundApplied("not_enough")
	m.RefundApplied("not_enough")
	m.RefundApplied("accepted")
	m.RefundSucceeded(90 * time.Second)
	m.RefundSucceeded(-time.Second) // clock skew
	m.OrderFinal("REFUNDED")
	assertLines(t, scrape(t, reg),
		`payflow_refunds_total{status="PROCESSING"} 1`,
		`payflow_refunds_total{status="ABNORMAL"} 1`,
		`payflow_refunds_total{status="SUCCESS"} 1`,
		`payflow_refund_applies_total{outcome="not_enough"} 2`,
		`payflow_refund_applies_total{outcome="accepted"} 1`,
		`payflow_refund_success_seconds_bucket{le="1"} 1`,
		`payflow_refund_success_seconds_bucket{le="60"} 1`,
		`payflow_refund_success_seconds_bucket{le="300"} 2`,
		`payflow_refund_success_seconds_count 2`,
		`payflow_orders_final_total{status="REFUNDED"} 1`,
	)

	var nilMetrics *metrics.Metrics // records nothing, never panics
	nilMetrics.RefundStatus("SUCCESS")
	nilMetrics.RefundApplied("refused")
	nilMetrics.RefundSucceeded(time.Second)

	for _, n := range []string{metrics.RefundsName, metrics.RefundSuccessSecondsName, metrics.RefundAppliesName,
		metrics.RefundsOpenName, metrics.RefundOldestProcessingName} {
		if !slices.Contains(metrics.Names(), n) {
			t.Errorf("Names() lacks %s", n)
		}
	}
}

func TestOpenRefundsCollector(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	var (
		st  metrics.OpenRefunds
		err error
	)
	reg := prometheus.NewRegistry()
	metrics.New(reg)
	reg.MustRegister(metrics.OpenRefundsCollector(func(ctx context.Context) (metrics.OpenRefunds, error) {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("no deadline on the scrape's query")
		}
		return st, err
	}, func() time.Time { return now }))

	assertLines(t, scrape(t, reg),
		`payflow_refunds_open{status="PROCESSING"} 0`,
		`payflow_refunds_open{status="ABNORMAL"} 0`,
		`payflow_refund_oldest_processing_seconds 0`,
	)
	st = metrics.OpenRefunds{Processing: 3, Abnormal: 1, OldestProcessing: now.Add(-72 * time.Hour)}
	assertLines(t, scrape(t, reg),
		`payflow_refunds_open{status="PROCESSING"} 3`,
		`payflow_refunds_open{status="ABNORMAL"} 1`,
		`payflow_refund_oldest_processing_seconds 259200`,
	)
	// The database is down: the gauges are left out, the rest is served.
	err = errors.New("connection refused")
	text := scrape(t, reg)
	if strings.Contains(text, "payflow_refunds_open{") || strings.Contains(text, "payflow_refund_oldest_processing_seconds ") {
		t.Errorf("stale gauges served while the database is down")
	}
	assertLines(t, text, `payflow_refunds_total{status="SUCCESS"} 0`)
}
