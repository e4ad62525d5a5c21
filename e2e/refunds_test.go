package e2e

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/sim"
	"github.com/payflow/payflow/store"
	"github.com/payflow/payflow/workflows"
)

// paidOrder creates an order and pays it through the sandbox.
func (d *deployment) paidOrder(t *testing.T, prefix string, amount int64) (string, simTrade) {
	t.Helper()
	no := uniqueNo(prefix)
	d.createOrder(t, no, amount)
	paid := d.simPay(t, map[string]any{"out_trade_no": no, "amount_fen": amount})
	d.waitStatus(t, no, payment.StatusPaid)
	return no, paid
}

func (d *deployment) refund(t *testing.T, no string, body map[string]any) (int, payment.Refund) {
	t.Helper()
	var r payment.Refund
	code := do(t, http.MethodPost, d.apiURL+"/orders/"+no+"/refunds", body, &r)
	return code, r
}

func (d *deployment) waitRefund(t *testing.T, no, refundNo string, want payment.RefundStatus) payment.Refund {
	t.Helper()
	var r payment.Refund
	eventually(t, 60*time.Second, "refund "+refundNo+" to be "+string(want), func() bool {
		if code := do(t, http.MethodGet, d.apiURL+"/orders/"+no+"/refunds/"+refundNo, nil, &r); code != http.StatusOK {
			t.Fatalf("GET refund = %d", code)
		}
		return r.Status == want
	})
	return r
}

func (d *deployment) simRefunds(t *testing.T) sim.RefundSummary {
	t.Helper()
	var s sim.RefundSummary
	if code := do(t, http.MethodGet, d.simURL+"/sim/refunds", nil, &s); code != http.StatusOK {
		t.Fatalf("GET /sim/refunds = %d", code)
	}
	return s
}

func (d *deployment) simRefundOptions(t *testing.T, refundNo string, opts map[string]any) {
	t.Helper()
	if code := do(t, http.MethodPost, d.simURL+"/sim/refunds/"+refundNo+"/options", opts, nil); code/100 != 2 {
		t.Fatalf("POST /sim/refunds/%s/options = %d", refundNo, code)
	}
}

func refundLogs(o payment.Order, refundNo string) []payment.Log {
	var out []payment.Log
	for _, l := range o.Logs {
		if strings.Contains(l.Remarks, refundNo) {
			out = append(out, l)
		}
	}
	return out
}

// A partial refund leaves the order PAID, a second for the rest makes it
// REFUNDED; each is asked of WeChat once, confirmed by WeChat's query, and
// writes one log row; WeChat's own books agree.
func TestRefundPartialThenFull(t *testing.T) {
	d := st.v3
	no, _ := d.paidOrder(t, "REFUND", 1000)

	code, r1 := d.refund(t, no, map[string]any{"out_refund_no": "R1-" + no, "amount_fen": 300, "reason": "one item missing"})
	if code != http.StatusCreated || r1.Status != payment.RefundProcessing || r1.Source != payment.RefundSourceAPI || r1.SuccessTime != nil {
		t.Fatalf("first refund = %d %+v", code, r1)
	}
	// The same request again is the same refund; another amount is not.
	if code, again := d.refund(t, no, map[string]any{"out_refund_no": "R1-" + no, "amount_fen": 300}); code != http.StatusOK || again.OutRefundNo != r1.OutRefundNo {
		t.Fatalf("repeat = %d %+v", code, again)
	}
	if code, _ := d.refund(t, no, map[string]any{"out_refund_no": "R1-" + no, "amount_fen": 301}); code != http.StatusConflict {
		t.Fatalf("same number, other amount = %d, want 409", code)
	}
	if code, _ := d.refund(t, no, map[string]any{"amount_fen": 701}); code != http.StatusConflict {
		t.Fatalf("more than is left = %d, want 409", code)
	}
	r1 = d.waitRefund(t, no, "R1-"+no, payment.RefundSuccess)
	if r1.RefundID == "" || r1.SuccessTime == nil {
		t.Fatalf("refund after SUCCESS = %+v", r1)
	}
	o := d.getOrder(t, no)
	if o.Status != payment.StatusPaid || o.RefundedFen != 300 || len(o.Refunds) != 1 {
		t.Fatalf("order after a partial refund = %s, refunded %d, refunds %d", o.Status, o.RefundedFen, len(o.Refunds))
	}

	code, r2 := d.refund(t, no, map[string]any{"amount_fen": 700})
	if code != http.StatusCreated || r2.OutRefundNo == "" {
		t.Fatalf("second refund = %d %+v", code, r2)
	}
	d.waitRefund(t, no, r2.OutRefundNo, payment.RefundSuccess)
	o = d.waitStatus(t, no, payment.StatusRefunded)
	if o.RefundedFen != 1000 {
		t.Fatalf("refunded_fen = %d", o.RefundedFen)
	}
	for _, rn := range []string{r1.OutRefundNo, r2.OutRefundNo} {
		if logs := refundLogs(o, rn); len(logs) != 1 {
			t.Fatalf("log rows naming %s = %+v, want one", rn, logs)
		}
	}
	if last := o.Logs[len(o.Logs)-1]; last.FromStatus != payment.StatusPaid || last.ToStatus != payment.StatusRefunded {
		t.Fatalf("last log = %+v", last)
	}
	if code, _ := d.refund(t, no, map[string]any{"amount_fen": 1}); code != http.StatusConflict {
		t.Fatalf("refund of a REFUNDED order = %d, want 409", code)
	}
	// WeChat's side: each refund executed once, never beyond the trade.
	s := d.simRefunds(t)
	for _, rn := range []string{r1.OutRefundNo, r2.OutRefundNo} {
		if s.Executions[rn] != 1 {
			t.Fatalf("WeChat executed %s %d times", rn, s.Executions[rn])
		}
	}
	if tr := s.Trades[no]; tr.RefundedFen != 1000 || tr.RequestedFen > tr.TotalFen {
		t.Fatalf("WeChat's refunds of the trade = %+v", tr)
	}
}

