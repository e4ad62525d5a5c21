package activities

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/payflow/payflow/internal/pgtest"
	"github.com/payflow/payflow/metrics"
	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/store"
	"github.com/payflow/payflow/wechatpay"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Shutdown()
	os.Exit(code)
}

const refundMch = "1230000109"

// fakeRefunds answers ApplyRefund and QueryRefund as told per out_refund_no.
type fakeRefunds struct {
	mu      sync.Mutex
	applies []payment.RefundRequest
	queries []string
	apply   map[string]error               // out_refund_no → the apply's error; nil: accepted
	query   map[string]payment.RefundTrade // out_refund_no → the query's answer
	qerr    map[string]error
}

func (f *fakeRefunds) ApplyRefund(_ context.Context, req payment.RefundRequest) (payment.RefundTrade, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applies = append(f.applies, req)
	if err := f.apply[req.OutRefundNo]; err != nil {
		return payment.RefundTrade{}, err
	}
	return payment.RefundTrade{OutRefundNo: req.OutRefundNo, RefundID: "50000-" + req.OutRefundNo, OutTradeNo: req.OutTradeNo,
		Status: payment.RefundProcessing, AmountFen: req.AmountFen, TotalFen: req.TotalFen}, nil
}

func (f *fakeRefunds) QueryRefund(_ context.Context, no string) (payment.RefundTrade, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, no)
	if err := f.qerr[no]; err != nil {
		return payment.RefundTrade{}, err
	}
	t, ok := f.query[no]
	if !ok {
		return payment.RefundTrade{}, fmt.Errorf("query: %w", wechatpay.ClassifyRefundQuery(
			&wechatpay.APIError{Op: "v3 refund query", HTTPStatus: 404, Code: "RESOURCE_NOT_EXISTS", Message: "退款单不存在"}))
	}
	return t, nil
}

type refundsTest struct {
	r      *Refunds
	st     *store.Store
	wechat *fakeRefunds
	reg    *prometheus.Registry
	env    *testsuite.TestActivityEnvironment
}

func newRefundsTest(t *testing.T) *refundsTest {
	t.Helper()
	st := newStore(t)
	reg := prometheus.NewRegistry()
	wc := &fakeRefunds{apply: map[string]error{}, query: map[string]payment.RefundTrade{}, qerr: map[string]error{}}
	r := &Refunds{Store: st, WeChat: wc, MchID: refundMch, NotifyURL: "https://m.example/wechatpay/v3/notify",
		Now: func() time.Time { return time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC) }, Metrics: metrics.New(reg)}
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(r)
	return &refundsTest{r: r, st: st, wechat: wc, reg: reg, env: env}
}

func (rt *refundsTest) paid(t *testing.T, no string, amount int64) {
	t.Helper()
	ctx := context.Background()
	if _, err := rt.st.CreateOrder(ctx, store.NewOrder{OutTradeNo: no, AmountFen: amount, Description: "tea"}); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.st.MarkPaid(ctx, store.MarkPaidParams{OutTradeNo: no, TransactionID: "tx-" + no}); err != nil {
		t.Fatal(err)
	}
}

// run executes an activity and decodes its result into out.
func (rt *refundsTest) run(t *testing.T, activity, in, out any) error {
	t.Helper()
	v, err := rt.env.ExecuteActivity(activity, in)
	if err != nil {
		return err
	}
	if err := v.Get(out); err != nil {
		t.Fatal(err)
	}
	return nil
}

// counter sums the counters (or histogram sample counts) of name whose
// labels include the given name/value pairs; -1 when there is none.
func (rt *refundsTest) counter(name string, labels ...string) float64 {
	mf, _ := rt.reg.Gather()
	sum, found := 0.0, false
	for _, f := range mf {
		if f.GetName() != name {
			continue
		}
	metric:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue metric
				}
			}
			found = true
			if m.GetCounter() != nil {
				sum += m.GetCounter().GetValue()
			} else {
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	if !found {
		return -1
	}
	return sum
}

