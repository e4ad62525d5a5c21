package api

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/workflows"
)

// handoff outcomes, for logs and answers.
const (
	handedOff     = "recorded"       // the order's workflow holds the notification
	alreadyPaid   = "already_paid"   // the order is PAID by this very transaction
	restartedFlow = "recorded_again" // the order's workflow had ended; a new run holds it
)

// handoff durably gives a verified notification to the order's workflow.
// It returns nil only once Temporal has recorded the signal (or the order is
// already PAID by the same transaction), so the caller may acknowledge.
func (s *Server) handoff(ctx context.Context, n payment.Notification) (string, error) {
	// RejectDuplicate: a closed workflow is not silently restarted for a
	// duplicate of a payment it already completed.
	err := s.signalWithStart(ctx, n, enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if !errors.As(err, &started) {
		if err != nil {
			return "", err
		}
		return handedOff, nil
	}
	// The workflow has finished. If the order is PAID by this transaction
	// the notification is a late duplicate: acknowledge, start nothing.
	order, gerr := s.Orders.GetOrder(ctx, n.OutTradeNo)
	if gerr == nil && order.Status == payment.StatusPaid && order.TransactionID == n.TransactionID {
		return alreadyPaid, nil
	}
	// Anything else (another transaction, a failed payment, an order in
	// REVIEW, an unknown order) still needs looking at: start a new run.
	if err := s.signalWithStart(ctx, n, enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE); err != nil {
		return "", err
	}
	return restartedFlow, nil
}

func (s *Server) signalWithStart(ctx context.Context, n payment.Notification, reuse enums.WorkflowIdReusePolicy) error {
	opts := client.StartWorkflowOptions{
		ID:                       workflows.WorkflowID(n.OutTradeNo),
		TaskQueue:                s.TaskQueue,
		WorkflowIDReusePolicy:    reuse,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		TypedSearchAttributes:    workflows.StartAttributes(n),
		StaticSummary:            workflows.Summary(n.OutTradeNo, n.AmountFen),
	}
	start := time.Now()
	_, err := s.Temporal.SignalWithStartWorkflow(ctx, opts.ID, workflows.SignalNotification, n, opts,
		workflows.PaymentWorkflow, workflows.PaymentInput{OutTradeNo: n.OutTradeNo})
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		s.Metrics.SignalWithStart(time.Since(start), nil) // an answer, not a failure
	} else {
		s.Metrics.SignalWithStart(time.Since(start), err)
	}
	if err != nil {
		return fmt.Errorf("signal with start %s: %w", opts.ID, err)
	}
	return nil
}
