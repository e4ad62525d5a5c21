package workflows

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/payflow/payflow/activities"
	"github.com/payflow/payflow/payment"
)

// Every notification a run handles, repeats included, is marked examined
// in the audit trail, so the safety net knows none is stranded.
func TestNotificationsMarkedExamined(t *testing.T) {
	env := newEnv(t)
	exp := env.Now().Add(30 * time.Minute)
	env.OnActivity(a.LoadOrder, mock.Anything, mock.Anything).Return(activities.LoadOrderResult{
		Found: true, Status: payment.StatusPending, AmountFen: 1234, CreatedAt: env.Now(), ExpiresAt: &exp,
	}, nil)
	examined := expectExamined(env)
	signalAt(env, 0, paidNotification("n1", "tx1"), paidNotification("n1", "tx1"), paidNotification("n2", "tx1"))
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("SUCCESS", "tx1", 1234), nil).Once()
	env.OnActivity(a.VerifyPayment, mock.Anything, mock.Anything).Return(okVerify(), nil).Once()
	env.OnActivity(a.MarkPaid, mock.Anything, mock.Anything).Return(activities.MarkPaidResult{Outcome: "paid"}, nil).Once()

	st := run(t, env)
	env.AssertExpectations(t)
	if st.Status != payment.StatusPaid || st.Duplicates != 2 {
		t.Fatalf("state = %+v", st)
	}
	for _, id := range []string{"n1", "n2"} {
		if !slices.Contains(*examined, id) {
			t.Fatalf("%s not marked examined (examined %v)", id, *examined)
		}
	}
}

// A run for an order already decided says so in its search attributes in
// its first task, and a FAIL notification for it writes no log row.
func TestDecidedOrderRunShowsItsStatus(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.LoadOrder, mock.Anything, mock.Anything).Return(activities.LoadOrderResult{
		Found: true, Status: payment.StatusPaid, TransactionID: "tx1", AmountFen: 1234,
	}, nil).Once()
	examined := expectExamined(env)
	var statuses []string
	env.OnUpsertTypedSearchAttributes(mock.Anything).Return(nil).Run(func(args mock.Arguments) {
		sa := args.Get(0).(temporal.SearchAttributes)
		if v, ok := sa.GetKeyword(AttrPaymentStatus); ok {
			statuses = append(statuses, v)
		}
	})
	failed := paidNotification("n-fail", "")
	failed.ResultCode, failed.ErrCode = "FAIL", "NOTENOUGH"
	signalAt(env, 0, failed)

	st := run(t, env)
	env.AssertNotCalled(t, "OrderLog", mock.Anything, mock.Anything)
	if len(statuses) == 0 || statuses[0] != "PAID" {
		t.Fatalf("search attribute PaymentStatus upserts = %v, want PAID first", statuses)
	}
	if st.Status != payment.StatusPaid || st.FailedPayments != 1 || !slices.Contains(*examined, "n-fail") {
		t.Fatalf("state = %+v, examined %v", st, *examined)
	}
}

// A confirming query that meets faults (no trustworthy answer) keeps
// asking; once WeChat answers, the order is PAID, never REVIEW.
func TestFaultsNeverSendToReview(t *testing.T) {
	env := newOrderEnv(t)
	signalAt(env, 0, paidNotification("n1", "tx1"))
	fault := errors.New("query ORDER123456: wechatpay v3 orderquery: answer: bad signature")
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(activities.QueryOrderResult{}, fault).Times(6)
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("SUCCESS", "tx1", 1234), nil).Once()
	env.OnActivity(a.VerifyPayment, mock.Anything, mock.Anything).Return(okVerify(), nil).Once()
	env.OnActivity(a.MarkPaid, mock.Anything, mock.Anything).Return(activities.MarkPaidResult{Outcome: "paid"}, nil).Once()

	st := run(t, env)
	env.AssertExpectations(t)
	env.AssertNotCalled(t, "MarkReview", mock.Anything, mock.Anything)
	if st.Status != payment.StatusPaid {
		t.Fatalf("state = %+v", st)
	}
}

