package workflows

import (
	"errors"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/payflow/payflow/activities"
)

// ReconcileScheduleID names the Temporal Schedule the worker creates.
const ReconcileScheduleID = "payflow-reconcile"

// r names the reconciliation activities.
var r *activities.Reconciler

// ReconcileInput configures a reconciliation pass.
type ReconcileInput struct {
	Grace        time.Duration `json:"grace"`         // skip orders younger than this: their workflow may be starting
	Limit        int           `json:"limit"`         // at most this many orders a pass
	OrderTimeout time.Duration `json:"order_timeout"` // for orders stored without an expiry
	QueryAfter   time.Duration `json:"query_after"`
}

// ReconcileResult reports a pass, for the schedule's history and the logs.
type ReconcileResult struct {
	Checked int      `json:"checked"`
	Started []string `json:"started"` // orders whose workflow this pass started
}

// ReconcileWorkflow hands every PENDING order without a running workflow
// to its payment workflow. The Temporal Schedule runs it periodically.
func ReconcileWorkflow(ctx workflow.Context, in ReconcileInput) (ReconcileResult, error) {
	if in.Limit <= 0 {
		in.Limit = 500
	}
	var found activities.FindOrphansResult
	err := workflow.ExecuteActivity(storeOptions(ctx, "find PENDING orders without a workflow"), r.FindOrphans,
		activities.FindOrphansInput{CreatedBefore: workflow.Now(ctx).Add(-in.Grace), Limit: in.Limit}).Get(ctx, &found)
	if err != nil {
		return ReconcileResult{}, err
	}
	res := ReconcileResult{Checked: found.Checked, Started: []string{}}
	for _, o := range found.Orphans {
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:            WorkflowID(o.OutTradeNo),
			ParentClosePolicy:     enums.PARENT_CLOSE_POLICY_ABANDON, // the payment outlives this pass
			WorkflowIDReusePolicy: enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			StaticSummary:         o.OutTradeNo + " (reconciled)",
			TypedSearchAttributes: temporal.NewSearchAttributes(
				AttrOutTradeNo.ValueSet(o.OutTradeNo), AttrPaymentStatus.ValueSet("PENDING")),
		})
		child := workflow.ExecuteChildWorkflow(cctx, PaymentWorkflow, PaymentInput{
			OutTradeNo: o.OutTradeNo,
			Lifecycle:  NewLifecycle(o.CreatedAt, o.ExpiresAt, o.TradeType, in.OrderTimeout, in.QueryAfter),
		})
		err := child.GetChildWorkflowExecution().Get(ctx, nil)
		var started *temporal.ChildWorkflowExecutionAlreadyStartedError
		switch {
		case errors.As(err, &started):
			continue // a workflow appeared meanwhile (a notification arrived)
		case err != nil:
			return res, err
		}
		res.Started = append(res.Started, o.OutTradeNo)
	}
	workflow.GetLogger(ctx).Info("reconciliation", "checked", res.Checked, "started", len(res.Started), "orders", res.Started)
	return res, nil
}
