package workflows

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/payflow/payflow/activities"
	"github.com/payflow/payflow/store"
	"github.com/payflow/payflow/wechatpay"
)

const day = "2026-11-25"

var link = wechatpay.BillLink{Date: day, HashType: "SHA1", HashValue: "da39a3ee5e6b4b0d3255bfef95601890afd80709", DownloadURL: "https://x/y"}

// billEnv is a test environment with the bill activities registered and
// the bookkeeping steps mocked to record the outcome.
type billEnv struct {
	*testsuite.TestWorkflowEnvironment
	finished []activities.FinishBillRunInput
}

func newBillEnv(t *testing.T) *billEnv {
	var s testsuite.WorkflowTestSuite
	e := &billEnv{TestWorkflowEnvironment: s.NewTestWorkflowEnvironment()}
	e.RegisterActivity(&activities.BillActivities{})
	e.RegisterWorkflow(BillReconcileWorkflow)
	e.OnActivity(ba.BeginBillRun, mock.Anything, mock.MatchedBy(func(in activities.BeginBillRunInput) bool {
		return in.Date == day && in.RunID != ""
	})).Return(activities.BeginBillRunResult{}, nil).Once()
	e.OnActivity(ba.FinishBillRun, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.FinishBillRunInput) (activities.FinishBillRunResult, error) {
			e.finished = append(e.finished, in)
			rows := int64(3)
			if in.Status == store.BillNoBill || in.Status == store.BillFailed {
				rows = 0
			}
			return activities.FinishBillRunResult{Status: in.Status, BillRows: rows}, nil
		})
	return e
}

func (e *billEnv) result(t *testing.T) BillReconcileResult {
	t.Helper()
	if !e.IsWorkflowCompleted() {
		t.Fatal("workflow not completed")
	}
	if err := e.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res BillReconcileResult
	if err := e.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if len(e.finished) != 1 || e.finished[0].Status != res.Status {
		t.Fatalf("finished %+v, result %+v", e.finished, res)
	}
	return res
}

func appError(typ, msg string) error { return temporal.NewNonRetryableApplicationError(msg, typ, nil) }

// WeChat is still making the bill twice; then the bill loads, differs and
// the differences are acted on.
func TestBillWorkflowWaitsThenReconciles(t *testing.T) {
	e := newBillEnv(t)
	start := e.Now()
	e.OnActivity(ba.LocateBill, mock.Anything, activities.LocateBillInput{Date: day}).
		Return(activities.LocateBillResult{Status: activities.BillNotReady}, nil).Twice()
	e.OnActivity(ba.LocateBill, mock.Anything, activities.LocateBillInput{Date: day}).
		Return(activities.LocateBillResult{Status: activities.BillReady, Link: link}, nil).Once()
	var loadedAt time.Time
	e.OnActivity(ba.LoadBill, mock.Anything, mock.MatchedBy(func(in activities.LoadBillInput) bool { return in.Link == link })).
		Return(func(_ context.Context, _ activities.LoadBillInput) (activities.LoadBillResult, error) {
			loadedAt = e.Now()
			return activities.LoadBillResult{Rows: 3, Payments: 3}, nil
		}).Once()
	e.OnActivity(ba.DiffBill, mock.Anything, mock.Anything).Return(activities.DiffBillResult{Matched: 1, Differences: 2,
		Kinds: map[string]int{store.DiffPaidAtWeChatOnly: 1, store.DiffAmountMismatch: 1}}, nil).Once()
	e.OnActivity(ba.ActOnDifferences, mock.Anything, mock.Anything).Return(activities.ActOnDifferencesResult{Taken: 2}, nil).Once()

	e.ExecuteWorkflow(BillReconcileWorkflow, BillReconcileInput{Date: day, PollInterval: 30 * time.Minute})
	res := e.result(t)
	if res.Status != store.BillDifferences || res.BillRows != 3 || res.Matched != 1 || res.Differences != 2 || res.Error != "" {
		t.Fatalf("result %+v", res)
	}
	if waited := loadedAt.Sub(start); waited < time.Hour || waited > time.Hour+time.Minute {
		t.Fatalf("loaded after %s, want two 30-minute waits", waited)
	}
	e.AssertExpectations(t)
}

func TestBillWorkflowOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name      string
		setup     func(e *billEnv)
		status    string
		errPrefix string
	}{
		{"no bill", func(e *billEnv) {
			e.OnActivity(ba.LocateBill, mock.Anything, mock.Anything).Return(activities.LocateBillResult{Status: activities.BillNone}, nil).Once()
		}, store.BillNoBill, ""},
		{"v2 says no bill on download", func(e *billEnv) {
			e.OnActivity(ba.LocateBill, mock.Anything, mock.Anything).Return(activities.LocateBillResult{Status: activities.BillReady, Link: link}, nil).Once()
			e.OnActivity(ba.LoadBill, mock.Anything, mock.Anything).Return(activities.LoadBillResult{}, appError(activities.ErrTypeNoBill, "No Bill Exist")).Once()
		}, store.BillNoBill, ""},
		{"hash differs", func(e *billEnv) {
			e.OnActivity(ba.LocateBill, mock.Anything, mock.Anything).Return(activities.LocateBillResult{Status: activities.BillReady, Link: link}, nil).Once()
			e.OnActivity(ba.LoadBill, mock.Anything, mock.Anything).Return(activities.LoadBillResult{},
				appError(activities.ErrTypeBillInvalid, "load bill 2026-11-25: bill: SHA-1 of the bill differs from hash_value")).Once()
		}, store.BillFailed, "load bill 2026-11-25: bill: SHA-1"},
		{"refused by WeChat", func(e *billEnv) {
			e.OnActivity(ba.LocateBill, mock.Anything, mock.Anything).Return(activities.LocateBillResult{},
				appError(activities.ErrTypeBillUnavailable, "NO_AUTH")).Once()
		}, store.BillFailed, "WeChat did not give the bill: NO_AUTH"},
		{"matched", func(e *billEnv) {
			e.OnActivity(ba.LocateBill, mock.Anything, mock.Anything).Return(activities.LocateBillResult{Status: activities.BillReady, Link: link}, nil).Once()
			e.OnActivity(ba.LoadBill, mock.Anything, mock.Anything).Return(activities.LoadBillResult{Rows: 3}, nil).Once()
			e.OnActivity(ba.DiffBill, mock.Anything, mock.Anything).Return(activities.DiffBillResult{Matched: 3}, nil).Once()
		}, store.BillMatched, ""},
		{"expired link asked again", func(e *billEnv) {
			e.OnActivity(ba.LocateBill, mock.Anything, mock.Anything).Return(activities.LocateBillResult{Status: activities.BillReady, Link: link}, nil).Twice()
			e.OnActivity(ba.LoadBill, mock.Anything, mock.Anything).Return(activities.LoadBillResult{}, appError(activities.ErrTypeBillLinkExpired, "expired")).Once()
			e.OnActivity(ba.LoadBill, mock.Anything, mock.Anything).Return(activities.LoadBillResult{Rows: 3}, nil).Once()
			e.OnActivity(ba.DiffBill, mock.Anything, mock.Anything).Return(activities.DiffBillResult{Matched: 3}, nil).Once()
		}, store.BillMatched, ""},
		{"links refused again and again", func(e *billEnv) {
			e.OnActivity(ba.LocateBill, mock.Anything, mock.Anything).Return(activities.LocateBillResult{Status: activities.BillReady, Link: link}, nil).Times(maxLinkRefusals + 1)
			e.OnActivity(ba.LoadBill, mock.Anything, mock.Anything).Return(activities.LoadBillResult{}, appError(activities.ErrTypeBillLinkExpired, "expired")).Times(maxLinkRefusals + 1)
		}, store.BillFailed, "the download link was refused"},
		{"never ready", func(e *billEnv) {
			e.OnActivity(ba.LocateBill, mock.Anything, mock.Anything).Return(activities.LocateBillResult{Status: activities.BillNotReady}, nil).Times(5) // at 0, 30, 60, 90 and 120 minutes
		}, store.BillFailed, "WeChat was still making the bill after 2h0m0s"},
		{"staging lost, loaded again", func(e *billEnv) {
			e.OnActivity(ba.LocateBill, mock.Anything, mock.Anything).Return(activities.LocateBillResult{Status: activities.BillReady, Link: link}, nil).Twice()
			e.OnActivity(ba.LoadBill, mock.Anything, mock.Anything).Return(activities.LoadBillResult{Rows: 3}, nil).Twice()
			e.OnActivity(ba.DiffBill, mock.Anything, mock.Anything).Return(activities.DiffBillResult{}, appError(activities.ErrTypeBillStageLost, "gone")).Once()
			e.OnActivity(ba.DiffBill, mock.Anything, mock.Anything).Return(activities.DiffBillResult{Matched: 3}, nil).Once()
		}, store.BillMatched, ""},
		{"actions fail", func(e *billEnv) {
			e.OnActivity(ba.LocateBill, mock.Anything, mock.Anything).Return(activities.LocateBillResult{Status: activities.BillReady, Link: link}, nil).Once()
			e.OnActivity(ba.LoadBill, mock.Anything, mock.Anything).Return(activities.LoadBillResult{Rows: 3}, nil).Once()
			e.OnActivity(ba.DiffBill, mock.Anything, mock.Anything).Return(activities.DiffBillResult{Differences: 1}, nil).Once()
			e.OnActivity(ba.ActOnDifferences, mock.Anything, mock.Anything).Return(activities.ActOnDifferencesResult{}, appError("X", "temporal down")).Once()
		}, store.BillDifferences, "some actions could not be taken: temporal down"},
		{"actions unavailable", func(e *billEnv) {
			e.OnActivity(ba.LocateBill, mock.Anything, mock.Anything).Return(activities.LocateBillResult{Status: activities.BillReady, Link: link}, nil).Once()
			e.OnActivity(ba.LoadBill, mock.Anything, mock.Anything).Return(activities.LoadBillResult{Rows: 3}, nil).Once()
			e.OnActivity(ba.DiffBill, mock.Anything, mock.Anything).Return(activities.DiffBillResult{Differences: 1}, nil).Once()
			e.OnActivity(ba.ActOnDifferences, mock.Anything, mock.Anything).Return(activities.ActOnDifferencesResult{NotTaken: 1, Note: "no refunds"}, nil).Once()
		}, store.BillDifferences, "1 action(s) not taken yet: no refunds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newBillEnv(t)
			tc.setup(e)
			e.ExecuteWorkflow(BillReconcileWorkflow, BillReconcileInput{Date: day, PollInterval: 30 * time.Minute, MaxWait: 2 * time.Hour})
			res := e.result(t)
			if res.Status != tc.status || (tc.errPrefix == "" && res.Error != "") || len(res.Error) < len(tc.errPrefix) || res.Error[:len(tc.errPrefix)] != tc.errPrefix {
				t.Fatalf("result %+v, want %s %q", res, tc.status, tc.errPrefix)
			}
			e.AssertExpectations(t)
		})
	}
}

