package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/wechatpay/apiv2"
	"github.com/payflow/payflow/wechatpay/apiv3"
	"github.com/payflow/payflow/workflows"
)

// What the real WeChat does and the first sandbox did not (the protocol
// digest's §11): HMAC notifications without sign_type, notifications of
// other event types, signature probes.

// A v2 order prepaid with HMAC-SHA256 (as the worker does) is notified by
// WeChat without sign_type, with a 64-character sign: it must pay.
func TestV2HMACNotificationWithoutSignTypePays(t *testing.T) {
	d := st.v2
	no := uniqueNo("HMACNT")
	d.createPrepaid(t, map[string]any{"out_trade_no": no, "amount_fen": 1234, "description": "e2e hmac", "trade_type": "NATIVE"})
	var s struct {
		SignType string `json:"sign_type"`
	}
	if code := do(t, http.MethodGet, d.simURL+"/sim/trades/"+no, nil, &s); code != http.StatusOK || s.SignType != apiv2.SignTypeHMACSHA256 {
		t.Fatalf("the worker's prepay: %d, sign_type %q", code, s.SignType)
	}
	// The sandbox signs the notification as WeChat does for that order.
	paid := d.simPay(t, map[string]any{"out_trade_no": no})
	assertPaidOnce(t, d.waitStatus(t, no, payment.StatusPaid), paid.TransactionID)
	if tr := d.waitDelivered(t, no, 1); tr.Deliveries[0].Attempts[0].HTTPStatus != http.StatusOK {
		t.Fatalf("first attempt %+v", tr.Deliveries[0])
	}

	// And by hand: a payload shaped like the published one (one field a
	// line, CDATA, a bare total_fee), HMAC-signed, no sign_type.
	no2 := uniqueNo("HMACHAND")
	d.createOrder(t, no2, 99)
	paid2 := d.simPay(t, map[string]any{"out_trade_no": no2, "amount_fen": 99, "drop": true})
	p := map[string]string{
		"appid": appID, "bank_type": "OTHERS", "cash_fee": "99", "fee_type": "CNY", "is_subscribe": "N", "mch_id": mchID,
		"nonce_str": strconv.FormatInt(time.Now().UnixMilli(), 10), "openid": "oQ3xY5s0Vx9mAbCdEfGhIjKlMnOp",
		"out_trade_no": no2, "result_code": "SUCCESS", "return_code": "SUCCESS", "time_end": time.Now().In(time.FixedZone("CST", 8*3600)).Format("20060102150405"),
		"total_fee": "99", "trade_type": "NATIVE", "transaction_id": paid2.TransactionID,
	}
	sign, err := apiv2.Sign(p, apiKey, apiv2.SignTypeHMACSHA256)
	if err != nil {
		t.Fatal(err)
	}
	p["sign"] = sign
	var b strings.Builder
	b.WriteString("<xml>")
	for _, k := range []string{"appid", "bank_type", "cash_fee", "fee_type", "is_subscribe", "mch_id", "nonce_str", "openid",
		"out_trade_no", "result_code", "return_code", "sign", "time_end", "total_fee", "trade_type", "transaction_id"} {
		if k == "total_fee" {
			fmt.Fprintf(&b, "\n<%s>%s</%s>", k, p[k], k)
		} else {
			fmt.Fprintf(&b, "\n<%s><![CDATA[%s]]></%s>", k, p[k], k)
		}
	}
	b.WriteString("\n</xml>")
	if code, body := d.postRaw(t, b.String()); code != http.StatusOK || body != string(apiv2.Reply(true, "")) {
		t.Fatalf("HMAC notification without sign_type = %d %s", code, body)
	}
	assertPaidOnce(t, d.waitStatus(t, no2, payment.StatusPaid), paid2.TransactionID)
}

