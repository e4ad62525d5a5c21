package main

import (
	"strings"
	"testing"
	"time"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/sim"
)

// refundFixture is an order paid 1000 fen with three refunds, as they all
// must be at the end of a run: R1 (300, SUCCESS), P2 (200, SUCCESS, made in
// the merchant portal) and R3 (100, ABNORMAL then CLOSED); the run also
// asked X0 for more than was left (409).
type refundFixture struct {
	o     payment.Order
	pl    plan
	sum   sim.RefundSummary
	views map[string]sim.RefundView
	keys  map[string]map[payment.RefundStatus]string
}

func newRefundFixture() *refundFixture {
	const no = "CHAOS100001"
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	refund := func(rn string, fen int64, s payment.RefundStatus, src payment.RefundSource) payment.Refund {
		return payment.Refund{OutRefundNo: rn, OutTradeNo: no, AmountFen: fen, Status: s, Source: src}
	}
	log := func(from, to payment.Status, remarks string) payment.Log {
		return payment.Log{FromStatus: from, ToStatus: to, Remarks: remarks}
	}
	f := &refundFixture{
		o: payment.Order{
			OutTradeNo: no, AmountFen: 1000, PaidFen: 1000, Status: payment.StatusPaid, TransactionID: "4200001", PaidAt: &at,
			RefundedFen: 500,
			Refunds: []payment.Refund{
				refund("R1", 300, payment.RefundSuccess, payment.RefundSourceAPI),
				refund("P2", 200, payment.RefundSuccess, payment.RefundSourcePortal),
				refund("R3", 100, payment.RefundClosed, payment.RefundSourceAPI),
			},
			Logs: []payment.Log{
				log("", payment.StatusPending, "created"),
				log(payment.StatusPending, payment.StatusPaid, "paid by 4200001"),
				log(payment.StatusPaid, payment.StatusPaid, "refund R1 ¥3.00 SUCCESS (refund_id 5001)"),
				log(payment.StatusPaid, payment.StatusPaid, "refund R3 ¥1.00 ABNORMAL (refund_id 5003): needs a person"),
				log(payment.StatusPaid, payment.StatusPaid, "refund P2 ¥2.00 SUCCESS (refund_id 5002) from the merchant portal"),
				log(payment.StatusPaid, payment.StatusPaid, "refund R3 ¥1.00 CLOSED (refund_id 5003)"),
			},
			Notifications: []payment.NotificationRecord{
				{ID: "n1", Outcome: "recorded", ExaminedAt: &at},
				{ID: "n2", Kind: payment.KindRefund, Outcome: "recorded", ExaminedAt: &at},
			},
		},
		pl: plan{OutTradeNo: no, AmountFen: 1000, PaidFen: 1000, Refunds: &refundScript{PaidFen: 1000, ExceedNo: "X0",
			Steps: []refundStep{{No: "R1", AmountFen: 300, Kind: refundSystemError, Repeat: true},
				{No: "R3", AmountFen: 100, Kind: refundAbnormalClosed}, {No: "P2", AmountFen: 200, Kind: refundPortal}}}},
		sum: sim.RefundSummary{Refunds: 3,
			Executions: map[string]int{"R1": 1, "P2": 1, "R3": 1},
			Applies:    map[string]int{"R1": 2, "P2": 1, "R3": 1},
			Trades:     map[string]sim.TradeRefunds{no: {TotalFen: 1000, RefundedFen: 500, RequestedFen: 500, Refunds: 3}},
		},
		views: map[string]sim.RefundView{},
		keys: map[string]map[payment.RefundStatus]string{
			"R1": {payment.RefundSuccess: no},
			"P2": {payment.RefundSuccess: no},
			"R3": {payment.RefundAbnormal: no, payment.RefundClosed: no},
		},
	}
	delivered := []sim.DeliveryView{{ID: 1, Attempts: []sim.Attempt{{HTTPStatus: 204, Accepted: true}}, Done: true, Delivered: true}}
	for _, v := range []sim.RefundView{
		{OutRefundNo: "R1", OutTradeNo: no, AmountFen: 300, Status: "SUCCESS", Source: "API", Applies: 2, Executions: 1,
			Options: sim.RefundOptions{Outcome: "SUCCESS", SystemErrorAfterAccept: true}, Deliveries: delivered},
		{OutRefundNo: "P2", OutTradeNo: no, AmountFen: 200, Status: "SUCCESS", Source: "VENDOR_PLATFORM", Applies: 1, Executions: 1,
			Options: sim.RefundOptions{Outcome: "SUCCESS"}, Deliveries: delivered},
		{OutRefundNo: "R3", OutTradeNo: no, AmountFen: 100, Status: "CLOSED", Source: "API", Applies: 1, Executions: 1,
			Options: sim.RefundOptions{Outcome: "ABNORMAL", Then: "CLOSED"}, Deliveries: delivered},
	} {
		f.views[v.OutRefundNo] = v
	}
	return f
}

