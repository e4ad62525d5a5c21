package sim

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/services/payments"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/wechatpay"
	"github.com/payflow/payflow/wechatpay/apiv2"
	"github.com/payflow/payflow/wechatpay/apiv3"
)

// newSimV3 starts a simulator with the test keys; mod adjusts its config.
func newSimV3(t *testing.T, notifyURLV3 string, mod func(*Config)) string {
	t.Helper()
	kf := testKeys(t)
	cfg := Config{AppID: testAppID, MchID: testMchID, KeysDir: kf.Dir, NotifyURL: "http://127.0.0.1:1/notify",
		NotifyURLV3: notifyURLV3, TimeScale: 0.0001}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(s.Close)
	t.Cleanup(srv.Close)
	return srv.URL
}

func (m merchant) client(t *testing.T, base string, key *rsa.PrivateKey) *apiv3.Client {
	t.Helper()
	c, err := apiv3.NewClient(context.Background(), apiv3.ClientConfig{
		BaseURL: base, MchID: testMchID, MchCertSerial: m.kf.MchCertSerial, MchPrivateKey: key, Keys: m.keys})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// call makes a signed v3 request and checks the answer's signature.
func (m merchant) call(t *testing.T, base, method, uri string, body any) (int, []byte) {
	t.Helper()
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	ts, nonce := strconv.FormatInt(time.Now().Unix(), 10), "NONCE"+randomAlnum(27)
	sig, err := apiv3.SignMessage(m.key, apiv3.RequestMessage(method, uri, ts, nonce, raw))
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(method, base+uri, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", `WECHATPAY2-SHA256-RSA2048 serial_no="`+m.kf.MchCertSerial+`",mchid="`+testMchID+
		`",timestamp="`+ts+`",nonce_str="`+nonce+`",signature="`+sig+`"`)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	h := resp.Header
	if h.Get("Request-ID") == "" {
		t.Errorf("%s %s: no Request-ID", method, uri)
	}
	msg := apiv3.NotifyMessage(h.Get("Wechatpay-Timestamp"), h.Get("Wechatpay-Nonce"), out)
	if err := m.keys.Verifier().Verify(context.Background(), h.Get("Wechatpay-Serial"), msg, h.Get("Wechatpay-Signature")); err != nil {
		t.Errorf("%s %s: answer %d does not verify: %v", method, uri, resp.StatusCode, err)
	}
	return resp.StatusCode, out
}

func v3Code(t *testing.T, body []byte) string {
	t.Helper()
	var e struct{ Code, Message string }
	if err := json.Unmarshal(body, &e); err != nil || e.Message == "" {
		t.Errorf("error body %s", body)
	}
	return e.Code
}

func prepayBody(no string, total int64, openid string) map[string]any {
	b := map[string]any{"appid": testAppID, "mchid": testMchID, "description": "测试商品", "out_trade_no": no,
		"notify_url": "http://127.0.0.1:1/v3/notify", "amount": map[string]any{"total": total, "currency": "CNY"}}
	if openid != "" {
		b["payer"] = map[string]string{"openid": openid}
	}
	return b
}

// v3Receiver records notifications with their headers.
type v3Receiver struct {
	mu      sync.Mutex
	headers []http.Header
	bodies  [][]byte
	status  func(n int) int
	srv     *httptest.Server
}

func newV3Receiver(t *testing.T, status func(n int) int) *v3Receiver {
	rc := &v3Receiver{status: status}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.headers, rc.bodies = append(rc.headers, r.Header.Clone()), append(rc.bodies, body)
		n := len(rc.bodies)
		rc.mu.Unlock()
		code := http.StatusNoContent
		if rc.status != nil {
			code = rc.status(n)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *v3Receiver) get(i int) (http.Header, []byte) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.headers[i], rc.bodies[i]
}

func (rc *v3Receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.bodies)
}

func TestV3Query(t *testing.T) {
	rc := newV3Receiver(t, nil)
	base := newSimV3(t, rc.srv.URL, nil)
	m := newMerchant(t)
	c := m.client(t, base, m.key)
	ctx := context.Background()

	if status, out := m.call(t, base, "POST", "/v3/pay/transactions/native", prepayBody("v3-query-1", 250, "")); status != 200 {
		t.Fatalf("prepay: %d %s", status, out)
	}
	tr, err := c.QueryOrder(ctx, "v3-query-1")
	if err != nil || tr.TradeState != payment.TradeNotPay || tr.TransactionID != "" || !tr.PaidAt.IsZero() || tr.AmountFen != 250 {
		t.Fatalf("unpaid: %+v, %v", tr, err)
	}
	paid := pay(t, base, PayRequest{OutTradeNo: "v3-query-1"})
	if paid.Notification != "v3" {
		t.Errorf("notification %q, want v3 for a trade prepaid over v3", paid.Notification)
	}
	tr, err = c.QueryOrder(ctx, "v3-query-1")
	if err != nil || tr.TradeState != payment.TradeSuccess || tr.TransactionID != paid.TransactionID || tr.AmountFen != 250 ||
		tr.AppID != testAppID || tr.MchID != testMchID || tr.Currency != "CNY" || time.Since(tr.PaidAt) > time.Minute {
		t.Fatalf("paid: %+v, %v", tr, err)
	}
	_, zone := tr.PaidAt.Zone()
	if zone != 8*3600 {
		t.Errorf("success_time zone offset %d, want +08:00", zone)
	}

	// The raw answer holds every field of the transaction.
	status, out := m.call(t, base, "GET", "/v3/pay/transactions/out-trade-no/v3-query-1?mchid="+testMchID, nil)
	var tx map[string]any
	if err := json.Unmarshal(out, &tx); status != 200 || err != nil {
		t.Fatalf("raw query: %d %s", status, out)
	}
	for _, k := range []string{"appid", "mchid", "out_trade_no", "transaction_id", "trade_type", "trade_state", "trade_state_desc",
		"bank_type", "attach", "success_time", "payer", "amount"} {
		if _, ok := tx[k]; !ok {
			t.Errorf("transaction lacks %s", k)
		}
	}

	if _, err := c.QueryOrder(ctx, "v3-unknown"); !errors.Is(err, wechatpay.ErrOrderNotExist) || wechatpay.Retryable(err) {
		t.Errorf("unknown: %v", err)
	}
	status, out = m.call(t, base, "GET", "/v3/pay/transactions/out-trade-no/v3-unknown?mchid="+testMchID, nil)
	if status != 404 || v3Code(t, out) != "ORDER_NOT_EXIST" {
		t.Errorf("unknown raw: %d %s", status, out)
	}

	// Signed with a key that is not the merchant's.
	other, err := utils.LoadPrivateKeyWithPath(filepath.Join(m.kf.Dir, platformDir, m.kf.PublicKeyID+keySuffix))
	if err != nil {
		t.Fatal(err)
	}
	var ae *wechatpay.APIError
	if _, err := m.client(t, base, other).QueryOrder(ctx, "v3-query-1"); !errors.As(err, &ae) || ae.HTTPStatus != 401 || ae.Code != "SIGN_ERROR" || !isFault(err, wechatpay.FaultConfig) {
		t.Errorf("bad merchant signature: %v", err)
	}
	forged := m
	forged.key = other
	if status, out := forged.call(t, base, "GET", "/v3/pay/transactions/out-trade-no/v3-query-1?mchid="+testMchID, nil); status != 401 ||
		v3Code(t, out) != "SIGN_ERROR" || !strings.Contains(string(out), "truncated_sign_message") {
		t.Errorf("forged raw: %d %s", status, out)
	}
	req, _ := http.NewRequest("GET", base+"/v3/pay/transactions/out-trade-no/v3-query-1?mchid="+testMchID, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || v3Code(t, out) != "SIGN_ERROR" || resp.Header.Get("Wechatpay-Signature") == "" {
		t.Errorf("unsigned request: %d %s", resp.StatusCode, out)
	}
}

// The sandbox's v3 notifications parse with the official SDK's notify
// handler and verifiers, under each of its signing identities.
func TestV3Notification(t *testing.T) {
	m := newMerchant(t)
	kf := m.kf
	tests := []struct{ name, platformKey, wantSerial string }{
		{"primary public key", "", kf.PublicKeyID},
		{"second public key", kf.SecondPublicKeyID, kf.SecondPublicKeyID},
		{"platform certificate", kf.PlatformCertSerial, kf.PlatformCertSerial},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newV3Receiver(t, func(n int) int { // the first attempt fails: a retry must verify too
				if n == 1 {
					return http.StatusInternalServerError
				}
				return http.StatusOK
			})
			base := newSimV3(t, rc.srv.URL, func(c *Config) { c.NotifyVersion = "v3" })
			paid := pay(t, base, PayRequest{OutTradeNo: "v3-notify-1", AmountFen: 321, PlatformKey: tt.platformKey})
			if paid.Notification != "v3" {
				t.Fatalf("pay answer %+v", paid)
			}
			d := waitDone(t, base, "v3-notify-1", 1).Deliveries[0]
			if d.API != "v3" || len(d.Attempts) != 2 || d.Attempts[0].Accepted || !d.Delivered || rc.count() != 2 {
				t.Fatalf("delivery %+v", d)
			}
			for i := range 2 {
				h, body := rc.get(i)
				if h.Get("Wechatpay-Serial") != tt.wantSerial || h.Get("Wechatpay-Signature-Type") != "WECHATPAY2-SHA256-RSA2048" {
					t.Errorf("headers %v", h)
				}
				tx := new(payments.Transaction)
				req, err := sdkParse(t, kf, tt.wantSerial, h, body, tx)
				if err != nil {
					t.Fatalf("attempt %d: the SDK refuses it: %v", i+1, err)
				}
				paidAt, perr := time.Parse(time.RFC3339, deref(tx.SuccessTime))
				if deref(tx.OutTradeNo) != "v3-notify-1" || tx.Amount == nil || *tx.Amount.Total != 321 ||
					deref(tx.TransactionId) != paid.TransactionID || deref(tx.TradeState) != "SUCCESS" ||
					deref(tx.Appid) != testAppID || deref(tx.Mchid) != testMchID || perr != nil || time.Since(paidAt) > time.Minute ||
					req.EventType != "TRANSACTION.SUCCESS" || req.Resource.OriginalType != "transaction" {
					t.Errorf("notification %+v, transaction %+v", req, tx)
				}
			}
			_, body := rc.get(0)
			var env map[string]any
			if err := json.Unmarshal(body, &env); err != nil {
				t.Fatal(err)
			}
			res, _ := env["resource"].(map[string]any)
			if env["event_type"] != "TRANSACTION.SUCCESS" || env["resource_type"] != "encrypt-resource" || env["summary"] != "支付成功" ||
				len(env["id"].(string)) != 36 || res["algorithm"] != "AEAD_AES_256_GCM" || res["associated_data"] != "transaction" ||
				res["original_type"] != "transaction" || len(res["nonce"].(string)) != 12 {
				t.Errorf("envelope %s", body)
			}
		})
	}

	t.Run("tampered", func(t *testing.T) {
		for _, tamper := range []string{"amount", "sign"} {
			rc := newV3Receiver(t, nil)
			base := newSimV3(t, rc.srv.URL, nil)
			pay(t, base, PayRequest{OutTradeNo: "v3-notify-2", AmountFen: 5, Version: "v3", Tamper: tamper})
			waitDone(t, base, "v3-notify-2", 1)
			h, body := rc.get(0)
			if _, err := sdkParse(t, m.kf, m.kf.PublicKeyID, h, body, new(payments.Transaction)); err == nil {
				t.Errorf("%s: the SDK accepts a tampered notification", tamper)
			}
		}
	})
}

