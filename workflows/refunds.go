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

// rf names the refund activities; the worker registers the real value.
var rf *activities.Refunds

// refundTrack is a refund the workflow follows until it is final: asked of
// WeChat under its out_refund_no (never under another), then confirmed by
// WeChat's refund query, which alone makes it SUCCESS.
type refundTrack struct {
	OutRefundNo string               `json:"out_refund_no"`
	AmountFen   int64                `json:"amount_fen"`
	Status      payment.RefundStatus `json:"status"`
	Portal      bool                 `json:"portal,omitempty"` // made at WeChat, not by us: only ever queried
	Phase       string               `json:"phase"`
	NextAt      time.Time            `json:"next_at"`
	Backoff     time.Duration        `json:"backoff,omitempty"`
	Wait        time.Duration        `json:"wait,omitempty"` // the first backoff of the current kind of wait
	Asks        int                  `json:"asks,omitempty"`
	Queries     int                  `json:"queries,omitempty"`
}

// Phases of a followed refund.
const (
	refundAsk   = "ask WeChat"       // send the refund request (again, under the same number)
	refundCheck = "query first"      // an ask had no clear answer: query before asking again
	refundQuery = "confirm by query" // accepted by WeChat: query until final
	refundDone  = "done"             // final
)

// Backoffs of a followed refund.
const (
	firstFaultBackoff     = 10 * time.Second // an ask or a query without a trustworthy answer
	firstNotEnoughBackoff = 10 * time.Minute // the merchant's balance is short: days of asking, with an alert
	maxNotEnoughBackoff   = 6 * time.Hour
	firstRefundPoll       = time.Minute // PROCESSING: a minute, then longer (a bank card takes days)
	maxRefundPoll         = 6 * time.Hour
	firstAbnormalPoll     = time.Hour // ABNORMAL needs a person; it is still followed, slowly
	maxAbnormalPoll       = 24 * time.Hour
)

func (r *refundTrack) done() bool { return r.Phase == refundDone }

func (r *refundTrack) later(now time.Time, first, most time.Duration) {
	r.Backoff = min(max(2*r.Backoff, first), most)
	r.NextAt = now.Add(r.Backoff)
}

// later schedules the refund's next step with backoff. A new kind of wait
// (a fault after NOT_ENOUGH, say) starts from its own first backoff
// instead of doubling the other kind's (versionRefundWaits).
func (p *flow) later(ctx workflow.Context, r *refundTrack, now time.Time, first, most time.Duration) {
	if r.Wait != first && workflow.GetVersion(ctx, versionRefundWaits, workflow.DefaultVersion, 1) == 1 {
		r.Backoff = 0
	}
	r.Wait = first
	r.later(now, first, most)
}

func (p *flow) openRefunds() bool {
	for _, r := range p.refunds {
		if !r.done() {
			return true
		}
	}
	return false
}

// dueRefund is the first refund whose next step is due.
func (p *flow) dueRefund(now time.Time) *refundTrack {
	p.refundPoked = false
	for _, r := range p.refunds {
		if !r.done() && !now.Before(r.NextAt) {
			return r
		}
	}
	return nil
}

func (p *flow) refund(no string) *refundTrack {
	for _, r := range p.refunds {
		if r.OutRefundNo == no {
			return r
		}
	}
	return nil
}

func (p *flow) refundStates() []RefundState {
	var out []RefundState
	for _, r := range p.refunds {
		out = append(out, RefundState{OutRefundNo: r.OutRefundNo, AmountFen: r.AmountFen, Status: r.Status,
			Step: r.Phase, NextAt: r.NextAt, Asks: r.Asks, Queries: r.Queries})
	}
	return out
}

