package main

import (
	"strings"
	"testing"

	"github.com/payflow/payflow/payment"
)

// An arranged REVIEW passes only when the payment went to REVIEW once, by
// WeChat's transaction, with what WeChat took, and never PAID.
func TestArrangedReview(t *testing.T) {
	const tx = "4200009"
	pl := plan{OutTradeNo: "CHAOS100002", AmountFen: 500, PaidFen: 512, Review: reviewMismatch}
	reviewed := func() payment.Order {
		return payment.Order{OutTradeNo: pl.OutTradeNo, AmountFen: 500, PaidFen: 512, TransactionID: tx, Status: payment.StatusReview,
			Logs: []payment.Log{
				{ToStatus: payment.StatusPending, Remarks: "created"},
				{FromStatus: payment.StatusPending, ToStatus: payment.StatusReview, Remarks: "amount verification failed"},
			}}
	}
	for _, tt := range []struct {
		name   string
		change func(o *payment.Order)
		class  string
		detail string
	}{
		{"in REVIEW", func(*payment.Order) {}, classArranged, "amount verification failed"},
		{"settled by a refund", func(o *payment.Order) {
			o.Status = payment.StatusRefunded
			o.Logs = append(o.Logs, payment.Log{FromStatus: payment.StatusReview, ToStatus: payment.StatusRefunded, Remarks: "refund R1 ¥5.12 SUCCESS"})
		}, classArranged, ""},
		{"PAID instead", func(o *payment.Order) {
			o.Status = payment.StatusPaid
			o.Logs[1] = payment.Log{FromStatus: payment.StatusPending, ToStatus: payment.StatusPaid, Remarks: "paid by " + tx}
		}, classUnreviewed, "yet PAID"},
		{"still PENDING", func(o *payment.Order) { o.Status, o.Logs = payment.StatusPending, o.Logs[:1] }, classUnreviewed, "yet PENDING"},
		{"twice into REVIEW", func(o *payment.Order) {
			o.Logs = append(o.Logs, payment.Log{FromStatus: payment.StatusClosed, ToStatus: payment.StatusReview, Remarks: "again"})
		}, classUnreviewed, "2 log rows into REVIEW"},
		{"another transaction", func(o *payment.Order) { o.TransactionID = "4200010" }, classUnreviewed, "WeChat's is " + tx},
		{"the order's amount as paid_fen", func(o *payment.Order) { o.PaidFen = 500 }, classUnreviewed, "paid_fen 500, WeChat took 512"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := reviewed()
			tt.change(&o)
			v := arranged(verdict{OutTradeNo: o.OutTradeNo}, o, pl, tx)
			if v.Class != tt.class || !strings.Contains(v.Detail, tt.detail) {
				t.Fatalf("arranged = %s %q, want %s mentioning %q", v.Class, v.Detail, tt.class, tt.detail)
			}
		})
	}
}