// WeChat refusing the close (too soon, or no clear answer) keeps the order
// PENDING here; the close is tried again until WeChat has closed it.
func TestCloseNotConfirmedKeepsOrderPending(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("NOTPAY", "", 1234), nil)
	var closedAt []time.Time
	env.OnActivity(a.CloseAtWeChat, mock.Anything, mock.Anything).Return(activities.CloseAtWeChatResult{},
		errors.New("close ORDER123456: wechatpay closeorder: ORDER_CLOSE_TOO_EARLY")).Times(6).Run(func(mock.Arguments) { closedAt = append(closedAt, env.Now()) })
	env.OnActivity(a.CloseAtWeChat, mock.Anything, mock.Anything).Return(activities.CloseAtWeChatResult{}, nil).Once()
	env.OnActivity(a.MarkClosed, mock.Anything, mock.MatchedBy(func(in activities.MarkClosedInput) bool { return in.Key == "closed:expired" })).
		Return(activities.MarkClosedResult{Outcome: "closed"}, nil).Once()

	st := runOwned(t, env, false)
	env.AssertExpectations(t)
	if st.Status != payment.StatusClosed {
		t.Fatalf("state = %+v", st)
	}
	// 3 quick attempts, then the workflow's own backoff before the next 3.
	if gap := closedAt[3].Sub(closedAt[2]); gap < firstCloseBackoff {
		t.Fatalf("close retried after %s, want the workflow's backoff of at least %s", gap, firstCloseBackoff)
	}
}

// WeChat refusing a close as already paid: its order query decides, asked
// through faults until it answers.
func TestCloseRefusedAsPaidAsksUntilAnswer(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("NOTPAY", "", 1234), nil).Once()
	env.OnActivity(a.CloseAtWeChat, mock.Anything, mock.Anything).Return(activities.CloseAtWeChatResult{},
		temporal.NewNonRetryableApplicationError("paid", activities.ErrTypeOrderPaid, nil)).Once()
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(activities.QueryOrderResult{}, errors.New("HTTP 503")).Times(4)
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("SUCCESS", "tx7", 1234), nil).Once()
	env.OnActivity(a.VerifyPayment, mock.Anything, mock.Anything).Return(okVerify(), nil).Once()
	env.OnActivity(a.MarkPaid, mock.Anything, mock.Anything).Return(activities.MarkPaidResult{Outcome: "paid"}, nil).Once()
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateClose, "close-1", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { t.Errorf("close rejected: %v", err) }, OnAccept: func() {}, OnComplete: func(any, error) {},
		})
	}, 10*time.Second)

	st := runOwned(t, env, false)
	env.AssertExpectations(t)
	env.AssertNotCalled(t, "MarkReview", mock.Anything, mock.Anything)
	env.AssertNotCalled(t, "MarkClosed", mock.Anything, mock.Anything)
	if st.Status != payment.StatusPaid || st.TransactionID != "tx7" {
		t.Fatalf("state = %+v", st)
	}
}

// Syncs that pile up while a query runs are one more query, not one each.
func TestSyncsCoalesced(t *testing.T) {
	env := newEnv(t)
	queries := 0
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("NOTPAY", "", 1234), nil).Run(func(mock.Arguments) { queries++ })
	env.OnActivity(a.CloseAtWeChat, mock.Anything, mock.Anything).Return(activities.CloseAtWeChatResult{}, nil).Once()
	env.OnActivity(a.MarkClosed, mock.Anything, mock.Anything).Return(activities.MarkClosedResult{Outcome: "closed"}, nil).Once()
	env.RegisterDelayedCallback(func() {
		for range 20 {
			env.SignalWorkflow(SignalSync, nil)
		}
	}, 10*time.Second)

	st := runOwned(t, env, false)
	// Without the syncs: the schedule's queries and the last one at expiry.
	base := 8
	if st.Status != payment.StatusClosed || queries > base+1 {
		t.Fatalf("state = %+v after %d queries; 20 syncs should add one", st, queries)
	}
}

