package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/payflow/payflow/metrics"
)

// scrape serves reg through Handler and returns the exposition text.
func scrape(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	srv := httptest.NewServer(metrics.Handler(reg))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: HTTP %d", resp.StatusCode)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

func assertLines(t *testing.T, text string, lines ...string) {
	t.Helper()
	have := map[string]bool{}
	for _, l := range strings.Split(text, "\n") {
		have[l] = true
	}
	for _, l := range lines {
		if !have[l] {
			t.Errorf("scrape lacks line %q", l)
		}
	}
}

func TestMetricsScrape(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)

	m.NotificationReceived("v2")
	m.NotificationReceived("v2")
	m.NotificationReceived("v3")
	m.NotificationAcked("v2", "recorded", 30*time.Millisecond)
	m.NotificationAcked("v3", "already_paid", 1500*time.Millisecond)
	m.NotificationRejected("v2", "signature", 2*time.Millisecond)
	m.NotificationRejected("v3", "unrecorded", 4500*time.Millisecond)
	m.SignalWithStart(20*time.Millisecond, nil)
	m.SignalWithStart(3*time.Second, errors.New("unavailable"))
	m.OrderFinal("PAID")
	m.OrderFinal("REVIEW")
	m.OrderFinal("REVIEW")
	m.ActivityAttempt("QueryOrder", nil)
	m.ActivityAttempt("QueryOrder", errors.New("timeout"))
	m.ActivityAttempt("MarkPaid", nil)
	m.ReconciliationFound(3)
	m.ReconciliationFound(0)

	text := scrape(t, reg)
	assertLines(t, text,
		`payflow_notifications_received_total{version="v2"} 2`,
		`payflow_notifications_received_total{version="v3"} 1`,
		`payflow_notifications_acked_total{outcome="recorded",version="v2"} 1`,
		`payflow_notifications_acked_total{outcome="already_paid",version="v3"} 1`,
		`payflow_notifications_acked_total{outcome="inbox",version="v3"} 0`,
		`payflow_notifications_rejected_total{reason="signature",version="v2"} 1`,
		`payflow_notifications_rejected_total{reason="unrecorded",version="v3"} 1`,
		`payflow_notifications_rejected_total{reason="decrypt",version="v3"} 0`,
		// v2: 30 ms and 2 ms; v3: 1.5 s and 4.5 s.
		`payflow_notify_ack_seconds_bucket{version="v2",le="0.005"} 1`,
		`payflow_notify_ack_seconds_bucket{version="v2",le="0.05"} 2`,
		`payflow_notify_ack_seconds_bucket{version="v3",le="1"} 0`,
		`payflow_notify_ack_seconds_bucket{version="v3",le="2"} 1`,
		`payflow_notify_ack_seconds_bucket{version="v3",le="4"} 1`,
		`payflow_notify_ack_seconds_bucket{version="v3",le="5"} 2`,
		`payflow_notify_ack_seconds_count{version="v3"} 2`,
		`payflow_signal_with_start_seconds_bucket{le="0.025"} 1`,
		`payflow_signal_with_start_seconds_bucket{le="3"} 2`,
		`payflow_signal_with_start_seconds_count 2`,
		`payflow_signal_with_start_errors_total 1`,
		`payflow_orders_final_total{status="PAID"} 1`,
		`payflow_orders_final_total{status="REVIEW"} 2`,
		`payflow_orders_final_total{status="CLOSED"} 0`,
		`payflow_activity_attempts_total{activity="QueryOrder"} 2`,
		`payflow_activity_failures_total{activity="QueryOrder"} 1`,
		`payflow_activity_attempts_total{activity="MarkPaid"} 1`,
		`payflow_reconciliation_found_total 3`,
		`# TYPE payflow_notify_ack_seconds histogram`,
		`# TYPE payflow_signal_with_start_seconds histogram`,
	)
	if strings.Contains(text, `payflow_activity_failures_total{activity="MarkPaid"}`) {
		t.Error("MarkPaid never failed but has a failure series")
	}
}

func TestNamesMatchRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics.New(reg)
	m := metrics.New(nil) // unregistered: usable, touches no registry
	m.ActivityAttempt("A", errors.New("x"))
	if _, _, err := metrics.TemporalHandler(reg); err != nil {
		t.Fatal(err)
	}
	// The worker registers the refunds read from PostgreSQL.
	reg.MustRegister(metrics.OpenRefundsCollector(func(context.Context) (metrics.OpenRefunds, error) { return metrics.OpenRefunds{}, nil }, nil))
	metrics.New(prometheus.NewRegistry()).ActivityAttempt("A", errors.New("x"))
	mf, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range mf {
		got[f.GetName()] = true
	}
	for _, n := range metrics.Names() {
		if strings.HasPrefix(n, "payflow_activity_") || n == metrics.WeChatFaultsName {
			continue // series appear with their first activity, or first fault
		}
		if !got[n] {
			t.Errorf("Names() has %s, the registry does not", n)
		}
	}
}

func TestNilMetricsRecordsNothing(t *testing.T) {
	var m *metrics.Metrics
	m.NotificationReceived("v2")
	m.NotificationAcked("v2", "recorded", time.Millisecond)
	m.NotificationRejected("v2", "probe", time.Millisecond)
	m.SignalWithStart(time.Millisecond, errors.New("x"))
	m.OrderFinal("PAID")
	m.ActivityAttempt("A", nil)
	m.ReconciliationFound(1)
}

func TestNewTwiceOnOneRegistryPanics(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics.New(reg)
	defer func() {
		if recover() == nil {
			t.Error("second New on the same registry did not panic")
		}
	}()
	metrics.New(reg)
}

func TestTemporalHandlerDistinctRegistries(t *testing.T) {
	for range 2 {
		reg := prometheus.NewRegistry()
		metrics.New(reg)
		h, closer, err := metrics.TemporalHandler(reg)
		if err != nil {
			t.Fatalf("TemporalHandler: %v", err)
		}
		if h == nil || closer == nil {
			t.Fatal("TemporalHandler returned nil handler or closer")
		}
		if err := closer.Close(); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	if _, _, err := metrics.TemporalHandler(reg); err != nil {
		t.Fatal(err)
	}
	if _, _, err := metrics.TemporalHandler(reg); err == nil {
		t.Error("a second TemporalHandler on the same registry should fail")
	}
	if _, _, err := metrics.TemporalHandler(nil); err == nil {
		t.Error("TemporalHandler(nil) should fail")
	}
}

// Charge is a test activity: it fails while amount is negative.
func Charge(_ context.Context, amount int64) (int64, error) {
	if amount < 0 {
		return 0, temporal.NewNonRetryableApplicationError("negative amount", "BadAmount", nil)
	}
	return amount, nil
}

func Explode(context.Context) error { panic("boom") }

func TestActivityInterceptorCountsAttempts(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.SetWorkerOptions(sdkworker.Options{Interceptors: []interceptor.WorkerInterceptor{metrics.ActivityInterceptor(m)}})
	env.RegisterActivity(Charge)
	env.RegisterActivityWithOptions(Explode, activity.RegisterOptions{Name: "Explode"})

	if _, err := env.ExecuteActivity(Charge, int64(100)); err != nil {
		t.Fatal(err)
	}
	if _, err := env.ExecuteActivity(Charge, int64(200)); err != nil {
		t.Fatal(err)
	}
	if _, err := env.ExecuteActivity(Charge, int64(-1)); err == nil {
		t.Fatal("Charge(-1) succeeded")
	}
	if _, err := env.ExecuteActivity(Explode); err == nil {
		t.Fatal("Explode succeeded")
	}

	assertLines(t, scrape(t, reg),
		`payflow_activity_attempts_total{activity="Charge"} 3`,
		`payflow_activity_failures_total{activity="Charge"} 1`,
		`payflow_activity_attempts_total{activity="Explode"} 1`,
		`payflow_activity_failures_total{activity="Explode"} 1`,
	)
}
