package e2e

import (
	"context"
	"crypto/rsa"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/wechatpay/apiv2"
	"github.com/payflow/payflow/wechatpay/apiv3"
	"github.com/payflow/payflow/workflows"
)

// simTradeState is the sim's view of a trade's lifecycle.
type simTradeState struct {
	TradeState string     `json:"trade_state"`
	PrepayID   string     `json:"prepay_id"`
	CodeURL    string     `json:"code_url"`
	ClosedAt   *time.Time `json:"closed_at"`
	Prepays    int        `json:"prepays"`
	Closes     int        `json:"closes"`
}

func (d *deployment) simState(t *testing.T, no string) simTradeState {
	t.Helper()
	var s simTradeState
	if code := do(t, http.MethodGet, d.simURL+"/sim/trades/"+no, nil, &s); code != http.StatusOK {
		t.Fatalf("GET /sim/trades/%s = %d", no, code)
	}
	return s
}

func (d *deployment) createPrepaid(t *testing.T, body map[string]any) payment.Order {
	t.Helper()
	var o payment.Order
	if code := do(t, http.MethodPost, d.apiURL+"/orders", body, &o); code != http.StatusCreated {
		t.Fatalf("POST /orders %v = %d", body, code)
	}
	return o
}

func merchantPublicKey(t *testing.T) *rsa.PublicKey {
	t.Helper()
	cert, err := utils.LoadCertificateWithPath(st.keys.MchCertFile)
	if err != nil {
		t.Fatal(err)
	}
	return cert.PublicKey.(*rsa.PublicKey)
}

func TestJSAPIPrepayPaySignVerifies(t *testing.T) {
	for _, d := range []*deployment{st.v3, st.v2} {
		t.Run(d.name, func(t *testing.T) {
			no := uniqueNo("JSAPI" + d.name)
			o := d.createPrepaid(t, map[string]any{"out_trade_no": no, "amount_fen": 888, "description": "coffee",
				"trade_type": "JSAPI", "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"})
			p := o.JSAPI
			if p == nil || p.AppID != appID || !strings.HasPrefix(p.Package, "prepay_id=") || p.PaySign == "" {
				t.Fatalf("jsapi = %+v", p)
			}
			var err error
			if d.name == "v3" {
				err = apiv3.VerifyJSAPIPaySign(merchantPublicKey(t), *p)
			} else {
				err = apiv2.VerifyJSAPIPaySign(apiKey, *p)
			}
			if err != nil {
				t.Fatalf("paySign does not verify: %v", err)
			}
			if s := d.simState(t, no); "prepay_id="+s.PrepayID != p.Package || s.Prepays != 1 {
				t.Fatalf("sim trade = %+v", s)
			}
			// The user pays the prepaid order in WeChat.
			paid := d.simPay(t, map[string]any{"out_trade_no": no})
			assertPaidOnce(t, d.waitStatus(t, no, payment.StatusPaid), paid.TransactionID)
		})
	}
}

func TestNativePrepayAndBadRequests(t *testing.T) {
	d := st.v3
	no := uniqueNo("NATIVE")
	o := d.createPrepaid(t, map[string]any{"out_trade_no": no, "amount_fen": 100, "description": "tea", "trade_type": "NATIVE"})
	if !strings.HasPrefix(o.CodeURL, "weixin://") || o.ExpiresAt == nil {
		t.Fatalf("order = %+v", o)
	}
	if got := d.getOrder(t, no); got.CodeURL != o.CodeURL {
		t.Fatalf("GET shows code_url %q, want %q", got.CodeURL, o.CodeURL)
	}
	for _, body := range []map[string]any{
		{"out_trade_no": no, "amount_fen": 100, "description": "again"}, // exists
		{"amount_fen": 100, "description": "x", "trade_type": "JSAPI"},  // no openid
		{"amount_fen": 100, "description": "x", "trade_type": "APP"},    // unsupported
		{"amount_fen": 1.5, "description": "x"},                         // not integer fen
		{"amount_fen": 0, "description": "x"},                           // not > 0
		{"out_trade_no": "bad no!", "amount_fen": 100},                  // invalid number
		{"amount_fen": 100, "description": "x", "timeout_seconds": -1},  // bad timeout
		{"amount_fen": 100, "description": "x", "surprise": true},       // unknown field
	} {
		want := http.StatusBadRequest
		if body["out_trade_no"] == no {
			want = http.StatusConflict
		}
		if code := do(t, http.MethodPost, d.apiURL+"/orders", body, nil); code != want {
			t.Errorf("POST /orders %v = %d, want %d", body, code, want)
		}
	}
}