// appErr checks that err is a non-retryable ApplicationError of type typ.
func appErr(t *testing.T, err error, typ string) {
	t.Helper()
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != typ || !ae.NonRetryable() {
		t.Errorf("err = %v, want a non-retryable %s", err, typ)
	}
}

func TestAcceptRefundActivity(t *testing.T) {
	rt := newRefundsTest(t)
	rt.paid(t, "order-ra1", 1000)
	var res AcceptRefundResult
	in := AcceptRefundInput{OutTradeNo: "order-ra1", OutRefundNo: "RA1", AmountFen: 600, Reason: "broken cup"}
	if err := rt.run(t, rt.r.AcceptRefund, in, &res); err != nil {
		t.Fatal(err)
	}
	if !res.Created || res.Refund.Status != payment.RefundProcessing || res.Refund.Source != payment.RefundSourceAPI || res.Refund.AmountFen != 600 {
		t.Fatalf("accepted %+v", res)
	}
	if err := rt.run(t, rt.r.AcceptRefund, in, &res); err != nil || res.Created {
		t.Fatalf("repeat: %+v %v", res, err)
	}
	if got := rt.counter(metrics.RefundsName, "status", "PROCESSING"); got != 1 {
		t.Errorf("PROCESSING counted %v times, want 1", got)
	}

	rt.paid(t, "order-ra2", 100)
	for typ, bad := range map[string]AcceptRefundInput{
		ErrTypeRefundConflict: {OutTradeNo: "order-ra2", OutRefundNo: "RA1", AmountFen: 600},
		ErrTypeExceedsPaid:    {OutTradeNo: "order-ra1", OutRefundNo: "RA2", AmountFen: 401},
		ErrTypeOrderNotFound:  {OutTradeNo: "order-none", OutRefundNo: "RA3", AmountFen: 1},
		ErrTypeInvalidRefund:  {OutTradeNo: "order-ra2", OutRefundNo: "R A", AmountFen: 1},
	} {
		err := rt.run(t, rt.r.AcceptRefund, bad, &res)
		appErr(t, err, typ)
	}
	for i := range store.MaxRefundsPerOrder {
		if err := rt.run(t, rt.r.AcceptRefund, AcceptRefundInput{OutTradeNo: "order-ra2", OutRefundNo: fmt.Sprintf("RB%d", i), AmountFen: 1}, &res); err != nil {
			t.Fatal(err)
		}
	}
	appErr(t, rt.run(t, rt.r.AcceptRefund, AcceptRefundInput{OutTradeNo: "order-ra2", OutRefundNo: "RB50", AmountFen: 1}, &res), ErrTypeTooManyRefunds)

	if _, err := rt.st.CreateOrder(context.Background(), store.NewOrder{OutTradeNo: "order-unpaid", AmountFen: 5}); err != nil {
		t.Fatal(err)
	}
	appErr(t, rt.run(t, rt.r.AcceptRefund, AcceptRefundInput{OutTradeNo: "order-unpaid", OutRefundNo: "RU", AmountFen: 1}, &res), ErrTypeNotRefundable)
	if n := len(rt.wechat.applies); n != 0 {
		t.Errorf("%d requests reached WeChat", n)
	}
}