// The bill reconciliation's requests go through the order's workflow: a
// payment WeChat's books have that a CLOSED order here does not is
// confirmed by query (the database sends it to REVIEW), and a payment
// missing from the books sends a PAID order to REVIEW.
func TestBillRequests(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.LoadOrder, mock.Anything, mock.Anything).Return(activities.LoadOrderResult{
		Found: true, Status: payment.StatusClosed, AmountFen: 1234,
	}, nil).Once()
	expectExamined(env)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalConfirm, ConfirmRequest{Reason: "bill 2026-11-25 has a SUCCESS trade"})
	}, 0)
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("SUCCESS", "tx9", 1234), nil).Once()
	env.OnActivity(a.VerifyPayment, mock.Anything, mock.Anything).Return(okVerify(), nil).Once()
	env.OnActivity(a.MarkPaid, mock.Anything, mock.MatchedBy(func(in activities.MarkPaidInput) bool {
		return in.TransactionID == "tx9" && in.Source == payment.SourceQuery
	})).Return(activities.MarkPaidResult{Outcome: "review"}, nil).Once()

	st := run(t, env)
	env.AssertExpectations(t)
	if st.Status != payment.StatusReview {
		t.Fatalf("state = %+v", st)
	}

	env = newEnv(t)
	env.OnActivity(a.LoadOrder, mock.Anything, mock.Anything).Return(activities.LoadOrderResult{
		Found: true, Status: payment.StatusPaid, TransactionID: "tx1", AmountFen: 1234,
	}, nil).Once()
	expectExamined(env)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalReview, ReviewRequest{Reason: "not in the bill of 2026-11-25", Key: "bill:2026-11-25:paid_here_only"})
	}, 0)
	env.OnActivity(a.MarkReview, mock.Anything, mock.MatchedBy(func(in activities.MarkReviewInput) bool {
		return in.AllowFromPaid && in.Key == "bill:2026-11-25:paid_here_only"
	})).Return(activities.MarkReviewResult{Changed: true, Status: payment.StatusReview}, nil).Once()
	st = run(t, env)
	env.AssertExpectations(t)
	if st.Status != payment.StatusReview {
		t.Fatalf("state = %+v", st)
	}
}

// An operator resolves a REVIEW order through its workflow.
func TestResolveAcceptPaid(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.LoadOrder, mock.Anything, mock.Anything).Return(activities.LoadOrderResult{
		Found: true, Status: payment.StatusReview, TransactionID: "tx1", AmountFen: 1234,
	}, nil).Once()
	expectExamined(env)
	env.OnActivity(a.ResolveReview, mock.Anything, mock.MatchedBy(func(in activities.ResolveReviewInput) bool {
		return in.To == payment.StatusPaid && in.Remarks == "resolved by alice: accepted as paid: customer called, bank statement shows it"
	})).Return(activities.ResolveReviewResult{Changed: true, Status: payment.StatusPaid}, nil).Once()
	var got ResolveResult
	var rejected error
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateResolve, "r1", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { rejected = err }, OnAccept: func() {},
			OnComplete: func(v any, err error) { got, _ = v.(ResolveResult) },
		}, ResolveRequest{Action: ResolveAcceptPaid, Operator: "alice", Reason: "customer called, bank statement shows it"})
		// A request without who or why is refused before anything happens.
		env.UpdateWorkflow(UpdateResolve, "r2", &testsuite.TestUpdateCallback{
			OnReject: func(err error) {}, OnAccept: func() { t.Error("a resolution without an operator was accepted") },
			OnComplete: func(any, error) {},
		}, ResolveRequest{Action: ResolveClose, Reason: "x"})
	}, 0)

	st := run(t, env)
	env.AssertExpectations(t)
	if rejected != nil || got.Status != payment.StatusPaid || st.Status != payment.StatusPaid {
		t.Fatalf("resolve = %+v (rejected %v), state %+v", got, rejected, st)
	}
}

// A prepay stored with other order parameters never closes the order: what
// was prepaid may still be paid at WeChat.
func TestPrepayConflictNeverCloses(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.Prepay, mock.Anything, mock.Anything).Return(activities.PrepayResult{},
		temporal.NewNonRetryableApplicationError("prepaid with different order parameters", activities.ErrTypePrepayConflict, nil)).Once()
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("SUCCESS", "tx1", 1234), nil).Once()
	env.OnActivity(a.VerifyPayment, mock.Anything, mock.Anything).Return(okVerify(), nil).Once()
	env.OnActivity(a.MarkPaid, mock.Anything, mock.Anything).Return(activities.MarkPaidResult{Outcome: "paid"}, nil).Once()

	st := runOwned(t, env, true)
	env.AssertExpectations(t)
	env.AssertNotCalled(t, "MarkClosed", mock.Anything, mock.Anything)
	if st.Status != payment.StatusPaid {
		t.Fatalf("state = %+v", st)
	}
}

