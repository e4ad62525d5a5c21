package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/payflow/payflow/internal/pgtest"
	"github.com/payflow/payflow/metrics"
	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/store"
	"github.com/payflow/payflow/wechatpay"
)

// The order activities in testsuite.TestActivityEnvironment, in the manner
// of reference-app-orders-go's activities_test.go, against a real
// PostgreSQL (a database of its own per test, on the cluster TestMain in
// refunds_test.go shuts down) and a fake WeChat Pay.

const envAppID = "wxd678efh567hg6787"

// envNow is the activities' clock.
var envNow = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

// fakeWeChat is WeChat Pay's order API answering as told; it records
// every call.
type fakeWeChat struct {
	mu       sync.Mutex
	prepays  []payment.PrepayRequest
	queries  []string
	closes   []string
	prepay   func(req payment.PrepayRequest) (payment.Prepay, error) // nil: a NATIVE code_url
	trade    payment.Trade
	queryErr error
	closeErr error
}

func (f *fakeWeChat) Prepay(_ context.Context, req payment.PrepayRequest) (payment.Prepay, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.prepays = append(f.prepays, req)
	if f.prepay != nil {
		return f.prepay(req)
	}
	return payment.Prepay{PrepayID: "wx" + req.OutTradeNo, CodeURL: "weixin://wxpay/bizpayurl?pr=" + req.OutTradeNo}, nil
}

func (f *fakeWeChat) QueryOrder(_ context.Context, no string) (payment.Trade, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, no)
	return f.trade, f.queryErr
}

func (f *fakeWeChat) CloseOrder(_ context.Context, no string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closes = append(f.closes, no)
	return f.closeErr
}

