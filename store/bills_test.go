package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"testing"
	"time"
)

const billMch = "1900000109"

var (
	beijing  = time.FixedZone("CST", 8*3600)
	billDay  = time.Date(2026, 11, 25, 0, 0, 0, 0, beijing) // the bill's day: [billDay, billDay+24h)
	billDate = "2026-11-25"
)

// rowsOf yields rows one by one, as the bill reader does.
func rowsOf(rows []BillStageRow) func() (BillStageRow, error) {
	i := 0
	return func() (BillStageRow, error) {
		if i == len(rows) {
			return BillStageRow{}, io.EOF
		}
		i++
		return rows[i-1], nil
	}
}

func billPaidOrder(t *testing.T, s *Store, no string, amount int64, txid string, paidAt time.Time) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.CreateOrder(ctx, NewOrder{OutTradeNo: no, AmountFen: amount, Description: "coffee"}); err != nil {
		t.Fatal(err)
	}
	out, err := s.MarkPaid(ctx, MarkPaidParams{OutTradeNo: no, TransactionID: txid, PaidAt: paidAt})
	if err != nil || out != OutcomePaid {
		t.Fatalf("mark paid %s: %v %v", no, out, err)
	}
}

func pendingOrder(t *testing.T, s *Store, no string, amount int64) {
	t.Helper()
	if _, err := s.CreateOrder(context.Background(), NewOrder{OutTradeNo: no, AmountFen: amount, Description: "tea"}); err != nil {
		t.Fatal(err)
	}
}

// addRefund stores a refund as the refunds work records one.
func addRefund(t *testing.T, s *Store, no, outRefundNo string, amount int64, status string) {
	t.Helper()
	var success *time.Time
	if status == "SUCCESS" {
		at := billDay.Add(20 * time.Hour)
		success = &at
	}
	_, err := s.pool.Exec(context.Background(), `INSERT INTO refunds (mch_id, out_refund_no, out_trade_no, amount_fen, status, source,
		refund_id, accepted_at, success_time) VALUES ($1, $2, $3, $4, $5, 'api', $6, $7, $8)`,
		billMch, outRefundNo, no, amount, status, "5030"+outRefundNo, billDay.Add(19*time.Hour), success)
	if err != nil {
		t.Fatal(err)
	}
}

func beginRun(t *testing.T, s *Store, runID string) BillRunKey {
	t.Helper()
	k := BillRunKey{MchID: billMch, Date: billDate, RunID: runID}
	if err := s.BeginBillRun(context.Background(), k, time.Time{}); err != nil {
		t.Fatal(err)
	}
	return k
}

func pay(no, txid string, amount int64) BillStageRow {
	return BillStageRow{Kind: BillRowPayment, OutTradeNo: no, TransactionID: txid, AmountFen: amount}
}

func refundRow(no, outRefundNo string, amount int64, status string) BillStageRow {
	return BillStageRow{Kind: BillRowRefund, OutTradeNo: no, TransactionID: "TX-" + no, AmountFen: amount,
		OutRefundNo: outRefundNo, RefundID: "5030" + outRefundNo, RefundStatus: status}
}

