package sim

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core/notify"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/wechatpay"
	"github.com/payflow/payflow/wechatpay/apiv2"
	"github.com/payflow/payflow/wechatpay/apiv3"
)

// refundSim is a simulator with v3 keys, the v2 key testKey, refunds that
// stay PROCESSING for processing (unscaled) and two receivers: v3 (the
// refund requests' notify_url) and v2 (SIM_REFUND_NOTIFY_URL).
type refundSim struct {
	base string
	m    merchant
	c    *apiv3.Client
	v3   *v3Receiver
	v2   *receiver
}

func newRefundSim(t *testing.T, processing time.Duration) *refundSim {
	t.Helper()
	rs := &refundSim{m: newMerchant(t), v3: newV3Receiver(t, nil), v2: newReceiver(t, nil)}
	rs.base = newSimV3(t, rs.v3.srv.URL, func(c *Config) {
		c.APIKey, c.TimeScale, c.RefundProcessing, c.RefundNotifyURL = testKey, 1, processing, rs.v2.srv.URL
	})
	rs.c = rs.m.client(t, rs.base, rs.m.key)
	return rs
}

// paid makes a trade paid at WeChat (v3 prepay, then /sim/pay without a
// notification) and returns its transaction id.
func (rs *refundSim) paid(t *testing.T, no string, total int64) string {
	t.Helper()
	if status, out := rs.m.call(t, rs.base, "POST", "/v3/pay/transactions/native", prepayBody(no, total, "")); status != 200 {
		t.Fatalf("prepay: %d %s", status, out)
	}
	return pay(t, rs.base, PayRequest{OutTradeNo: no, Drop: true}).TransactionID
}

func (rs *refundSim) req(no, refundNo string, amount, total int64) payment.RefundRequest {
	return payment.RefundRequest{OutTradeNo: no, OutRefundNo: refundNo, AmountFen: amount, TotalFen: total, Reason: "商品已售完",
		NotifyURL: rs.v3.srv.URL}
}

