// Package workflows holds the per-order payment workflow. Its code is
// deterministic: every side effect is an activity, time comes from
// workflow.Now, and no map is iterated.
package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/payflow/payflow/payment"
)

// Names shared with the api, the worker and operators.
const (
	// SignalNotification carries a verified payment.Notification.
	SignalNotification = "notification"
	// QueryState answers the workflow's current State.
	QueryState = "state"
	// UpdatePrepay waits for the order's prepay and returns a PrepayResult.
	UpdatePrepay = "prepay"
	// UpdateClose closes an unpaid order (the merchant cancels it) and
	// returns a CloseResult.
	UpdateClose = "close"
	// SignalSync asks the workflow to query WeChat now; syncs that pile up
	// are one query.
	SignalSync = "sync"
	// SignalConfirm asks the workflow to query WeChat and apply a paid
	// trade whatever the order's status (a ConfirmRequest; the bill
	// reconciliation's paid_at_wechat_only).
	SignalConfirm = "confirm"
	// SignalReview sends the order to REVIEW (a ReviewRequest; the bill
	// reconciliation's paid_here_only and amount_mismatch).
	SignalReview = "review"
	// SignalTrackRefund tells the workflow of a refund WeChat has (a
	// TrackRefundRequest): recorded if unknown, then confirmed by query.
	SignalTrackRefund = "track-refund"
	// SignalReloadRefunds asks a running run to read the order's open
	// refunds again and follow those it does not follow yet (the safety
	// net's refund pass: a refund accepted here whose update was lost with
	// a crashed Temporal server is in PostgreSQL, not in the run).
	SignalReloadRefunds = "reload-refunds"
	// UpdateRefund asks for a refund (a RefundRequest) and returns a
	// RefundResult once it is accepted here.
	UpdateRefund = "refund"
	// UpdateResolve settles an order in REVIEW (a ResolveRequest) and
	// returns a ResolveResult.
	UpdateResolve = "resolve"
)

// WorkflowID is the one workflow id of an order: every notification,
// retry and duplicate for the order reaches the same execution.
func WorkflowID(outTradeNo string) string { return "payment/" + outTradeNo }

// Defaults for PaymentInput's zero values.
const (
	// DefaultConfirmWindow bounds how long a trade WeChat still reports as
	// NOTPAY or USERPAYING right after a "paid" notification is re-queried
	// before the order goes to REVIEW.
	DefaultConfirmWindow = 5 * time.Minute
	// DefaultIdleTimeout is how long an unfinished order's workflow waits for
	// a further notification: WeChat's retries span 24h04m.
	DefaultIdleTimeout = 25 * time.Hour
)

// Defaults of the interface's ORDER_TIMEOUT and ORDER_QUERY_AFTER, used
// for an order whose workflow a notification started.
const (
	DefaultOrderTimeout = 30 * time.Minute
	DefaultQueryAfter   = time.Minute
)

// DefaultLinger is how long a CLOSED order's workflow still examines
// late notifications: WeChat's retries span 24h04m.
const DefaultLinger = 25 * time.Hour

// PaymentInput starts an order's workflow.
type PaymentInput struct {
	OutTradeNo    string        `json:"out_trade_no"`
	ConfirmWindow time.Duration `json:"confirm_window,omitempty"`
	IdleTimeout   time.Duration `json:"idle_timeout,omitempty"`
	// Lifecycle was set by callers before the one-loop workflow (runs
	// started then replay with it). Runs started now read the order and
	// build the lifecycle from it and the worker's settings.
	Lifecycle *Lifecycle `json:"lifecycle,omitempty"`
	// Carry is the state of the run that continued as new into this one.
	Carry *Carry `json:"carry,omitempty"`
	// Revision is the workflow code's revision the run was started at
	// (Revision; the gateway sets it). 0: a run started before revisions,
	// which asks GetVersion for each change.
	Revision int `json:"revision,omitempty"`
}

// ConfirmRequest asks the workflow to confirm a payment with WeChat's
// order query whatever the order's status.
type ConfirmRequest struct {
	Reason string `json:"reason"`
}

// ReviewRequest sends the order to REVIEW; Key makes a repeat a no-op.
type ReviewRequest struct {
	Reason string `json:"reason"`
	Key    string `json:"key"`
}

// TrackRefundRequest is a refund WeChat has (a bill row, a notification).
type TrackRefundRequest struct {
	OutRefundNo string `json:"out_refund_no"`
	RefundID    string `json:"refund_id,omitempty"`
	AmountFen   int64  `json:"amount_fen,omitempty"`
	Reason      string `json:"reason,omitempty"`
}

// RefundRequest asks for a refund of the order.
type RefundRequest struct {
	OutRefundNo string `json:"out_refund_no"`
	AmountFen   int64  `json:"amount_fen"`
	Reason      string `json:"reason,omitempty"`
}

// RefundResult is the refund as accepted here; Created is false when the
// same out_refund_no (same amount) had been accepted before.
type RefundResult struct {
	Refund  payment.Refund `json:"refund"`
	Created bool           `json:"created"`
}

// Resolutions of an order in REVIEW.
const (
	ResolveAcceptPaid = "accept_paid" // the payment stands: REVIEW → PAID (needs a transaction)
	ResolveClose      = "close"       // no money is owed either way: REVIEW → CLOSED
	ResolveRefund     = "refund"      // refund what is left of the payment; REFUNDED once it succeeds
)

// ResolveRequest is an operator's decision about an order in REVIEW.
type ResolveRequest struct {
	Action   string `json:"action"`
	Operator string `json:"operator"`
	Reason   string `json:"reason"`
}

