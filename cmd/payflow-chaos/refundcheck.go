package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/payflow/payflow/internal/invariant"
	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/sim"
	"github.com/payflow/payflow/store"
)

// refundFindings is what the checks of refunds found, here and at WeChat
// (the sandbox's own books: GET /sim/refunds and /sim/refunds/{no}).
type refundFindings struct {
	Orders   int // orders with a refund recorded here
	Refunds  int // refunds recorded here
	ByStatus map[payment.RefundStatus]int
	Portal   int // of them, made in the merchant portal
	Refunded int // orders REFUNDED
	LogRows  int // refund outcome rows in the order logs

	AtWeChat    int // refunds WeChat has for the run's orders
	Applies     int // refund requests WeChat got for them
	Deliveries  int // refund notifications WeChat made
	Attempts    int // their attempts
	Undelivered int // given up, or still being retried

	RefundNotifications, PaymentNotifications int // in the audit trails
	Unexamined                                int // acknowledged, never examined by the order's workflow

	// Delays from a refund's acceptance here to its execution at WeChat,
	// for the API refunds not answered NOT_ENOUGH on purpose.
	Delays []time.Duration
	// Late are those executed more than lateRefund after acceptance: no
	// invariant is broken, but the refund waited (see docs/chaos.md).
	Late []issue

	Violations []issue
}

// lateRefund is how long after its acceptance here a refund may reach
// WeChat before it is listed as late: the workflow's backoffs after faults
// (10 s doubling) and the process kills account for up to a few minutes.
const lateRefund = 3 * time.Minute

func (f *refundFindings) bad(no, refundNo, format string, args ...any) {
	f.Violations = append(f.Violations, issue{OutTradeNo: no, OutRefundNo: refundNo, What: fmt.Sprintf(format, args...)})
}

// simRefunds reads WeChat's refunds: the summary and each refund.
func (p *payer) simRefunds(ctx context.Context) (sim.RefundSummary, map[string]sim.RefundView, error) {
	var sum sim.RefundSummary
	status, body, err := p.do(ctx, http.MethodGet, p.d.SimURL+"/sim/refunds", nil, &sum)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("GET /sim/refunds: %d %s", status, body)
	}
	if err != nil {
		return sum, nil, err
	}
	views := make(map[string]sim.RefundView, len(sum.Executions))
	for no := range sum.Executions {
		var v sim.RefundView
		status, body, err := p.do(ctx, http.MethodGet, p.d.SimURL+"/sim/refunds/"+no, nil, &v)
		if err == nil && status != http.StatusOK {
			err = fmt.Errorf("GET /sim/refunds/%s: %d %s", no, status, body)
		}
		if err != nil {
			return sum, nil, err
		}
		views[no] = v
	}
	return sum, views, nil
}

// refundLogKeys reads the idempotency keys of the refund outcome rows,
// "refund:{out_refund_no}:{status}": by out_refund_no, the statuses with a
// row and the order each row is on.
func (c *checker) refundLogKeys(ctx context.Context) (map[string]map[payment.RefundStatus]string, error) {
	rows, err := c.db.Query(ctx, `SELECT out_trade_no, idempotency_key FROM order_logs WHERE idempotency_key LIKE 'refund:%'`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	keys := map[string]map[payment.RefundStatus]string{}
	for rows.Next() {
		var no, key string
		if err := rows.Scan(&no, &key); err != nil {
			return nil, err
		}
		rest := strings.TrimPrefix(key, "refund:")
		i := strings.LastIndexByte(rest, ':')
		if i < 0 {
			return nil, fmt.Errorf("refund log key %q of %s has no status", key, no)
		}
		refundNo, status := rest[:i], payment.RefundStatus(rest[i+1:])
		if keys[refundNo] == nil {
			keys[refundNo] = map[payment.RefundStatus]string{}
		}
		keys[refundNo][status] = no
	}
	return keys, rows.Err()
}

// checkRefunds checks the refunds of every order paid at the sim, here
// against WeChat's books and against what the run asked for:
//   - WeChat executed each refund once, under the number it was asked
//     under, and holds none this service does not know;
//   - no trade is refunded beyond its total at WeChat, and our
//     refunded_fen is WeChat's, the sum of the SUCCESS refunds, within what
//     was paid; REFUNDED exactly when that sum is what was paid
//     (invariant.RefundsAddUp);
//   - every refund is final (SUCCESS, CLOSED, FAILED) as WeChat says, or
//     ABNORMAL while WeChat says so too, and ends as its sandbox switches
//     say it must;
//   - one log row per refund outcome;
//   - every notification the api acknowledged was examined by the order's
//     workflow;
//   - a refund answered 409 is recorded nowhere and never reached WeChat.
func checkRefunds(ctx context.Context, c *checker, p *payer, plans []plan, outs []outcome) (refundFindings, error) {
	f := refundFindings{ByStatus: map[payment.RefundStatus]int{}}
	sum, views, err := p.simRefunds(ctx)
	if err != nil {
		return f, err
	}
	keys, err := c.refundLogKeys(ctx)
	if err != nil {
		return f, err
	}

	ours := map[string]payment.Refund{} // every refund recorded here, by out_refund_no
	for i, o := range outs {
		if o.TransactionID == "" {
			continue
		}
		order, err := c.store.GetOrder(ctx, o.OutTradeNo)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				continue // lost: the payment's check says so
			}
			return f, err
		}
		checkOrderRefunds(&f, order, plans[i], sum, views, keys, ours)
	}
	checkWeChatRefunds(&f, sum, views, ours)
	return f, nil
}

