package workflows

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/payflow/payflow/payment"
)

// Error types of update rejections; the api maps them to HTTP answers in
// one table.
const (
	ErrTypeAlreadyPaid = "AlreadyPaid"
	ErrTypeInReview    = "InReview"
	ErrTypeNotOwned    = "NotOwned"
	ErrTypeBadRequest  = "BadRequest"
	ErrTypeNotInReview = "NotInReview"
	ErrTypeCannot      = "CannotResolve"
	ErrTypeNoOrder     = "NoOrder"
	// Refund refusals: the same out_refund_no with another amount or order;
	// an order that cannot be refunded (not paid, nothing left, 50 refunds,
	// more than is left); refunds not configured.
	ErrTypeRefundConflict     = "RefundConflict"
	ErrTypeNotRefundable      = "NotRefundable"
	ErrTypeRefundsUnavailable = "RefundsUnavailable"
)

var (
	errAlreadyPaid = temporal.NewNonRetryableApplicationError("order already paid", ErrTypeAlreadyPaid, nil)
	errInReview    = temporal.NewNonRetryableApplicationError("order is in review", ErrTypeInReview, nil)
	errNoPrepay    = temporal.NewNonRetryableApplicationError("this order is not prepaid by its workflow", ErrTypeNotOwned, nil)
	errNotOwned    = temporal.NewNonRetryableApplicationError("this order's workflow does not own its lifecycle; retry shortly", ErrTypeNotOwned, nil)
	errNoOrder     = temporal.NewNonRetryableApplicationError("no such order", ErrTypeNoOrder, nil)
)

func badRequest(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), ErrTypeBadRequest, nil)
}

// registerHandlers installs the state query and the updates. Validators
// check only the request's shape: an update may arrive with the start of a
// run, before the order is read, so handlers wait for it and then decide.
func (p *flow) registerHandlers(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (State, error) { return p.queryState(), nil }); err != nil {
		return fmt.Errorf("register query handler: %w", err)
	}
	for _, h := range []struct {
		name    string
		handler any
		valid   any
	}{
		{UpdatePrepay, p.prepayHandler, p.validatePrepay},
		{UpdateClose, p.closeHandler, p.validateClose},
		{UpdateRefund, p.refundHandler, validateRefund},
		{UpdateResolve, p.resolveHandler, validateResolve},
	} {
		if err := workflow.SetUpdateHandlerWithOptions(ctx, h.name, h.handler, workflow.UpdateHandlerOptions{Validator: h.valid}); err != nil {
			return fmt.Errorf("register %s update: %w", h.name, err)
		}
	}
	return nil
}

// queryState is the state with the refunds as they are now.
func (p *flow) queryState() State {
	s := p.state
	s.Refunds = p.refundStates()
	return s
}

func (p *flow) validatePrepay(workflow.Context) error {
	if p.loaded && (p.lc == nil || !p.lc.Prepay) {
		return errNoPrepay
	}
	return nil
}

// prepayHandler waits for the order's prepay and answers it; a repeated
// request gets the same answer.
func (p *flow) prepayHandler(ctx workflow.Context) (PrepayResult, error) {
	if err := workflow.Await(ctx, func() bool { return p.loaded }); err != nil {
		return PrepayResult{}, err
	}
	if p.lc == nil || !p.lc.Prepay {
		return PrepayResult{}, errNoPrepay
	}
	if err := workflow.Await(ctx, func() bool { return p.prepayDone }); err != nil {
		return PrepayResult{}, err
	}
	return PrepayResult{Prepay: p.prepay, Error: p.prepayError}, nil
}

func (p *flow) validateClose(workflow.Context) error {
	if !p.loaded {
		return nil
	}
	return p.closeRefusal()
}

func (p *flow) closeRefusal() error {
	switch {
	case p.state.Status == payment.StatusPaid || p.state.Status == payment.StatusRefunded:
		return errAlreadyPaid
	case p.state.Status == payment.StatusReview:
		return errInReview
	case p.lc == nil && p.state.Status == payment.StatusPending:
		return errNotOwned
	}
	return nil
}

// closeHandler asks the main loop to close the order and waits until it is
// decided: CLOSED, or PAID/REVIEW when the payment came first.
func (p *flow) closeHandler(ctx workflow.Context) (CloseResult, error) {
	if err := workflow.Await(ctx, func() bool { return p.loaded }); err != nil {
		return CloseResult{}, err
	}
	if p.state.UnknownOrder {
		return CloseResult{}, errNoOrder
	}
	if err := p.closeRefusal(); err != nil {
		return CloseResult{}, err
	}
	if p.state.Status == payment.StatusPending {
		p.closeRequested = true
		if err := workflow.Await(ctx, func() bool { return p.state.Status != payment.StatusPending }); err != nil {
			return CloseResult{}, err
		}
	}
	return CloseResult{Status: p.state.Status}, nil
}

func validateRefund(_ workflow.Context, r RefundRequest) error {
	switch {
	case !payment.ValidOutRefundNo(r.OutRefundNo):
		return badRequest("out_refund_no must be 1-64 of 0-9 A-Z a-z _ - | * @")
	case r.AmountFen <= 0:
		return badRequest("amount_fen must be an integer > 0")
	case utf8.RuneCountInString(r.Reason) > 80 || !utf8.ValidString(r.Reason):
		return badRequest("reason must be valid UTF-8 of at most 80 characters")
	}
	return nil
}

func validateResolve(_ workflow.Context, r ResolveRequest) error {
	switch {
	case r.Action != ResolveAcceptPaid && r.Action != ResolveClose && r.Action != ResolveRefund:
		return badRequest("action must be %s, %s or %s", ResolveAcceptPaid, ResolveClose, ResolveRefund)
	case strings.TrimSpace(r.Operator) == "" || utf8.RuneCountInString(r.Operator) > 64 || !utf8.ValidString(r.Operator):
		return badRequest("operator (who resolves it) is required, at most 64 characters")
	case strings.TrimSpace(r.Reason) == "" || utf8.RuneCountInString(r.Reason) > 256 || !utf8.ValidString(r.Reason):
		return badRequest("reason is required, at most 256 characters")
	}
	return nil
}
