package workflows

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/payflow/payflow/activities"
	"github.com/payflow/payflow/payment"
)

const testNo = "ORDER123456"

func paidNotification(id, txid string) payment.Notification {
	return payment.Notification{
		ID: id, Source: payment.SourceV2, OutTradeNo: testNo, TransactionID: txid,
		AppID: "wxapp", MchID: "1900000109", AmountFen: 1234, Currency: "CNY", ResultCode: "SUCCESS",
	}
}

func trade(state string, txid string, amount int64) activities.QueryOrderResult {
	return activities.QueryOrderResult{Trade: payment.Trade{
		OutTradeNo: testNo, TransactionID: txid, TradeState: state, AmountFen: amount, Currency: "CNY",
		AppID: "wxapp", MchID: "1900000109",
	}}
}

// newEnv gives a test environment whose activities all fail unless a test
// mocks them, so an unexpected call shows up.
func newEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Activities{})
	env.RegisterActivity(&activities.Refunds{})
	env.RegisterWorkflow(PaymentWorkflow)
	return env
}

// expectExamined records the notifications marked examined.
func expectExamined(env *testsuite.TestWorkflowEnvironment) *[]string {
	var ids []string
	env.OnActivity(a.MarkExamined, mock.Anything, mock.Anything).Return(nil).Run(func(args mock.Arguments) {
		for _, n := range args.Get(1).(activities.MarkExaminedInput).Notifications {
			ids = append(ids, n.ID)
		}
	}).Maybe()
	return &ids
}

// newOrderEnv is newEnv for a notification-started run whose order is
// PENDING in the database, created now and expiring in 30 minutes.
func newOrderEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	env := newEnv(t)
	exp := env.Now().Add(30 * time.Minute)
	env.OnActivity(a.LoadOrder, mock.Anything, activities.LoadOrderInput{OutTradeNo: testNo}).Return(activities.LoadOrderResult{
		Found: true, Status: payment.StatusPending, AmountFen: 1234, CreatedAt: env.Now(), ExpiresAt: &exp,
	}, nil)
	expectExamined(env)
	return env
}

func signalAt(env *testsuite.TestWorkflowEnvironment, d time.Duration, ns ...payment.Notification) {
	env.RegisterDelayedCallback(func() {
		for _, n := range ns {
			env.SignalWorkflow(SignalNotification, n)
		}
	}, d)
}

func run(t *testing.T, env *testsuite.TestWorkflowEnvironment) State {
	t.Helper()
	env.ExecuteWorkflow(PaymentWorkflow, PaymentInput{OutTradeNo: testNo, IdleTimeout: time.Hour})
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

func okVerify() activities.VerifyPaymentResult {
	return activities.VerifyPaymentResult{OrderFound: true, OrderStatus: payment.StatusPending, OrderAmountFen: 1234}
}

func TestHappyPath(t *testing.T) {
	env := newOrderEnv(t)
	signalAt(env, 0, paidNotification("n1", "tx1"))
	env.OnActivity(a.QueryOrder, mock.Anything, activities.QueryOrderInput{OutTradeNo: testNo}).Return(trade("SUCCESS", "tx1", 1234), nil).Once()
	env.OnActivity(a.VerifyPayment, mock.Anything, mock.Anything).Return(okVerify(), nil).Once()
	env.OnActivity(a.MarkPaid, mock.Anything, mock.MatchedBy(func(in activities.MarkPaidInput) bool {
		return in.TransactionID == "tx1" && in.OutTradeNo == testNo && in.Source == payment.SourceV2
	})).Return(activities.MarkPaidResult{Outcome: "paid"}, nil).Once()

	st := run(t, env)
	env.AssertExpectations(t)
	if st.Status != payment.StatusPaid || st.TransactionID != "tx1" || st.Queries != 1 || st.AmountFen != 1234 {
		t.Fatalf("state = %+v", st)
	}
}

func TestNotPayThenSuccess(t *testing.T) {
	env := newOrderEnv(t)
	signalAt(env, 0, paidNotification("n1", "tx1"))
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("NOTPAY", "", 1234), nil).Once()
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("USERPAYING", "", 1234), nil).Once()
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("SUCCESS", "tx1", 1234), nil).Once()
	env.OnActivity(a.VerifyPayment, mock.Anything, mock.Anything).Return(okVerify(), nil).Once()
	env.OnActivity(a.MarkPaid, mock.Anything, mock.Anything).Return(activities.MarkPaidResult{Outcome: "paid"}, nil).Once()

	st := run(t, env)
	env.AssertExpectations(t)
	if st.Status != payment.StatusPaid || st.Queries != 3 {
		t.Fatalf("state = %+v", st)
	}
}

