package apiv3

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payflow/payflow/wechatpay"

	"github.com/payflow/payflow/payment"
)

const v3TestAppID = "wxd678efh567hg6787"

// v3OrderFake plays WeChat's v3 prepay and close on loopback: it checks the
// Authorization header over the exact body with the merchant public key,
// records each request, and answers as out_trade_no asks, signed with the
// platform key.
type v3OrderFake struct {
	t        *testing.T
	mchPub   *rsa.PublicKey
	platform *rsa.PrivateKey
	prefix   string

	mu     sync.Mutex
	reqs   []v3OrderRequest
	closed map[string]bool
}

type v3OrderRequest struct {
	path string
	body map[string]any
}

func (f *v3OrderFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	signed := func(status int, answer string, signer *rsa.PrivateKey) {
		ts, nonce := strconv.FormatInt(time.Now().Unix(), 10), "0ad4a5b1e1c84ab9a2c3d4e5f6a7b8c9"
		sigStr, err := SignMessage(signer, NotifyMessage(ts, nonce, []byte(answer)))
		if err != nil {
			f.t.Error(err)
		}
		if answer != "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.Header().Set("Wechatpay-Serial", v3TestPlatformID)
		w.Header().Set("Wechatpay-Timestamp", ts)
		w.Header().Set("Wechatpay-Nonce", nonce)
		w.Header().Set("Wechatpay-Signature", sigStr)
		w.Header().Set("Wechatpay-Signature-Type", SignatureType)
		w.WriteHeader(status)
		fmt.Fprint(w, answer)
	}
	// WeChat signs its error answers too.
	fail := func(status int, code, msg string) {
		signed(status, fmt.Sprintf(`{"code":%q,"message":%q}`, code, msg), f.platform)
	}
	raw, _ := io.ReadAll(r.Body)
	m := authRE.FindStringSubmatch(r.Header.Get("Authorization"))
	if r.Method != http.MethodPost || m == nil || m[1] != v3TestMchID || m[4] != v3TestMchSerial {
		f.t.Errorf("%s %s: Authorization %q", r.Method, r.URL.Path, r.Header.Get("Authorization"))
		fail(http.StatusUnauthorized, "SIGN_ERROR", "bad Authorization")
		return
	}
	uri := strings.TrimPrefix(r.URL.RequestURI(), f.prefix)
	sig, _ := base64.StdEncoding.DecodeString(m[5])
	h := sha256.Sum256([]byte(RequestMessage(http.MethodPost, uri, m[3], m[2], raw)))
	if err := rsa.VerifyPKCS1v15(f.mchPub, crypto.SHA256, h[:], sig); err != nil {
		f.t.Errorf("%s: request signature does not verify over the body", uri)
		fail(http.StatusUnauthorized, "SIGN_ERROR", "签名错误")
		return
	}
	if r.Header.Get("Wechatpay-Serial") != v3TestPlatformID || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		f.t.Errorf("headers %v", r.Header)
	}
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		f.t.Errorf("body %q: %v", raw, err)
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, v3OrderRequest{uri, body})
	f.mu.Unlock()

	var no string
	status, answer, signer := http.StatusOK, "", f.platform
	switch {
	case uri == "/v3/pay/transactions/jsapi" || uri == "/v3/pay/transactions/native":
		no, _ = body["out_trade_no"].(string)
		if uri == "/v3/pay/transactions/jsapi" {
			answer = `{"prepay_id":"wx26112221580621e9b071c00d9e093b0000"}`
		} else {
			answer = `{"code_url":"weixin://wxpay/bizpayurl?pr=p4lpSuKzz"}`
		}
	case strings.HasPrefix(uri, "/v3/pay/transactions/out-trade-no/") && strings.HasSuffix(uri, "/close"):
		no = strings.TrimSuffix(strings.TrimPrefix(uri, "/v3/pay/transactions/out-trade-no/"), "/close")
		status = http.StatusNoContent
		f.mu.Lock()
		again := f.closed[no]
		f.closed[no] = true
		f.mu.Unlock()
		if again && no == "order-twice" {
			fail(http.StatusBadRequest, "ORDER_CLOSED", "订单已关闭")
			return
		}
	default:
		fail(http.StatusNotFound, "NOT_FOUND", "no such path")
		return
	}
	switch no {
	case "order-paid":
		fail(http.StatusBadRequest, "ORDERPAID", "该订单已支付")
		return
	case "order-paid2":
		fail(http.StatusForbidden, "ORDER_PAID", "订单已支付")
		return
	case "order-closed":
		fail(http.StatusBadRequest, "ORDER_CLOSED", "订单已关闭")
		return
	case "order-used":
		fail(http.StatusBadRequest, "OUT_TRADE_NO_USED", "商户订单号重复")
		return
	case "order-param":
		fail(http.StatusBadRequest, "PARAM_ERROR", "参数错误")
		return
	case "order-sign":
		fail(http.StatusUnauthorized, "SIGN_ERROR", "签名错误")
		return
	case "order-none":
		fail(http.StatusNotFound, "ORDER_NOT_EXIST", "订单不存在")
		return
	case "order-500":
		fail(http.StatusInternalServerError, "SYSTEM_ERROR", "系统错误")
		return
	case "order-502":
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprint(w, "<html>bad gateway</html>")
		return
	case "order-proxy-404", "order-unsigned-closed", "order-unsigned-paid": // not WeChat's signature
		body := map[string]string{"order-proxy-404": "<html>404 Not Found</html>",
			"order-unsigned-closed": `{"code":"ORDER_CLOSED","message":"订单已关闭"}`,
			"order-unsigned-paid":   `{"code":"ORDERPAID","message":"该订单已支付"}`}[no]
		w.WriteHeader(map[bool]int{true: http.StatusNotFound, false: http.StatusBadRequest}[no == "order-proxy-404"])
		fmt.Fprint(w, body)
		return
	case "order-accepted":
		signed(http.StatusAccepted, "", f.platform)
		return
	case "order-limited":
		fail(http.StatusTooManyRequests, "FREQUENCY_LIMITED", "频率超限")
		return
	case "order-badsig":
		signer = freshKey(f.t, 2)
	case "order-garbage":
		answer = `{"prepay_id":`
	case "order-empty":
		answer = `{}`
	}
	signed(status, answer, signer)
}