// everyKind sets up our books and the bill of a day with one of every
// difference, plus rows that agree; it returns the bill.
func everyKind(t *testing.T, s *Store) []BillStageRow {
	in := func(h int) time.Time { return billDay.Add(time.Duration(h) * time.Hour) }
	ctx := context.Background()
	billPaidOrder(t, s, "MATCH0001", 1000, "TX-MATCH0001", in(10))
	billPaidOrder(t, s, "AMOUNT0001", 1000, "TX-AMOUNT0001", in(11))
	pendingOrder(t, s, "WECHAT0001", 500) // paid at WeChat, PENDING here
	pendingOrder(t, s, "WECHAT0002", 500) // paid at WeChat, CLOSED here
	if _, err := s.MarkClosed(ctx, "WECHAT0002", "expired", "closed"); err != nil {
		t.Fatal(err)
	}
	pendingOrder(t, s, "WECHAT0003", 500) // paid at WeChat, already in REVIEW here
	if _, err := s.MarkReview(ctx, MarkReviewParams{OutTradeNo: "WECHAT0003", Reason: "unknown state too long", Key: "review"}); err != nil {
		t.Fatal(err)
	}
	pendingOrder(t, s, "REVIEWAMT1", 800) // in REVIEW because WeChat's amount differs: the bill says so too
	if _, err := s.MarkReview(ctx, MarkReviewParams{OutTradeNo: "REVIEWAMT1", Reason: "amount differs", Key: "review"}); err != nil {
		t.Fatal(err)
	}
	billPaidOrder(t, s, "HERE0001", 700, "TX-HERE0001", in(12))
	billPaidOrder(t, s, "HERE0002", 700, "TX-HERE0002", billDay) // the first instant of the day counts
	billPaidOrder(t, s, "OTHERDAY1", 700, "TX-OTHERDAY1", billDay.Add(-time.Second))
	billPaidOrder(t, s, "OTHERDAY2", 700, "TX-OTHERDAY2", billDay.Add(24*time.Hour)) // the next day's first instant does not
	billPaidOrder(t, s, "REFUNDED1", 1000, "TX-REFUNDED1", billDay.Add(-48*time.Hour))
	addRefund(t, s, "REFUNDED1", "RF-OK", 300, "SUCCESS")
	addRefund(t, s, "REFUNDED1", "RF-PROC", 100, "PROCESSING")
	addRefund(t, s, "REFUNDED1", "RF-FAILED", 100, "FAILED")
	addRefund(t, s, "REFUNDED1", "RF-ABN", 100, "ABNORMAL")
	addRefund(t, s, "REFUNDED1", "RF-AMT", 300, "SUCCESS")
	addRefund(t, s, "REFUNDED1", "RF-LATER", 50, "SUCCESS")
	return []BillStageRow{
		pay("MATCH0001", "TX-MATCH0001", 1000),
		pay("AMOUNT0001", "TX-AMOUNT0001", 1200),
		pay("WECHAT0001", "TX-WECHAT0001", 500),
		pay("WECHAT0002", "TX-WECHAT0002", 500),
		pay("WECHAT0003", "TX-WECHAT0003", 500),
		pay("REVIEWAMT1", "TX-REVIEWAMT1", 900),
		pay("UNKNOWN001", "TX-UNKNOWN001", 900),
		refundRow("REFUNDED1", "RF-OK", 300, "SUCCESS"),
		refundRow("REFUNDED1", "RF-NEW", 200, "SUCCESS"),       // made in the merchant portal
		refundRow("REFUNDED1", "RF-PROC", 100, "SUCCESS"),      // we still think PROCESSING
		refundRow("REFUNDED1", "RF-FAILED", 100, "PROCESSING"), // WeChat accepted what we think failed
		refundRow("REFUNDED1", "RF-ABN", 100, "PROCESSING"),    // the bill's snapshot is older than ours
		refundRow("REFUNDED1", "RF-AMT", 250, "SUCCESS"),
		refundRow("REFUNDED1", "RF-LATER", 50, "PROCESSING"), // done since the bill was made
		refundRow("UNKNOWN002", "RF-X", 100, "SUCCESS"),
		{Kind: BillRowRevoked, OutTradeNo: "UNKNOWN003", TransactionID: "TX-UNKNOWN003"},
		{Kind: BillRowRevoked, OutTradeNo: "MATCH0001", TransactionID: "TX-MATCH0001"},
	}
}

type diffKey struct{ kind, no, refund string }

func differencesOf(run BillRun) map[diffKey]BillDifference {
	m := map[diffKey]BillDifference{}
	for _, d := range run.Differences {
		m[diffKey{d.Kind, d.OutTradeNo, d.OutRefundNo}] = d
	}
	return m
}

func fen(v int64) *int64 { return &v }

