package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payflow/payflow/payment"
)

const testMch = "1230000109"

// paidOrder creates an order of amount fen paid by transaction "tx-"+no.
func paidOrder(t *testing.T, s *Store, no string, amount int64) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.CreateOrder(ctx, NewOrder{OutTradeNo: no, AmountFen: amount, Description: "coffee"}); err != nil {
		t.Fatal(err)
	}
	if out, err := s.MarkPaid(ctx, MarkPaidParams{OutTradeNo: no, TransactionID: "tx-" + no}); err != nil || out != OutcomePaid {
		t.Fatalf("mark paid %s: %v %v", no, out, err)
	}
}

func apiRefund(no, refundNo string, amount int64) AcceptRefundParams {
	return AcceptRefundParams{MchID: testMch, OutTradeNo: no, OutRefundNo: refundNo, AmountFen: amount,
		Reason: "customer asked", Source: payment.RefundSourceAPI}
}

func accept(t *testing.T, s *Store, p AcceptRefundParams) AcceptRefundResult {
	t.Helper()
	res, err := s.AcceptRefund(context.Background(), p)
	if err != nil {
		t.Fatalf("accept %s: %v", p.OutRefundNo, err)
	}
	return res
}

func mark(t *testing.T, s *Store, refundNo string, status payment.RefundStatus) MarkRefundResult {
	t.Helper()
	res, err := s.MarkRefund(context.Background(), MarkRefundParams{MchID: testMch, OutRefundNo: refundNo, Status: status,
		RefundID: "50000-" + refundNo, SuccessTime: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatalf("mark %s %s: %v", refundNo, status, err)
	}
	return res
}

// refundLogs returns the order's log rows written for refunds.
func refundLogs(t *testing.T, s *Store, no string) []payment.Log {
	t.Helper()
	var out []payment.Log
	for _, l := range getOrder(t, s, no).Logs {
		if strings.HasPrefix(l.Remarks, "refund ") {
			out = append(out, l)
		}
	}
	return out
}

func TestAcceptRefund(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	paidOrder(t, s, "order-r1", 1000)

	res := accept(t, s, apiRefund("order-r1", "R1", 300))
	r := res.Refund
	if !res.Created || res.LimitsExceeded || r.Status != payment.RefundProcessing || r.AmountFen != 300 || r.OutTradeNo != "order-r1" ||
		r.Source != payment.RefundSourceAPI || r.Reason != "customer asked" || r.RefundID != "" || r.SuccessTime != nil ||
		r.CreatedAt.IsZero() || r.CreatedAt.Location() != time.UTC {
		t.Fatalf("accepted %+v", res)
	}
	// The same request again: the same refund, not a second one.
	again := accept(t, s, apiRefund("order-r1", "R1", 300))
	if again.Created || again.Refund != r {
		t.Fatalf("repeat = %+v, want %+v", again, r)
	}
	// The acceptance that recorded a refund, run again (its workflow task
	// re-ran after the commit), is still the one that created it; another
	// acceptance of the same refund is a repeat.
	paidOrder(t, s, "order-r9", 1000)
	first := apiRefund("order-r9", "R9", 100)
	first.AcceptedBy = "run-1/refund/R9"
	if res := accept(t, s, first); !res.Created {
		t.Fatalf("first acceptance: %+v", res)
	}
	if res := accept(t, s, first); !res.Created {
		t.Errorf("the same acceptance run again: %+v, want Created", res)
	}
	other := first
	other.AcceptedBy = "run-2/refund/R9"
	if res := accept(t, s, other); res.Created {
		t.Errorf("another run's acceptance: %+v, want a repeat", res)
	}
	if res := accept(t, s, apiRefund("order-r9", "R9", 100)); res.Created {
		t.Errorf("an acceptance with no name: %+v, want a repeat", res)
	}
	// Another amount or order under that number: a conflict, nothing changes.
	paidOrder(t, s, "order-r2", 1000)
	for _, p := range []AcceptRefundParams{apiRefund("order-r1", "R1", 301), apiRefund("order-r2", "R1", 300)} {
		if _, err := s.AcceptRefund(ctx, p); !errors.Is(err, ErrRefundConflict) {
			t.Errorf("%+v: %v, want ErrRefundConflict", p, err)
		}
	}
	// What is left: 700.
	if _, err := s.AcceptRefund(ctx, apiRefund("order-r1", "R2", 701)); !errors.Is(err, ErrExceedsPaid) {
		t.Errorf("701 of 700 left: %v, want ErrExceedsPaid", err)
	}
	accept(t, s, apiRefund("order-r1", "R2", 700))
	if _, err := s.AcceptRefund(ctx, apiRefund("order-r1", "R3", 1)); !errors.Is(err, ErrExceedsPaid) {
		t.Errorf("1 of 0 left: %v, want ErrExceedsPaid", err)
	}
	o := getOrder(t, s, "order-r1")
	if len(o.Refunds) != 2 || o.Refunds[0].OutRefundNo != "R1" || o.Refunds[1].OutRefundNo != "R2" || o.RefundedFen != 0 ||
		o.Status != payment.StatusPaid {
		t.Fatalf("order %+v", o)
	}
	if len(refundLogs(t, s, "order-r1")) != 0 {
		t.Errorf("accepting wrote a log row; only outcomes do")
	}

	// A CLOSED or FAILED refund gives its amount back.
	mark(t, s, "R2", payment.RefundClosed)
	accept(t, s, apiRefund("order-r1", "R3", 700))
	if _, err := s.MarkRefund(ctx, MarkRefundParams{MchID: testMch, OutRefundNo: "R3", Status: payment.RefundFailed,
		Detail: "USER_ACCOUNT_ABNORMAL: 退款请求失败"}); err != nil {
		t.Fatal(err)
	}
	accept(t, s, apiRefund("order-r1", "R4", 700))
	// A repeat of a CLOSED refund is that refund, not a new one.
	if again := accept(t, s, apiRefund("order-r1", "R2", 700)); again.Created || again.Refund.Status != payment.RefundClosed {
		t.Errorf("repeat of a closed refund: %+v", again)
	}

	// Bad input changes nothing.
	for name, p := range map[string]AcceptRefundParams{
		"no mch_id":          {OutTradeNo: "order-r2", OutRefundNo: "X1", AmountFen: 1, Source: payment.RefundSourceAPI},
		"bad out_refund_no":  apiRefund("order-r2", "X 1", 1),
		"long out_refund_no": apiRefund("order-r2", strings.Repeat("9", 65), 1),
		"zero amount":        apiRefund("order-r2", "X1", 0),
		"no source":          {MchID: testMch, OutTradeNo: "order-r2", OutRefundNo: "X1", AmountFen: 1},
		"api with status":    {MchID: testMch, OutTradeNo: "order-r2", OutRefundNo: "X1", AmountFen: 1, Source: payment.RefundSourceAPI, Status: payment.RefundSuccess},
		"api with refund_id": {MchID: testMch, OutTradeNo: "order-r2", OutRefundNo: "X1", AmountFen: 1, Source: payment.RefundSourceAPI, RefundID: "5000"},
		"unknown status":     {MchID: testMch, OutTradeNo: "order-r2", OutRefundNo: "X1", AmountFen: 1, Source: payment.RefundSourcePortal, Status: "DONE"},
	} {
		if _, err := s.AcceptRefund(ctx, p); !errors.Is(err, ErrInvalidRefund) {
			t.Errorf("%s: %v, want ErrInvalidRefund", name, err)
		}
	}
	if _, err := s.AcceptRefund(ctx, apiRefund("no-such-order", "X2", 1)); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown order: %v, want ErrNotFound", err)
	}
	if o := getOrder(t, s, "order-r2"); len(o.Refunds) != 0 {
		t.Errorf("refused refunds were recorded: %+v", o.Refunds)
	}
}

