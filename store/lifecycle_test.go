package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/payflow/payflow/payment"
)

func TestCreateWithLifecycleFields(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	exp := time.Now().Add(30 * time.Minute).UTC().Truncate(time.Second)
	o, err := s.CreateOrder(ctx, NewOrder{OutTradeNo: "LIFE000001", AmountFen: 100, TradeType: payment.TradeTypeJSAPI, OpenID: "oUser", ExpiresAt: exp})
	if err != nil {
		t.Fatal(err)
	}
	if o.TradeType != "JSAPI" || o.OpenID != "oUser" || o.ExpiresAt == nil || !o.ExpiresAt.Equal(exp) {
		t.Fatalf("created = %+v", o)
	}
	if o.Logs == nil || o.Notifications == nil || len(o.Notifications) != 0 {
		t.Fatalf("created order's lists must be empty, not nil (JSON [] not null): %#v %#v", o.Logs, o.Notifications)
	}
	got := getOrder(t, s, "LIFE000001")
	if got.ExpiresAt == nil || !got.ExpiresAt.Equal(exp) || got.CodeURL != "" || got.JSAPI != nil {
		t.Fatalf("got = %+v", got)
	}
}

func TestMarkClosed(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	createOrder(t, s, "CLOSE00001")
	for i := range 3 { // repeated: one CLOSED row
		want := OutcomeClosed
		if i > 0 {
			want = OutcomeAlreadyClosed
		}
		out, err := s.MarkClosed(ctx, "CLOSE00001", "expired", "closed")
		if err != nil || out != want {
			t.Fatalf("call %d: %v %v, want %v", i, out, err, want)
		}
	}
	o := getOrder(t, s, "CLOSE00001")
	if o.Status != payment.StatusClosed || len(o.Logs) != 2 || o.Logs[1].FromStatus != payment.StatusPending || o.Logs[1].Remarks != "expired" {
		t.Fatalf("order = %+v", o)
	}

	createOrder(t, s, "CLOSE00002")
	if _, err := s.MarkPaid(ctx, MarkPaidParams{OutTradeNo: "CLOSE00002", TransactionID: "tx-close-2"}); err != nil {
		t.Fatal(err)
	}
	if out, err := s.MarkClosed(ctx, "CLOSE00002", "expired", "closed"); err != nil || out != OutcomeClosedPaid {
		t.Fatalf("close a paid order: %v %v", out, err)
	}
	if o := getOrder(t, s, "CLOSE00002"); o.Status != payment.StatusPaid || len(o.Logs) != 2 {
		t.Fatalf("close changed a paid order: %+v", o)
	}
	if _, err := s.MarkClosed(ctx, "NOSUCHORDER", "x", "closed"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown order: %v", err)
	}
}

func TestPaidAfterCloseGoesToReview(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	createOrder(t, s, "CLOSE00003")
	if _, err := s.MarkClosed(ctx, "CLOSE00003", "expired", "closed"); err != nil {
		t.Fatal(err)
	}
	out, err := s.MarkPaid(ctx, MarkPaidParams{OutTradeNo: "CLOSE00003", TransactionID: "tx-late"})
	if err != nil || out != OutcomeReview {
		t.Fatalf("mark paid after close: %v %v", out, err)
	}
	// The order keeps the late transaction and what was paid: the money is
	// refunded against it.
	if o := getOrder(t, s, "CLOSE00003"); o.Status != payment.StatusReview || o.TransactionID != "tx-late" || o.PaidFen != o.AmountFen {
		t.Fatalf("order = %+v", o)
	}
}

func TestSavePrepayOnce(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	createOrder(t, s, "PREPAY0001")
	first := payment.Prepay{PrepayID: "wx1", CodeURL: "weixin://wxpay/bizpayurl?pr=1"}
	var wg sync.WaitGroup
	results := make([]payment.Prepay, 5)
	errs := make([]error, 5)
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := first
			if i > 0 {
				p.CodeURL = "weixin://wxpay/bizpayurl?pr=other" // a later answer never replaces the first
			}
			results[i], errs[i] = s.SavePrepay(ctx, "PREPAY0001", "hash-a", p)
		}()
	}
	wg.Wait()
	for i := range 5 {
		if errs[i] != nil || results[i] != results[0] {
			t.Fatalf("save %d: %+v %v (first %+v)", i, results[i], errs[i], results[0])
		}
	}
	if _, err := s.SavePrepay(ctx, "PREPAY0001", "hash-b", first); !errors.Is(err, ErrPrepayConflict) {
		t.Fatalf("other parameters: %v", err)
	}
	got, hash, found, err := s.GetPrepay(ctx, "PREPAY0001")
	if err != nil || !found || hash != "hash-a" || got != results[0] {
		t.Fatalf("get prepay = %+v %q %v %v", got, hash, found, err)
	}
	if o := getOrder(t, s, "PREPAY0001"); o.CodeURL != results[0].CodeURL {
		t.Fatalf("order code_url = %q", o.CodeURL)
	}
	if _, err := s.SavePrepay(ctx, "NOSUCHORDER", "h", first); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown order: %v", err)
	}
}

func TestPendingOrders(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	createOrder(t, s, "PEND000001")
	createOrder(t, s, "PEND000002")
	createOrder(t, s, "PEND000003")
	if _, err := s.MarkClosed(ctx, "PEND000002", "expired", "closed"); err != nil {
		t.Fatal(err)
	}
	got, err := s.PendingOrdersAfter(ctx, time.Now().Add(time.Minute), "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].OutTradeNo != "PEND000001" || got[1].OutTradeNo != "PEND000003" {
		t.Fatalf("pending = %+v", got)
	}
	if got, _ := s.PendingOrdersAfter(ctx, time.Now().Add(-time.Hour), "", 10); len(got) != 0 {
		t.Fatalf("created before an hour ago: %+v", got)
	}
	if got, _ := s.PendingOrdersAfter(ctx, time.Now().Add(time.Minute), "", 1); len(got) != 1 {
		t.Fatalf("limit 1: %+v", got)
	}
}

func TestOrderRowIsTheOrdersFields(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	if _, err := s.CreateOrder(ctx, NewOrder{OutTradeNo: "ROW0000001", AmountFen: 321, Description: "d",
		TradeType: payment.TradeTypeJSAPI, OpenID: "oUser", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MarkPaid(ctx, MarkPaidParams{OutTradeNo: "ROW0000001", TransactionID: "tx-row"}); err != nil {
		t.Fatal(err)
	}
	full := getOrder(t, s, "ROW0000001")
	row, err := s.OrderRow(ctx, "ROW0000001")
	if err != nil {
		t.Fatal(err)
	}
	full.Logs, full.Notifications = nil, nil
	if fmt.Sprintf("%+v", row) != fmt.Sprintf("%+v", full) || row.OpenID != "oUser" || row.Status != payment.StatusPaid {
		t.Fatalf("row  = %+v\nfull = %+v", row, full)
	}
	if _, err := s.OrderRow(ctx, "NOSUCHORDER"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown order: %v", err)
	}
}
