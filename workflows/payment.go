package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/payflow/payflow/activities"
	"github.com/payflow/payflow/payment"
)

// a names the activities; the worker registers the real value.
var a *activities.Activities

// versionLoadOrder marks the change that made notification-started runs
// load the order and own its lifecycle; older histories replay the
// notification-only path.
const versionLoadOrder = "load-order-lifecycle"

// PaymentWorkflow owns one order's payment. Started with the order
// (Lifecycle set), it prepays, waits for WeChat's notification, queries
// WeChat itself when none comes, and closes the order when it expires.
// Notifications arrive as signals; the first that claims success is
// confirmed with WeChat's order query, checked against the order, and
// applied once. Later copies are counted and absorbed; a different
// transaction is still examined.
func PaymentWorkflow(ctx workflow.Context, in PaymentInput) (PaymentResult, error) {
	p := newFlow(ctx, in)
	p.local = workflow.GetVersion(ctx, versionLocalActivities, workflow.DefaultVersion, 1) == 1
	if err := p.registerHandlers(ctx); err != nil {
		return PaymentResult{}, err
	}
	err := p.run(ctx)
	p.state.Step = StepDone
	return PaymentResult{State: p.state}, err
}

func (p *flow) run(ctx workflow.Context) error {
	if p.lc == nil {
		if workflow.GetVersion(ctx, versionLoadOrder, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
			return p.serveNotifications(ctx)
		}
		if err := p.loadOrder(ctx); err != nil {
			return err
		}
	}
	if p.lc == nil {
		// An unknown order, or one already decided: only notifications
		// remain to be examined.
		return p.serveNotifications(ctx)
	}
	return p.own(ctx)
}

// serveNotifications handles notifications until the order is decided and
// every queued one is examined, or none came for the idle timeout.
func (p *flow) serveNotifications(ctx workflow.Context) error {
	for {
		n, ok := p.next(ctx)
		if !ok {
			return nil
		}
		if err := p.handle(ctx, n); err != nil {
			return err
		}
	}
}

// flow is the workflow's private state, with one method per step.
type flow struct {
	in      PaymentInput
	lc      *Lifecycle
	state   State
	signals workflow.ReceiveChannel
	syncs   workflow.ReceiveChannel
	queue   []payment.Notification // received, not yet handled
	seen    map[string]bool        // notification ids already received

	local          bool // short steps run as local activities (see versionLocalActivities)
	syncRequested  bool
	closeRequested bool
	prepayDone     bool
	prepay         payment.Prepay
	prepayError    string
}

func newFlow(ctx workflow.Context, in PaymentInput) *flow {
	if in.ConfirmWindow <= 0 {
		in.ConfirmWindow = DefaultConfirmWindow
	}
	if in.IdleTimeout <= 0 {
		in.IdleTimeout = DefaultIdleTimeout
	}
	return &flow{
		in:      in,
		lc:      in.Lifecycle,
		state:   State{OutTradeNo: in.OutTradeNo, Status: payment.StatusPending, Step: StepWaiting},
		signals: workflow.GetSignalChannel(ctx, SignalNotification),
		syncs:   workflow.GetSignalChannel(ctx, SignalSync),
		seen:    map[string]bool{},
	}
}

func (p *flow) final() bool {
	return p.state.Status == payment.StatusPaid || p.state.Status == payment.StatusReview
}

// absorb takes every buffered signal off the channels without blocking, so
// duplicates are counted as they arrive, even while an activity runs.
func (p *flow) absorb() {
	var n payment.Notification
	for p.signals.ReceiveAsync(&n) {
		p.accept(n)
	}
	for p.syncs.ReceiveAsync(nil) {
		p.syncRequested = true
	}
}

// accept counts a notification and queues it unless it repeats one already
// seen: the same notification id, or the transaction being (or already)
// applied.
func (p *flow) accept(n payment.Notification) {
	p.state.Notifications++
	dup := p.seen[n.ID] || (n.Succeeded() && n.TransactionID != "" && n.TransactionID == p.state.TransactionID)
	p.seen[n.ID] = true
	if dup {
		p.state.Duplicates++
		return
	}
	p.queue = append(p.queue, n)
}

func (p *flow) pop() payment.Notification {
	n := p.queue[0]
	p.queue = p.queue[1:]
	return n
}

