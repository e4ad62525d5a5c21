package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/payflow/payflow/metrics"
	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/store"
	"github.com/payflow/payflow/wechatpay/apiv2"
	"github.com/payflow/payflow/wechatpay/apiv3"
)

const (
	testAppID    = "wx2421b1c4370ec43b"
	testMchID    = "10000100"
	testAPIKey   = "192006250b4c09247ec02edce69f6a2d"
	testAPIv3Key = "0123456789ABCDEFGHIJKLMNOPQRSTUV"
	testKeyID    = "PUB_KEY_ID_0000000000000024101100397200000006"
)

// auditOrders is the store as the notify handlers see it: only the audit
// trail matters here (the embedded interface panics on anything else).
type auditOrders struct {
	Orders
	mu       sync.Mutex
	audited  []payment.Notification
	outcomes []string
	fail     error
}

func (f *auditOrders) CreateOrder(context.Context, store.NewOrder) (payment.Order, error) {
	return payment.Order{}, errors.New("not in this test")
}

func (f *auditOrders) GetOrder(context.Context, string) (payment.Order, error) {
	return payment.Order{}, errors.New("not in this test")
}

func (f *auditOrders) Ping(context.Context) error { return nil }

func (f *auditOrders) AuditExamined(_ context.Context, n payment.Notification, outcome payment.NotificationOutcome) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.audited = append(f.audited, n)
	f.outcomes = append(f.outcomes, string(outcome))
	return nil
}

// fakeAcceptor stands for the handoff to the order's workflow.
type fakeAcceptor struct {
	mu       sync.Mutex
	accepted []payment.Notification
	fail     error
}

func (f *fakeAcceptor) Accept(_ context.Context, n payment.Notification) (payment.NotificationOutcome, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return "", f.fail
	}
	f.accepted = append(f.accepted, n)
	return "recorded", nil
}

type notifyFixture struct {
	srv      *Server
	orders   *auditOrders
	handoff  *fakeAcceptor
	platform *rsa.PrivateKey
	reg      *prometheus.Registry
	now      time.Time
}

var (
	platformOnce sync.Once
	platformKey  *rsa.PrivateKey
)

func newNotifyFixture(t *testing.T) *notifyFixture {
	t.Helper()
	platformOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		platformKey = k
	})
	now := time.Now()
	v2, err := apiv2.NewNotifyParser(testAppID, testMchID, testAPIKey)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := apiv3.NewKeys(map[string]*rsa.PublicKey{testKeyID: &platformKey.PublicKey}, nil)
	if err != nil {
		t.Fatal(err)
	}
	v3, err := apiv3.NewNotifyParser(apiv3.ParserConfig{AppID: testAppID, MchID: testMchID, APIv3Key: testAPIv3Key,
		Keys: keys, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	f := &notifyFixture{orders: &auditOrders{}, handoff: &fakeAcceptor{}, platform: platformKey, reg: prometheus.NewRegistry(), now: now}
	f.srv = &Server{Orders: f.orders, Handoff: f.handoff, V2: v2, V3: v3, AppID: testAppID, MchID: testMchID,
		Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return now }, Metrics: metrics.New(f.reg)}
	return f
}