func TestAcceptRefundNeedsAPayment(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	createOrder(t, s, "order-pending")
	paidOrder(t, s, "order-closed", 100)
	if _, err := s.pool.Exec(ctx, `UPDATE orders SET status = 'CLOSED', transaction_id = NULL, paid_at = NULL, paid_fen = NULL
		WHERE out_trade_no = 'order-closed'`); err != nil {
		t.Fatal(err)
	}
	createOrder(t, s, "order-review-unpaid")
	if _, err := s.MarkReview(ctx, MarkReviewParams{OutTradeNo: "order-review-unpaid", Reason: "unknown trade state for too long", Key: "review:unknown"}); err != nil {
		t.Fatal(err)
	}
	for _, no := range []string{"order-pending", "order-closed", "order-review-unpaid"} {
		if _, err := s.AcceptRefund(ctx, apiRefund(no, "R-"+no, 1)); !errors.Is(err, ErrNotRefundable) {
			t.Errorf("%s: %v, want ErrNotRefundable", no, err)
		}
	}

	// REVIEW with a transaction (say one the bill does not have) can be refunded.
	paidOrder(t, s, "order-review", 500)
	if out, err := s.MarkReview(ctx, MarkReviewParams{OutTradeNo: "order-review", Reason: "not in the bill", Key: "review:bill",
		AllowFromPaid: true}); err != nil || !out.Changed {
		t.Fatal(err)
	}
	accept(t, s, apiRefund("order-review", "RV1", 200))
	accept(t, s, apiRefund("order-review", "RV2", 300))
	mark(t, s, "RV1", payment.RefundSuccess)
	res := mark(t, s, "RV2", payment.RefundSuccess)
	if res.OrderFrom != payment.StatusReview || res.OrderTo != payment.StatusRefunded {
		t.Fatalf("fully refunded REVIEW order: %+v, want REVIEW → REFUNDED", res)
	}
	// REFUNDED: nothing left.
	if _, err := s.AcceptRefund(ctx, apiRefund("order-review", "RV3", 1)); !errors.Is(err, ErrNotRefundable) {
		t.Errorf("refunded order: %v, want ErrNotRefundable", err)
	}
	// Repeating an accepted refund still answers it, whatever the order's status.
	if again := accept(t, s, apiRefund("order-review", "RV2", 300)); again.Created || again.Refund.Status != payment.RefundSuccess {
		t.Errorf("repeat on a refunded order: %+v", again)
	}
}

