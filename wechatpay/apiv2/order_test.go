package apiv2

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payflow/payflow/wechatpay"

	"github.com/payflow/payflow/config"
	"github.com/payflow/payflow/payment"
)

// v2FakeWeChat plays WeChat's API v2 on loopback: it checks each request's
// signature with docKey, records it, and signs what answer returns with
// the request's sign_type. A nil answer means HTTP status instead.
type v2FakeWeChat struct {
	t      *testing.T
	answer func(path string, req map[string]string) (status int, resp map[string]string)

	mu   sync.Mutex
	reqs []v2Request
}

type v2Request struct {
	path   string
	fields map[string]string
}

func (f *v2FakeWeChat) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req, err := DecodeXML(body)
	if err != nil {
		f.t.Errorf("request body: %v", err)
		return
	}
	if r.Method != http.MethodPost {
		f.t.Errorf("method %s", r.Method)
	}
	if err := Verify(req, docKey); err != nil {
		f.t.Errorf("request signature: %v", err)
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, v2Request{r.URL.Path, req})
	f.mu.Unlock()
	status, resp := f.answer(r.URL.Path, req)
	if resp == nil {
		w.WriteHeader(status)
		return
	}
	out := maps.Clone(resp)
	if out["return_code"] == "SUCCESS" {
		out["appid"], out["mch_id"], out["nonce_str"] = testAppID, testMchID, "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"
		if out["sign"] == "" {
			out["sign"], _ = Sign(out, docKey, req["sign_type"])
		}
	}
	w.WriteHeader(status)
	_, _ = w.Write(EncodeXML(out))
}

func (f *v2FakeWeChat) requests() []v2Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

func newV2OrderTest(t *testing.T, signType string, answer func(path string, req map[string]string) (int, map[string]string)) (*Client, *v2FakeWeChat) {
	t.Helper()
	f := &v2FakeWeChat{t: t, answer: answer}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return &Client{BaseURL: srv.URL, AppID: testAppID, MchID: testMchID, APIKey: config.NewSecret(docKey), SignType: signType,
		HTTP: srv.Client(), Nonce: func() string { return "ibuaiVcKdpRxkhJA" }}, f
}

func v2OK(fields ...string) map[string]string {
	m := map[string]string{"return_code": "SUCCESS", "return_msg": "OK", "result_code": "SUCCESS"}
	for i := 0; i+1 < len(fields); i += 2 {
		m[fields[i]] = fields[i+1]
	}
	return m
}

func v2Fail(code, des string) map[string]string {
	return map[string]string{"return_code": "SUCCESS", "return_msg": "OK", "result_code": "FAIL", "err_code": code, "err_code_des": des}
}