// follow takes up a refund that is not final, unless it is followed
// already; its next step is due now.
func (p *flow) follow(ctx workflow.Context, ref payment.Refund) {
	if ref.Status.Final() {
		return
	}
	now := workflow.Now(ctx)
	if r := p.refund(ref.OutRefundNo); r != nil {
		if !r.done() && r.NextAt.After(now) {
			r.NextAt, r.Backoff = now, 0 // something new about it: look now
			p.refundPoked = true
		}
		return
	}
	r := &refundTrack{OutRefundNo: ref.OutRefundNo, AmountFen: ref.AmountFen, Status: ref.Status,
		Portal: ref.Source == payment.RefundSourcePortal, NextAt: now}
	switch {
	case r.Portal || ref.RefundID != "":
		r.Phase = refundQuery // WeChat has it: confirm
	case ref.CreatedAt.IsZero() || !p.oneLoop:
		r.Phase = refundAsk
	default:
		r.Phase = refundCheck // a run before this one may have asked: query first
	}
	p.refunds = append(p.refunds, r)
	p.refundPoked = true
}

// reloadOpenRefunds reads the order's open refunds again and takes up those
// the run does not follow yet; those it follows keep their schedule (a
// NOT_ENOUGH refund is not asked again early).
func (p *flow) reloadOpenRefunds(ctx workflow.Context) error {
	if !p.oneLoop {
		return nil // runs before versionOneLoop follow no refunds
	}
	var o activities.LoadOrderResult
	if err := p.storeStep(ctx, "reload open refunds", a.LoadOrder, activities.LoadOrderInput{OutTradeNo: p.in.OutTradeNo}).Get(ctx, &o); err != nil {
		return err
	}
	for _, ref := range o.OpenRefunds {
		if p.refund(ref.OutRefundNo) == nil {
			workflow.GetLogger(ctx).Warn("following a refund this run did not know of (its update was lost)",
				"out_trade_no", p.in.OutTradeNo, "out_refund_no", ref.OutRefundNo)
			p.follow(ctx, ref)
		}
	}
	return nil
}

// followOpenRefunds takes up the order's refunds that are not final when
// the run starts (a run before it ended, or never started following them).
func (p *flow) followOpenRefunds(ctx workflow.Context, refunds []payment.Refund) {
	for _, ref := range refunds {
		p.follow(ctx, ref)
	}
}

// refundOptions: a WeChat refund call, tried a few times; if WeChat gives
// no trustworthy answer the refund is looked at again later on its own
// schedule, and the run goes on with the order's other messages.
func refundOptions(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		Summary:             summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second, MaximumAttempts: 3,
		},
	})
}

// followRefund does a refund's next step.
func (p *flow) followRefund(ctx workflow.Context, r *refundTrack) error {
	now := workflow.Now(ctx)
	label := fmt.Sprintf("%s %s", yuan(r.AmountFen), r.OutRefundNo)
	switch r.Phase {
	case refundAsk:
		r.Asks++
		var res activities.ApplyRefundResult
		err := workflow.ExecuteActivity(refundOptions(ctx, "ask WeChat to refund "+label), rf.ApplyRefund,
			activities.ApplyRefundInput{OutTradeNo: p.in.OutTradeNo, OutRefundNo: r.OutRefundNo}).Get(ctx, &res)
		if err != nil {
			return p.refundStepFailed(ctx, r, err)
		}
		switch res.Outcome {
		case activities.ApplyAccepted:
			// Accepted only; WeChat's refund query says when it is done.
			r.Phase, r.Backoff = refundQuery, 0
			r.NextAt = workflow.Now(ctx).Add(p.refundQueryAfter())
		case activities.ApplyNotEnough:
			p.later(ctx, r, workflow.Now(ctx), firstNotEnoughBackoff, maxNotEnoughBackoff)
		case activities.ApplyRefused:
			return p.markRefund(ctx, r, activities.MarkRefundInput{OutRefundNo: r.OutRefundNo, Status: payment.RefundFailed,
				Detail: res.Code + ": " + res.Message})
		case activities.ApplyAlreadyFinal:
			r.Phase, r.Status = refundDone, res.Refund.Status
		default: // ambiguous: it may have been accepted
			r.Phase = refundCheck
			p.later(ctx, r, workflow.Now(ctx), firstFaultBackoff, maxFaultBackoff)
		}
		return nil
	case refundCheck, refundQuery:
		r.Queries++
		var res activities.QueryRefundResult
		err := workflow.ExecuteActivity(refundOptions(ctx, "query WeChat refund "+label), rf.QueryRefund,
			activities.QueryRefundInput{OutTradeNo: p.in.OutTradeNo, OutRefundNo: r.OutRefundNo}).Get(ctx, &res)
		if err != nil {
			return p.refundStepFailed(ctx, r, err)
		}
		if res.Outcome == activities.QueryNotFound {
			if r.Portal {
				p.later(ctx, r, now, firstRefundPoll, maxRefundPoll) // WeChat will know it: ask again later
				return nil
			}
			// Never accepted under this number: ask, under the same number.
			r.Phase, r.NextAt, r.Backoff = refundAsk, now, 0
			return nil
		}
		if res.Mismatch != "" {
			return p.markReview(ctx, nil, activities.MarkReviewInput{OutTradeNo: p.in.OutTradeNo, AllowFromPaid: true,
				Reason: "refund does not add up: " + res.Mismatch, Key: payment.KeyReviewRefundMismatch(r.OutRefundNo)})
		}
		return p.refundAnswer(ctx, r, res.Trade)
	}
	return nil
}