// postV3Event sends a v3 notification of event, its resource (of
// originalType) holding res, signed by the primary WeChat Pay key, or
// with a probe signature.
func (d *deployment) postV3Event(t *testing.T, id, event, originalType string, res any, probe bool) (int, string) {
	t.Helper()
	plain, _ := json.Marshal(res)
	ct, err := apiv3.EncryptResource(st.apiV3Key, "0123456789ab", originalType, plain)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	body, _ := json.Marshal(map[string]any{
		"id": id, "create_time": now.Format(time.RFC3339), "resource_type": "encrypt-resource", "event_type": event, "summary": "e2e",
		"resource": map[string]string{"original_type": originalType, "algorithm": "AEAD_AES_256_GCM",
			"ciphertext": ct, "associated_data": originalType, "nonce": "0123456789ab"},
	})
	priv, err := utils.LoadPrivateKeyWithPath(filepath.Join(st.keys.Dir, "platform", st.keys.PublicKeyID+".key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ts, nonce := strconv.FormatInt(now.Unix(), 10), "n"+strconv.FormatInt(now.UnixNano(), 36)
	sig, err := apiv3.SignMessage(priv, apiv3.NotifyMessage(ts, nonce, body))
	if err != nil {
		t.Fatal(err)
	}
	if probe {
		sig = "WECHATPAY/SIGNTEST/" + sig
	}
	req, _ := http.NewRequest(http.MethodPost, d.apiURL+"/wechatpay/v3/notify", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Wechatpay-Serial", st.keys.PublicKeyID)
	req.Header.Set("Wechatpay-Signature", sig)
	req.Header.Set("Wechatpay-Timestamp", ts)
	req.Header.Set("Wechatpay-Nonce", nonce)
	req.Header.Set("Wechatpay-Signature-Type", "WECHATPAY2-SHA256-RSA2048")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// waitWorkflowClosed waits for the order's workflow run to complete.
func waitWorkflowClosed(t *testing.T, no string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	eventually(t, 60*time.Second, "the workflow of "+no+" to complete", func() bool {
		desc, err := st.tc.DescribeWorkflowExecution(ctx, workflows.WorkflowID(no), "")
		return err == nil && desc.GetWorkflowExecutionInfo().GetCloseTime() != nil
	})
}

// A REFUND.SUCCESS notification is verified, acknowledged and changes
// nothing about the payment: the order stays PAID with the same logs.
func TestV3RefundNotificationLeavesOrderUntouched(t *testing.T) {
	d := st.v3
	no := uniqueNo("V3REFUND")
	d.createOrder(t, no, 500)
	paid := d.simPay(t, map[string]any{"out_trade_no": no, "amount_fen": 500})
	before := d.waitStatus(t, no, payment.StatusPaid)
	assertPaidOnce(t, before, paid.TransactionID)
	waitWorkflowClosed(t, no)

	refund := map[string]any{"mchid": mchID, "out_trade_no": no, "transaction_id": paid.TransactionID,
		"out_refund_no": "RF" + no, "refund_id": "50300002612026112712345678901", "refund_status": "SUCCESS",
		"success_time": time.Now().Format(time.RFC3339), "user_received_account": "支付用户零钱",
		"amount": map[string]any{"total": 500, "refund": 200, "payer_total": 500, "payer_refund": 200}}
	id := fmt.Sprintf("EV-REFUND-%d", time.Now().UnixNano())
	for range 2 { // and its copy
		if code, body := d.postV3Event(t, id, "REFUND.SUCCESS", "refund", refund, false); code != http.StatusNoContent && code != http.StatusOK {
			t.Fatalf("REFUND.SUCCESS = %d %s", code, body)
		}
	}
	// A refund event whose resource is a transaction is refused: only a
	// transaction under TRANSACTION.SUCCESS can pay.
	if code, _ := d.postV3Event(t, id+"-X", "REFUND.SUCCESS", "transaction", refund, false); code != http.StatusBadRequest {
		t.Fatalf("mismatched original_type = %d", code)
	}
	time.Sleep(2 * time.Second) // anything asynchronous would show by now
	after := d.getOrder(t, no)
	assertPaidOnce(t, after, paid.TransactionID)
	if after.Status != before.Status || len(after.Logs) != len(before.Logs) || after.PaidAt == nil || !after.PaidAt.Equal(*before.PaidAt) {
		t.Fatalf("the refund notification changed the order:\nbefore %+v\nafter  %+v", before, after)
	}
}

// Any other verified event type is acknowledged, kept in the audit trail
// (once, however often sent) and counted, and changes nothing.
func TestV3OtherEventAuditedOnly(t *testing.T) {
	d := st.v3
	metrics := d.apiURL + "/metrics"
	const series = `payflow_notifications_acked_total{outcome="ignored",version="v3"}`
	ackedBefore := metricValue(t, metrics, series)
	id := fmt.Sprintf("EV-OTHER-%d", time.Now().UnixNano())
	res := map[string]any{"out_bill_no": "plfk2020042013", "transfer_bill_no": "1330000071100999991182020050700019480001", "state": "SUCCESS"}
	for range 2 {
		if code, body := d.postV3Event(t, id, "MCHTRANSFER.BILL.FINISHED", "mch_payment", res, false); code != http.StatusNoContent {
			t.Fatalf("other event = %d %s", code, body)
		}
	}
	if got := metricValue(t, metrics, series) - ackedBefore; got != 2 {
		t.Errorf("ignored acknowledgements counted %v, want 2", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, d.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var outcome, source string
	var count int
	var outTradeNo *string
	if err := conn.QueryRow(ctx, `SELECT outcome, source, received_count, nullif(out_trade_no, '') FROM notifications WHERE id = $1`,
		"v3:"+id).Scan(&outcome, &source, &count, &outTradeNo); err != nil {
		t.Fatalf("audit trail: %v", err)
	}
	if outcome != "ignored" || source != "v3" || count != 2 || outTradeNo != nil {
		t.Errorf("audit row: outcome %q source %q received %d out_trade_no %v", outcome, source, count, outTradeNo)
	}
	// It reached no workflow: there is no order to reach, and no run was
	// started for an empty out_trade_no.
	if _, err := st.tc.DescribeWorkflowExecution(ctx, workflows.WorkflowID(""), ""); err == nil {
		t.Error("a workflow exists for an empty out_trade_no")
	}
}

// WeChat's signature probe (WECHATPAY/SIGNTEST/…) is refused with a 4xx,
// and the real notification that follows it pays.
func TestV3SignatureProbeRefused(t *testing.T) {
	d := st.v3
	no := uniqueNo("PROBE")
	d.createOrder(t, no, 500)
	var tr struct {
		Probes []struct {
			HTTPStatus int  `json:"http_status"`
			Accepted   bool `json:"accepted"`
		} `json:"probes"`
	}
	paid := d.simPay(t, map[string]any{"out_trade_no": no, "amount_fen": 500, "probe": true})
	assertPaidOnce(t, d.waitStatus(t, no, payment.StatusPaid), paid.TransactionID)
	eventually(t, 30*time.Second, "the probe's answer", func() bool {
		return do(t, http.MethodGet, d.simURL+"/sim/trades/"+no, nil, &tr) == http.StatusOK && len(tr.Probes) == 1
	})
	if p := tr.Probes[0]; p.Accepted || p.HTTPStatus < 400 || p.HTTPStatus >= 500 {
		t.Fatalf("probe answered %+v, want a 4xx", p)
	}
	// By hand, for a valid payment body: still refused, nothing changes.
	no2 := uniqueNo("PROBEHAND")
	d.createOrder(t, no2, 500)
	tx := map[string]any{"appid": appID, "mchid": mchID, "out_trade_no": no2, "transaction_id": "4200000000202611270000000042",
		"trade_type": "NATIVE", "trade_state": "SUCCESS", "trade_state_desc": "支付成功", "success_time": time.Now().Format(time.RFC3339),
		"payer": map[string]string{"openid": "oTest"}, "amount": map[string]any{"total": 500, "currency": "CNY"}}
	if code, body := d.postV3Event(t, fmt.Sprintf("EV-PROBE-%d", time.Now().UnixNano()), "TRANSACTION.SUCCESS", "transaction", tx, true); code < 400 || code >= 500 {
		t.Fatalf("probe = %d %s, want 4xx", code, body)
	}
	if o := d.getOrder(t, no2); o.Status != payment.StatusPending || len(o.Logs) != 1 {
		t.Fatalf("a probe changed the order: %+v", o)
	}
}