func TestDroppedNotificationsFoundByQuery(t *testing.T) {
	d := st.v3 // ORDER_QUERY_AFTER=2s
	no := uniqueNo("DROPPED")
	d.createPrepaid(t, map[string]any{"out_trade_no": no, "amount_fen": 4200, "description": "lost", "trade_type": "NATIVE"})
	paid := d.simPay(t, map[string]any{"out_trade_no": no, "drop": true})
	o := d.waitStatus(t, no, payment.StatusPaid)
	assertPaidOnce(t, o, paid.TransactionID)
	if r := paidLogs(o)[0].Remarks; !strings.Contains(r, "order query (no notification)") {
		t.Fatalf("PAID remarks %q do not say it was found by query", r)
	}
	if n := len(d.getSimTrade(t, no).Deliveries); n != 0 {
		t.Fatalf("deliveries = %d, want none (all dropped)", n)
	}
}

func TestUnpaidOrderClosed(t *testing.T) {
	d := st.v3
	no := uniqueNo("EXPIRE")
	d.createPrepaid(t, map[string]any{"out_trade_no": no, "amount_fen": 700, "description": "expires", "trade_type": "NATIVE", "timeout_seconds": 3})
	o := d.waitStatus(t, no, payment.StatusClosed)
	if last := o.Logs[len(o.Logs)-1]; last.FromStatus != payment.StatusPending || !strings.Contains(last.Remarks, "expired") {
		t.Fatalf("CLOSED log = %+v", last)
	}
	if s := d.simState(t, no); s.TradeState != payment.TradeClosed || s.ClosedAt == nil || s.Closes < 1 {
		t.Fatalf("the order is not closed at WeChat: %+v", s)
	}

	// The user pays anyway (WeChat let it through): money for a closed
	// order needs a refund, so the order goes to REVIEW, never PAID.
	d.simPay(t, map[string]any{"out_trade_no": no, "force": true})
	o = d.waitStatus(t, no, payment.StatusReview)
	if len(paidLogs(o)) != 0 || !strings.Contains(o.Logs[len(o.Logs)-1].Remarks, "paid after close") {
		t.Fatalf("order = %+v", o)
	}
}