func (f *v3OrderFake) requests() []v3OrderRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

func newV3OrderTest(t *testing.T, prefix, appID string) (*Client, *v3OrderFake) {
	t.Helper()
	mch, platform := freshKey(t, 0), v3TestKey(t)
	f := &v3OrderFake{t: t, mchPub: &mch.PublicKey, platform: platform, prefix: prefix, closed: map[string]bool{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := NewClient(t.Context(), ClientConfig{
		BaseURL: srv.URL + prefix, MchID: v3TestMchID, AppID: appID, MchCertSerial: v3TestMchSerial, MchPrivateKey: mch,
		Keys: mustV3Keys(t, map[string]*rsa.PublicKey{v3TestPlatformID: &platform.PublicKey}),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, f
}

func jsapiPrepayRequest(no string) payment.PrepayRequest {
	return payment.PrepayRequest{
		OutTradeNo: no, Description: "Image形象店-深圳腾大-QQ公仔", AmountFen: 100, TradeType: payment.TradeTypeJSAPI,
		OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", NotifyURL: "https://www.weixin.qq.com/wxpay/pay.php",
		TimeExpire: time.Date(2018, 6, 8, 2, 34, 56, 987654321, time.UTC),
	}
}

func TestV3PrepayJSAPI(t *testing.T) {
	c, f := newV3OrderTest(t, "", v3TestAppID)
	before := time.Now().Unix()
	got, err := c.Prepay(t.Context(), jsapiPrepayRequest("1217752501201407033233368018"))
	if err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if len(reqs) != 1 || reqs[0].path != "/v3/pay/transactions/jsapi" {
		t.Fatalf("requests %+v", reqs)
	}
	want := map[string]any{
		"appid": v3TestAppID, "mchid": v3TestMchID, "description": "Image形象店-深圳腾大-QQ公仔",
		"out_trade_no": "1217752501201407033233368018", "time_expire": "2018-06-08T10:34:56+08:00",
		"notify_url": "https://www.weixin.qq.com/wxpay/pay.php",
		"amount":     map[string]any{"total": 100.0, "currency": "CNY"},
		"payer":      map[string]any{"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
	}
	if !reflect.DeepEqual(reqs[0].body, want) {
		t.Errorf("body %v\nwant %v", reqs[0].body, want)
	}

	p := got.JSAPI
	if got.PrepayID != "wx26112221580621e9b071c00d9e093b0000" || got.CodeURL != "" || p == nil {
		t.Fatalf("got %+v", got)
	}
	if p.AppID != v3TestAppID || p.Package != "prepay_id=wx26112221580621e9b071c00d9e093b0000" || p.SignType != "RSA" || len(p.NonceStr) != 32 {
		t.Errorf("params %+v", p)
	}
	if ts, err := strconv.ParseInt(p.TimeStamp, 10, 64); err != nil || ts < before || ts > time.Now().Unix() {
		t.Errorf("timeStamp %q", p.TimeStamp)
	}
	mchPub := &freshKey(t, 0).PublicKey
	if err := VerifyJSAPIPaySign(mchPub, *p); err != nil {
		t.Errorf("paySign does not verify: %v", err)
	}
	// The rule spelt out, independently of JSAPIMessage.
	sig, _ := base64.StdEncoding.DecodeString(p.PaySign)
	h := sha256.Sum256([]byte(v3TestAppID + "\n" + p.TimeStamp + "\n" + p.NonceStr + "\n" + p.Package + "\n"))
	if err := rsa.VerifyPKCS1v15(mchPub, crypto.SHA256, h[:], sig); err != nil {
		t.Errorf("paySign is not SHA256withRSA over appId\\ntimeStamp\\nnonceStr\\npackage\\n: %v", err)
	}
	for name, mutate := range map[string]func(*payment.JSAPIParams){
		"appId":    func(p *payment.JSAPIParams) { p.AppID = "wx0000000000000000" },
		"nonceStr": func(p *payment.JSAPIParams) { p.NonceStr = strings.Repeat("A", 32) },
		"package":  func(p *payment.JSAPIParams) { p.Package = "prepay_id=wx0" },
		"paySign":  func(p *payment.JSAPIParams) { p.PaySign = "bm90IGEgc2lnbmF0dXJl" },
		"base64":   func(p *payment.JSAPIParams) { p.PaySign = "not base64!" },
	} {
		q := *p
		mutate(&q)
		if err := VerifyJSAPIPaySign(mchPub, q); !errors.Is(err, wechatpay.ErrBadSignature) {
			t.Errorf("tampered %s: err = %v", name, err)
		}
	}
	if err := VerifyJSAPIPaySign(&freshKey(t, 1).PublicKey, *p); !errors.Is(err, wechatpay.ErrBadSignature) {
		t.Errorf("other key: err = %v", err)
	}
	q := *p
	q.SignType = "MD5"
	if err := VerifyJSAPIPaySign(mchPub, q); !errors.Is(err, wechatpay.ErrUnsupportedSignType) {
		t.Errorf("MD5: err = %v", err)
	}
	q.PaySign = ""
	if err := VerifyJSAPIPaySign(mchPub, q); !errors.Is(err, wechatpay.ErrMissingSign) {
		t.Errorf("no paySign: err = %v", err)
	}
	if err := VerifyJSAPIPaySign(nil, *p); err == nil {
		t.Error("nil key verified")
	}
}

// NATIVE, under a base URL with a path, without time_expire.
func TestV3PrepayNative(t *testing.T) {
	c, f := newV3OrderTest(t, "/wechat", v3TestAppID)
	req := jsapiPrepayRequest("order-native")
	req.TradeType, req.OpenID, req.TimeExpire, req.Currency = payment.TradeTypeNative, "", time.Time{}, "CNY"
	got, err := c.Prepay(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if got != (payment.Prepay{CodeURL: "weixin://wxpay/bizpayurl?pr=p4lpSuKzz"}) {
		t.Errorf("got %+v", got)
	}
	reqs := f.requests()
	if len(reqs) != 1 || reqs[0].path != "/v3/pay/transactions/native" {
		t.Fatalf("requests %+v", reqs)
	}
	want := map[string]any{
		"appid": v3TestAppID, "mchid": v3TestMchID, "description": "Image形象店-深圳腾大-QQ公仔",
		"out_trade_no": "order-native", "notify_url": "https://www.weixin.qq.com/wxpay/pay.php",
		"amount": map[string]any{"total": 100.0, "currency": "CNY"},
	}
	if !reflect.DeepEqual(reqs[0].body, want) {
		t.Errorf("body %v\nwant %v", reqs[0].body, want)
	}
}

func TestV3PrepayErrors(t *testing.T) {
	c, _ := newV3OrderTest(t, "", v3TestAppID)
	for _, tc := range []struct {
		no     string
		native bool
		status int
		code   string
		is     error
		fault  string // "" for WeChat's decisive answers
	}{
		{"order-paid", false, 400, "ORDERPAID", wechatpay.ErrOrderPaid, ""},
		{"order-paid2", true, 403, "ORDER_PAID", wechatpay.ErrOrderPaid, ""},
		{"order-closed", false, 400, "ORDER_CLOSED", wechatpay.ErrOrderClosed, ""},
		{"order-used", true, 400, "OUT_TRADE_NO_USED", nil, ""},
		{"order-param", false, 400, "PARAM_ERROR", nil, wechatpay.FaultConfig},
		{"order-sign", false, 401, "SIGN_ERROR", nil, wechatpay.FaultConfig},
		{"order-500", false, 500, "SYSTEM_ERROR", nil, wechatpay.FaultSystemError},
		{"order-502", true, 0, "", wechatpay.ErrMissingSign, wechatpay.FaultHTTP5xx},
		{"order-proxy-404", false, 0, "", wechatpay.ErrMissingSign, wechatpay.FaultUnsigned},
		{"order-unsigned-paid", true, 0, "", wechatpay.ErrMissingSign, wechatpay.FaultUnsigned},
		{"order-unsigned-closed", false, 0, "", wechatpay.ErrMissingSign, wechatpay.FaultUnsigned},
		{"order-accepted", false, 202, "ACCEPTED", nil, wechatpay.FaultAccepted},
		{"order-accepted", true, 202, "ACCEPTED", nil, wechatpay.FaultAccepted},
		{"order-limited", false, 429, "FREQUENCY_LIMITED", nil, wechatpay.FaultRateLimited},
		{"order-badsig", false, 0, "", wechatpay.ErrBadSignature, wechatpay.FaultBadSignature},
		{"order-badsig", true, 0, "", wechatpay.ErrBadSignature, wechatpay.FaultBadSignature},
		{"order-garbage", false, 0, "", wechatpay.ErrMalformed, wechatpay.FaultMalformed},
		{"order-empty", false, 0, "", wechatpay.ErrMalformed, wechatpay.FaultMalformed},
		{"order-empty", true, 0, "", wechatpay.ErrMalformed, wechatpay.FaultMalformed},
	} {
		t.Run(fmt.Sprintf("%s native=%v", tc.no, tc.native), func(t *testing.T) {
			req := jsapiPrepayRequest(tc.no)
			if tc.native {
				req.TradeType, req.OpenID = payment.TradeTypeNative, ""
			}
			got, err := c.Prepay(t.Context(), req)
			t.Log(err)
			if err == nil {
				t.Fatalf("got %+v, want an error", got)
			}
			checkOrderErr(t, err, tc.code, tc.is, tc.fault)
			var ae *wechatpay.APIError
			if errors.As(err, &ae) && ae.HTTPStatus != tc.status {
				t.Errorf("HTTP status %d, want %d", ae.HTTPStatus, tc.status)
			}
		})
	}
}

// A network failure is retryable.
func TestV3PrepayNetworkError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, err := NewClient(t.Context(), ClientConfig{
		BaseURL: url, MchID: v3TestMchID, AppID: v3TestAppID, MchCertSerial: v3TestMchSerial, MchPrivateKey: freshKey(t, 0),
		Keys: mustV3Keys(t, nil, v3TestCert(t)), HTTP: &http.Client{Timeout: 2 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Prepay(t.Context(), jsapiPrepayRequest("order-0001")); err == nil || !wechatpay.Retryable(err) {
		t.Errorf("prepay: err = %v, want a retryable error", err)
	}
	if err := c.CloseOrder(t.Context(), "order-0001"); err == nil || !wechatpay.Retryable(err) {
		t.Errorf("close: err = %v, want a retryable error", err)
	}
}

// Requests WeChat would refuse fail before any call, not retryable.
func TestV3PrepayRejects(t *testing.T) {
	c, f := newV3OrderTest(t, "", v3TestAppID)
	ok := jsapiPrepayRequest("order-0001")
	ok.Description = strings.Repeat("充", 127)
	if _, err := c.Prepay(t.Context(), ok); err != nil {
		t.Fatalf("127 characters: %v", err)
	}
	for name, mutate := range map[string]func(*payment.PrepayRequest){
		"description too long":  func(r *payment.PrepayRequest) { r.Description = strings.Repeat("a", 128) },
		"empty description":     func(r *payment.PrepayRequest) { r.Description = "" },
		"description not UTF-8": func(r *payment.PrepayRequest) { r.Description = "caf\xe9" },
		"bad out_trade_no":      func(r *payment.PrepayRequest) { r.OutTradeNo = "no/1" },
		"negative amount":       func(r *payment.PrepayRequest) { r.AmountFen = -1 },
		"MWEB trade type":       func(r *payment.PrepayRequest) { r.TradeType = "MWEB" },
		"JSAPI without openid":  func(r *payment.PrepayRequest) { r.OpenID = "" },
		"no notify_url":         func(r *payment.PrepayRequest) { r.NotifyURL = "" },
	} {
		req := jsapiPrepayRequest("order-0001")
		mutate(&req)
		_, err := c.Prepay(t.Context(), req)
		if !errors.Is(err, wechatpay.ErrMalformed) || wechatpay.Retryable(err) {
			t.Errorf("%s: err = %v, want wechatpay.ErrMalformed", name, err)
		}
	}
	noApp, f2 := newV3OrderTest(t, "", "")
	if _, err := noApp.Prepay(t.Context(), jsapiPrepayRequest("order-0001")); err == nil {
		t.Error("prepay without an appid")
	}
	if n, n2 := len(f.requests()), len(f2.requests()); n != 1 || n2 != 0 {
		t.Errorf("%d and %d calls, want 1 and 0", n, n2)
	}
}

func TestV3CloseOrder(t *testing.T) {
	c, f := newV3OrderTest(t, "", "")
	// Closing twice is fine, whether WeChat says 204 or ORDER_CLOSED again.
	for _, no := range []string{"order-0001", "order-0001", "order-twice", "order-twice", "order-closed"} {
		if err := c.CloseOrder(t.Context(), no); err != nil {
			t.Fatalf("close %s: %v", no, err)
		}
	}
	reqs := f.requests()
	if len(reqs) != 5 || reqs[0].path != "/v3/pay/transactions/out-trade-no/order-0001/close" ||
		!reflect.DeepEqual(reqs[0].body, map[string]any{"mchid": v3TestMchID}) {
		t.Errorf("requests %+v", reqs)
	}
	for _, tc := range []struct {
		no     string
		status int
		code   string
		is     error
		fault  string
	}{
		{"order-paid", 400, "ORDERPAID", wechatpay.ErrOrderPaid, ""},
		{"order-paid2", 403, "ORDER_PAID", wechatpay.ErrOrderPaid, ""},
		{"order-none", 404, "ORDERNOTEXIST", wechatpay.ErrOrderNotExist, ""},
		{"order-param", 400, "PARAM_ERROR", nil, wechatpay.FaultConfig},
		{"order-500", 500, "SYSTEM_ERROR", nil, wechatpay.FaultSystemError},
		{"order-502", 0, "", wechatpay.ErrMissingSign, wechatpay.FaultHTTP5xx},
		{"order-proxy-404", 0, "", wechatpay.ErrMissingSign, wechatpay.FaultUnsigned},
		// An unsigned ORDER_CLOSED is no close: it must not read as closed.
		{"order-unsigned-closed", 0, "", wechatpay.ErrMissingSign, wechatpay.FaultUnsigned},
		{"order-unsigned-paid", 0, "", wechatpay.ErrMissingSign, wechatpay.FaultUnsigned},
		{"order-accepted", 202, "ACCEPTED", nil, wechatpay.FaultAccepted},
		{"order-limited", 429, "FREQUENCY_LIMITED", nil, wechatpay.FaultRateLimited},
		{"order-badsig", 0, "", wechatpay.ErrBadSignature, wechatpay.FaultBadSignature},
		{"bad/no", 0, "", wechatpay.ErrMalformed, ""},
	} {
		t.Run(tc.no, func(t *testing.T) {
			err := c.CloseOrder(t.Context(), tc.no)
			t.Log(err)
			if err == nil {
				t.Fatal("closed")
			}
			checkOrderErr(t, err, tc.code, tc.is, tc.fault)
			var ae *wechatpay.APIError
			if errors.As(err, &ae) && ae.HTTPStatus != tc.status {
				t.Errorf("HTTP status %d, want %d", ae.HTTPStatus, tc.status)
			}
		})
	}
}

// The clients satisfy what the workflow's activities use.
var _ interface {
	QueryOrder(ctx context.Context, outTradeNo string) (payment.Trade, error)
	Prepay(ctx context.Context, req payment.PrepayRequest) (payment.Prepay, error)
	CloseOrder(ctx context.Context, outTradeNo string) error
} = (*Client)(nil)