func getRefund(t *testing.T, base, no string) RefundView {
	t.Helper()
	resp, err := http.Get(base + "/sim/refunds/" + no)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET refund %s: %d", no, resp.StatusCode)
	}
	var v RefundView
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func refundSummary(t *testing.T, base string) RefundSummary {
	t.Helper()
	resp, err := http.Get(base + "/sim/refunds")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s RefundSummary
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// waitRefund waits until the refund has status and n deliveries, all done.
func waitRefund(t *testing.T, base, no, status string, n int) RefundView {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v := getRefund(t, base, no)
		done := v.Status == status && len(v.Deliveries) == n
		for _, d := range v.Deliveries {
			done = done && d.Done
		}
		if done {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("refund %s: %+v, want %s with %d deliveries done", no, v, status, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sdkRefundNotice verifies and decrypts a v3 notification with the
// official SDK's notify handler (not our parser) into a map.
func (rs *refundSim) sdkRefundNotice(t *testing.T, h http.Header, body []byte) (*notify.Request, map[string]any) {
	t.Helper()
	handler, err := notify.NewRSANotifyHandler(strings.TrimSpace(string(mustRead(t, rs.m.kf.APIv3KeyFile))), rs.m.keys.Verifier())
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/wechatpay/v3/notify", bytes.NewReader(body))
	req.Header = h.Clone()
	content := map[string]any{}
	n, err := handler.ParseNotifyRequest(context.Background(), req, &content)
	if err != nil {
		t.Fatalf("the SDK rejects the notification: %v\n%s", err, body)
	}
	// And the resource decrypts with the SDK's utility on its own.
	plain, err := utils.DecryptAES256GCM(strings.TrimSpace(string(mustRead(t, rs.m.kf.APIv3KeyFile))),
		n.Resource.AssociatedData, n.Resource.Nonce, n.Resource.Ciphertext)
	if err != nil || plain != n.Resource.Plaintext {
		t.Fatalf("DecryptAES256GCM: %v", err)
	}
	return n, content
}

// decryptReqInfo decrypts a v2 refund notification's req_info as gopay's
// DecryptRefundNotifyReqInfo does: base64, key = lowercase hex MD5 of the
// API key as 32 ASCII bytes (AES-256), ECB block by block, PKCS#7 unpadding,
// then XML. Written from that description, not from the simulator's code.
func decryptReqInfo(t *testing.T, reqInfo, apiKey string) map[string]string {
	t.Helper()
	ct, err := base64.StdEncoding.DecodeString(reqInfo)
	if err != nil || len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		t.Fatalf("req_info is not whole AES blocks in base64: %v", err)
	}
	h := md5.Sum([]byte(apiKey))
	key := strings.ToLower(hex.EncodeToString(h[:]))
	block, err := aes.NewCipher([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	if len(key) != 32 {
		t.Fatalf("key of %d bytes, want 32 (AES-256)", len(key))
	}
	plain := make([]byte, len(ct))
	for i := 0; i < len(ct); i += aes.BlockSize {
		block.Decrypt(plain[i:], ct[i:i+aes.BlockSize])
	}
	pad := int(plain[len(plain)-1])
	if pad < 1 || pad > aes.BlockSize || !bytes.Equal(plain[len(plain)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		t.Fatalf("bad PKCS#7 padding (wrong key?)")
	}
	plain = plain[:len(plain)-pad]
	var root struct {
		XMLName xml.Name
		Fields  []struct {
			XMLName xml.Name
			Value   string `xml:",chardata"`
		} `xml:",any"`
	}
	if err := xml.Unmarshal(plain, &root); err != nil {
		t.Fatalf("req_info XML: %v\n%s", err, plain)
	}
	if root.XMLName.Local != "root" {
		t.Errorf("req_info root element %q, want root", root.XMLName.Local)
	}
	out := map[string]string{}
	for _, f := range root.Fields {
		out[f.XMLName.Local] = f.Value
	}
	return out
}

func TestRefundApplyQueryAndNotify(t *testing.T) {
	rs := newRefundSim(t, time.Second)
	ctx := context.Background()
	txid := rs.paid(t, "sim-refund-1", 1000)

	got, err := rs.c.ApplyRefund(ctx, rs.req("sim-refund-1", "SR-1", 300, 1000))
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != payment.RefundProcessing || got.AmountFen != 300 || got.TotalFen != 1000 || got.OutTradeNo != "sim-refund-1" ||
		got.TransactionID != txid || len(got.RefundID) != 29 || time.Since(got.CreateTime) > time.Minute {
		t.Fatalf("apply: %+v", got)
	}
	// The same number again: the same refund, executed once.
	again, err := rs.c.ApplyRefund(ctx, rs.req("sim-refund-1", "SR-1", 300, 1000))
	if err != nil || again.RefundID != got.RefundID {
		t.Fatalf("repeat: %+v %v", again, err)
	}
	// Another amount under that number is refused.
	if _, err := rs.c.ApplyRefund(ctx, rs.req("sim-refund-1", "SR-1", 301, 1000)); !errors.Is(err, wechatpay.ErrRefundRefused) {
		t.Errorf("another amount: %v", err)
	}
	q, err := rs.c.QueryRefund(ctx, "SR-1")
	if err != nil || q.Status != payment.RefundProcessing || q.RefundID != got.RefundID {
		t.Fatalf("query while processing: %+v %v", q, err)
	}
	// After a refund, WeChat's order query answers REFUND (v3 and v2).
	tr, err := rs.c.QueryOrder(ctx, "sim-refund-1")
	if err != nil || tr.TradeState != payment.TradeRefund || tr.TransactionID != txid || tr.AmountFen != 1000 {
		t.Fatalf("v3 order query: %+v %v", tr, err)
	}
	if p := v2Call(t, rs.base, "/pay/orderquery", map[string]string{"out_trade_no": "sim-refund-1"}); p["trade_state"] != "REFUND" ||
		p["transaction_id"] != txid {
		t.Errorf("v2 order query: %v", p)
	}

	v := waitRefund(t, rs.base, "SR-1", "SUCCESS", 1)
	if v.Applies != 3 || v.Executions != 1 || v.Queries != 1 || v.Source != "API" || v.SuccessTime == nil || !v.Deliveries[0].Delivered {
		t.Fatalf("refund %+v", v)
	}
	q, err = rs.c.QueryRefund(ctx, "SR-1")
	if err != nil || q.Status != payment.RefundSuccess || q.SuccessTime.IsZero() {
		t.Fatalf("query after: %+v %v", q, err)
	}
	if _, err := rs.c.QueryRefund(ctx, "SR-none"); !errors.Is(err, wechatpay.ErrRefundNotExist) {
		t.Errorf("unknown refund: %v", err)
	}

	// The notification, checked with the official SDK.
	if rs.v3.count() != 1 {
		t.Fatalf("%d v3 notifications", rs.v3.count())
	}
	h, body := rs.v3.get(0)
	n, content := rs.sdkRefundNotice(t, h, body)
	if n.EventType != "REFUND.SUCCESS" || n.Summary != "退款成功" || n.ResourceType != "encrypt-resource" ||
		n.Resource.OriginalType != "refund" || n.Resource.AssociatedData != "refund" || n.Resource.Algorithm != "AEAD_AES_256_GCM" {
		t.Errorf("envelope %+v", n)
	}
	amount, _ := content["amount"].(map[string]any)
	if content["refund_status"] != "SUCCESS" || content["out_refund_no"] != "SR-1" || content["out_trade_no"] != "sim-refund-1" ||
		content["refund_id"] != got.RefundID || content["transaction_id"] != txid || content["mchid"] != testMchID ||
		content["user_received_account"] == nil || amount["refund"] != 300.0 || amount["total"] != 1000.0 ||
		amount["payer_refund"] != 300.0 || amount["payer_total"] != 1000.0 {
		t.Errorf("resource %v", content)
	}
	if _, has := content["status"]; has {
		t.Errorf("the notification's resource has status; WeChat's field is refund_status")
	}
	if st, _ := content["success_time"].(string); !strings.HasSuffix(st, "+08:00") {
		t.Errorf("success_time %q", st)
	}
	if len(rs.v2.received()) != 0 {
		t.Errorf("a v2 notification for a v3 refund")
	}
}

func TestRefundLimits(t *testing.T) {
	rs := newRefundSim(t, time.Hour)
	ctx := context.Background()
	rs.paid(t, "sim-limit-1", 100)
	for _, tc := range []struct {
		name string
		req  payment.RefundRequest
		is   error
		code string
	}{
		{"unknown trade", rs.req("sim-limit-none", "L-1", 1, 100), wechatpay.ErrRefundRefused, "RESOURCE_NOT_EXISTS"},
		{"another total", rs.req("sim-limit-1", "L-2", 1, 99), wechatpay.ErrRefundRefused, "INVALID_REQUEST"},
		{"beyond the total", rs.req("sim-limit-1", "L-3", 101, 101), wechatpay.ErrRefundRefused, "INVALID_REQUEST"},
	} {
		_, err := rs.c.ApplyRefund(ctx, tc.req)
		var ae *wechatpay.APIError
		if !errors.Is(err, tc.is) || !errors.As(err, &ae) || ae.Code != tc.code {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		}
	}
	// An unpaid trade cannot be refunded.
	if status, out := rs.m.call(t, rs.base, "POST", "/v3/pay/transactions/native", prepayBody("sim-limit-2", 100, "")); status != 200 {
		t.Fatalf("prepay: %d %s", status, out)
	}
	if _, err := rs.c.ApplyRefund(ctx, rs.req("sim-limit-2", "L-4", 1, 100)); !errors.Is(err, wechatpay.ErrRefundRefused) {
		t.Errorf("unpaid: %v", err)
	}
	// What is left, then nothing.
	if _, err := rs.c.ApplyRefund(ctx, rs.req("sim-limit-1", "L-5", 60, 100)); err != nil {
		t.Fatal(err)
	}
	if _, err := rs.c.ApplyRefund(ctx, rs.req("sim-limit-1", "L-6", 41, 100)); !errors.Is(err, wechatpay.ErrRefundRefused) {
		t.Errorf("41 of 40 left: %v", err)
	}
	if _, err := rs.c.ApplyRefund(ctx, rs.req("sim-limit-1", "L-7", 40, 100)); err != nil {
		t.Fatal(err)
	}
	// At most 50 refunds of a trade.
	rs.paid(t, "sim-limit-3", 1000)
	for i := range 50 {
		if _, err := rs.c.ApplyRefund(ctx, rs.req("sim-limit-3", fmt.Sprintf("L50-%d", i), 1, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rs.c.ApplyRefund(ctx, rs.req("sim-limit-3", "L50-50", 1, 1000)); !errors.Is(err, wechatpay.ErrRefundRefused) {
		t.Errorf("51st: %v", err)
	}
	sum := refundSummary(t, rs.base)
	if sum.Refunds != 52 || sum.Trades["sim-limit-1"] != (TradeRefunds{TotalFen: 100, RequestedFen: 100, Refunds: 2}) ||
		sum.Trades["sim-limit-3"].Refunds != 50 || sum.Executions["L-5"] != 1 || sum.Applies["L-5"] != 1 {
		t.Errorf("summary %+v", sum.Trades)
	}
	for no, n := range sum.Executions {
		if n != 1 {
			t.Errorf("%s executed %d times", no, n)
		}
	}
	// A refund that WeChat refused leaves no trace: the number is free.
	if _, ok := sum.Executions["L-6"]; ok {
		t.Error("a refused refund was executed")
	}
}

func setRefundOptions(t *testing.T, base, no string, o RefundOptions) {
	t.Helper()
	if status, out := postJSON(t, base+"/sim/refunds/"+no+"/options", o); status != http.StatusOK {
		t.Fatalf("options %s: %d %s", no, status, out)
	}
}

func TestRefundSwitches(t *testing.T) {
	rs := newRefundSim(t, 20*time.Millisecond)
	ctx := context.Background()
	rs.paid(t, "sim-switch-1", 1000)

	t.Run("not enough, then accepted", func(t *testing.T) {
		setRefundOptions(t, rs.base, "SW-NE", RefundOptions{NotEnough: 2})
		for range 2 {
			_, err := rs.c.ApplyRefund(ctx, rs.req("sim-switch-1", "SW-NE", 10, 1000))
			var ae *wechatpay.APIError
			if !errors.Is(err, wechatpay.ErrNotEnough) || !errors.As(err, &ae) || ae.HTTPStatus != 403 {
				t.Fatalf("NOT_ENOUGH: %v", err)
			}
		}
		if _, err := rs.c.QueryRefund(ctx, "SW-NE"); !errors.Is(err, wechatpay.ErrRefundNotExist) {
			t.Errorf("refused refund exists: %v", err)
		}
		if _, err := rs.c.ApplyRefund(ctx, rs.req("sim-switch-1", "SW-NE", 10, 1000)); err != nil {
			t.Fatal(err)
		}
		if v := waitRefund(t, rs.base, "SW-NE", "SUCCESS", 1); v.Executions != 1 || v.Applies != 1 {
			t.Errorf("view %+v", v)
		}
	})

	t.Run("system error after accepting", func(t *testing.T) {
		setRefundOptions(t, rs.base, "SW-SE", RefundOptions{SystemErrorAfterAccept: true})
		_, err := rs.c.ApplyRefund(ctx, rs.req("sim-switch-1", "SW-SE", 20, 1000))
		var ae *wechatpay.APIError
		if !errors.As(err, &ae) || ae.HTTPStatus != 500 || ae.Code != "SYSTEM_ERROR" || !wechatpay.Retryable(err) {
			t.Fatalf("first apply: %v", err)
		}
		// Yet the refund exists: the query finds it, and asking again answers it.
		q, err := rs.c.QueryRefund(ctx, "SW-SE")
		if err != nil || q.AmountFen != 20 {
			t.Fatalf("query: %+v %v", q, err)
		}
		again, err := rs.c.ApplyRefund(ctx, rs.req("sim-switch-1", "SW-SE", 20, 1000))
		if err != nil || again.RefundID != q.RefundID {
			t.Fatalf("apply again: %+v %v", again, err)
		}
		if v := waitRefund(t, rs.base, "SW-SE", "SUCCESS", 1); v.Executions != 1 || v.Applies != 2 {
			t.Errorf("view %+v", v)
		}
	})

	t.Run("refused", func(t *testing.T) {
		setRefundOptions(t, rs.base, "SW-RF", RefundOptions{Refuse: "USER_ACCOUNT_ABNORMAL"})
		_, err := rs.c.ApplyRefund(ctx, rs.req("sim-switch-1", "SW-RF", 30, 1000))
		var ae *wechatpay.APIError
		if !errors.Is(err, wechatpay.ErrRefundRefused) || !errors.As(err, &ae) || ae.Code != "USER_ACCOUNT_ABNORMAL" {
			t.Fatalf("refused: %v", err)
		}
	})

	t.Run("abnormal, then success", func(t *testing.T) {
		before := rs.v3.count()
		setRefundOptions(t, rs.base, "SW-AB", RefundOptions{Outcome: "ABNORMAL"})
		if _, err := rs.c.ApplyRefund(ctx, rs.req("sim-switch-1", "SW-AB", 40, 1000)); err != nil {
			t.Fatal(err)
		}
		waitRefund(t, rs.base, "SW-AB", "SUCCESS", 2)
		var events []string
		for i := before; i < rs.v3.count(); i++ {
			h, body := rs.v3.get(i)
			n, content := rs.sdkRefundNotice(t, h, body)
			if content["out_refund_no"] == "SW-AB" {
				events = append(events, n.EventType+"/"+content["refund_status"].(string))
			}
		}
		if strings.Join(events, " ") != "REFUND.ABNORMAL/ABNORMAL REFUND.SUCCESS/SUCCESS" {
			t.Errorf("events %v", events)
		}
	})

	t.Run("abnormal, then closed, in v2", func(t *testing.T) {
		setRefundOptions(t, rs.base, "SW-AC", RefundOptions{Outcome: "ABNORMAL", Then: "CLOSED", Version: "v2"})
		if _, err := rs.c.ApplyRefund(ctx, rs.req("sim-switch-1", "SW-AC", 50, 1000)); err != nil {
			t.Fatal(err)
		}
		waitRefund(t, rs.base, "SW-AC", "CLOSED", 2)
		var statuses []string
		for _, body := range rs.v2.received() {
			p, err := apiv2.DecodeXML(body)
			if err != nil {
				t.Fatal(err)
			}
			in := decryptReqInfo(t, p["req_info"], testKey)
			if in["out_refund_no"] == "SW-AC" {
				statuses = append(statuses, in["refund_status"]+"/"+in["refund_request_source"])
			}
		}
		if strings.Join(statuses, " ") != "CHANGE/API REFUNDCLOSE/API" {
			t.Errorf("v2 statuses %v", statuses)
		}
		// A closed refund gives its amount back at WeChat.
		if tr := refundSummary(t, rs.base).Trades["sim-switch-1"]; tr.RequestedFen != 10+20+40 {
			t.Errorf("trade %+v", tr)
		}
	})

	t.Run("dropped, then sent again", func(t *testing.T) {
		setRefundOptions(t, rs.base, "SW-DR", RefundOptions{Drop: true})
		if _, err := rs.c.ApplyRefund(ctx, rs.req("sim-switch-1", "SW-DR", 60, 1000)); err != nil {
			t.Fatal(err)
		}
		v := waitRefund(t, rs.base, "SW-DR", "SUCCESS", 0)
		for v.Dropped == 0 {
			time.Sleep(5 * time.Millisecond)
			v = getRefund(t, rs.base, "SW-DR")
		}
		if status, out := postJSON(t, rs.base+"/sim/refunds/SW-DR/notify", map[string]any{}); status != http.StatusAccepted {
			t.Fatalf("renotify: %d %s", status, out)
		}
		if v := waitRefund(t, rs.base, "SW-DR", "SUCCESS", 1); !v.Deliveries[0].Delivered || v.Dropped != 1 {
			t.Errorf("view %+v", v)
		}
	})

	t.Run("bad options", func(t *testing.T) {
		for _, o := range []RefundOptions{{Outcome: "DONE"}, {Then: "ABNORMAL"}, {Processing: "soon"}, {NotEnough: -1},
			{Refuse: "SYSTEM_ERROR"}, {Version: "v4"}} {
			if status, _ := postJSON(t, rs.base+"/sim/refunds/SW-BAD/options", o); status != http.StatusBadRequest {
				t.Errorf("%+v: %d", o, status)
			}
		}
		if status, _ := postJSON(t, rs.base+"/sim/refunds/SW-AB/options", RefundOptions{}); status != http.StatusConflict {
			t.Errorf("options of an existing refund: %d", status)
		}
		if status, _ := postJSON(t, rs.base+"/sim/refunds/SW-NONE/notify", map[string]any{}); status != http.StatusNotFound {
			t.Errorf("renotify unknown: %d", status)
		}
	})
}

// The notification is retried on WeChat's schedule until a correct answer.
func TestRefundNotificationRetried(t *testing.T) {
	m := newMerchant(t)
	v3 := newV3Receiver(t, func(n int) int {
		if n < 3 {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	base := newSimV3(t, v3.srv.URL, nil) // TimeScale 0.0001: 15 s is 1.5 ms
	c := m.client(t, base, m.key)
	rs := &refundSim{base: base, m: m, c: c, v3: v3}
	rs.paid(t, "sim-retry-1", 100)
	if _, err := c.ApplyRefund(context.Background(), rs.req("sim-retry-1", "RT-1", 100, 100)); err != nil {
		t.Fatal(err)
	}
	v := waitRefund(t, base, "RT-1", "SUCCESS", 1)
	if a := v.Deliveries[0].Attempts; len(a) != 3 || a[0].Accepted || a[1].Accepted || !a[2].Accepted {
		t.Fatalf("attempts %+v", a)
	}
	// Each attempt is signed afresh and verifies.
	for i := range 3 {
		h, body := v3.get(i)
		rs.sdkRefundNotice(t, h, body)
	}
}

func TestPortalRefund(t *testing.T) {
	rs := newRefundSim(t, 20*time.Millisecond)
	ctx := context.Background()
	txid := rs.paid(t, "sim-portal-1", 500)

	status, out := postJSON(t, rs.base+"/sim/refunds", PortalRefundRequest{OutTradeNo: "sim-portal-1", AmountFen: 200})
	if status != http.StatusCreated {
		t.Fatalf("portal refund: %d %s", status, out)
	}
	var created RefundView
	if err := json.Unmarshal(out, &created); err != nil {
		t.Fatal(err)
	}
	if created.Source != "VENDOR_PLATFORM" || !payment.ValidOutRefundNo(created.OutRefundNo) || created.Status != "PROCESSING" ||
		created.Executions != 1 {
		t.Fatalf("created %+v", created)
	}
	v := waitRefund(t, rs.base, created.OutRefundNo, "SUCCESS", 1)
	bodies := rs.v2.received()
	if len(bodies) != 1 || rs.v3.count() != 0 || !v.Deliveries[0].Delivered || v.Deliveries[0].API != "v2" {
		t.Fatalf("%d v2 and %d v3 notifications; %+v", len(bodies), rs.v3.count(), v)
	}
	outer, err := apiv2.DecodeXML(bodies[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, signed := outer["sign"]; signed || outer["return_code"] != "SUCCESS" || outer["appid"] != testAppID ||
		outer["mch_id"] != testMchID || outer["nonce_str"] == "" || len(outer) != 5 {
		t.Errorf("outer %v", outer)
	}
	in := decryptReqInfo(t, outer["req_info"], testKey)
	want := map[string]string{"out_trade_no": "sim-portal-1", "transaction_id": txid, "out_refund_no": created.OutRefundNo,
		"refund_id": created.RefundID, "total_fee": "500", "refund_fee": "200", "settlement_refund_fee": "200",
		"settlement_total_fee": "500", "refund_status": "SUCCESS", "refund_request_source": "VENDOR_PLATFORM",
		"refund_recv_accout": "支付用户零钱", "refund_account": "REFUND_SOURCE_RECHARGE_FUNDS"}
	for k, w := range want {
		if in[k] != w {
			t.Errorf("req_info %s = %q, want %q", k, in[k], w)
		}
	}
	if st, err := time.ParseInLocation("2006-01-02 15:04:05", in["success_time"], wechatpay.Beijing); err != nil || time.Since(st) > time.Minute {
		t.Errorf("success_time %q: %v", in["success_time"], err)
	}
	// The trade is REFUND at WeChat, and the service's refund query finds it.
	if tr, err := rs.c.QueryOrder(ctx, "sim-portal-1"); err != nil || tr.TradeState != payment.TradeRefund {
		t.Errorf("order query: %+v %v", tr, err)
	}
	if q, err := rs.c.QueryRefund(ctx, created.OutRefundNo); err != nil || q.Status != payment.RefundSuccess || q.AmountFen != 200 {
		t.Errorf("refund query: %+v %v", q, err)
	}

	// A chosen number; beyond what is left; an unpaid or unknown trade.
	status, out = postJSON(t, rs.base+"/sim/refunds", PortalRefundRequest{OutTradeNo: "sim-portal-1", AmountFen: 300, OutRefundNo: "PORTAL-2",
		RefundOptions: RefundOptions{Outcome: "ABNORMAL", Then: "CLOSED"}})
	if status != http.StatusCreated {
		t.Fatalf("second: %d %s", status, out)
	}
	waitRefund(t, rs.base, "PORTAL-2", "CLOSED", 2)
	for _, bad := range []struct {
		req    PortalRefundRequest
		status int
	}{
		{PortalRefundRequest{OutTradeNo: "sim-portal-1", AmountFen: 301}, http.StatusConflict},
		{PortalRefundRequest{OutTradeNo: "sim-portal-1", AmountFen: 1, OutRefundNo: "PORTAL-2"}, http.StatusConflict},
		{PortalRefundRequest{OutTradeNo: "sim-portal-none", AmountFen: 1}, http.StatusConflict},
		{PortalRefundRequest{OutTradeNo: "sim-portal-1", AmountFen: 0}, http.StatusBadRequest},
		{PortalRefundRequest{OutTradeNo: "sim-portal-1", AmountFen: 1, RefundOptions: RefundOptions{NotEnough: 1}}, http.StatusBadRequest},
		{PortalRefundRequest{OutTradeNo: "sim-portal-1", AmountFen: 1, RefundOptions: RefundOptions{Version: "v3"}}, http.StatusBadRequest},
	} {
		if status, out := postJSON(t, rs.base+"/sim/refunds", bad.req); status != bad.status {
			t.Errorf("%+v: %d %s, want %d", bad.req, status, out, bad.status)
		}
	}
	// The closed one gave its 300 back: 300 is left again.
	if tr := refundSummary(t, rs.base).Trades["sim-portal-1"]; tr != (TradeRefunds{TotalFen: 500, RefundedFen: 200, RequestedFen: 200, Refunds: 2}) {
		t.Errorf("trade %+v", tr)
	}
	if status, out := postJSON(t, rs.base+"/sim/refunds", PortalRefundRequest{OutTradeNo: "sim-portal-1", AmountFen: 300}); status != http.StatusCreated {
		t.Errorf("what is left: %d %s", status, out)
	}
	resp, err := http.Get(rs.base + "/sim/refunds/nope")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown refund: %d", resp.StatusCode)
	}
}

func TestEncryptReqInfoVector(t *testing.T) {
	// The sim's encryption against the independent decryption above, for
	// plaintexts that end on and off a block boundary.
	for _, plain := range []string{"<root></root>", "<root><a>1234567890</a></root>", strings.Repeat("x", 32)} {
		ct, err := encryptReqInfo(testKey, []byte(plain))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := base64.StdEncoding.DecodeString(ct)
		if len(raw)%aes.BlockSize != 0 || len(raw) <= len(plain) {
			t.Errorf("%q: %d bytes", plain, len(raw))
		}
		if strings.HasPrefix(plain, "<root>") {
			decryptReqInfo(t, ct, testKey)
		}
	}
}

func TestLoadConfigRefunds(t *testing.T) {
	env := map[string]string{"WECHATPAY_APPID": testAppID, "WECHATPAY_MCHID": testMchID, "WECHATPAY_API_KEY": testKey}
	c, err := LoadConfig(func(k string) string { return env[k] })
	if err != nil || c.RefundProcessing != DefaultRefundProcessing || c.RefundNotifyURL != "" {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	s, err := New(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.cfg.RefundNotifyURL != DefaultNotifyURL {
		t.Errorf("SIM_REFUND_NOTIFY_URL defaults to %q, want the v2 notify URL", s.cfg.RefundNotifyURL)
	}
	env["SIM_REFUND_PROCESSING"], env["SIM_REFUND_NOTIFY_URL"] = "2m", "http://127.0.0.1:9/refunds"
	if c, err = LoadConfig(func(k string) string { return env[k] }); err != nil || c.RefundProcessing != 2*time.Minute ||
		c.RefundNotifyURL != "http://127.0.0.1:9/refunds" {
		t.Fatalf("set: %+v %v", c, err)
	}
	for k, v := range map[string]string{"SIM_REFUND_PROCESSING": "soon", "SIM_REFUND_NOTIFY_URL": "ftp://x"} {
		bad := map[string]string{}
		for a, b := range env {
			bad[a] = b
		}
		bad[k] = v
		if _, err := LoadConfig(func(k string) string { return bad[k] }); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: %v", k, v, err)
		}
	}
	if _, err := LoadConfig(func(k string) string {
		if k == "SIM_REFUND_PROCESSING" {
			return "-1s"
		}
		return env[k]
	}); err == nil {
		t.Error("negative processing accepted")
	}
	if !strings.Contains(c.String(), "refund_processing") {
		t.Errorf("config string %s", c)
	}
}