// refundAnswer applies WeChat's refund query answer.
func (p *flow) refundAnswer(ctx workflow.Context, r *refundTrack, t payment.RefundTrade) error {
	now := workflow.Now(ctx)
	switch t.Status {
	case payment.RefundSuccess, payment.RefundClosed:
		return p.markRefund(ctx, r, activities.MarkRefundInput{OutRefundNo: r.OutRefundNo, Status: t.Status,
			RefundID: t.RefundID, SuccessTime: t.SuccessTime})
	case payment.RefundAbnormal:
		if r.Status != payment.RefundAbnormal {
			if err := p.markRefund(ctx, r, activities.MarkRefundInput{OutRefundNo: r.OutRefundNo, Status: payment.RefundAbnormal,
				RefundID: t.RefundID, Detail: "WeChat could not return the money (the payer's account or card); it needs a person"}); err != nil {
				return err
			}
		}
		r.Phase = refundQuery
		p.later(ctx, r, now, firstAbnormalPoll, maxAbnormalPoll)
	default: // PROCESSING
		r.Phase = refundQuery
		p.later(ctx, r, now, firstRefundPoll, maxRefundPoll)
	}
	return nil
}

// markRefund records a refund's outcome (one log row each) and follows the
// order's status: REFUNDED once its refunds add up to what was paid.
func (p *flow) markRefund(ctx workflow.Context, r *refundTrack, in activities.MarkRefundInput) error {
	var res activities.MarkRefundResult
	err := p.storeStep(ctx, fmt.Sprintf("refund %s %s %s", yuan(r.AmountFen), r.OutRefundNo, in.Status), rf.MarkRefund, in).Get(ctx, &res)
	if err != nil {
		return err
	}
	r.Status = res.Refund.Status
	if r.Status.Final() {
		r.Phase = refundDone
	}
	if res.Refund.Status == payment.RefundSuccess {
		p.state.RefundedFen += res.Refund.AmountFen
		if res.Exceeded {
			p.state.RefundedFen -= res.Refund.AmountFen
		}
	}
	if res.OrderTo != "" && res.OrderTo != p.state.Status {
		return p.setStatus(ctx, res.OrderTo)
	}
	if res.Changed && res.Refund.Status == payment.RefundSuccess {
		return p.upsertAttributes(ctx)
	}
	return nil
}