func TestMarkRefundSuccessAndRefunded(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	paidOrder(t, s, "order-m1", 1234)
	accept(t, s, apiRefund("order-m1", "M1", 1000))
	accept(t, s, apiRefund("order-m1", "M2", 234))

	success := time.Date(2026, 11, 26, 18, 0, 1, 0, time.FixedZone("CST", 8*3600))
	p := MarkRefundParams{MchID: testMch, OutRefundNo: "M1", Status: payment.RefundSuccess, RefundID: "50000408942018111907145868882", SuccessTime: success}
	var first MarkRefundResult
	for i := range 3 { // however often WeChat's answer is applied
		res, err := s.MarkRefund(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = res
		}
		if res.Changed != (i == 0) || res.OrderFrom != payment.StatusPaid || res.OrderTo != payment.StatusPaid ||
			res.Refund.Status != payment.RefundSuccess || !res.Refund.SuccessTime.Equal(success) ||
			res.Refund.RefundID != "50000408942018111907145868882" {
			t.Fatalf("mark %d: %+v", i, res)
		}
	}
	o := getOrder(t, s, "order-m1")
	if o.RefundedFen != 1000 || o.Status != payment.StatusPaid {
		t.Fatalf("partial refund: refunded %d, status %s", o.RefundedFen, o.Status)
	}
	logs := refundLogs(t, s, "order-m1")
	if len(logs) != 1 || logs[0].FromStatus != payment.StatusPaid || logs[0].ToStatus != payment.StatusPaid ||
		logs[0].Remarks != "refund M1 ¥10.00 SUCCESS (refund_id 50000408942018111907145868882)" {
		t.Fatalf("logs %+v", logs)
	}
	// A final status never changes.
	if res, err := s.MarkRefund(ctx, MarkRefundParams{MchID: testMch, OutRefundNo: "M1", Status: payment.RefundClosed}); err != nil ||
		res.Changed || res.Refund.Status != payment.RefundSuccess || !res.Refund.UpdatedAt.Equal(first.Refund.UpdatedAt) {
		t.Fatalf("CLOSED after SUCCESS: %+v %v", res, err)
	}

	// ABNORMAL is shown and logged, then may still succeed.
	ab := MarkRefundParams{MchID: testMch, OutRefundNo: "M2", Status: payment.RefundAbnormal, Detail: "the payer's card was cancelled"}
	for i := range 2 {
		res, err := s.MarkRefund(ctx, ab)
		if err != nil || res.Changed != (i == 0) || res.Refund.Status != payment.RefundAbnormal || res.Refund.Detail != ab.Detail {
			t.Fatalf("abnormal %d: %+v %v", i, res, err)
		}
	}
	if o := getOrder(t, s, "order-m1"); o.RefundedFen != 1000 || o.Status != payment.StatusPaid {
		t.Fatalf("after ABNORMAL: %+v", o)
	}
	// PROCESSING (WeChat still working on it) changes nothing.
	if res, err := s.MarkRefund(ctx, MarkRefundParams{MchID: testMch, OutRefundNo: "M2", Status: payment.RefundProcessing}); err != nil ||
		res.Changed || res.Refund.Status != payment.RefundAbnormal {
		t.Fatalf("PROCESSING: %+v %v", res, err)
	}
	var res MarkRefundResult
	for range 2 {
		res = mark(t, s, "M2", payment.RefundSuccess)
	}
	if res.Changed || res.OrderTo != payment.StatusRefunded {
		t.Fatalf("second SUCCESS of M2: %+v", res)
	}
	o = getOrder(t, s, "order-m1")
	if o.Status != payment.StatusRefunded || o.RefundedFen != 1234 {
		t.Fatalf("fully refunded: %s %d", o.Status, o.RefundedFen)
	}
	logs = refundLogs(t, s, "order-m1")
	want := []payment.Log{
		{FromStatus: payment.StatusPaid, ToStatus: payment.StatusPaid, Remarks: "refund M1 ¥10.00 SUCCESS (refund_id 50000408942018111907145868882)"},
		{FromStatus: payment.StatusPaid, ToStatus: payment.StatusPaid, Remarks: "refund M2 ¥2.34 ABNORMAL: the payer's card was cancelled"},
		{FromStatus: payment.StatusPaid, ToStatus: payment.StatusRefunded, Remarks: "refund M2 ¥2.34 SUCCESS (refund_id 50000-M2)"},
	}
	if len(logs) != len(want) {
		t.Fatalf("logs %+v", logs)
	}
	for i := range want {
		if logs[i].FromStatus != want[i].FromStatus || logs[i].ToStatus != want[i].ToStatus || logs[i].Remarks != want[i].Remarks {
			t.Errorf("log %d = %+v, want %+v", i, logs[i], want[i])
		}
	}
	if open, err := s.OpenRefunds(ctx, testMch, "order-m1"); err != nil || len(open) != 0 {
		t.Errorf("open refunds %+v %v", open, err)
	}

	if _, err := s.MarkRefund(ctx, MarkRefundParams{MchID: testMch, OutRefundNo: "nope", Status: payment.RefundSuccess}); !errors.Is(err, ErrRefundNotFound) ||
		!errors.Is(err, ErrNotFound) {
		t.Errorf("unknown refund: %v", err)
	}
	if _, err := s.MarkRefund(ctx, MarkRefundParams{MchID: testMch, OutRefundNo: "M1", Status: "DONE"}); !errors.Is(err, ErrInvalidRefund) {
		t.Errorf("unknown status: %v", err)
	}
}

