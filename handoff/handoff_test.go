package handoff

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/payflow/payflow/payment"
)

// deadTemporal behaves like the SDK against a server that is down: it
// retries until the context ends.
type deadTemporal struct{}

func (deadTemporal) Notify(ctx context.Context, _ payment.Notification, _ bool, _ payment.Status) error {
	<-ctx.Done()
	return errors.New("temporal unavailable: " + ctx.Err().Error())
}

// inboxOnly records what was enqueued, failing if its context is already
// spent (as PostgreSQL would).
type inboxOnly struct{ queued []string }

func (inboxOnly) OrderRow(context.Context, string) (payment.Order, error) {
	return payment.Order{}, nil
}
func (inboxOnly) AuditNotification(context.Context, payment.Notification, payment.NotificationOutcome) error {
	return errors.New("not expected")
}
func (inboxOnly) AuditExamined(context.Context, payment.Notification, payment.NotificationOutcome) error {
	return errors.New("not expected")
}
func (s *inboxOnly) EnqueueNotification(ctx context.Context, n payment.Notification) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.queued = append(s.queued, n.ID)
	return nil
}

// With Temporal down, Accept leaves the inbox enough of the request's time
// to commit, and answers well inside the deadline.
func TestAcceptFallsBackToInboxInTime(t *testing.T) {
	st := &inboxOnly{}
	h := &Handoff{Gateway: deadTemporal{}, Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	start := time.Now()
	outcome, err := h.Accept(ctx, payment.Notification{ID: "v2:abc", OutTradeNo: "ORDER1"})
	if err != nil || outcome != Inbox || len(st.queued) != 1 {
		t.Fatalf("Accept = %q, %v; queued %v", outcome, err, st.queued)
	}
	if d := time.Since(start); d > 300*time.Millisecond {
		t.Fatalf("Accept took %s of a 400ms budget", d)
	}
}

// slowTemporal holds every delivery until released and counts them.
type slowTemporal struct {
	mu      sync.Mutex
	calls   int
	release chan struct{}
}

func (g *slowTemporal) Notify(context.Context, payment.Notification, bool, payment.Status) error {
	g.mu.Lock()
	g.calls++
	g.mu.Unlock()
	<-g.release
	return nil
}

// auditCount counts the audit rows written per notification id.
type auditCount struct {
	inboxOnly
	mu   sync.Mutex
	rows map[string]int
}

func (s *auditCount) AuditNotification(_ context.Context, n payment.Notification, _ payment.NotificationOutcome) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rows[n.ID]++
	return nil
}

// Copies of one notification that arrive while it is being delivered join
// that delivery: one SignalWithStart, every copy recorded and counted in
// the audit trail. Another notification is delivered on its own.
func TestConcurrentCopiesShareOneDelivery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := &slowTemporal{release: make(chan struct{})}
		st := &auditCount{rows: map[string]int{}}
		h := &Handoff{Gateway: g, Store: st, Logger: slog.New(slog.DiscardHandler)}
		type result struct {
			outcome payment.NotificationOutcome
			err     error
		}
		results := make(chan result, 4)
		accept := func(id, no string) {
			o, err := h.Accept(context.Background(), payment.Notification{ID: id, OutTradeNo: no})
			results <- result{o, err}
		}
		go accept("v2:same", "ORDER1")
		synctest.Wait() // the first copy is with Temporal
		go accept("v2:same", "ORDER1")
		go accept("v2:same", "ORDER1")
		go accept("v2:other", "ORDER2")
		synctest.Wait() // the copies wait for it; the other is with Temporal too
		close(g.release)
		for range 4 {
			if r := <-results; r.err != nil || r.outcome != Recorded {
				t.Fatalf("Accept = %q, %v; want recorded", r.outcome, r.err)
			}
		}
		if g.calls != 2 {
			t.Fatalf("%d deliveries to Temporal, want 2 (one per notification id)", g.calls)
		}
		if st.rows["v2:same"] != 3 || st.rows["v2:other"] != 1 {
			t.Fatalf("audit rows written %v, want 3 for the copies and 1 for the other", st.rows)
		}
	})
}
