package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/payflow/payflow/activities"
	"github.com/payflow/payflow/payment"
)

// maxQueryInterval caps the backoff between our own order queries.
const maxQueryInterval = 5 * time.Minute

// Close attempts that WeChat refused or did not answer are repeated with
// this backoff; the order stays PENDING here until WeChat has closed it.
const (
	firstCloseBackoff = 30 * time.Second
	maxCloseBackoff   = 10 * time.Minute
)

// loadOrder reads the order. A PENDING order gets its lifecycle; a decided
// one is watched for what may still come (late notifications, refunds);
// an order we do not have is only ever recorded, never created.
func (p *flow) loadOrder(ctx workflow.Context) error {
	var o activities.LoadOrderResult
	err := p.storeStep(ctx, "load order", a.LoadOrder, activities.LoadOrderInput{OutTradeNo: p.in.OutTradeNo}).Get(ctx, &o)
	if err != nil {
		return err
	}
	p.set = o.Settings
	if !o.Found {
		if p.oneLoop {
			p.state.UnknownOrder = true
		}
		return nil
	}
	p.state.AmountFen = o.AmountFen
	p.state.Status = o.Status
	p.state.TransactionID = o.TransactionID
	p.state.RefundedFen = o.RefundedFen
	if o.Status == payment.StatusPending {
		p.lc = NewLifecycle(o.CreatedAt, o.ExpiresAt, o.TradeType, p.orderTimeout(), p.queryAfter())
	}
	if !p.oneLoop {
		return nil
	}
	p.followOpenRefunds(ctx, o.OpenRefunds)
	if o.Status != payment.StatusPending {
		// The run may have been started by a notification, with PENDING in
		// its search attributes: say what the order really is, now.
		return p.upsertAttributes(ctx)
	}
	return nil
}

func (p *flow) orderTimeout() time.Duration {
	if p.set.OrderTimeout > 0 {
		return p.set.OrderTimeout
	}
	return DefaultOrderTimeout
}

func (p *flow) queryAfter() time.Duration {
	if p.set.QueryAfter > 0 {
		return p.set.QueryAfter
	}
	return DefaultQueryAfter
}

func (p *flow) linger() time.Duration {
	if p.lc != nil && p.lc.Linger > 0 {
		return p.lc.Linger
	}
	return DefaultLinger
}

// doPrepay asks WeChat to create the order, within the order's lifetime.
// A refusal closes the order: nothing exists at WeChat that could be paid.
func (p *flow) doPrepay(ctx workflow.Context) error {
	p.state.Step = StepPrepaying
	var r activities.PrepayResult
	err := workflow.ExecuteActivity(prepayOptions(ctx, p.lc.ExpiresAt.Sub(workflow.Now(ctx))), a.Prepay,
		activities.PrepayInput{OutTradeNo: p.in.OutTradeNo}).Get(ctx, &r)
	p.prepayDone = true
	var appErr *temporal.ApplicationError
	switch {
	case err == nil:
		p.prepay, p.state.Prepaid = r.Prepay, true
		return nil
	case errors.As(err, &appErr) && appErr.Type() == activities.ErrTypeOrderPaid:
		// The order is paid at WeChat (a prepay made before, whose answer
		// was lost): confirm it like any payment, never close it.
		p.prepayError = "WeChat Pay says the order is already paid"
		return p.confirmPaidAtWeChat(ctx, "prepay refused as already paid", payment.KeyReviewPrepayPaid)
	case errors.As(err, &appErr) && appErr.Type() == activities.ErrTypePrepayConflict:
		// Prepaid before with other order parameters (the order was edited
		// by hand): whatever was prepaid may still be paid at WeChat, so the
		// order stays open and its lifecycle decides.
		p.prepayError = appErr.Message()
		return nil
	case errors.As(err, &appErr) && appErr.Type() == activities.ErrTypePrepay:
		p.prepayError = appErr.Message()
		return p.markClosed(ctx, "prepay failed: "+p.prepayError, payment.KeyClosedPrepay)
	case isTimeout(err):
		p.prepayError = "WeChat Pay could not be reached to prepay before the order expired"
		if p.oneLoop {
			// The request may have reached WeChat: the expiry closes the
			// order there first, as for any order.
			return nil
		}
		return p.markClosed(ctx, "prepay failed: "+p.prepayError, payment.KeyClosedPrepay)
	default:
		return err
	}
}

// confirmPaidAtWeChat follows WeChat saying the order is paid (a prepay or
// a close refused with ORDERPAID): its order query decides, asked until it
// answers; if it does not say paid, the order goes to REVIEW.
func (p *flow) confirmPaidAtWeChat(ctx workflow.Context, why string, key payment.Key) error {
	p.state.Step = StepConfirming
	trade, err := p.queryUntilFinal(ctx)
	switch {
	case isType(err, activities.ErrTypeOrderNotExist):
		return p.review(ctx, nil, why+", but WeChat's order query does not know the order", key)
	case err != nil:
		return err
	case !paidState(trade.TradeState):
		return p.review(ctx, nil, fmt.Sprintf("%s, but WeChat's order query says %s", why, trade.TradeState), key)
	}
	p.state.TransactionID = trade.TransactionID
	return p.decide(ctx, trade, nil)
}

