package activities

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/store"
)

func TestVerifyPaymentActivity(t *testing.T) {
	e := newActEnv(t)
	e.order(t, "VP-ORDER01", 100, payment.StatusPending)
	trade := payment.Trade{OutTradeNo: "VP-ORDER01", TransactionID: "4200002", AppID: envAppID, MchID: refundMch,
		TradeState: "SUCCESS", AmountFen: 100, Currency: "CNY"}
	note := payment.Notification{ID: "N1", OutTradeNo: "VP-ORDER01", TransactionID: "4200002", AppID: envAppID, MchID: refundMch,
		AmountFen: 100, Currency: "CNY", ResultCode: "SUCCESS"}
	for _, tc := range []struct {
		name  string
		trade func(*payment.Trade)
		note  func(*payment.Notification) // nil: found by query, no notification
		want  []string
	}{
		{name: "all agree", note: func(*payment.Notification) {}},
		{name: "all agree, found by query"},
		{name: "currency left out means CNY", trade: func(t *payment.Trade) { t.Currency = "" }, note: func(n *payment.Notification) { n.Currency = "" }},
		{name: "ids left out of the query", trade: func(t *payment.Trade) { t.AppID, t.MchID, t.OutTradeNo = "", "", "" }},
		{name: "queried amount", trade: func(t *payment.Trade) { t.AmountFen = 99 },
			want: []string{"queried amount 99 fen != order amount 100 fen"}},
		{name: "queried currency", trade: func(t *payment.Trade) { t.Currency = "USD" },
			want: []string{"queried currency USD != order currency CNY"}},
		{name: "queried appid", trade: func(t *payment.Trade) { t.AppID = "wxother" }, want: []string{"queried appid wxother is not ours"}},
		{name: "queried mch_id", trade: func(t *payment.Trade) { t.MchID = "1900000999" }, want: []string{"queried mch_id 1900000999 is not ours"}},
		{name: "queried out_trade_no", trade: func(t *payment.Trade) { t.OutTradeNo = "VP-OTHER01" }, want: []string{"queried out_trade_no VP-OTHER01 != VP-ORDER01"}},
		{name: "notified amount", note: func(n *payment.Notification) { n.AmountFen = 1 },
			want: []string{"notified amount 1 fen != order amount 100 fen"}},
		{name: "notified currency", note: func(n *payment.Notification) { n.Currency = "HKD" },
			want: []string{"notified currency HKD != order currency CNY"}},
		{name: "notified appid", note: func(n *payment.Notification) { n.AppID = "" }, want: []string{"notified appid  is not ours"}},
		{name: "notified mch_id", note: func(n *payment.Notification) { n.MchID = "1900000999" }, want: []string{"notified mch_id 1900000999 is not ours"}},
		{name: "notified transaction", note: func(n *payment.Notification) { n.TransactionID = "4200009" },
			want: []string{"notified transaction 4200009 != queried transaction 4200002"}},
		{name: "several, in a fixed order", trade: func(t *payment.Trade) { t.AmountFen, t.MchID = 1, "x" },
			note: func(n *payment.Notification) { n.AmountFen = 2 },
			want: []string{"queried amount 1 fen != order amount 100 fen", "queried mch_id x is not ours", "notified amount 2 fen != order amount 100 fen"}},
	} {
		in := VerifyPaymentInput{OutTradeNo: "VP-ORDER01", Trade: trade}
		if tc.trade != nil {
			tc.trade(&in.Trade)
		}
		if tc.note != nil {
			n := note
			tc.note(&n)
			in.Notification = &n
		}
		var res VerifyPaymentResult
		if err := e.run(t, e.a.VerifyPayment, in, &res); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !res.OrderFound || res.OrderStatus != payment.StatusPending || res.OrderAmountFen != 100 || !slices.Equal(res.Mismatches, tc.want) {
			t.Errorf("%s: %+v, want mismatches %q", tc.name, res, tc.want)
		}
	}
	var res VerifyPaymentResult
	if err := e.run(t, e.a.VerifyPayment, VerifyPaymentInput{OutTradeNo: "VP-NONE001", Trade: trade}, &res); err != nil || res.OrderFound {
		t.Errorf("unknown order: %+v %v, want not found, no error", res, err)
	}
}