// ResolveResult is the order's status afterwards and, for a refund, the
// refund started.
type ResolveResult struct {
	Status payment.Status  `json:"status"`
	Refund *payment.Refund `json:"refund,omitempty"`
}

// Lifecycle is an order's lifetime as the workflow drives it.
type Lifecycle struct {
	CreatedAt  time.Time     `json:"created_at"`
	ExpiresAt  time.Time     `json:"expires_at"`  // closed if still unpaid then
	QueryAfter time.Duration `json:"query_after"` // with no notification by then, query WeChat
	Prepay     bool          `json:"prepay"`      // prepay at WeChat first
	Linger     time.Duration `json:"linger,omitempty"`
}

// NewLifecycle builds the lifecycle of a stored order.
func NewLifecycle(createdAt time.Time, expiresAt *time.Time, tradeType string, defaultTimeout, queryAfter time.Duration) *Lifecycle {
	lc := &Lifecycle{CreatedAt: createdAt, ExpiresAt: createdAt.Add(defaultTimeout), QueryAfter: queryAfter, Prepay: tradeType != ""}
	if expiresAt != nil {
		lc.ExpiresAt = *expiresAt
	}
	return lc
}

// PrepayResult answers UpdatePrepay: the prepay, or why WeChat refused it.
type PrepayResult struct {
	Prepay payment.Prepay `json:"prepay"`
	Error  string         `json:"error,omitempty"`
}

// CloseResult answers UpdateClose with the order's status afterwards:
// CLOSED, or PAID if the payment won the race.
type CloseResult struct {
	Status payment.Status `json:"status"`
}

// PaymentResult is the workflow's final state.
type PaymentResult struct {
	State State `json:"state"`
}

// Steps of the workflow, as shown by the state query.
const (
	StepWaiting    = "waiting for notification"
	StepConfirming = "confirming with WeChat"
	StepPrepaying  = "prepaying at WeChat"
	StepClosing    = "closing"
	StepLingering  = "closed; watching for late payments"
	StepDone       = "done"
)

// State is what the workflow knows of the order; the QueryState handler
// returns it and the result carries it.
type State struct {
	OutTradeNo     string         `json:"out_trade_no"`
	Status         payment.Status `json:"status"`
	Step           string         `json:"step"`
	TransactionID  string         `json:"transaction_id,omitempty"`
	Source         payment.Source `json:"source,omitempty"`
	AmountFen      int64          `json:"amount_fen,omitempty"`
	Notifications  int            `json:"notifications"`   // received, duplicates included
	Duplicates     int            `json:"duplicates"`      // absorbed without effect
	FailedPayments int            `json:"failed_payments"` // result_code FAIL notifications
	Queries        int            `json:"queries"`         // order queries sent to WeChat
	UnknownOrder   bool           `json:"unknown_order,omitempty"`
	Reason         string         `json:"reason,omitempty"` // why the order is in REVIEW
	ExpiresAt      time.Time      `json:"expires_at,omitzero"`
	Prepaid        bool           `json:"prepaid,omitempty"`
	RefundedFen    int64          `json:"refunded_fen,omitempty"`
	// Refunds being followed or followed by this run (the state query).
	Refunds []RefundState `json:"refunds,omitempty"`
}

// RefundState is a refund as the workflow follows it.
type RefundState struct {
	OutRefundNo string               `json:"out_refund_no"`
	AmountFen   int64                `json:"amount_fen"`
	Status      payment.RefundStatus `json:"status"`
	Step        string               `json:"step"` // what the workflow does next
	NextAt      time.Time            `json:"next_at,omitzero"`
	Asks        int                  `json:"asks"`    // refund requests sent to WeChat
	Queries     int                  `json:"queries"` // refund queries sent to WeChat
}

// Custom search attributes, registered by the worker at start. Operators
// find payments in the Temporal UI with e.g. PaymentStatus="REVIEW".
var (
	AttrOutTradeNo    = temporal.NewSearchAttributeKeyKeyword("OutTradeNo")
	AttrPaymentStatus = temporal.NewSearchAttributeKeyKeyword("PaymentStatus")
	AttrTransactionID = temporal.NewSearchAttributeKeyKeyword("TransactionId")
	AttrAmountFen     = temporal.NewSearchAttributeKeyInt64("AmountFen")
	AttrPaymentSource = temporal.NewSearchAttributeKeyKeyword("PaymentSource")
	AttrRefundedFen   = temporal.NewSearchAttributeKeyInt64("RefundedFen")
)

// SearchAttributeKeys lists the custom search attributes in a fixed order.
func SearchAttributeKeys() []temporal.SearchAttributeKey {
	return []temporal.SearchAttributeKey{AttrOutTradeNo, AttrPaymentStatus, AttrTransactionID, AttrAmountFen, AttrPaymentSource, AttrRefundedFen,
		AttrBillDate, AttrBillStatus}
}

// Memo is the order's essentials shown with each run in the Temporal UI.
// It holds no personal data (no openid).
func Memo(outTradeNo string, amountFen int64, tradeType string, expiresAt time.Time) map[string]any {
	m := map[string]any{"out_trade_no": outTradeNo, "amount": yuan(amountFen), "amount_fen": amountFen}
	if tradeType != "" {
		m["trade_type"] = tradeType
	}
	if !expiresAt.IsZero() {
		m["expires_at"] = expiresAt.UTC().Format(time.RFC3339)
	}
	return m
}

// Summary is a run's one-line static summary in the Temporal UI, e.g.
// "¥12.34 · ORDER123".
func Summary(outTradeNo string, amountFen int64) string {
	if amountFen <= 0 {
		return outTradeNo
	}
	return yuan(amountFen) + " · " + outTradeNo
}