// poll asks WeChat once. A paid trade is decided like a notified one, with
// the log saying it was found by query; anything else waits for later.
func (p *flow) poll(ctx workflow.Context) error {
	p.state.Step = StepConfirming
	p.state.Queries++
	var r activities.QueryOrderResult
	err := workflow.ExecuteActivity(pollOptions(ctx, "query WeChat order (no notification yet)"), a.QueryOrder,
		activities.QueryOrderInput{OutTradeNo: p.in.OutTradeNo}).Get(ctx, &r)
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) || isTimeout(err) {
		// WeChat does not know the order (never prepaid, or not yet), or
		// gave no answer that can be trusted: not a payment. The next poll
		// asks again.
		workflow.GetLogger(ctx).Info("order query gave no answer", "out_trade_no", p.in.OutTradeNo, "err", err)
		return nil
	}
	if err != nil {
		return err
	}
	if r.Trade.TradeState != payment.TradeSuccess && !(p.oneLoop && r.Trade.TradeState == payment.TradeRefund) {
		return nil
	}
	p.state.TransactionID = r.Trade.TransactionID
	return p.decide(ctx, r.Trade, nil)
}

// expire asks WeChat one last time, then closes the unpaid order.
func (p *flow) expire(ctx workflow.Context) error {
	if err := p.poll(ctx); err != nil || p.state.Status != payment.StatusPending {
		return err
	}
	return p.close(ctx, fmt.Sprintf("expired unpaid at %s", p.lc.ExpiresAt.UTC().Format(time.RFC3339)), payment.KeyClosedExpired)
}

// close closes the order at WeChat, so it can no longer be paid, then in
// our database. If WeChat says it is paid, the payment wins: it is
// confirmed instead. If WeChat refuses or gives no trustworthy answer, the
// order stays PENDING here and the close is tried again later: an order is
// never closed here while WeChat would still let someone pay it.
func (p *flow) close(ctx workflow.Context, reason string, key payment.Key) error {
	p.state.Step = StepClosing
	if !p.oneLoop {
		return p.legacyClose(ctx, reason, key)
	}
	err := workflow.ExecuteActivity(closeOptions(ctx), a.CloseAtWeChat,
		activities.CloseAtWeChatInput{OutTradeNo: p.in.OutTradeNo}).Get(ctx, nil)
	switch {
	case err == nil:
		p.closeRequested = false
		return p.markClosed(ctx, reason, key)
	case isType(err, activities.ErrTypeOrderPaid):
		p.closeRequested = false
		return p.confirmPaidAtWeChat(ctx, "WeChat Pay refused to close the order as paid", payment.KeyReviewClosePaid)
	}
	var cancelled *temporal.CanceledError
	if errors.As(err, &cancelled) {
		return err
	}
	p.closeBackoff = min(max(2*p.closeBackoff, firstCloseBackoff), maxCloseBackoff)
	p.closeRetryAt = workflow.Now(ctx).Add(p.closeBackoff)
	workflow.GetLogger(ctx).Warn("close at WeChat not confirmed; the order stays PENDING and the close is tried again",
		"out_trade_no", p.in.OutTradeNo, "retry_in", p.closeBackoff.String(), "err", err)
	return nil
}

// legacyClose is close as runs started before versionOneLoop do it.
func (p *flow) legacyClose(ctx workflow.Context, reason string, key payment.Key) error {
	p.closeRequested = false
	err := workflow.ExecuteActivity(storeOptions(ctx, "close at WeChat"), a.CloseAtWeChat,
		activities.CloseAtWeChatInput{OutTradeNo: p.in.OutTradeNo}).Get(ctx, nil)
	switch {
	case isType(err, activities.ErrTypeOrderPaid):
		if err := p.poll(ctx); err != nil || p.state.Status != payment.StatusPending {
			return err
		}
		return p.review(ctx, nil, "WeChat Pay refused to close the order as paid, but its order query does not say SUCCESS", payment.KeyReviewClosePaid)
	case isType(err, activities.ErrTypeQueryRejected):
		reason += " (WeChat Pay did not confirm the close: " + err.Error() + ")"
	case err != nil:
		return err
	}
	return p.markClosed(ctx, reason, key)
}

func (p *flow) markClosed(ctx workflow.Context, reason string, key payment.Key) error {
	var r activities.MarkClosedResult
	err := p.storeStep(ctx, "mark closed", a.MarkClosed,
		activities.MarkClosedInput{OutTradeNo: p.in.OutTradeNo, Reason: reason, Key: key}).Get(ctx, &r)
	if err != nil {
		return err
	}
	switch r.Outcome {
	case payment.ClosedPaid:
		return p.setStatus(ctx, payment.StatusPaid)
	case payment.ClosedReview:
		return p.setStatus(ctx, payment.StatusReview)
	}
	if !p.oneLoop {
		p.lingerUntil = workflow.Now(ctx).Add(p.linger())
	}
	return p.setStatus(ctx, payment.StatusClosed)
}

func isTimeout(err error) bool {
	var t *temporal.TimeoutError
	return errors.As(err, &t)
}
