package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/jackc/pgx/v5"
	"github.com/payflow/payflow/config"
	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/wechatpay/apiv2"
	"github.com/payflow/payflow/worker"
	"github.com/payflow/payflow/workflows"
)

// runSafetyNet triggers the safety net's schedule and returns that pass's
// result.
func runSafetyNet(t *testing.T, d *deployment) workflows.SafetyNetResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	h := st.tc.ScheduleClient().GetHandle(ctx, workflows.SafetyNetScheduleID(d.taskQueue))
	before := time.Now().Add(-time.Second)
	if err := h.Trigger(ctx, client.ScheduleTriggerOptions{Overlap: enums.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL}); err != nil {
		t.Fatalf("trigger the safety net: %v", err)
	}
	var res workflows.SafetyNetResult
	// A pass ends within its budget (80 % of the 5-minute interval).
	eventually(t, 5*time.Minute, "the triggered safety net pass to finish", func() bool {
		desc, err := h.Describe(ctx)
		if err != nil {
			return false
		}
		for _, a := range desc.Info.RecentActions {
			if a.ActualTime.Before(before) {
				continue
			}
			run := st.tc.GetWorkflow(ctx, a.StartWorkflowResult.WorkflowID, a.StartWorkflowResult.FirstExecutionRunID)
			if run.Get(ctx, &res) == nil {
				return true
			}
		}
		return false
	})
	return res
}

// holdAndKill makes the order's run take a notification (acknowledged to
// WeChat) while no worker runs it, then ends the run without it being
// examined: terminated by an operator, cancelled, or failed (here: timed
// out, the run's limit reached).
func holdAndKill(t *testing.T, d *deployment, no string, send func(), how string) {
	t.Helper()
	d.worker.stop()
	defer func() {
		if err := d.worker.start(); err != nil {
			t.Fatal(err)
		}
	}()
	if how == "timeout" {
		// A run that will fail: replace the order's run with one that has a
		// 3 s limit; the notification joins it (one run per order).
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = st.tc.TerminateWorkflow(ctx, workflows.WorkflowID(no), "", "e2e: replaced by a run that will time out")
		if _, err := st.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID: workflows.WorkflowID(no), TaskQueue: d.taskQueue, WorkflowRunTimeout: 3 * time.Second,
		}, workflows.PaymentWorkflow, workflows.PaymentInput{OutTradeNo: no}); err != nil {
			t.Fatal(err)
		}
	}
	send()
	// The safety net leaves alone what is younger than RECONCILE_GRACE
	// (2 s in these tests): the run may still be taking it.
	time.Sleep(3 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	switch how {
	case "terminate":
		err = st.tc.TerminateWorkflow(ctx, workflows.WorkflowID(no), "", "e2e: an operator terminates the run")
	case "cancel":
		err = st.tc.CancelWorkflow(ctx, workflows.WorkflowID(no), "")
	case "timeout":
		eventually(t, 30*time.Second, "the run to time out", func() bool {
			desc, derr := st.tc.DescribeWorkflowExecution(ctx, workflows.WorkflowID(no), "")
			return derr == nil && desc.GetWorkflowExecutionInfo().GetStatus() == enums.WORKFLOW_EXECUTION_STATUS_TIMED_OUT
		})
	}
	if err != nil {
		t.Fatalf("%s the run: %v", how, err)
	}
}

// examinedAll reports whether every notification of the order was examined.
func examinedAll(o payment.Order) bool {
	if len(o.Notifications) == 0 {
		return false
	}
	for _, n := range o.Notifications {
		if n.ExaminedAt == nil {
			return false
		}
	}
	return true
}