func TestMarkRefundConcurrent(t *testing.T) {
	s := newStore(t)
	paidOrder(t, s, "order-mc", 100)
	accept(t, s, apiRefund("order-mc", "MC1", 100))
	var (
		wg      sync.WaitGroup
		changed = make(chan bool, 10)
	)
	for range 10 {
		wg.Go(func() {
			res, err := s.MarkRefund(context.Background(), MarkRefundParams{MchID: testMch, OutRefundNo: "MC1", Status: payment.RefundSuccess})
			if err != nil {
				t.Error(err)
			}
			changed <- res.Changed
		})
	}
	wg.Wait()
	close(changed)
	n := 0
	for c := range changed {
		if c {
			n++
		}
	}
	o := getOrder(t, s, "order-mc")
	if n != 1 || o.Status != payment.StatusRefunded || o.RefundedFen != 100 || len(refundLogs(t, s, "order-mc")) != 1 {
		t.Fatalf("%d changes, order %s refunded %d, logs %+v", n, o.Status, o.RefundedFen, refundLogs(t, s, "order-mc"))
	}
}

// Twenty callers race for what is left of an order: exactly the refunds
// that fit are accepted, the others are refused with a typed error.
func TestAcceptRefundRace(t *testing.T) {
	s := newStore(t)
	paidOrder(t, s, "order-race", 1000)
	accept(t, s, apiRefund("order-race", "RACE-0", 990)) // 10 fen left
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		accepted int
		refused  int
	)
	for i := range 20 {
		wg.Go(func() {
			_, err := s.AcceptRefund(context.Background(), apiRefund("order-race", fmt.Sprintf("RACE-%d", i+1), 1))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				accepted++
			case errors.Is(err, ErrExceedsPaid):
				refused++
			default:
				t.Errorf("refund %d: %v", i+1, err)
			}
		})
	}
	wg.Wait()
	if accepted != 10 || refused != 10 {
		t.Fatalf("%d accepted, %d refused; want 10 and 10", accepted, refused)
	}
	var sum int64
	for _, r := range getOrder(t, s, "order-race").Refunds {
		sum += r.AmountFen
	}
	if sum != 1000 {
		t.Fatalf("refunds add up to %d of 1000 paid", sum)
	}

	// The last fen, twenty times over, each caller under its own number.
	paidOrder(t, s, "order-last", 1)
	var wins int
	for i := range 20 {
		wg.Go(func() {
			_, err := s.AcceptRefund(context.Background(), apiRefund("order-last", fmt.Sprintf("LAST-%d", i), 1))
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				wins++
			} else if !errors.Is(err, ErrExceedsPaid) {
				t.Errorf("last fen %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if o := getOrder(t, s, "order-last"); wins != 1 || len(o.Refunds) != 1 {
		t.Fatalf("%d callers won the last fen; %d refunds", wins, len(o.Refunds))
	}

	// And one number, twenty times over: one refund.
	paidOrder(t, s, "order-same", 100)
	var created int
	for range 20 {
		wg.Go(func() {
			res, err := s.AcceptRefund(context.Background(), apiRefund("order-same", "SAME", 100))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Error(err)
			} else if res.Created {
				created++
			}
		})
	}
	wg.Wait()
	if o := getOrder(t, s, "order-same"); created != 1 || len(o.Refunds) != 1 {
		t.Fatalf("%d created, %d refunds", created, len(o.Refunds))
	}
}

func TestFiftyRefunds(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	paidOrder(t, s, "order-50", 1000)
	for i := range MaxRefundsPerOrder {
		accept(t, s, apiRefund("order-50", fmt.Sprintf("F%d", i), 1))
	}
	// A failed refund still counts: WeChat counts requests, not successes.
	mark(t, s, "F0", payment.RefundFailed)
	if _, err := s.AcceptRefund(ctx, apiRefund("order-50", "F50", 1)); !errors.Is(err, ErrTooManyRefunds) {
		t.Fatalf("51st refund: %v, want ErrTooManyRefunds", err)
	}
	// A repeat of one of the fifty is still fine.
	if res := accept(t, s, apiRefund("order-50", "F49", 1)); res.Created {
		t.Errorf("repeat created a refund")
	}
	// A portal refund is recorded anyway, flagged.
	res := accept(t, s, AcceptRefundParams{MchID: testMch, OutTradeNo: "order-50", OutRefundNo: "F50", AmountFen: 1,
		Source: payment.RefundSourcePortal, RefundID: "50000-F50"})
	if !res.Created || !res.LimitsExceeded || res.Refund.Source != payment.RefundSourcePortal || res.Refund.RefundID != "50000-F50" {
		t.Fatalf("portal refund beyond 50: %+v", res)
	}
}

func TestPortalRefund(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	paidOrder(t, s, "order-p1", 500)
	portal := func(no, refundNo string, amount int64, status payment.RefundStatus) AcceptRefundParams {
		return AcceptRefundParams{MchID: testMch, OutTradeNo: no, OutRefundNo: refundNo, AmountFen: amount,
			Source: payment.RefundSourcePortal, RefundID: "50000-" + refundNo, Status: status,
			SuccessTime: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)}
	}
	// Known to be PROCESSING: recorded as such, nothing logged.
	res := accept(t, s, portal("order-p1", "P1", 100, ""))
	if !res.Created || res.LimitsExceeded || res.StatusChanged || res.Refund.Status != payment.RefundProcessing || res.OrderTo != "" {
		t.Fatalf("portal PROCESSING: %+v", res)
	}
	// Told again, now ABNORMAL: applied to the refund recorded before, once.
	for i := range 2 {
		res = accept(t, s, portal("order-p1", "P1", 100, payment.RefundAbnormal))
		if res.Created || res.StatusChanged != (i == 0) || res.Refund.Status != payment.RefundAbnormal {
			t.Fatalf("portal news %d: %+v", i, res)
		}
	}
	// Known SUCCESS (confirmed by a query): applied in the same transaction.
	res = accept(t, s, portal("order-p1", "P2", 400, payment.RefundSuccess))
	if !res.Created || res.Refund.Status != payment.RefundSuccess || res.Refund.SuccessTime == nil ||
		res.OrderFrom != payment.StatusPaid || res.OrderTo != payment.StatusPaid {
		t.Fatalf("portal SUCCESS: %+v", res)
	}
	if _, err := s.AcceptRefund(ctx, portal("order-p1", "P2", 400, payment.RefundSuccess)); err != nil {
		t.Fatal(err)
	}
	res2 := mark(t, s, "P1", payment.RefundSuccess)
	if res2.OrderTo != payment.StatusRefunded {
		t.Fatalf("P1: %+v", res2)
	}
	logs := refundLogs(t, s, "order-p1")
	if len(logs) != 3 || logs[1].Remarks != "refund P2 ¥4.00 SUCCESS (refund_id 50000-P2) from the merchant portal" {
		t.Fatalf("logs %+v", logs)
	}

	// A portal refund of an order we never saw paid: recorded, flagged;
	// its SUCCESS cannot count against a payment we do not know, so the
	// order goes to REVIEW and refunded_fen stays within what was paid.
	createOrder(t, s, "order-p2")
	res = accept(t, s, portal("order-p2", "P3", 1234, payment.RefundSuccess))
	if !res.LimitsExceeded || res.Refund.Status != payment.RefundSuccess || res.OrderFrom != payment.StatusPending ||
		res.OrderTo != payment.StatusReview {
		t.Fatalf("portal refund of a PENDING order: %+v", res)
	}
	o := getOrder(t, s, "order-p2")
	if o.Status != payment.StatusReview || o.RefundedFen != 0 {
		t.Fatalf("order %+v", o)
	}
	// An ABNORMAL portal refund beyond what is left: flagged, logged.
	paidOrder(t, s, "order-p3", 100)
	res = accept(t, s, portal("order-p3", "P4", 101, payment.RefundAbnormal))
	if !res.LimitsExceeded || res.Refund.Status != payment.RefundAbnormal || len(refundLogs(t, s, "order-p3")) != 1 {
		t.Fatalf("portal ABNORMAL: %+v", res)
	}
	// Its SUCCESS would exceed the payment: REVIEW.
	if r := mark(t, s, "P4", payment.RefundSuccess); !r.Exceeded || r.OrderTo != payment.StatusReview {
		t.Fatalf("exceeding SUCCESS: %+v", r)
	}
	if o := getOrder(t, s, "order-p3"); o.RefundedFen != 0 || o.Status != payment.StatusReview {
		t.Fatalf("order %+v", o)
	}
	// A refund_id another refund holds is a conflict.
	if _, err := s.AcceptRefund(ctx, AcceptRefundParams{MchID: testMch, OutTradeNo: "order-p1", OutRefundNo: "P5", AmountFen: 1,
		Source: payment.RefundSourcePortal, RefundID: "50000-P1"}); !errors.Is(err, ErrRefundConflict) {
		t.Errorf("duplicate refund_id: %v", err)
	}
}