func TestMerchantCloseAndSync(t *testing.T) {
	d := st.v2 // ORDER_QUERY_AFTER=1h: only sync can find a payment soon
	no := uniqueNo("CLOSE")
	d.createPrepaid(t, map[string]any{"out_trade_no": no, "amount_fen": 300, "description": "cancel me", "trade_type": "NATIVE"})
	var o payment.Order
	if code := do(t, http.MethodPost, d.apiURL+"/orders/"+no+"/close", nil, &o); code != http.StatusOK || o.Status != payment.StatusClosed {
		t.Fatalf("close = %d %+v", code, o)
	}
	if code := do(t, http.MethodPost, d.apiURL+"/orders/"+no+"/close", nil, &o); code != http.StatusOK || o.Status != payment.StatusClosed || len(o.Logs) != 2 {
		t.Fatalf("second close = %d %+v", code, o)
	}
	if s := d.simState(t, no); s.TradeState != payment.TradeClosed {
		t.Fatalf("sim trade = %+v", s)
	}
	if code := do(t, http.MethodPost, d.simURL+"/sim/pay", map[string]any{"out_trade_no": no}, nil); code != http.StatusConflict {
		t.Fatalf("paying a closed order at the sim = %d, want 409", code)
	}

	// Sync: the user paid, every notification was lost; an operator asks.
	no2 := uniqueNo("SYNC")
	d.createPrepaid(t, map[string]any{"out_trade_no": no2, "amount_fen": 301, "description": "sync me", "trade_type": "NATIVE"})
	paid := d.simPay(t, map[string]any{"out_trade_no": no2, "drop": true})
	if code := do(t, http.MethodPost, d.apiURL+"/orders/"+no2+"/sync", nil, nil); code != http.StatusAccepted {
		t.Fatalf("sync = %d", code)
	}
	assertPaidOnce(t, d.waitStatus(t, no2, payment.StatusPaid), paid.TransactionID)
	// A paid order cannot be closed.
	if code := do(t, http.MethodPost, d.apiURL+"/orders/"+no2+"/close", nil, nil); code != http.StatusConflict {
		t.Fatalf("close of a paid order = %d, want 409", code)
	}
	for _, path := range []string{"/orders/NOSUCHORDER1/close", "/orders/NOSUCHORDER1/sync"} {
		if code := do(t, http.MethodPost, d.apiURL+path, nil, nil); code != http.StatusNotFound {
			t.Fatalf("%s = %d, want 404", path, code)
		}
	}
}

func TestReconciliationPicksUpOrphan(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d := st.v2
	// An order from before workflows owned orders: in the database, no
	// workflow anywhere.
	no := uniqueNo("ORPHAN")
	conn, err := pgx.Connect(ctx, d.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `INSERT INTO orders (out_trade_no, amount_fen, description, status, created_at, updated_at, expires_at)
		VALUES ($1, 555, 'legacy', 'PENDING', now() - interval '10 minutes', now(), now() + interval '1 hour')`, no)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, `INSERT INTO order_logs (out_trade_no, from_status, to_status, remarks, idempotency_key)
		VALUES ($1, '', 'PENDING', 'order created', 'created')`, no)
	if err != nil {
		t.Fatal(err)
	}

	h := st.tc.ScheduleClient().GetHandle(ctx, workflows.SafetyNetScheduleID(d.taskQueue))
	if err := h.Trigger(ctx, client.ScheduleTriggerOptions{Overlap: enums.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL}); err != nil {
		t.Fatalf("trigger the safety net schedule: %v", err)
	}
	var queue string
	eventually(t, 30*time.Second, "reconciliation to start the order's workflow", func() bool {
		desc, err := st.tc.DescribeWorkflowExecution(ctx, workflows.WorkflowID(no), "")
		if err != nil {
			return false
		}
		queue = desc.GetExecutionConfig().GetTaskQueue().GetName()
		return desc.GetWorkflowExecutionInfo().GetStatus() == enums.WORKFLOW_EXECUTION_STATUS_RUNNING
	})
	// The schedule's own result names the order.
	eventually(t, 30*time.Second, "the reconciliation result to name the order", func() bool {
		desc, err := h.Describe(ctx)
		if err != nil {
			return false
		}
		for _, a := range desc.Info.RecentActions {
			run := st.tc.GetWorkflow(ctx, a.StartWorkflowResult.WorkflowID, a.StartWorkflowResult.FirstExecutionRunID)
			var res workflows.SafetyNetResult
			if run.Get(ctx, &res) == nil && contains(res.Handed["orders"], no) {
				return true
			}
		}
		return false
	})

	// Now owned, the order is paid like any other, by its deployment's
	// worker.
	if queue != d.taskQueue {
		t.Fatalf("the orphan's run is on %s, not on its deployment's queue %s", queue, d.taskQueue)
	}
	paid := d.simPay(t, map[string]any{"out_trade_no": no, "amount_fen": 555})
	assertPaidOnce(t, d.waitStatus(t, no, payment.StatusPaid), paid.TransactionID)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
