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

// handle examines one notification that is not a repeat.
func (p *flow) handle(ctx workflow.Context, n payment.Notification) error {
	switch n.Kind {
	case payment.KindRefund:
		return p.refundNotified(ctx, n)
	case payment.KindPayment:
	default:
		return nil // never handed to a workflow; nothing to do if one is
	}
	if p.oneLoop && p.state.UnknownOrder {
		// No such order: never paid, never created; kept for operators.
		return p.recordUnknown(ctx, n)
	}
	p.state.Source = n.Source
	if !n.Succeeded() {
		return p.recordFailure(ctx, n)
	}
	if p.final() && p.state.TransactionID != "" && p.state.TransactionID != n.TransactionID {
		// A second transaction for an order already decided: the database
		// sends a PAID order to REVIEW; it is confirmed first, like any.
		return p.confirm(ctx, &n)
	}
	if p.final() {
		p.state.Duplicates++
		return nil
	}
	p.state.TransactionID = n.TransactionID
	return p.confirm(ctx, &n)
}

// recordFailure logs a failed payment of a PENDING order; the order stays
// PENDING and the payer may try again. A decided order's log says nothing:
// the failure is in the audit trail.
func (p *flow) recordFailure(ctx workflow.Context, n payment.Notification) error {
	p.state.FailedPayments++
	if p.oneLoop && p.state.Status != payment.StatusPending {
		return nil
	}
	remarks := fmt.Sprintf("payment failed (%s notification): result_code %s", n.Source, n.ResultCode)
	if n.ErrCode != "" {
		remarks += fmt.Sprintf(", err_code %s %s", n.ErrCode, n.ErrCodeDes)
	}
	err := p.storeStep(ctx, "log failed payment", a.OrderLog,
		activities.OrderLogInput{OutTradeNo: p.in.OutTradeNo, Remarks: remarks, Key: payment.KeyFailedPayment(n.ID)}).Get(ctx, nil)
	if isType(err, activities.ErrTypeOrderNotFound) {
		return p.recordUnknown(ctx, n)
	}
	return err
}

// confirm asks WeChat about a notification that claims success, then
// decides on WeChat's answer. Only WeChat's signed word decides: a query
// that cannot be had is asked again, for as long as it takes.
func (p *flow) confirm(ctx workflow.Context, n *payment.Notification) error {
	p.state.Step = StepConfirming
	trade, err := p.queryUntilFinal(ctx)
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && (appErr.Type() == activities.ErrTypeOrderNotExist || appErr.Type() == activities.ErrTypeQueryRejected) {
		return p.review(ctx, n, "notified as paid, but WeChat's order query says: "+appErr.Message(), payment.KeyReviewQuery(n.ID))
	}
	if err != nil {
		return err
	}
	if !paidState(trade.TradeState) {
		return p.review(ctx, n, fmt.Sprintf("notified as paid, but the WeChat order query says %s %s after %d queries",
			trade.TradeState, trade.TradeStateDesc, p.state.Queries), payment.KeyReviewState(n.ID))
	}
	return p.decide(ctx, trade, n)
}

// paidState reports whether WeChat's trade state means the trade was paid:
// SUCCESS, or REFUND once a refund was made on it.
func paidState(s string) bool { return s == payment.TradeSuccess || s == payment.TradeRefund }

