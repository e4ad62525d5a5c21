package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/payflow/payflow/metrics"
	"github.com/payflow/payflow/wechatpay/apiv2"
)

// backlogReader is a Count that answers n (or err) and remembers the window
// it was asked about.
type backlogReader struct {
	n        int
	err      error
	from, to time.Time
	calls    int
}

func (r *backlogReader) count(_ context.Context, from, to time.Time) (int, error) {
	r.calls++
	r.from, r.to = from, to
	return r.n, r.err
}

// The backlog is read over [now-Window, now-Lag); the api sheds while it
// is above Limit, keeps its decision when a read fails until no read has
// succeeded for Stale, and takes notifications again once the backlog is
// at Limit or below.
func TestBackpressureFollowsTheBacklog(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	r := &backlogReader{n: 51}
	f := newNotifyFixture(t)
	b := &Backpressure{Count: r.count, Limit: 50, Lag: 2 * time.Second, Window: time.Minute, Every: time.Second, Stale: 5 * time.Second,
		Logger: slog.New(slog.DiscardHandler), Metrics: f.srv.Metrics, Now: func() time.Time { return now }}
	f.srv.Backpressure = b
	notify := func(no string) int {
		t.Helper()
		return f.post(t, "/wechatpay/notify", nil, v2Payment(t, apiv2.SignTypeMD5, true, "out_trade_no", no)).Code
	}

	if got := notify("PF0001"); got != http.StatusOK || b.Shedding() {
		t.Fatalf("before the first read: %d, shedding %v; want 200, not shedding", got, b.Shedding())
	}

	b.check(context.Background())
	if !r.from.Equal(now.Add(-time.Minute)) || !r.to.Equal(now.Add(-2*time.Second)) {
		t.Fatalf("backlog read over [%v, %v), want [now-1m, now-2s)", r.from, r.to)
	}
	if !b.Shedding() {
		t.Fatal("backlog 51 over a limit of 50: not shedding")
	}
	if got := gaugeValue(t, f.reg, metrics.NotificationBacklogName); got != 51 {
		t.Fatalf("payflow_notification_backlog = %v, want 51", got)
	}
	rec := f.post(t, "/wechatpay/notify", nil, v2Payment(t, apiv2.SignTypeMD5, true, "out_trade_no", "PF0002"))
	if reply, err := apiv2.DecodeXML(rec.Body.Bytes()); rec.Code != http.StatusServiceUnavailable || err != nil || reply["return_code"] != "FAIL" {
		t.Fatalf("while shedding: %d %q, want 503 with return_code FAIL", rec.Code, rec.Body.String())
	}
	if got := rejectedCount(t, f.reg, "v2", "overloaded"); got != 1 {
		t.Fatalf("rejected{reason=overloaded} = %v, want 1", got)
	}

	r.n, r.err = 0, errors.New("connection refused")
	now = now.Add(4 * time.Second)
	b.check(context.Background())
	if !b.Shedding() {
		t.Fatal("a failed read 4 s after the last good one changed the decision")
	}
	now = now.Add(time.Second)
	b.check(context.Background())
	if b.Shedding() {
		t.Fatal("no good read for 5 s (Stale): still shedding")
	}
	if got := notify("PF0003"); got != http.StatusOK {
		t.Fatalf("without a fresh count: %d, want 200", got)
	}

	r.n, r.err = 51, nil
	b.check(context.Background())
	if !b.Shedding() {
		t.Fatal("the backlog read again, 51 over 50: not shedding")
	}
	r.n = 50
	b.check(context.Background())
	if b.Shedding() {
		t.Fatal("backlog 50, at the limit: still shedding")
	}
	if got := notify("PF0004"); got != http.StatusOK {
		t.Fatalf("after catching up: %d, want 200", got)
	}
	f.handoff.mu.Lock()
	defer f.handoff.mu.Unlock()
	if got := f.handoff.accepted; len(got) != 3 || got[0].OutTradeNo != "PF0001" || got[1].OutTradeNo != "PF0003" || got[2].OutTradeNo != "PF0004" {
		t.Fatalf("handed over %+v, want PF0001, PF0003 and PF0004 only", got)
	}
}

// Without a limit (NOTIFY_SHED_BACKLOG=0) nothing is read and nothing is
// shed; a nil Backpressure never sheds.
func TestBackpressureOff(t *testing.T) {
	r := &backlogReader{n: 1_000_000}
	b := &Backpressure{Count: r.count, Limit: 0, Every: time.Millisecond, Now: time.Now}
	done := make(chan struct{})
	go func() { b.Run(context.Background()); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run with Limit 0 did not return")
	}
	if r.calls != 0 || b.Shedding() {
		t.Fatalf("Limit 0: %d reads, shedding %v", r.calls, b.Shedding())
	}
	var none *Backpressure
	if none.Shedding() {
		t.Fatal("a nil Backpressure sheds")
	}
}

// gaugeValue reads an unlabelled gauge.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	m := series(t, reg, name, nil)
	if m == nil {
		t.Fatalf("no gauge %s", name)
	}
	return m.GetGauge().GetValue()
}
