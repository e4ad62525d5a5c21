package handoff

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/payflow/payflow/gateway"
	"github.com/payflow/payflow/payment"
)

// deadTemporal behaves like the SDK against a server that is down: it
// retries until the context ends.
type deadTemporal struct{}

func (deadTemporal) Notify(ctx context.Context, _ payment.Notification, _ bool, _ payment.Status) error {
	<-ctx.Done()
	return errors.New("temporal unavailable: " + ctx.Err().Error())
}

// settled is one SettleHandOver call.
type settled struct {
	id      string
	outcome payment.NotificationOutcome
	created bool
}

// memStore is the audit trail and inbox as the handoff sees them. Its
// calls fail, as PostgreSQL would, once their context is spent.
type memStore struct {
	mu       sync.Mutex
	order    payment.Order
	keepErr  error // KeepHandingOver fails with it
	existed  bool  // a copy was kept before: KeepHandingOver creates no row
	keepHook func()
	kept     map[string]int // KeepHandingOver calls per id
	settled  []settled
	queued   []string
	examined []string
}

func newMemStore() *memStore { return &memStore{kept: map[string]int{}} }

func (s *memStore) OrderRow(context.Context, string) (payment.Order, error) { return s.order, nil }

func (s *memStore) KeepHandingOver(ctx context.Context, n payment.Notification) (bool, error) {
	if s.keepHook != nil {
		s.keepHook()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if s.keepErr != nil {
		return false, s.keepErr
	}
	s.kept[n.ID]++
	return !s.existed && s.kept[n.ID] == 1, nil
}

func (s *memStore) SettleHandOver(ctx context.Context, n payment.Notification, outcome payment.NotificationOutcome, created bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	s.settled = append(s.settled, settled{n.ID, outcome, created})
	return nil
}

func (s *memStore) AuditExamined(ctx context.Context, n payment.Notification, _ payment.NotificationOutcome) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	s.examined = append(s.examined, n.ID)
	return nil
}

func (s *memStore) EnqueueNotification(ctx context.Context, n payment.Notification) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	s.queued = append(s.queued, n.ID)
	return nil
}

// With Temporal down, Accept leaves the inbox enough of the request's time
// to commit, and answers well inside the deadline. The audit row this
// delivery made becomes the inbox entry; a row kept before (an earlier
// copy held or queued) is left alone; without an audit row, inbox and
// audit row are written together.
func TestAcceptFallsBackToInboxInTime(t *testing.T) {
	for _, c := range []struct {
		name    string
		existed bool
		keepErr error
		settled []settled
		queued  []string
	}{
		{name: "the audit row becomes the inbox entry", settled: []settled{{"v2:abc", Inbox, true}}},
		{name: "a copy was kept before", existed: true},
		{name: "no audit row could be written", keepErr: errors.New("deadlock detected"), queued: []string{"v2:abc"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := newMemStore()
			st.existed, st.keepErr = c.existed, c.keepErr
			h := &Handoff{Gateway: deadTemporal{}, Store: st, Logger: slog.New(slog.DiscardHandler)}
			ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
			defer cancel()
			start := time.Now()
			outcome, err := h.Accept(ctx, payment.Notification{ID: "v2:abc", OutTradeNo: "ORDER1"})
			if err != nil || outcome != Inbox || !slices.Equal(st.settled, c.settled) || !slices.Equal(st.queued, c.queued) {
				t.Fatalf("Accept = %q, %v; settled %v, queued %v; want inbox, settled %v, queued %v", outcome, err, st.settled, st.queued, c.settled, c.queued)
			}
			if d := time.Since(start); d > 300*time.Millisecond {
				t.Fatalf("Accept took %s of a 400ms budget", d)
			}
		})
	}
}

// runCompleted answers like the gateway when the order's run has ended:
// ErrRunCompleted unless asked to start a new run.
type runCompleted struct{}

func (runCompleted) Notify(_ context.Context, _ payment.Notification, startNew bool, _ payment.Status) error {
	if !startNew {
		return gateway.ErrRunCompleted
	}
	return nil
}