// checkWeChatRefunds checks WeChat's side: every refund it holds, against
// ours (every refund recorded here, by out_refund_no).
func checkWeChatRefunds(f *refundFindings, sum sim.RefundSummary, views map[string]sim.RefundView, ours map[string]payment.Refund) {
	for no, v := range views {
		f.AtWeChat++
		f.Applies += v.Applies
		if n := sum.Executions[no]; n != 1 {
			f.bad(v.OutTradeNo, no, "WeChat executed it %d times", n)
		}
		r, ok := ours[no]
		switch {
		case !ok:
			f.bad(v.OutTradeNo, no, "WeChat has it (%d fen, %s, source %s), this service does not", v.AmountFen, v.Status, v.Source)
		case r.OutTradeNo != v.OutTradeNo || r.AmountFen != v.AmountFen:
			f.bad(v.OutTradeNo, no, "WeChat has it of %s for %d fen, here of %s for %d fen", v.OutTradeNo, v.AmountFen, r.OutTradeNo, r.AmountFen)
		case (v.Source == "VENDOR_PLATFORM") != (r.Source == payment.RefundSourcePortal):
			f.bad(v.OutTradeNo, no, "WeChat's source is %s, recorded here as %s", v.Source, r.Source)
		}
		for _, d := range v.Deliveries {
			f.Deliveries++
			f.Attempts += len(d.Attempts)
			if !d.Delivered {
				f.Undelivered++
				f.bad(v.OutTradeNo, no, "WeChat's notification %d was never acknowledged (%d attempts, done %v)", d.ID, len(d.Attempts), d.Done)
			}
		}
	}
	for no, t := range sum.Trades {
		if t.RequestedFen > t.TotalFen {
			f.bad(no, "", "WeChat holds refunds of %d fen of a %d fen trade", t.RequestedFen, t.TotalFen)
		}
	}
}

