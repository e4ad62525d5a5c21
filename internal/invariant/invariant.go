// Package invariant holds the checks every suite makes of an order's
// outcome: the end-to-end tests, the chaos tool and the benchmark judge a
// payment with the same words, from the order as the api serves it
// (payment.Order, GET /orders/{out_trade_no}) and what WeChat reports.
package invariant

import (
	"fmt"
	"strings"

	"github.com/payflow/payflow/payment"
)

// Kind says how a payment failed to be PAID exactly once.
type Kind string

const (
	// NotPaid: the order is neither PAID nor REFUNDED and no log row moved
	// it to PAID. Its Status says where it is (PENDING, REVIEW, CLOSED).
	NotPaid Kind = "not paid"
	// Doubled: more than one log row moved the order to PAID, or it is PAID
	// by a transaction other than the one WeChat reports.
	Doubled Kind = "doubled"
	// BadRecord: paid, but the record does not say so exactly: no log row
	// to PAID, a row from another status than PENDING or not naming the
	// transaction, a row to PAID while the order is in another status, no
	// transaction_id or no paid_at.
	BadRecord Kind = "bad record"
	// BadRefunds: the order's refunds do not add up: refunded_fen is not
	// the sum of its SUCCESS refunds, or more than was paid, or the order
	// is REFUNDED without its SUCCESS refunds adding up to what was paid
	// (or the other way round).
	BadRefunds Kind = "bad refunds"
)

// Violation explains why an order is not PAID exactly once.
type Violation struct {
	Kind   Kind
	Status payment.Status // the order's status
	Detail string
}

func (v *Violation) Error() string {
	return fmt.Sprintf("%s (order %s): %s", v.Kind, v.Status, v.Detail)
}

// PaidLogs are the order's log rows that moved it to PAID (from any other
// status); a paid order has exactly one, from PENDING. Rows from PAID to
// PAID record events (a partial refund, a late duplicate) and are not
// counted.
func PaidLogs(o payment.Order) []payment.Log {
	var out []payment.Log
	for _, l := range o.Logs {
		if l.ToStatus == payment.StatusPaid && l.FromStatus != payment.StatusPaid {
			out = append(out, l)
		}
	}
	return out
}

// PaidOnce reports whether order o was paid exactly once by transaction
// txid, the payment WeChat reports for it: its status is PAID (or REFUNDED
// since), exactly one log row moved it from PENDING to PAID and names txid,
// and its transaction_id is txid and paid_at is set. It returns nil when
// so, else a *Violation saying why not.
func PaidOnce(o payment.Order, txid string) error {
	bad := func(k Kind, format string, a ...any) error {
		return &Violation{Kind: k, Status: o.Status, Detail: fmt.Sprintf(format, a...)}
	}
	paid := PaidLogs(o)
	settled := o.Status == payment.StatusPaid || o.Status == payment.StatusRefunded
	switch {
	case len(paid) > 1:
		return bad(Doubled, "%d log rows to PAID: %s", len(paid), describe(paid))
	case settled && o.TransactionID != "" && o.TransactionID != txid:
		return bad(Doubled, "paid by transaction %q, WeChat's is %q", o.TransactionID, txid)
	case !settled && len(paid) == 0:
		return bad(NotPaid, "%s", lastTo(o.Logs, o.Status))
	case !settled:
		return bad(BadRecord, "a log row to PAID (%s), but the order is %s", describe(paid), o.Status)
	case len(paid) == 0:
		return bad(BadRecord, "%s without a log row to PAID", o.Status)
	case paid[0].FromStatus != payment.StatusPending:
		return bad(BadRecord, "the log row to PAID is from %s: %s", paid[0].FromStatus, describe(paid))
	case !strings.Contains(paid[0].Remarks, txid):
		return bad(BadRecord, "the PAID log row does not name transaction %s: %q", txid, paid[0].Remarks)
	case o.TransactionID == "":
		return bad(BadRecord, "%s without a transaction_id", o.Status)
	case o.PaidAt == nil:
		return bad(BadRecord, "%s without paid_at", o.Status)
	}
	return nil
}

// RefundsAddUp reports whether order o's refunds agree with its amounts and
// status: refunded_fen is the sum of its SUCCESS refunds and never more
// than paid_fen, and the order is REFUNDED exactly when that sum is what
// was paid. It returns nil when so, else a *Violation of kind BadRefunds.
func RefundsAddUp(o payment.Order) error {
	bad := func(format string, a ...any) error {
		return &Violation{Kind: BadRefunds, Status: o.Status, Detail: fmt.Sprintf(format, a...)}
	}
	var succeeded int64
	for _, r := range o.Refunds {
		if r.Status == payment.RefundSuccess {
			succeeded += r.AmountFen
		}
	}
	all := o.PaidFen > 0 && succeeded == o.PaidFen
	switch {
	case o.RefundedFen != succeeded:
		return bad("refunded_fen is %d, its SUCCESS refunds add up to %d", o.RefundedFen, succeeded)
	case succeeded > o.PaidFen:
		return bad("SUCCESS refunds add up to %d, more than the %d paid", succeeded, o.PaidFen)
	case o.Status == payment.StatusRefunded && !all:
		return bad("REFUNDED with %d of %d refunded", succeeded, o.PaidFen)
	case o.Status != payment.StatusRefunded && all:
		return bad("all %d refunded, yet %s", o.PaidFen, o.Status)
	}
	return nil
}

// lastTo is the remarks of the last log row into status, which say why the
// order is there.
func lastTo(logs []payment.Log, status payment.Status) string {
	for i := len(logs) - 1; i >= 0; i-- {
		if logs[i].ToStatus == status && logs[i].FromStatus != status {
			return logs[i].Remarks
		}
	}
	return "no log row to " + string(status)
}

func describe(ls []payment.Log) string {
	var b strings.Builder
	for i, l := range ls {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s→%s %q", l.FromStatus, l.ToStatus, l.Remarks)
	}
	return b.String()
}