// Every acknowledged notification is examined by its order's workflow, even
// when the run holding it was terminated or cancelled: the safety net hands
// it to a new run. For a PENDING order the payment is then confirmed, for
// a CLOSED one it goes to REVIEW (paid after close), and a PAID order stays
// PAID once.
func TestStrandedNotificationsExamined(t *testing.T) {
	d := st.v2 // queries only after an hour: nothing but the notification pays

	t.Run("PENDING, run terminated", func(t *testing.T) {
		no := uniqueNo("STRANDP")
		d.createOrder(t, no, 710)
		var paid simTrade
		holdAndKill(t, d, no, func() {
			paid = d.simPay(t, map[string]any{"out_trade_no": no, "amount_fen": 710})
			d.waitDelivered(t, no, 1)
		}, "terminate")
		if o := d.getOrder(t, no); o.Status != payment.StatusPending || examinedAll(o) {
			t.Fatalf("before the safety net: %s, examined %v", o.Status, examinedAll(o))
		}
		id := d.getOrder(t, no).Notifications[0].ID
		t.Logf("stranded notification %s of %s at %s", id, no, time.Now().Format(time.RFC3339Nano))
		res := runSafetyNet(t, d)
		if !contains(res.Handed["notifications"], id) {
			t.Fatalf("safety net handed %v, not the stranded notification %s", res.Handed, id)
		}
		o := d.waitStatus(t, no, payment.StatusPaid)
		assertPaidOnce(t, o, paid.TransactionID)
		eventually(t, 30*time.Second, "the notification to be marked examined", func() bool { return examinedAll(d.getOrder(t, no)) })
	})

	t.Run("PENDING, run failed", func(t *testing.T) {
		no := uniqueNo("STRANDF")
		d.createOrder(t, no, 715)
		var paid simTrade
		holdAndKill(t, d, no, func() {
			paid = d.simPay(t, map[string]any{"out_trade_no": no, "amount_fen": 715})
			d.waitDelivered(t, no, 1)
		}, "timeout")
		runSafetyNet(t, d)
		assertPaidOnce(t, d.waitStatus(t, no, payment.StatusPaid), paid.TransactionID)
		eventually(t, 30*time.Second, "the notification to be marked examined", func() bool { return examinedAll(d.getOrder(t, no)) })
	})

	t.Run("CLOSED, run cancelled", func(t *testing.T) {
		no := uniqueNo("STRANDC")
		if code := do(t, http.MethodPost, d.apiURL+"/orders", map[string]any{
			"out_trade_no": no, "amount_fen": 720, "description": "stranded", "timeout_seconds": 1,
		}, nil); code != http.StatusCreated {
			t.Fatalf("POST /orders = %d", code)
		}
		d.waitStatus(t, no, payment.StatusClosed)
		holdAndKill(t, d, no, func() {
			d.simPay(t, map[string]any{"out_trade_no": no, "amount_fen": 720, "force": true})
			d.waitDelivered(t, no, 1)
		}, "cancel")
		// The cancel is only a request until the restarted worker runs the
		// run's next task; a safety net pass before that hands the
		// notification to the run that is about to end (it would be
		// handed again at the next pass, minutes later).
		eventually(t, 30*time.Second, "the cancelled run to end", func() bool {
			desc, err := st.tc.DescribeWorkflowExecution(context.Background(), workflows.WorkflowID(no), "")
			return err == nil && desc.GetWorkflowExecutionInfo().GetStatus() != enums.WORKFLOW_EXECUTION_STATUS_RUNNING
		})
		runSafetyNet(t, d)
		o := d.waitStatus(t, no, payment.StatusReview)
		if last := o.Logs[len(o.Logs)-1]; !strings.Contains(last.Remarks, "paid after close") {
			t.Fatalf("REVIEW log = %+v", last)
		}
		eventually(t, 30*time.Second, "the notification to be marked examined", func() bool { return examinedAll(d.getOrder(t, no)) })
	})

	t.Run("PAID, run terminated", func(t *testing.T) {
		no := uniqueNo("STRANDD")
		d.createOrder(t, no, 730)
		paid := d.simPay(t, map[string]any{"out_trade_no": no, "amount_fen": 730})
		d.waitStatus(t, no, payment.StatusPaid)
		eventually(t, 30*time.Second, "the payment's run to end", func() bool {
			desc, err := st.tc.DescribeWorkflowExecution(context.Background(), workflows.WorkflowID(no), "")
			return err == nil && desc.GetWorkflowExecutionInfo().GetStatus() != enums.WORKFLOW_EXECUTION_STATUS_RUNNING
		})
		// A notification naming another transaction, which WeChat's own
		// query will not confirm: a new run takes it, and is terminated.
		params := map[string]string{"return_code": "SUCCESS", "result_code": "SUCCESS", "appid": appID, "mch_id": mchID,
			"nonce_str": "stranded", "out_trade_no": no, "transaction_id": "4200000000000000000000000001", "total_fee": "730",
			"time_end": "20261126120000", "sign_type": apiv2.SignTypeHMACSHA256}
		params["sign"], _ = apiv2.Sign(params, apiKey, apiv2.SignTypeHMACSHA256)
		holdAndKill(t, d, no, func() {
			if code, body := d.postXML(t, params); code != http.StatusOK {
				t.Fatalf("notification = %d %s", code, body)
			}
		}, "terminate")
		runSafetyNet(t, d)
		eventually(t, 60*time.Second, "the second notification to be examined", func() bool { return examinedAll(d.getOrder(t, no)) })
		assertPaidOnce(t, d.getOrder(t, no), paid.TransactionID)
	})
}

