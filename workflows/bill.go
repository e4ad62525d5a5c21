package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/payflow/payflow/activities"
	"github.com/payflow/payflow/store"
	"github.com/payflow/payflow/wechatpay"
)

// BillScheduleID names the Temporal Schedule that reconciles every day for
// the deployment on taskQueue: one per task queue, as the safety net's, so
// that deployments sharing a namespace each reconcile their own database.
func BillScheduleID(taskQueue string) string { return "payflow-bill-reconcile/" + taskQueue }

// QueryBillState answers a bill workflow's BillState.
const QueryBillState = "bill-state"

// BillWorkflowID is the one workflow id of a day's reconciliation: asking
// again for the same day reaches the same id (a new run once the last one
// closed).
func BillWorkflowID(date string) string { return "bill/" + date }

// Search attributes of bill workflows: operators find a day's run with
// BillDate="2026-11-25", the days with differences with
// BillStatus="DIFFERENCES".
var (
	AttrBillDate   = temporal.NewSearchAttributeKeyKeyword("BillDate")
	AttrBillStatus = temporal.NewSearchAttributeKeyKeyword("BillStatus")
)

// BillAttributes are the search attributes a day's workflow starts with.
func BillAttributes(date string) temporal.SearchAttributes {
	return temporal.NewSearchAttributes(AttrBillDate.ValueSet(date), AttrBillStatus.ValueSet(store.BillRunning))
}

// BillSummary is a day's run's static summary in the Temporal UI.
func BillSummary(date string) string { return "WeChat trade bill of " + date }

// Defaults for BillReconcileInput's zero values.
const (
	// DefaultBillPollInterval: while WeChat answers STATEMENT_CREATING,
	// ask again this often (WeChat's advice).
	DefaultBillPollInterval = 30 * time.Minute
	// DefaultBillMaxWait: a bill still not made this long after the run
	// started fails the run; the next scheduled run asks again.
	DefaultBillMaxWait = 12 * time.Hour
	// maxLinkRefusals bounds how often a refused download link is asked
	// for again within one run.
	maxLinkRefusals = 5
	// maxReloads bounds how often a lost staging table is loaded again.
	maxReloads = 3
)

// ba names the bill activities.
var ba *activities.BillActivities

// BillReconcileInput is one day to reconcile.
type BillReconcileInput struct {
	Date         string        `json:"date"` // YYYY-MM-DD, a Beijing day
	PollInterval time.Duration `json:"poll_interval,omitempty"`
	MaxWait      time.Duration `json:"max_wait,omitempty"`
}

// BillReconcileResult is how the day's run ended.
type BillReconcileResult struct {
	Date        string         `json:"date"`
	RunID       string         `json:"run_id"`
	Status      string         `json:"status"` // MATCHED, DIFFERENCES, NO_BILL or FAILED
	BillRows    int64          `json:"bill_rows"`
	Matched     int64          `json:"matched"`
	Differences int            `json:"differences"`
	Kinds       map[string]int `json:"kinds,omitempty"`
	Error       string         `json:"error,omitempty"`
}

// BillState is what QueryBillState answers.
type BillState struct {
	Date  string `json:"date"`
	Step  string `json:"step"`
	Waits int    `json:"waits"` // times WeChat said the bill was not ready
}

// billFlow is one run's state.
type billFlow struct {
	in    BillReconcileInput
	runID string
	state BillState
	res   BillReconcileResult
}