func TestNotPayForeverGoesToReview(t *testing.T) {
	env := newOrderEnv(t)
	signalAt(env, 0, paidNotification("n1", "tx1"))
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("NOTPAY", "", 1234), nil)
	env.OnActivity(a.MarkReview, mock.Anything, mock.MatchedBy(func(in activities.MarkReviewInput) bool {
		return in.Key == "review:state:n1"
	})).Return(activities.MarkReviewResult{Changed: true}, nil).Once()

	st := run(t, env)
	env.AssertExpectations(t)
	env.AssertNotCalled(t, "MarkPaid", mock.Anything, mock.Anything)
	// 2s+4s+8s+16s+32s+60s+60s+60s... within the 5 minute window.
	if st.Status != payment.StatusReview || st.Queries < 5 || st.Queries > 12 {
		t.Fatalf("state = %+v", st)
	}
}

func TestAmountMismatchGoesToReview(t *testing.T) {
	env := newOrderEnv(t)
	signalAt(env, 0, paidNotification("n1", "tx1"))
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("SUCCESS", "tx1", 1), nil).Once()
	env.OnActivity(a.VerifyPayment, mock.Anything, mock.Anything).Return(activities.VerifyPaymentResult{
		OrderFound: true, OrderAmountFen: 1234, Mismatches: []string{"queried amount 1 fen != order amount 1234 fen"},
	}, nil).Once()
	env.OnActivity(a.MarkReview, mock.Anything, mock.MatchedBy(func(in activities.MarkReviewInput) bool {
		return in.Key == "review:mismatch:tx1" && in.Reason == "amount verification failed: queried amount 1 fen != order amount 1234 fen"
	})).Return(activities.MarkReviewResult{Changed: true}, nil).Once()

	st := run(t, env)
	env.AssertExpectations(t)
	env.AssertNotCalled(t, "MarkPaid", mock.Anything, mock.Anything)
	if st.Status != payment.StatusReview {
		t.Fatalf("state = %+v", st)
	}
}

func TestDuplicatesAbsorbed(t *testing.T) {
	env := newOrderEnv(t)
	n := paidNotification("n1", "tx1")
	other := paidNotification("n2", "tx1") // another copy, same transaction
	signalAt(env, 0, n, n, n, other, n)
	signalAt(env, time.Second, n, other) // arrive while the query waits out NOTPAY
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("NOTPAY", "", 1234), nil).Once()
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("SUCCESS", "tx1", 1234), nil).Once()
	env.OnActivity(a.VerifyPayment, mock.Anything, mock.Anything).Return(okVerify(), nil).Once()
	env.OnActivity(a.MarkPaid, mock.Anything, mock.Anything).Return(activities.MarkPaidResult{Outcome: "paid"}, nil).Once()

	st := run(t, env)
	env.AssertExpectations(t)
	if st.Status != payment.StatusPaid || st.Notifications != 7 || st.Duplicates != 6 || st.Queries != 2 {
		t.Fatalf("state = %+v", st)
	}
}