func TestApplyRefundActivity(t *testing.T) {
	rt := newRefundsTest(t)
	ctx := context.Background()
	rt.paid(t, "order-ap", 1000)
	accept := func(no string, amount int64) {
		t.Helper()
		var res AcceptRefundResult
		if err := rt.run(t, rt.r.AcceptRefund, AcceptRefundInput{OutTradeNo: "order-ap", OutRefundNo: no, AmountFen: amount, Reason: "reason " + no}, &res); err != nil {
			t.Fatal(err)
		}
	}
	apply := func(no string) ApplyRefundResult {
		t.Helper()
		var res ApplyRefundResult
		if err := rt.run(t, rt.r.ApplyRefund, ApplyRefundInput{OutTradeNo: "order-ap", OutRefundNo: no}, &res); err != nil {
			t.Fatal(err)
		}
		return res
	}

	accept("AP-ok", 100)
	res := apply("AP-ok")
	if res.Outcome != ApplyAccepted || res.Trade.RefundID != "50000-AP-ok" || res.Refund.OutRefundNo != "AP-ok" {
		t.Fatalf("accepted: %+v", res)
	}
	req := rt.wechat.applies[0]
	if req != (payment.RefundRequest{OutTradeNo: "order-ap", OutRefundNo: "AP-ok", AmountFen: 100, TotalFen: 1000, Currency: "CNY",
		Reason: "reason AP-ok", NotifyURL: "https://m.example/wechatpay/v3/notify"}) {
		t.Errorf("request %+v", req)
	}
	if r, err := rt.st.GetRefund(ctx, refundMch, "order-ap", "AP-ok"); err != nil || r.RefundID != "50000-AP-ok" || r.Status != payment.RefundProcessing {
		t.Errorf("recorded: %+v %v", r, err)
	}

	answer := func(code string, status int, retryable bool) error {
		return fmt.Errorf("refund: %w", &wechatpay.APIError{Op: "v3 refund", HTTPStatus: status, Code: code, Message: "WeChat says " + code, Retryable: retryable})
	}
	for no, tc := range map[string]struct {
		err     error
		outcome string
		code    string
	}{
		"AP-notenough": {wechatpay.ClassifyRefundApply(answer("NOT_ENOUGH", 403, false)), ApplyNotEnough, "NOT_ENOUGH"},
		"AP-account":   {wechatpay.ClassifyRefundApply(answer("USER_ACCOUNT_ABNORMAL", 403, false)), ApplyRefused, "USER_ACCOUNT_ABNORMAL"},
		"AP-unpaid":    {wechatpay.ClassifyRefundApply(answer("RESOURCE_NOT_EXISTS", 404, false)), ApplyRefused, "RESOURCE_NOT_EXISTS"},
		"AP-500":       {answer("SYSTEM_ERROR", 500, true), ApplyAmbiguous, ""},
		"AP-429":       {answer("FREQUENCY_LIMITED", 429, true), ApplyAmbiguous, ""},
		"AP-timeout":   {context.DeadlineExceeded, ApplyAmbiguous, ""},
		"AP-unsigned":  {fmt.Errorf("answer: %w", wechatpay.ErrBadSignature), ApplyAmbiguous, ""},
		"AP-garbled":   {fmt.Errorf("answer: %w", wechatpay.ErrMalformed), ApplyAmbiguous, ""},
		"AP-sign":      {wechatpay.ClassifyRefundApply(answer("SIGN_ERROR", 401, false)), ApplyAmbiguous, ""},
	} {
		accept(no, 10)
		rt.wechat.apply[no] = tc.err
		res := apply(no)
		if res.Outcome != tc.outcome || res.Code != tc.code {
			t.Errorf("%s: %+v, want %s %s", no, res, tc.outcome, tc.code)
		}
		if (tc.code != "") != strings.HasPrefix(res.Message, "WeChat says") {
			t.Errorf("%s: message %q", no, res.Message)
		}
		if r, _ := rt.st.GetRefund(ctx, refundMch, "order-ap", no); r.Status != payment.RefundProcessing || r.RefundID != "" {
			t.Errorf("%s: the refund changed: %+v", no, r)
		}
	}
	for outcome, n := range map[string]float64{ApplyAccepted: 1, ApplyNotEnough: 1, ApplyRefused: 2, ApplyAmbiguous: 6} {
		if got := rt.counter(metrics.RefundAppliesName, "outcome", outcome); got != n {
			t.Errorf("%s counted %v, want %v", outcome, got, n)
		}
	}

	// The faults among them are counted as such (5xx, 429, timeout, unsigned at least).
	if got := rt.counter(metrics.WeChatFaultsName, "call", "refund"); got < 4 {
		t.Errorf("refund faults counted %v times, want at least 4", got)
	}

	// A final refund is not asked again.
	var mres MarkRefundResult
	if err := rt.run(t, rt.r.MarkRefund, MarkRefundInput{OutRefundNo: "AP-account", Status: payment.RefundFailed, Detail: "USER_ACCOUNT_ABNORMAL"}, &mres); err != nil {
		t.Fatal(err)
	}
	before := len(rt.wechat.applies)
	if res := apply("AP-account"); res.Outcome != ApplyAlreadyFinal || res.Refund.Status != payment.RefundFailed || len(rt.wechat.applies) != before {
		t.Errorf("final: %+v", res)
	}
	// Unknown refunds, refunds of another order, and portal refunds are never asked for.
	var out ApplyRefundResult
	appErr(t, rt.run(t, rt.r.ApplyRefund, ApplyRefundInput{OutTradeNo: "order-ap", OutRefundNo: "AP-none"}, &out), ErrTypeRefundNotFound)
	rt.paid(t, "order-ap2", 10)
	appErr(t, rt.run(t, rt.r.ApplyRefund, ApplyRefundInput{OutTradeNo: "order-ap2", OutRefundNo: "AP-ok"}, &out), ErrTypeRefundNotFound)
	var pres RecordPortalRefundResult
	if err := rt.run(t, rt.r.RecordPortalRefund, RecordPortalRefundInput{OutTradeNo: "order-ap2", OutRefundNo: "AP-portal", AmountFen: 5, RefundID: "50000-p"}, &pres); err != nil {
		t.Fatal(err)
	}
	appErr(t, rt.run(t, rt.r.ApplyRefund, ApplyRefundInput{OutTradeNo: "order-ap2", OutRefundNo: "AP-portal"}, &out), ErrTypeInvalidRefund)
	if len(rt.wechat.applies) != before {
		t.Errorf("WeChat was asked")
	}
}