// paidLogs are the order's log rows to PAID.
func paidLogs(o payment.Order) []payment.Log {
	var out []payment.Log
	for _, l := range o.Logs {
		if l.ToStatus == payment.StatusPaid {
			out = append(out, l)
		}
	}
	return out
}

func TestMarkPaidActivity(t *testing.T) {
	e := newActEnv(t)
	paidAt := time.Date(2026, 11, 26, 9, 58, 30, 0, time.UTC)
	e.order(t, "MP-ORDER01", 100, payment.StatusPending)
	in := MarkPaidInput{OutTradeNo: "MP-ORDER01", TransactionID: "4200003", PaidAt: paidAt, Source: payment.SourceV3}
	var res MarkPaidResult
	if err := e.run(t, e.a.MarkPaid, in, &res); err != nil || res.Outcome != store.OutcomePaid {
		t.Fatalf("mark paid: %+v %v", res, err)
	}
	// Retried, replayed: the order is decided, nothing is written or counted.
	for range 2 {
		if err := e.run(t, e.a.MarkPaid, in, &res); err != nil || res.Outcome != store.OutcomeAlreadyPaid {
			t.Fatalf("again: %+v %v", res, err)
		}
	}
	o := e.get(t, "MP-ORDER01")
	logs := paidLogs(o)
	if o.Status != payment.StatusPaid || o.TransactionID != "4200003" || o.PaidAt == nil || !o.PaidAt.Equal(paidAt) || o.PaidFen != 100 || len(logs) != 1 ||
		logs[0].Remarks != "paid: transaction 4200003, confirmed by WeChat order query, via notification v3" {
		t.Errorf("order %s %s %v, PAID logs %+v", o.Status, o.TransactionID, o.PaidAt, logs)
	}
	if got := e.final(payment.StatusPaid); got != 1 {
		t.Errorf("PAID counted %v times, want 1", got)
	}

	// A second transaction for a paid order: REVIEW, counted once.
	second := MarkPaidInput{OutTradeNo: "MP-ORDER01", TransactionID: "4200004", PaidAt: paidAt, Source: payment.SourceV2}
	for _, want := range []payment.PaidOutcome{payment.PaidReview, payment.PaidReview} {
		if err := e.run(t, e.a.MarkPaid, second, &res); err != nil || res.Outcome != want {
			t.Fatalf("second transaction: %+v %v", res, err)
		}
	}
	if o := e.get(t, "MP-ORDER01"); o.Status != payment.StatusReview || o.TransactionID != "4200003" {
		t.Errorf("after a second transaction: %s %s", o.Status, o.TransactionID)
	}
	if got := e.final(payment.StatusReview); got != 1 {
		t.Errorf("REVIEW counted %v times, want 1", got)
	}

	// Paid after close: REVIEW, and the order keeps the transaction so that
	// it can be refunded.
	e.order(t, "MP-CLOSED1", 100, payment.StatusClosed)
	if err := e.run(t, e.a.MarkPaid, MarkPaidInput{OutTradeNo: "MP-CLOSED1", TransactionID: "4200005", PaidFen: 100, Source: payment.SourceQuery}, &res); err != nil || res.Outcome != payment.PaidReview {
		t.Fatalf("paid after close: %+v %v", res, err)
	}
	if o := e.get(t, "MP-CLOSED1"); o.Status != payment.StatusReview || o.TransactionID != "4200005" || o.PaidFen != 100 ||
		!strings.Contains(o.Logs[len(o.Logs)-1].Remarks, "paid after close") {
		t.Errorf("paid after close: %s %s %d %+v", o.Status, o.TransactionID, o.PaidFen, o.Logs)
	}
	if got := e.final(payment.StatusReview); got != 2 {
		t.Errorf("REVIEW counted %v times, want 2", got)
	}

	// Found by query, no paid_at given: the activity's clock; the log says how.
	e.order(t, "MP-QUERY01", 100, payment.StatusPending)
	if err := e.run(t, e.a.MarkPaid, MarkPaidInput{OutTradeNo: "MP-QUERY01", TransactionID: "4200006", Source: payment.SourceQuery}, &res); err != nil || res.Outcome != payment.PaidNow {
		t.Fatalf("by query: %+v %v", res, err)
	}
	if o := e.get(t, "MP-QUERY01"); o.PaidAt == nil || !o.PaidAt.Equal(envNow) || !strings.HasSuffix(paidLogs(o)[0].Remarks, "via order query (no notification)") {
		t.Errorf("by query: paid_at %v, logs %+v", o.PaidAt, o.Logs)
	}

	appErr(t, e.run(t, e.a.MarkPaid, MarkPaidInput{OutTradeNo: "MP-NONE001", TransactionID: "4200007"}, nil), ErrTypeOrderNotFound)
}