func (f *notifyFixture) post(t *testing.T, path string, h http.Header, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	for k, v := range h {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	f.srv.Handler().ServeHTTP(rec, req)
	return rec
}

// v2Payment is a signed v2 payment notification as WeChat sends it for
// an order of signType: HMAC-SHA256 without sign_type, MD5 with
// sign_type=MD5 when withType; kv override fields before signing.
func v2Payment(t *testing.T, signType string, withType bool, kv ...string) []byte {
	t.Helper()
	p := map[string]string{
		"return_code": "SUCCESS", "appid": testAppID, "mch_id": testMchID, "nonce_str": "1764212345678",
		"result_code": "SUCCESS", "openid": "oQ3xY5s0Vx9mAbCdEfGhIjKlMnOp", "is_subscribe": "N", "trade_type": "JSAPI",
		"bank_type": "OTHERS", "total_fee": "100", "cash_fee": "100", "fee_type": "CNY", "out_trade_no": "PF0001",
		"transaction_id": "4200002611202611274211234567", "time_end": "20261127101530",
	}
	if withType {
		p["sign_type"] = signType
	}
	for i := 0; i+1 < len(kv); i += 2 {
		p[kv[i]] = kv[i+1]
	}
	sign, err := apiv2.Sign(p, testAPIKey, signType)
	if err != nil {
		t.Fatal(err)
	}
	p["sign"] = sign
	return apiv2.EncodeXML(p)
}

// v2Refund is a v2 refund notification whose req_info is encrypted under
// key; kv override outer fields.
func v2Refund(t *testing.T, key string, kv ...string) []byte {
	t.Helper()
	inner := `<root><out_refund_no>RF0001</out_refund_no><out_trade_no>PF0001</out_trade_no><refund_fee>50</refund_fee>` +
		`<refund_id>50300002612026112712345678901</refund_id><refund_request_source>VENDOR_PLATFORM</refund_request_source>` +
		`<refund_status>SUCCESS</refund_status><success_time>2026-11-27 10:31:24</success_time><total_fee>100</total_fee>` +
		`<transaction_id>4200002611202611274211234567</transaction_id></root>`
	ri, err := apiv2.EncryptReqInfo([]byte(inner), key)
	if err != nil {
		t.Fatal(err)
	}
	p := map[string]string{"return_code": "SUCCESS", "appid": testAppID, "mch_id": testMchID, "nonce_str": "n", "req_info": ri}
	for i := 0; i+1 < len(kv); i += 2 {
		p[kv[i]] = kv[i+1]
	}
	return apiv2.EncodeXML(p)
}

// v3Body is a v3 notification of event whose resource (of originalType)
// encrypts res under apiV3Key.
func v3Body(t *testing.T, apiV3Key, event, originalType string, res any) []byte {
	t.Helper()
	plain, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := apiv3.EncryptResource(apiV3Key, "0123456789ab", originalType, plain)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"id": "EV-" + event, "create_time": "2026-11-27T10:15:30+08:00",
		"resource_type": "encrypt-resource", "event_type": event, "summary": "s",
		"resource": map[string]any{"original_type": originalType, "algorithm": apiv3.ResourceAlgorithm,
			"ciphertext": ct, "associated_data": originalType, "nonce": "0123456789ab"}})
	return b
}

func (f *notifyFixture) v3Header(t *testing.T, key *rsa.PrivateKey, serial string, at time.Time, body []byte) http.Header {
	t.Helper()
	ts := strconv.FormatInt(at.Unix(), 10)
	sig, err := apiv3.SignMessage(key, apiv3.NotifyMessage(ts, "nonce1", body))
	if err != nil {
		t.Fatal(err)
	}
	return http.Header{"Wechatpay-Serial": {serial}, "Wechatpay-Signature": {sig}, "Wechatpay-Timestamp": {ts},
		"Wechatpay-Nonce": {"nonce1"}, "Wechatpay-Signature-Type": {apiv3.SignatureType}}
}

func v3Transaction(appID, mchID string) map[string]any {
	return map[string]any{"appid": appID, "mchid": mchID, "out_trade_no": "PF0001",
		"transaction_id": "4200002611202611274211234567", "trade_type": "JSAPI", "trade_state": "SUCCESS",
		"trade_state_desc": "支付成功", "success_time": "2026-11-27T10:15:30+08:00",
		"payer": map[string]any{"openid": "o1"}, "amount": map[string]any{"total": 100, "currency": "CNY"}}
}

func v3RefundRes(mchID string) map[string]any {
	return map[string]any{"mchid": mchID, "out_trade_no": "PF0001", "transaction_id": "4200002611202611274211234567",
		"out_refund_no": "RF0001", "refund_id": "50300002612026112712345678901", "refund_status": "SUCCESS",
		"success_time": "2026-11-27T10:31:24+08:00", "amount": map[string]any{"total": 100, "refund": 50}}
}

