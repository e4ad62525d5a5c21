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

// Error types of update rejections; the api maps them to HTTP answers.
const (
	ErrTypeAlreadyPaid = "AlreadyPaid"
	ErrTypeInReview    = "InReview"
	ErrTypeNotOwned    = "NotOwned"
)

var (
	errAlreadyPaid = temporal.NewNonRetryableApplicationError("order already paid", ErrTypeAlreadyPaid, nil)
	errInReview    = temporal.NewNonRetryableApplicationError("order is in review", ErrTypeInReview, nil)
	errNoPrepay    = temporal.NewNonRetryableApplicationError("this order is not prepaid by its workflow", ErrTypeNotOwned, nil)
	errNotOwned    = temporal.NewNonRetryableApplicationError("this order's workflow does not own its lifecycle; retry shortly", ErrTypeNotOwned, nil)
)

// registerHandlers installs the state query, the prepay and close updates.
// Handlers only read state or set flags and wait: the main loop does the
// work, so every step stays in one place.
func (p *flow) registerHandlers(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (State, error) { return p.state, nil }); err != nil {
		return fmt.Errorf("register query handler: %w", err)
	}
	err := workflow.SetUpdateHandlerWithOptions(ctx, UpdatePrepay,
		func(ctx workflow.Context) (PrepayResult, error) {
			if err := workflow.Await(ctx, func() bool { return p.prepayDone }); err != nil {
				return PrepayResult{}, err
			}
			return PrepayResult{Prepay: p.prepay, Error: p.prepayError}, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(workflow.Context) error {
			if p.lc == nil || !p.lc.Prepay {
				return errNoPrepay
			}
			return nil
		}})
	if err != nil {
		return fmt.Errorf("register prepay update: %w", err)
	}
	err = workflow.SetUpdateHandlerWithOptions(ctx, UpdateClose,
		func(ctx workflow.Context) (CloseResult, error) {
			if p.state.Status == payment.StatusPending {
				p.closeRequested = true
				if err := workflow.Await(ctx, func() bool { return p.state.Status != payment.StatusPending }); err != nil {
					return CloseResult{}, err
				}
			}
			return CloseResult{Status: p.state.Status}, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(workflow.Context) error {
			switch {
			case p.state.Status == payment.StatusPaid:
				return errAlreadyPaid
			case p.state.Status == payment.StatusReview:
				return errInReview
			case p.lc == nil && p.state.Status == payment.StatusPending:
				return errNotOwned
			}
			return nil
		}})
	if err != nil {
		return fmt.Errorf("register close update: %w", err)
	}
	return nil
}

// loadOrder reads the order a notification started the workflow for. A
// PENDING order gets its lifecycle; a decided one is only examined.
func (p *flow) loadOrder(ctx workflow.Context) error {
	var o activities.LoadOrderResult
	err := p.storeStep(ctx, "load order", a.LoadOrder,
		activities.LoadOrderInput{OutTradeNo: p.in.OutTradeNo}).Get(ctx, &o)
	if err != nil {
		return err
	}
	if !o.Found {
		return nil
	}
	p.state.AmountFen = o.AmountFen
	p.state.Status = o.Status
	p.state.TransactionID = o.TransactionID
	if o.Status == payment.StatusPending {
		p.lc = NewLifecycle(o.CreatedAt, o.ExpiresAt, o.TradeType, DefaultOrderTimeout, DefaultQueryAfter)
	}
	return nil
}

// own drives a PENDING order to PAID, CLOSED or REVIEW: prepay, then wait
// for notifications, query WeChat on a backoff schedule when none comes,
// and close the order when it expires or the merchant cancels it.
func (p *flow) own(ctx workflow.Context) error {
	lc := p.lc
	p.state.ExpiresAt = lc.ExpiresAt
	if lc.Prepay {
		if err := p.doPrepay(ctx); err != nil {
			return err
		}
	}
	interval := lc.QueryAfter
	nextQuery := lc.CreatedAt.Add(interval)
	for p.state.Status == payment.StatusPending {
		p.absorb()
		if len(p.queue) == 0 && !p.closeRequested && !p.syncRequested {
			if wake := earliest(nextQuery, lc.ExpiresAt); workflow.Now(ctx).Before(wake) {
				p.state.Step = StepWaiting
				if _, err := workflow.AwaitWithTimeout(ctx, wake.Sub(workflow.Now(ctx)), p.woken); err != nil {
					return err
				}
				p.absorb()
			}
		}
		now := workflow.Now(ctx)
		var err error
		switch {
		case len(p.queue) > 0:
			err = p.handle(ctx, p.pop())
		case p.closeRequested:
			err = p.close(ctx, "closed by the merchant", "closed:merchant")
		case !now.Before(lc.ExpiresAt):
			err = p.expire(ctx)
		case p.syncRequested || !now.Before(nextQuery):
			p.syncRequested = false
			err = p.poll(ctx)
			interval = min(2*interval, maxQueryInterval)
			nextQuery = workflow.Now(ctx).Add(interval)
		}
		if err != nil {
			return err
		}
	}
	if p.state.Status == payment.StatusClosed {
		// Even an order whose prepay failed lingers: a notification may
		// already be held, or still come, and must be examined.
		return p.linger(ctx)
	}
	return p.serveNotifications(ctx)
}

// woken reports whether something arrived that the main loop must handle.
func (p *flow) woken() bool {
	return p.signals.Len() > 0 || p.syncs.Len() > 0 || p.closeRequested
}

