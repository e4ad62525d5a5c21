package workflows

import (
	"fmt"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/payflow/payflow/activities"
	"github.com/payflow/payflow/payment"
)

// resolveHandler settles an order in REVIEW as an operator decided, through
// the order's workflow so that it is ordered with everything else that
// happens to the order. The log row says who, how and why.
func (p *flow) resolveHandler(ctx workflow.Context, req ResolveRequest) (ResolveResult, error) {
	if err := workflow.Await(ctx, func() bool { return p.loaded }); err != nil {
		return ResolveResult{}, err
	}
	if p.state.UnknownOrder {
		return ResolveResult{}, errNoOrder
	}
	if p.state.Status != payment.StatusReview {
		return ResolveResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("order is %s, not in REVIEW", p.state.Status), ErrTypeNotInReview, nil)
	}
	how := map[string]string{
		ResolveAcceptPaid: "accepted as paid",
		ResolveClose:      "closed (no money owed either way)",
		ResolveRefund:     "refunding what was paid",
	}[req.Action]
	remarks := fmt.Sprintf("resolved by %s: %s: %s", req.Operator, how, req.Reason)
	if req.Action == ResolveRefund {
		return p.resolveByRefund(ctx, req, remarks)
	}
	to := payment.StatusPaid
	if req.Action == ResolveClose {
		to = payment.StatusClosed
	}
	var res activities.ResolveReviewResult
	err := p.storeStep(ctx, "resolve: "+how, a.ResolveReview, activities.ResolveReviewInput{
		OutTradeNo: p.in.OutTradeNo, To: to, Remarks: remarks, Key: payment.KeyResolved(req.Action),
	}).Get(ctx, &res)
	switch {
	case isType(err, activities.ErrTypeNoTransaction):
		return ResolveResult{}, temporal.NewNonRetryableApplicationError(
			"the order has no transaction: nothing was paid that could be accepted; close it or refund it", ErrTypeCannot, nil)
	case isType(err, activities.ErrTypeNotInReview):
		return ResolveResult{}, temporal.NewNonRetryableApplicationError("the order is no longer in REVIEW", ErrTypeNotInReview, nil)
	case err != nil:
		return ResolveResult{}, err
	}
	p.state.Reason = ""
	if err := p.setStatus(ctx, res.Status); err != nil {
		return ResolveResult{}, err
	}
	return ResolveResult{Status: res.Status}, nil
}
