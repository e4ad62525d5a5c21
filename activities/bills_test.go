package activities

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/payflow/payflow/store"
	"github.com/payflow/payflow/wechatpay"
)

const testMch = "1900000109"

var (
	bj      = time.FixedZone("CST", 8*3600)
	testDay = time.Date(2026, 11, 25, 0, 0, 0, 0, bj)
)

// billLine is one detail row of a test bill.
type billLine struct {
	state                 string // SUCCESS or REFUND
	no, txid              string
	fen                   int64
	outRefundNo, refundID string
	refundStatus          string
}

// wechatBill renders lines in WeChat's ALL format (byte order mark, CRLF,
// back-ticks, yuan) and returns the gzip file and the SHA-1 of the text.
func wechatBill(lines []billLine) ([]byte, string) {
	var b strings.Builder
	b.WriteString("\uFEFF交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类," +
		"应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注\r\n")
	yuan := func(f int64) string { return fmt.Sprintf("%d.%02d", f/100, f%100) }
	var settle, refunds, orders int64
	for _, l := range lines {
		f := []string{"2026-11-25 10:00:00", "wx8888888888888888", testMch, "0", "", l.txid, l.no, "o1", "NATIVE", l.state, "OTHERS", "CNY"}
		if l.state == "REFUND" {
			f = append(f, "0.00", "0.00", l.refundID, l.outRefundNo, yuan(l.fen), "0.00", "ORIGINAL", l.refundStatus, "x", "", "0.00000", "0.60%", "0.00", yuan(l.fen), "")
			refunds += l.fen
		} else {
			f = append(f, yuan(l.fen), "0.00", "0", "0", "0.00", "0.00", "", "", "x", "", "0.00000", "0.60%", yuan(l.fen), "0.00", "")
			settle += l.fen
			orders += l.fen
		}
		b.WriteString("`" + strings.Join(f, ",`") + "\r\n")
	}
	b.WriteString("总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n")
	fmt.Fprintf(&b, "`%d,`%s,`%s,`0.00,`0.00000,`%s,`%s\r\n", len(lines), yuan(settle), yuan(refunds), yuan(orders), yuan(refunds))
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	_, _ = io.WriteString(zw, b.String())
	_ = zw.Close()
	sum := sha1.Sum([]byte(b.String()))
	return z.Bytes(), hex.EncodeToString(sum[:])
}

// fakeBills serves one bill per date, or the error set for it.
type fakeBills struct {
	mu       sync.Mutex
	bills    map[string][]byte
	hashes   map[string]string
	locate   map[string]error
	open     map[string]error
	opened   int
	wrongSHA bool
}

func (f *fakeBills) LocateBill(_ context.Context, date string) (wechatpay.BillLink, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.locate[date]; err != nil {
		return wechatpay.BillLink{}, err
	}
	h := f.hashes[date]
	if f.wrongSHA {
		h = strings.Repeat("0", 40)
	}
	return wechatpay.BillLink{Date: date, HashType: "SHA1", HashValue: h, DownloadURL: "https://api.mch.weixin.qq.com/v3/billdownload/file?token=" + date}, nil
}

func (f *fakeBills) OpenBill(_ context.Context, link wechatpay.BillLink) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opened++
	if err := f.open[link.Date]; err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(f.bills[link.Date])), nil
}

// recordingActions records what the bill asked of order workflows.
type recordingActions struct {
	mu    sync.Mutex
	calls []string
	fail  map[string]error // by method
}

func (r *recordingActions) record(method, call string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.fail[method]; err != nil {
		return err
	}
	r.calls = append(r.calls, call)
	return nil
}

func (r *recordingActions) ConfirmPayment(_ context.Context, no, reason string) error {
	return r.record("confirm", "confirm "+no)
}

func (r *recordingActions) SendToReview(_ context.Context, no, reason, key string) error {
	if reason == "" {
		return errors.New("no reason")
	}
	return r.record("review", "review "+no+" "+key)
}