// wantFields fails unless got holds exactly want plus a sign.
func wantFields(t *testing.T, got, want map[string]string) {
	t.Helper()
	if got["sign"] == "" {
		t.Error("request has no sign")
	}
	got = maps.Clone(got)
	delete(got, "sign")
	for k, v := range want {
		if got[k] != v {
			t.Errorf("request %s = %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("request has unexpected field %s = %q", k, got[k])
		}
	}
}

func nativePrepayRequest() payment.PrepayRequest {
	return payment.PrepayRequest{
		OutTradeNo: "order-0001", Description: "腾讯充值中心-QQ会员充值", AmountFen: 888, TradeType: payment.TradeTypeNative,
		NotifyURL: "https://merchant.example/wechatpay/notify", TimeExpire: time.Date(2024, 8, 5, 10, 4, 5, 0, time.UTC),
	}
}

func TestV2PrepayNative(t *testing.T) {
	c, f := newV2OrderTest(t, "", func(path string, _ map[string]string) (int, map[string]string) {
		return 200, v2OK("trade_type", "NATIVE", "prepay_id", "wx201410272009395522657a690389285100", "code_url", "weixin://wxpay/bizpayurl?pr=NwY5Mz9")
	})
	got, err := c.Prepay(t.Context(), nativePrepayRequest())
	if err != nil {
		t.Fatal(err)
	}
	want := payment.Prepay{PrepayID: "wx201410272009395522657a690389285100", CodeURL: "weixin://wxpay/bizpayurl?pr=NwY5Mz9"}
	if got.PrepayID != want.PrepayID || got.CodeURL != want.CodeURL || got.JSAPI != nil {
		t.Errorf("got %+v, want %+v", got, want)
	}
	reqs := f.requests()
	if len(reqs) != 1 || reqs[0].path != "/pay/unifiedorder" {
		t.Fatalf("requests %+v", reqs)
	}
	wantFields(t, reqs[0].fields, map[string]string{
		"appid": testAppID, "mch_id": testMchID, "nonce_str": "ibuaiVcKdpRxkhJA", "sign_type": "MD5",
		"body": "腾讯充值中心-QQ会员充值", "out_trade_no": "order-0001", "total_fee": "888", "fee_type": "CNY",
		"spbill_create_ip": "127.0.0.1", "notify_url": "https://merchant.example/wechatpay/notify",
		"trade_type": "NATIVE", "product_id": "order-0001", "time_expire": "20240805180405",
	})
}

func TestV2PrepayJSAPI(t *testing.T) {
	for _, signType := range []string{"", SignTypeMD5, SignTypeHMACSHA256} {
		t.Run("sign type "+signType, func(t *testing.T) {
			c, f := newV2OrderTest(t, signType, func(string, map[string]string) (int, map[string]string) {
				return 200, v2OK("trade_type", "JSAPI", "prepay_id", "wx2017033010242291fcfe0db70013231072")
			})
			req := payment.PrepayRequest{OutTradeNo: "order-0002", Description: "coffee", AmountFen: 1, Currency: "CNY",
				TradeType: payment.TradeTypeJSAPI, OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", NotifyURL: "http://127.0.0.1:8080/wechatpay/notify",
				ClientIP: "203.0.113.7"}
			before := time.Now().Unix()
			got, err := c.Prepay(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			wantType := signType
			if wantType == "" {
				wantType = SignTypeMD5
			}
			wantFields(t, f.requests()[0].fields, map[string]string{
				"appid": testAppID, "mch_id": testMchID, "nonce_str": "ibuaiVcKdpRxkhJA", "sign_type": wantType,
				"body": "coffee", "out_trade_no": "order-0002", "total_fee": "1", "fee_type": "CNY",
				"spbill_create_ip": "203.0.113.7", "notify_url": "http://127.0.0.1:8080/wechatpay/notify",
				"trade_type": "JSAPI", "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
			})
			p := got.JSAPI
			if got.PrepayID != "wx2017033010242291fcfe0db70013231072" || got.CodeURL != "" || p == nil {
				t.Fatalf("got %+v", got)
			}
			ts, err := strconv.ParseInt(p.TimeStamp, 10, 64)
			if err != nil || ts < before || ts > time.Now().Unix() {
				t.Errorf("timeStamp %q", p.TimeStamp)
			}
			if p.AppID != testAppID || p.NonceStr != "ibuaiVcKdpRxkhJA" || p.Package != "prepay_id=wx2017033010242291fcfe0db70013231072" || p.SignType != wantType {
				t.Errorf("params %+v", p)
			}
			if err := VerifyJSAPIPaySign(docKey, *p); err != nil {
				t.Errorf("paySign does not verify: %v", err)
			}
			if wantType == SignTypeMD5 { // the rule spelt out, independently of Sign
				s := "appId=" + p.AppID + "&nonceStr=" + p.NonceStr + "&package=" + p.Package + "&signType=MD5&timeStamp=" + p.TimeStamp + "&key=" + docKey
				sum := md5.Sum([]byte(s))
				if want := strings.ToUpper(hex.EncodeToString(sum[:])); p.PaySign != want {
					t.Errorf("paySign %s, want %s", p.PaySign, want)
				}
			}
			for name, mutate := range map[string]func(*payment.JSAPIParams){
				"package":   func(p *payment.JSAPIParams) { p.Package = "prepay_id=wx0" },
				"timeStamp": func(p *payment.JSAPIParams) { p.TimeStamp = "1" },
				"signType": func(p *payment.JSAPIParams) {
					p.SignType = map[string]string{"MD5": "HMAC-SHA256", "HMAC-SHA256": "MD5"}[wantType]
				},
			} {
				q := *p
				mutate(&q)
				if err := VerifyJSAPIPaySign(docKey, q); !errors.Is(err, wechatpay.ErrBadSignature) {
					t.Errorf("tampered %s: err = %v", name, err)
				}
			}
			if err := VerifyJSAPIPaySign("another key", *p); !errors.Is(err, wechatpay.ErrBadSignature) {
				t.Errorf("wrong key: err = %v", err)
			}
			q := *p
			q.SignType = "RSA"
			if err := VerifyJSAPIPaySign(docKey, q); !errors.Is(err, wechatpay.ErrUnsupportedSignType) {
				t.Errorf("RSA: err = %v", err)
			}
			q.PaySign = ""
			if err := VerifyJSAPIPaySign(docKey, q); !errors.Is(err, wechatpay.ErrMissingSign) {
				t.Errorf("no paySign: err = %v", err)
			}
		})
	}
}

func TestV2PrepayErrors(t *testing.T) {
	noCodeURL := v2OK("trade_type", "NATIVE", "prepay_id", "wx1")
	badSign := v2OK("trade_type", "NATIVE", "prepay_id", "wx1", "code_url", "weixin://x")
	badSign["sign"] = "9A0A8659F005D6984697E2CA0A9CF3B7"
	for _, tc := range []struct {
		name   string
		status int
		resp   map[string]string
		code   string
		is     error
		fault  string // "" for WeChat's decisive answers
	}{
		{"ORDERPAID", 200, v2Fail("ORDERPAID", "该订单已支付"), "ORDERPAID", wechatpay.ErrOrderPaid, ""},
		{"ORDERCLOSED", 200, v2Fail("ORDERCLOSED", "该订单已关闭"), "ORDERCLOSED", wechatpay.ErrOrderClosed, ""},
		{"OUT_TRADE_NO_USED", 200, v2Fail("OUT_TRADE_NO_USED", "商户订单号重复"), "OUT_TRADE_NO_USED", nil, ""},
		{"SYSTEMERROR", 200, v2Fail("SYSTEMERROR", "系统超时"), "SYSTEMERROR", nil, wechatpay.FaultSystemError},
		{"HTTP 500", 500, nil, "HTTP_ERROR", nil, wechatpay.FaultHTTP5xx},
		{"return FAIL", 200, map[string]string{"return_code": "FAIL", "return_msg": "签名错误"}, "SIGNERROR", nil, wechatpay.FaultConfig},
		{"bad signature", 200, badSign, "", wechatpay.ErrBadSignature, wechatpay.FaultBadSignature},
		{"no code_url", 200, noCodeURL, "", wechatpay.ErrMalformed, wechatpay.FaultMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newV2OrderTest(t, "", func(string, map[string]string) (int, map[string]string) { return tc.status, tc.resp })
			got, err := c.Prepay(t.Context(), nativePrepayRequest())
			t.Log(err)
			if err == nil {
				t.Fatalf("got %+v, want an error", got)
			}
			checkOrderErr(t, err, tc.code, tc.is, tc.fault)
		})
	}
}

// checkOrderErr checks err's *wechatpay.APIError code (none when code is ""), a
// sentinel it must match, its fault kind ("" for a decision or a request
// refused before sending, which are not retryable; every fault is); and
// that no secret shows.
func checkOrderErr(t *testing.T, err error, code string, is error, fault string) {
	t.Helper()
	var ae *wechatpay.APIError
	if errors.As(err, &ae) != (code != "") {
		t.Fatalf("err = %v (%T), want an *wechatpay.APIError: %v", err, err, code != "")
	}
	if ae != nil && ae.Code != code {
		t.Errorf("code %s, want %s", ae.Code, code)
	}
	if is != nil && !errors.Is(err, is) {
		t.Errorf("err = %v, want it to match %v", err, is)
	}
	for _, s := range []error{wechatpay.ErrOrderPaid, wechatpay.ErrOrderClosed, wechatpay.ErrOrderNotExist} {
		if s != is && errors.Is(err, s) {
			t.Errorf("err = %v matches %v", err, s)
		}
	}
	if kind, _ := wechatpay.Fault(err); kind != fault {
		t.Errorf("wechatpay.Fault(%v) = %q, want %q", err, kind, fault)
	}
	if wechatpay.Retryable(err) != (fault != "") {
		t.Errorf("wechatpay.Retryable(%v) = %v, want %v", err, fault == "", fault != "")
	}
	if strings.Contains(err.Error(), docKey) {
		t.Errorf("error shows the API key: %v", err)
	}
}

// Requests WeChat would refuse fail before any call, not retryable.
func TestV2PrepayRejects(t *testing.T) {
	c, f := newV2OrderTest(t, "", func(string, map[string]string) (int, map[string]string) {
		return 200, v2OK("trade_type", "NATIVE", "prepay_id", "wx1", "code_url", "weixin://x")
	})
	ok := nativePrepayRequest()
	ok.Description = strings.Repeat("a", 128)
	if _, err := c.Prepay(t.Context(), ok); err != nil {
		t.Fatalf("128-byte body: %v", err)
	}
	for name, mutate := range map[string]func(*payment.PrepayRequest){
		"description too long":  func(r *payment.PrepayRequest) { r.Description = strings.Repeat("a", 129) },
		"43 Chinese characters": func(r *payment.PrepayRequest) { r.Description = strings.Repeat("充", 43) },
		"empty description":     func(r *payment.PrepayRequest) { r.Description = "" },
		"description not UTF-8": func(r *payment.PrepayRequest) { r.Description = "caf\xe9" },
		"control character":     func(r *payment.PrepayRequest) { r.Description = "a\x01b" },
		"bad out_trade_no":      func(r *payment.PrepayRequest) { r.OutTradeNo = "no/1" },
		"zero amount":           func(r *payment.PrepayRequest) { r.AmountFen = 0 },
		"APP trade type":        func(r *payment.PrepayRequest) { r.TradeType = "APP" },
		"JSAPI without openid":  func(r *payment.PrepayRequest) { r.TradeType = payment.TradeTypeJSAPI },
		"no notify_url":         func(r *payment.PrepayRequest) { r.NotifyURL = "" },
		"client IP not an IP":   func(r *payment.PrepayRequest) { r.ClientIP = "localhost" },
	} {
		req := nativePrepayRequest()
		mutate(&req)
		_, err := c.Prepay(t.Context(), req)
		if !errors.Is(err, wechatpay.ErrMalformed) || wechatpay.Retryable(err) {
			t.Errorf("%s: err = %v, want wechatpay.ErrMalformed", name, err)
		}
	}
	if n := len(f.requests()); n != 1 {
		t.Errorf("%d calls, want 1", n)
	}
}

func TestV2CloseOrder(t *testing.T) {
	var mu sync.Mutex
	closed := map[string]bool{}
	c, f := newV2OrderTest(t, SignTypeHMACSHA256, func(path string, req map[string]string) (int, map[string]string) {
		if path != "/pay/closeorder" {
			t.Errorf("path %s", path)
		}
		mu.Lock()
		defer mu.Unlock()
		switch no := req["out_trade_no"]; no {
		case "order-paid":
			return 200, v2Fail("ORDERPAID", "订单已支付，不能发起关单")
		case "order-none":
			return 200, v2Fail("ORDERNOTEXIST", "订单不存在")
		case "order-busy":
			return 200, v2Fail("SYSTEMERROR", "系统错误")
		case "order-502":
			return 502, nil
		default:
			if closed[no] {
				return 200, v2Fail("ORDERCLOSED", "订单已关闭")
			}
			closed[no] = true
			return 200, v2OK()
		}
	})
	// Closing twice is fine.
	for range 2 {
		if err := c.CloseOrder(t.Context(), "order-0001"); err != nil {
			t.Fatal(err)
		}
	}
	reqs := f.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	wantFields(t, reqs[0].fields, map[string]string{
		"appid": testAppID, "mch_id": testMchID, "out_trade_no": "order-0001", "nonce_str": "ibuaiVcKdpRxkhJA", "sign_type": "HMAC-SHA256",
	})
	for _, tc := range []struct {
		no    string
		code  string
		is    error
		fault string
	}{
		{"order-paid", "ORDERPAID", wechatpay.ErrOrderPaid, ""},
		{"order-none", "ORDERNOTEXIST", wechatpay.ErrOrderNotExist, ""},
		{"order-busy", "SYSTEMERROR", nil, wechatpay.FaultSystemError},
		{"order-502", "HTTP_ERROR", nil, wechatpay.FaultHTTP5xx},
		{"bad/no", "", wechatpay.ErrMalformed, ""},
	} {
		t.Run(tc.no, func(t *testing.T) {
			err := c.CloseOrder(t.Context(), tc.no)
			t.Log(err)
			if err == nil {
				t.Fatal("closed")
			}
			checkOrderErr(t, err, tc.code, tc.is, tc.fault)
		})
	}
}

// The clients satisfy what the workflow's activities use.
var _ interface {
	QueryOrder(ctx context.Context, outTradeNo string) (payment.Trade, error)
	Prepay(ctx context.Context, req payment.PrepayRequest) (payment.Prepay, error)
	CloseOrder(ctx context.Context, outTradeNo string) error
} = (*Client)(nil)