func eqAmount(a, b *int64) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func TestDiffBillEveryKind(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	bill := everyKind(t, s)
	k := beginRun(t, s, "run-1")
	n, err := s.LoadBillStage(ctx, k, rowsOf(bill))
	if err != nil || n != int64(len(bill)) {
		t.Fatalf("load: %d, %v", n, err)
	}
	res, err := s.DiffBill(ctx, k, billDay, billDay.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// MATCH0001's payment and revoked row, RF-OK, RF-ABN and RF-LATER agree.
	wantKinds := map[string]int{DiffPaidAtWeChatOnly: 3, DiffPaidHereOnly: 2, DiffAmountMismatch: 3, DiffUnknownOrder: 3,
		DiffRefundUnknown: 1, DiffRefundStatus: 2}
	if res.Matched != 5 || !maps.Equal(res.Kinds, wantKinds) || !maps.Equal(res.New, wantKinds) || res.Total() != 14 {
		t.Fatalf("result %+v", res)
	}
	run, err := s.LatestBillRun(ctx, billMch, billDate, 100)
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != BillRunning || run.BillRows != 17 || run.Matched != 5 || len(run.Differences) != 14 {
		t.Fatalf("run %+v", run)
	}
	got := differencesOf(run)
	want := []BillDifference{
		{Kind: DiffPaidAtWeChatOnly, OutTradeNo: "WECHAT0001", TransactionID: "TX-WECHAT0001", WeChatAmountFen: fen(500), OurAmountFen: fen(500), OurStatus: "PENDING"},
		{Kind: DiffPaidAtWeChatOnly, OutTradeNo: "WECHAT0002", TransactionID: "TX-WECHAT0002", WeChatAmountFen: fen(500), OurAmountFen: fen(500), OurStatus: "CLOSED"},
		{Kind: DiffPaidAtWeChatOnly, OutTradeNo: "WECHAT0003", TransactionID: "TX-WECHAT0003", WeChatAmountFen: fen(500), OurAmountFen: fen(500), OurStatus: "REVIEW"},
		{Kind: DiffPaidHereOnly, OutTradeNo: "HERE0001", TransactionID: "TX-HERE0001", OurAmountFen: fen(700), OurStatus: "PAID"},
		{Kind: DiffPaidHereOnly, OutTradeNo: "HERE0002", TransactionID: "TX-HERE0002", OurAmountFen: fen(700), OurStatus: "PAID"},
		{Kind: DiffAmountMismatch, OutTradeNo: "AMOUNT0001", TransactionID: "TX-AMOUNT0001", WeChatAmountFen: fen(1200), OurAmountFen: fen(1000), OurStatus: "PAID"},
		{Kind: DiffAmountMismatch, OutTradeNo: "REVIEWAMT1", TransactionID: "TX-REVIEWAMT1", WeChatAmountFen: fen(900), OurAmountFen: fen(800), OurStatus: "REVIEW"},
		{Kind: DiffAmountMismatch, OutTradeNo: "REFUNDED1", OutRefundNo: "RF-AMT", TransactionID: "TX-REFUNDED1", RefundID: "5030RF-AMT",
			WeChatAmountFen: fen(250), OurAmountFen: fen(300), OurStatus: "SUCCESS", BillStatus: "SUCCESS"},
		{Kind: DiffUnknownOrder, OutTradeNo: "UNKNOWN001", TransactionID: "TX-UNKNOWN001", WeChatAmountFen: fen(900)},
		{Kind: DiffUnknownOrder, OutTradeNo: "UNKNOWN002", OutRefundNo: "RF-X", TransactionID: "TX-UNKNOWN002", RefundID: "5030RF-X",
			WeChatAmountFen: fen(100), BillStatus: "SUCCESS"},
		{Kind: DiffUnknownOrder, OutTradeNo: "UNKNOWN003", TransactionID: "TX-UNKNOWN003", WeChatAmountFen: fen(0)},
		{Kind: DiffRefundUnknown, OutTradeNo: "REFUNDED1", OutRefundNo: "RF-NEW", TransactionID: "TX-REFUNDED1", RefundID: "5030RF-NEW",
			WeChatAmountFen: fen(200), BillStatus: "SUCCESS"},
		{Kind: DiffRefundStatus, OutTradeNo: "REFUNDED1", OutRefundNo: "RF-PROC", TransactionID: "TX-REFUNDED1", RefundID: "5030RF-PROC",
			WeChatAmountFen: fen(100), OurAmountFen: fen(100), OurStatus: "PROCESSING", BillStatus: "SUCCESS"},
		{Kind: DiffRefundStatus, OutTradeNo: "REFUNDED1", OutRefundNo: "RF-FAILED", TransactionID: "TX-REFUNDED1", RefundID: "5030RF-FAILED",
			WeChatAmountFen: fen(100), OurAmountFen: fen(100), OurStatus: "FAILED", BillStatus: "PROCESSING"},
	}
	for _, w := range want {
		g, ok := got[diffKey{w.Kind, w.OutTradeNo, w.OutRefundNo}]
		if !ok {
			t.Errorf("missing %s %s %s", w.Kind, w.OutTradeNo, w.OutRefundNo)
			continue
		}
		if g.TransactionID != w.TransactionID || g.RefundID != w.RefundID || !eqAmount(g.WeChatAmountFen, w.WeChatAmountFen) ||
			!eqAmount(g.OurAmountFen, w.OurAmountFen) || g.OurStatus != w.OurStatus || g.BillStatus != w.BillStatus ||
			g.Action != "" || g.ActionDoneAt != nil {
			t.Errorf("%s %s %s:\n got %+v\nwant %+v", w.Kind, w.OutTradeNo, w.OutRefundNo, g, w)
		}
	}
	// The staging table went with the comparison; asking again answers the same.
	again, err := s.DiffBill(ctx, k, billDay, billDay.Add(24*time.Hour))
	if err != nil || again.Matched != 5 || !maps.Equal(again.Kinds, wantKinds) {
		t.Fatalf("second diff of the same run: %+v, %v", again, err)
	}
	var tables int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM pg_class WHERE relname LIKE 'bill_stage_%'`).Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("%d staging tables left, %v", tables, err)
	}
	fin, err := s.FinishBillRun(ctx, k, BillDifferences, "")
	if err != nil || fin.Status != BillDifferences || fin.FinishedAt == nil || fin.BillRows != 17 || fin.Matched != 5 {
		t.Fatalf("finish: %+v, %v", fin, err)
	}
}

// A re-run of the same day neither repeats an action already taken nor
// loses a difference, and a difference that went away is no longer shown.
func TestDiffBillRerunIsIdempotent(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	bill := everyKind(t, s)
	k1 := beginRun(t, s, "run-1")
	if _, err := s.LoadBillStage(ctx, k1, rowsOf(bill)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DiffBill(ctx, k1, billDay, billDay.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	pending, err := s.BillActionsPending(ctx, k1, 0, 100)
	if err != nil || len(pending) != 14 {
		t.Fatalf("pending %d, %v", len(pending), err)
	}
	// Run 1 acts on everything but one whose action cannot be taken yet.
	var skipped BillDifference
	for _, d := range pending {
		if d.Kind == DiffRefundUnknown {
			skipped = d
			if err := s.RecordBillAction(ctx, d.ID, "not taken: no refunds yet", false); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := s.RecordBillAction(ctx, d.ID, "done by run 1", true); err != nil {
			t.Fatal(err)
		}
	}
	if more, _ := s.BillActionsPending(ctx, k1, pending[len(pending)-1].ID, 100); len(more) != 0 {
		t.Fatalf("keyset page after the last: %v", more)
	}
	if _, err := s.FinishBillRun(ctx, k1, BillDifferences, ""); err != nil {
		t.Fatal(err)
	}
	// Between the runs the PENDING order was confirmed.
	if _, err := s.MarkPaid(ctx, MarkPaidParams{OutTradeNo: "WECHAT0001", TransactionID: "TX-WECHAT0001", PaidAt: billDay.Add(9 * time.Hour)}); err != nil {
		t.Fatal(err)
	}

	k2 := beginRun(t, s, "run-2")
	if _, err := s.LoadBillStage(ctx, k2, rowsOf(bill)); err != nil {
		t.Fatal(err)
	}
	res, err := s.DiffBill(ctx, k2, billDay, billDay.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if res.Matched != 6 || res.Kinds[DiffPaidAtWeChatOnly] != 2 || res.Total() != 13 || slices.ContainsFunc(slices.Collect(maps.Values(res.New)), func(n int) bool { return n != 0 }) {
		t.Fatalf("re-run %+v", res)
	}
	pending, err = s.BillActionsPending(ctx, k2, 0, 100)
	if err != nil || len(pending) != 1 || pending[0].ID != skipped.ID || pending[0].Action != "not taken: no refunds yet" {
		t.Fatalf("re-run pending %+v, %v", pending, err)
	}
	if _, err := s.FinishBillRun(ctx, k2, BillDifferences, ""); err != nil {
		t.Fatal(err)
	}
	run, err := s.LatestBillRun(ctx, billMch, billDate, 100)
	if err != nil || run.RunID != "run-2" || len(run.Differences) != 13 {
		t.Fatalf("latest %+v, %v", run, err)
	}
	for _, d := range run.Differences {
		if d.OutTradeNo == "WECHAT0001" {
			t.Errorf("a difference that went away is shown: %+v", d)
		}
		if d.ID != skipped.ID && (d.Action != "done by run 1" || d.ActionDoneAt == nil) {
			t.Errorf("action lost or repeated: %+v", d)
		}
	}
	var total, links int
	if err := s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM bill_differences), (SELECT count(*) FROM bill_run_differences)`).Scan(&total, &links); err != nil {
		t.Fatal(err)
	}
	if total != 14 || links != 27 {
		t.Fatalf("%d differences, %d links; want 14 and 14+13", total, links)
	}
	// A done action is never overwritten.
	if err := s.RecordBillAction(ctx, run.Differences[0].ID, "again", true); err != nil {
		t.Fatal(err)
	}
	again, _ := s.LatestBillRun(ctx, billMch, billDate, 100)
	if again.Differences[0].Action != run.Differences[0].Action {
		t.Fatalf("action rewritten: %+v", again.Differences[0])
	}
}