// next returns the next notification to handle. Once the order is final it
// only drains what is already queued; before that it waits up to the idle
// timeout for one to arrive.
func (p *flow) next(ctx workflow.Context) (payment.Notification, bool) {
	p.absorb()
	if len(p.queue) == 0 && !p.final() {
		p.state.Step = StepWaiting
		p.waitForSignal(ctx)
		p.absorb()
	}
	if len(p.queue) == 0 {
		return payment.Notification{}, false
	}
	return p.pop(), true
}

func (p *flow) waitForSignal(ctx workflow.Context) {
	// The timer is cancelled once a signal wins, so it leaves no pending
	// timer behind. The caller looks at the queue, not at why the wait ended.
	timerCtx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(p.signals, func(c workflow.ReceiveChannel, _ bool) {
		var n payment.Notification
		c.Receive(ctx, &n)
		p.accept(n)
	})
	sel.AddFuture(workflow.NewTimer(timerCtx, p.in.IdleTimeout), func(workflow.Future) {})
	sel.Select(ctx)
}

// handle applies one notification that is not a duplicate.
func (p *flow) handle(ctx workflow.Context, n payment.Notification) error {
	p.state.Source = n.Source
	if !n.Succeeded() {
		return p.recordFailure(ctx, n)
	}
	if p.final() && p.state.TransactionID != "" && p.state.TransactionID != n.TransactionID {
		// A second transaction for an order already decided: the database
		// sends a PAID order to REVIEW; record it through the same path.
		return p.confirm(ctx, &n)
	}
	if p.final() {
		p.state.Duplicates++
		return nil
	}
	p.state.TransactionID = n.TransactionID
	return p.confirm(ctx, &n)
}

// recordFailure logs a failed payment; the order stays PENDING and the
// workflow keeps waiting, since the payer may try again.
func (p *flow) recordFailure(ctx workflow.Context, n payment.Notification) error {
	p.state.FailedPayments++
	remarks := fmt.Sprintf("payment failed (%s notification): result_code %s", n.Source, n.ResultCode)
	if n.ErrCode != "" {
		remarks += fmt.Sprintf(", err_code %s %s", n.ErrCode, n.ErrCodeDes)
	}
	err := p.storeStep(ctx, "log failed payment", a.OrderLog,
		activities.OrderLogInput{OutTradeNo: p.in.OutTradeNo, Remarks: remarks, Key: "failed:" + n.ID}).Get(ctx, nil)
	if isType(err, activities.ErrTypeOrderNotFound) {
		return p.recordUnknown(ctx, n)
	}
	return err
}

// confirm asks WeChat about a notification that claims success, then
// decides on WeChat's answer.
func (p *flow) confirm(ctx workflow.Context, n *payment.Notification) error {
	p.state.Step = StepConfirming
	trade, err := p.queryUntilFinal(ctx)
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && (appErr.Type() == activities.ErrTypeOrderNotExist || appErr.Type() == activities.ErrTypeQueryRejected) {
		return p.review(ctx, n, "notified as paid, but the WeChat order query failed: "+appErr.Message(), "review:query:"+n.ID)
	}
	if err != nil {
		return err
	}
	if trade.TradeState != payment.TradeSuccess {
		return p.review(ctx, n, fmt.Sprintf("notified as paid, but the WeChat order query says %s %s after %d queries",
			trade.TradeState, trade.TradeStateDesc, p.state.Queries), "review:state:"+n.ID)
	}
	return p.decide(ctx, trade, n)
}

// decide applies a trade WeChat's query reports as SUCCESS: it checks
// amounts and ids against the order (and the notification, if there is
// one), then marks the order paid, or sends it to REVIEW saying what did not
// add up.
func (p *flow) decide(ctx workflow.Context, trade payment.Trade, n *payment.Notification) error {
	source := payment.SourceQuery
	if n != nil {
		source = n.Source
	}
	var v activities.VerifyPaymentResult
	err := p.storeStep(ctx, fmt.Sprintf("verify amount %s", yuan(trade.AmountFen)), a.VerifyPayment,
		activities.VerifyPaymentInput{OutTradeNo: p.in.OutTradeNo, Notification: n, Trade: trade}).Get(ctx, &v)
	p.absorb()
	if err != nil {
		return err
	}
	if !v.OrderFound {
		if n == nil {
			return fmt.Errorf("order %s vanished from the database", p.in.OutTradeNo)
		}
		return p.recordUnknown(ctx, *n)
	}
	p.state.AmountFen = v.OrderAmountFen
	if len(v.Mismatches) > 0 {
		return p.review(ctx, n, "amount verification failed: "+strings.Join(v.Mismatches, "; "), "review:mismatch:"+trade.TransactionID)
	}

	var res activities.MarkPaidResult
	err = p.storeStep(ctx, "mark paid "+trade.TransactionID, a.MarkPaid, activities.MarkPaidInput{
		OutTradeNo: p.in.OutTradeNo, TransactionID: trade.TransactionID, PaidAt: trade.PaidAt, Source: source,
	}).Get(ctx, &res)
	p.absorb()
	if err != nil {
		return err
	}
	p.state.Source = source
	if res.Outcome == "review" {
		p.state.Reason = "payment " + trade.TransactionID + " does not fit the order's state (second transaction, or paid after close)"
		return p.setStatus(ctx, payment.StatusReview, trade.TransactionID)
	}
	p.state.Reason = ""
	return p.setStatus(ctx, payment.StatusPaid, trade.TransactionID)
}

