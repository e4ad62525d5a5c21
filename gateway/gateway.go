// Package gateway is the one way into an order's workflow,
// payment/{out_trade_no}. It owns the workflow id, the start options
// (search attributes, summary, memo, id reuse and conflict policies) and
// every message the workflow takes: notifications, creation with its
// prepay, close, sync, refunds, resolutions of REVIEW, and the bill
// reconciliation's actions. The api, the notification handoff, the safety
// net and the bill reconciliation all go through it, so an order's run is
// started and addressed the same way whoever talks to it.
//
// Every message starts a run when none is running (an order's run ends
// once its order is decided and nothing is left to follow), so a message
// never depends on an earlier run still being open. The run itself reads
// the order from PostgreSQL in its first task; the start options carry only
// what the caller knows.
package gateway

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/payflow/payflow/metrics"
	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/workflows"
)

// Client is the part of the Temporal client the gateway uses.
type Client interface {
	SignalWithStartWorkflow(ctx context.Context, workflowID, signalName string, signalArg any,
		options client.StartWorkflowOptions, workflow any, workflowArgs ...any) (client.WorkflowRun, error)
	ExecuteWorkflow(ctx context.Context, options client.StartWorkflowOptions, workflow any, args ...any) (client.WorkflowRun, error)
	NewWithStartWorkflowOperation(options client.StartWorkflowOptions, workflow any, args ...any) client.WithStartWorkflowOperation
	UpdateWithStartWorkflow(ctx context.Context, options client.UpdateWithStartWorkflowOptions) (client.WorkflowUpdateHandle, error)
}

// Gateway sends messages to orders' workflows.
type Gateway struct {
	Temporal  Client
	TaskQueue string
	Metrics   *metrics.Metrics // nil records nothing

	// QueryAfter is ORDER_QUERY_AFTER: a created plain order's run has
	// nothing to do before its first query is due (or the order expires,
	// if sooner), so Create delays its first workflow task until then
	// (StartDelay). 0 starts it at once.
	QueryAfter time.Duration
}

// WorkflowID is the one workflow id of an order.
func WorkflowID(outTradeNo string) string { return workflows.WorkflowID(outTradeNo) }

// ErrRunCompleted: Notify was asked not to start a new run, and the order's
// workflow has completed. The caller decides whether the notification
// still needs one (NotifyAgain).
var ErrRunCompleted = errors.New("the order's workflow has completed")

// order is what the gateway knows of an order when it starts a run: at
// least its number; the rest only sharpens the search attributes, summary
// and memo until the run reads the order itself.
type order struct {
	outTradeNo string
	amountFen  int64
	status     payment.Status
	tradeType  string
	expiresAt  *time.Time
	source     payment.Source
}

func fromOrder(o payment.Order) order {
	return order{outTradeNo: o.OutTradeNo, amountFen: o.AmountFen, status: o.Status, tradeType: o.TradeType, expiresAt: o.ExpiresAt}
}

// startOptions: one run per order at a time (USE_EXISTING joins the running
// one); a completed run may be followed by a new one unless reuse says
// otherwise.
func (g *Gateway) startOptions(o order, reuse enums.WorkflowIdReusePolicy) client.StartWorkflowOptions {
	status := o.status
	if status == "" {
		status = payment.StatusPending
	}
	attrs := []temporal.SearchAttributeUpdate{
		workflows.AttrOutTradeNo.ValueSet(o.outTradeNo),
		workflows.AttrPaymentStatus.ValueSet(string(status)),
	}
	if o.amountFen > 0 {
		attrs = append(attrs, workflows.AttrAmountFen.ValueSet(o.amountFen))
	}
	if o.source != "" {
		attrs = append(attrs, workflows.AttrPaymentSource.ValueSet(string(o.source)))
	}
	opts := client.StartWorkflowOptions{
		ID:                       WorkflowID(o.outTradeNo),
		TaskQueue:                g.TaskQueue,
		WorkflowIDReusePolicy:    reuse,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		TypedSearchAttributes:    temporal.NewSearchAttributes(attrs...),
		StaticSummary:            workflows.Summary(o.outTradeNo, o.amountFen),
	}
	if o.tradeType != "" || o.expiresAt != nil {
		var exp time.Time
		if o.expiresAt != nil {
			exp = *o.expiresAt
		}
		opts.Memo = workflows.Memo(o.outTradeNo, o.amountFen, o.tradeType, exp)
	}
	return opts
}

