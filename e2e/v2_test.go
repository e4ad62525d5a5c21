package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	enums "go.temporal.io/api/enums/v1"

	"github.com/payflow/payflow/internal/invariant"
	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/wechatpay/apiv2"
	"github.com/payflow/payflow/workflows"
)

// simTrade is the part of wechatpay-sim's trade view the tests read.
type simTrade struct {
	TransactionID string `json:"transaction_id"`
	TradeState    string `json:"trade_state"`
	Queries       int    `json:"queries"`
	Deliveries    []struct {
		Attempts []struct {
			HTTPStatus int  `json:"http_status"`
			Accepted   bool `json:"accepted"`
		} `json:"attempts"`
		Done      bool `json:"done"`
		Delivered bool `json:"delivered"`
	} `json:"deliveries"`
}

func (d *deployment) createOrder(t *testing.T, no string, amount int64) payment.Order {
	t.Helper()
	var o payment.Order
	if code := do(t, http.MethodPost, d.apiURL+"/orders", map[string]any{
		"out_trade_no": no, "amount_fen": amount, "description": "e2e " + t.Name(),
	}, &o); code != http.StatusCreated {
		t.Fatalf("POST /orders = %d", code)
	}
	return o
}

func (d *deployment) getOrder(t *testing.T, no string) payment.Order {
	t.Helper()
	var o payment.Order
	if code := do(t, http.MethodGet, d.apiURL+"/orders/"+no, nil, &o); code != http.StatusOK {
		t.Fatalf("GET /orders/%s = %d", no, code)
	}
	return o
}

func (d *deployment) simPay(t *testing.T, body map[string]any) simTrade {
	t.Helper()
	var tr simTrade
	if code := do(t, http.MethodPost, d.simURL+"/sim/pay", body, &tr); code != http.StatusOK {
		t.Fatalf("POST /sim/pay = %d", code)
	}
	return tr
}

func (d *deployment) getSimTrade(t *testing.T, no string) simTrade {
	t.Helper()
	var tr simTrade
	if code := do(t, http.MethodGet, d.simURL+"/sim/trades/"+no, nil, &tr); code != http.StatusOK {
		t.Fatalf("GET /sim/trades/%s = %d", no, code)
	}
	return tr
}

func (d *deployment) waitStatus(t *testing.T, no string, want payment.Status) payment.Order {
	t.Helper()
	var o payment.Order
	const timeout = 60 * time.Second
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if o = d.getOrder(t, no); o.Status == want {
			return o
		}
	}
	t.Fatalf("timed out after %s waiting for order %s to be %s\n%s", timeout, no, want, d.explainOrder(o))
	return o
}

// explainOrder says where an order and its workflow stand, for a test that
// waited for it in vain: the order as the api shows it, and the run's
// status, pending work and history length as Temporal describes them.
func (d *deployment) explainOrder(o payment.Order) string {
	var b strings.Builder
	js, _ := json.MarshalIndent(o, "", "  ")
	fmt.Fprintf(&b, "order as the api shows it: %s\n", js)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tc := d.temporal
	if tc == nil {
		tc = st.tc
	}
	desc, err := tc.DescribeWorkflowExecution(ctx, workflows.WorkflowID(o.OutTradeNo), "")
	if err != nil {
		fmt.Fprintf(&b, "describe %s: %v\n", workflows.WorkflowID(o.OutTradeNo), err)
		return b.String()
	}
	info := desc.GetWorkflowExecutionInfo()
	fmt.Fprintf(&b, "workflow %s run %s: %s, history length %d, started %s\n", info.GetExecution().GetWorkflowId(), info.GetExecution().GetRunId(),
		info.GetStatus(), info.GetHistoryLength(), info.GetStartTime().AsTime().Format(time.RFC3339Nano))
	if wt := desc.GetPendingWorkflowTask(); wt != nil {
		fmt.Fprintf(&b, "pending workflow task: %s, scheduled %s, started %s, attempt %d\n", wt.GetState(),
			wt.GetScheduledTime().AsTime().Format(time.RFC3339Nano), wt.GetStartedTime().AsTime().Format(time.RFC3339Nano), wt.GetAttempt())
	}
	for _, a := range desc.GetPendingActivities() {
		fmt.Fprintf(&b, "pending activity %s: %s, attempt %d, last failure %v\n", a.GetActivityType().GetName(), a.GetState(), a.GetAttempt(), a.GetLastFailure())
	}
	// The run's events, and who polls its task queue: a task scheduled and
	// never started is told apart from one a worker took and lost.
	it := tc.GetWorkflowHistory(ctx, info.GetExecution().GetWorkflowId(), info.GetExecution().GetRunId(), false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			fmt.Fprintf(&b, "history: %v\n", err)
			break
		}
		fmt.Fprintf(&b, "  event %d %s %s\n", e.GetEventId(), e.GetEventTime().AsTime().Format(time.RFC3339Nano), e.GetEventType())
	}
	if q := info.GetTaskQueue(); q != "" {
		tq, err := tc.DescribeTaskQueue(ctx, q, enums.TASK_QUEUE_TYPE_WORKFLOW)
		if err != nil {
			fmt.Fprintf(&b, "describe task queue %s: %v\n", q, err)
		}
		for _, p := range tq.GetPollers() {
			fmt.Fprintf(&b, "poller of %s: %s, last access %s\n", q, p.GetIdentity(), p.GetLastAccessTime().AsTime().Format(time.RFC3339Nano))
		}
	}
	return b.String()
}