// checkOrderRefunds checks one order's refunds, as the api shows the order
// (o), against what the run asked for (pl), WeChat's books (sum, views)
// and the refund outcome log rows (keys); ours collects its refunds.
func checkOrderRefunds(f *refundFindings, o payment.Order, pl plan, sum sim.RefundSummary,
	views map[string]sim.RefundView, keys map[string]map[payment.RefundStatus]string, ours map[string]payment.Refund) {
	no := o.OutTradeNo
	for _, n := range o.Notifications {
		if n.Kind == payment.KindRefund {
			f.RefundNotifications++
		} else {
			f.PaymentNotifications++
		}
		if n.ExaminedAt == nil && n.Kind != payment.KindOther {
			f.Unexamined++
			f.bad(no, "", "notification %s (%s, %s) acknowledged (%s), never examined", n.ID, kindName(n.Kind), n.EventType, n.Outcome)
		}
	}
	if len(o.Refunds) > 0 {
		f.Orders++
	}
	if o.Status == payment.StatusRefunded {
		f.Refunded++
	}
	if err := invariant.RefundsAddUp(o); err != nil {
		f.bad(no, "", "%v", err)
	}
	if t, ok := sum.Trades[no]; ok && t.RefundedFen != o.RefundedFen {
		f.bad(no, "", "WeChat refunded %d fen, refunded_fen here is %d", t.RefundedFen, o.RefundedFen)
	} else if !ok && o.RefundedFen != 0 {
		f.bad(no, "", "WeChat refunded nothing, refunded_fen here is %d", o.RefundedFen)
	}

	notEnough := map[string]bool{}
	if pl.Refunds != nil {
		for _, st := range pl.Refunds.Steps {
			notEnough[st.No] = st.Kind == refundNotEnough
		}
	}
	here := map[string]payment.Refund{}
	for _, r := range o.Refunds {
		here[r.OutRefundNo] = r
		ours[r.OutRefundNo] = r
		f.Refunds++
		f.ByStatus[r.Status]++
		if r.Source == payment.RefundSourcePortal {
			f.Portal++
		}
		v, atWeChat := views[r.OutRefundNo]
		if atWeChat && r.Source == payment.RefundSourceAPI && !notEnough[r.OutRefundNo] {
			d := v.CreatedAt.Sub(r.CreatedAt)
			f.Delays = append(f.Delays, d)
			if d > lateRefund {
				f.Late = append(f.Late, issue{OutTradeNo: no, OutRefundNo: r.OutRefundNo,
					What: fmt.Sprintf("accepted here %s, executed at WeChat %s later", r.CreatedAt.Format("15:04:05.000"), d.Round(time.Second))})
			}
		}
		switch {
		case r.Status == payment.RefundProcessing:
			f.bad(no, r.OutRefundNo, "still PROCESSING here (%s); WeChat: %s", r.Source, orNone(v.Status))
		case !atWeChat && r.Status != payment.RefundFailed:
			f.bad(no, r.OutRefundNo, "%s here (%s), WeChat never had it", r.Status, r.Source)
		case atWeChat && r.Status == payment.RefundFailed:
			f.bad(no, r.OutRefundNo, "FAILED here (%s), WeChat executed it: %s", r.Detail, v.Status)
		case atWeChat && r.Status == payment.RefundAbnormal && v.Status != string(payment.RefundAbnormal):
			f.bad(no, r.OutRefundNo, "ABNORMAL here, WeChat says %s", v.Status)
		case atWeChat && r.Status != payment.RefundAbnormal && string(r.Status) != v.Status:
			f.bad(no, r.OutRefundNo, "%s here, WeChat says %s", r.Status, v.Status)
		}
		// One log row per outcome: the final status, and ABNORMAL if
		// WeChat took it through ABNORMAL; none while PROCESSING.
		rows := keys[r.OutRefundNo]
		f.LogRows += len(rows)
		for s, on := range rows {
			switch {
			case on != no:
				f.bad(no, r.OutRefundNo, "its %s log row is on order %s", s, on)
			case s != r.Status && !(s == payment.RefundAbnormal && atWeChat && v.Options.Outcome == string(payment.RefundAbnormal)):
				f.bad(no, r.OutRefundNo, "a log row for %s, the refund is %s", s, r.Status)
			}
		}
		if _, ok := rows[r.Status]; !ok && r.Status != payment.RefundProcessing {
			f.bad(no, r.OutRefundNo, "%s without its log row", r.Status)
		}
		if named := logsNaming(o, r.OutRefundNo); named != len(rows) {
			f.bad(no, r.OutRefundNo, "the order's log names it in %d rows, %d outcomes were recorded", named, len(rows))
		}
	}

	// What the run asked for.
	s := pl.Refunds
	if s == nil {
		if len(o.Refunds) > 0 {
			f.bad(no, "", "%d refunds recorded, the run asked for none", len(o.Refunds))
		}
		return
	}
	complete := true
	for _, st := range s.Steps {
		r, ok := here[st.No]
		if !ok {
			complete = false
			continue // not asked (the order never paid here in time), or refused: the run said so then
		}
		want := st.Kind.want()
		switch {
		case r.Status != want:
			complete = false
			f.bad(no, st.No, "%s refund (%s) is %s, want %s (%s)", st.Kind, yuan(st.AmountFen), r.Status, want, r.Detail)
		case r.AmountFen != st.AmountFen:
			f.bad(no, st.No, "recorded for %d fen, asked for %d", r.AmountFen, st.AmountFen)
		case (st.Kind == refundPortal) != (r.Source == payment.RefundSourcePortal):
			f.bad(no, st.No, "%s refund recorded with source %s", st.Kind, r.Source)
		}
	}
	if complete && s.Full != (o.Status == payment.StatusRefunded) {
		f.bad(no, "", "the run refunded %s of %s in full=%v, the order is %s", yuan(o.RefundedFen), yuan(s.PaidFen), s.Full, o.Status)
	}
	if s.ExceedNo != "" {
		if r, ok := here[s.ExceedNo]; ok {
			f.bad(no, s.ExceedNo, "answered 409, yet recorded (%s)", r.Status)
		}
		if _, ok := views[s.ExceedNo]; ok {
			f.bad(no, s.ExceedNo, "answered 409, yet sent to WeChat")
		}
	}
}

// logsNaming counts the order's log rows that name refundNo.
func logsNaming(o payment.Order, refundNo string) int {
	n := 0
	for _, l := range o.Logs {
		if slices.Contains(strings.Fields(l.Remarks), refundNo) {
			n++
		}
	}
	return n
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func kindName(k payment.Kind) string {
	if k == payment.KindPayment {
		return "payment"
	}
	return string(k)
}

// yuan formats fen as ¥12.34.
func yuan(fen int64) string { return fmt.Sprintf("¥%d.%02d", fen/100, fen%100) }
