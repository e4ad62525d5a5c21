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
		if err := s.AuditNotification(ctx, note("n1", "AUDIT00001"), "recorded"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AuditNotification(ctx, note("n2", "AUDIT00001"), "already_paid"); err != nil {
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

	// A failing delivery (Temporal still down) keeps the rows pending.
	n, err := s.ClaimInbox(ctx, 50, func(payment.Notification) (string, error) { return "", errors.New("temporal unavailable") })
	if n != 0 || err == nil {
		t.Fatalf("failing claim = %d, %v", n, err)
	}

	// While a relay is stuck delivering (Temporal slow or down), another
	// copy of a claimed notification is still recorded at once: no lock is
	// held across the delivery.
	n, err = s.ClaimInbox(ctx, 1, func(x payment.Notification) (string, error) {
		qctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		if err := s.EnqueueNotification(qctx, x); err != nil {
			t.Errorf("recording a copy of a claimed notification: %v", err)
		}
		return "", errors.New("temporal unavailable")
	})
	if n != 0 || err == nil {
		t.Fatalf("stuck claim = %d, %v", n, err)
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
				n, err := s.ClaimInbox(ctx, 3, func(x payment.Notification) (string, error) {
					mu.Lock()
					seen[x.ID]++
					mu.Unlock()
					time.Sleep(5 * time.Millisecond)
					return "recorded", nil
				})
				if err != nil {
					t.Error(err)
					return
				}
				total.Add(int64(n))
				if n == 0 {
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