func TestRefundAccepted(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	paidOrder(t, s, "order-a1", 100)
	accept(t, s, apiRefund("order-a1", "A1", 50))
	accept(t, s, apiRefund("order-a1", "A2", 50))
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	for range 2 {
		if err := s.RefundAccepted(ctx, testMch, "A1", "50000-A1", at); err != nil {
			t.Fatal(err)
		}
	}
	r, err := s.GetRefund(ctx, testMch, "order-a1", "A1")
	if err != nil || r.RefundID != "50000-A1" || r.Status != payment.RefundProcessing {
		t.Fatalf("accepted: %+v %v", r, err)
	}
	var acceptedAt time.Time
	if err := s.pool.QueryRow(ctx, `SELECT accepted_at FROM refunds WHERE out_refund_no = 'A1'`).Scan(&acceptedAt); err != nil || !acceptedAt.Equal(at) {
		t.Fatalf("accepted_at %v %v", acceptedAt, err)
	}
	if err := s.RefundAccepted(ctx, testMch, "A1", "50000-other", at); !errors.Is(err, ErrRefundConflict) {
		t.Errorf("another refund_id: %v", err)
	}
	if err := s.RefundAccepted(ctx, testMch, "A2", "50000-A1", at); !errors.Is(err, ErrRefundConflict) {
		t.Errorf("refund_id of another refund: %v", err)
	}
	if err := s.RefundAccepted(ctx, testMch, "A2", "", time.Time{}); err != nil {
		t.Errorf("accepted without an id: %v", err)
	}
	if err := s.RefundAccepted(ctx, testMch, "nope", "1", at); !errors.Is(err, ErrRefundNotFound) {
		t.Errorf("unknown: %v", err)
	}
}