func TestQueryRefundActivity(t *testing.T) {
	rt := newRefundsTest(t)
	rt.paid(t, "order-q", 1000)
	var ares AcceptRefundResult
	if err := rt.run(t, rt.r.AcceptRefund, AcceptRefundInput{OutTradeNo: "order-q", OutRefundNo: "Q1", AmountFen: 300}, &ares); err != nil {
		t.Fatal(err)
	}
	success := time.Date(2026, 11, 26, 10, 1, 0, 0, time.UTC)
	rt.wechat.query["Q1"] = payment.RefundTrade{OutRefundNo: "Q1", RefundID: "50000-Q1", OutTradeNo: "order-q", Status: payment.RefundSuccess,
		AmountFen: 300, TotalFen: 1000, SuccessTime: success}
	var res QueryRefundResult
	if err := rt.run(t, rt.r.QueryRefund, QueryRefundInput{OutTradeNo: "order-q", OutRefundNo: "Q1"}, &res); err != nil {
		t.Fatal(err)
	}
	if res.Outcome != QueryFound || res.Trade.Status != payment.RefundSuccess || !res.Trade.SuccessTime.Equal(success) || res.Mismatch != "" {
		t.Fatalf("found: %+v", res)
	}
	if err := rt.run(t, rt.r.QueryRefund, QueryRefundInput{OutTradeNo: "order-q", OutRefundNo: "Q2"}, &res); err != nil || res.Outcome != QueryNotFound {
		t.Fatalf("not found: %+v %v", res, err)
	}
	// WeChat's refund under our number for another amount or order.
	rt.wechat.query["Q1"] = payment.RefundTrade{OutRefundNo: "Q1", RefundID: "50000-Q1", OutTradeNo: "order-q", Status: payment.RefundProcessing, AmountFen: 301}
	if err := rt.run(t, rt.r.QueryRefund, QueryRefundInput{OutTradeNo: "order-q", OutRefundNo: "Q1"}, &res); err != nil || !strings.Contains(res.Mismatch, "301") {
		t.Fatalf("amount mismatch: %+v %v", res, err)
	}
	rt.wechat.query["Q1"] = payment.RefundTrade{OutRefundNo: "Q1", RefundID: "50000-Q1", OutTradeNo: "order-x", Status: payment.RefundProcessing, AmountFen: 300}
	if err := rt.run(t, rt.r.QueryRefund, QueryRefundInput{OutTradeNo: "order-q", OutRefundNo: "Q1"}, &res); err != nil || !strings.Contains(res.Mismatch, "order-x") {
		t.Fatalf("order mismatch: %+v %v", res, err)
	}

	// Faults are retried; a refused query is not.
	for no, qerr := range map[string]error{
		"Q-500":      &wechatpay.APIError{Op: "v3 refund query", HTTPStatus: 500, Code: "SYSTEM_ERROR", Retryable: true},
		"Q-net":      errors.New("connection reset by peer"),
		"Q-unsigned": fmt.Errorf("answer: %w", wechatpay.ErrBadSignature),
	} {
		rt.wechat.qerr[no] = qerr
		err := rt.run(t, rt.r.QueryRefund, QueryRefundInput{OutRefundNo: no}, &res)
		var ae *temporal.ApplicationError
		if err == nil || (errors.As(err, &ae) && ae.NonRetryable()) {
			t.Errorf("%s: %v, want a retryable error", no, err)
		}
	}
	if got := rt.counter(metrics.WeChatFaultsName, "call", "refund_query"); got < 3 {
		t.Errorf("refund query faults counted %v times, want 3", got)
	}
	// A signed refusal that is not RESOURCE_NOT_EXISTS: retried if the
	// fault classification calls it one (our configuration), else refused.
	refused := &wechatpay.APIError{Op: "v3 refund query", HTTPStatus: 403, Code: "REFUND_QUERY_FORBIDDEN"}
	rt.wechat.qerr["Q-refused"] = refused
	err := rt.run(t, rt.r.QueryRefund, QueryRefundInput{OutRefundNo: "Q-refused"}, &res)
	if _, fault := wechatpay.Fault(refused); fault {
		var ae *temporal.ApplicationError
		if err == nil || (errors.As(err, &ae) && ae.NonRetryable()) {
			t.Errorf("refused query, a fault: %v, want a retryable error", err)
		}
	} else {
		appErr(t, err, ErrTypeRefundQueryRejected)
	}

	// Without v3 credentials there is no refund client: refused, not retried.
	rt.r.WeChat = nil
	appErr(t, rt.run(t, rt.r.QueryRefund, QueryRefundInput{OutRefundNo: "Q1"}, &res), ErrTypeRefundsUnavailable)
	var ap ApplyRefundResult
	appErr(t, rt.run(t, rt.r.ApplyRefund, ApplyRefundInput{OutTradeNo: "order-q", OutRefundNo: "Q1"}, &ap), ErrTypeRefundsUnavailable)
}