// The audit row, written as recorded while Temporal takes the
// notification, is corrected when the hand-over ended otherwise: a late
// copy of the paying transaction is examined, a new run is noted. A row
// that could not be written is tried once more for a late copy (which is
// examined by being kept); the acknowledgement does not depend on it.
func TestAcceptSettlesTheAuditRow(t *testing.T) {
	paid := payment.Order{OutTradeNo: "ORDER1", Status: payment.StatusPaid, TransactionID: "4200001"}
	late := payment.Notification{ID: "v3:late", OutTradeNo: "ORDER1", TransactionID: "4200001", ResultCode: "SUCCESS"}
	other := payment.Notification{ID: "v3:other", OutTradeNo: "ORDER1", TransactionID: "4200002", ResultCode: "SUCCESS"}
	for _, c := range []struct {
		name     string
		n        payment.Notification
		existed  bool
		keepErr  error
		outcome  payment.NotificationOutcome
		settled  []settled
		examined []string
	}{
		{name: "late copy of the paying transaction", n: late, outcome: AlreadyPaid, settled: []settled{{"v3:late", AlreadyPaid, true}}},
		{name: "late copy, kept before", n: late, existed: true, outcome: AlreadyPaid, settled: []settled{{"v3:late", AlreadyPaid, false}}},
		{name: "another transaction: a new run", n: other, outcome: RecordedAgain, settled: []settled{{"v3:other", RecordedAgain, true}}},
		{name: "late copy, no audit row", n: late, keepErr: errors.New("connection reset"), outcome: AlreadyPaid, examined: []string{"v3:late"}},
		{name: "new run, no audit row", n: other, keepErr: errors.New("connection reset"), outcome: RecordedAgain},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := newMemStore()
			st.order, st.existed, st.keepErr = paid, c.existed, c.keepErr
			h := &Handoff{Gateway: runCompleted{}, Store: st, Logger: slog.New(slog.DiscardHandler)}
			outcome, err := h.Accept(context.Background(), c.n)
			if err != nil || outcome != c.outcome {
				t.Fatalf("Accept = %q, %v; want %q", outcome, err, c.outcome)
			}
			if !slices.Equal(st.settled, c.settled) || !slices.Equal(st.examined, c.examined) || len(st.queued) != 0 {
				t.Fatalf("settled %v, examined %v, queued %v; want settled %v, examined %v", st.settled, st.examined, st.queued, c.settled, c.examined)
			}
		})
	}
}

// gatedTemporal takes a notification only once the gate is open.
type gatedTemporal struct{ gate chan struct{} }

func (g gatedTemporal) Notify(ctx context.Context, _ payment.Notification, _ bool, _ payment.Status) error {
	select {
	case <-g.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// The audit row is written while Temporal takes the notification: here
// Temporal answers only once the row is being written, which would never
// happen if the row waited for Temporal's answer.
func TestAcceptKeepsTheAuditRowWhileTemporalTakesIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{})
		st := newMemStore()
		st.keepHook = func() { close(gate) }
		h := &Handoff{Gateway: gatedTemporal{gate}, Store: st, Logger: slog.New(slog.DiscardHandler)}
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		defer cancel()
		start := time.Now()
		outcome, err := h.Accept(ctx, payment.Notification{ID: "v2:gated", OutTradeNo: "ORDER1"})
		if err != nil || outcome != Recorded || st.kept["v2:gated"] != 1 || len(st.settled) != 0 {
			t.Fatalf("Accept = %q, %v; kept %v, settled %v; want recorded, one row, nothing to settle", outcome, err, st.kept, st.settled)
		}
		if d := time.Since(start); d != 0 {
			t.Fatalf("Accept waited %s (Temporal's budget ran out), want no wait", d)
		}
	})
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

// Copies of one notification that arrive while it is being delivered join
// that delivery: one SignalWithStart, every copy recorded and counted in
// the audit trail. Another notification is delivered on its own.
func TestConcurrentCopiesShareOneDelivery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := &slowTemporal{release: make(chan struct{})}
		st := newMemStore()
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
		if st.kept["v2:same"] != 3 || st.kept["v2:other"] != 1 {
			t.Fatalf("audit rows written %v, want 3 for the copies and 1 for the other", st.kept)
		}
	})
}