// TestNotifyAnswers is the table of the notify endpoints' answers: what
// each input gets (status and body), and that nothing is handed on or
// audited unless it was verified.
func TestNotifyAnswers(t *testing.T) {
	okV2 := string(apiv2.Reply(true, ""))
	type want struct {
		status   int
		body     string // a substring of the answer
		accepted payment.Kind
		handed   bool // handed to the order's workflow
		audited  bool // kept in the audit trail as ignored
	}
	for _, tc := range []struct {
		name string
		path string
		req  func(t *testing.T, f *notifyFixture) (http.Header, []byte)
		mod  func(f *notifyFixture)
		want want
	}{
		// v2
		{"v2 HMAC payment without sign_type", "/wechatpay/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			return nil, v2Payment(t, apiv2.SignTypeHMACSHA256, false)
		}, nil, want{status: 200, body: okV2, accepted: payment.KindPayment, handed: true}},
		{"v2 MD5 payment with sign_type=MD5", "/wechatpay/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			return nil, v2Payment(t, apiv2.SignTypeMD5, true)
		}, nil, want{status: 200, body: okV2, accepted: payment.KindPayment, handed: true}},
		{"v2 MD5 payment without sign_type", "/wechatpay/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			return nil, v2Payment(t, apiv2.SignTypeMD5, false)
		}, nil, want{status: 200, body: okV2, accepted: payment.KindPayment, handed: true}},
		{"v2 refund (req_info)", "/wechatpay/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			return nil, v2Refund(t, testAPIKey)
		}, nil, want{status: 200, body: okV2, accepted: payment.KindRefund, handed: true}},
		{"v2 tampered cash_fee", "/wechatpay/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			return nil, bytes.Replace(v2Payment(t, apiv2.SignTypeHMACSHA256, false), []byte("[100]"), []byte("[1]"), 1)
		}, nil, want{status: 401, body: "invalid signature"}},
		{"v2 no sign", "/wechatpay/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			return nil, apiv2.EncodeXML(map[string]string{"return_code": "SUCCESS", "appid": testAppID, "mch_id": testMchID, "out_trade_no": "PF0001"})
		}, nil, want{status: 401, body: "missing sign"}},
		{"v2 foreign appid, well signed", "/wechatpay/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			return nil, v2Payment(t, apiv2.SignTypeHMACSHA256, false, "appid", "wx0000000000foreign")
		}, nil, want{status: 403, body: "not this merchant"}},
		{"v2 sign_type SHA1", "/wechatpay/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			return nil, v2Payment(t, apiv2.SignTypeMD5, false, "sign_type", "SHA1")
		}, nil, want{status: 400, body: "unsupported"}},
		{"v2 refund under another key", "/wechatpay/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			return nil, v2Refund(t, "another-merchant-key-000000000000")
		}, nil, want{status: 400, body: "decrypted"}},
		{"v2 refund, req_info garbage", "/wechatpay/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			return nil, v2Refund(t, testAPIKey, "req_info", "AAAAAAAAAAAAAAAAAAAAAA==")
		}, nil, want{status: 400, body: "decrypted"}},
		{"v2 refund for another merchant", "/wechatpay/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			return nil, v2Refund(t, testAPIKey, "mch_id", "1900000999")
		}, nil, want{status: 403}},
		{"v2 not XML", "/wechatpay/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			return nil, []byte("success")
		}, nil, want{status: 400, body: "malformed"}},
		{"v2 return_code FAIL", "/wechatpay/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			return nil, apiv2.Reply(false, "x")
		}, nil, want{status: 400, body: "malformed"}},
		{"v2 too large", "/wechatpay/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			return nil, bytes.Repeat([]byte("x"), maxNotifyBody+1)
		}, nil, want{status: 413}},
		{"v2 not recorded", "/wechatpay/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			return nil, v2Payment(t, apiv2.SignTypeHMACSHA256, false)
		}, func(f *notifyFixture) { f.handoff.fail = errors.New("temporal and postgres down") }, want{status: 503, body: "retry later"}},
		{"v2 not configured", "/wechatpay/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			return nil, v2Payment(t, apiv2.SignTypeHMACSHA256, false)
		}, func(f *notifyFixture) { f.srv.V2 = nil }, want{status: 503, body: "not configured"}},

		// v3
		{"v3 TRANSACTION.SUCCESS", "/wechatpay/v3/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			b := v3Body(t, testAPIv3Key, "TRANSACTION.SUCCESS", "transaction", v3Transaction(testAppID, testMchID))
			return f.v3Header(t, f.platform, testKeyID, f.now, b), b
		}, nil, want{status: 204, accepted: payment.KindPayment, handed: true}},
		{"v3 REFUND.SUCCESS", "/wechatpay/v3/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			b := v3Body(t, testAPIv3Key, "REFUND.SUCCESS", "refund", v3RefundRes(testMchID))
			return f.v3Header(t, f.platform, testKeyID, f.now, b), b
		}, nil, want{status: 204, accepted: payment.KindRefund, handed: true}},
		// A v3 refund notification sent to the v2 path (a refund notify_url
		// defaulting to a v2 WECHATPAY_NOTIFY_URL) is handled as v3.
		{"v3 REFUND.SUCCESS at the v2 path", "/wechatpay/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			b := v3Body(t, testAPIv3Key, "REFUND.SUCCESS", "refund", v3RefundRes(testMchID))
			return f.v3Header(t, f.platform, testKeyID, f.now, b), b
		}, nil, want{status: 204, accepted: payment.KindRefund, handed: true}},
		{"v3 other event", "/wechatpay/v3/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			b := v3Body(t, testAPIv3Key, "MCHTRANSFER.BILL.FINISHED", "mch_payment", map[string]any{"out_bill_no": "x"})
			return f.v3Header(t, f.platform, testKeyID, f.now, b), b
		}, nil, want{status: 204, accepted: payment.KindOther, audited: true}},
		{"v3 other event, audit trail down", "/wechatpay/v3/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			b := v3Body(t, testAPIv3Key, "MCHTRANSFER.BILL.FINISHED", "mch_payment", map[string]any{"out_bill_no": "x"})
			return f.v3Header(t, f.platform, testKeyID, f.now, b), b
		}, func(f *notifyFixture) { f.orders.fail = errors.New("postgres down") }, want{status: 503, body: "retry later"}},
		{"v3 refund not recorded", "/wechatpay/v3/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			b := v3Body(t, testAPIv3Key, "REFUND.SUCCESS", "refund", v3RefundRes(testMchID))
			return f.v3Header(t, f.platform, testKeyID, f.now, b), b
		}, func(f *notifyFixture) { f.handoff.fail = errors.New("down") }, want{status: 503, body: "retry later"}},
		{"v3 probe", "/wechatpay/v3/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			b := v3Body(t, testAPIv3Key, "TRANSACTION.SUCCESS", "transaction", v3Transaction(testAppID, testMchID))
			h := f.v3Header(t, f.platform, testKeyID, f.now, b)
			h.Set("Wechatpay-Signature", "WECHATPAY/SIGNTEST/"+h.Get("Wechatpay-Signature"))
			return h, b
		}, nil, want{status: 401, body: `"code":"FAIL"`}},
		{"v3 stale", "/wechatpay/v3/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			b := v3Body(t, testAPIv3Key, "TRANSACTION.SUCCESS", "transaction", v3Transaction(testAppID, testMchID))
			return f.v3Header(t, f.platform, testKeyID, f.now.Add(-6*time.Minute), b), b
		}, nil, want{status: 401, body: "5-minute"}},
		{"v3 unknown key", "/wechatpay/v3/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			b := v3Body(t, testAPIv3Key, "TRANSACTION.SUCCESS", "transaction", v3Transaction(testAppID, testMchID))
			return f.v3Header(t, f.platform, "PUB_KEY_ID_0000000000000099", f.now, b), b
		}, nil, want{status: 401, body: "Wechatpay-Serial"}},
		{"v3 bad signature", "/wechatpay/v3/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			b := v3Body(t, testAPIv3Key, "TRANSACTION.SUCCESS", "transaction", v3Transaction(testAppID, testMchID))
			h := f.v3Header(t, f.platform, testKeyID, f.now, b)
			return h, append(b, ' ')
		}, nil, want{status: 401, body: "invalid signature"}},
		{"v3 other event, bad signature", "/wechatpay/v3/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			b := v3Body(t, testAPIv3Key, "PAYSCORE.USER_CONFIRM", "payscore", map[string]any{})
			h := f.v3Header(t, f.platform, testKeyID, f.now, b)
			return h, append(b, ' ')
		}, nil, want{status: 401}},
		{"v3 wrong APIv3 key", "/wechatpay/v3/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			b := v3Body(t, "ABCDEFGHIJKLMNOPQRSTUV0123456789", "TRANSACTION.SUCCESS", "transaction", v3Transaction(testAppID, testMchID))
			return f.v3Header(t, f.platform, testKeyID, f.now, b), b
		}, nil, want{status: 400, body: "decrypted"}},
		{"v3 payment event, refund resource", "/wechatpay/v3/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			b := v3Body(t, testAPIv3Key, "TRANSACTION.SUCCESS", "refund", v3Transaction(testAppID, testMchID))
			return f.v3Header(t, f.platform, testKeyID, f.now, b), b
		}, nil, want{status: 400, body: "malformed"}},
		{"v3 refund event, transaction resource", "/wechatpay/v3/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			b := v3Body(t, testAPIv3Key, "REFUND.SUCCESS", "transaction", v3RefundRes(testMchID))
			return f.v3Header(t, f.platform, testKeyID, f.now, b), b
		}, nil, want{status: 400, body: "malformed"}},
		{"v3 foreign payment", "/wechatpay/v3/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			b := v3Body(t, testAPIv3Key, "TRANSACTION.SUCCESS", "transaction", v3Transaction(testAppID, "1900000999"))
			return f.v3Header(t, f.platform, testKeyID, f.now, b), b
		}, nil, want{status: 403, body: "not this merchant"}},
		{"v3 foreign refund", "/wechatpay/v3/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			b := v3Body(t, testAPIv3Key, "REFUND.SUCCESS", "refund", v3RefundRes("1900000999"))
			return f.v3Header(t, f.platform, testKeyID, f.now, b), b
		}, nil, want{status: 403}},
		{"v3 no headers", "/wechatpay/v3/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			return nil, []byte(`{}`)
		}, nil, want{status: 400, body: "malformed"}},
		{"v3 signature type", "/wechatpay/v3/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			b := v3Body(t, testAPIv3Key, "TRANSACTION.SUCCESS", "transaction", v3Transaction(testAppID, testMchID))
			h := f.v3Header(t, f.platform, testKeyID, f.now, b)
			h.Set("Wechatpay-Signature-Type", "WECHATPAY2-SM2-WITH-SM3")
			return h, b
		}, nil, want{status: 400, body: "unsupported"}},
		{"v3 not configured", "/wechatpay/v3/notify", func(t *testing.T, f *notifyFixture) (http.Header, []byte) {
			return nil, []byte(`{}`)
		}, func(f *notifyFixture) { f.srv.V3 = nil }, want{status: 503, body: "not configured"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newNotifyFixture(t)
			if tc.mod != nil {
				tc.mod(f)
			}
			h, body := tc.req(t, f)
			rec := f.post(t, tc.path, h, body)
			got, _ := io.ReadAll(rec.Body)
			if rec.Code != tc.want.status || !strings.Contains(string(got), tc.want.body) {
				t.Fatalf("answer %d %s, want %d with %q", rec.Code, got, tc.want.status, tc.want.body)
			}
			if rec.Code >= 300 && tc.path == "/wechatpay/notify" && !strings.Contains(string(got), "<return_code><![CDATA[FAIL]]></return_code>") {
				t.Errorf("v2 failure answer %s", got)
			}
			if rec.Code >= 300 && tc.path == "/wechatpay/v3/notify" && !strings.Contains(string(got), `"code":"FAIL"`) {
				t.Errorf("v3 failure answer %s", got)
			}
			if rec.Code == 204 && len(got) != 0 {
				t.Errorf("204 with a body %q", got)
			}
			handed, audited := f.handoff.accepted, f.orders.audited
			if (len(handed) == 1) != tc.want.handed || len(handed) > 1 {
				t.Fatalf("handed on %d notifications, want %v", len(handed), tc.want.handed)
			}
			if (len(audited) == 1) != tc.want.audited || len(audited) > 1 {
				t.Fatalf("audited %d notifications, want %v", len(audited), tc.want.audited)
			}
			for _, n := range append(handed, audited...) {
				if n.Kind != tc.want.accepted || n.ReceivedAt.IsZero() || n.ID == "" {
					t.Errorf("notification %+v, want kind %q", n, tc.want.accepted)
				}
				if n.Kind != payment.KindPayment && n.Succeeded() {
					t.Errorf("a %s notification claims a payment", n.Kind)
				}
			}
			if tc.want.audited && (f.orders.outcomes[0] != string(OutcomeIgnored) || audited[0].EventType != "MCHTRANSFER.BILL.FINISHED") {
				t.Errorf("audit %v %+v", f.orders.outcomes, audited[0])
			}
		})
	}
}