// Every change of an order to REVIEW is counted once, whichever path made
// it, so the alert PayflowOrdersInReview fires for each: a payment after
// close, a second transaction, an unknown order, an amount mismatch.
func TestEveryReviewCounted(t *testing.T) {
	d := st.v2
	series := `payflow_orders_final_total{status="REVIEW"}`
	count := func() float64 {
		return metricValue(t, "http://"+st.v2.workerAddr+"/metrics", series) + metricValue(t, "http://"+st.v3.workerAddr+"/metrics", series)
	}
	before := count()

	// Paid after close.
	closed := uniqueNo("RVCLOSE")
	if code := do(t, http.MethodPost, d.apiURL+"/orders", map[string]any{
		"out_trade_no": closed, "amount_fen": 810, "description": "review path", "timeout_seconds": 1,
	}, nil); code != http.StatusCreated {
		t.Fatalf("POST /orders = %d", code)
	}
	d.waitStatus(t, closed, payment.StatusClosed)
	d.simPay(t, map[string]any{"out_trade_no": closed, "amount_fen": 810, "force": true})
	d.waitStatus(t, closed, payment.StatusReview)

	// Amount mismatch.
	mismatch := uniqueNo("RVAMOUNT")
	d.createOrder(t, mismatch, 820)
	d.simPay(t, map[string]any{"out_trade_no": mismatch, "amount_fen": 820, "query_amount_fen": 1})
	d.waitStatus(t, mismatch, payment.StatusReview)

	// Unknown order.
	unknown := uniqueNo("RVUNKNOWN")
	d.simPay(t, map[string]any{"out_trade_no": unknown, "amount_fen": 830})
	d.waitDelivered(t, unknown, 1)

	// A second transaction for a PAID order: paid again at WeChat (the
	// sim's force pays the trade anew, under a new transaction).
	second := uniqueNo("RVSECOND")
	d.createOrder(t, second, 840)
	d.simPay(t, map[string]any{"out_trade_no": second, "amount_fen": 840})
	d.waitStatus(t, second, payment.StatusPaid)
	d.simPay(t, map[string]any{"out_trade_no": second, "force": true})
	d.waitStatus(t, second, payment.StatusReview)

	eventually(t, 60*time.Second, "four REVIEWs to be counted", func() bool { return count() >= before+4 })
	time.Sleep(2 * time.Second) // and not more: nothing is counted twice
	if got := count(); got != before+4 {
		t.Fatalf("%s went from %v to %v, want +4", series, before, got)
	}
}

// An operator resolves a REVIEW order over HTTP; the log says who, how and
// why.
func TestResolveReviewOverHTTP(t *testing.T) {
	d := st.v2
	no := uniqueNo("RESOLVE")
	d.createOrder(t, no, 900)
	d.simPay(t, map[string]any{"out_trade_no": no, "amount_fen": 900, "query_amount_fen": 899})
	d.waitStatus(t, no, payment.StatusReview)

	for _, bad := range []string{`{"action":"accept_paid"}`, `{"action":"pay","operator":"a","reason":"b"}`, `{"action":"close","operator":"a","reason":"b"}{}`} {
		if code := doRaw(t, http.MethodPost, d.apiURL+"/orders/"+no+"/resolve", bad); code != http.StatusBadRequest {
			t.Fatalf("resolve %s = %d, want 400", bad, code)
		}
	}
	var o payment.Order
	if code := do(t, http.MethodPost, d.apiURL+"/orders/"+no+"/resolve", map[string]any{
		"action": "accept_paid", "operator": "alice@finance", "reason": "customer confirmed the 8.99 payment",
	}, &o); code != http.StatusOK {
		t.Fatalf("resolve = %d", code)
	}
	if o.Status != payment.StatusPaid {
		t.Fatalf("after resolve: %+v", o)
	}
	last := o.Logs[len(o.Logs)-1]
	if last.FromStatus != payment.StatusReview || last.ToStatus != payment.StatusPaid ||
		!strings.Contains(last.Remarks, "alice@finance") || !strings.Contains(last.Remarks, "customer confirmed") {
		t.Fatalf("resolution log = %+v", last)
	}
	// Once resolved it is no longer in REVIEW.
	if code := do(t, http.MethodPost, d.apiURL+"/orders/"+no+"/resolve", map[string]any{
		"action": "close", "operator": "bob", "reason": "again",
	}, nil); code != http.StatusConflict {
		t.Fatalf("second resolve = %d, want 409", code)
	}
}

