package gateway

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/payflow/payflow/payment"
)

// startRecorder is a Client that records the options of the runs it starts.
type startRecorder struct {
	Client
	started []client.StartWorkflowOptions
}

func (r *startRecorder) ExecuteWorkflow(_ context.Context, o client.StartWorkflowOptions, _ any, _ ...any) (client.WorkflowRun, error) {
	r.started = append(r.started, o)
	return nil, nil
}

// A plain order's run waits for its first task until its first query is
// due, or until the order expires if that comes first; a run the safety
// net wakes starts at once.
func TestCreateDelaysThePlainOrdersFirstTask(t *testing.T) {
	now := time.Now()
	soon, later := now.Add(20*time.Second), now.Add(30*time.Minute)
	past := now.Add(-time.Minute)
	cases := []struct {
		name       string
		queryAfter time.Duration
		expiresAt  *time.Time
		want       time.Duration
		slack      time.Duration
	}{
		{"query due first", time.Minute, &later, time.Minute, 0},
		{"expires first", time.Minute, &soon, 20 * time.Second, 2 * time.Second},
		{"already expired", time.Minute, &past, 0, 0},
		{"no expiry stored", time.Minute, nil, time.Minute, 0},
		{"no delay configured", 0, &later, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := &startRecorder{}
			g := &Gateway{Temporal: rec, TaskQueue: "payments", QueryAfter: c.queryAfter}
			if _, err := g.Create(context.Background(), payment.Order{OutTradeNo: "PF1", AmountFen: 100, ExpiresAt: c.expiresAt}); err != nil {
				t.Fatal(err)
			}
			if len(rec.started) != 1 {
				t.Fatalf("%d starts, want 1", len(rec.started))
			}
			got := rec.started[0].StartDelay
			if got > c.want || got < c.want-c.slack {
				t.Fatalf("StartDelay = %v, want %v (within %v)", got, c.want, c.slack)
			}
		})
	}
	rec := &startRecorder{}
	g := &Gateway{Temporal: rec, TaskQueue: "payments", QueryAfter: time.Minute}
	if err := g.Wake(context.Background(), "PF2"); err != nil {
		t.Fatal(err)
	}
	if d := rec.started[0].StartDelay; d != 0 {
		t.Fatalf("Wake: StartDelay = %v, want 0", d)
	}
}

// Each refund request is its own update, named for its out_refund_no:
// Temporal would answer a second request under the same id with the
// first one's outcome.
func TestRefundUpdateIDIsPerRequest(t *testing.T) {
	a, b := refundUpdateID("RF1"), refundUpdateID("RF1")
	if !strings.HasPrefix(a, "refund/RF1/") || !strings.HasPrefix(b, "refund/RF1/") || a == b {
		t.Fatalf("update ids %q and %q: want refund/RF1/ and a nonce of each request's own", a, b)
	}
}