func input(outTradeNo string) workflows.PaymentInput {
	return workflows.PaymentInput{OutTradeNo: outTradeNo, Revision: workflows.Revision}
}

// signal delivers a signal, starting a run if none is running.
func (g *Gateway) signal(ctx context.Context, o order, reuse enums.WorkflowIdReusePolicy, name string, arg any) error {
	opts := g.startOptions(o, reuse)
	_, err := g.Temporal.SignalWithStartWorkflow(ctx, opts.ID, name, arg, opts, workflows.PaymentWorkflow, input(o.outTradeNo))
	if err != nil {
		return fmt.Errorf("signal %s to %s: %w", name, opts.ID, err)
	}
	return nil
}

// update runs an update and waits for its result, starting a run if none
// is running (Update-With-Start: one call).
func (g *Gateway) update(ctx context.Context, o order, name, id string, arg, result any) error {
	opts := g.startOptions(o, enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE)
	op := g.Temporal.NewWithStartWorkflowOperation(opts, workflows.PaymentWorkflow, input(o.outTradeNo))
	uopts := client.UpdateWorkflowOptions{UpdateName: name, UpdateID: id, WaitForStage: client.WorkflowUpdateStageCompleted}
	if arg != nil {
		uopts.Args = []any{arg}
	}
	h, err := g.Temporal.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: op,
		UpdateOptions:          uopts,
	})
	if err != nil {
		return fmt.Errorf("update %s of %s: %w", name, opts.ID, err)
	}
	if err := h.Get(ctx, result); err != nil {
		return fmt.Errorf("update %s of %s: %w", name, opts.ID, err)
	}
	return nil
}

// Notify hands a verified notification to its order's workflow
// (SignalWithStart: Temporal has persisted it when this returns nil). With
// startNew false a completed run is not followed by a new one and
// ErrRunCompleted is returned, so that the caller can recognise a late
// duplicate without starting anything. status is the order's status when
// the caller knows it (the run's search attributes start with it), or "".
func (g *Gateway) Notify(ctx context.Context, n payment.Notification, startNew bool, status payment.Status) error {
	reuse := enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE
	if startNew {
		reuse = enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE
	}
	o := order{outTradeNo: n.OutTradeNo, status: status}
	if n.Kind == payment.KindPayment {
		o.amountFen, o.source = n.AmountFen, n.Source
	}
	start := time.Now()
	err := g.signal(ctx, o, reuse, workflows.SignalNotification, n)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		g.Metrics.SignalWithStart(time.Since(start), nil) // an answer, not a failure
		return ErrRunCompleted
	}
	g.Metrics.SignalWithStart(time.Since(start), err)
	return err
}

// Create starts the workflow of a stored order. For an order prepaid at
// WeChat (JSAPI, NATIVE) it waits, in the same call, for the prepay
// (Update-With-Start), so the caller gets the code_url or the JSAPI
// parameters, or why WeChat refused.
func (g *Gateway) Create(ctx context.Context, o payment.Order) (workflows.PrepayResult, error) {
	if o.TradeType == "" {
		opts := g.startOptions(fromOrder(o), enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE)
		opts.StartDelay = g.firstLook(o, time.Now())
		if _, err := g.Temporal.ExecuteWorkflow(ctx, opts, workflows.PaymentWorkflow, input(o.OutTradeNo)); err != nil {
			return workflows.PrepayResult{}, fmt.Errorf("start %s: %w", opts.ID, err)
		}
		return workflows.PrepayResult{}, nil
	}
	var res workflows.PrepayResult
	err := g.update(ctx, fromOrder(o), workflows.UpdatePrepay, workflows.UpdatePrepay, nil, &res)
	return res, err
}

// firstLook is how long a plain order's new run waits before its first
// workflow task: until its first query is due, or it expires if sooner.
// Nothing is lost meanwhile: every message the gateway sends is a
// Signal-With-Start or an Update-With-Start, and Temporal dispatches the
// delayed first task at once for either. A payment whose notification
// comes first costs its run one workflow task instead of two, and an order
// created costs Temporal only its start while orders are being created.
func (g *Gateway) firstLook(o payment.Order, now time.Time) time.Duration {
	d := g.QueryAfter
	if o.ExpiresAt != nil {
		d = min(d, o.ExpiresAt.Sub(now))
	}
	return max(d, 0)
}

// Sync asks the order's workflow to query WeChat now. Repeated syncs that
// arrive while one is pending are coalesced by the workflow into one query.
func (g *Gateway) Sync(ctx context.Context, o payment.Order) error {
	return g.signal(ctx, fromOrder(o), enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE, workflows.SignalSync, nil)
}

