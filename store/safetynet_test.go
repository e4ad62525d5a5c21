package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/payflow/payflow/payment"
)

// The safety net's pages: acknowledged notifications not examined, oldest
// first, after a cursor (and their count in a window, the api's backlog);
// PENDING orders by out_trade_no after a cursor.
func TestSafetyNetPages(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	createOrder(t, s, "NET0000001")
	var ids []string
	for i := range 5 {
		n := payment.Notification{ID: fmt.Sprintf("v2:net%d", i), Source: payment.SourceV2, OutTradeNo: "NET0000001",
			TransactionID: "tx", AmountFen: 1, ReceivedAt: time.Now().Add(time.Duration(i-10) * time.Second)}
		if _, err := s.KeepHandingOver(ctx, n); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, n.ID)
	}
	// One examined, one pending in the inbox (the relay's), one of another kind.
	if err := s.MarkExamined(ctx, []payment.Notification{{ID: ids[1], OutTradeNo: "NET0000001"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.EnqueueNotification(ctx, payment.Notification{ID: "v2:queued", OutTradeNo: "NET0000001", ReceivedAt: time.Now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	// Not examined, so only its kind keeps it off the pages.
	if _, err := s.KeepHandingOver(ctx, payment.Notification{ID: "v3:other", Kind: payment.KindOther, ReceivedAt: time.Now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	var got []string
	cur := NotificationCursor{}
	for {
		page, next, err := s.UnexaminedNotifications(ctx, time.Now(), cur, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range page {
			got = append(got, n.ID)
		}
		if len(page) < 2 {
			break
		}
		cur = next
	}
	want := []string{ids[0], ids[2], ids[3], ids[4]}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("unexamined pages = %v, want %v", got, want)
	}
	if page, _, _ := s.UnexaminedNotifications(ctx, time.Now().Add(-time.Hour), NotificationCursor{}, 10); len(page) != 0 {
		t.Fatalf("grace ignored: %v", page)
	}
	// The api's backpressure counts the same rows, received in a window:
	// ids 0, 2, 3, 4 were received 10, 8, 7 and 6 s ago.
	now := time.Now()
	for _, c := range []struct {
		from, to time.Duration
		want     int
	}{{-2 * time.Minute, 0, 4}, {-2 * time.Minute, -7500 * time.Millisecond, 2}, {-9500 * time.Millisecond, 0, 3}, {-5 * time.Second, 0, 0}} {
		got, err := s.NotificationBacklog(ctx, now.Add(c.from), now.Add(c.to))
		if err != nil || got != c.want {
			t.Errorf("NotificationBacklog(now%v, now%v) = %d, %v; want %d", c.from, c.to, got, err, c.want)
		}
	}

	for i := range 5 {
		createOrder(t, s, fmt.Sprintf("NETPEND%03d", i))
	}
	expires := time.Now().Add(time.Hour).Truncate(time.Microsecond)
	if _, err := s.CreateOrder(ctx, NewOrder{OutTradeNo: "NETPEND005", AmountFen: 1, Description: "expires", ExpiresAt: expires}); err != nil {
		t.Fatal(err)
	}
	var orders []string
	after := ""
	for {
		page, err := s.PendingOrdersAfter(ctx, time.Now().Add(time.Minute), after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page {
			orders = append(orders, o.OutTradeNo)
			if got, want := o.ExpiresAt, o.OutTradeNo == "NETPEND005"; (got != nil) != want || want && !got.Equal(expires) {
				t.Errorf("%s expires at %v", o.OutTradeNo, got)
			}
		}
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1].OutTradeNo
	}
	if len(orders) != 7 || orders[0] != "NET0000001" || orders[6] != "NETPEND005" {
		t.Fatalf("pending pages = %v", orders)
	}
}
