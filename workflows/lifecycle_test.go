package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/payflow/payflow/activities"
	"github.com/payflow/payflow/payment"
)

// runOwned runs the workflow as POST /orders starts it: the order it reads
// was created now, expires in 30 minutes, and is queried after 1 minute.
func runOwned(t *testing.T, env *testsuite.TestWorkflowEnvironment, prepay bool) State {
	t.Helper()
	exp := env.Now().Add(30 * time.Minute)
	tradeType := ""
	if prepay {
		tradeType = payment.TradeTypeNative
	}
	env.OnActivity(a.LoadOrder, mock.Anything, activities.LoadOrderInput{OutTradeNo: testNo}).Return(activities.LoadOrderResult{
		Found: true, Status: payment.StatusPending, AmountFen: 1234, CreatedAt: env.Now(), ExpiresAt: &exp, TradeType: tradeType,
		Settings: activities.Settings{QueryAfter: time.Minute},
	}, nil).Maybe()
	expectExamined(env)
	env.ExecuteWorkflow(PaymentWorkflow, PaymentInput{OutTradeNo: testNo})
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow error: %v", err)
	}
	var res PaymentResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	return res.State
}

func expectClose(env *testsuite.TestWorkflowEnvironment, key payment.Key) {
	env.OnActivity(a.CloseAtWeChat, mock.Anything, mock.Anything).Return(activities.CloseAtWeChatResult{}, nil).Once()
	env.OnActivity(a.MarkClosed, mock.Anything, mock.MatchedBy(func(in activities.MarkClosedInput) bool { return in.Key == key })).
		Return(activities.MarkClosedResult{Outcome: "closed"}, nil).Once()
}

func TestTimeoutCloses(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("NOTPAY", "", 1234), nil)
	expectClose(env, "closed:expired")

	st := runOwned(t, env, false)
	env.AssertExpectations(t)
	env.AssertNotCalled(t, "MarkPaid", mock.Anything, mock.Anything)
	if st.Status != payment.StatusClosed || st.Queries != 8 {
		t.Fatalf("state = %+v", st)
	}
}

func TestLostNotificationFoundByQuery(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("NOTPAY", "", 1234), nil).Twice()
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("SUCCESS", "tx9", 1234), nil).Once()
	env.OnActivity(a.VerifyPayment, mock.Anything, mock.MatchedBy(func(in activities.VerifyPaymentInput) bool {
		return in.Notification == nil && in.Trade.TransactionID == "tx9"
	})).Return(okVerify(), nil).Once()
	env.OnActivity(a.MarkPaid, mock.Anything, mock.MatchedBy(func(in activities.MarkPaidInput) bool {
		return in.Source == payment.SourceQuery && in.TransactionID == "tx9"
	})).Return(activities.MarkPaidResult{Outcome: "paid"}, nil).Once()

	st := runOwned(t, env, false)
	env.AssertExpectations(t)
	env.AssertNotCalled(t, "CloseAtWeChat", mock.Anything, mock.Anything)
	if st.Status != payment.StatusPaid || st.Source != payment.SourceQuery || st.Queries != 3 {
		t.Fatalf("state = %+v", st)
	}
}

func TestPaymentAfterCloseGoesToReview(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("NOTPAY", "", 1234), nil).Times(8)
	expectClose(env, "closed:expired")
	// 10 minutes after the close, WeChat notifies a payment anyway.
	signalAt(env, 40*time.Minute, paidNotification("late", "txLate"))
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("SUCCESS", "txLate", 1234), nil).Once()
	env.OnActivity(a.VerifyPayment, mock.Anything, mock.Anything).Return(activities.VerifyPaymentResult{
		OrderFound: true, OrderStatus: payment.StatusClosed, OrderAmountFen: 1234,
	}, nil).Once()
	env.OnActivity(a.MarkPaid, mock.Anything, mock.Anything).Return(activities.MarkPaidResult{Outcome: "review"}, nil).Once()

	st := runOwned(t, env, false)
	env.AssertExpectations(t)
	if st.Status != payment.StatusReview {
		t.Fatalf("state = %+v", st)
	}
}

