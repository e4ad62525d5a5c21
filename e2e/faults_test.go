package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/sim"
)

// faultTrade makes the sandbox answer the next calls about a trade with
// a fault instead of the real answer.
func (d *deployment) faultTrade(t *testing.T, no, call, kind string, times int) {
	t.Helper()
	if code := do(t, http.MethodPost, d.simURL+"/sim/faults", sim.FaultRule{Call: call, Kind: kind, Times: times, OutTradeNo: no}, nil); code/100 != 2 {
		t.Fatalf("POST /sim/faults = %d", code)
	}
}

// A confirming order query that gets no trustworthy answer for a while, in
// every way WeChat or the wire can fail, keeps asking; once WeChat answers,
// the order is PAID once, and never went to REVIEW or CLOSED on the way.
func TestConfirmationThroughFaultsPaysNeverReviews(t *testing.T) {
	for _, tc := range []struct {
		d     *deployment
		kind  string
		times int
	}{
		// v3: every way an answer can fail to be WeChat's signed word.
		{st.v3, sim.FaultSystemError, 3},
		{st.v3, sim.FaultUnavailable, 3},
		{st.v3, sim.FaultAccepted, 3},
		{st.v3, sim.FaultForbidden, 3},
		{st.v3, sim.FaultNotFound, 3},
		{st.v3, sim.FaultUnsignedDecision, 3},
		{st.v3, sim.FaultBadSignature, 3},
		{st.v3, sim.FaultSystemErrorUnsigned, 3},
		// These wait longer between attempts (a rate limit, our keys or
		// clock): fewer of them.
		{st.v3, sim.FaultRateLimited, 1},
		{st.v3, sim.FaultUnknownKey, 1},
		{st.v3, sim.FaultClockSkew, 1},
		// v2.
		{st.v2, sim.FaultSystemErrorUnsigned, 3},
		{st.v2, sim.FaultUnsignedDecision, 3},
		{st.v2, sim.FaultBadSignature, 3},
		{st.v2, sim.FaultUnavailable, 3},
	} {
		t.Run(tc.d.name+" "+tc.kind, func(t *testing.T) {
			t.Parallel()
			d := tc.d
			no := uniqueNo("FAULT")
			d.createOrder(t, no, 1500)
			call := "v3.query"
			if d == st.v2 {
				call = "v2.orderquery"
			}
			d.faultTrade(t, no, call, tc.kind, tc.times)
			paid := d.simPay(t, map[string]any{"out_trade_no": no, "amount_fen": 1500})
			eventually(t, 3*time.Minute, "order "+no+" to be PAID", func() bool {
				o := d.getOrder(t, no)
				if o.Status == payment.StatusReview || o.Status == payment.StatusClosed {
					t.Fatalf("a fault decided the order: %s, logs %+v", o.Status, o.Logs)
				}
				return o.Status == payment.StatusPaid
			})
			o := d.getOrder(t, no)
			assertPaidOnce(t, o, paid.TransactionID)
			for _, l := range o.Logs {
				if l.ToStatus == payment.StatusReview || strings.Contains(l.Remarks, "review") {
					t.Fatalf("a REVIEW on the way: %+v", o.Logs)
				}
			}
		})
	}
}