// An ignored event is counted as such, and only once acknowledged.
func TestNotifyIgnoredMetric(t *testing.T) {
	f := newNotifyFixture(t)
	b := v3Body(t, testAPIv3Key, "COUPON.USE", "coupon", map[string]any{})
	if rec := f.post(t, "/wechatpay/v3/notify", f.v3Header(t, f.platform, testKeyID, f.now, b), b); rec.Code != 204 {
		t.Fatalf("answer %d", rec.Code)
	}
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != metrics.NotificationsAckedName {
			continue
		}
		for _, m := range mf.GetMetric() {
			key := ""
			for _, l := range m.GetLabel() {
				key += l.GetName() + "=" + l.GetValue() + ","
			}
			counts[key] = m.GetCounter().GetValue()
		}
	}
	if counts["outcome=ignored,version=v3,"] != 1 || counts["outcome=recorded,version=v3,"] != 0 {
		t.Fatalf("acked counters %v", counts)
	}
	if _, ok := counts["outcome=ignored,version=v2,"]; !ok {
		t.Error("the ignored series of v2 is not created at zero")
	}
}

// blockingAcceptor holds every notification until release is closed.
type blockingAcceptor struct {
	entered chan struct{}
	release chan struct{}
	fakeAcceptor
}

func (b *blockingAcceptor) Accept(ctx context.Context, n payment.Notification) (payment.NotificationOutcome, error) {
	b.entered <- struct{}{}
	<-b.release
	return b.fakeAcceptor.Accept(ctx, n)
}

