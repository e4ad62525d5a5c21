package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/payflow/payflow/activities"
)

// SafetyNetScheduleID names the Temporal Schedule that runs the safety net
// of the deployment on taskQueue every RECONCILE_INTERVAL: one per task
// queue, so deployments sharing a namespace each look after their own
// database.
func SafetyNetScheduleID(taskQueue string) string { return "payflow-safety-net/" + taskQueue }

// sn names the safety net's activities.
var sn *activities.SafetyNet

// SafetyNetInput configures a pass.
type SafetyNetInput struct {
	// Grace: younger orders and notifications are left to the api and the
	// run still taking them.
	Grace time.Duration `json:"grace"`
	// Budget bounds a pass (its schedule's interval, less a margin); what a
	// pass does not reach, the next one takes up where this one stopped.
	Budget   time.Duration `json:"budget"`
	PageSize int           `json:"page_size,omitempty"`
}

// SafetyNetResult reports a pass, for the schedule's history and the logs.
// Cursors are where the next pass resumes (the schedule hands a pass its
// predecessor's result); a kind covered to its end starts over.
type SafetyNetResult struct {
	Checked int                             `json:"checked"`
	Handed  map[string][]string             `json:"handed"`
	Cursors map[string]activities.NetCursor `json:"cursors,omitempty"`
	Partial bool                            `json:"partial,omitempty"` // the budget ran out before every kind was covered
}

// SafetyNetWorkflow is one pass of the safety net: acknowledged
// notifications nobody examined, then PENDING orders and refunds not final
// that nobody looks after, page by page, each handed to a new run of its
// order's workflow.
func SafetyNetWorkflow(ctx workflow.Context, in SafetyNetInput) (SafetyNetResult, error) {
	if in.PageSize <= 0 {
		in.PageSize = 200
	}
	if in.Budget <= 0 {
		in.Budget = 4 * time.Minute
	}
	var prev SafetyNetResult
	if workflow.HasLastCompletionResult(ctx) {
		_ = workflow.GetLastCompletionResult(ctx, &prev) // a result it cannot read starts from the beginning
	}
	start := workflow.Now(ctx)
	before := start.Add(-in.Grace)
	res := SafetyNetResult{Handed: map[string][]string{}, Cursors: map[string]activities.NetCursor{}}
	for _, kind := range []string{activities.NetNotifications, activities.NetOrders, activities.NetRefunds} {
		cur := prev.Cursors[kind]
		for {
			if workflow.Now(ctx).Sub(start) >= in.Budget {
				res.Cursors[kind], res.Partial = cur, true
				break
			}
			var page activities.SafetyNetPageResult
			err := workflow.ExecuteActivity(safetyNetOptions(ctx, kind), sn.SafetyNetPage, activities.SafetyNetPageInput{
				Kind: kind, After: cur, Before: before, Limit: in.PageSize,
			}).Get(ctx, &page)
			if err != nil {
				// The next pass resumes from here.
				workflow.GetLogger(ctx).Warn("safety net page failed", "kind", kind, "err", err)
				res.Cursors[kind], res.Partial = cur, true
				break
			}
			res.Checked += page.Checked
			res.Handed[kind] = append(res.Handed[kind], page.Handed...)
			cur = page.Next
			if page.Done {
				break // covered to the end: the next pass starts over
			}
		}
	}
	workflow.GetLogger(ctx).Info("safety net pass", "checked", res.Checked,
		"notifications", len(res.Handed[activities.NetNotifications]), "orders", len(res.Handed[activities.NetOrders]),
		"refunds", len(res.Handed[activities.NetRefunds]), "partial", res.Partial)
	return res, nil
}

// safetyNetOptions: a page heartbeats as it goes and is tried a few times;
// a page that keeps failing ends the pass, and the next resumes there.
func safetyNetOptions(ctx workflow.Context, kind string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		HeartbeatTimeout:    30 * time.Second,
		Summary:             "safety net: " + kind,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second, MaximumAttempts: 3,
		},
	})
}