func (f *refundFixture) check() refundFindings {
	rf := refundFindings{ByStatus: map[payment.RefundStatus]int{}}
	ours := map[string]payment.Refund{}
	checkOrderRefunds(&rf, f.o, f.pl, f.sum, f.views, f.keys, ours)
	checkWeChatRefunds(&rf, f.sum, f.views, ours)
	return rf
}

func (f *refundFixture) refund(no string) *payment.Refund {
	for i := range f.o.Refunds {
		if f.o.Refunds[i].OutRefundNo == no {
			return &f.o.Refunds[i]
		}
	}
	panic("no refund " + no)
}

func (f *refundFixture) view(no string, change func(v *sim.RefundView)) {
	v := f.views[no]
	change(&v)
	f.views[no] = v
}

// The refund checks pass a run that did everything right, and catch every
// way a refund can go wrong, here or at WeChat.
func TestCheckRefunds(t *testing.T) {
	if rf := newRefundFixture().check(); len(rf.Violations) != 0 || rf.Refunds != 3 || rf.AtWeChat != 3 || rf.LogRows != 4 || rf.Applies != 4 {
		t.Fatalf("a clean order: %+v", rf)
	}
	for _, tt := range []struct {
		name   string
		change func(f *refundFixture)
		want   string
	}{
		{"executed twice at WeChat", func(f *refundFixture) { f.sum.Executions["R1"] = 2 }, "WeChat executed it 2 times"},
		{"a refund at WeChat unknown here", func(f *refundFixture) {
			f.views["R9"] = sim.RefundView{OutRefundNo: "R9", OutTradeNo: f.o.OutTradeNo, AmountFen: 1, Status: "SUCCESS", Source: "API"}
			f.sum.Executions["R9"] = 1
		}, "this service does not"},
		{"another amount at WeChat", func(f *refundFixture) { f.view("R1", func(v *sim.RefundView) { v.AmountFen = 301 }) }, "for 301 fen, here"},
		{"a portal refund recorded as ours", func(f *refundFixture) { f.refund("P2").Source = payment.RefundSourceAPI }, "source is VENDOR_PLATFORM"},
		{"beyond the trade at WeChat", func(f *refundFixture) {
			f.sum.Trades[f.o.OutTradeNo] = sim.TradeRefunds{TotalFen: 1000, RefundedFen: 500, RequestedFen: 1001}
		}, "refunds of 1001 fen of a 1000 fen trade"},
		{"refunded_fen not the SUCCESS refunds", func(f *refundFixture) {
			f.o.RefundedFen = 600
			f.sum.Trades[f.o.OutTradeNo] = sim.TradeRefunds{TotalFen: 1000, RefundedFen: 600, RequestedFen: 600}
		}, "refunded_fen is 600"},
		{"refunded_fen not WeChat's", func(f *refundFixture) {
			f.sum.Trades[f.o.OutTradeNo] = sim.TradeRefunds{TotalFen: 1000, RefundedFen: 300, RequestedFen: 500}
		}, "WeChat refunded 300 fen"},
		{"REFUNDED with part refunded", func(f *refundFixture) { f.o.Status = payment.StatusRefunded }, "REFUNDED with 500 of 1000"},
		{"still processing", func(f *refundFixture) {
			f.refund("R1").Status = payment.RefundProcessing
			f.o.RefundedFen = 200
			delete(f.keys, "R1")
			f.o.Logs = f.o.Logs[:2]
		}, "still PROCESSING"},
		{"another status at WeChat", func(f *refundFixture) { f.view("R3", func(v *sim.RefundView) { v.Status = "SUCCESS" }) }, "CLOSED here, WeChat says SUCCESS"},
		{"ABNORMAL here, WeChat moved on", func(f *refundFixture) {
			f.refund("R3").Status = payment.RefundAbnormal
			delete(f.keys["R3"], payment.RefundClosed)
		}, "ABNORMAL here, WeChat says CLOSED"},
		{"FAILED here, executed at WeChat", func(f *refundFixture) {
			f.refund("R3").Status = payment.RefundFailed
			f.keys["R3"] = map[payment.RefundStatus]string{payment.RefundFailed: f.o.OutTradeNo}
		}, "FAILED here"},
		{"recorded here, never at WeChat", func(f *refundFixture) {
			delete(f.views, "R3")
			delete(f.sum.Executions, "R3")
		}, "WeChat never had it"},
		{"an outcome without its log row", func(f *refundFixture) { delete(f.keys, "R1") }, "SUCCESS without its log row"},
		{"a log row for another status", func(f *refundFixture) { f.keys["R1"][payment.RefundClosed] = f.o.OutTradeNo }, "a log row for CLOSED"},
		{"an ABNORMAL row WeChat never gave", func(f *refundFixture) { f.keys["R1"][payment.RefundAbnormal] = f.o.OutTradeNo }, "a log row for ABNORMAL"},
		{"the order's log names it twice", func(f *refundFixture) {
			f.o.Logs = append(f.o.Logs, payment.Log{FromStatus: payment.StatusPaid, ToStatus: payment.StatusPaid, Remarks: "refund R1 ¥3.00 SUCCESS"})
		}, "names it in 2 rows"},
		{"a notification never examined", func(f *refundFixture) { f.o.Notifications[1].ExaminedAt = nil }, "never examined"},
		{"a notification WeChat gave up on", func(f *refundFixture) {
			f.view("R1", func(v *sim.RefundView) {
				v.Deliveries = []sim.DeliveryView{{ID: 7, Attempts: make([]sim.Attempt, 16), Done: true}}
			})
		}, "never acknowledged"},
		{"not ending as its switch says", func(f *refundFixture) { f.pl.Refunds.Steps[1].Kind = refundAbnormal }, "is CLOSED, want SUCCESS"},
		{"a refund answered 409 recorded", func(f *refundFixture) {
			f.o.Refunds = append(f.o.Refunds, payment.Refund{OutRefundNo: "X0", OutTradeNo: f.o.OutTradeNo, AmountFen: 701, Status: payment.RefundFailed, Source: payment.RefundSourceAPI})
			f.keys["X0"] = map[payment.RefundStatus]string{payment.RefundFailed: f.o.OutTradeNo}
			f.o.Logs = append(f.o.Logs, payment.Log{Remarks: "refund X0 ¥7.01 FAILED"})
		}, "answered 409, yet recorded"},
		{"a refund answered 409 sent to WeChat", func(f *refundFixture) {
			f.views["X0"] = sim.RefundView{OutRefundNo: "X0", OutTradeNo: f.o.OutTradeNo, AmountFen: 701, Status: "SUCCESS", Source: "API"}
			f.sum.Executions["X0"] = 1
		}, "answered 409, yet sent to WeChat"},
		{"refunded in full, not REFUNDED", func(f *refundFixture) { f.pl.Refunds.Full = true }, "full=true, the order is PAID"},
		{"refunds the run never asked for", func(f *refundFixture) { f.pl.Refunds = nil }, "the run asked for none"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newRefundFixture()
			tt.change(f)
			rf := f.check()
			var got []string
			for _, v := range rf.Violations {
				got = append(got, v.OutRefundNo+": "+v.What)
			}
			if !strings.Contains(strings.Join(got, "\n"), tt.want) {
				t.Fatalf("violations %q, want one saying %q", got, tt.want)
			}
		})
	}
}

// A refund that reached WeChat long after it was accepted here is listed
// as late, unless NOT_ENOUGH held it on purpose; a portal refund was never
// accepted here first.
func TestLateRefundsListed(t *testing.T) {
	f := newRefundFixture()
	t0 := time.Date(2026, 11, 26, 15, 19, 23, 0, time.UTC)
	for _, no := range []string{"R1", "P2", "R3"} {
		f.refund(no).CreatedAt = t0
		f.view(no, func(v *sim.RefundView) { v.CreatedAt = t0.Add(10 * time.Minute) })
	}
	f.pl.Refunds.Steps[1].Kind = refundNotEnough // R3
	f.pl.Refunds.Steps[1].NotEnough = 1
	f.view("R3", func(v *sim.RefundView) { v.Options.Outcome, v.Status = "SUCCESS", "SUCCESS" })
	f.refund("R3").Status = payment.RefundSuccess
	rf := f.check()
	if len(rf.Late) != 1 || rf.Late[0].OutRefundNo != "R1" || len(rf.Delays) != 1 {
		t.Fatalf("late %+v, delays %v: want R1 only", rf.Late, rf.Delays)
	}
}