// Wake makes sure a run looks after the order (the safety net: a PENDING
// order or open refunds without a workflow). A running run is left alone
// (USE_EXISTING); a new one reads the order and follows its own schedule
// (an order whose first query is due asks WeChat at once).
func (g *Gateway) Wake(ctx context.Context, outTradeNo string) error {
	opts := g.startOptions(order{outTradeNo: outTradeNo}, enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE)
	if _, err := g.Temporal.ExecuteWorkflow(ctx, opts, workflows.PaymentWorkflow, input(outTradeNo)); err != nil {
		return fmt.Errorf("wake %s: %w", opts.ID, err)
	}
	return nil
}

// ReloadRefunds asks the order's run to read its open refunds again and
// follow those it does not know (starting a run if none runs, which reads
// them anyway).
func (g *Gateway) ReloadRefunds(ctx context.Context, outTradeNo string) error {
	return g.signal(ctx, order{outTradeNo: outTradeNo}, enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE, workflows.SignalReloadRefunds, nil)
}

// Close closes an unpaid order, at WeChat first, and returns its status
// afterwards: CLOSED, or PAID/REVIEW if the payment won.
func (g *Gateway) Close(ctx context.Context, o payment.Order) (workflows.CloseResult, error) {
	var res workflows.CloseResult
	err := g.update(ctx, fromOrder(o), workflows.UpdateClose, "", nil, &res)
	return res, err
}

// Refund asks for a refund. It returns once the refund is durably accepted
// here (recorded in PostgreSQL, held by the order's workflow), not once
// WeChat answered. Repeats of a refund are recognised by PostgreSQL (the
// refund's key), which also tells the request that created it from the
// others (refundUpdateID).
func (g *Gateway) Refund(ctx context.Context, o payment.Order, req workflows.RefundRequest) (workflows.RefundResult, error) {
	var res workflows.RefundResult
	err := g.update(ctx, fromOrder(o), workflows.UpdateRefund, refundUpdateID(req.OutRefundNo), req, &res)
	return res, err
}

// refundUpdateID names one refund request's update: its out_refund_no, for
// operators reading the run's history, and a nonce of the request's own.
// Temporal answers every request with the same update id with the first
// one's outcome, so with the out_refund_no alone two requests sent at once
// were both told "created" (201). With its own id each request is handled
// by the run, and the store's acceptance, under the order's lock, says
// which one created the refund; the SDK's retries of one request keep its
// id.
func refundUpdateID(outRefundNo string) string {
	return "refund/" + outRefundNo + "/" + rand.Text()
}

// Resolve settles an order in REVIEW as an operator decided.
func (g *Gateway) Resolve(ctx context.Context, o payment.Order, req workflows.ResolveRequest) (workflows.ResolveResult, error) {
	var res workflows.ResolveResult
	err := g.update(ctx, fromOrder(o), workflows.UpdateResolve, "", req, &res)
	return res, err
}

// ConfirmPayment asks the order's workflow to query WeChat and apply what it
// says, whatever the order's status here: a payment WeChat's bill has that
// we do not (PAID, or REVIEW for a closed order).
func (g *Gateway) ConfirmPayment(ctx context.Context, outTradeNo, reason string) error {
	return g.signal(ctx, order{outTradeNo: outTradeNo}, enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		workflows.SignalConfirm, workflows.ConfirmRequest{Reason: reason})
}

// SendToReview asks the order's workflow to put the order in REVIEW with
// reason in its log; key makes a repeat a no-op.
func (g *Gateway) SendToReview(ctx context.Context, outTradeNo, reason, key string) error {
	return g.signal(ctx, order{outTradeNo: outTradeNo}, enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		workflows.SignalReview, workflows.ReviewRequest{Reason: reason, Key: key})
}

// TrackRefund tells the order's workflow about a refund WeChat has: one we
// do not know is recorded (source merchant_portal); each is then confirmed
// with WeChat's refund query.
func (g *Gateway) TrackRefund(ctx context.Context, outTradeNo, outRefundNo, refundID string, amountFen int64, reason string) error {
	return g.signal(ctx, order{outTradeNo: outTradeNo}, enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		workflows.SignalTrackRefund, workflows.TrackRefundRequest{
			OutRefundNo: outRefundNo, RefundID: refundID, AmountFen: amountFen, Reason: reason,
		})
}