// A bill that does not check out (the reader fails at the end) changes
// nothing: no staging table, no rows counted.
func TestLoadBillStageFailureLeavesNothing(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	k := beginRun(t, s, "run-1")
	bad := errors.New("bill: SHA-1 differs")
	i := 0
	_, err := s.LoadBillStage(ctx, k, func() (BillStageRow, error) {
		i++
		if i > 1000 {
			return BillStageRow{}, bad
		}
		return pay(fmt.Sprintf("ORDER%06d", i), "TX", 1), nil
	})
	if !errors.Is(err, bad) {
		t.Fatalf("err %v", err)
	}
	var tables int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM pg_class WHERE relname LIKE 'bill_stage_%'`).Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("%d staging tables, %v", tables, err)
	}
	if _, err := s.DiffBill(ctx, k, billDay, billDay.Add(24*time.Hour)); !errors.Is(err, ErrBillStageLost) {
		t.Fatalf("diff without a load: %v", err)
	}
	run, err := s.FinishBillRun(ctx, k, BillFailed, "SHA-1 differs")
	if err != nil || run.Status != BillFailed || run.Error != "SHA-1 differs" || run.BillRows != 0 {
		t.Fatalf("finish %+v, %v", run, err)
	}
	var diffs int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM bill_differences`).Scan(&diffs); err != nil || diffs != 0 {
		t.Fatalf("%d differences", diffs)
	}
	// A finished run is not loaded into again.
	if _, err := s.LoadBillStage(ctx, k, rowsOf(nil)); err == nil {
		t.Fatal("loaded into a finished run")
	}
}