// doPrepay asks WeChat to create the order, within the order's lifetime. A
// refusal closes the order: it can never be paid.
func (p *flow) doPrepay(ctx workflow.Context) error {
	p.state.Step = StepPrepaying
	var r activities.PrepayResult
	err := workflow.ExecuteActivity(prepayOptions(ctx, p.lc.ExpiresAt.Sub(workflow.Now(ctx))), a.Prepay,
		activities.PrepayInput{OutTradeNo: p.in.OutTradeNo}).Get(ctx, &r)
	p.prepayDone = true
	var appErr *temporal.ApplicationError
	var timeout *temporal.TimeoutError
	switch {
	case err == nil:
		p.prepay, p.state.Prepaid = r.Prepay, true
		return nil
	case errors.As(err, &appErr) && appErr.Type() == activities.ErrTypeOrderPaid:
		// The order is paid at WeChat: confirm it like any payment, never
		// close it.
		p.prepayError = "WeChat Pay says the order is already paid"
		if err := p.poll(ctx); err != nil || p.state.Status != payment.StatusPending {
			return err
		}
		return p.review(ctx, nil, "prepay refused as already paid, but the WeChat order query does not say SUCCESS", "review:prepay-paid")
	case errors.As(err, &appErr) && appErr.Type() == activities.ErrTypePrepay:
		p.prepayError = appErr.Message()
	case errors.As(err, &timeout):
		p.prepayError = "WeChat Pay could not be reached to prepay before the order expired"
	default:
		return err
	}
	return p.markClosed(ctx, "prepay failed: "+p.prepayError, "closed:prepay")
}

// poll asks WeChat once. A paid trade is decided like a notified one, with
// the log saying it was found by query; anything else waits for later.
func (p *flow) poll(ctx workflow.Context) error {
	p.state.Step = StepConfirming
	p.state.Queries++
	var r activities.QueryOrderResult
	err := workflow.ExecuteActivity(pollOptions(ctx, "query WeChat order (no notification yet)"), a.QueryOrder,
		activities.QueryOrderInput{OutTradeNo: p.in.OutTradeNo}).Get(ctx, &r)
	p.absorb()
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) || isTimeout(err) {
		// WeChat does not know the order (never prepaid, or not yet), or
		// could not answer: not a payment. The next poll asks again.
		workflow.GetLogger(ctx).Info("order query gave no answer", "out_trade_no", p.in.OutTradeNo, "err", err)
		return nil
	}
	if err != nil {
		return err
	}
	if r.Trade.TradeState != payment.TradeSuccess {
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
	return p.close(ctx, fmt.Sprintf("expired unpaid at %s", p.lc.ExpiresAt.UTC().Format(time.RFC3339)), "closed:expired")
}

// close closes the order at WeChat, so it can no longer be paid, then in
// our database. If WeChat says it is paid, the payment wins: it is
// confirmed instead.
func (p *flow) close(ctx workflow.Context, reason, key string) error {
	p.state.Step = StepClosing
	p.closeRequested = false
	err := workflow.ExecuteActivity(storeOptions(ctx, "close at WeChat"), a.CloseAtWeChat,
		activities.CloseAtWeChatInput{OutTradeNo: p.in.OutTradeNo}).Get(ctx, nil)
	p.absorb()
	switch {
	case isType(err, activities.ErrTypeOrderPaid):
		if err := p.poll(ctx); err != nil || p.state.Status != payment.StatusPending {
			return err
		}
		return p.review(ctx, nil, "WeChat Pay refused to close the order as paid, but its order query does not say SUCCESS", "review:close-paid")
	case isType(err, activities.ErrTypeQueryRejected):
		// Closing locally anyway: should WeChat still take a payment, it
		// arrives as paid-after-close and the order goes to REVIEW.
		reason += " (WeChat Pay did not confirm the close: " + err.Error() + ")"
	case err != nil:
		return err
	}
	return p.markClosed(ctx, reason, key)
}

func (p *flow) markClosed(ctx workflow.Context, reason, key string) error {
	var r activities.MarkClosedResult
	err := p.storeStep(ctx, "mark closed", a.MarkClosed,
		activities.MarkClosedInput{OutTradeNo: p.in.OutTradeNo, Reason: reason, Key: key}).Get(ctx, &r)
	if err != nil {
		return err
	}
	switch r.Outcome {
	case "paid":
		return p.setStatus(ctx, payment.StatusPaid, p.state.TransactionID)
	case "review":
		return p.setStatus(ctx, payment.StatusReview, p.state.TransactionID)
	}
	return p.setStatus(ctx, payment.StatusClosed, "")
}

// linger keeps a CLOSED order's workflow open while WeChat may still
// deliver notifications, so a payment after close is examined (and sent to
// REVIEW by the database), never lost.
func (p *flow) linger(ctx workflow.Context) error {
	p.state.Step = StepLingering
	linger := p.lc.Linger
	if linger <= 0 {
		linger = DefaultLinger
	}
	until := workflow.Now(ctx).Add(linger)
	for p.state.Status == payment.StatusClosed {
		p.absorb()
		if len(p.queue) == 0 {
			left := until.Sub(workflow.Now(ctx))
			if left <= 0 {
				return nil
			}
			if _, err := workflow.AwaitWithTimeout(ctx, left, func() bool { return p.signals.Len() > 0 }); err != nil {
				return err
			}
			p.absorb()
			if len(p.queue) == 0 {
				return nil
			}
		}
		if err := p.handle(ctx, p.pop()); err != nil {
			return err
		}
	}
	return p.serveNotifications(ctx)
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func isTimeout(err error) bool {
	var t *temporal.TimeoutError
	return errors.As(err, &t)
}
