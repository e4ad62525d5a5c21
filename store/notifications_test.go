package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/payflow/payflow/payment"
)

func note(id, no string) payment.Notification {
	return payment.Notification{ID: id, Source: payment.SourceV3, OutTradeNo: no, TransactionID: "tx-" + id, AmountFen: 1234,
		ResultCode: "SUCCESS", ReceivedAt: time.Now()}
}

func TestAuditTrailOncePerNotification(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	createOrder(t, s, "AUDIT00001")
	for range 3 {
		if _, err := s.KeepHandingOver(ctx, note("n1", "AUDIT00001")); err != nil {
			t.Fatal(err)
		}
	}
	created, err := s.KeepHandingOver(ctx, note("n2", "AUDIT00001"))
	if err != nil || !created {
		t.Fatalf("keep n2: created %v, %v", created, err)
	}
	if err := s.SettleHandOver(ctx, note("n2", "AUDIT00001"), payment.NotifyAlreadyPaid, created); err != nil {
		t.Fatal(err)
	}
	o := getOrder(t, s, "AUDIT00001")
	if len(o.Notifications) != 2 {
		t.Fatalf("notifications = %+v", o.Notifications)
	}
	if n := o.Notifications[0]; n.ID != "n1" || n.ReceivedCount != 3 || n.Outcome != "recorded" || n.Version != payment.SourceV3 || n.InboxState != "" {
		t.Fatalf("first = %+v", n)
	}
	createOrder(t, s, "AUDIT00002")
	if o := getOrder(t, s, "AUDIT00002"); o.Notifications == nil || len(o.Notifications) != 0 {
		t.Fatalf("an order without notifications has %#v, want []", o.Notifications)
	}
}

func TestInboxDeliveredOnce(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	createOrder(t, s, "INBOX00001")
	for i := range 20 {
		if err := s.EnqueueNotification(ctx, note(fmt.Sprintf("q%02d", i), "INBOX00001")); err != nil {
			t.Fatal(err)
		}
	}
	// A repeat while queued is counted, not queued twice.
	if err := s.EnqueueNotification(ctx, note("q00", "INBOX00001")); err != nil {
		t.Fatal(err)
	}

	// A failing delivery (Temporal still down) keeps the rows pending and
	// counts nothing against them.
	down := func(payment.Notification) Delivery {
		return Delivery{Err: errors.New("temporal unavailable"), Paused: true}
	}
	res, err := s.ClaimInbox(ctx, 50, down)
	if res.Delivered != 0 || !res.Paused || err != nil {
		t.Fatalf("failing claim = %+v, %v", res, err)
	}

	// While a relay is stuck delivering (Temporal slow or down), another
	// copy of a claimed notification is still recorded at once: no lock is
	// held across the delivery.
	res, err = s.ClaimInbox(ctx, 1, func(x payment.Notification) Delivery {
		qctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		if err := s.EnqueueNotification(qctx, x); err != nil {
			t.Errorf("recording a copy of a claimed notification: %v", err)
		}
		return Delivery{Err: errors.New("temporal unavailable"), Paused: true}
	})
	if res.Delivered != 0 || !res.Paused || err != nil {
		t.Fatalf("stuck claim = %+v, %v", res, err)
	}

	// Two relays at once: every row is delivered exactly once.
	var mu sync.Mutex
	seen := map[string]int{}
	var total atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				res, err := s.ClaimInbox(ctx, 3, func(x payment.Notification) Delivery {
					mu.Lock()
					seen[x.ID]++
					mu.Unlock()
					time.Sleep(5 * time.Millisecond)
					return Delivery{Outcome: "recorded"}
				})
				if err != nil {
					t.Error(err)
					return
				}
				total.Add(int64(res.Delivered))
				if res.Claimed == 0 {
					return
				}
			}
		}()
	}
	wg.Wait()
	if total.Load() != 20 || len(seen) != 20 {
		t.Fatalf("delivered %d rows, %d distinct", total.Load(), len(seen))
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("%s delivered %d times", id, c)
		}
	}
	o := getOrder(t, s, "INBOX00001")
	for _, r := range o.Notifications {
		if r.InboxState != "delivered" || r.DeliveredAt == nil || r.Outcome != "inbox, then recorded" {
			t.Fatalf("row = %+v", r)
		}
	}
	if o.Notifications[0].ReceivedCount != 3 {
		t.Fatalf("q00 received_count = %d, want 3", o.Notifications[0].ReceivedCount)
	}
}