// BillReconcileWorkflow reconciles one day against WeChat's trade bill:
// record the run, ask for the bill (waiting while WeChat makes it), load it
// into PostgreSQL as it downloads, compare it with our books, act on each
// difference through the order's workflow, record the outcome. A bill that
// cannot be had or does not check out ends the run FAILED with nothing
// changed. The run's outcome is its result, not a workflow failure.
func BillReconcileWorkflow(ctx workflow.Context, in BillReconcileInput) (BillReconcileResult, error) {
	if in.PollInterval <= 0 {
		in.PollInterval = DefaultBillPollInterval
	}
	if in.MaxWait <= 0 {
		in.MaxWait = DefaultBillMaxWait
	}
	b := &billFlow{in: in, runID: workflow.GetInfo(ctx).WorkflowExecution.RunID, state: BillState{Date: in.Date, Step: "starting"}}
	b.res = BillReconcileResult{Date: in.Date, RunID: b.runID}
	if err := workflow.SetQueryHandler(ctx, QueryBillState, func() (BillState, error) { return b.state, nil }); err != nil {
		return b.res, err
	}
	if _, err := wechatpay.BillDay(in.Date); err != nil {
		return b.res, temporal.NewNonRetryableApplicationError(err.Error(), activities.ErrTypeBillInvalid, err)
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrBillDate.ValueSet(in.Date), AttrBillStatus.ValueSet(store.BillRunning))
	err := workflow.ExecuteActivity(billStoreOptions(ctx, "record the run"), ba.BeginBillRun,
		activities.BeginBillRunInput{Date: in.Date, RunID: b.runID, StartedAt: workflow.Now(ctx)}).Get(ctx, nil)
	if err != nil {
		return b.res, err
	}
	status, errText := b.reconcile(ctx)
	return b.finish(ctx, status, errText)
}

// reconcile runs the steps and returns the run's status and error text.
func (b *billFlow) reconcile(ctx workflow.Context) (string, string) {
	deadline := workflow.Now(ctx).Add(b.in.MaxWait)
	for reloads := 0; ; reloads++ {
		if status, errText, loaded := b.fetchAndLoad(ctx, deadline); !loaded {
			return status, errText
		}
		b.state.Step = "comparing with our orders and refunds"
		var diff activities.DiffBillResult
		err := workflow.ExecuteActivity(diffOptions(ctx), ba.DiffBill,
			activities.DiffBillInput{Date: b.in.Date, RunID: b.runID}).Get(ctx, &diff)
		if errorType(err) == activities.ErrTypeBillStageLost && reloads < maxReloads {
			workflow.GetLogger(ctx).Warn("the loaded bill is gone; loading it again", "date", b.in.Date)
			continue
		}
		if err != nil {
			return store.BillFailed, "comparing the bill: " + errorText(err)
		}
		b.res.Matched, b.res.Differences, b.res.Kinds = diff.Matched, diff.Differences, diff.Kinds
		if diff.Differences == 0 {
			return store.BillMatched, ""
		}
		b.state.Step = "acting on the differences"
		var act activities.ActOnDifferencesResult
		err = workflow.ExecuteActivity(actOptions(ctx), ba.ActOnDifferences,
			activities.ActOnDifferencesInput{Date: b.in.Date, RunID: b.runID}).Get(ctx, &act)
		switch {
		case err != nil:
			// The differences are recorded; those whose action could not be
			// taken are taken by the next run.
			return store.BillDifferences, "some actions could not be taken: " + errorText(err)
		case act.NotTaken > 0:
			return store.BillDifferences, fmt.Sprintf("%d action(s) not taken yet: %s", act.NotTaken, act.Note)
		}
		return store.BillDifferences, ""
	}
}

