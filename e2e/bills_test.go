package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.temporal.io/api/workflowservice/v1"

	stacklib "github.com/payflow/payflow/internal/stack"
	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/sim"
)

// The daily bill reconciliation through the real binaries: a deployment of
// its own (sim, worker, api) on a database of its own, so that the day's
// bill is compared with this test's orders only, and in a Temporal
// namespace of its own, so that its workers' schedules (the safety net's,
// the bill's) and bill/{date} workflows never take over those of the other
// deployments. WeChat is asked again quickly while it makes the bill
// (BILL_POLL_INTERVAL=1s).

// billsNamespace is registered by the first test that needs it.
const billsNamespace = "e2e-bills"

// reconciliation is the reconciliation JSON of docs/interface.md.
type reconciliation struct {
	Date        string `json:"date"`
	Status      string `json:"status"`
	BillRows    int64  `json:"bill_rows"`
	Matched     int64  `json:"matched"`
	Differences []struct {
		Kind            string `json:"kind"`
		OutTradeNo      string `json:"out_trade_no"`
		OutRefundNo     string `json:"out_refund_no"`
		TransactionID   string `json:"transaction_id"`
		WeChatAmountFen *int64 `json:"wechat_amount_fen"`
		OurAmountFen    *int64 `json:"our_amount_fen"`
		Action          string `json:"action"`
	} `json:"differences"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	Error      string     `json:"error"`
}

// billDeployment is a deployment (stacklib.AddDeployment) on a database,
// a task queue and a Temporal namespace of its own.
type billDeployment struct {
	*deployment
}

var billsNamespaceOnce struct {
	sync.Once
	err error
}

func deployBills(t *testing.T, version string) *billDeployment {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	billsNamespaceOnce.Do(func() { billsNamespaceOnce.err = st.RegisterNamespace(ctx, billsNamespace) })
	if err := billsNamespaceOnce.err; err != nil {
		t.Fatal(err)
	}
	name := "bills-" + version
	sd, err := st.AddDeployment(ctx, stacklib.DeploymentOptions{
		Name: name, Database: "payments_bills_" + version, TaskQueue: "e2e-" + name,
		APIVersion: version, NotifyVersion: version, PlatformCerts: version == "v3",
		OrderQueryAfter: time.Hour,
		Env:             []string{"TEMPORAL_NAMESPACE=" + billsNamespace, "BILL_POLL_INTERVAL=1s"},
		WorkerEnv:       []string{"REFUND_QUERY_AFTER=1h"},
		SimEnv:          []string{"SIM_REFUND_PROCESSING=1s"},
	})
	if sd != nil {
		t.Cleanup(func() {
			if t.Failed() {
				for _, p := range sd.Processes() {
					t.Logf("----- %s (tail) -----\n%s", p.Name, p.LogTail(6000))
				}
			}
			for _, p := range sd.Processes() {
				_ = p.Stop()
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	d := newDeployment(sd)
	registerAPI(d)
	return &billDeployment{deployment: d}
}

func (d *billDeployment) switches(t *testing.T, date string, sw sim.BillSwitches) {
	t.Helper()
	if code := do(t, http.MethodPost, d.simURL+"/sim/bills/"+date, sw, nil); code != http.StatusOK {
		t.Fatalf("POST /sim/bills/%s = %d", date, code)
	}
}

// reconcile asks for the day and waits until the run it answered with ends.
func (d *billDeployment) reconcile(t *testing.T, date string) reconciliation {
	t.Helper()
	var started reconciliation
	if code := do(t, http.MethodPost, d.apiURL+"/reconciliations/"+date, nil, &started); code != http.StatusAccepted {
		t.Fatalf("POST /reconciliations/%s = %d %+v", date, code, started)
	}
	// The run as it is when the api answers: RUNNING, or already further
	// when the day is small.
	if started.Date != date || started.Status == "" || started.Differences == nil {
		t.Fatalf("202 answer %+v", started)
	}
	var r reconciliation
	eventually(t, 90*time.Second, "the reconciliation of "+date+" to finish", func() bool {
		if code := do(t, http.MethodGet, d.apiURL+"/reconciliations/"+date, nil, &r); code != http.StatusOK {
			t.Fatalf("GET /reconciliations/%s = %d", date, code)
		}
		return r.Status != "RUNNING" && r.StartedAt.Equal(started.StartedAt)
	})
	if r.FinishedAt == nil || r.FinishedAt.Before(r.StartedAt) {
		t.Fatalf("finished_at %v, started_at %v", r.FinishedAt, r.StartedAt)
	}
	return r
}

// orderState is what a re-run must leave alone: every order's status and
// log rows.
func (d *billDeployment) orderState(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, d.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var s string
	err = conn.QueryRow(ctx, `SELECT coalesce(string_agg(o.out_trade_no || ':' || o.status || ':' ||
		(SELECT count(*) FROM order_logs l WHERE l.out_trade_no = o.out_trade_no), ',' ORDER BY o.out_trade_no), '') FROM orders o`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ourRefund reads one of our refunds (not found: zero value).
func (d *billDeployment) ourRefund(t *testing.T, no, outRefundNo string) (r struct{ Status, Source string }) {
	t.Helper()
	do(t, http.MethodGet, d.apiURL+"/orders/"+no+"/refunds/"+outRefundNo, nil, &r)
	return r
}

func beijingDay(t time.Time, days int) string {
	return t.In(time.FixedZone("CST", 8*3600)).AddDate(0, 0, days).Format("2006-01-02")
}

type diffKey struct{ kind, no, refund string }

func TestBillReconciliationEveryKindV3(t *testing.T) {
	d := deployBills(t, "v3")
	today := beijingDay(time.Now(), 0)

	// No trade yesterday: WeChat has no bill.
	if r := d.reconcile(t, beijingDay(time.Now(), -1)); r.Status != "NO_BILL" || r.BillRows != 0 || len(r.Differences) != 0 {
		t.Fatalf("yesterday: %+v", r)
	}

	// Today's books. MATCH, AMOUNT and HERE are paid and notified; WECHAT
	// is paid at WeChat but its notification never came (PENDING here);
	// CLOSED expired unpaid, and was paid at WeChat after the close.
	match, amount, here, wechat, closed := uniqueNo("BMATCH"), uniqueNo("BAMOUNT"), uniqueNo("BHERE"), uniqueNo("BWECHAT"), uniqueNo("BCLOSED")
	for no, fen := range map[string]int64{match: 1000, amount: 1000, here: 700, wechat: 500} {
		d.createOrder(t, no, fen)
	}
	d.createPrepaid(t, map[string]any{"out_trade_no": closed, "amount_fen": 600, "description": "expires", "trade_type": "NATIVE", "timeout_seconds": 2})
	for no, fen := range map[string]int64{match: 1000, amount: 1000, here: 700} {
		d.simPay(t, map[string]any{"out_trade_no": no, "amount_fen": fen})
	}
	d.simPay(t, map[string]any{"out_trade_no": wechat, "amount_fen": 500, "drop": true})
	for _, no := range []string{match, amount, here} {
		d.waitStatus(t, no, payment.StatusPaid)
	}
	d.waitStatus(t, closed, payment.StatusClosed)
	d.simPay(t, map[string]any{"out_trade_no": closed, "amount_fen": 600, "force": true, "drop": true})
	// A refund asked through this service: WeChat did it, but its
	// notification was lost and we ask only after an hour
	// (REFUND_QUERY_AFTER), so here it is still PROCESSING. And a refund
	// made in the merchant portal whose notification was lost too.
	rfOurs, rfPortal := uniqueNo("RFOURS"), uniqueNo("RFPORTAL")
	if code := do(t, http.MethodPost, d.simURL+"/sim/refunds/"+rfOurs+"/options", map[string]any{"drop": true}, nil); code != http.StatusOK {
		t.Fatalf("refund options = %d", code)
	}
	if code := do(t, http.MethodPost, d.apiURL+"/orders/"+match+"/refunds", map[string]any{"out_refund_no": rfOurs, "amount_fen": 100}, nil); code != http.StatusCreated {
		t.Fatalf("POST refund = %d", code)
	}
	if code := do(t, http.MethodPost, d.simURL+"/sim/refunds", map[string]any{"out_trade_no": match, "amount_fen": 300,
		"out_refund_no": rfPortal, "drop": true}, nil); code != http.StatusCreated {
		t.Fatalf("portal refund = %d", code)
	}
	for _, no := range []string{rfOurs, rfPortal} {
		eventually(t, 30*time.Second, "WeChat to have done refund "+no, func() bool {
			var v struct{ Status string }
			return do(t, http.MethodGet, d.simURL+"/sim/refunds/"+no, nil, &v) == http.StatusOK && v.Status == "SUCCESS"
		})
	}
	if r := d.ourRefund(t, match, rfOurs); r.Status != "PROCESSING" {
		t.Fatalf("our refund %s is %s before the bill", rfOurs, r.Status)
	}
	if o := d.getOrder(t, wechat); o.Status != payment.StatusPending {
		t.Fatalf("%s is %s before the bill", wechat, o.Status)
	}

	// A bill whose SHA-1 differs: FAILED, and nothing changes.
	before := d.orderState(t)
	d.switches(t, today, sim.BillSwitches{WrongHash: true})
	r := d.reconcile(t, today)
	if r.Status != "FAILED" || !strings.Contains(r.Error, "SHA-1") || len(r.Differences) != 0 || r.BillRows != 0 {
		t.Fatalf("wrong hash: %+v", r)
	}
	if after := d.orderState(t); after != before {
		t.Fatalf("a bill that did not check out changed orders:\n%s\n%s", before, after)
	}

	// WeChat's bill: AMOUNT for 12.00 yuan, HERE missing, a trade we never
	// created, and the two refunds, both done; WeChat is still making it the
	// first two times it is asked.
	stranger := uniqueNo("BSTRANGER")
	d.switches(t, today, sim.BillSwitches{
		Creating: 2,
		Omit:     []string{here},
		Amounts:  map[string]int64{amount: 1200},
		Extra:    []sim.BillTrade{{OutTradeNo: stranger, AmountFen: 999}},
	})
	r = d.reconcile(t, today)
	if r.Status != "DIFFERENCES" || r.BillRows != 7 || r.Matched != 1 || r.Error != "" {
		t.Fatalf("reconciliation %+v", r)
	}
	got := map[diffKey]string{}
	amounts := map[diffKey][2]int64{}
	for _, x := range r.Differences {
		k := diffKey{x.Kind, x.OutTradeNo, x.OutRefundNo}
		got[k] = x.Action
		var w, o int64 = -1, -1
		if x.WeChatAmountFen != nil {
			w = *x.WeChatAmountFen
		}
		if x.OurAmountFen != nil {
			o = *x.OurAmountFen
		}
		amounts[k] = [2]int64{w, o}
	}
	want := map[diffKey]string{
		{"paid_at_wechat_only", wechat, ""}: "the order's workflow confirms the payment by order query",
		{"paid_at_wechat_only", closed, ""}: "the order's workflow confirms the payment by order query",
		{"paid_here_only", here, ""}:        "sent to REVIEW",
		{"amount_mismatch", amount, ""}:     "sent to REVIEW",
		{"unknown_order", stranger, ""}:     "recorded; nothing created",
		{"refund_unknown", match, rfPortal}: "recorded on its order as merchant_portal; confirming by refund query",
		{"refund_status", match, rfOurs}:    "refund queried again",
	}
	if len(got) != len(want) {
		t.Errorf("differences %+v", r.Differences)
	}
	for k, action := range want {
		if got[k] != action {
			t.Errorf("%v: action %q, want %q", k, got[k], action)
		}
	}
	if a := amounts[diffKey{"amount_mismatch", amount, ""}]; a != [2]int64{1200, 1000} {
		t.Errorf("amount_mismatch amounts %v", a)
	}
	if a := amounts[diffKey{"paid_here_only", here, ""}]; a != [2]int64{-1, 700} {
		t.Errorf("paid_here_only amounts %v", a)
	}

	// The outcomes, through the orders' workflows.
	d.waitStatus(t, wechat, payment.StatusPaid)
	d.waitStatus(t, closed, payment.StatusReview)
	d.waitStatus(t, amount, payment.StatusReview)
	d.waitStatus(t, here, payment.StatusReview)
	if code := do(t, http.MethodGet, d.apiURL+"/orders/"+stranger, nil, nil); code != http.StatusNotFound {
		t.Fatalf("the unknown trade created an order: %d", code)
	}
	for no, source := range map[string]string{rfOurs: "api", rfPortal: "merchant_portal"} {
		eventually(t, 60*time.Second, "refund "+no+" to be SUCCESS here", func() bool {
			r := d.ourRefund(t, match, no)
			return r.Status == "SUCCESS" && r.Source == source
		})
	}
	for _, no := range []string{amount, here} {
		o := d.getOrder(t, no)
		if last := o.Logs[len(o.Logs)-1]; last.ToStatus != payment.StatusReview || !strings.Contains(last.Remarks, today) {
			t.Errorf("%s: last log %+v does not give the bill's reason", no, last)
		}
	}

	// The same day again: the same differences, their actions as they were,
	// and nothing changes twice.
	time.Sleep(2 * time.Second) // let the workflows' effects settle
	before = d.orderState(t)
	again := d.reconcile(t, today)
	if again.Status != "DIFFERENCES" || again.StartedAt.Equal(r.StartedAt) {
		t.Fatalf("re-run %+v", again)
	}
	for _, x := range again.Differences {
		k := diffKey{x.Kind, x.OutTradeNo, x.OutRefundNo}
		if action, ok := want[k]; ok && x.Action != action {
			t.Errorf("re-run %v: action %q, want %q", k, x.Action, action)
		}
	}
	if n := len(again.Differences); n > len(want) {
		t.Errorf("re-run found %d differences, more than the first run's %d: %+v", n, len(want), again.Differences)
	}
	time.Sleep(2 * time.Second)
	if after := d.orderState(t); after != before {
		t.Fatalf("the re-run changed orders:\n%s\n%s", before, after)
	}

	// An operator finds the day's runs in the Temporal UI by BillDate.
	eventually(t, 30*time.Second, "the day's runs to be visible", func() bool {
		resp, err := st.tc.CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{
			Namespace: billsNamespace, Query: fmt.Sprintf(`BillDate = %q`, today)})
		return err == nil && resp.GetCount() >= 3
	})
}

func TestBillReconciliationV2(t *testing.T) {
	d := deployBills(t, "v2")
	today := beijingDay(time.Now(), 0)
	if r := d.reconcile(t, beijingDay(time.Now(), -2)); r.Status != "NO_BILL" {
		t.Fatalf("a day without trades: %+v", r)
	}
	paid, dropped := uniqueNo("B2PAID"), uniqueNo("B2DROP")
	d.createOrder(t, paid, 300)
	d.createOrder(t, dropped, 400)
	d.simPay(t, map[string]any{"out_trade_no": paid, "amount_fen": 300})
	d.simPay(t, map[string]any{"out_trade_no": dropped, "amount_fen": 400, "drop": true})
	d.waitStatus(t, paid, payment.StatusPaid)
	d.switches(t, today, sim.BillSwitches{Creating: 1})
	r := d.reconcile(t, today)
	if r.Status != "DIFFERENCES" || r.BillRows != 2 || r.Matched != 1 || len(r.Differences) != 1 ||
		r.Differences[0].Kind != "paid_at_wechat_only" || r.Differences[0].OutTradeNo != dropped {
		t.Fatalf("v2 reconciliation %+v", r)
	}
	d.waitStatus(t, dropped, payment.StatusPaid)
	if again := d.reconcile(t, today); again.Status != "MATCHED" || again.Matched != 2 || len(again.Differences) != 0 {
		t.Fatalf("once confirmed, the day matches: %+v", again)
	}
	// Only days of the last 90 (Beijing) may be asked for.
	for _, date := range []string{beijingDay(time.Now(), -91), beijingDay(time.Now(), 1), "2026-13-01"} {
		if code := do(t, http.MethodPost, d.apiURL+"/reconciliations/"+date, nil, nil); code != http.StatusBadRequest {
			t.Errorf("POST /reconciliations/%s = %d", date, code)
		}
	}
	if code := do(t, http.MethodGet, d.apiURL+"/reconciliations/"+beijingDay(time.Now(), -30), nil, nil); code != http.StatusNotFound {
		t.Errorf("a day never reconciled: %d", code)
	}
}