// One row that cannot be delivered never holds up the others: it is tried
// again later with backoff, parked after InboxParkAfter attempts, and an
// operator can re-drive it.
func TestInboxBadRowDoesNotBlock(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	createOrder(t, s, "INBOX00002")
	for _, id := range []string{"bad", "good1", "good2"} {
		if err := s.EnqueueNotification(ctx, note(id, "INBOX00002")); err != nil {
			t.Fatal(err)
		}
	}
	deliver := func(n payment.Notification) Delivery {
		if n.ID == "bad" {
			return Delivery{Err: errors.New("payload rejected")}
		}
		return Delivery{Outcome: "recorded"}
	}
	res, err := s.ClaimInbox(ctx, 50, deliver)
	if err != nil || res.Delivered != 2 || res.Failed != 1 || res.Parked != 0 {
		t.Fatalf("first batch = %+v, %v; want both good rows delivered past the bad one", res, err)
	}
	// Not due again at once.
	if res, _ := s.ClaimInbox(ctx, 50, deliver); res.Claimed != 0 {
		t.Fatalf("bad row retried at once: %+v", res)
	}
	for i := 2; i <= InboxParkAfter; i++ {
		if _, err := s.pool.Exec(ctx, `UPDATE notifications SET inbox_next_attempt_at = now() WHERE id = 'bad'`); err != nil {
			t.Fatal(err)
		}
		res, err := s.ClaimInbox(ctx, 50, deliver)
		if err != nil || res.Failed != 1 || (res.Parked == 1) != (i == InboxParkAfter) {
			t.Fatalf("attempt %d = %+v, %v", i, res, err)
		}
	}
	rows, err := s.InboxRows(ctx, "parked", 10)
	if err != nil || len(rows) != 1 || rows[0].ID != "bad" || rows[0].Attempts != InboxParkAfter || rows[0].LastError != "payload rejected" {
		t.Fatalf("parked rows = %+v, %v", rows, err)
	}
	if n, _ := s.ParkedInbox(ctx); n != 1 {
		t.Fatalf("parked = %d", n)
	}
	if err := s.RedriveInbox(ctx, "good1"); !errors.Is(err, ErrNotParked) {
		t.Fatalf("redrive of a delivered row: %v", err)
	}
	if err := s.RedriveInbox(ctx, "bad"); err != nil {
		t.Fatal(err)
	}
	res, err = s.ClaimInbox(ctx, 50, func(payment.Notification) Delivery { return Delivery{Outcome: "recorded"} })
	if err != nil || res.Delivered != 1 {
		t.Fatalf("after redrive = %+v, %v", res, err)
	}
}

// A backlog drains several rows at a time: with a slow Temporal the
// relay's pace is not one round trip per row. Each row is still delivered
// once, and a pause stops the batch and releases what was not delivered.
func TestInboxDeliversConcurrently(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	createOrder(t, s, "INBOX00003")
	for i := range 2 * inboxParallel {
		if err := s.EnqueueNotification(ctx, note(fmt.Sprintf("c%02d", i), "INBOX00003")); err != nil {
			t.Fatal(err)
		}
	}
	var inFlight, most atomic.Int64
	var mu sync.Mutex
	seen := map[string]int{}
	res, err := s.ClaimInbox(ctx, 50, func(x payment.Notification) Delivery {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		mu.Lock()
		seen[x.ID]++
		mu.Unlock()
		time.Sleep(50 * time.Millisecond)
		return Delivery{Outcome: "recorded"}
	})
	if err != nil || res.Delivered != 2*inboxParallel || res.Claimed != 2*inboxParallel {
		t.Fatalf("claim = %+v, %v", res, err)
	}
	if most.Load() < 2 {
		t.Fatalf("at most %d deliveries at once, want up to %d", most.Load(), inboxParallel)
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("%s delivered %d times", id, c)
		}
	}

	// Temporal unreachable from the first delivery on: nothing counted,
	// every row released for the next pass.
	for i := range 2 * inboxParallel {
		if err := s.EnqueueNotification(ctx, note(fmt.Sprintf("d%02d", i), "INBOX00003")); err != nil {
			t.Fatal(err)
		}
	}
	res, err = s.ClaimInbox(ctx, 50, func(payment.Notification) Delivery {
		return Delivery{Err: errors.New("temporal unavailable"), Paused: true}
	})
	if err != nil || !res.Paused || res.Delivered != 0 || res.Failed != 0 {
		t.Fatalf("paused claim = %+v, %v", res, err)
	}
	res, err = s.ClaimInbox(ctx, 50, func(payment.Notification) Delivery { return Delivery{Outcome: "recorded"} })
	if err != nil || res.Delivered != 2*inboxParallel {
		t.Fatalf("after the pause: %+v, %v (every row must be claimable again at once)", res, err)
	}
}

