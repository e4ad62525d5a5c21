package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payflow/payflow/internal/pgtest"
	"github.com/payflow/payflow/payment"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Shutdown()
	os.Exit(code)
}

// newStore returns a migrated store on a fresh database.
func newStore(t *testing.T) *Store {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func createOrder(t *testing.T, s *Store, no string) payment.Order {
	t.Helper()
	o, err := s.CreateOrder(context.Background(), NewOrder{OutTradeNo: no, AmountFen: 1234, Description: "coffee"})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func getOrder(t *testing.T, s *Store, no string) payment.Order {
	t.Helper()
	o, err := s.GetOrder(context.Background(), no)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestOpenHidesPassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, url := range []string{
		"postgres://payflow:s3cretPW@127.0.0.1:1/payments?sslmode=disable", // nothing listens on port 1
		"postgres://payflow:s3cretPW@[::1/payments",                        // unparsable
		"host=127.0.0.1 port=1 user=payflow password=s3cretPW sslmode=disable",
	} {
		s, err := Open(ctx, url)
		if err == nil {
			s.Close()
			t.Fatalf("Open(%q) succeeded", url)
		}
		t.Logf("Open: %v", err)
		if strings.Contains(err.Error(), "s3cretPW") {
			t.Errorf("Open error leaks the password: %v", err)
		}
	}
}

func TestMigrateTwice(t *testing.T) {
	s := newStore(t) // migrated once
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	var version int
	if err := s.pool.QueryRow(context.Background(), "SELECT version FROM payflow_schema_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("embedded migrations: %v %v", files, err)
	}
	if version != len(files) {
		t.Fatalf("schema version = %d, want %d (every embedded migration, once)", version, len(files))
	}
}

func TestMigrateConcurrently(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	// Separate stores stand for separate processes starting at once.
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range errs {
		wg.Go(func() {
			s, err := Open(ctx, url)
			if err != nil {
				errs[i] = err
				return
			}
			defer s.Close()
			errs[i] = s.Migrate(ctx)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("migration %d: %v", i, err)
		}
	}
	s, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	createOrder(t, s, "concurrent-migrate")
}

func TestCreateAndGet(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	created := createOrder(t, s, "order-0001")
	if created.Status != payment.StatusPending || created.Currency != payment.DefaultCurrency ||
		created.AmountFen != 1234 || created.Description != "coffee" {
		t.Fatalf("created = %+v", created)
	}
	if created.TransactionID != "" || created.PaidAt != nil {
		t.Fatalf("new order has payment data: %+v", created)
	}
	if created.CreatedAt.IsZero() || created.CreatedAt.Location() != time.UTC {
		t.Fatalf("created_at = %v, want a UTC time", created.CreatedAt)
	}

	got := getOrder(t, s, "order-0001")
	if len(got.Logs) != 1 {
		t.Fatalf("logs = %+v, want the creation row", got.Logs)
	}
	if l := got.Logs[0]; l.FromStatus != "" || l.ToStatus != payment.StatusPending || l.Remarks != "order created" {
		t.Fatalf("creation log = %+v", l)
	}
	got.Logs, created.Logs = nil, nil
	if fmt.Sprint(got) != fmt.Sprint(created) {
		t.Fatalf("GetOrder = %+v, CreateOrder returned %+v", got, created)
	}

	usd, err := s.CreateOrder(ctx, NewOrder{OutTradeNo: "order-usd", AmountFen: 1, Currency: "USD"})
	if err != nil {
		t.Fatal(err)
	}
	if usd.Currency != "USD" {
		t.Fatalf("currency = %q, want USD", usd.Currency)
	}
}

func TestCreateRejectsBadAmount(t *testing.T) {
	s := newStore(t)
	if _, err := s.CreateOrder(context.Background(), NewOrder{OutTradeNo: "order-zero", AmountFen: 0}); err == nil {
		t.Fatal("created an order of 0 fen")
	}
	if _, err := s.GetOrder(context.Background(), "order-zero"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetOrder after failed create: %v, want ErrNotFound", err)
	}
}

func TestCreateDuplicate(t *testing.T) {
	s := newStore(t)
	createOrder(t, s, "order-dup")
	_, err := s.CreateOrder(context.Background(), NewOrder{OutTradeNo: "order-dup", AmountFen: 999})
	if !errors.Is(err, ErrDuplicate) {
		t.Fatalf("second create: %v, want ErrDuplicate", err)
	}
	o := getOrder(t, s, "order-dup")
	if o.AmountFen != 1234 || len(o.Logs) != 1 {
		t.Fatalf("duplicate create changed the order: %+v", o)
	}
}

func TestGetUnknown(t *testing.T) {
	s := newStore(t)
	if _, err := s.GetOrder(context.Background(), "no-such-order"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetOrder: %v, want ErrNotFound", err)
	}
}

func TestUnknownOrderWrites(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if _, err := s.MarkPaid(ctx, MarkPaidParams{OutTradeNo: "no-such-order", TransactionID: "42"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("MarkPaid: %v, want ErrNotFound", err)
	}
	if _, err := s.MarkReview(ctx, MarkReviewParams{OutTradeNo: "no-such-order", Reason: "why", Key: "k"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("MarkReview: %v, want ErrNotFound", err)
	}
	if _, err := s.AppendLog(ctx, "no-such-order", "note", "k"); !errors.Is(err, ErrNotFound) {
		t.Errorf("AppendLog: %v, want ErrNotFound", err)
	}
}

func TestMarkPaid(t *testing.T) {
	ctx := context.Background()
	paidAt := time.Date(2025, 3, 1, 10, 0, 0, 0, time.FixedZone("CST", 8*3600))
	pay := func(t *testing.T, s *Store, no, txid string) PaidOutcome {
		t.Helper()
		out, err := s.MarkPaid(ctx, MarkPaidParams{OutTradeNo: no, TransactionID: txid, PaidAt: paidAt,
			Remarks: "paid by v3 notification, transaction " + txid})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// lastLog checks the order's status and its log count and returns the newest log row.
	lastLog := func(t *testing.T, s *Store, no string, status payment.Status, logs int) payment.Log {
		t.Helper()
		o := getOrder(t, s, no)
		if o.Status != status || len(o.Logs) != logs {
			t.Fatalf("order %s: status %s with %d logs, want %s with %d: %+v", no, o.Status, len(o.Logs), status, logs, o)
		}
		return o.Logs[len(o.Logs)-1]
	}

	t.Run("pending to paid", func(t *testing.T) {
		s := newStore(t)
		createOrder(t, s, "order-paid")
		if out := pay(t, s, "order-paid", "4200001"); out != OutcomePaid {
			t.Fatalf("outcome = %s, want paid", out)
		}
		l := lastLog(t, s, "order-paid", payment.StatusPaid, 2)
		if l.FromStatus != payment.StatusPending || !strings.Contains(l.Remarks, "4200001") {
			t.Fatalf("paid log = %+v", l)
		}
		o := getOrder(t, s, "order-paid")
		if o.TransactionID != "4200001" || o.PaidAt == nil || !o.PaidAt.Equal(paidAt) || o.PaidAt.Location() != time.UTC {
			t.Fatalf("paid order = %+v (paid_at %v)", o, o.PaidAt)
		}
		if o.UpdatedAt.Before(o.CreatedAt) {
			t.Fatalf("updated_at %v before created_at %v", o.UpdatedAt, o.CreatedAt)
		}
	})

	t.Run("paid again by the same transaction", func(t *testing.T) {
		s := newStore(t)
		createOrder(t, s, "order-again")
		pay(t, s, "order-again", "4200002")
		if out := pay(t, s, "order-again", "4200002"); out != OutcomeAlreadyPaid {
			t.Fatalf("outcome = %s, want already_paid", out)
		}
		lastLog(t, s, "order-again", payment.StatusPaid, 2)
	})

	t.Run("second transaction", func(t *testing.T) {
		s := newStore(t)
		createOrder(t, s, "order-second")
		pay(t, s, "order-second", "4200003")
		if out := pay(t, s, "order-second", "4200004"); out != OutcomeReview {
			t.Fatalf("outcome = %s, want review", out)
		}
		l := lastLog(t, s, "order-second", payment.StatusReview, 3)
		if want := "second transaction 4200004 for an order paid by 4200003"; l.FromStatus != payment.StatusPaid || l.Remarks != want {
			t.Fatalf("review log = %+v, want remarks %q", l, want)
		}
		if o := getOrder(t, s, "order-second"); o.TransactionID != "4200003" {
			t.Fatalf("transaction id = %s, want the first one kept", o.TransactionID)
		}
		// In REVIEW nothing more happens, whatever arrives.
		for _, txid := range []string{"4200003", "4200004", "4200005"} {
			if out := pay(t, s, "order-second", txid); out != OutcomeAlreadyReview {
				t.Fatalf("outcome for %s in review = %s, want already_review", txid, out)
			}
		}
		lastLog(t, s, "order-second", payment.StatusReview, 3)
	})

	t.Run("paid after close", func(t *testing.T) {
		s := newStore(t)
		createOrder(t, s, "order-closed")
		// There is no CloseOrder yet; close it the way a later one will.
		if _, err := s.pool.Exec(ctx, `UPDATE orders SET status = 'CLOSED' WHERE out_trade_no = 'order-closed'`); err != nil {
			t.Fatal(err)
		}
		if out := pay(t, s, "order-closed", "4200006"); out != OutcomeReview {
			t.Fatalf("outcome = %s, want review", out)
		}
		l := lastLog(t, s, "order-closed", payment.StatusReview, 2)
		if want := "paid after close: transaction 4200006"; l.FromStatus != payment.StatusClosed || l.Remarks != want {
			t.Fatalf("review log = %+v, want remarks %q", l, want)
		}
		if out := pay(t, s, "order-closed", "4200006"); out != OutcomeAlreadyReview {
			t.Fatalf("repeated outcome = %s, want already_review", out)
		}
		lastLog(t, s, "order-closed", payment.StatusReview, 2)
	})

	t.Run("transaction of another order", func(t *testing.T) {
		s := newStore(t)
		createOrder(t, s, "order-a")
		createOrder(t, s, "order-b")
		pay(t, s, "order-a", "4200007")
		if out := pay(t, s, "order-b", "4200007"); out != OutcomeReview {
			t.Fatalf("outcome = %s, want review", out)
		}
		l := lastLog(t, s, "order-b", payment.StatusReview, 2)
		if !strings.Contains(l.Remarks, "4200007") || !strings.Contains(l.Remarks, "order-a") {
			t.Fatalf("review log = %+v", l)
		}
		lastLog(t, s, "order-a", payment.StatusPaid, 2)
	})

	t.Run("empty transaction id", func(t *testing.T) {
		s := newStore(t)
		createOrder(t, s, "order-empty")
		if _, err := s.MarkPaid(ctx, MarkPaidParams{OutTradeNo: "order-empty"}); err == nil {
			t.Fatal("MarkPaid without a transaction id succeeded")
		}
		lastLog(t, s, "order-empty", payment.StatusPending, 1)
	})
}

// TestMarkPaidConcurrent is the interface's core promise: however many
// notifications and retries race, a payment produces exactly one PAID log row.
func TestMarkPaidConcurrent(t *testing.T) {
	s := newStore(t)
	createOrder(t, s, "order-race")
	p := MarkPaidParams{OutTradeNo: "order-race", TransactionID: "4200100", Remarks: "paid: transaction 4200100"}

	var wg sync.WaitGroup
	outcomes := make([]PaidOutcome, 10)
	errs := make([]error, 10)
	for i := range outcomes {
		wg.Go(func() { outcomes[i], errs[i] = s.MarkPaid(context.Background(), p) })
	}
	wg.Wait()

	paid := 0
	for i, out := range outcomes {
		if errs[i] != nil {
			t.Fatalf("call %d: %v", i, errs[i])
		}
		switch out {
		case OutcomePaid:
			paid++
		case OutcomeAlreadyPaid:
		default:
			t.Fatalf("call %d: outcome %s", i, out)
		}
	}
	if paid != 1 {
		t.Fatalf("%d calls returned OutcomePaid, want 1", paid)
	}
	o := getOrder(t, s, "order-race")
	paidLogs := 0
	for _, l := range o.Logs {
		if l.ToStatus == payment.StatusPaid {
			paidLogs++
		}
	}
	if o.Status != payment.StatusPaid || paidLogs != 1 || len(o.Logs) != 2 {
		t.Fatalf("order after race: status %s, %d PAID logs, logs %+v", o.Status, paidLogs, o.Logs)
	}
}

func TestMarkReview(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	createOrder(t, s, "order-review")

	out, err := s.MarkReview(ctx, MarkReviewParams{OutTradeNo: "order-review", Reason: "amount differs: paid 1 fen", Key: "review:amount:4200200"})
	if err != nil || !out.Changed || out.Status != payment.StatusReview {
		t.Fatalf("MarkReview = %+v, %v; want changed", out, err)
	}
	// The same key again (a retried activity), and another reason while in
	// REVIEW, both change nothing.
	for _, key := range []payment.Key{"review:amount:4200200", "review:other"} {
		out, err := s.MarkReview(ctx, MarkReviewParams{OutTradeNo: "order-review", Reason: "again", Key: key})
		if err != nil || out.Changed {
			t.Fatalf("MarkReview(%s) = %+v, %v; want unchanged", key, out, err)
		}
	}
	o := getOrder(t, s, "order-review")
	if o.Status != payment.StatusReview || len(o.Logs) != 2 {
		t.Fatalf("order = %+v", o)
	}
	if l := o.Logs[1]; l.FromStatus != payment.StatusPending || l.ToStatus != payment.StatusReview || l.Remarks != "amount differs: paid 1 fen" {
		t.Fatalf("review log = %+v", l)
	}
	if _, err := s.MarkReview(ctx, MarkReviewParams{OutTradeNo: "order-review", Reason: "why"}); err == nil {
		t.Fatal("MarkReview without a key succeeded")
	}
}

// A PAID order goes to REVIEW only for a second transaction (MarkPaid) or
// at the bill reconciliation's request; a REVIEW for a mismatched amount
// keeps WeChat's transaction and amount so the money can be refunded.
func TestMarkReviewRules(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	createOrder(t, s, "order-paid-rv")
	if out, err := s.MarkPaid(ctx, MarkPaidParams{OutTradeNo: "order-paid-rv", TransactionID: "tx-rv-1"}); err != nil || out != OutcomePaid {
		t.Fatalf("MarkPaid = %v, %v", out, err)
	}
	out, err := s.MarkReview(ctx, MarkReviewParams{OutTradeNo: "order-paid-rv", Reason: "state NOTPAY", Key: "review:state:x"})
	if err != nil || out.Changed || out.Status != payment.StatusPaid {
		t.Fatalf("MarkReview of a PAID order = %+v, %v; want it left PAID", out, err)
	}
	out, err = s.MarkReview(ctx, MarkReviewParams{OutTradeNo: "order-paid-rv", Reason: "not in the bill", Key: "review:bill", AllowFromPaid: true})
	if err != nil || !out.Changed {
		t.Fatalf("MarkReview from the bill = %+v, %v; want changed", out, err)
	}

	createOrder(t, s, "order-mismatch")
	out, err = s.MarkReview(ctx, MarkReviewParams{OutTradeNo: "order-mismatch", Reason: "paid 1 fen", Key: "review:mismatch:tx-mm",
		TransactionID: "tx-mm", PaidFen: 1})
	if err != nil || !out.Changed {
		t.Fatalf("MarkReview = %+v, %v", out, err)
	}
	o := getOrder(t, s, "order-mismatch")
	if o.TransactionID != "tx-mm" || o.PaidFen != 1 || o.PaidAt == nil {
		t.Fatalf("order in review = %+v; want it to keep transaction tx-mm and 1 fen paid", o)
	}
}

// A payment after close sends the order to REVIEW once, keeping the
// transaction and what was paid.
func TestMarkPaidAfterCloseKeepsTransaction(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	createOrder(t, s, "order-pac")
	if _, err := s.MarkClosed(ctx, "order-pac", "expired", "closed:expired"); err != nil {
		t.Fatal(err)
	}
	for i, want := range []PaidOutcome{OutcomeReview, OutcomeAlreadyReview} {
		out, err := s.MarkPaid(ctx, MarkPaidParams{OutTradeNo: "order-pac", TransactionID: "tx-pac", PaidFen: 1234})
		if err != nil || out != want {
			t.Fatalf("MarkPaid #%d = %v, %v; want %v", i, out, err, want)
		}
	}
	o := getOrder(t, s, "order-pac")
	if o.Status != payment.StatusReview || o.TransactionID != "tx-pac" || o.PaidFen != 1234 {
		t.Fatalf("order = %+v", o)
	}
}

// The workflow may mark a notification examined before the api wrote its
// audit row; the api's write then only counts the delivery.
func TestMarkExaminedBeforeAudit(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	createOrder(t, s, "order-exam")
	n := payment.Notification{ID: "v2:exam", Source: payment.SourceV2, OutTradeNo: "order-exam", TransactionID: "tx-exam", AmountFen: 1}
	if err := s.MarkExamined(ctx, []payment.Notification{n}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.KeepHandingOver(ctx, n); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkExamined(ctx, []payment.Notification{n}); err != nil {
		t.Fatal(err)
	}
	var count int
	var examined bool
	if err := s.pool.QueryRow(ctx, `SELECT received_count, examined_at IS NOT NULL FROM notifications WHERE id = $1`, n.ID).
		Scan(&count, &examined); err != nil {
		t.Fatal(err)
	}
	if count != 1 || !examined {
		t.Fatalf("received_count %d, examined %v; want 1, true", count, examined)
	}
}

func TestMarkReviewKeyUsedBefore(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	createOrder(t, s, "order-key")
	// A key already taken by another log row of this order: the write it
	// stands for happened, so nothing is written.
	if _, err := s.AppendLog(ctx, "order-key", "note", "shared-key"); err != nil {
		t.Fatal(err)
	}
	out, err := s.MarkReview(ctx, MarkReviewParams{OutTradeNo: "order-key", Reason: "why", Key: "shared-key"})
	if err != nil || out.Changed {
		t.Fatalf("MarkReview = %+v, %v; want unchanged", out, err)
	}
	if o := getOrder(t, s, "order-key"); o.Status != payment.StatusPending || len(o.Logs) != 2 {
		t.Fatalf("order = %+v", o)
	}
}

func TestAppendLog(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	createOrder(t, s, "order-log")

	for i, want := range []bool{true, false} {
		inserted, err := s.AppendLog(ctx, "order-log", "query: NOTPAY", "query:1")
		if err != nil || inserted != want {
			t.Fatalf("AppendLog #%d = %v, %v; want %v", i, inserted, err, want)
		}
	}
	if _, err := s.MarkPaid(ctx, MarkPaidParams{OutTradeNo: "order-log", TransactionID: "4200300"}); err != nil {
		t.Fatal(err)
	}
	if inserted, err := s.AppendLog(ctx, "order-log", "notification repeated", "notify:2"); err != nil || !inserted {
		t.Fatalf("AppendLog after paid = %v, %v", inserted, err)
	}

	o := getOrder(t, s, "order-log")
	if o.Status != payment.StatusPaid || len(o.Logs) != 4 {
		t.Fatalf("order = %+v", o)
	}
	want := []payment.Log{
		{FromStatus: "", ToStatus: payment.StatusPending, Remarks: "order created"},
		{FromStatus: payment.StatusPending, ToStatus: payment.StatusPending, Remarks: "query: NOTPAY"},
		{FromStatus: payment.StatusPending, ToStatus: payment.StatusPaid, Remarks: "paid: transaction 4200300"},
		{FromStatus: payment.StatusPaid, ToStatus: payment.StatusPaid, Remarks: "notification repeated"},
	}
	for i, l := range o.Logs {
		l.CreatedAt = time.Time{}
		if l != want[i] {
			t.Errorf("log %d = %+v, want %+v", i, l, want[i])
		}
	}
}

func TestRecordNotification(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	n := payment.Notification{
		ID: "v3-evt-1", Source: payment.SourceV3, OutTradeNo: "unknown-order", TransactionID: "4200400",
		AmountFen: 500, Currency: "CNY", ResultCode: "SUCCESS", TradeState: payment.TradeSuccess,
		ReceivedAt: time.Date(2025, 3, 1, 2, 0, 0, 0, time.UTC),
	}
	for i, want := range []bool{true, false} {
		inserted, err := s.RecordNotification(ctx, n, "unknown_order")
		if err != nil || inserted != want {
			t.Fatalf("RecordNotification #%d = %v, %v; want %v", i, inserted, err, want)
		}
	}

	var (
		count              int
		outcome, txid      string
		amount             int64
		contentTxID        string
		receivedAt         time.Time
		outTradeNo, source string
	)
	err := s.pool.QueryRow(ctx, `
		SELECT count(*) OVER (), outcome, transaction_id, amount_fen, content->>'transaction_id', received_at, out_trade_no, source
		FROM notifications`).Scan(&count, &outcome, &txid, &amount, &contentTxID, &receivedAt, &outTradeNo, &source)
	if err != nil {
		t.Fatal(err)
	}
	if count != 1 || outcome != "unknown_order" || txid != "4200400" || amount != 500 || contentTxID != "4200400" ||
		!receivedAt.Equal(n.ReceivedAt) || outTradeNo != "unknown-order" || source != "v3" {
		t.Fatalf("stored: count %d outcome %s txid %s amount %d content txid %s received %v no %s source %s",
			count, outcome, txid, amount, contentTxID, receivedAt, outTradeNo, source)
	}

	if _, err := s.RecordNotification(ctx, payment.Notification{}, "x"); err == nil {
		t.Fatal("recorded a notification without an id")
	}
}