// fetchAndLoad asks for the bill until WeChat gives it and loads it. It
// returns loaded, or the run's final status and error text.
func (b *billFlow) fetchAndLoad(ctx workflow.Context, deadline time.Time) (status, errText string, loaded bool) {
	refused := 0
	for {
		b.state.Step = "asking WeChat for the bill"
		var loc activities.LocateBillResult
		err := workflow.ExecuteActivity(locateOptions(ctx), ba.LocateBill, activities.LocateBillInput{Date: b.in.Date}).Get(ctx, &loc)
		if err != nil {
			return store.BillFailed, "WeChat did not give the bill: " + errorText(err), false
		}
		switch loc.Status {
		case activities.BillNone:
			return store.BillNoBill, "", false
		case activities.BillNotReady:
			if !b.wait(ctx, deadline) {
				return store.BillFailed, fmt.Sprintf("WeChat was still making the bill after %s", b.in.MaxWait), false
			}
			continue
		}
		b.state.Step = "downloading and loading the bill"
		var res activities.LoadBillResult
		err = workflow.ExecuteActivity(loadOptions(ctx), ba.LoadBill,
			activities.LoadBillInput{Date: b.in.Date, RunID: b.runID, Link: loc.Link}).Get(ctx, &res)
		switch errorType(err) {
		case "":
			if err != nil {
				return store.BillFailed, "loading the bill: " + errorText(err), false
			}
			b.res.BillRows = res.Rows
			return "", "", true
		case activities.ErrTypeBillLinkExpired:
			if refused++; refused > maxLinkRefusals {
				return store.BillFailed, "the download link was refused " + fmt.Sprint(refused) + " times: " + errorText(err), false
			}
			continue // a fresh link
		case activities.ErrTypeBillNotReady:
			if !b.wait(ctx, deadline) {
				return store.BillFailed, fmt.Sprintf("WeChat was still making the bill after %s", b.in.MaxWait), false
			}
			continue
		case activities.ErrTypeNoBill:
			return store.BillNoBill, "", false
		default: // BillInvalid, BillUnavailable, retries exhausted
			return store.BillFailed, errorText(err), false
		}
	}
}

// wait sleeps PollInterval unless that passes the deadline.
func (b *billFlow) wait(ctx workflow.Context, deadline time.Time) bool {
	if workflow.Now(ctx).Add(b.in.PollInterval).After(deadline) {
		return false
	}
	b.state.Step = "waiting for WeChat to make the bill"
	b.state.Waits++
	return workflow.Sleep(ctx, b.in.PollInterval) == nil
}

// finish records the outcome; it is retried until the database answers.
func (b *billFlow) finish(ctx workflow.Context, status, errText string) (BillReconcileResult, error) {
	b.state.Step = "recording the outcome"
	var fin activities.FinishBillRunResult
	err := workflow.ExecuteActivity(billStoreOptions(ctx, "record the outcome: "+status), ba.FinishBillRun,
		activities.FinishBillRunInput{Date: b.in.Date, RunID: b.runID, Status: status, Error: errText}).Get(ctx, &fin)
	if err != nil {
		return b.res, err
	}
	b.res.Status, b.res.Error = fin.Status, errText
	if fin.Status == store.BillNoBill || fin.Status == store.BillFailed {
		b.res.BillRows = fin.BillRows
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrBillStatus.ValueSet(fin.Status))
	b.state.Step = "done: " + fin.Status
	workflow.GetLogger(ctx).Info("bill reconciled", "date", b.in.Date, "status", fin.Status, "bill_rows", b.res.BillRows,
		"matched", b.res.Matched, "differences", b.res.Differences, "error", errText)
	return b.res, nil
}

// errorType is an activity failure's application error type, "" if none.
func errorType(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Type()
	}
	return ""
}

// errorText is the application error's message, without the activity
// failure's wrapping.
func errorText(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	return err.Error()
}

// billStoreOptions: short PostgreSQL steps, retried until the database is
// back.
func billStoreOptions(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		Summary:             summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        time.Minute,
			NonRetryableErrorTypes: []string{activities.ErrTypeBillInvalid},
		},
	})
}

// locateOptions: WeChat's tradebill. Network trouble and system errors are
// retried for about an hour; a refusal ends the run.
func locateOptions(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		Summary:             "ask WeChat for the bill",
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        5 * time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        5 * time.Minute,
			MaximumAttempts:        15,
			NonRetryableErrorTypes: []string{activities.ErrTypeBillUnavailable},
		},
	})
}

// loadOptions: the download streamed into COPY; it heartbeats as rows
// arrive.
func loadOptions(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute,
		HeartbeatTimeout:    2 * time.Minute,
		Summary:             "download the bill and load it",
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    10 * time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    2 * time.Minute,
			MaximumAttempts:    5,
			NonRetryableErrorTypes: []string{activities.ErrTypeBillInvalid, activities.ErrTypeBillUnavailable,
				activities.ErrTypeBillLinkExpired, activities.ErrTypeBillNotReady, activities.ErrTypeNoBill},
		},
	})
}

