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

// paidOrderEnv is an environment whose order is PAID (1234 fen, tx1).
func paidOrderEnv(t *testing.T, open ...payment.Refund) *testsuite.TestWorkflowEnvironment {
	env := newEnv(t)
	env.OnActivity(a.LoadOrder, mock.Anything, mock.Anything).Return(activities.LoadOrderResult{
		Found: true, Status: payment.StatusPaid, TransactionID: "tx1", AmountFen: 1234, PaidFen: 1234, OpenRefunds: open,
		Settings: activities.Settings{RefundQueryAfter: time.Minute},
	}, nil).Once()
	expectExamined(env)
	return env
}

func processing(no string, amount int64) payment.Refund {
	return payment.Refund{OutRefundNo: no, OutTradeNo: testNo, AmountFen: amount, Status: payment.RefundProcessing, Source: payment.RefundSourceAPI}
}

func refundTrade(no string, status payment.RefundStatus, amount int64) activities.QueryRefundResult {
	return activities.QueryRefundResult{Outcome: activities.QueryFound, Trade: payment.RefundTrade{
		OutRefundNo: no, RefundID: "50" + no, OutTradeNo: testNo, Status: status, AmountFen: amount,
	}}
}

// askAcceptedRefund asks a refund of amount under no, which the store
// accepts as a new PROCESSING refund.
func askAcceptedRefund(t *testing.T, env *testsuite.TestWorkflowEnvironment, no string, amount int64) {
	askRefund(t, env, RefundRequest{OutRefundNo: no, AmountFen: amount})
	env.OnActivity(rf.AcceptRefund, mock.Anything, mock.Anything).
		Return(activities.AcceptRefundResult{Refund: processing(no, amount), Created: true}, nil).Once()
}

// askRefund sends the refund update at the start of the run and records
// its answer.
func askRefund(t *testing.T, env *testsuite.TestWorkflowEnvironment, req RefundRequest) (*RefundResult, *error) {
	return askRefundAt(env, 0, "refund/"+req.OutRefundNo, req)
}

// askRefundAt sends the refund update as update id after delay and records
// its answer.
func askRefundAt(env *testsuite.TestWorkflowEnvironment, delay time.Duration, id string, req RefundRequest) (*RefundResult, *error) {
	var res RefundResult
	var rerr error
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateRefund, id, &testsuite.TestUpdateCallback{
			OnReject: func(err error) { rerr = err }, OnAccept: func() {},
			OnComplete: func(v any, err error) {
				if err != nil {
					rerr = err
					return
				}
				res = v.(RefundResult)
			},
		}, req)
	}, delay)
	return &res, &rerr
}

// A refund is accepted here, asked of WeChat once, and SUCCESS only once
// WeChat's refund query says so, REFUND_QUERY_AFTER after the ask. A
// partial refund leaves the order PAID.
func TestRefundAskedOnceConfirmedByQuery(t *testing.T) {
	env := paidOrderEnv(t)
	res, rerr := askRefund(t, env, RefundRequest{OutRefundNo: "R1", AmountFen: 234, Reason: "one coffee short"})
	env.OnActivity(rf.AcceptRefund, mock.Anything, activities.AcceptRefundInput{OutTradeNo: testNo, OutRefundNo: "R1", AmountFen: 234, Reason: "one coffee short", AcceptedBy: "default-test-run-id/refund/R1"}).
		Return(activities.AcceptRefundResult{Refund: processing("R1", 234), Created: true}, nil).Once()
	var askedAt, queriedAt time.Time
	env.OnActivity(rf.ApplyRefund, mock.Anything, activities.ApplyRefundInput{OutTradeNo: testNo, OutRefundNo: "R1"}).
		Return(activities.ApplyRefundResult{Outcome: activities.ApplyAccepted}, nil).Once().Run(func(mock.Arguments) { askedAt = env.Now() })
	env.OnActivity(rf.QueryRefund, mock.Anything, mock.Anything).Return(refundTrade("R1", payment.RefundProcessing, 234), nil).Once().
		Run(func(mock.Arguments) { queriedAt = env.Now() })
	env.OnActivity(rf.QueryRefund, mock.Anything, mock.Anything).Return(refundTrade("R1", payment.RefundSuccess, 234), nil).Once()
	env.OnActivity(rf.MarkRefund, mock.Anything, mock.MatchedBy(func(in activities.MarkRefundInput) bool {
		return in.OutRefundNo == "R1" && in.Status == payment.RefundSuccess && in.RefundID == "50R1"
	})).Return(activities.MarkRefundResult{Changed: true, Refund: payment.Refund{OutRefundNo: "R1", AmountFen: 234, Status: payment.RefundSuccess},
		OrderFrom: payment.StatusPaid, OrderTo: payment.StatusPaid}, nil).Once()

	st := run(t, env)
	env.AssertExpectations(t)
	if *rerr != nil || !res.Created || res.Refund.OutRefundNo != "R1" {
		t.Fatalf("refund answer = %+v, %v", *res, *rerr)
	}
	if d := queriedAt.Sub(askedAt); d < time.Minute {
		t.Fatalf("first refund query %s after the ask, want REFUND_QUERY_AFTER (1m)", d)
	}
	if st.Status != payment.StatusPaid || st.RefundedFen != 234 || len(st.Refunds) != 1 || st.Refunds[0].Asks != 1 {
		t.Fatalf("state = %+v", st)
	}
}