func TestMarkRefundActivity(t *testing.T) {
	rt := newRefundsTest(t)
	rt.paid(t, "order-mk", 500)
	var ares AcceptRefundResult
	for _, a := range []AcceptRefundInput{{OutTradeNo: "order-mk", OutRefundNo: "MK1", AmountFen: 200}, {OutTradeNo: "order-mk", OutRefundNo: "MK2", AmountFen: 300}} {
		if err := rt.run(t, rt.r.AcceptRefund, a, &ares); err != nil {
			t.Fatal(err)
		}
	}
	var res MarkRefundResult
	abnormal := MarkRefundInput{OutRefundNo: "MK2", Status: payment.RefundAbnormal, RefundID: "50000-MK2", Detail: "card cancelled"}
	for range 2 {
		if err := rt.run(t, rt.r.MarkRefund, abnormal, &res); err != nil {
			t.Fatal(err)
		}
	}
	if rt.counter(metrics.RefundsName, "status", "ABNORMAL") != 1 {
		t.Errorf("ABNORMAL counted %v times", rt.counter(metrics.RefundsName, "status", "ABNORMAL"))
	}
	success := ares.Refund.CreatedAt.Add(90 * time.Second)
	for _, no := range []string{"MK1", "MK2", "MK2"} {
		if err := rt.run(t, rt.r.MarkRefund, MarkRefundInput{OutRefundNo: no, Status: payment.RefundSuccess, SuccessTime: success}, &res); err != nil {
			t.Fatal(err)
		}
	}
	if res.Changed || res.OrderTo != payment.StatusRefunded || res.Refund.Status != payment.RefundSuccess {
		t.Fatalf("repeat of the last SUCCESS: %+v", res)
	}
	o, err := rt.st.GetOrder(context.Background(), "order-mk")
	if err != nil || o.Status != payment.StatusRefunded || o.RefundedFen != 500 {
		t.Fatalf("order %+v %v", o, err)
	}
	if got := rt.counter(metrics.OrdersFinalName, "status", "REFUNDED"); got != 1 {
		t.Errorf("REFUNDED counted %v times, want 1", got)
	}
	if got := rt.counter(metrics.RefundsName, "status", "SUCCESS"); got != 2 {
		t.Errorf("SUCCESS counted %v times, want 2", got)
	}
	if got := rt.counter(metrics.RefundSuccessSecondsName); got != 2 {
		t.Errorf("time to SUCCESS observed %v times, want 2", got)
	}
	appErr(t, rt.run(t, rt.r.MarkRefund, MarkRefundInput{OutRefundNo: "MK9", Status: payment.RefundSuccess}, &res), ErrTypeRefundNotFound)
	appErr(t, rt.run(t, rt.r.MarkRefund, MarkRefundInput{OutRefundNo: "MK1", Status: "DONE"}, &res), ErrTypeInvalidRefund)
}