// Bad input and unknown orders are refused before anything reaches WeChat.
func TestRefundRejections(t *testing.T) {
	d := st.v3
	no, _ := d.paidOrder(t, "REFUNDBAD", 500)
	for _, body := range []string{
		`{"amount_fen":0}`, `{"amount_fen":1.5}`, `{"amount_fen":"1"}`, `{"amount_fen":1,"out_refund_no":"bad refund no"}`,
		`{"amount_fen":1,"reason":"` + strings.Repeat("x", 81) + `"}`, `{"amount_fen":1}{}`, `{"amount_fen":1,"extra":1}`,
	} {
		if code := doRaw(t, http.MethodPost, d.apiURL+"/orders/"+no+"/refunds", body); code != http.StatusBadRequest {
			t.Fatalf("refund %s = %d, want 400", body, code)
		}
	}
	if code, _ := d.refund(t, uniqueNo("NOSUCH"), map[string]any{"amount_fen": 1}); code != http.StatusNotFound {
		t.Fatalf("refund of an unknown order = %d, want 404", code)
	}
	pending := uniqueNo("REFUNDPEND")
	d.createOrder(t, pending, 100)
	if code, _ := d.refund(t, pending, map[string]any{"amount_fen": 1}); code != http.StatusConflict {
		t.Fatalf("refund of an unpaid order = %d, want 409", code)
	}
	if code := do(t, http.MethodGet, d.apiURL+"/orders/"+no+"/refunds/NOSUCHREFUND", nil, nil); code != http.StatusNotFound {
		t.Fatalf("GET unknown refund = %d", code)
	}
	if s := d.simRefunds(t); s.Trades[no].Refunds != 0 || s.Trades[pending].Refunds != 0 {
		t.Fatalf("rejected refunds reached WeChat: %+v", s.Trades)
	}
}

// WeChat's ambiguous case: it executes the refund but answers 500. The
// workflow queries before asking again, so WeChat refunds once.
func TestRefundSystemErrorAfterAcceptRefundsOnce(t *testing.T) {
	d := st.v3
	no, _ := d.paidOrder(t, "REFUNDAMB", 800)
	rn := "RA-" + no
	d.simRefundOptions(t, rn, map[string]any{"system_error_after_accept": true})
	if code, _ := d.refund(t, no, map[string]any{"out_refund_no": rn, "amount_fen": 800}); code != http.StatusCreated {
		t.Fatalf("refund = %d", code)
	}
	d.waitRefund(t, no, rn, payment.RefundSuccess)
	d.waitStatus(t, no, payment.StatusRefunded)
	if s := d.simRefunds(t); s.Executions[rn] != 1 {
		t.Fatalf("WeChat executed the refund %d times (asked %d)", s.Executions[rn], s.Applies[rn])
	}
}