// With NOTIFY_MAX_IN_FLIGHT notifications being handed over, one more is
// answered 503 FAIL at once, nothing of it handed over, and counted as
// overloaded; once a hand-over finishes, the next one is taken again.
func TestNotifyShedsBeyondMaxInFlight(t *testing.T) {
	f := newNotifyFixture(t)
	acc := &blockingAcceptor{entered: make(chan struct{}, 1), release: make(chan struct{})}
	f.srv.Handoff = acc
	f.srv.MaxNotificationsInFlight = 1
	h := f.srv.Handler()
	post := func(body []byte) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/wechatpay/notify", bytes.NewReader(body)))
		return rec
	}
	first := make(chan *httptest.ResponseRecorder, 1)
	go func() { first <- post(v2Payment(t, apiv2.SignTypeMD5, true)) }()
	<-acc.entered

	rec := post(v2Payment(t, apiv2.SignTypeMD5, true, "out_trade_no", "PF0002"))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("second notification while one is in flight: %d, want 503", rec.Code)
	}
	if reply, err := apiv2.DecodeXML(rec.Body.Bytes()); err != nil || reply["return_code"] != "FAIL" {
		t.Fatalf("second notification's answer: %q (%v), want return_code FAIL", rec.Body.String(), err)
	}
	if got := rejectedCount(t, f.reg, "v2", "overloaded"); got != 1 {
		t.Fatalf("rejected{reason=overloaded} = %v, want 1", got)
	}

	close(acc.release)
	if rec := <-first; rec.Code != http.StatusOK {
		t.Fatalf("first notification: %d, want 200", rec.Code)
	}
	if rec := post(v2Payment(t, apiv2.SignTypeMD5, true, "out_trade_no", "PF0003")); rec.Code != http.StatusOK {
		t.Fatalf("third notification, after the first was held: %d, want 200", rec.Code)
	}
	acc.mu.Lock()
	defer acc.mu.Unlock()
	if len(acc.accepted) != 2 || acc.accepted[0].OutTradeNo != "PF0001" || acc.accepted[1].OutTradeNo != "PF0003" {
		t.Fatalf("handed over %+v, want PF0001 and PF0003 only", acc.accepted)
	}
}

// rejectedCount reads payflow_notifications_rejected_total{version,reason}.
func rejectedCount(t *testing.T, reg *prometheus.Registry, version, reason string) float64 {
	t.Helper()
	return series(t, reg, metrics.NotificationsRejectedName, map[string]string{"version": version, "reason": reason}).GetCounter().GetValue()
}

// series finds the series of the metric name that carries every label in
// labels, or nil.
func series(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			has := map[string]string{}
			for _, l := range m.GetLabel() {
				has[l.GetName()] = l.GetValue()
			}
			match := true
			for k, v := range labels {
				match = match && has[k] == v
			}
			if match {
				return m
			}
		}
	}
	return nil
}