// After an ask with no clear answer (a 5xx, a timeout) the refund is
// queried first, and asked again only under the same number; a full
// refund makes the order REFUNDED.
func TestRefundAmbiguousAskQueriesFirst(t *testing.T) {
	env := paidOrderEnv(t)
	askAcceptedRefund(t, env, "R2", 1234)
	env.OnActivity(rf.ApplyRefund, mock.Anything, activities.ApplyRefundInput{OutTradeNo: testNo, OutRefundNo: "R2"}).
		Return(activities.ApplyRefundResult{Outcome: activities.ApplyAmbiguous, Message: "HTTP 500"}, nil).Once()
	env.OnActivity(rf.QueryRefund, mock.Anything, mock.Anything).Return(activities.QueryRefundResult{Outcome: activities.QueryNotFound}, nil).Once()
	env.OnActivity(rf.ApplyRefund, mock.Anything, activities.ApplyRefundInput{OutTradeNo: testNo, OutRefundNo: "R2"}).
		Return(activities.ApplyRefundResult{Outcome: activities.ApplyAccepted}, nil).Once()
	env.OnActivity(rf.QueryRefund, mock.Anything, mock.Anything).Return(refundTrade("R2", payment.RefundSuccess, 1234), nil).Once()
	env.OnActivity(rf.MarkRefund, mock.Anything, mock.Anything).Return(activities.MarkRefundResult{Changed: true,
		Refund:    payment.Refund{OutRefundNo: "R2", AmountFen: 1234, Status: payment.RefundSuccess},
		OrderFrom: payment.StatusPaid, OrderTo: payment.StatusRefunded}, nil).Once()

	st := run(t, env)
	env.AssertExpectations(t)
	if st.Status != payment.StatusRefunded || st.Refunds[0].Asks != 2 || st.Refunds[0].Queries != 2 {
		t.Fatalf("state = %+v", st)
	}
}

// NOT_ENOUGH (the merchant's balance is short) is asked again, under the
// same number, with a growing wait; a final refusal makes the refund
// FAILED with WeChat's reason.
func TestRefundNotEnoughThenRefused(t *testing.T) {
	env := paidOrderEnv(t)
	askAcceptedRefund(t, env, "R3", 100)
	var asks []time.Time
	env.OnActivity(rf.ApplyRefund, mock.Anything, mock.Anything).
		Return(activities.ApplyRefundResult{Outcome: activities.ApplyNotEnough, Code: "NOT_ENOUGH"}, nil).Times(3).
		Run(func(mock.Arguments) { asks = append(asks, env.Now()) })
	env.OnActivity(rf.ApplyRefund, mock.Anything, mock.Anything).
		Return(activities.ApplyRefundResult{Outcome: activities.ApplyRefused, Code: "USER_ACCOUNT_ABNORMAL", Message: "account closed"}, nil).Once()
	env.OnActivity(rf.MarkRefund, mock.Anything, mock.MatchedBy(func(in activities.MarkRefundInput) bool {
		return in.Status == payment.RefundFailed && in.Detail == "USER_ACCOUNT_ABNORMAL: account closed"
	})).Return(activities.MarkRefundResult{Changed: true, Refund: payment.Refund{OutRefundNo: "R3", Status: payment.RefundFailed},
		OrderFrom: payment.StatusPaid, OrderTo: payment.StatusPaid}, nil).Once()

	st := run(t, env)
	env.AssertExpectations(t)
	env.AssertNotCalled(t, "QueryRefund", mock.Anything, mock.Anything)
	if gap1, gap2 := asks[1].Sub(asks[0]), asks[2].Sub(asks[1]); gap1 < firstNotEnoughBackoff || gap2 <= gap1 {
		t.Fatalf("NOT_ENOUGH asked again after %s then %s", gap1, gap2)
	}
	if st.Status != payment.StatusPaid || st.Refunds[0].Status != payment.RefundFailed {
		t.Fatalf("state = %+v", st)
	}
}