func TestCloseRacingLateNotification(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("NOTPAY", "", 1234), nil).Twice() // at 1 and 3 minutes
	// The merchant closes at 5 minutes; the user paid a moment before, and
	// the notification is on its way.
	var closed CloseResult
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateClose, "close-1", &testsuite.TestUpdateCallback{
			OnReject:   func(err error) { t.Errorf("close rejected: %v", err) },
			OnComplete: func(v any, err error) { closed, _ = v.(CloseResult) },
		})
		env.SignalWorkflow(SignalNotification, paidNotification("n1", "tx1"))
	}, 5*time.Minute)
	// If the close is handled first, WeChat refuses it: the order is paid.
	env.OnActivity(a.CloseAtWeChat, mock.Anything, mock.Anything).Return(activities.CloseAtWeChatResult{},
		temporal.NewNonRetryableApplicationError("paid", activities.ErrTypeOrderPaid, nil)).Maybe()
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("SUCCESS", "tx1", 1234), nil).Once()
	env.OnActivity(a.VerifyPayment, mock.Anything, mock.Anything).Return(okVerify(), nil).Once()
	env.OnActivity(a.MarkPaid, mock.Anything, mock.Anything).Return(activities.MarkPaidResult{Outcome: "paid"}, nil).Once()

	st := runOwned(t, env, false)
	env.AssertExpectations(t)
	env.AssertNotCalled(t, "MarkClosed", mock.Anything, mock.Anything)
	if st.Status != payment.StatusPaid || closed.Status != payment.StatusPaid {
		t.Fatalf("state = %+v, close answered %+v", st, closed)
	}
}

func TestCloseRefusedAsPaidConfirmsPayment(t *testing.T) {
	env := newEnv(t)
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateClose, "close-1", &testsuite.TestUpdateCallback{})
	}, 30*time.Second)
	env.OnActivity(a.CloseAtWeChat, mock.Anything, mock.Anything).Return(activities.CloseAtWeChatResult{},
		temporal.NewNonRetryableApplicationError("paid", activities.ErrTypeOrderPaid, nil)).Once()
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("SUCCESS", "tx1", 1234), nil).Once()
	env.OnActivity(a.VerifyPayment, mock.Anything, mock.Anything).Return(okVerify(), nil).Once()
	env.OnActivity(a.MarkPaid, mock.Anything, mock.Anything).Return(activities.MarkPaidResult{Outcome: "paid"}, nil).Once()

	st := runOwned(t, env, false)
	env.AssertExpectations(t)
	env.AssertNotCalled(t, "MarkClosed", mock.Anything, mock.Anything)
	if st.Status != payment.StatusPaid {
		t.Fatalf("state = %+v", st)
	}
}

func TestMerchantClose(t *testing.T) {
	env := newEnv(t)
	var closed CloseResult
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateClose, "close-1", &testsuite.TestUpdateCallback{
			OnComplete: func(v any, err error) { closed, _ = v.(CloseResult) },
		})
	}, 30*time.Second)
	expectClose(env, "closed:merchant")

	st := runOwned(t, env, false)
	env.AssertExpectations(t)
	if st.Status != payment.StatusClosed || closed.Status != payment.StatusClosed || st.Queries != 0 {
		t.Fatalf("state = %+v, close answered %+v", st, closed)
	}
}

func TestDuplicatePrepayRequests(t *testing.T) {
	env := newEnv(t)
	want := payment.Prepay{PrepayID: "wx123", CodeURL: "weixin://wxpay/bizpayurl?pr=abc"}
	env.OnActivity(a.Prepay, mock.Anything, activities.PrepayInput{OutTradeNo: testNo}).Return(activities.PrepayResult{Prepay: want}, nil).Once()
	var got []PrepayResult
	for i, d := range []time.Duration{0, 0, time.Second} {
		env.RegisterDelayedCallback(func() {
			env.UpdateWorkflow(UpdatePrepay, "prepay-"+string(rune('a'+i)), &testsuite.TestUpdateCallback{
				OnReject:   func(err error) { t.Errorf("prepay update rejected: %v", err) },
				OnComplete: func(v any, err error) { r, _ := v.(PrepayResult); got = append(got, r) },
			})
		}, d)
	}
	// Paid by query at the first poll, to end the run.
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("SUCCESS", "tx1", 1234), nil).Once()
	env.OnActivity(a.VerifyPayment, mock.Anything, mock.Anything).Return(okVerify(), nil).Once()
	env.OnActivity(a.MarkPaid, mock.Anything, mock.Anything).Return(activities.MarkPaidResult{Outcome: "paid"}, nil).Once()

	st := runOwned(t, env, true)
	env.AssertExpectations(t)
	if len(got) != 3 {
		t.Fatalf("prepay answers = %d, want 3", len(got))
	}
	for _, r := range got {
		if r.Prepay != want || r.Error != "" {
			t.Fatalf("prepay answer = %+v, want %+v", r, want)
		}
	}
	if !st.Prepaid || st.Status != payment.StatusPaid {
		t.Fatalf("state = %+v", st)
	}
}