// waitDelivered waits until every delivery of the trade got a SUCCESS reply.
func (d *deployment) waitDelivered(t *testing.T, no string, deliveries int) simTrade {
	t.Helper()
	var tr simTrade
	eventually(t, 60*time.Second, "notifications to be acknowledged", func() bool {
		tr = d.getSimTrade(t, no)
		if len(tr.Deliveries) < deliveries {
			return false
		}
		for _, d := range tr.Deliveries {
			if !d.Delivered {
				return false
			}
		}
		return true
	})
	return tr
}

// paidLogs are the order's log rows that moved it to PAID.
func paidLogs(o payment.Order) []payment.Log { return invariant.PaidLogs(o) }

// assertPaidOnce fails the test unless the order is PAID (or REFUNDED
// since) exactly once by txid: the check chaos and the benchmark make too.
func assertPaidOnce(t *testing.T, o payment.Order, txid string) {
	t.Helper()
	if err := invariant.PaidOnce(o, txid); err != nil {
		t.Fatalf("order %s is not paid once by %s: %v\n%+v", o.OutTradeNo, txid, err, o)
	}
}

func TestV2HappyPath(t *testing.T) {
	d := st.v2
	no := uniqueNo("HAPPY")
	d.createOrder(t, no, 1234)
	paid := d.simPay(t, map[string]any{"out_trade_no": no, "amount_fen": 1234})
	o := d.waitStatus(t, no, payment.StatusPaid)
	tr := d.waitDelivered(t, no, 1)
	assertPaidOnce(t, o, paid.TransactionID)
	if tr.Queries < 1 {
		t.Fatalf("the workflow never asked WeChat's order query (queries = %d)", tr.Queries)
	}

	// The workflow is visible in Temporal with its search attributes.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run := st.tc.GetWorkflow(ctx, workflows.WorkflowID(no), "")
	var res workflows.PaymentResult
	if err := run.Get(ctx, &res); err != nil {
		t.Fatalf("workflow result: %v", err)
	}
	if res.State.Status != payment.StatusPaid || res.State.TransactionID != paid.TransactionID {
		t.Fatalf("workflow state = %+v", res.State)
	}
	eventually(t, 30*time.Second, "the payment to be found by OutTradeNo and PaymentStatus", func() bool {
		resp, err := st.tc.CountWorkflow(ctx, countRequest(`OutTradeNo="`+no+`" AND PaymentStatus="PAID" AND TransactionId="`+paid.TransactionID+`"`))
		return err == nil && resp.Count == 1
	})
}

func TestV2ConcurrentDuplicatesPayOnce(t *testing.T) {
	d := st.v2
	no := uniqueNo("DUPS")
	d.createOrder(t, no, 500)
	paid := d.simPay(t, map[string]any{"out_trade_no": no, "amount_fen": 500, "duplicates": 9, "concurrent": true, "sign_type": "HMAC-SHA256"})
	tr := d.waitDelivered(t, no, 10)
	o := d.waitStatus(t, no, payment.StatusPaid)
	assertPaidOnce(t, o, paid.TransactionID)
	if len(tr.Deliveries) != 10 {
		t.Fatalf("deliveries = %d, want 10", len(tr.Deliveries))
	}
}