// diffOptions: the set-based comparison, one transaction.
func diffOptions(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 15 * time.Minute,
		Summary:             "compare the bill with our books",
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        5 * time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        2 * time.Minute,
			MaximumAttempts:        10,
			NonRetryableErrorTypes: []string{activities.ErrTypeBillStageLost, activities.ErrTypeBillInvalid},
		},
	})
}

// actOptions: the actions through the orders' workflows; a retry resumes
// after the last difference acted on.
func actOptions(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute,
		HeartbeatTimeout:    2 * time.Minute,
		Summary:             "act on the differences",
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    5 * time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    2 * time.Minute,
			MaximumAttempts:    5,
		},
	})
}

// BillScheduleInput configures the daily run the Schedule starts.
type BillScheduleInput struct {
	PollInterval time.Duration `json:"poll_interval,omitempty"`
	MaxWait      time.Duration `json:"max_wait,omitempty"`
	Window       int           `json:"window,omitempty"`   // days back to catch up (default 90: WeChat keeps 3 months)
	MaxDays      int           `json:"max_days,omitempty"` // days reconciled per run at most (default 7)
}

// BillScheduleResult lists what the daily run did.
type BillScheduleResult struct {
	Today   string                `json:"today"`
	Days    []BillReconcileResult `json:"days"`
	Skipped []string              `json:"skipped"` // days whose workflow was already running
}

// Defaults of BillScheduleInput.
const (
	DefaultBillWindow  = 90
	DefaultBillMaxDays = 7
)

// BillScheduleWorkflow is what the daily Schedule runs: it reconciles the
// previous Beijing day and catches up on earlier days of the window that
// have no finished run (newest first, at most MaxDays a run), one day's
// workflow after the other. A day whose workflow is running is skipped.
func BillScheduleWorkflow(ctx workflow.Context, in BillScheduleInput) (BillScheduleResult, error) {
	if in.Window <= 0 {
		in.Window = DefaultBillWindow
	}
	if in.MaxDays <= 0 {
		in.MaxDays = DefaultBillMaxDays
	}
	res := BillScheduleResult{Today: workflow.Now(ctx).In(wechatpay.Beijing).Format(wechatpay.BillDateLayout),
		Days: []BillReconcileResult{}, Skipped: []string{}}
	var pending activities.PendingBillDaysResult
	err := workflow.ExecuteActivity(billStoreOptions(ctx, "find the days to reconcile"), ba.PendingBillDays,
		activities.PendingBillDaysInput{Today: res.Today, Window: in.Window, Limit: in.MaxDays}).Get(ctx, &pending)
	if err != nil {
		return res, err
	}
	for _, day := range pending.Days {
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:            BillWorkflowID(day),
			WorkflowIDReusePolicy: enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			ParentClosePolicy:     enums.PARENT_CLOSE_POLICY_ABANDON,
			TypedSearchAttributes: BillAttributes(day),
			StaticSummary:         BillSummary(day),
		})
		child := workflow.ExecuteChildWorkflow(cctx, BillReconcileWorkflow, BillReconcileInput{
			Date: day, PollInterval: in.PollInterval, MaxWait: in.MaxWait,
		})
		err := child.GetChildWorkflowExecution().Get(ctx, nil)
		var started *temporal.ChildWorkflowExecutionAlreadyStartedError
		switch {
		case errors.As(err, &started):
			res.Skipped = append(res.Skipped, day)
			continue
		case err != nil:
			return res, err
		}
		var r BillReconcileResult
		if err := child.Get(ctx, &r); err != nil {
			r = BillReconcileResult{Date: day, Status: store.BillFailed, Error: errorText(err)}
		}
		res.Days = append(res.Days, r)
	}
	workflow.GetLogger(ctx).Info("daily bill reconciliation", "today", res.Today, "days", len(res.Days), "skipped", res.Skipped)
	return res, nil
}
