package invariant

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/payflow/payflow/payment"
)

const tx = "4200000001202611260000000001"

func row(from, to payment.Status, remarks string) payment.Log {
	return payment.Log{FromStatus: from, ToStatus: to, Remarks: remarks}
}

// paidOrder is an order paid once by tx, as the store records it.
func paidOrder() payment.Order {
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	return payment.Order{
		OutTradeNo: "ORDER0001", AmountFen: 100, Status: payment.StatusPaid, TransactionID: tx, PaidAt: &at,
		Logs: []payment.Log{
			row("", payment.StatusPending, "created"),
			row(payment.StatusPending, payment.StatusPaid, "paid by "+tx+" (notification v2)"),
		},
	}
}

func TestPaidOnce(t *testing.T) {
	for _, tt := range []struct {
		name   string
		change func(*payment.Order)
		want   Kind // "" when paid once
		detail string
	}{
		{"paid once", func(*payment.Order) {}, "", ""},
		{"a late duplicate recorded", func(o *payment.Order) {
			o.Logs = append(o.Logs, row(payment.StatusPaid, payment.StatusPaid, "duplicate notification of "+tx))
		}, "", ""},
		{"refunded since", func(o *payment.Order) {
			o.Status = payment.StatusRefunded
			o.Logs = append(o.Logs, row(payment.StatusPaid, payment.StatusPaid, "refund R1 of 0.50"),
				row(payment.StatusPaid, payment.StatusRefunded, "refund R2 of 0.50"))
		}, "", ""},
		{"two rows to PAID", func(o *payment.Order) {
			o.Logs = append(o.Logs, row(payment.StatusPending, payment.StatusPaid, "paid by "+tx+" (query)"))
		}, Doubled, "2 log rows to PAID"},
		{"paid again after review", func(o *payment.Order) {
			o.Logs = append(o.Logs, row(payment.StatusPaid, payment.StatusReview, "second transaction"),
				row(payment.StatusReview, payment.StatusPaid, "resolved"))
		}, Doubled, "REVIEW→PAID"},
		{"another transaction", func(o *payment.Order) { o.TransactionID = "4200000001202611269999999999" }, Doubled, "WeChat's is"},
		{"pending", func(o *payment.Order) {
			o.Status, o.TransactionID, o.PaidAt = payment.StatusPending, "", nil
			o.Logs = o.Logs[:1]
		}, NotPaid, ""},
		{"in review", func(o *payment.Order) {
			o.Status = payment.StatusReview
			o.Logs = []payment.Log{o.Logs[0], row(payment.StatusPending, payment.StatusReview, "amount mismatch: paid 99, order 100")}
		}, NotPaid, "amount mismatch"},
		{"a PAID row, but closed", func(o *payment.Order) { o.Status = payment.StatusClosed }, BadRecord, "but the order is CLOSED"},
		{"no row to PAID", func(o *payment.Order) { o.Logs = o.Logs[:1] }, BadRecord, "without a log row to PAID"},
		{"row from CLOSED", func(o *payment.Order) { o.Logs[1].FromStatus = payment.StatusClosed }, BadRecord, "from CLOSED"},
		{"row names no transaction", func(o *payment.Order) { o.Logs[1].Remarks = "paid" }, BadRecord, "does not name transaction"},
		{"no transaction_id", func(o *payment.Order) { o.TransactionID = "" }, BadRecord, "without a transaction_id"},
		{"no paid_at", func(o *payment.Order) { o.PaidAt = nil }, BadRecord, "without paid_at"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := paidOrder()
			tt.change(&o)
			err := PaidOnce(o, tx)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("PaidOnce = %v, want nil", err)
				}
				return
			}
			var v *Violation
			if !errors.As(err, &v) || v.Kind != tt.want || v.Status != o.Status {
				t.Fatalf("PaidOnce = %#v, want a %q violation", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.detail) || !strings.Contains(err.Error(), string(tt.want)) {
				t.Fatalf("%q does not say %q", err, tt.detail)
			}
		})
	}
}

func TestPaidLogsSkipsEvents(t *testing.T) {
	o := paidOrder()
	o.Logs = append(o.Logs, row(payment.StatusPaid, payment.StatusPaid, "late duplicate"))
	if got := PaidLogs(o); len(got) != 1 || got[0].FromStatus != payment.StatusPending {
		t.Fatalf("PaidLogs = %+v", got)
	}
}

func TestRefundsAddUp(t *testing.T) {
	refund := func(no string, fen int64, s payment.RefundStatus) payment.Refund {
		return payment.Refund{OutRefundNo: no, AmountFen: fen, Status: s}
	}
	for _, tt := range []struct {
		name   string
		change func(*payment.Order)
		detail string // "" when the refunds add up
	}{
		{"no refund", func(*payment.Order) {}, ""},
		{"a partial refund", func(o *payment.Order) {
			o.Refunds = []payment.Refund{refund("R1", 30, payment.RefundSuccess), refund("R2", 20, payment.RefundProcessing)}
			o.RefundedFen = 30
		}, ""},
		{"refunded in full, closed and failed ones aside", func(o *payment.Order) {
			o.Status = payment.StatusRefunded
			o.Refunds = []payment.Refund{refund("R1", 60, payment.RefundSuccess), refund("R2", 40, payment.RefundClosed),
				refund("R3", 40, payment.RefundSuccess), refund("R4", 5, payment.RefundFailed)}
			o.RefundedFen = 100
		}, ""},
		{"refunded_fen counts a refund still processing", func(o *payment.Order) {
			o.Refunds = []payment.Refund{refund("R1", 30, payment.RefundSuccess), refund("R2", 20, payment.RefundProcessing)}
			o.RefundedFen = 50
		}, "refunded_fen is 50, its SUCCESS refunds add up to 30"},
		{"more refunded than paid", func(o *payment.Order) {
			o.Status = payment.StatusRefunded
			o.Refunds = []payment.Refund{refund("R1", 60, payment.RefundSuccess), refund("R2", 60, payment.RefundSuccess)}
			o.RefundedFen = 120
		}, "more than the 100 paid"},
		{"REFUNDED too early", func(o *payment.Order) {
			o.Status = payment.StatusRefunded
			o.Refunds = []payment.Refund{refund("R1", 60, payment.RefundSuccess), refund("R2", 40, payment.RefundAbnormal)}
			o.RefundedFen = 60
		}, "REFUNDED with 60 of 100"},
		{"all refunded, still PAID", func(o *payment.Order) {
			o.Refunds = []payment.Refund{refund("R1", 100, payment.RefundSuccess)}
			o.RefundedFen = 100
		}, "all 100 refunded, yet PAID"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := paidOrder()
			o.PaidFen = 100
			tt.change(&o)
			err := RefundsAddUp(o)
			if tt.detail == "" {
				if err != nil {
					t.Fatalf("RefundsAddUp = %v, want nil", err)
				}
				return
			}
			var v *Violation
			if !errors.As(err, &v) || v.Kind != BadRefunds || !strings.Contains(v.Detail, tt.detail) {
				t.Fatalf("RefundsAddUp = %v, want %s mentioning %q", err, BadRefunds, tt.detail)
			}
		})
	}
}