func TestV2LateDuplicateAfterCompletion(t *testing.T) {
	d := st.v2
	no := uniqueNo("LATE")
	d.createOrder(t, no, 800)
	paid := d.simPay(t, map[string]any{"out_trade_no": no, "amount_fen": 800})
	d.waitDelivered(t, no, 1)
	before := d.waitStatus(t, no, payment.StatusPaid)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	desc, err := st.tc.DescribeWorkflowExecution(ctx, workflows.WorkflowID(no), "")
	if err != nil {
		t.Fatal(err)
	}
	firstRun := desc.GetWorkflowExecutionInfo().GetExecution().GetRunId()
	eventually(t, 30*time.Second, "the workflow to complete", func() bool {
		desc, err := st.tc.DescribeWorkflowExecution(ctx, workflows.WorkflowID(no), "")
		return err == nil && desc.GetWorkflowExecutionInfo().GetCloseTime() != nil
	})

	if code := do(t, http.MethodPost, d.simURL+"/sim/trades/"+no+"/notify", nil, nil); code != http.StatusOK && code != http.StatusAccepted {
		t.Fatalf("resend = %d", code)
	}
	tr := d.waitDelivered(t, no, 2)
	last := tr.Deliveries[len(tr.Deliveries)-1]
	if len(last.Attempts) != 1 || last.Attempts[0].HTTPStatus != http.StatusOK {
		t.Fatalf("late duplicate was not acknowledged at once: %+v", last)
	}
	after := d.getOrder(t, no)
	assertPaidOnce(t, after, paid.TransactionID)
	if len(after.Logs) != len(before.Logs) {
		t.Fatalf("late duplicate wrote logs: before %d, after %d", len(before.Logs), len(after.Logs))
	}
	desc, err = st.tc.DescribeWorkflowExecution(ctx, workflows.WorkflowID(no), "")
	if err != nil {
		t.Fatal(err)
	}
	if got := desc.GetWorkflowExecutionInfo().GetExecution().GetRunId(); got != firstRun {
		t.Fatalf("late duplicate started a new workflow run %s (first %s)", got, firstRun)
	}
}

func TestV2ForgedSignatureRejected(t *testing.T) {
	d := st.v2
	no := uniqueNo("FORGED")
	d.createOrder(t, no, 1000)
	// Through the sim: a notification whose amount was changed after signing.
	d.simPay(t, map[string]any{"out_trade_no": no, "amount_fen": 1000, "tamper": "amount"})
	eventually(t, 30*time.Second, "the forged notification to be refused", func() bool {
		tr := d.getSimTrade(t, no)
		return len(tr.Deliveries) == 1 && len(tr.Deliveries[0].Attempts) >= 2
	})
	for _, a := range d.getSimTrade(t, no).Deliveries[0].Attempts {
		if a.Accepted || a.HTTPStatus != http.StatusUnauthorized {
			t.Fatalf("forged notification attempt = %+v, want refused with 401", a)
		}
	}

	// By hand: signed with the wrong key, and for a foreign merchant.
	params := map[string]string{
		"return_code": "SUCCESS", "result_code": "SUCCESS", "appid": appID, "mch_id": mchID,
		"nonce_str": "abc", "out_trade_no": no, "transaction_id": "4200000000000000000000000001",
		"total_fee": "1000", "fee_type": "CNY", "time_end": "20261124120000",
	}
	params["sign"], _ = apiv2.Sign(params, "00000000000000000000000000000000", apiv2.SignTypeMD5)
	if code, body := d.postXML(t, params); code != http.StatusUnauthorized || !strings.Contains(body, "FAIL") {
		t.Fatalf("wrong-key notification = %d %s", code, body)
	}
	params["appid"] = "wx0000000000000000"
	params["sign"], _ = apiv2.Sign(params, apiKey, apiv2.SignTypeMD5)
	if code, body := d.postXML(t, params); code != http.StatusForbidden || !strings.Contains(body, "FAIL") {
		t.Fatalf("foreign-appid notification = %d %s", code, body)
	}
	if code, body := d.postRaw(t, "<xml><return_code>SUCC"); code != http.StatusBadRequest || !strings.Contains(body, "FAIL") {
		t.Fatalf("malformed notification = %d %s", code, body)
	}

	o := d.getOrder(t, no)
	if o.Status != payment.StatusPending || len(o.Logs) != 1 {
		t.Fatalf("forged notifications changed the order: %+v", o)
	}
	// The order's workflow (started with the order) never received them.
	if n := notificationsReceived(t, no); n != 0 {
		t.Fatalf("%d forged notifications reached the workflow", n)
	}
}