// queryUntilFinal asks WeChat for the trade, asking again with backoff
// while the state may still change (NOTPAY, USERPAYING right after the
// notification), for at most the confirm window.
func (p *flow) queryUntilFinal(ctx workflow.Context) (payment.Trade, error) {
	deadline := workflow.Now(ctx).Add(p.in.ConfirmWindow)
	delay := 2 * time.Second
	for {
		p.state.Queries++
		var r activities.QueryOrderResult
		err := p.queryStep(ctx, "query WeChat order",
			activities.QueryOrderInput{OutTradeNo: p.in.OutTradeNo}).Get(ctx, &r)
		p.absorb()
		if err != nil {
			return payment.Trade{}, err
		}
		if payment.TradeStateFinal(r.Trade.TradeState) || !workflow.Now(ctx).Add(delay).Before(deadline) {
			return r.Trade, nil
		}
		if err := workflow.Sleep(ctx, delay); err != nil {
			return payment.Trade{}, err
		}
		delay = min(2*delay, time.Minute)
	}
}

// review sends the order to REVIEW with a reason, or records the
// notification as unknown when there is no such order.
func (p *flow) review(ctx workflow.Context, n *payment.Notification, reason, key string) error {
	err := p.storeStep(ctx, "send to review", a.MarkReview,
		activities.MarkReviewInput{OutTradeNo: p.in.OutTradeNo, Reason: reason, Key: key}).Get(ctx, nil)
	p.absorb()
	if isType(err, activities.ErrTypeOrderNotFound) && n != nil {
		return p.recordUnknown(ctx, *n)
	}
	if err != nil {
		return err
	}
	p.state.Reason = reason
	return p.setStatus(ctx, payment.StatusReview, p.state.TransactionID)
}

// recordUnknown keeps a notification for an order we do not have. It never
// creates an order; the run is flagged REVIEW so operators find it.
func (p *flow) recordUnknown(ctx workflow.Context, n payment.Notification) error {
	err := p.storeStep(ctx, "record unknown-order notification", a.RecordNotification,
		activities.RecordNotificationInput{Notification: n, Outcome: "unknown_order"}).Get(ctx, nil)
	if err != nil {
		return err
	}
	p.state.UnknownOrder = true
	p.state.Reason = "notification for an unknown order"
	return p.setStatus(ctx, payment.StatusReview, n.TransactionID)
}

// setStatus records the new status in the state and the search attributes.
func (p *flow) setStatus(ctx workflow.Context, s payment.Status, transactionID string) error {
	p.state.Status = s
	p.state.Step = StepDone
	updates := []temporal.SearchAttributeUpdate{
		AttrOutTradeNo.ValueSet(p.in.OutTradeNo),
		AttrPaymentStatus.ValueSet(string(s)),
	}
	if transactionID != "" {
		updates = append(updates, AttrTransactionID.ValueSet(transactionID))
	}
	if p.state.AmountFen > 0 {
		updates = append(updates, AttrAmountFen.ValueSet(p.state.AmountFen))
	}
	if p.state.Source != "" {
		updates = append(updates, AttrPaymentSource.ValueSet(string(p.state.Source)))
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
		return fmt.Errorf("upsert search attributes: %w", err)
	}
	return nil
}

func isType(err error, errType string) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.Type() == errType
}

// yuan renders fen as yuan for summaries, without floating point.
func yuan(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("¥%s%d.%02d", sign, fen/100, fen%100)
}