// ABNORMAL is shown, and followed until WeChat settles it.
func TestRefundAbnormalThenSuccess(t *testing.T) {
	d := st.v3
	no, _ := d.paidOrder(t, "REFUNDABN", 600)
	rn := "RB-" + no
	// PROCESSING, then ABNORMAL, each for 3 s (3000 s scaled by the
	// sandbox's SIM_TIME_SCALE of 0.001), then SUCCESS.
	d.simRefundOptions(t, rn, map[string]any{"outcome": "ABNORMAL", "then": "SUCCESS", "processing": "3000s"})
	if code, _ := d.refund(t, no, map[string]any{"out_refund_no": rn, "amount_fen": 200}); code != http.StatusCreated {
		t.Fatalf("refund = %d", code)
	}
	d.waitRefund(t, no, rn, payment.RefundAbnormal)
	d.waitRefund(t, no, rn, payment.RefundSuccess)
	o := d.getOrder(t, no)
	if logs := refundLogs(o, rn); len(logs) != 2 {
		t.Fatalf("log rows for %s = %+v, want ABNORMAL then SUCCESS", rn, logs)
	}
}

// A refund made in the merchant portal (WeChat notifies it in v2 XML, even
// to a merchant on v3) is recorded on its order as merchant_portal and
// confirmed by WeChat's refund query.
func TestPortalRefundRecorded(t *testing.T) {
	d := st.v3
	no, _ := d.paidOrder(t, "PORTAL", 900)
	var pr struct {
		OutRefundNo string `json:"out_refund_no"`
	}
	if code := do(t, http.MethodPost, d.simURL+"/sim/refunds", map[string]any{"out_trade_no": no, "amount_fen": 250}, &pr); code/100 != 2 {
		t.Fatalf("portal refund at the sandbox = %d", code)
	}
	var o payment.Order
	eventually(t, 60*time.Second, "the portal refund to be recorded and confirmed", func() bool {
		o = d.getOrder(t, no)
		return len(o.Refunds) == 1 && o.Refunds[0].Status == payment.RefundSuccess
	})
	r := o.Refunds[0]
	if r.Source != payment.RefundSourcePortal || r.AmountFen != 250 || o.RefundedFen != 250 || o.Status != payment.StatusPaid {
		t.Fatalf("order = %s refunded %d, refund %+v", o.Status, o.RefundedFen, r)
	}
	if pr.OutRefundNo != "" && r.OutRefundNo != pr.OutRefundNo {
		t.Fatalf("recorded %s, the portal made %s", r.OutRefundNo, pr.OutRefundNo)
	}
	if s := d.simRefunds(t); s.Executions[r.OutRefundNo] != 1 {
		t.Fatalf("WeChat executed the portal refund %d times", s.Executions[r.OutRefundNo])
	}
}

// A payment after close is in REVIEW with its transaction; refunding it
// (here by resolving the review) settles it: REFUNDED.
func TestRefundSettlesPaidAfterClose(t *testing.T) {
	d := st.v3
	no := uniqueNo("REFUNDPAC")
	d.createPrepaid(t, map[string]any{"out_trade_no": no, "amount_fen": 450, "description": "late", "trade_type": "NATIVE", "timeout_seconds": 3})
	d.waitStatus(t, no, payment.StatusClosed)
	d.simPay(t, map[string]any{"out_trade_no": no, "force": true})
	o := d.waitStatus(t, no, payment.StatusReview)
	if o.TransactionID == "" {
		t.Fatalf("REVIEW order without its transaction: %+v", o)
	}
	if code := do(t, http.MethodPost, d.apiURL+"/orders/"+no+"/resolve", map[string]any{
		"action": "refund", "operator": "carol", "reason": "paid after the order expired; the customer wants the money back",
	}, &o); code != http.StatusOK {
		t.Fatalf("resolve by refund = %d", code)
	}
	o = d.waitStatus(t, no, payment.StatusRefunded)
	if o.RefundedFen != 450 || len(o.Refunds) != 1 {
		t.Fatalf("order = %+v", o)
	}
	found := false
	for _, l := range o.Logs {
		if strings.Contains(l.Remarks, "carol") && strings.Contains(l.Remarks, o.Refunds[0].OutRefundNo) {
			found = true
		}
	}
	if !found {
		t.Fatalf("no log row says who resolved it by which refund: %+v", o.Logs)
	}
}