// A fault after NOT_ENOUGH waits a fault's first backoff (10 s), not the
// double of NOT_ENOUGH's 10 minutes: each kind of wait has its own backoff.
func TestRefundFaultAfterNotEnoughWaitsItsOwnBackoff(t *testing.T) {
	env := paidOrderEnv(t)
	askAcceptedRefund(t, env, "R5", 100)
	var steps []time.Time
	note := func(mock.Arguments) { steps = append(steps, env.Now()) }
	env.OnActivity(rf.ApplyRefund, mock.Anything, mock.Anything).
		Return(activities.ApplyRefundResult{Outcome: activities.ApplyNotEnough, Code: "NOT_ENOUGH"}, nil).Once().Run(note)
	// The ask after the wait has no clear answer (a 500 after accepting,
	// say): the refund is queried first, a fault's backoff later.
	env.OnActivity(rf.ApplyRefund, mock.Anything, mock.Anything).
		Return(activities.ApplyRefundResult{Outcome: activities.ApplyAmbiguous, Message: "HTTP 500"}, nil).Once().Run(note)
	env.OnActivity(rf.QueryRefund, mock.Anything, mock.Anything).Return(refundTrade("R5", payment.RefundSuccess, 100), nil).Once().Run(note)
	env.OnActivity(rf.MarkRefund, mock.Anything, mock.Anything).Return(activities.MarkRefundResult{Changed: true,
		Refund: payment.Refund{OutRefundNo: "R5", AmountFen: 100, Status: payment.RefundSuccess}, OrderFrom: payment.StatusPaid, OrderTo: payment.StatusPaid}, nil).Once()

	run(t, env)
	env.AssertExpectations(t)
	if len(steps) != 3 {
		t.Fatalf("steps at %v", steps)
	}
	if wait, fault := steps[1].Sub(steps[0]), steps[2].Sub(steps[1]); wait < firstNotEnoughBackoff || fault > firstFaultBackoff+time.Second {
		t.Fatalf("asked again %s after NOT_ENOUGH, queried %s after the unclear answer; want %s, then %s", wait, fault, firstNotEnoughBackoff, firstFaultBackoff)
	}
}

// A repeat of a refund this run follows, while WeChat has not taken it
// (each request is its own update), changes nothing about it: a refund
// waiting out NOT_ENOUGH is not asked again before its wait is over.
func TestRefundRepeatKeepsItsWait(t *testing.T) {
	env := paidOrderEnv(t)
	askAcceptedRefund(t, env, "R6", 100)
	var asks []time.Time
	env.OnActivity(rf.ApplyRefund, mock.Anything, mock.Anything).
		Return(activities.ApplyRefundResult{Outcome: activities.ApplyNotEnough, Code: "NOT_ENOUGH"}, nil).Once().
		Run(func(mock.Arguments) { asks = append(asks, env.Now()) })
	env.OnActivity(rf.ApplyRefund, mock.Anything, mock.Anything).
		Return(activities.ApplyRefundResult{Outcome: activities.ApplyRefused, Code: "USER_ACCOUNT_ABNORMAL", Message: "account closed"}, nil).Once().
		Run(func(mock.Arguments) { asks = append(asks, env.Now()) })
	env.OnActivity(rf.MarkRefund, mock.Anything, mock.Anything).Return(activities.MarkRefundResult{Changed: true,
		Refund: payment.Refund{OutRefundNo: "R6", Status: payment.RefundFailed}, OrderFrom: payment.StatusPaid, OrderTo: payment.StatusPaid}, nil).Once()
	// The merchant asks again a minute later: the store finds the refund.
	env.OnActivity(rf.AcceptRefund, mock.Anything, mock.Anything).
		Return(activities.AcceptRefundResult{Refund: processing("R6", 100), Created: false}, nil).Once()
	repeat, rerr := askRefundAt(env, time.Minute, "refund/R6/repeat", RefundRequest{OutRefundNo: "R6", AmountFen: 100})

	run(t, env)
	env.AssertExpectations(t)
	if *rerr != nil || repeat.Created || repeat.Refund.OutRefundNo != "R6" {
		t.Fatalf("repeat answered %+v, %v; want the refund, not created", *repeat, *rerr)
	}
	if len(asks) != 2 || asks[1].Sub(asks[0]) < firstNotEnoughBackoff {
		t.Fatalf("asked at %v: the repeat brought the ask forward, want %s after NOT_ENOUGH", asks, firstNotEnoughBackoff)
	}
}