func TestBillWorkflowRejectsBadDate(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	e := s.NewTestWorkflowEnvironment()
	e.RegisterActivity(&activities.BillActivities{})
	e.ExecuteWorkflow(BillReconcileWorkflow, BillReconcileInput{Date: "2026-11-31"})
	var appErr *temporal.ApplicationError
	if err := e.GetWorkflowError(); !errors.As(err, &appErr) || appErr.Type() != activities.ErrTypeBillInvalid {
		t.Fatalf("err %v", err)
	}
}

// The daily run reconciles yesterday and the missed days the store lists,
// skipping a day whose workflow is still running.
func TestBillScheduleWorkflowCatchesUp(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	e := s.NewTestWorkflowEnvironment()
	e.RegisterActivity(&activities.BillActivities{})
	e.RegisterWorkflow(BillScheduleWorkflow)
	e.RegisterWorkflow(BillReconcileWorkflow)
	now := time.Date(2026, 11, 26, 2, 30, 0, 0, time.UTC) // 10:30 in Beijing
	e.SetStartTime(now)
	e.OnActivity(ba.PendingBillDays, mock.Anything, activities.PendingBillDaysInput{Today: "2026-11-26", Window: 90, Limit: 7}).
		Return(activities.PendingBillDaysResult{Days: []string{"2026-11-25", "2026-11-20", "2026-11-19"}}, nil).Once()
	var days []string
	e.OnWorkflow(BillReconcileWorkflow, mock.Anything, mock.Anything).Return(
		func(_ workflow.Context, in BillReconcileInput) (BillReconcileResult, error) {
			days = append(days, in.Date)
			if in.PollInterval != time.Minute {
				t.Errorf("input %+v", in)
			}
			if in.Date == "2026-11-20" {
				return BillReconcileResult{}, temporal.NewApplicationError("boom", "X")
			}
			return BillReconcileResult{Date: in.Date, Status: store.BillMatched}, nil
		})
	e.ExecuteWorkflow(BillScheduleWorkflow, BillScheduleInput{PollInterval: time.Minute})
	if err := e.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res BillScheduleResult
	if err := e.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res.Today != "2026-11-26" || len(res.Days) != 3 || res.Days[0].Status != store.BillMatched || res.Days[1].Status != store.BillFailed ||
		len(days) != 3 || days[0] != "2026-11-25" || days[2] != "2026-11-19" {
		t.Fatalf("result %+v, days %v", res, days)
	}
}

func TestBillWorkflowID(t *testing.T) {
	if BillWorkflowID("2026-11-25") != "bill/2026-11-25" {
		t.Fatal(BillWorkflowID("2026-11-25"))
	}
}