// decide applies a trade WeChat's query reports as paid: it checks amounts
// and ids against the order (and the notification, if there is one), then
// marks the order paid, or sends it to REVIEW saying what did not add up.
func (p *flow) decide(ctx workflow.Context, trade payment.Trade, n *payment.Notification) error {
	source := payment.SourceQuery
	if n != nil {
		source = n.Source
	}
	var v activities.VerifyPaymentResult
	err := p.storeStep(ctx, fmt.Sprintf("verify amount %s", yuan(trade.AmountFen)), a.VerifyPayment,
		activities.VerifyPaymentInput{OutTradeNo: p.in.OutTradeNo, Notification: n, Trade: trade}).Get(ctx, &v)
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
		return p.reviewTrade(ctx, trade, "amount verification failed: "+strings.Join(v.Mismatches, "; "), payment.KeyReviewMismatch(trade.TransactionID))
	}

	var res activities.MarkPaidResult
	err = p.storeStep(ctx, "mark paid "+trade.TransactionID, a.MarkPaid, activities.MarkPaidInput{
		OutTradeNo: p.in.OutTradeNo, TransactionID: trade.TransactionID, PaidAt: trade.PaidAt, Source: source, PaidFen: trade.AmountFen,
	}).Get(ctx, &res)
	if err != nil {
		return err
	}
	p.state.Source = source
	switch res.Outcome {
	case payment.PaidReview:
		p.state.Reason = "payment " + trade.TransactionID + " does not fit the order's state (second transaction, or paid after close)"
		if p.state.TransactionID == "" {
			p.state.TransactionID = trade.TransactionID
		}
		return p.setStatus(ctx, payment.StatusReview)
	case payment.PaidAlready:
		if p.state.Status == payment.StatusRefunded {
			return nil // a late copy of the payment of a refunded order
		}
	}
	p.state.Reason = ""
	p.state.TransactionID = trade.TransactionID
	return p.setStatus(ctx, payment.StatusPaid)
}