// ABNORMAL is shown and followed: a later query can still make the refund
// SUCCESS.
func TestRefundAbnormalFollowed(t *testing.T) {
	env := paidOrderEnv(t, payment.Refund{OutRefundNo: "R4", OutTradeNo: testNo, RefundID: "50R4", AmountFen: 50,
		Status: payment.RefundProcessing, Source: payment.RefundSourceAPI})
	env.OnActivity(rf.QueryRefund, mock.Anything, mock.Anything).Return(refundTrade("R4", payment.RefundAbnormal, 50), nil).Once()
	env.OnActivity(rf.MarkRefund, mock.Anything, mock.MatchedBy(func(in activities.MarkRefundInput) bool { return in.Status == payment.RefundAbnormal })).
		Return(activities.MarkRefundResult{Changed: true, Refund: payment.Refund{OutRefundNo: "R4", AmountFen: 50, Status: payment.RefundAbnormal},
			OrderFrom: payment.StatusPaid, OrderTo: payment.StatusPaid}, nil).Once()
	env.OnActivity(rf.QueryRefund, mock.Anything, mock.Anything).Return(refundTrade("R4", payment.RefundAbnormal, 50), nil).Once()
	env.OnActivity(rf.QueryRefund, mock.Anything, mock.Anything).Return(refundTrade("R4", payment.RefundSuccess, 50), nil).Once()
	env.OnActivity(rf.MarkRefund, mock.Anything, mock.MatchedBy(func(in activities.MarkRefundInput) bool { return in.Status == payment.RefundSuccess })).
		Return(activities.MarkRefundResult{Changed: true, Refund: payment.Refund{OutRefundNo: "R4", AmountFen: 50, Status: payment.RefundSuccess},
			OrderFrom: payment.StatusPaid, OrderTo: payment.StatusPaid}, nil).Once()

	st := run(t, env)
	env.AssertExpectations(t)
	env.AssertNotCalled(t, "ApplyRefund", mock.Anything, mock.Anything)
	if st.Refunds[0].Status != payment.RefundSuccess {
		t.Fatalf("state = %+v", st)
	}
}

// A refund notification for a refund we did not start (the merchant
// portal) is recorded with source merchant_portal and confirmed by query;
// it is never asked of WeChat and never pays anything.
func TestPortalRefundNotified(t *testing.T) {
	env := paidOrderEnv(t)
	n := payment.Notification{ID: "v2r:1", Source: payment.SourceV2, Kind: payment.KindRefund, OutTradeNo: testNo, TransactionID: "tx1",
		Refund: &payment.RefundFacts{OutRefundNo: "P1", RefundID: "50P1", Status: payment.RefundSuccess, AmountFen: 300, TotalFen: 1234, FromPortal: true}}
	signalAt(env, 0, n)
	env.OnActivity(rf.RecordPortalRefund, mock.Anything, mock.MatchedBy(func(in activities.RecordPortalRefundInput) bool {
		return in.OutRefundNo == "P1" && in.AmountFen == 300 && in.Status == ""
	})).Return(activities.RecordPortalRefundResult{Created: true, Refund: payment.Refund{OutRefundNo: "P1", AmountFen: 300,
		Status: payment.RefundProcessing, Source: payment.RefundSourcePortal, RefundID: "50P1"}}, nil).Once()
	env.OnActivity(rf.QueryRefund, mock.Anything, mock.Anything).Return(refundTrade("P1", payment.RefundSuccess, 300), nil).Once()
	env.OnActivity(rf.MarkRefund, mock.Anything, mock.Anything).Return(activities.MarkRefundResult{Changed: true,
		Refund: payment.Refund{OutRefundNo: "P1", AmountFen: 300, Status: payment.RefundSuccess}, OrderFrom: payment.StatusPaid, OrderTo: payment.StatusPaid}, nil).Once()

	st := run(t, env)
	env.AssertExpectations(t)
	env.AssertNotCalled(t, "ApplyRefund", mock.Anything, mock.Anything)
	env.AssertNotCalled(t, "MarkPaid", mock.Anything, mock.Anything)
	if st.Status != payment.StatusPaid || st.RefundedFen != 300 {
		t.Fatalf("state = %+v", st)
	}
}