func (r *recordingActions) TrackRefund(_ context.Context, no, outRefundNo, refundID string, amountFen int64, reason string) error {
	return r.record("refund", fmt.Sprintf("refund %s %s %s %d", no, outRefundNo, refundID, amountFen))
}

func (r *recordingActions) sorted() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.calls)
	slices.Sort(out)
	return out
}

type billFixture struct {
	st      *store.Store
	bills   *fakeBills
	actions *recordingActions
	acts    *BillActivities
	env     *testsuite.TestActivityEnvironment
}

func newBillFixture(t *testing.T) *billFixture {
	t.Helper()
	st := newStore(t)
	f := &billFixture{st: st, bills: &fakeBills{bills: map[string][]byte{}, hashes: map[string]string{}, locate: map[string]error{}, open: map[string]error{}},
		actions: &recordingActions{fail: map[string]error{}}}
	f.acts = &BillActivities{Store: st, Bills: f.bills, Orders: f.actions, MchID: testMch}
	var suite testsuite.WorkflowTestSuite
	f.env = suite.NewTestActivityEnvironment()
	f.env.RegisterActivity(f.acts)
	return f
}

func (f *billFixture) order(t *testing.T, no string, fen int64, paidTx string) {
	t.Helper()
	ctx := context.Background()
	if _, err := f.st.CreateOrder(ctx, store.NewOrder{OutTradeNo: no, AmountFen: fen, Description: "coffee"}); err != nil {
		t.Fatal(err)
	}
	if paidTx != "" {
		if _, err := f.st.MarkPaid(ctx, store.MarkPaidParams{OutTradeNo: no, TransactionID: paidTx, PaidAt: testDay.Add(10 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
}

// runDay runs the activities as the workflow does, for a run id.
func (f *billFixture) runDay(t *testing.T, runID string) (DiffBillResult, ActOnDifferencesResult, error) {
	t.Helper()
	date := testDay.Format(wechatpay.BillDateLayout)
	if _, err := f.env.ExecuteActivity(f.acts.BeginBillRun, BeginBillRunInput{Date: date, RunID: runID}); err != nil {
		t.Fatal(err)
	}
	v, err := f.env.ExecuteActivity(f.acts.LocateBill, LocateBillInput{Date: date})
	if err != nil {
		t.Fatal(err)
	}
	var loc LocateBillResult
	if err := v.Get(&loc); err != nil || loc.Status != BillReady {
		t.Fatalf("locate %+v, %v", loc, err)
	}
	if _, err := f.env.ExecuteActivity(f.acts.LoadBill, LoadBillInput{Date: date, RunID: runID, Link: loc.Link}); err != nil {
		return DiffBillResult{}, ActOnDifferencesResult{}, err
	}
	v, err = f.env.ExecuteActivity(f.acts.DiffBill, DiffBillInput{Date: date, RunID: runID})
	if err != nil {
		t.Fatal(err)
	}
	var diff DiffBillResult
	if err := v.Get(&diff); err != nil {
		t.Fatal(err)
	}
	v, err = f.env.ExecuteActivity(f.acts.ActOnDifferences, ActOnDifferencesInput{Date: date, RunID: runID})
	if err != nil {
		return diff, ActOnDifferencesResult{}, err
	}
	var act ActOnDifferencesResult
	if err := v.Get(&act); err != nil {
		t.Fatal(err)
	}
	return diff, act, nil
}

func TestBillActivitiesActOnEveryKindOnce(t *testing.T) {
	f := newBillFixture(t)
	ctx := context.Background()
	f.order(t, "MATCH0001", 1000, "TX1")
	f.order(t, "AMOUNT0001", 1000, "TX2")
	f.order(t, "PENDING001", 500, "")
	f.order(t, "CLOSED0001", 500, "")
	if _, err := f.st.MarkClosed(ctx, "CLOSED0001", "expired", "closed"); err != nil {
		t.Fatal(err)
	}
	f.order(t, "REVIEW0001", 500, "")
	if _, err := f.st.MarkReview(ctx, store.MarkReviewParams{OutTradeNo: "REVIEW0001", Reason: "unknown state", Key: "review"}); err != nil {
		t.Fatal(err)
	}
	f.order(t, "HERE000001", 700, "TX3")
	f.order(t, "REVIEWAMT1", 800, "")
	if _, err := f.st.MarkReview(ctx, store.MarkReviewParams{OutTradeNo: "REVIEWAMT1", Reason: "amount differs", Key: "review"}); err != nil {
		t.Fatal(err)
	}
	date := testDay.Format(wechatpay.BillDateLayout)
	f.bills.bills[date], f.bills.hashes[date] = wechatBill([]billLine{
		{state: "SUCCESS", no: "MATCH0001", txid: "TX1", fen: 1000},
		{state: "SUCCESS", no: "REVIEWAMT1", txid: "TX8", fen: 900},
		{state: "SUCCESS", no: "AMOUNT0001", txid: "TX2", fen: 999},
		{state: "SUCCESS", no: "PENDING001", txid: "TX4", fen: 500},
		{state: "SUCCESS", no: "CLOSED0001", txid: "TX5", fen: 500},
		{state: "SUCCESS", no: "REVIEW0001", txid: "TX6", fen: 500},
		{state: "SUCCESS", no: "STRANGER01", txid: "TX7", fen: 100},
		{state: "REFUND", no: "MATCH0001", txid: "TX1", fen: 300, outRefundNo: "RF-PORTAL", refundID: "50300001", refundStatus: "SUCCESS"},
	})

	diff, act, err := f.runDay(t, "run-1")
	if err != nil {
		t.Fatal(err)
	}
	if diff.Matched != 1 || diff.Differences != 8 || act.Taken != 8 || act.NotTaken != 0 {
		t.Fatalf("diff %+v act %+v", diff, act)
	}
	want := []string{
		"confirm CLOSED0001",
		"confirm PENDING001",
		"refund MATCH0001 RF-PORTAL 50300001 300",
		"review AMOUNT0001 review:bill:2026-11-25:amount_mismatch:AMOUNT0001",
		"review HERE000001 review:bill:2026-11-25:paid_here_only:HERE000001",
	}
	if got := f.actions.sorted(); !slices.Equal(got, want) {
		t.Fatalf("calls\n%q\nwant\n%q", got, want)
	}
	if _, err := f.env.ExecuteActivity(f.acts.FinishBillRun, FinishBillRunInput{Date: date, RunID: "run-1", Status: store.BillDifferences}); err != nil {
		t.Fatal(err)
	}
	run, err := f.st.LatestBillRun(ctx, testMch, date, 100)
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]string{}
	for _, d := range run.Differences {
		actions[d.Kind+" "+d.OutTradeNo] = d.Action
		if d.ActionDoneAt == nil {
			t.Errorf("%s %s: no action time", d.Kind, d.OutTradeNo)
		}
	}
	for k, v := range map[string]string{
		"paid_at_wechat_only PENDING001": ActionConfirm, "paid_at_wechat_only CLOSED0001": ActionConfirm,
		"paid_at_wechat_only REVIEW0001": ActionAlreadyReview, "amount_mismatch AMOUNT0001": ActionReview,
		"paid_here_only HERE000001": ActionReview, "unknown_order STRANGER01": ActionRecorded,
		"refund_unknown MATCH0001": ActionTrackRefund, "amount_mismatch REVIEWAMT1": ActionAlreadyReview,
	} {
		if actions[k] != v {
			t.Errorf("%s: action %q, want %q", k, actions[k], v)
		}
	}
	if run.Status != store.BillDifferences || run.BillRows != 8 || run.Matched != 1 {
		t.Fatalf("run %+v", run)
	}

	// The same day again: the same differences, nothing asked twice.
	diff, act, err = f.runDay(t, "run-2")
	if err != nil {
		t.Fatal(err)
	}
	if diff.Differences != 8 || act.Taken != 0 || len(f.actions.sorted()) != len(want) {
		t.Fatalf("re-run: diff %+v act %+v calls %v", diff, act, f.actions.sorted())
	}
	for _, n := range diff.New {
		if n != 0 {
			t.Fatalf("re-run found new differences: %+v", diff.New)
		}
	}
}

// An action the deployment cannot take yet is noted, not taken, and asked
// for again by the next run.
func TestBillActionUnavailableIsRetriedNextRun(t *testing.T) {
	f := newBillFixture(t)
	f.order(t, "MATCH0001", 1000, "TX1")
	date := testDay.Format(wechatpay.BillDateLayout)
	f.bills.bills[date], f.bills.hashes[date] = wechatBill([]billLine{
		{state: "SUCCESS", no: "MATCH0001", txid: "TX1", fen: 1000},
		{state: "REFUND", no: "MATCH0001", txid: "TX1", fen: 300, outRefundNo: "RF-PORTAL", refundID: "50300001", refundStatus: "SUCCESS"},
	})
	f.actions.fail["refund"] = fmt.Errorf("refunds are not wired: %w", ErrActionUnavailable)
	_, act, err := f.runDay(t, "run-1")
	if err != nil || act.Taken != 0 || act.NotTaken != 1 || !strings.Contains(act.Note, "not wired") {
		t.Fatalf("act %+v, %v", act, err)
	}
	run, _ := f.st.LatestBillRun(context.Background(), testMch, date, 10)
	if len(run.Differences) != 1 || run.Differences[0].ActionDoneAt != nil || !strings.HasPrefix(run.Differences[0].Action, "not taken yet") {
		t.Fatalf("difference %+v", run.Differences)
	}
	delete(f.actions.fail, "refund")
	_, act, err = f.runDay(t, "run-2")
	if err != nil || act.Taken != 1 || f.actions.sorted()[0] != "refund MATCH0001 RF-PORTAL 50300001 300" {
		t.Fatalf("second run: act %+v calls %v, %v", act, f.actions.sorted(), err)
	}
	// An action that fails otherwise fails the activity (Temporal retries it).
	f.order(t, "PENDING001", 500, "")
	f.bills.bills[date], f.bills.hashes[date] = wechatBill([]billLine{
		{state: "SUCCESS", no: "MATCH0001", txid: "TX1", fen: 1000},
		{state: "SUCCESS", no: "PENDING001", txid: "TX4", fen: 500},
	})
	f.actions.fail["confirm"] = errors.New("temporal unreachable")
	if _, _, err := f.runDay(t, "run-3"); err == nil || !strings.Contains(err.Error(), "temporal unreachable") {
		t.Fatalf("failing action: %v", err)
	}
}

// A bill whose SHA-1 differs is refused and changes nothing.
func TestBillWrongHashChangesNothing(t *testing.T) {
	f := newBillFixture(t)
	f.order(t, "PENDING001", 500, "")
	date := testDay.Format(wechatpay.BillDateLayout)
	f.bills.bills[date], f.bills.hashes[date] = wechatBill([]billLine{{state: "SUCCESS", no: "PENDING001", txid: "TX4", fen: 500}})
	f.bills.wrongSHA = true
	_, _, err := f.runDay(t, "run-1")
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != ErrTypeBillInvalid || !appErr.NonRetryable() || !strings.Contains(appErr.Error(), "SHA-1") {
		t.Fatalf("err %v", err)
	}
	if _, err := f.env.ExecuteActivity(f.acts.DiffBill, DiffBillInput{Date: date, RunID: "run-1"}); !errors.As(err, &appErr) || appErr.Type() != ErrTypeBillStageLost {
		t.Fatalf("diff after a refused load: %v", err)
	}
	if len(f.actions.sorted()) != 0 {
		t.Fatalf("calls %v", f.actions.sorted())
	}
}

func TestLocateAndOpenClassification(t *testing.T) {
	f := newBillFixture(t)
	// NO_AUTH is a fault of our configuration (wechatpay.Fault): asked
	// again within the activity's bounded retries. A signed answer that is
	// neither a fault nor a bill's state leaves the day without a bill.
	noAuth := &wechatpay.APIError{Op: "v3 tradebill", HTTPStatus: 403, Code: "NO_AUTH"}
	unavailable := &wechatpay.APIError{Op: "v3 tradebill", HTTPStatus: 403, Code: "ACCOUNT_ERROR"}
	busy := &wechatpay.APIError{Op: "v3 tradebill", HTTPStatus: 500, Code: "SYSTEM_ERROR", Retryable: true}
	f.bills.locate = map[string]error{
		"2026-11-24": fmt.Errorf("x: %w", wechatpay.ErrBillNotReady),
		"2026-11-23": fmt.Errorf("x: %w", wechatpay.ErrNoBill),
		"2026-11-22": unavailable,
		"2026-11-21": busy,
		"2026-11-25": noAuth,
	}
	for date, status := range map[string]string{"2026-11-24": BillNotReady, "2026-11-23": BillNone} {
		v, err := f.env.ExecuteActivity(f.acts.LocateBill, LocateBillInput{Date: date})
		var res LocateBillResult
		if err != nil || v.Get(&res) != nil || res.Status != status {
			t.Errorf("%s: %+v, %v", date, res, err)
		}
	}
	var appErr *temporal.ApplicationError
	if _, err := f.env.ExecuteActivity(f.acts.LocateBill, LocateBillInput{Date: "2026-11-22"}); !errors.As(err, &appErr) || appErr.Type() != ErrTypeBillUnavailable {
		t.Errorf("refused: %v", err)
	}
	for _, date := range []string{"2026-11-21", "2026-11-25"} {
		if _, err := f.env.ExecuteActivity(f.acts.LocateBill, LocateBillInput{Date: date}); err == nil || (errors.As(err, &appErr) && appErr.NonRetryable()) {
			t.Errorf("%s (busy, no auth): %v", date, err)
		}
	}
	f.bills.open = map[string]error{
		"2026-11-20": fmt.Errorf("x: %w", wechatpay.ErrBillLinkExpired),
		"2026-11-19": fmt.Errorf("x: %w", wechatpay.ErrNoBill),
		"2026-11-18": fmt.Errorf("x: %w", wechatpay.ErrBillNotReady),
	}
	for date, typ := range map[string]string{"2026-11-20": ErrTypeBillLinkExpired, "2026-11-19": ErrTypeNoBill, "2026-11-18": ErrTypeBillNotReady} {
		_, err := f.env.ExecuteActivity(f.acts.LoadBill, LoadBillInput{Date: date, RunID: "r", Link: wechatpay.BillLink{Date: date}})
		if !errors.As(err, &appErr) || appErr.Type() != typ || !appErr.NonRetryable() {
			t.Errorf("%s: %v, want %s", date, err, typ)
		}
	}
}

func TestPendingBillDaysWindow(t *testing.T) {
	f := newBillFixture(t)
	f.order(t, "FIRST00001", 100, "")
	v, err := f.env.ExecuteActivity(f.acts.PendingBillDays, PendingBillDaysInput{Today: time.Now().In(bj).Format(wechatpay.BillDateLayout), Window: 90, Limit: 5})
	var res PendingBillDaysResult
	if err != nil || v.Get(&res) != nil {
		t.Fatal(err)
	}
	// The first order is today's: no earlier day is ours to reconcile.
	if len(res.Days) != 0 {
		t.Fatalf("days %v", res.Days)
	}
}