func TestTransientActivityFailureRetried(t *testing.T) {
	env := newOrderEnv(t)
	signalAt(env, 0, paidNotification("n1", "tx1"))
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(activities.QueryOrderResult{}, errors.New("connection reset")).Once()
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("SUCCESS", "tx1", 1234), nil).Once()
	env.OnActivity(a.VerifyPayment, mock.Anything, mock.Anything).Return(okVerify(), nil).Once()
	env.OnActivity(a.MarkPaid, mock.Anything, mock.Anything).Return(activities.MarkPaidResult{}, errors.New("database is restarting")).Twice()
	env.OnActivity(a.MarkPaid, mock.Anything, mock.Anything).Return(activities.MarkPaidResult{Outcome: "paid"}, nil).Once()

	st := run(t, env)
	env.AssertExpectations(t)
	if st.Status != payment.StatusPaid || st.Queries != 1 {
		t.Fatalf("state = %+v", st)
	}
}

func TestOrderNotExistAtWeChatGoesToReview(t *testing.T) {
	env := newOrderEnv(t)
	signalAt(env, 0, paidNotification("n1", "tx1"))
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(activities.QueryOrderResult{},
		temporal.NewNonRetryableApplicationError("no such order", activities.ErrTypeOrderNotExist, nil)).Once()
	env.OnActivity(a.MarkReview, mock.Anything, mock.MatchedBy(func(in activities.MarkReviewInput) bool {
		return in.Key == "review:query:n1"
	})).Return(activities.MarkReviewResult{Changed: true}, nil).Once()

	st := run(t, env)
	env.AssertExpectations(t)
	if st.Status != payment.StatusReview {
		t.Fatalf("state = %+v", st)
	}
}

// A notification for an order we do not have is recorded and flagged; it
// never creates or pays anything, and WeChat is not even asked.
func TestUnknownOrderRecordedNeverPaid(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.LoadOrder, mock.Anything, mock.Anything).Return(activities.LoadOrderResult{Found: false}, nil).Once()
	examined := expectExamined(env)
	signalAt(env, 0, paidNotification("n1", "tx1"))
	env.OnActivity(a.RecordNotification, mock.Anything, mock.MatchedBy(func(in activities.RecordNotificationInput) bool {
		return in.Outcome == "unknown_order" && in.Notification.ID == "n1"
	})).Return(activities.RecordNotificationResult{Inserted: true}, nil).Once()

	st := run(t, env)
	env.AssertExpectations(t)
	env.AssertNotCalled(t, "MarkPaid", mock.Anything, mock.Anything)
	env.AssertNotCalled(t, "QueryOrder", mock.Anything, mock.Anything)
	if !st.UnknownOrder || st.Status != payment.StatusReview || len(*examined) != 1 {
		t.Fatalf("state = %+v, examined %v", st, *examined)
	}
}

func TestFailedPaymentThenSuccess(t *testing.T) {
	env := newOrderEnv(t)
	failed := paidNotification("n0", "")
	failed.ResultCode, failed.ErrCode, failed.ErrCodeDes = "FAIL", "NOTENOUGH", "余额不足"
	signalAt(env, 0, failed)
	signalAt(env, 10*time.Minute, paidNotification("n1", "tx1"))
	env.OnActivity(a.OrderLog, mock.Anything, mock.MatchedBy(func(in activities.OrderLogInput) bool {
		return in.Key == "failed:n0"
	})).Return(activities.OrderLogResult{Inserted: true}, nil).Once()
	// Our own queries at 1, 3 and 7 minutes find nothing paid yet.
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("NOTPAY", "", 1234), nil).Times(3)
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("SUCCESS", "tx1", 1234), nil).Once()
	env.OnActivity(a.VerifyPayment, mock.Anything, mock.Anything).Return(okVerify(), nil).Once()
	env.OnActivity(a.MarkPaid, mock.Anything, mock.MatchedBy(func(in activities.MarkPaidInput) bool {
		return in.Source == payment.SourceV2
	})).Return(activities.MarkPaidResult{Outcome: "paid"}, nil).Once()

	st := run(t, env)
	env.AssertExpectations(t)
	if st.Status != payment.StatusPaid || st.FailedPayments != 1 || st.Queries != 4 {
		t.Fatalf("state = %+v", st)
	}
}