// A refund the database refuses (more than is left) is answered with a
// typed error, and nothing is asked of WeChat.
func TestRefundRefusedHere(t *testing.T) {
	env := paidOrderEnv(t)
	_, rerr := askRefund(t, env, RefundRequest{OutRefundNo: "R5", AmountFen: 5000})
	env.OnActivity(rf.AcceptRefund, mock.Anything, mock.Anything).Return(activities.AcceptRefundResult{},
		temporal.NewNonRetryableApplicationError("accept refund R5: exceeds", activities.ErrTypeExceedsPaid, nil)).Once()

	run(t, env)
	env.AssertNotCalled(t, "ApplyRefund", mock.Anything, mock.Anything)
	var appErr *temporal.ApplicationError
	if !errors.As(*rerr, &appErr) || appErr.Type() != ErrTypeNotRefundable {
		t.Fatalf("refund error = %v, want %s", *rerr, ErrTypeNotRefundable)
	}
}

// A running run that does not know a refund accepted here (its update was
// lost with a crashed Temporal server) takes it up when the safety net asks
// it to read its open refunds again; the refunds it follows keep their
// schedule.
func TestReloadRefundsFollowsAnUnknownRefund(t *testing.T) {
	known := processing("R1", 100)
	known.RefundID = "50R1"
	env := paidOrderEnv(t, known)
	lost := processing("R9", 200)
	lost.CreatedAt = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	env.OnActivity(a.LoadOrder, mock.Anything, mock.Anything).Return(activities.LoadOrderResult{
		Found: true, Status: payment.StatusPaid, TransactionID: "tx1", AmountFen: 1234, PaidFen: 1234, OpenRefunds: []payment.Refund{known, lost},
		Settings: activities.Settings{RefundQueryAfter: time.Minute},
	}, nil).Once()
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalReloadRefunds, nil) }, 30*time.Second)

	var r1Queries []time.Time
	r1 := activities.QueryRefundInput{OutTradeNo: testNo, OutRefundNo: "R1"}
	env.OnActivity(rf.QueryRefund, mock.Anything, r1).Return(refundTrade("R1", payment.RefundProcessing, 100), nil).Once().
		Run(func(mock.Arguments) { r1Queries = append(r1Queries, env.Now()) })
	env.OnActivity(rf.QueryRefund, mock.Anything, r1).Return(refundTrade("R1", payment.RefundSuccess, 100), nil).Once().
		Run(func(mock.Arguments) { r1Queries = append(r1Queries, env.Now()) })
	r9 := activities.QueryRefundInput{OutTradeNo: testNo, OutRefundNo: "R9"}
	env.OnActivity(rf.QueryRefund, mock.Anything, r9).Return(activities.QueryRefundResult{Outcome: activities.QueryNotFound}, nil).Once()
	env.OnActivity(rf.ApplyRefund, mock.Anything, activities.ApplyRefundInput{OutTradeNo: testNo, OutRefundNo: "R9"}).
		Return(activities.ApplyRefundResult{Outcome: activities.ApplyAccepted}, nil).Once()
	env.OnActivity(rf.QueryRefund, mock.Anything, r9).Return(refundTrade("R9", payment.RefundSuccess, 200), nil).Once()
	for _, r := range []struct {
		no     string
		amount int64
	}{{"R1", 100}, {"R9", 200}} {
		env.OnActivity(rf.MarkRefund, mock.Anything, mock.MatchedBy(func(in activities.MarkRefundInput) bool {
			return in.OutRefundNo == r.no && in.Status == payment.RefundSuccess
		})).Return(activities.MarkRefundResult{Changed: true, Refund: payment.Refund{OutRefundNo: r.no, AmountFen: r.amount, Status: payment.RefundSuccess},
			OrderFrom: payment.StatusPaid, OrderTo: payment.StatusPaid}, nil).Once()
	}

	st := run(t, env)
	env.AssertExpectations(t)
	if len(r1Queries) != 2 || r1Queries[1].Sub(r1Queries[0]) < time.Minute {
		t.Fatalf("R1 queried at %v: the reload must not bring its next query forward", r1Queries)
	}
	if len(st.Refunds) != 2 || st.RefundedFen != 300 {
		t.Fatalf("state = %+v", st)
	}
}