func TestRefundsByMerchant(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	paidOrder(t, s, "order-mch-a", 100)
	paidOrder(t, s, "order-mch-b", 100)
	// The same out_refund_no under two merchants: two refunds.
	accept(t, s, apiRefund("order-mch-a", "SHARED", 40))
	other := apiRefund("order-mch-b", "SHARED", 60)
	other.MchID = "1900000109"
	if res := accept(t, s, other); !res.Created {
		t.Fatalf("other merchant: %+v", res)
	}
	if _, err := s.GetRefund(ctx, testMch, "order-mch-b", "SHARED"); !errors.Is(err, ErrNotFound) {
		t.Errorf("other merchant's refund through ours: %v", err)
	}
	if _, err := s.GetRefund(ctx, testMch, "order-mch-b", "nope"); !errors.Is(err, ErrRefundNotFound) {
		t.Errorf("unknown: %v", err)
	}
	r, err := s.GetRefund(ctx, "1900000109", "order-mch-b", "SHARED")
	if err != nil || r.AmountFen != 60 {
		t.Fatalf("other merchant's refund: %+v %v", r, err)
	}
	if res, err := s.MarkRefund(ctx, MarkRefundParams{MchID: "1900000109", OutRefundNo: "SHARED", Status: payment.RefundSuccess}); err != nil || !res.Changed {
		t.Fatalf("mark other: %+v %v", res, err)
	}
	if r, _ := s.GetRefund(ctx, testMch, "order-mch-a", "SHARED"); r.Status != payment.RefundProcessing {
		t.Errorf("ours changed with theirs: %+v", r)
	}
	if nos, err := s.OrdersWithOpenRefunds(ctx, testMch, "", 10, time.Now()); err != nil || len(nos) != 1 || nos[0].OutTradeNo != "order-mch-a" {
		t.Errorf("ours open: %v %v", nos, err)
	}
	if nos, err := s.OrdersWithOpenRefunds(ctx, "1900000109", "", 10, time.Now()); err != nil || len(nos) != 0 {
		t.Errorf("theirs open: %v %v", nos, err)
	}
}