// queryUntilFinal asks WeChat for the trade, asking again with backoff
// while the state may still change (NOTPAY, USERPAYING right after the
// notification), for at most the confirm window. Faults (WeChat or the
// wire did not give a signed answer) are retried by the activity and never
// count as an answer.
func (p *flow) queryUntilFinal(ctx workflow.Context) (payment.Trade, error) {
	deadline := workflow.Now(ctx).Add(p.in.ConfirmWindow)
	delay := 2 * time.Second
	for {
		p.state.Queries++
		var r activities.QueryOrderResult
		err := p.queryStep(ctx, "query WeChat order", activities.QueryOrderInput{OutTradeNo: p.in.OutTradeNo}).Get(ctx, &r)
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
func (p *flow) review(ctx workflow.Context, n *payment.Notification, reason string, key payment.Key) error {
	return p.markReview(ctx, n, activities.MarkReviewInput{OutTradeNo: p.in.OutTradeNo, Reason: reason, Key: key})
}

// reviewTrade sends the order to REVIEW for a trade WeChat confirmed as paid
// that does not add up; the order keeps the transaction and what WeChat
// says was paid, so that the money can be refunded.
func (p *flow) reviewTrade(ctx workflow.Context, t payment.Trade, reason string, key payment.Key) error {
	in := activities.MarkReviewInput{OutTradeNo: p.in.OutTradeNo, Reason: reason, Key: key}
	if p.oneLoop {
		in.TransactionID, in.PaidFen, in.PaidAt = t.TransactionID, t.AmountFen, t.PaidAt
	}
	if p.state.TransactionID == "" {
		p.state.TransactionID = t.TransactionID
	}
	return p.markReview(ctx, nil, in)
}

func (p *flow) markReview(ctx workflow.Context, n *payment.Notification, in activities.MarkReviewInput) error {
	var res activities.MarkReviewResult
	err := p.storeStep(ctx, "send to review", a.MarkReview, in).Get(ctx, &res)
	if isType(err, activities.ErrTypeOrderNotFound) && n != nil {
		return p.recordUnknown(ctx, *n)
	}
	if err != nil {
		return err
	}
	if p.oneLoop && res.Status != "" && res.Status != payment.StatusReview {
		// The database kept the order as it is (a PAID order goes to REVIEW
		// only for a second transaction, or at the bill's request).
		p.state.Status = res.Status
		return nil
	}
	p.state.Reason = in.Reason
	return p.setStatus(ctx, payment.StatusReview)
}

// recordUnknown keeps a notification for an order we do not have. It never
// creates an order; the run is flagged REVIEW so operators find it.
func (p *flow) recordUnknown(ctx workflow.Context, n payment.Notification) error {
	err := p.storeStep(ctx, "record unknown-order notification", a.RecordNotification,
		activities.RecordNotificationInput{Notification: n, Outcome: payment.NotifyUnknownOrder}).Get(ctx, nil)
	if err != nil {
		return err
	}
	p.state.UnknownOrder = true
	p.state.Reason = "notification for an unknown order"
	if p.state.TransactionID == "" {
		p.state.TransactionID = n.TransactionID
	}
	return p.setStatus(ctx, payment.StatusReview)
}

// requestedReview sends the order to REVIEW at the bill reconciliation's
// request (paid here but not in WeChat's bill, or amounts differ).
func (p *flow) requestedReview(ctx workflow.Context, r ReviewRequest) error {
	if p.state.UnknownOrder {
		return nil
	}
	return p.markReview(ctx, nil, activities.MarkReviewInput{OutTradeNo: p.in.OutTradeNo, Reason: r.Reason, Key: payment.Key(r.Key), AllowFromPaid: true})
}

// requestedConfirm confirms a payment WeChat's bill has: WeChat's order
// query decides, whatever the order's status here (a CLOSED order paid at
// WeChat goes to REVIEW through the database's rule).
func (p *flow) requestedConfirm(ctx workflow.Context, r ConfirmRequest) error {
	if p.state.UnknownOrder {
		return nil
	}
	p.state.Step = StepConfirming
	trade, err := p.queryUntilFinal(ctx)
	if isType(err, activities.ErrTypeOrderNotExist) {
		return p.review(ctx, nil, r.Reason+", but WeChat's order query does not know the order", payment.KeyReviewConfirmNotExist)
	}
	if err != nil {
		return err
	}
	if !paidState(trade.TradeState) {
		return p.review(ctx, nil, fmt.Sprintf("%s, but WeChat's order query says %s", r.Reason, trade.TradeState), payment.KeyReviewConfirmState(trade.TradeState))
	}
	if p.final() && trade.TransactionID == p.state.TransactionID {
		return nil
	}
	return p.decide(ctx, trade, nil)
}

// markExamined records in the audit trail that the notifications handled
// so far were examined by the order's workflow.
func (p *flow) markExamined(ctx workflow.Context) error {
	ns := p.unexamined
	err := p.storeStep(ctx, fmt.Sprintf("mark %d notification(s) examined", len(ns)), a.MarkExamined,
		activities.MarkExaminedInput{OutTradeNo: p.in.OutTradeNo, Notifications: ns}).Get(ctx, nil)
	if err != nil {
		return err
	}
	p.unexamined = p.unexamined[len(ns):]
	return nil
}

// setStatus records the new status in the state and the search attributes.
func (p *flow) setStatus(ctx workflow.Context, s payment.Status) error {
	p.state.Status = s
	p.state.Step = StepDone
	if s == payment.StatusClosed && p.oneLoop {
		p.lingerUntil = workflow.Now(ctx).Add(p.linger())
	}
	return p.upsertAttributes(ctx)
}

// upsertAttributes writes what the run knows into its search attributes.
func (p *flow) upsertAttributes(ctx workflow.Context) error {
	updates := []temporal.SearchAttributeUpdate{
		AttrOutTradeNo.ValueSet(p.in.OutTradeNo),
		AttrPaymentStatus.ValueSet(string(p.state.Status)),
	}
	if p.state.TransactionID != "" {
		updates = append(updates, AttrTransactionID.ValueSet(p.state.TransactionID))
	}
	if p.state.AmountFen > 0 {
		updates = append(updates, AttrAmountFen.ValueSet(p.state.AmountFen))
	}
	if p.state.Source != "" {
		updates = append(updates, AttrPaymentSource.ValueSet(string(p.state.Source)))
	}
	if p.state.RefundedFen > 0 {
		updates = append(updates, AttrRefundedFen.ValueSet(p.state.RefundedFen))
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