// A refund accepted here whose update never reached the running run (lost
// with a crashed Temporal server: committed in PostgreSQL, unknown to the
// run) is taken up by the safety net's next pass, which asks the running
// run to read its open refunds again; the client need not retry.
func TestRefundUnknownToItsRunFollowedBySafetyNet(t *testing.T) {
	d := st.v3
	no, _ := d.paidOrder(t, "REFUNDLOST", 1000)
	// A refund WeChat refuses with NOT_ENOUGH first keeps the order's run
	// alive (it asks again 10 minutes later).
	waiting := "RW-" + no
	d.simRefundOptions(t, waiting, map[string]any{"not_enough": 1})
	if code, _ := d.refund(t, no, map[string]any{"out_refund_no": waiting, "amount_fen": 100}); code != http.StatusCreated {
		t.Fatalf("refund = %d", code)
	}
	eventually(t, 60*time.Second, "the run to wait after WeChat's NOT_ENOUGH", func() bool {
		v, err := st.tc.QueryWorkflow(context.Background(), workflows.WorkflowID(no), "", workflows.QueryState)
		var state workflows.State
		if err != nil || v.Get(&state) != nil {
			return false
		}
		for _, r := range state.Refunds {
			if r.OutRefundNo == waiting && r.Asks >= 1 && r.Status == payment.RefundProcessing && time.Until(r.NextAt) > time.Minute {
				return true
			}
		}
		return false
	})

	// The lost one: accepted in PostgreSQL as the workflow's update would.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := store.Open(ctx, d.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	lost := "RL-" + no
	if _, err := s.AcceptRefund(ctx, store.AcceptRefundParams{MchID: mchID, OutTradeNo: no, OutRefundNo: lost, AmountFen: 300,
		Source: payment.RefundSourceAPI, AcceptedBy: "e2e/a lost update"}); err != nil {
		t.Fatal(err)
	}
	// The safety net leaves a refund younger than RECONCILE_GRACE (2 s in
	// these tests) to the run accepting it, as it does orders and
	// notifications.
	time.Sleep(3 * time.Second)
	runSafetyNet(t, d)
	d.waitRefund(t, no, lost, payment.RefundSuccess)
	if s := d.simRefunds(t); s.Executions[lost] != 1 || s.Executions[waiting] != 0 {
		t.Fatalf("WeChat executed the lost refund %d times, the waiting one %d times (its NOT_ENOUGH wait is not cut short)",
			s.Executions[lost], s.Executions[waiting])
	}
}

// The same refund asked for several times at once is one refund: exactly
// one request is answered 201 (the one that created it), the others 200
// with the same refund, and WeChat refunds it once.
func TestRefundRequestedConcurrently(t *testing.T) {
	d := st.v3
	no, _ := d.paidOrder(t, "REFUNDRACE", 900)
	rn := "RC-" + no
	body := `{"out_refund_no":"` + rn + `","amount_fen":400}`
	const copies = 4
	codes := make(chan int, copies)
	var start sync.WaitGroup
	start.Add(1)
	for range copies {
		go func() {
			start.Wait()
			codes <- postRefund(d.apiURL+"/orders/"+no+"/refunds", body)
		}()
	}
	start.Done()
	got := map[int]int{}
	for range copies {
		got[<-codes]++
	}
	if got[http.StatusCreated] != 1 || got[http.StatusOK] != copies-1 {
		t.Fatalf("answers to %d identical refund requests at once = %v, want one 201 and %d 200", copies, got, copies-1)
	}
	d.waitRefund(t, no, rn, payment.RefundSuccess)
	if o := d.getOrder(t, no); len(o.Refunds) != 1 || o.RefundedFen != 400 {
		t.Fatalf("order after the requests = %d refunds, refunded %d", len(o.Refunds), o.RefundedFen)
	}
	if s := d.simRefunds(t); s.Executions[rn] != 1 {
		t.Fatalf("WeChat executed the refund %d times", s.Executions[rn])
	}
}

// postRefund posts a refund request and returns its status code (0 when
// there was no answer); it may be called from any goroutine.
func postRefund(url, body string) int {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", "application/json")
	authorize(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}