// refundStepFailed: a refund call that kept failing (WeChat gave no
// trustworthy answer, or the database was away) is tried again later; a
// refund that can never be made is FAILED.
func (p *flow) refundStepFailed(ctx workflow.Context, r *refundTrack, err error) error {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		switch appErr.Type() {
		case activities.ErrTypeInvalidRefund:
			return p.markRefund(ctx, r, activities.MarkRefundInput{OutRefundNo: r.OutRefundNo, Status: payment.RefundFailed,
				Detail: appErr.Message()})
		case activities.ErrTypeRefundNotFound, activities.ErrTypeOrderNotFound:
			r.Phase = refundDone // nothing here to follow
			return nil
		}
	}
	var cancelled *temporal.CanceledError
	if errors.As(err, &cancelled) {
		return err
	}
	workflow.GetLogger(ctx).Warn("refund step failed; trying again later", "out_trade_no", p.in.OutTradeNo,
		"out_refund_no", r.OutRefundNo, "phase", r.Phase, "err", err)
	p.later(ctx, r, workflow.Now(ctx), firstFaultBackoff, maxFaultBackoff)
	return nil
}

func (p *flow) refundQueryAfter() time.Duration {
	if p.set.RefundQueryAfter > 0 {
		return p.set.RefundQueryAfter
	}
	return time.Minute
}

// refundNotified examines a refund notification: a hint, never a result.
// A refund we do not know (made in the merchant portal) is recorded with
// source merchant_portal; either way WeChat's refund query decides.
func (p *flow) refundNotified(ctx workflow.Context, n payment.Notification) error {
	f := n.Refund
	if f == nil {
		return nil
	}
	return p.learnRefund(ctx, f.OutRefundNo, f.RefundID, f.AmountFen, &n)
}

// trackRefund follows a refund WeChat's bill has.
func (p *flow) trackRefund(ctx workflow.Context, req TrackRefundRequest) error {
	return p.learnRefund(ctx, req.OutRefundNo, req.RefundID, req.AmountFen, nil)
}

func (p *flow) learnRefund(ctx workflow.Context, outRefundNo, refundID string, amountFen int64, n *payment.Notification) error {
	if r := p.refund(outRefundNo); r != nil {
		if !r.done() {
			r.NextAt, r.Backoff = workflow.Now(ctx), 0
			if r.Phase == refundAsk {
				r.Phase = refundCheck // WeChat speaks of it: it has it
			}
			p.refundPoked = true
		}
		return nil
	}
	if p.state.UnknownOrder {
		if n != nil {
			return p.recordUnknown(ctx, *n)
		}
		return nil
	}
	var res activities.RecordPortalRefundResult
	err := p.storeStep(ctx, fmt.Sprintf("record refund %s %s", yuan(amountFen), outRefundNo), rf.RecordPortalRefund,
		activities.RecordPortalRefundInput{OutTradeNo: p.in.OutTradeNo, OutRefundNo: outRefundNo, AmountFen: amountFen, RefundID: refundID}).Get(ctx, &res)
	if isType(err, activities.ErrTypeOrderNotFound) && n != nil {
		return p.recordUnknown(ctx, *n)
	}
	if err != nil {
		return err
	}
	p.follow(ctx, res.Refund)
	if r := p.refund(outRefundNo); r != nil && r.Phase != refundDone {
		r.Phase = refundQuery // WeChat has it
	}
	return nil
}

// refundHandler accepts a refund: recorded in PostgreSQL under the order's
// row lock (never more than was paid, at most 50), then held by this run,
// which asks WeChat under its out_refund_no. It answers once accepted
// here; WeChat's answer comes later.
func (p *flow) refundHandler(ctx workflow.Context, req RefundRequest) (RefundResult, error) {
	if err := workflow.Await(ctx, func() bool { return p.loaded }); err != nil {
		return RefundResult{}, err
	}
	if p.state.UnknownOrder {
		return RefundResult{}, errNoOrder
	}
	// A re-run of this workflow task (its worker lost it after the local
	// activity committed) is the same acceptance, told apart from a repeat
	// of the request by this run and update.
	by := workflow.GetInfo(ctx).WorkflowExecution.RunID
	if u := workflow.GetCurrentUpdateInfo(ctx); u != nil {
		by += "/" + u.ID
	}
	var res activities.AcceptRefundResult
	err := p.storeStep(ctx, fmt.Sprintf("refund %s %s", yuan(req.AmountFen), req.OutRefundNo), rf.AcceptRefund,
		activities.AcceptRefundInput{OutTradeNo: p.in.OutTradeNo, OutRefundNo: req.OutRefundNo, AmountFen: req.AmountFen,
			Reason: req.Reason, AcceptedBy: by}).Get(ctx, &res)
	if err != nil {
		return RefundResult{}, refundRefusal(err)
	}
	if !res.Created && p.refund(req.OutRefundNo) != nil &&
		workflow.GetVersion(ctx, versionRepeatKeepsWait, workflow.DefaultVersion, 1) == 1 {
		// A repeat of a refund this run follows says nothing new about it:
		// its next step keeps its time (a NOT_ENOUGH wait is not cut short
		// by a client that asks again).
		return RefundResult{Refund: res.Refund}, nil
	}
	p.follow(ctx, res.Refund)
	return RefundResult{Refund: res.Refund, Created: res.Created}, nil
}