func TestV2AmountMismatchGoesToReview(t *testing.T) {
	d := st.v2
	no := uniqueNo("MISMATCH")
	d.createOrder(t, no, 2000)
	// WeChat's order query reports a different amount from the order.
	d.simPay(t, map[string]any{"out_trade_no": no, "amount_fen": 2000, "query_amount_fen": 1})
	o := d.waitStatus(t, no, payment.StatusReview)
	if len(paidLogs(o)) != 0 {
		t.Fatalf("mismatched payment was marked paid: %+v", o)
	}
	// The order keeps WeChat's transaction and what was paid under it, so
	// that the money can be refunded.
	if o.TransactionID == "" || o.PaidFen != 1 {
		t.Fatalf("order in review does not keep the payment: transaction %q, paid %d fen", o.TransactionID, o.PaidFen)
	}
	last := o.Logs[len(o.Logs)-1]
	if last.ToStatus != payment.StatusReview || !strings.Contains(last.Remarks, "amount") {
		t.Fatalf("REVIEW log does not say what differed: %+v", last)
	}
}

func TestV2UnknownOrderRecordedNotCreated(t *testing.T) {
	d := st.v2
	no := uniqueNo("UNKNOWN")
	d.simPay(t, map[string]any{"out_trade_no": no, "amount_fen": 300})
	d.waitDelivered(t, no, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, d.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	eventually(t, 30*time.Second, "the notification to be recorded as unknown_order", func() bool {
		var outcome string
		err := conn.QueryRow(ctx, "select outcome from notifications where out_trade_no = $1", no).Scan(&outcome)
		return err == nil && outcome == "unknown_order"
	})
	if code := do(t, http.MethodGet, d.apiURL+"/orders/"+no, nil, nil); code != http.StatusNotFound {
		t.Fatalf("GET unknown order = %d, want 404", code)
	}
}

func TestV2WorkerKilledMidPaymentPaysOnce(t *testing.T) {
	d := st.v2
	no := uniqueNo("CRASH")
	d.createOrder(t, no, 4321)
	// The query answers NOTPAY twice, so the workflow is mid-payment (between
	// queries) for several seconds.
	paid := d.simPay(t, map[string]any{"out_trade_no": no, "amount_fen": 4321, "query_state": "NOTPAY", "query_state_times": 2})
	eventually(t, 30*time.Second, "the first order query", func() bool { return d.getSimTrade(t, no).Queries >= 1 })
	d.worker.kill()
	if o := d.getOrder(t, no); o.Status != payment.StatusPending {
		t.Fatalf("order = %s before the worker came back", o.Status)
	}
	time.Sleep(time.Second)
	if err := d.worker.start(); err != nil {
		t.Fatal(err)
	}
	o := d.waitStatus(t, no, payment.StatusPaid)
	assertPaidOnce(t, o, paid.TransactionID)
	if q := d.getSimTrade(t, no).Queries; q < 3 {
		t.Fatalf("queries = %d, want the NOTPAY answers to have been retried", q)
	}
}

func TestV2ConcurrentOrdersAllPaid(t *testing.T) {
	d := st.v2
	const n = 8
	var wg sync.WaitGroup
	nos := make([]string, n)
	txids := make([]string, n)
	for i := range n {
		nos[i] = uniqueNo("MANY")
		d.createOrder(t, nos[i], int64(100+i))
	}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			txids[i] = d.simPay(t, map[string]any{"out_trade_no": nos[i], "amount_fen": 100 + i, "duplicates": 2, "concurrent": true}).TransactionID
		}()
	}
	wg.Wait()
	for i := range n {
		assertPaidOnce(t, d.waitStatus(t, nos[i], payment.StatusPaid), txids[i])
	}
}