func TestPrepayRefusedClosesOrder(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.Prepay, mock.Anything, mock.Anything).Return(activities.PrepayResult{},
		temporal.NewNonRetryableApplicationError("prepay ORDER1: WeChat Pay refused: PARAM_ERROR", activities.ErrTypePrepay, nil)).Once()
	env.OnActivity(a.MarkClosed, mock.Anything, mock.MatchedBy(func(in activities.MarkClosedInput) bool { return in.Key == "closed:prepay" })).
		Return(activities.MarkClosedResult{Outcome: "closed"}, nil).Once()
	var got PrepayResult
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdatePrepay, "prepay-1", &testsuite.TestUpdateCallback{
			OnComplete: func(v any, err error) { got, _ = v.(PrepayResult) },
		})
	}, 0)

	st := runOwned(t, env, true)
	env.AssertExpectations(t)
	if st.Status != payment.StatusClosed || got.Error == "" {
		t.Fatalf("state = %+v, prepay answer %+v", st, got)
	}
}

func TestSyncQueriesNow(t *testing.T) {
	env := newEnv(t)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalSync, nil) }, 10*time.Second)
	start := env.Now()
	var queriedAt time.Time
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("SUCCESS", "tx1", 1234), nil).Once().
		Run(func(mock.Arguments) { queriedAt = env.Now() })
	env.OnActivity(a.VerifyPayment, mock.Anything, mock.Anything).Return(okVerify(), nil).Once()
	env.OnActivity(a.MarkPaid, mock.Anything, mock.Anything).Return(activities.MarkPaidResult{Outcome: "paid"}, nil).Once()

	st := runOwned(t, env, false)
	env.AssertExpectations(t)
	if st.Status != payment.StatusPaid || st.Queries != 1 {
		t.Fatalf("state = %+v", st)
	}
	if d := queriedAt.Sub(start); d >= time.Minute {
		t.Fatalf("sync queried after %s, not at once (the first scheduled query is at 1m)", d)
	}
}

// A prepay refused because the order is already paid (found by the chaos
// suite: a prepay whose answer was lost, then paid) is confirmed, never
// closed, and the notification the workflow already holds is examined.
func TestPrepayRefusedAsPaidConfirmsPayment(t *testing.T) {
	env := newEnv(t)
	signalAt(env, 0, paidNotification("n1", "tx1"))
	env.OnActivity(a.Prepay, mock.Anything, mock.Anything).Return(activities.PrepayResult{},
		temporal.NewNonRetryableApplicationError("already paid", activities.ErrTypeOrderPaid, nil)).Once()
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("SUCCESS", "tx1", 1234), nil).Once()
	env.OnActivity(a.VerifyPayment, mock.Anything, mock.Anything).Return(okVerify(), nil).Once()
	env.OnActivity(a.MarkPaid, mock.Anything, mock.Anything).Return(activities.MarkPaidResult{Outcome: "paid"}, nil).Once()

	st := runOwned(t, env, true)
	env.AssertExpectations(t)
	env.AssertNotCalled(t, "MarkClosed", mock.Anything, mock.Anything)
	if st.Status != payment.StatusPaid || st.Duplicates != 1 {
		t.Fatalf("state = %+v", st)
	}
}

// A CLOSED order's workflow still examines a notification it holds.
func TestPrepayRefusedThenPaidGoesToReview(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.Prepay, mock.Anything, mock.Anything).Return(activities.PrepayResult{},
		temporal.NewNonRetryableApplicationError("refused", activities.ErrTypePrepay, nil)).Once()
	env.OnActivity(a.MarkClosed, mock.Anything, mock.Anything).Return(activities.MarkClosedResult{Outcome: "closed"}, nil).Once()
	signalAt(env, time.Minute, paidNotification("n1", "tx1"))
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("SUCCESS", "tx1", 1234), nil).Once()
	env.OnActivity(a.VerifyPayment, mock.Anything, mock.Anything).Return(okVerify(), nil).Once()
	env.OnActivity(a.MarkPaid, mock.Anything, mock.Anything).Return(activities.MarkPaidResult{Outcome: "review"}, nil).Once()

	st := runOwned(t, env, true)
	env.AssertExpectations(t)
	if st.Status != payment.StatusReview {
		t.Fatalf("state = %+v", st)
	}
}
