package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/payflow/payflow/payment"
)

// refundTrack is a refund the workflow follows until it is final: asked of
// WeChat under its out_refund_no, then confirmed by WeChat's refund query.
type refundTrack struct {
	OutRefundNo string               `json:"out_refund_no"`
	AmountFen   int64                `json:"amount_fen"`
	Status      payment.RefundStatus `json:"status"`
	Portal      bool                 `json:"portal,omitempty"` // made at WeChat, not by us: only ever queried
	Phase       string               `json:"phase"`
	NextAt      time.Time            `json:"next_at"`
	Backoff     time.Duration        `json:"backoff,omitempty"`
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

func (r *refundTrack) done() bool { return r.Phase == refundDone }

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
	for _, r := range p.refunds {
		if !r.done() && !now.Before(r.NextAt) {
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

var errRefundsUnavailable = temporal.NewNonRetryableApplicationError("refunds are not available", ErrTypeCannot, nil)

// followOpenRefunds takes up the order's refunds that are not final.
func (p *flow) followOpenRefunds(workflow.Context, []payment.Refund) {}

// followRefund does a refund's next step.
func (p *flow) followRefund(workflow.Context, *refundTrack) error { return errRefundsUnavailable }

// refundNotified examines a refund notification.
func (p *flow) refundNotified(workflow.Context, payment.Notification) error { return nil }

// trackRefund follows a refund WeChat has.
func (p *flow) trackRefund(workflow.Context, TrackRefundRequest) error { return nil }

// refundHandler accepts a refund.
func (p *flow) refundHandler(workflow.Context, RefundRequest) (RefundResult, error) {
	return RefundResult{}, errRefundsUnavailable
}

// resolveByRefund settles an order in REVIEW by refunding what is left of
// its payment.
func (p *flow) resolveByRefund(workflow.Context, ResolveRequest, string) (ResolveResult, error) {
	return ResolveResult{}, errRefundsUnavailable
}