// The audit row written while a notification is handed over: made once
// (a repeat, or a row the workflow made first, only counts), then
// corrected by the hand-over's outcome without counting again.
func TestKeepHandingOverThenSettle(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	createOrder(t, s, "HAND000001")
	keep := func(id string, want bool) {
		t.Helper()
		created, err := s.KeepHandingOver(ctx, note(id, "HAND000001"))
		if err != nil || created != want {
			t.Fatalf("KeepHandingOver(%s) = %v, %v; want created %v", id, created, err, want)
		}
	}
	settle := func(id string, outcome payment.NotificationOutcome, created bool) {
		t.Helper()
		if err := s.SettleHandOver(ctx, note(id, "HAND000001"), outcome, created); err != nil {
			t.Fatal(err)
		}
	}
	keep("h-recorded", true)
	keep("h-recorded", false)
	keep("h-paid", true)
	settle("h-paid", payment.NotifyAlreadyPaid, true)
	keep("h-again", true)
	settle("h-again", payment.NotifyRecordedAgain, true)
	keep("h-inbox", true)
	settle("h-inbox", payment.NotifyInbox, true)
	keep("h-held", true)
	keep("h-held", false) // a second copy Temporal did not take: the first is held
	settle("h-held", payment.NotifyInbox, false)
	if err := s.MarkExamined(ctx, []payment.Notification{note("h-examined", "HAND000001")}); err != nil {
		t.Fatal(err)
	}
	keep("h-examined", false) // the workflow got there first

	got := map[string]payment.NotificationRecord{}
	for _, n := range getOrder(t, s, "HAND000001").Notifications {
		got[n.ID] = n
	}
	for _, c := range []struct {
		id, outcome, inbox string
		count              int
		examined           bool
	}{
		{"h-recorded", "recorded", "", 2, false},
		{"h-paid", "already_paid", "", 1, true},
		{"h-again", "recorded_again", "", 1, false},
		{"h-inbox", "inbox", "pending", 1, false},
		{"h-held", "recorded", "", 2, false},
		{"h-examined", "recorded", "", 1, true},
	} {
		n := got[c.id]
		if n.Outcome != c.outcome || n.InboxState != c.inbox || n.ReceivedCount != c.count || (n.ExaminedAt != nil) != c.examined {
			t.Errorf("%s: outcome %q, inbox %q, count %d, examined %v; want %q, %q, %d, %v",
				c.id, n.Outcome, n.InboxState, n.ReceivedCount, n.ExaminedAt != nil, c.outcome, c.inbox, c.count, c.examined)
		}
	}
	// The row made an inbox entry is the relay's.
	rows, err := s.InboxRows(ctx, "pending", 10)
	if err != nil || len(rows) != 1 || rows[0].ID != "h-inbox" {
		t.Fatalf("pending inbox rows = %+v, %v; want h-inbox", rows, err)
	}
	if err := s.SettleHandOver(ctx, note("h-none", "HAND000001"), payment.NotifyInbox, true); !errors.Is(err, ErrNotFound) {
		t.Fatalf("settling a row never kept: %v, want ErrNotFound", err)
	}
}