func TestOpenRefunds(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for _, no := range []string{"order-o3", "order-o1", "order-o2", "order-o4"} {
		paidOrder(t, s, no, 100)
	}
	accept(t, s, apiRefund("order-o1", "O1a", 10))
	accept(t, s, apiRefund("order-o1", "O1b", 10))
	accept(t, s, apiRefund("order-o1", "O1c", 10))
	accept(t, s, apiRefund("order-o2", "O2", 10))
	accept(t, s, apiRefund("order-o3", "O3", 10))
	accept(t, s, apiRefund("order-o4", "O4", 10))
	mark(t, s, "O1a", payment.RefundSuccess)
	mark(t, s, "O1b", payment.RefundAbnormal)
	mark(t, s, "O2", payment.RefundClosed)
	mark(t, s, "O4", payment.RefundProcessing) // WeChat took it: it has a refund_id

	open, err := s.OpenRefunds(ctx, testMch, "order-o1")
	if err != nil || len(open) != 2 || open[0].OutRefundNo != "O1b" || open[1].OutRefundNo != "O1c" {
		t.Fatalf("open refunds of order-o1: %+v %v", open, err)
	}
	if open, err := s.OpenRefunds(ctx, testMch, "order-o2"); err != nil || open == nil || len(open) != 0 {
		t.Fatalf("open refunds of order-o2: %+v %v", open, err)
	}
	// Pages of orders, each saying whether it has an open refund WeChat
	// has not taken, recorded before the cut-off.
	pages := func(untakenBefore time.Time) string {
		var out [][]OpenRefundOrder
		after := ""
		for {
			orders, err := s.OrdersWithOpenRefunds(ctx, testMch, after, 2, untakenBefore)
			if err != nil {
				t.Fatal(err)
			}
			if len(orders) == 0 {
				return fmt.Sprint(out)
			}
			out = append(out, orders)
			after = orders[len(orders)-1].OutTradeNo
		}
	}
	// order-o1: O1c not taken (O1b, ABNORMAL, was); order-o3: O3 not
	// taken; order-o4: O4 taken.
	if got := pages(time.Now().Add(time.Minute)); got != "[[{order-o1 true} {order-o3 true}] [{order-o4 false}]]" {
		t.Fatalf("pages %v", got)
	}
	// Refunds recorded after the cut-off are left to the run accepting them.
	if got := pages(time.Now().Add(-time.Hour)); got != "[[{order-o1 false} {order-o3 false}] [{order-o4 false}]]" {
		t.Fatalf("pages with an earlier cut-off %v", got)
	}
	if _, err := s.OrdersWithOpenRefunds(ctx, testMch, "", 0, time.Now()); err == nil {
		t.Error("limit 0 accepted")
	}

	st, err := s.OpenRefundStats(ctx, testMch)
	if err != nil || st.Processing != 3 || st.Abnormal != 1 || st.OldestProcessing.IsZero() || time.Since(st.OldestProcessing) > time.Minute {
		t.Fatalf("stats %+v %v", st, err)
	}
	if st, err := s.OpenRefundStats(ctx, "1900000109"); err != nil || st != (OpenRefundStats{}) {
		t.Fatalf("other merchant's stats %+v %v", st, err)
	}
}