// When Temporal suggests it, a long-lived run continues as new carrying
// its state and what it has not done yet; nothing is lost across the
// boundary, and the next run goes on from there.
func TestContinueAsNewCarriesState(t *testing.T) {
	env := newEnv(t)
	exp := env.Now().Add(7 * 24 * time.Hour)
	env.OnActivity(a.LoadOrder, mock.Anything, mock.Anything).Return(activities.LoadOrderResult{
		Found: true, Status: payment.StatusPending, AmountFen: 1234, CreatedAt: env.Now(), ExpiresAt: &exp,
		Settings: activities.Settings{QueryAfter: time.Minute},
	}, nil).Once()
	expectExamined(env)
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("NOTPAY", "", 1234), nil)
	failed := paidNotification("n-fail", "")
	failed.ResultCode = "FAIL"
	env.OnActivity(a.OrderLog, mock.Anything, mock.Anything).Return(activities.OrderLogResult{Inserted: true}, nil)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalNotification, failed)
		env.SetContinueAsNewSuggested(true)
		env.SignalWorkflow(SignalSync, nil)
	}, 30*time.Minute)
	env.ExecuteWorkflow(PaymentWorkflow, PaymentInput{OutTradeNo: testNo})
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("workflow error = %v, want it to continue as new", err)
	}
	var in PaymentInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &in); err != nil {
		t.Fatal(err)
	}
	c := in.Carry
	if c == nil || c.State.Status != payment.StatusPending || c.Lifecycle == nil || !c.Lifecycle.ExpiresAt.Equal(exp) ||
		c.State.FailedPayments != 1 || !slices.Contains(c.Seen, "n-fail") || c.NextQuery.IsZero() {
		t.Fatalf("carried = %+v", c)
	}

	// The next run: no second read of the order, the same schedule, and a
	// repeat of the notification it carries is recognised.
	env2 := newEnv(t)
	expectExamined(env2)
	env2.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("SUCCESS", "tx1", 1234), nil).Once()
	env2.OnActivity(a.VerifyPayment, mock.Anything, mock.Anything).Return(okVerify(), nil).Once()
	env2.OnActivity(a.MarkPaid, mock.Anything, mock.Anything).Return(activities.MarkPaidResult{Outcome: "paid"}, nil).Once()
	env2.RegisterDelayedCallback(func() { env2.SignalWorkflow(SignalNotification, failed) }, 0)
	env2.ExecuteWorkflow(PaymentWorkflow, in)
	if err := env2.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res PaymentResult
	if err := env2.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	env2.AssertNotCalled(t, "LoadOrder", mock.Anything, mock.Anything)
	if res.State.Status != payment.StatusPaid || res.State.FailedPayments != 1 || res.State.Duplicates != 1 {
		t.Fatalf("state after continuing = %+v", res.State)
	}
}

// A run started at a Revision takes the changes it includes without asking
// GetVersion (no marker, no search-attribute write): it runs the one loop
// and marks its notifications examined.
func TestRevisionTakesItsChangesWithoutAsking(t *testing.T) {
	env := newEnv(t)
	env.OnGetVersion(versionLocalActivities, workflow.DefaultVersion, 1).Never()
	env.OnGetVersion(versionOneLoop, workflow.DefaultVersion, 1).Never()
	exp := env.Now().Add(30 * time.Minute)
	env.OnActivity(a.LoadOrder, mock.Anything, mock.Anything).Return(activities.LoadOrderResult{
		Found: true, Status: payment.StatusPending, AmountFen: 1234, CreatedAt: env.Now(), ExpiresAt: &exp,
	}, nil)
	examined := expectExamined(env)
	signalAt(env, 0, paidNotification("n1", "tx1"))
	env.OnActivity(a.QueryOrder, mock.Anything, mock.Anything).Return(trade("SUCCESS", "tx1", 1234), nil).Once()
	env.OnActivity(a.VerifyPayment, mock.Anything, mock.Anything).Return(okVerify(), nil).Once()
	env.OnActivity(a.MarkPaid, mock.Anything, mock.Anything).Return(activities.MarkPaidResult{Outcome: "paid"}, nil).Once()

	env.ExecuteWorkflow(PaymentWorkflow, PaymentInput{OutTradeNo: testNo, IdleTimeout: time.Hour, Revision: Revision})
	if !env.IsWorkflowCompleted() || env.GetWorkflowError() != nil {
		t.Fatalf("completed %v, error %v", env.IsWorkflowCompleted(), env.GetWorkflowError())
	}
	env.AssertExpectations(t)
	var res PaymentResult
	if err := env.GetWorkflowResult(&res); err != nil || res.State.Status != payment.StatusPaid {
		t.Fatalf("result %+v, %v", res.State, err)
	}
	if !slices.Contains(*examined, "n1") {
		t.Fatalf("n1 not marked examined (examined %v)", *examined)
	}
}