// newStore is a migrated store on a fresh database of the test's cluster.
func newStore(t *testing.T) *store.Store {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

// actEnv is the order activities on a fresh database.
type actEnv struct {
	a   *Activities
	st  *store.Store
	wc  *fakeWeChat
	reg *prometheus.Registry
	env *testsuite.TestActivityEnvironment
}

func newActEnv(t *testing.T) *actEnv {
	t.Helper()
	st := newStore(t)
	reg := prometheus.NewRegistry()
	wc := &fakeWeChat{}
	a := &Activities{Orders: st, WeChat: wc, AppID: envAppID, MchID: refundMch, NotifyURL: "https://m.example/wechatpay/notify",
		Now: func() time.Time { return envNow }, Metrics: metrics.New(reg),
		Settings: Settings{QueryAfter: time.Minute, OrderTimeout: 30 * time.Minute, RefundQueryAfter: 2 * time.Minute}}
	env := quietSuite().NewTestActivityEnvironment()
	env.RegisterActivity(a)
	return &actEnv{a: a, st: st, wc: wc, reg: reg, env: env}
}

// quietSuite is a test suite whose SDK logger is silent: the activities'
// expected failures would fill the output.
func quietSuite() *testsuite.WorkflowTestSuite {
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(log.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	return &suite
}

// run executes an activity and decodes its result into out (nil: none).
func (e *actEnv) run(t *testing.T, activity, in, out any) error {
	t.Helper()
	v, err := e.env.ExecuteActivity(activity, in)
	if err != nil || out == nil {
		return err
	}
	if err := v.Get(out); err != nil {
		t.Fatal(err)
	}
	return nil
}

// count sums the series of a counter whose labels include the given
// name/value pairs (-1: none).
func (e *actEnv) count(name string, labels ...string) float64 {
	return (&refundsTest{reg: e.reg}).counter(name, labels...)
}

// final is payflow_orders_final_total{status}.
func (e *actEnv) final(s payment.Status) float64 {
	return e.count(metrics.OrdersFinalName, "status", string(s))
}

// order creates an order in status (PENDING, PAID by "tx-"+no, CLOSED or
// REVIEW) as the api and the workflow would have left it.
func (e *actEnv) order(t *testing.T, no string, amount int64, status payment.Status) payment.Order {
	t.Helper()
	ctx := context.Background()
	if _, err := e.st.CreateOrder(ctx, store.NewOrder{OutTradeNo: no, AmountFen: amount, Description: "tea"}); err != nil {
		t.Fatal(err)
	}
	var err error
	switch status {
	case payment.StatusPaid:
		_, err = e.st.MarkPaid(ctx, store.MarkPaidParams{OutTradeNo: no, TransactionID: "tx-" + no})
	case payment.StatusClosed:
		_, err = e.st.MarkClosed(ctx, no, "expired", "closed:expired")
	case payment.StatusReview:
		_, err = e.st.MarkReview(ctx, store.MarkReviewParams{OutTradeNo: no, Reason: "unknown trade state", Key: "review:test"})
	}
	if err != nil {
		t.Fatal(err)
	}
	return e.get(t, no)
}

func (e *actEnv) get(t *testing.T, no string) payment.Order {
	t.Helper()
	o, err := e.st.GetOrder(context.Background(), no)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// retryable checks that err is one Temporal retries: not a non-retryable
// ApplicationError; wait is the least delay it asks for (0: the policy's).
func retryable(t *testing.T, err error, wait time.Duration) {
	t.Helper()
	var ae *temporal.ApplicationError
	switch {
	case err == nil:
		t.Errorf("no error, want a retryable one")
	case errors.As(err, &ae) && ae.NonRetryable():
		t.Errorf("err = %v, non-retryable %s; want it retried", err, ae.Type())
	case errors.As(err, &ae) && ae.NextRetryDelay() != wait:
		t.Errorf("err = %v waits %s, want %s", err, ae.NextRetryDelay(), wait)
	case wait != 0 && !errors.As(err, &ae):
		t.Errorf("err = %v, want it to wait %s", err, wait)
	}
}

// faultCases are answers that say nothing about the payment, as the
// clients of wechatpay/apiv2 and wechatpay/apiv3 return them, with the
// kind they are counted as and the least wait before the next attempt.
var faultCases = []struct {
	name string
	err  error
	kind string
	wait time.Duration
}{
	{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, wechatpay.FaultNetwork, 0},
	{"no answer in time", context.DeadlineExceeded, wechatpay.FaultTimeout, 0},
	{"a gateway's unsigned 502", &wechatpay.UnverifiedError{Op: "v3", HTTPStatus: 502, Err: wechatpay.ErrMissingSign}, wechatpay.FaultHTTP5xx, 0},
	{"signed SYSTEM_ERROR", &wechatpay.APIError{Op: "v3", HTTPStatus: 500, Code: "SYSTEM_ERROR", Retryable: true}, wechatpay.FaultSystemError, 0},
	{"v2 SYSTEMERROR", &wechatpay.APIError{Op: "v2", HTTPStatus: 200, Code: wechatpay.CodeSystemError, Retryable: true}, wechatpay.FaultSystemError, 0},
	{"429", &wechatpay.APIError{Op: "v3", HTTPStatus: 429, Code: "FREQUENCY_LIMITED"}, wechatpay.FaultRateLimited, wechatpay.RateLimitWait},
	{"202: call again", &wechatpay.APIError{Op: "v3", HTTPStatus: 202, Code: wechatpay.CodeAccepted}, wechatpay.FaultAccepted, 0},
	{"a proxy's unsigned 403 page", &wechatpay.UnverifiedError{Op: "v3", HTTPStatus: 403, Err: wechatpay.ErrMissingSign}, wechatpay.FaultUnsigned, 0},
	{"a signature that does not verify", &wechatpay.UnverifiedError{Op: "v3", HTTPStatus: 200, Err: wechatpay.ErrBadSignature}, wechatpay.FaultBadSignature, 0},
	{"a key we do not hold", &wechatpay.UnverifiedError{Op: "v3", HTTPStatus: 200, Err: wechatpay.ErrUnknownKey}, wechatpay.FaultUnknownKey, wechatpay.SlowFaultWait},
	{"our clock is off", &wechatpay.UnverifiedError{Op: "v3", HTTPStatus: 200, Err: wechatpay.ErrStaleTimestamp}, wechatpay.FaultClockSkew, wechatpay.SlowFaultWait},
	{"signed SIGN_ERROR: our keys", &wechatpay.APIError{Op: "v3", HTTPStatus: 401, Code: "SIGN_ERROR"}, wechatpay.FaultConfig, wechatpay.SlowFaultWait},
	{"an answer about another order", &wechatpay.APIError{Op: "v3", HTTPStatus: 200, Code: wechatpay.CodeIDMismatch}, wechatpay.FaultMalformed, 0},
	{"an answer that does not parse", fmt.Errorf("decode: %w", wechatpay.ErrBadAnswer), wechatpay.FaultMalformed, 0},
}

// signed is WeChat's signed answer with code, as a client returns it.
func signed(status int, code string) error {
	return fmt.Errorf("wechatpay v3: %w", &wechatpay.APIError{Op: "v3", HTTPStatus: status, Code: code, Message: "WeChat says " + code})
}