func TestV3PrepayAndClose(t *testing.T) {
	rc := newV3Receiver(t, nil)
	base := newSimV3(t, rc.srv.URL, nil)
	m := newMerchant(t)
	jsapi := func(body any) (int, []byte) { return m.call(t, base, "POST", "/v3/pay/transactions/jsapi", body) }
	closeURI := func(no string) string { return "/v3/pay/transactions/out-trade-no/" + no + "/close" }
	mch := map[string]string{"mchid": testMchID}

	status, first := jsapi(prepayBody("v3-prepay-1", 100, "oUser1"))
	var ans struct {
		PrepayID string `json:"prepay_id"`
		CodeURL  string `json:"code_url"`
	}
	if err := json.Unmarshal(first, &ans); status != 200 || err != nil || !strings.HasPrefix(ans.PrepayID, "wx") {
		t.Fatalf("jsapi: %d %s", status, first)
	}
	if status, again := jsapi(prepayBody("v3-prepay-1", 100, "oUser1")); status != 200 || !bytes.Equal(again, first) {
		t.Errorf("repeat: %d %s, want %s", status, again, first)
	}
	if status, out := jsapi(prepayBody("v3-prepay-1", 101, "oUser1")); status != 400 || v3Code(t, out) != "OUT_TRADE_NO_USED" {
		t.Errorf("other amount: %d %s", status, out)
	}
	for name, body := range map[string]map[string]any{
		"no openid":   prepayBody("v3-prepay-2", 100, ""),
		"zero amount": prepayBody("v3-prepay-2", 0, "oUser1"),
		"bad no":      prepayBody("x", 100, "oUser1"),
	} {
		if status, out := jsapi(body); status != 400 || v3Code(t, out) != "PARAM_ERROR" {
			t.Errorf("%s: %d %s", name, status, out)
		}
	}
	status, out := m.call(t, base, "POST", "/v3/pay/transactions/native", prepayBody("v3-prepay-3", 100, ""))
	if err := json.Unmarshal(out, &ans); status != 200 || err != nil || !strings.HasPrefix(ans.CodeURL, "weixin://wxpay/bizpayurl?pr=") {
		t.Fatalf("native: %d %s", status, out)
	}
	v := getTrade(t, base, "v3-prepay-1")
	if v.Version != "v3" || v.TradeType != "JSAPI" || v.PrepayID == "" || v.Prepays != 3 || v.NotifyURL != "http://127.0.0.1:1/v3/notify" || v.OpenID != "oUser1" {
		t.Errorf("trade view %+v", v)
	}

	// Close an unpaid trade, twice; then neither prepay nor pay works.
	for range 2 {
		if status, out := m.call(t, base, "POST", closeURI("v3-prepay-3"), mch); status != 204 || len(out) != 0 {
			t.Errorf("close: %d %s", status, out)
		}
	}
	if status, out := m.call(t, base, "POST", "/v3/pay/transactions/native", prepayBody("v3-prepay-3", 100, "")); status != 400 || v3Code(t, out) != "ORDER_CLOSED" {
		t.Errorf("prepay closed: %d %s", status, out)
	}
	if status, out := postJSON(t, base+"/sim/pay", PayRequest{OutTradeNo: "v3-prepay-3"}); status != 409 {
		t.Errorf("pay closed: %d %s", status, out)
	}
	if v := getTrade(t, base, "v3-prepay-3"); v.TradeState != "CLOSED" || v.ClosedAt == nil || v.Closes != 2 {
		t.Errorf("closed trade %+v", v)
	}
	if p := pay(t, base, PayRequest{OutTradeNo: "v3-prepay-3", Force: true, Drop: true}); p.TradeState != "SUCCESS" {
		t.Errorf("forced pay %+v", p)
	}

	// A paid trade cannot be closed or prepaid again.
	pay(t, base, PayRequest{OutTradeNo: "v3-prepay-1", Drop: true})
	if status, out := m.call(t, base, "POST", closeURI("v3-prepay-1"), mch); status != 400 || v3Code(t, out) != "ORDERPAID" {
		t.Errorf("close paid: %d %s", status, out)
	}
	if status, out := jsapi(prepayBody("v3-prepay-1", 100, "oUser1")); status != 400 || v3Code(t, out) != "ORDERPAID" {
		t.Errorf("prepay paid: %d %s", status, out)
	}
	if status, out := m.call(t, base, "POST", closeURI("v3-none-1"), mch); status != 404 || v3Code(t, out) != "ORDER_NOT_EXIST" {
		t.Errorf("close unknown: %d %s", status, out)
	}
}