// A REVIEW order whose payment is recorded (paid_fen) but not its
// transaction cannot become REFUNDED (the schema says a REFUNDED order has
// one); its refunds still count and it stays in REVIEW.
func TestRefundedNeedsATransaction(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	createOrder(t, s, "order-notx")
	if _, err := s.pool.Exec(ctx, `UPDATE orders SET status = 'REVIEW', paid_fen = 1234 WHERE out_trade_no = 'order-notx'`); err != nil {
		t.Fatal(err)
	}
	accept(t, s, apiRefund("order-notx", "NT1", 1234))
	res := mark(t, s, "NT1", payment.RefundSuccess)
	if res.OrderTo != payment.StatusReview || res.Exceeded {
		t.Fatalf("%+v", res)
	}
	if o := getOrder(t, s, "order-notx"); o.RefundedFen != 1234 || o.Status != payment.StatusReview {
		t.Fatalf("order %+v", o)
	}
}

func TestYuan(t *testing.T) {
	for fen, want := range map[int64]string{0: "¥0.00", 1: "¥0.01", 1234: "¥12.34", 100: "¥1.00", -5: "-¥0.05"} {
		if got := yuan(fen); got != want {
			t.Errorf("yuan(%d) = %s, want %s", fen, got, want)
		}
	}
}

// A payment after close goes to REVIEW with its transaction; refunding all
// of it settles the order: REVIEW → REFUNDED.
func TestPaidAfterCloseSettledByRefund(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	createOrder(t, s, "order-pac") // 1234 fen
	if _, err := s.MarkClosed(ctx, "order-pac", "expired", "closed:expired"); err != nil {
		t.Fatal(err)
	}
	if out, err := s.MarkPaid(ctx, MarkPaidParams{OutTradeNo: "order-pac", TransactionID: "tx-pac", PaidFen: 1234}); err != nil || out != OutcomeReview {
		t.Fatalf("paid after close: %v %v", out, err)
	}
	accept(t, s, apiRefund("order-pac", "PAC-1", 1234))
	if _, err := s.AcceptRefund(ctx, apiRefund("order-pac", "PAC-2", 1)); !errors.Is(err, ErrExceedsPaid) {
		t.Errorf("beyond the payment: %v", err)
	}
	res := mark(t, s, "PAC-1", payment.RefundSuccess)
	if res.OrderFrom != payment.StatusReview || res.OrderTo != payment.StatusRefunded {
		t.Fatalf("%+v", res)
	}
	o := getOrder(t, s, "order-pac")
	last := o.Logs[len(o.Logs)-1]
	if o.Status != payment.StatusRefunded || o.RefundedFen != 1234 || last.FromStatus != payment.StatusReview ||
		last.ToStatus != payment.StatusRefunded || !strings.Contains(last.Remarks, "refund PAC-1 ¥12.34 SUCCESS") {
		t.Fatalf("order %s %d, last log %+v", o.Status, o.RefundedFen, last)
	}
}