func TestRecordPortalRefundActivity(t *testing.T) {
	rt := newRefundsTest(t)
	rt.paid(t, "order-pt", 800)
	var res RecordPortalRefundResult
	in := RecordPortalRefundInput{OutTradeNo: "order-pt", OutRefundNo: "PT1", AmountFen: 800, RefundID: "50000-PT1",
		Status: payment.RefundSuccess, SuccessTime: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)}
	for i := range 2 {
		if err := rt.run(t, rt.r.RecordPortalRefund, in, &res); err != nil {
			t.Fatal(err)
		}
		if res.Created != (i == 0) || res.Refund.Source != payment.RefundSourcePortal || res.Refund.Status != payment.RefundSuccess {
			t.Fatalf("portal %d: %+v", i, res)
		}
	}
	if o, _ := rt.st.GetOrder(context.Background(), "order-pt"); o.Status != payment.StatusRefunded || o.RefundedFen != 800 {
		t.Fatalf("order %+v", o)
	}
	if got := rt.counter(metrics.OrdersFinalName, "status", "REFUNDED"); got != 1 {
		t.Errorf("REFUNDED counted %v", got)
	}
	if got := rt.counter(metrics.RefundsName, "status", "SUCCESS"); got != 1 {
		t.Errorf("SUCCESS counted %v", got)
	}
	// One more, beyond what was paid: recorded, flagged for REVIEW.
	more := RecordPortalRefundInput{OutTradeNo: "order-pt", OutRefundNo: "PT2", AmountFen: 1, RefundID: "50000-PT2"}
	if err := rt.run(t, rt.r.RecordPortalRefund, more, &res); err != nil || !res.LimitsExceeded || !res.Created {
		t.Fatalf("beyond: %+v %v", res, err)
	}
	appErr(t, rt.run(t, rt.r.RecordPortalRefund, RecordPortalRefundInput{OutTradeNo: "order-none", OutRefundNo: "PT3", AmountFen: 1}, &res), ErrTypeOrderNotFound)
	appErr(t, rt.run(t, rt.r.RecordPortalRefund, RecordPortalRefundInput{OutTradeNo: "order-pt", OutRefundNo: "PT2", AmountFen: 2}, &res), ErrTypeRefundConflict)
}