// The unlogged staging table does not survive a crash; the comparison
// notices instead of finding nothing to compare.
func TestDiffBillNoticesLostStage(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	k := beginRun(t, s, "run-1")
	if _, err := s.LoadBillStage(ctx, k, rowsOf([]BillStageRow{pay("A00001", "TX1", 1), pay("A00002", "TX2", 1)})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `TRUNCATE `+stageTable(k)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DiffBill(ctx, k, billDay, billDay.Add(24*time.Hour)); !errors.Is(err, ErrBillStageLost) {
		t.Fatalf("err %v", err)
	}
}

func TestBillRunsAndDays(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if _, err := s.LatestBillRun(ctx, billMch, billDate, 10); !errors.Is(err, ErrNoBillRun) {
		t.Fatalf("no run: %v", err)
	}
	if days, err := s.PendingBillDays(ctx, billMch, "2026-11-01", "2026-11-25", 10); err != nil || len(days) != 0 {
		t.Fatalf("no orders, nothing to reconcile: %v %v", days, err)
	}
	// The first order was made on 2026-11-21, Beijing time (late on the 20th in UTC).
	if _, err := s.CreateOrder(ctx, NewOrder{OutTradeNo: "FIRST00001", AmountFen: 1, Description: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `UPDATE orders SET created_at = $1`, time.Date(2026, 11, 21, 0, 30, 0, 0, beijing)); err != nil {
		t.Fatal(err)
	}
	for date, status := range map[string]string{"2026-11-22": BillMatched, "2026-11-23": BillFailed, "2026-11-24": BillNoBill} {
		k := BillRunKey{MchID: billMch, Date: date, RunID: "r-" + date}
		if err := s.BeginBillRun(ctx, k, time.Time{}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.FinishBillRun(ctx, k, status, ""); err != nil {
			t.Fatal(err)
		}
	}
	days, err := s.PendingBillDays(ctx, billMch, "2026-11-01", "2026-11-25", 10)
	if err != nil || !slices.Equal(days, []string{"2026-11-25", "2026-11-23", "2026-11-21"}) {
		t.Fatalf("pending days %v, %v", days, err)
	}
	if days, _ := s.PendingBillDays(ctx, "another", "2026-11-01", "2026-11-25", 2); !slices.Equal(days, []string{"2026-11-25", "2026-11-24"}) {
		t.Fatalf("another merchant's days %v", days)
	}
	if day, ok, err := s.LastReconciledBillDay(ctx, billMch); err != nil || !ok || day != "2026-11-24" {
		t.Fatalf("last reconciled %s %v %v", day, ok, err)
	}
	// The latest run by started_at is the one shown; a second begin of the
	// same run changes nothing.
	early, late := time.Date(2026, 11, 26, 10, 30, 0, 0, beijing), time.Date(2026, 11, 26, 11, 0, 0, 0, beijing)
	for _, r := range []struct {
		id string
		at time.Time
	}{{"b-late", late}, {"a-early", early}, {"b-late", early}} {
		if err := s.BeginBillRun(ctx, BillRunKey{MchID: billMch, Date: billDate, RunID: r.id}, r.at); err != nil {
			t.Fatal(err)
		}
	}
	run, err := s.LatestBillRun(ctx, billMch, billDate, 10)
	if err != nil || run.RunID != "b-late" || !run.StartedAt.Equal(late) || run.Status != BillRunning || run.FinishedAt != nil ||
		run.Differences == nil {
		t.Fatalf("latest %+v, %v", run, err)
	}
	if _, err := s.FinishBillRun(ctx, run.BillRunKey, BillRunning, ""); err == nil {
		t.Fatal("RUNNING accepted as a final status")
	}
}

// Differences beyond the caller's limit are cut and said to be.
func TestLatestBillRunTruncates(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	k := beginRun(t, s, "run-1")
	var rows []BillStageRow
	for i := range 5 {
		rows = append(rows, pay(fmt.Sprintf("NOBODY%04d", i), fmt.Sprintf("TX%d", i), 1))
	}
	if _, err := s.LoadBillStage(ctx, k, rowsOf(rows)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DiffBill(ctx, k, billDay, billDay.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	run, err := s.LatestBillRun(ctx, billMch, billDate, 3)
	if err != nil || len(run.Differences) != 3 || !run.Truncated {
		t.Fatalf("%d differences, truncated %v, %v", len(run.Differences), run.Truncated, err)
	}
}