func TestFailedPaymentThenExpiryCloses(t *testing.T) {
	env := newOrderEnv(t)
	failed := paidNotification("n0", "")
	failed.ResultCode = "FAIL"
	signalAt(env, 0, failed)
	env.OnActivity(a.OrderLog, mock.Anything, mock.Anything).Return(activities.OrderLogResult{Inserted: true}, nil).Once()
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("NOTPAY", "", 1234), nil)
	env.OnActivity(a.CloseAtWeChat, mock.Anything, mock.Anything).Return(activities.CloseAtWeChatResult{}, nil).Once()
	env.OnActivity(a.MarkClosed, mock.Anything, mock.MatchedBy(func(in activities.MarkClosedInput) bool {
		return in.Key == "closed:expired"
	})).Return(activities.MarkClosedResult{Outcome: "closed"}, nil).Once()

	st := run(t, env)
	env.AssertExpectations(t)
	env.AssertNotCalled(t, "MarkPaid", mock.Anything, mock.Anything)
	// Polls at 1, 3, 7, 12, 17, 22, 27 minutes and once more at expiry.
	if st.Status != payment.StatusClosed || st.FailedPayments != 1 || st.Queries != 8 {
		t.Fatalf("state = %+v", st)
	}
}

func TestSecondTransactionAfterPaidGoesToReview(t *testing.T) {
	env := newOrderEnv(t)
	signalAt(env, 0, paidNotification("n1", "tx1"), paidNotification("n2", "tx2"))
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("SUCCESS", "tx1", 1234), nil).Once()
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("SUCCESS", "tx2", 1234), nil).Once()
	env.OnActivity(a.VerifyPayment, mock.Anything, mock.Anything).Return(okVerify(), nil).Twice()
	env.OnActivity(a.MarkPaid, mock.Anything, mock.MatchedBy(func(in activities.MarkPaidInput) bool { return in.TransactionID == "tx1" })).
		Return(activities.MarkPaidResult{Outcome: "paid"}, nil).Once()
	env.OnActivity(a.MarkPaid, mock.Anything, mock.MatchedBy(func(in activities.MarkPaidInput) bool { return in.TransactionID == "tx2" })).
		Return(activities.MarkPaidResult{Outcome: "review"}, nil).Once()

	st := run(t, env)
	env.AssertExpectations(t)
	if st.Status != payment.StatusReview {
		t.Fatalf("state = %+v", st)
	}
}

func TestQueryHandlerShowsState(t *testing.T) {
	env := newOrderEnv(t)
	signalAt(env, 0, paidNotification("n1", "tx1"))
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("NOTPAY", "", 1234), nil).Once()
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("SUCCESS", "tx1", 1234), nil).Once()
	env.OnActivity(a.VerifyPayment, mock.Anything, mock.Anything).Return(okVerify(), nil).Once()
	env.OnActivity(a.MarkPaid, mock.Anything, mock.Anything).Return(activities.MarkPaidResult{Outcome: "paid"}, nil).Once()
	var mid State
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryState)
		if err != nil {
			t.Errorf("query: %v", err)
			return
		}
		if err := v.Get(&mid); err != nil {
			t.Errorf("decode: %v", err)
		}
	}, time.Second)

	st := run(t, env)
	if mid.Step != StepConfirming || mid.Status != payment.StatusPending || mid.Queries != 1 {
		t.Fatalf("mid-run state = %+v", mid)
	}
	if st.Status != payment.StatusPaid {
		t.Fatalf("state = %+v", st)
	}
}

func TestSummary(t *testing.T) {
	if got := Summary("ORDER1", 1234); got != "¥12.34 · ORDER1" {
		t.Fatalf("Summary = %q", got)
	}
	if got := Summary("ORDER1", 5); got != "¥0.05 · ORDER1" {
		t.Fatalf("Summary = %q", got)
	}
}