// refundRefusal turns the store's refusal of a refund into the update's
// error, typed for the api's table.
func refundRefusal(err error) error {
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) {
		return err
	}
	typ := map[string]string{
		activities.ErrTypeRefundConflict:     ErrTypeRefundConflict,
		activities.ErrTypeNotRefundable:      ErrTypeNotRefundable,
		activities.ErrTypeTooManyRefunds:     ErrTypeNotRefundable,
		activities.ErrTypeExceedsPaid:        ErrTypeNotRefundable,
		activities.ErrTypeInvalidRefund:      ErrTypeBadRequest,
		activities.ErrTypeOrderNotFound:      ErrTypeNoOrder,
		activities.ErrTypeRefundsUnavailable: ErrTypeRefundsUnavailable,
	}[appErr.Type()]
	if typ == "" {
		return err
	}
	msg := map[string]string{
		activities.ErrTypeRefundConflict:     "out_refund_no was used before with another amount or order",
		activities.ErrTypeNotRefundable:      "the order cannot be refunded: it is not paid, or nothing is left to refund",
		activities.ErrTypeTooManyRefunds:     "the order already has 50 refunds",
		activities.ErrTypeExceedsPaid:        "the amount exceeds what is left to refund",
		activities.ErrTypeInvalidRefund:      "the refund cannot be made with these parameters",
		activities.ErrTypeOrderNotFound:      "no such order",
		activities.ErrTypeRefundsUnavailable: "refunds need the WeChat Pay API v3 credentials, which are not configured",
	}[appErr.Type()]
	return temporal.NewNonRetryableApplicationError(msg, typ, nil)
}

// resolveByRefund settles an order in REVIEW by refunding what is left of
// its payment; the order becomes REFUNDED when the refund succeeds.
func (p *flow) resolveByRefund(ctx workflow.Context, req ResolveRequest, remarks string) (ResolveResult, error) {
	var left activities.RefundableResult
	if err := p.storeStep(ctx, "what is left to refund", a.Refundable,
		activities.RefundableInput{OutTradeNo: p.in.OutTradeNo}).Get(ctx, &left); err != nil {
		return ResolveResult{}, err
	}
	if left.LeftFen <= 0 {
		return ResolveResult{}, temporal.NewNonRetryableApplicationError(
			"the order has no payment left to refund; accept it as paid or close it", ErrTypeCannot, nil)
	}
	no := fmt.Sprintf("RV%d-%s", left.Refunds+1, p.in.OutTradeNo)
	res, err := p.refundHandler(ctx, RefundRequest{OutRefundNo: no, AmountFen: left.LeftFen, Reason: "resolution of a review"})
	if err != nil {
		return ResolveResult{}, err
	}
	err = p.storeStep(ctx, "log the resolution", a.OrderLog, activities.OrderLogInput{OutTradeNo: p.in.OutTradeNo,
		Remarks: fmt.Sprintf("%s (refund %s of %s)", remarks, no, yuan(left.LeftFen)), Key: payment.KeyResolvedRefund(no)}).Get(ctx, nil)
	if err != nil {
		return ResolveResult{}, err
	}
	ref := res.Refund
	return ResolveResult{Status: p.state.Status, Refund: &ref}, nil
}