func TestV3NotificationGoesToPrepayNotifyURL(t *testing.T) {
	rc := newV3Receiver(t, nil)
	base := newSimV3(t, "http://127.0.0.1:1/default", nil)
	m := newMerchant(t)
	body := prepayBody("v3-url-1", 100, "")
	body["notify_url"] = rc.srv.URL + "/wechatpay/v3/notify"
	if status, out := m.call(t, base, "POST", "/v3/pay/transactions/native", body); status != 200 {
		t.Fatalf("prepay: %d %s", status, out)
	}
	pay(t, base, PayRequest{OutTradeNo: "v3-url-1"})
	if d := waitDone(t, base, "v3-url-1", 1).Deliveries[0]; !d.Delivered || rc.count() != 1 {
		t.Errorf("delivery %+v", d)
	}
}

// v2Call posts params, signed with the test key, and returns the answer.
func v2Call(t *testing.T, base, path string, params map[string]string) map[string]string {
	t.Helper()
	params["appid"], params["mch_id"], params["nonce_str"] = testAppID, testMchID, newNonce()
	sign, err := apiv2.Sign(params, testKey, "")
	if err != nil {
		t.Fatal(err)
	}
	params["sign"] = sign
	resp, err := http.Post(base+path, "text/xml", bytes.NewReader(apiv2.EncodeXML(params)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	p, err := apiv2.DecodeXML(raw)
	if err != nil {
		t.Fatalf("%s: %s", path, raw)
	}
	if p["return_code"] == "SUCCESS" {
		if err := apiv2.Verify(p, testKey); err != nil {
			t.Errorf("%s answer does not verify: %v", path, err)
		}
	}
	return p
}

func TestV2UnifiedOrderAndClose(t *testing.T) {
	rc := newReceiver(t, nil)
	base := newSim(t, "http://127.0.0.1:1/notify", 0.0001)
	order := func(no, fee string) map[string]string {
		return map[string]string{"body": "测试", "out_trade_no": no, "total_fee": fee, "spbill_create_ip": "127.0.0.1",
			"notify_url": rc.srv.URL, "trade_type": "NATIVE", "product_id": "p1"}
	}
	p := v2Call(t, base, "/pay/unifiedorder", order("v2-order-1", "300"))
	if p["result_code"] != "SUCCESS" || !strings.HasPrefix(p["prepay_id"], "wx") || !strings.HasPrefix(p["code_url"], "weixin://") || p["trade_type"] != "NATIVE" {
		t.Fatalf("unifiedorder %v", p)
	}
	if again := v2Call(t, base, "/pay/unifiedorder", order("v2-order-1", "300")); again["prepay_id"] != p["prepay_id"] || again["code_url"] != p["code_url"] {
		t.Errorf("repeat %v", again)
	}
	if other := v2Call(t, base, "/pay/unifiedorder", order("v2-order-1", "301")); other["result_code"] != "FAIL" || other["err_code"] != "OUT_TRADE_NO_USED" {
		t.Errorf("other fee %v", other)
	}
	jsapi := order("v2-order-2", "300")
	jsapi["trade_type"] = "JSAPI"
	if bad := v2Call(t, base, "/pay/unifiedorder", jsapi); bad["return_code"] != "FAIL" {
		t.Errorf("JSAPI without openid %v", bad)
	}

	// Paid: notified at the prepay's notify_url; cannot be closed or prepaid.
	paid := pay(t, base, PayRequest{OutTradeNo: "v2-order-1"})
	if paid.Notification != "v2" {
		t.Errorf("pay %+v", paid)
	}
	waitDone(t, base, "v2-order-1", 1)
	n, err := apiv2.PaymentNotification(decodeVerified(t, rc.received()[0]))
	if err != nil || n.AmountFen != 300 || n.TransactionID != paid.TransactionID {
		t.Errorf("notification %+v %v", n, err)
	}
	if c := v2Call(t, base, "/pay/closeorder", map[string]string{"out_trade_no": "v2-order-1"}); c["err_code"] != "ORDERPAID" {
		t.Errorf("close paid %v", c)
	}
	if c := v2Call(t, base, "/pay/unifiedorder", order("v2-order-1", "300")); c["err_code"] != "ORDERPAID" {
		t.Errorf("prepay paid %v", c)
	}

	v2Call(t, base, "/pay/unifiedorder", order("v2-order-3", "300"))
	time.Sleep(closeWindow(0.0001)) // WeChat refuses to close an order younger than 5 minutes (scaled)
	if c := v2Call(t, base, "/pay/closeorder", map[string]string{"out_trade_no": "v2-order-3"}); c["result_code"] != "SUCCESS" {
		t.Errorf("close %v", c)
	}
	if c := v2Call(t, base, "/pay/closeorder", map[string]string{"out_trade_no": "v2-order-3"}); c["err_code"] != "ORDERCLOSED" {
		t.Errorf("close again %v", c)
	}
	if c := v2Call(t, base, "/pay/unifiedorder", order("v2-order-3", "300")); c["err_code"] != "ORDERCLOSED" {
		t.Errorf("prepay closed %v", c)
	}
	if c := v2Call(t, base, "/pay/closeorder", map[string]string{"out_trade_no": "v2-none-1"}); c["err_code"] != "ORDERNOTEXIST" {
		t.Errorf("close unknown %v", c)
	}
	if tr, err := client(base, "").QueryOrder(context.Background(), "v2-order-3"); err != nil || tr.TradeState != "CLOSED" {
		t.Errorf("query closed: %+v %v", tr, err)
	}

	// The orchestrator's v2 client: prepay twice (same answer), close twice.
	ctx := context.Background()
	for _, tradeType := range []string{payment.TradeTypeNative, payment.TradeTypeJSAPI} {
		req := payment.PrepayRequest{OutTradeNo: "v2-client-" + tradeType, Description: "测试", AmountFen: 99, TradeType: tradeType,
			OpenID: "oUser2", NotifyURL: rc.srv.URL, TimeExpire: time.Now().Add(time.Hour)}
		c := client(base, apiv2.SignTypeHMACSHA256)
		p1, err := c.Prepay(ctx, req)
		if err != nil || p1.PrepayID == "" {
			t.Fatalf("%s prepay: %+v %v", tradeType, p1, err)
		}
		if p2, err := c.Prepay(ctx, req); err != nil || p2.PrepayID != p1.PrepayID || p2.CodeURL != p1.CodeURL {
			t.Errorf("%s prepay again: %+v %v", tradeType, p2, err)
		}
		time.Sleep(closeWindow(0.0001))
		for range 2 {
			if err := c.CloseOrder(ctx, req.OutTradeNo); err != nil {
				t.Errorf("%s close: %v", tradeType, err)
			}
		}
		if _, err := c.Prepay(ctx, req); !errors.Is(err, wechatpay.ErrOrderClosed) {
			t.Errorf("%s prepay closed: %v", tradeType, err)
		}
	}
	pay(t, base, PayRequest{OutTradeNo: "v2-order-1", Drop: true})
	if err := client(base, "").CloseOrder(ctx, "v2-order-1"); !errors.Is(err, wechatpay.ErrOrderPaid) {
		t.Errorf("close paid through the client: %v", err)
	}
}

func TestExpiry(t *testing.T) {
	base := newSimV3(t, "http://127.0.0.1:1/notify", nil)
	m := newMerchant(t)
	body := prepayBody("v3-expire-1", 100, "")
	body["time_expire"] = time.Now().Add(-time.Second).In(beijing).Format(time.RFC3339)
	if status, out := m.call(t, base, "POST", "/v3/pay/transactions/native", body); status != 200 {
		t.Fatalf("prepay: %d %s", status, out)
	}
	status, out := postJSON(t, base+"/sim/pay", PayRequest{OutTradeNo: "v3-expire-1"})
	if status != http.StatusConflict || !strings.Contains(string(out), "order expired") {
		t.Errorf("pay expired: %d %s", status, out)
	}
	if tr, err := m.client(t, base, m.key).QueryOrder(context.Background(), "v3-expire-1"); err != nil || tr.TradeState != "NOTPAY" {
		t.Errorf("query expired: %+v %v", tr, err)
	}
	if v := getTrade(t, base, "v3-expire-1"); v.TimeExpire == nil || v.TradeState != "NOTPAY" {
		t.Errorf("trade %+v", v)
	}
}

func TestDrop(t *testing.T) {
	rc := newReceiver(t, nil)
	base := newSim(t, rc.srv.URL, 0.0001)
	if p := pay(t, base, PayRequest{OutTradeNo: "drop-0001", AmountFen: 1, Drop: true}); p.Notification != "dropped" || p.TradeState != "SUCCESS" {
		t.Fatalf("pay %+v", p)
	}
	if v := getTrade(t, base, "drop-0001"); v.Dropped != 1 || len(v.Deliveries) != 0 {
		t.Errorf("trade %+v", v)
	}
	// The lost notification can still arrive late.
	if status, out := postJSON(t, base+"/sim/trades/drop-0001/notify", nil); status != http.StatusAccepted {
		t.Fatalf("renotify: %d %s", status, out)
	}
	waitDone(t, base, "drop-0001", 1)
	decodeVerified(t, rc.received()[0])

	// SIM_DROP_NOTIFICATIONS drops every payment's notification.
	s, err := New(Config{AppID: testAppID, MchID: testMchID, APIKey: testKey, NotifyURL: rc.srv.URL, DropNotifications: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(s.Close)
	t.Cleanup(srv.Close)
	if p := pay(t, srv.URL, PayRequest{OutTradeNo: "drop-0002", AmountFen: 1}); p.Notification != "dropped" {
		t.Errorf("pay %+v", p)
	}
	if n := len(rc.received()); n != 1 {
		t.Errorf("receiver got %d notifications, want 1", n)
	}
}

func TestWithoutV3Keys(t *testing.T) {
	base := newSim(t, "http://127.0.0.1:1/notify", 0)
	resp, err := http.Get(base + "/v3/pay/transactions/out-trade-no/order-0001?mchid=" + testMchID)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || !strings.Contains(string(out), "sandbox has no v3 keys configured") {
		t.Errorf("v3 query: %d %s", resp.StatusCode, out)
	}
	for _, req := range []PayRequest{{OutTradeNo: "order-0001", AmountFen: 1, Version: "v3"}, {OutTradeNo: "order-0001", AmountFen: 1, PlatformKey: "x"}} {
		if status, out := postJSON(t, base+"/sim/pay", req); status != 400 {
			t.Errorf("pay %+v: %d %s", req, status, out)
		}
	}
}

func TestLoadConfigV3(t *testing.T) {
	kf := testKeys(t)
	env := map[string]string{"WECHATPAY_APPID": testAppID, "WECHATPAY_MCHID": testMchID, "SIM_KEYS_DIR": kf.Dir}
	getenv := func(k string) string { return env[k] }
	c, err := LoadConfig(getenv)
	if err != nil {
		t.Fatal(err)
	}
	if c.NotifyURLV3 != DefaultNotifyURLV3 || c.NotifyVersion != "v2" || c.DropNotifications {
		t.Errorf("defaults %v", c)
	}
	s, err := New(c, nil)
	if err != nil {
		t.Fatalf("New without WECHATPAY_API_KEY: %v", err)
	}
	s.Close()
	if s.cfg.APIKey != strings.TrimSpace(string(mustRead(t, kf.APIKeyFile))) || s.v3.def.id != kf.PublicKeyID {
		t.Errorf("keys from SIM_KEYS_DIR not used")
	}

	secret := "0123456789abcdef0123456789abcdef"
	for k, v := range map[string]string{"SIM_NOTIFY_VERSION": "v4", "SIM_DROP_NOTIFICATIONS": "maybe", "SIM_NOTIFY_URL_V3": "ftp://x",
		"WECHATPAY_APIV3_KEY": secret[:31]} {
		bad := map[string]string{k: v}
		for kk, vv := range env {
			if _, ok := bad[kk]; !ok {
				bad[kk] = vv
			}
		}
		if _, err := LoadConfig(func(k string) string { return bad[k] }); err == nil {
			t.Errorf("%s=%q accepted", k, v)
		} else if strings.Contains(err.Error(), secret[:31]) {
			t.Errorf("error shows the key: %v", err)
		}
	}
	env["WECHATPAY_APIV3_KEY"], env["SIM_PLATFORM_KEY"] = secret, kf.PlatformCertSerial
	c, err = LoadConfig(getenv)
	if err != nil || strings.Contains(c.String(), secret) {
		t.Fatalf("LoadConfig %v, %v", c, err)
	}
	if s, err = New(c, nil); err != nil || s.v3.apiV3Key != secret || !s.v3.def.cert {
		t.Fatalf("New: %v", err)
	}
	s.Close()
	c.PlatformKey = "PUB_KEY_ID_0000"
	if _, err := New(c, nil); err == nil {
		t.Error("unknown SIM_PLATFORM_KEY accepted")
	}
}

func TestV3ClientPrepayAndClose(t *testing.T) {
	base := newSimV3(t, "http://127.0.0.1:1/notify", nil)
	m := newMerchant(t)
	c, err := apiv3.NewClient(context.Background(), apiv3.ClientConfig{BaseURL: base, AppID: testAppID, MchID: testMchID,
		MchCertSerial: m.kf.MchCertSerial, MchPrivateKey: m.key, Keys: m.keys})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tradeType := range []string{payment.TradeTypeNative, payment.TradeTypeJSAPI} {
		req := payment.PrepayRequest{OutTradeNo: "v3-client-" + tradeType, Description: "测试", AmountFen: 88, TradeType: tradeType,
			OpenID: "oUser3", NotifyURL: "http://127.0.0.1:1/v3/notify", TimeExpire: time.Now().Add(time.Hour)}
		p1, err := c.Prepay(ctx, req)
		if err != nil || (tradeType == payment.TradeTypeNative) != (p1.CodeURL != "") {
			t.Fatalf("%s prepay: %+v %v", tradeType, p1, err)
		}
		if p1.JSAPI != nil && apiv3.VerifyJSAPIPaySign(&m.key.PublicKey, *p1.JSAPI) != nil {
			t.Errorf("%s paySign does not verify", tradeType)
		}
		if p2, err := c.Prepay(ctx, req); err != nil || p2.CodeURL != p1.CodeURL || (p1.JSAPI != nil && p2.JSAPI.Package != p1.JSAPI.Package) {
			t.Errorf("%s prepay again: %+v %v", tradeType, p2, err)
		}
		req.AmountFen++
		if _, err := c.Prepay(ctx, req); err == nil {
			t.Errorf("%s prepay with another amount: no error", tradeType)
		}
		for range 2 {
			if err := c.CloseOrder(ctx, req.OutTradeNo); err != nil {
				t.Errorf("%s close: %v", tradeType, err)
			}
		}
		if tr, err := c.QueryOrder(ctx, req.OutTradeNo); err != nil || tr.TradeState != payment.TradeClosed {
			t.Errorf("%s query closed: %+v %v", tradeType, tr, err)
		}
	}
	pay(t, base, PayRequest{OutTradeNo: "v3-client-NATIVE", Force: true, Drop: true})
	if err := c.CloseOrder(ctx, "v3-client-NATIVE"); !errors.Is(err, wechatpay.ErrOrderPaid) {
		t.Errorf("close paid: %v", err)
	}
	if err := c.CloseOrder(ctx, "v3-client-none"); !errors.Is(err, wechatpay.ErrOrderNotExist) {
		t.Errorf("close unknown: %v", err)
	}
}