// A change of the safety net's settings updates its schedule at a worker's
// next start; the same settings change nothing.
func TestSafetyNetScheduleFollowsSettings(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d := st.v2
	h := st.tc.ScheduleClient().GetHandle(ctx, workflows.SafetyNetScheduleID(d.taskQueue))
	desc, err := h.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	action := desc.Schedule.Action.(*client.ScheduleWorkflowAction)
	cfg, err := config.Load(func(k string) string {
		switch k {
		case "WECHATPAY_APPID":
			return appID
		case "WECHATPAY_MCHID":
			return mchID
		case "WECHATPAY_API_KEY":
			return apiKey
		case "TEMPORAL_TASK_QUEUE":
			return action.TaskQueue
		case "RECONCILE_GRACE":
			return "2s"
		case "RECONCILE_INTERVAL":
			return "7m"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := worker.EnsureSafetyNetSchedule(ctx, st.tc, cfg, logger); err != nil {
		t.Fatal(err)
	}
	if desc, err = h.Describe(ctx); err != nil {
		t.Fatal(err)
	}
	if got := desc.Schedule.Spec.Intervals[0].Every; got != 7*time.Minute {
		t.Fatalf("interval after a worker started with RECONCILE_INTERVAL=7m: %s", got)
	}
	// Back to what the deployments run with.
	cfg.ReconcileInterval = 5 * time.Minute
	if err := worker.EnsureSafetyNetSchedule(ctx, st.tc, cfg, logger); err != nil {
		t.Fatal(err)
	}
	if desc, err = h.Describe(ctx); err != nil || desc.Schedule.Spec.Intervals[0].Every != 5*time.Minute {
		t.Fatalf("interval = %v, %v", desc.Schedule.Spec.Intervals, err)
	}
}

// A safety net pass over 2,000 PENDING orders without a workflow covers
// every one in one pass, within its budget (80 % of RECONCILE_INTERVAL),
// paging through them and handing each to a new run.
func TestSafetyNetPassOverThousands(t *testing.T) {
	d := st.v2
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, d.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	prefix := uniqueNo("NET")
	const n = 2000
	rows := make([][]any, n)
	now := time.Now()
	for i := range n {
		rows[i] = []any{fmt.Sprintf("%s%04d", prefix, i), int64(100 + i), "scale", "PENDING",
			now.Add(-10 * time.Minute), now, now.Add(7 * 24 * time.Hour)}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"orders"},
		[]string{"out_trade_no", "amount_fen", "description", "status", "created_at", "updated_at", "expires_at"},
		pgx.CopyFromRows(rows)); err != nil {
		t.Fatal(err)
	}
	defer func() {
		// Not candidates of later passes in the other tests.
		_, _ = conn.Exec(context.Background(), `UPDATE orders SET status = 'CLOSED' WHERE out_trade_no LIKE $1 || '%'`, prefix)
	}()

	start := time.Now()
	res := runSafetyNet(t, d)
	took := time.Since(start)
	handed := 0
	for _, no := range res.Handed["orders"] {
		if strings.HasPrefix(no, prefix) {
			handed++
		}
	}
	t.Logf("one pass: checked %d, handed %d of the %d orders in %s (partial %v)", res.Checked, handed, n, took.Round(time.Millisecond), res.Partial)
	if res.Partial || handed != n {
		t.Fatalf("the pass handed %d of %d orders (partial %v), want all in one pass", handed, n, res.Partial)
	}
	if interval := 5 * time.Minute; took >= interval {
		t.Fatalf("the pass took %s, longer than its interval %s", took, interval)
	}
	// Each now has a run of its own.
	for _, i := range []int{0, n / 2, n - 1} {
		no := fmt.Sprintf("%s%04d", prefix, i)
		desc, err := st.tc.DescribeWorkflowExecution(ctx, workflows.WorkflowID(no), "")
		if err != nil || desc.GetWorkflowExecutionInfo().GetStatus() != enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
			t.Fatalf("order %s has no running workflow: %v", no, err)
		}
	}
	// 2,000 new runs take the dev server (SQLite) a while to start; the
	// tests after this one wait for that, not for their own payments.
	no := uniqueNo("AFTERNET")
	d.createOrder(t, no, 100)
	paid := d.simPay(t, map[string]any{"out_trade_no": no, "amount_fen": 100})
	var o payment.Order
	eventually(t, 5*time.Minute, "the deployment to catch up", func() bool {
		o = d.getOrder(t, no)
		return o.Status == payment.StatusPaid
	})
	assertPaidOnce(t, o, paid.TransactionID)
}