// Workers racing on one payment (a notification and a query, two runs):
// one of them makes the order PAID, once, with one log row, counted once.
func TestMarkPaidConcurrentlyCountedOnce(t *testing.T) {
	e := newActEnv(t)
	e.order(t, "MP-RACE001", 100, payment.StatusPending)
	before := e.final(payment.StatusPaid)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		outcomes []payment.PaidOutcome
	)
	for range 8 {
		wg.Go(func() {
			res, err := e.a.MarkPaid(context.Background(), MarkPaidInput{OutTradeNo: "MP-RACE001", TransactionID: "4200008", Source: payment.SourceV3})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			outcomes = append(outcomes, res.Outcome)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(outcomes)
	if want := append(slices.Repeat([]payment.PaidOutcome{payment.PaidAlready}, 7), payment.PaidNow); !slices.Equal(outcomes, want) {
		t.Errorf("outcomes %q, want one paid", outcomes)
	}
	if got := e.final(payment.StatusPaid); got != before+1 {
		t.Errorf("PAID counted %v times, want 1", got-before)
	}
	if logs := paidLogs(e.get(t, "MP-RACE001")); len(logs) != 1 {
		t.Errorf("PAID log rows %+v, want 1", logs)
	}
}

func TestMarkReviewActivity(t *testing.T) {
	e := newActEnv(t)
	e.order(t, "MR-ORDER01", 100, payment.StatusPending)
	in := MarkReviewInput{OutTradeNo: "MR-ORDER01", Reason: "trade state REVOKED for 30 minutes", Key: "review:state"}
	var res MarkReviewResult
	if err := e.run(t, e.a.MarkReview, in, &res); err != nil || !res.Changed || res.Status != payment.StatusReview {
		t.Fatalf("mark review: %+v %v", res, err)
	}
	if err := e.run(t, e.a.MarkReview, in, &res); err != nil || res.Changed || res.Status != payment.StatusReview {
		t.Fatalf("again: %+v %v", res, err)
	}
	o := e.get(t, "MR-ORDER01")
	if last := o.Logs[len(o.Logs)-1]; len(o.Logs) != 2 || last.FromStatus != payment.StatusPending || last.ToStatus != payment.StatusReview || last.Remarks != in.Reason {
		t.Errorf("logs %+v", o.Logs)
	}
	if got := e.final(payment.StatusReview); got != 1 {
		t.Errorf("REVIEW counted %v times, want 1", got)
	}

	// A PAID order stays PAID: only the bill reconciliation moves it.
	e.order(t, "MR-PAID001", 100, payment.StatusPaid)
	paid := MarkReviewInput{OutTradeNo: "MR-PAID001", Reason: "not in WeChat's bill", Key: "review:bill"}
	if err := e.run(t, e.a.MarkReview, paid, &res); err != nil || res.Changed || res.Status != payment.StatusPaid {
		t.Fatalf("paid order: %+v %v, want PAID unchanged", res, err)
	}
	if o := e.get(t, "MR-PAID001"); o.Status != payment.StatusPaid || len(o.Logs) != 2 {
		t.Errorf("paid order changed: %s %+v", o.Status, o.Logs)
	}
	if got := e.final(payment.StatusReview); got != 1 {
		t.Errorf("REVIEW counted %v times, want 1", got)
	}
	paid.AllowFromPaid = true
	if err := e.run(t, e.a.MarkReview, paid, &res); err != nil || !res.Changed || res.Status != payment.StatusReview {
		t.Fatalf("paid order, AllowFromPaid: %+v %v", res, err)
	}
	if got := e.final(payment.StatusReview); got != 2 {
		t.Errorf("REVIEW counted %v times, want 2", got)
	}

	// A payment that does not add up is kept on the order, to be refunded.
	e.order(t, "MR-AMOUNT1", 100, payment.StatusPending)
	if err := e.run(t, e.a.MarkReview, MarkReviewInput{OutTradeNo: "MR-AMOUNT1", Reason: "paid 99 of 100", Key: "review:amount",
		TransactionID: "4200010", PaidFen: 99, PaidAt: envNow}, &res); err != nil || !res.Changed {
		t.Fatalf("amount: %+v %v", res, err)
	}
	if o := e.get(t, "MR-AMOUNT1"); o.Status != payment.StatusReview || o.TransactionID != "4200010" || o.PaidFen != 99 {
		t.Errorf("amount: %s %s %d", o.Status, o.TransactionID, o.PaidFen)
	}
	appErr(t, e.run(t, e.a.MarkReview, MarkReviewInput{OutTradeNo: "MR-NONE001", Reason: "x", Key: "review:x"}, nil), ErrTypeOrderNotFound)
}

func TestOrderLogActivity(t *testing.T) {
	e := newActEnv(t)
	e.order(t, "OL-ORDER01", 100, payment.StatusPaid)
	in := OrderLogInput{OutTradeNo: "OL-ORDER01", Remarks: "late notification of transaction tx-OL-ORDER01 absorbed", Key: "log:late:N9"}
	var res OrderLogResult
	if err := e.run(t, e.a.OrderLog, in, &res); err != nil || !res.Inserted {
		t.Fatalf("log: %+v %v", res, err)
	}
	if err := e.run(t, e.a.OrderLog, in, &res); err != nil || res.Inserted {
		t.Fatalf("again: %+v %v", res, err)
	}
	o := e.get(t, "OL-ORDER01")
	if last := o.Logs[len(o.Logs)-1]; len(o.Logs) != 3 || last.FromStatus != payment.StatusPaid || last.ToStatus != payment.StatusPaid || last.Remarks != in.Remarks {
		t.Errorf("logs %+v", o.Logs)
	}
	appErr(t, e.run(t, e.a.OrderLog, OrderLogInput{OutTradeNo: "OL-NONE001", Remarks: "x", Key: "log:x"}, nil), ErrTypeOrderNotFound)
}

func TestRecordNotificationActivity(t *testing.T) {
	e := newActEnv(t)
	unknown := payment.Notification{ID: "RN-N1", Source: payment.SourceV2, OutTradeNo: "RN-NOSUCH1", TransactionID: "4200011",
		AppID: envAppID, MchID: refundMch, AmountFen: 100, ResultCode: "SUCCESS"}
	in := RecordNotificationInput{Notification: unknown, Outcome: payment.NotifyUnknownOrder}
	var res RecordNotificationResult
	if err := e.run(t, e.a.RecordNotification, in, &res); err != nil || !res.Inserted {
		t.Fatalf("record: %+v %v", res, err)
	}
	// WeChat's retries of it: kept once, counted once.
	for range 3 {
		if err := e.run(t, e.a.RecordNotification, in, &res); err != nil || res.Inserted {
			t.Fatalf("again: %+v %v", res, err)
		}
	}
	if got := e.final(payment.StatusReview); got != 1 {
		t.Errorf("an unknown order's payment counted %v times as REVIEW, want 1", got)
	}
	// Other outcomes are kept, and are not a REVIEW.
	other := unknown
	other.ID = "RN-N2"
	if err := e.run(t, e.a.RecordNotification, RecordNotificationInput{Notification: other, Outcome: "failed_payment"}, &res); err != nil || !res.Inserted {
		t.Fatalf("other outcome: %+v %v", res, err)
	}
	if got := e.final(payment.StatusReview); got != 1 {
		t.Errorf("REVIEW counted %v times, want 1", got)
	}
	nos, _, err := e.st.UnexaminedNotifications(context.Background(), time.Now().Add(time.Hour), store.NotificationCursor{}, 10)
	if err != nil || len(nos) != 2 {
		t.Errorf("kept %d notifications (%v), want 2", len(nos), err)
	}
	if err := e.run(t, e.a.RecordNotification, RecordNotificationInput{Notification: payment.Notification{}, Outcome: payment.NotifyUnknownOrder}, nil); err == nil {
		t.Error("a notification without an id was recorded")
	}
	if got := e.final(payment.StatusReview); got != 1 {
		t.Errorf("REVIEW counted %v times, want 1", got)
	}
}

func TestMarkExaminedActivity(t *testing.T) {
	e := newActEnv(t)
	ctx := context.Background()
	e.order(t, "ME-ORDER01", 100, payment.StatusPending)
	n1 := payment.Notification{ID: "ME-N1", Source: payment.SourceV3, OutTradeNo: "ME-ORDER01", TransactionID: "4200012", AmountFen: 100}
	n2 := n1
	n2.ID = "ME-N2" // the workflow got there before the api wrote its audit row
	if _, err := e.st.KeepHandingOver(ctx, n1); err != nil {
		t.Fatal(err)
	}
	before, _, err := e.st.UnexaminedNotifications(ctx, time.Now().Add(time.Hour), store.NotificationCursor{}, 10)
	if err != nil || len(before) != 1 {
		t.Fatalf("unexamined before: %v %v", before, err)
	}
	if err := e.run(t, e.a.MarkExamined, MarkExaminedInput{OutTradeNo: "ME-ORDER01", Notifications: []payment.Notification{n1, n2}}, nil); err != nil {
		t.Fatal(err)
	}
	after, _, err := e.st.UnexaminedNotifications(ctx, time.Now().Add(time.Hour), store.NotificationCursor{}, 10)
	if err != nil || len(after) != 0 {
		t.Errorf("unexamined after: %v %v, want none: the safety net has nothing to hand over", after, err)
	}
	o := e.get(t, "ME-ORDER01")
	examined := map[string]*time.Time{}
	counts := map[string]int{}
	for _, r := range o.Notifications {
		examined[r.ID], counts[r.ID] = r.ExaminedAt, r.ReceivedCount
	}
	if examined["ME-N1"] == nil || examined["ME-N2"] == nil || counts["ME-N1"] != 1 || counts["ME-N2"] != 0 {
		t.Fatalf("audit trail %+v", o.Notifications)
	}
	// Again (a retried activity): the first examination stands.
	if err := e.run(t, e.a.MarkExamined, MarkExaminedInput{OutTradeNo: "ME-ORDER01", Notifications: []payment.Notification{n1}}, nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range e.get(t, "ME-ORDER01").Notifications {
		if r.ID == "ME-N1" && (r.ExaminedAt == nil || !r.ExaminedAt.Equal(*examined["ME-N1"])) {
			t.Errorf("examined_at moved from %v to %v", examined["ME-N1"], r.ExaminedAt)
		}
	}
	if err := e.run(t, e.a.MarkExamined, MarkExaminedInput{OutTradeNo: "ME-ORDER01"}, nil); err != nil {
		t.Errorf("nothing examined: %v", err)
	}
}

func TestResolveReviewActivity(t *testing.T) {
	e := newActEnv(t)
	ctx := context.Background()
	// In REVIEW with a payment (paid after close), and without one.
	e.order(t, "RR-PAID001", 100, payment.StatusClosed)
	if _, err := e.st.MarkPaid(ctx, store.MarkPaidParams{OutTradeNo: "RR-PAID001", TransactionID: "4200013"}); err != nil {
		t.Fatal(err)
	}
	e.order(t, "RR-NOTX001", 100, payment.StatusReview)
	paidBefore, closedBefore := e.final(payment.StatusPaid), e.final(payment.StatusClosed)

	accept := ResolveReviewInput{OutTradeNo: "RR-PAID001", To: payment.StatusPaid, Remarks: "resolved by alice: accept_paid (customer confirmed)", Key: "resolve:accept_paid"}
	var res ResolveReviewResult
	if err := e.run(t, e.a.ResolveReview, accept, &res); err != nil || !res.Changed || res.Status != payment.StatusPaid {
		t.Fatalf("accept: %+v %v", res, err)
	}
	// A repeated resolution that already happened is its answer again.
	if err := e.run(t, e.a.ResolveReview, accept, &res); err != nil || res.Changed || res.Status != payment.StatusPaid {
		t.Fatalf("again: %+v %v", res, err)
	}
	o := e.get(t, "RR-PAID001")
	if last := o.Logs[len(o.Logs)-1]; o.Status != payment.StatusPaid || last.FromStatus != payment.StatusReview || last.Remarks != accept.Remarks {
		t.Errorf("accepted: %s %+v", o.Status, o.Logs)
	}
	if got := e.final(payment.StatusPaid); got != paidBefore+1 {
		t.Errorf("PAID counted %v times, want 1", got-paidBefore)
	}

	// Nothing was paid that could be accepted.
	appErr(t, e.run(t, e.a.ResolveReview, ResolveReviewInput{OutTradeNo: "RR-NOTX001", To: payment.StatusPaid, Remarks: "x", Key: "resolve:accept_paid"}, nil), ErrTypeNoTransaction)
	if o := e.get(t, "RR-NOTX001"); o.Status != payment.StatusReview {
		t.Errorf("refused resolution changed the order to %s", o.Status)
	}
	if err := e.run(t, e.a.ResolveReview, ResolveReviewInput{OutTradeNo: "RR-NOTX001", To: payment.StatusClosed, Remarks: "resolved by bob: close", Key: "resolve:close"}, &res); err != nil ||
		!res.Changed || res.Status != payment.StatusClosed {
		t.Fatalf("close: %+v %v", res, err)
	}
	if got := e.final(payment.StatusClosed); got != closedBefore+1 {
		t.Errorf("CLOSED counted %v times, want 1", got-closedBefore)
	}

	// Not in REVIEW: refused, saying what it is.
	e.order(t, "RR-PENDING", 100, payment.StatusPending)
	err := e.run(t, e.a.ResolveReview, ResolveReviewInput{OutTradeNo: "RR-PENDING", To: payment.StatusClosed, Remarks: "x", Key: "resolve:close"}, nil)
	appErr(t, err, ErrTypeNotInReview)
	if err == nil || !strings.Contains(err.Error(), "order RR-PENDING is PENDING, not in REVIEW") {
		t.Errorf("err = %v", err)
	}
	appErr(t, e.run(t, e.a.ResolveReview, ResolveReviewInput{OutTradeNo: "RR-NONE001", To: payment.StatusClosed, Remarks: "x", Key: "k"}, nil), ErrTypeOrderNotFound)
}
