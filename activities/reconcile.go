package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/payflow/payflow/metrics"
	"github.com/payflow/payflow/store"
)

// PendingLister lists old PENDING orders.
type PendingLister interface {
	PendingOrders(ctx context.Context, createdBefore time.Time, limit int) ([]store.PendingOrder, error)
}

// Describer is the part of the Temporal client that tells whether a
// workflow runs.
type Describer interface {
	DescribeWorkflowExecution(ctx context.Context, workflowID, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error)
}

// Reconciler finds PENDING orders that no workflow looks after: created
// before workflows owned orders, or whose workflow was terminated by hand.
type Reconciler struct {
	Orders     PendingLister
	Temporal   Describer
	WorkflowID func(outTradeNo string) string
	Metrics    *metrics.Metrics // nil counts nothing
}

// FindOrphansInput bounds one reconciliation pass.
type FindOrphansInput struct {
	CreatedBefore time.Time `json:"created_before"` // younger orders may still be starting their workflow
	Limit         int       `json:"limit"`
}

// Orphan is a PENDING order without a running workflow.
type Orphan struct {
	OutTradeNo string     `json:"out_trade_no"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	TradeType  string     `json:"trade_type"`
}

// FindOrphansResult is what a pass found.
type FindOrphansResult struct {
	Checked int      `json:"checked"`
	Orphans []Orphan `json:"orphans"`
}

// FindOrphans lists PENDING orders and keeps those whose workflow is not
// running. It only reads, so it is safe to retry.
func (r *Reconciler) FindOrphans(ctx context.Context, in FindOrphansInput) (FindOrphansResult, error) {
	pending, err := r.Orders.PendingOrders(ctx, in.CreatedBefore, in.Limit)
	if err != nil {
		return FindOrphansResult{}, fmt.Errorf("find orphans: %w", err)
	}
	res := FindOrphansResult{Checked: len(pending), Orphans: []Orphan{}}
	for _, o := range pending {
		running, err := r.running(ctx, r.WorkflowID(o.OutTradeNo))
		if err != nil {
			return FindOrphansResult{}, fmt.Errorf("find orphans: %s: %w", o.OutTradeNo, err)
		}
		if !running {
			res.Orphans = append(res.Orphans, Orphan{OutTradeNo: o.OutTradeNo, CreatedAt: o.CreatedAt, ExpiresAt: o.ExpiresAt, TradeType: o.TradeType})
		}
	}
	r.Metrics.ReconciliationFound(len(res.Orphans))
	return res, nil
}

func (r *Reconciler) running(ctx context.Context, workflowID string) (bool, error) {
	d, err := r.Temporal.DescribeWorkflowExecution(ctx, workflowID, "")
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return d.GetWorkflowExecutionInfo().GetStatus() == enums.WORKFLOW_EXECUTION_STATUS_RUNNING, nil
}
