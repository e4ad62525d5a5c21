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

// PaymentInput starts an order's workflow.
type PaymentInput struct {
	OutTradeNo    string        `json:"out_trade_no"`
	ConfirmWindow time.Duration `json:"confirm_window,omitempty"`
	IdleTimeout   time.Duration `json:"idle_timeout,omitempty"`
}

// PaymentResult is the workflow's final state.
type PaymentResult struct {
	State State `json:"state"`
}

// Steps of the workflow, as shown by the state query.
const (
	StepWaiting    = "waiting for notification"
	StepConfirming = "confirming with WeChat"
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
}

// Custom search attributes, registered by the worker at start. Operators
// find payments in the Temporal UI with e.g. PaymentStatus="REVIEW".
var (
	AttrOutTradeNo    = temporal.NewSearchAttributeKeyKeyword("OutTradeNo")
	AttrPaymentStatus = temporal.NewSearchAttributeKeyKeyword("PaymentStatus")
	AttrTransactionID = temporal.NewSearchAttributeKeyKeyword("TransactionId")
	AttrAmountFen     = temporal.NewSearchAttributeKeyInt64("AmountFen")
	AttrPaymentSource = temporal.NewSearchAttributeKeyKeyword("PaymentSource")
)

// SearchAttributeKeys lists the custom search attributes in a fixed order.
func SearchAttributeKeys() []temporal.SearchAttributeKey {
	return []temporal.SearchAttributeKey{AttrOutTradeNo, AttrPaymentStatus, AttrTransactionID, AttrAmountFen, AttrPaymentSource}
}

// StartAttributes are the search attributes the api sets when a
// notification starts an order's workflow.
func StartAttributes(n payment.Notification) temporal.SearchAttributes {
	return temporal.NewSearchAttributes(
		AttrOutTradeNo.ValueSet(n.OutTradeNo),
		AttrPaymentStatus.ValueSet(string(payment.StatusPending)),
		AttrAmountFen.ValueSet(n.AmountFen),
		AttrPaymentSource.ValueSet(string(n.Source)),
	)
}

// Summary is a run's one-line static summary in the Temporal UI, e.g.
// "¥12.34 · ORDER123".
func Summary(outTradeNo string, amountFen int64) string {
	if amountFen <= 0 {
		return outTradeNo
	}
	return yuan(amountFen) + " · " + outTradeNo
}
