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
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/wechatpay"
)

// v3RefundFake plays WeChat's v3 refund apply and query on loopback: it
// verifies the merchant's Authorization over the exact request, records
// each request, and answers as the out_refund_no asks, signed with the
// platform key.
type v3RefundFake struct {
	t        *testing.T
	mchPub   *rsa.PublicKey
	platform *rsa.PrivateKey

	mu   sync.Mutex
	reqs []v3OrderRequest
}

// refundAnswer is WeChat's refund object as the apply and query answer it.
func refundAnswer(no, status string) map[string]any {
	a := map[string]any{
		"refund_id": "50000408942018111907145868882", "out_refund_no": no,
		"transaction_id": "4200000215201811190261405420", "out_trade_no": "order-refund-1",
		"channel": "ORIGINAL", "user_received_account": "支付用户零钱",
		"create_time": "2026-11-26T10:00:00+08:00", "status": status, "funds_account": "AVAILABLE",
		"amount": map[string]any{"total": 1000, "refund": 300, "payer_total": 1000, "payer_refund": 300,
			"settlement_refund": 300, "settlement_total": 1000, "discount_refund": 0, "currency": "CNY",
			"from": []any{}},
		"promotion_detail": []any{},
	}
	if status == "SUCCESS" {
		a["success_time"] = "2026-11-26T10:00:05+08:00"
	}
	return a
}

func (f *v3RefundFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, code, msg string) {
		f.sign(w, status, fmt.Sprintf(`{"code":%q,"message":%q}`, code, msg), f.platform)
	}
	raw, _ := io.ReadAll(r.Body)
	m := authRE.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil || m[1] != v3TestMchID || m[4] != v3TestMchSerial {
		f.t.Errorf("%s %s: Authorization %q", r.Method, r.URL.Path, r.Header.Get("Authorization"))
		fail(http.StatusUnauthorized, "SIGN_ERROR", "bad Authorization")
		return
	}
	uri := r.URL.RequestURI()
	sig, _ := base64.StdEncoding.DecodeString(m[5])
	h := sha256.Sum256([]byte(RequestMessage(r.Method, uri, m[3], m[2], raw)))
	if err := rsa.VerifyPKCS1v15(f.mchPub, crypto.SHA256, h[:], sig); err != nil {
		f.t.Errorf("%s: request signature does not verify", uri)
		fail(http.StatusUnauthorized, "SIGN_ERROR", "签名错误")
		return
	}
	if r.Header.Get("Wechatpay-Serial") != v3TestPlatformID {
		f.t.Errorf("headers %v", r.Header)
	}
	var body map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &body); err != nil {
			f.t.Errorf("body %q: %v", raw, err)
		}
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, v3OrderRequest{r.Method + " " + uri, body})
	f.mu.Unlock()

	var no string
	switch {
	case r.Method == http.MethodPost && uri == "/v3/refund/domestic/refunds":
		no, _ = body["out_refund_no"].(string)
	case r.Method == http.MethodGet && strings.HasPrefix(uri, "/v3/refund/domestic/refunds/"):
		no, _ = url.PathUnescape(strings.TrimPrefix(uri, "/v3/refund/domestic/refunds/"))
	default:
		fail(http.StatusNotFound, "NOT_FOUND", "no such path")
		return
	}
	answer, signer := refundAnswer(no, "PROCESSING"), f.platform
	switch no {
	case "R-success":
		answer = refundAnswer(no, "SUCCESS")
	case "R-abnormal":
		answer = refundAnswer(no, "ABNORMAL")
	case "R-closed":
		answer = refundAnswer(no, "CLOSED")
	case "R-notenough":
		fail(http.StatusForbidden, "NOT_ENOUGH", "基本账户余额不足，请充值后重新发起")
		return
	case "R-account":
		fail(http.StatusForbidden, "USER_ACCOUNT_ABNORMAL", "退款请求失败")
		return
	case "R-invalid":
		fail(http.StatusBadRequest, "INVALID_REQUEST", "订单已全额退款")
		return
	case "R-param":
		fail(http.StatusBadRequest, "PARAM_ERROR", "参数错误")
		return
	case "R-noauth":
		fail(http.StatusForbidden, "NO_AUTH", "没有退款权限")
		return
	case "R-none":
		fail(http.StatusNotFound, "RESOURCE_NOT_EXISTS", "订单号不存在")
		return
	case "R-sign":
		fail(http.StatusUnauthorized, "SIGN_ERROR", "签名错误")
		return
	case "R-mch":
		fail(http.StatusBadRequest, "MCH_NOT_EXISTS", "商户号不存在")
		return
	case "R-500":
		fail(http.StatusInternalServerError, "SYSTEM_ERROR", "系统超时")
		return
	case "R-429":
		fail(http.StatusTooManyRequests, "FREQUENCY_LIMITED", "频率限制")
		return
	case "R-502":
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprint(w, "<html>bad gateway</html>")
		return
	case "R-badsig":
		signer = freshKey(f.t, 2)
	case "R-other":
		answer["out_refund_no"] = "R-someone-else"
	case "R-othertrade":
		answer["out_trade_no"] = "order-someone-else"
	case "R-nostatus":
		delete(answer, "status")
	case "R-weird":
		answer["status"] = "DONE"
	case "R-noid":
		delete(answer, "refund_id")
	case "R-nosuccesstime":
		answer["status"] = "SUCCESS"
	case "R-slow":
		time.Sleep(300 * time.Millisecond)
	case "R-garbage":
		f.sign(w, http.StatusOK, `{"refund_id":`, signer)
		return
	}
	out, _ := json.Marshal(answer)
	f.sign(w, http.StatusOK, string(out), signer)
}

func (f *v3RefundFake) sign(w http.ResponseWriter, status int, answer string, signer *rsa.PrivateKey) {
	ts, nonce := strconv.FormatInt(time.Now().Unix(), 10), "0ad4a5b1e1c84ab9a2c3d4e5f6a7b8c9"
	sig, err := SignMessage(signer, NotifyMessage(ts, nonce, []byte(answer)))
	if err != nil {
		f.t.Error(err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Wechatpay-Serial", v3TestPlatformID)
	w.Header().Set("Wechatpay-Timestamp", ts)
	w.Header().Set("Wechatpay-Nonce", nonce)
	w.Header().Set("Wechatpay-Signature", sig)
	w.Header().Set("Wechatpay-Signature-Type", SignatureType)
	w.WriteHeader(status)
	fmt.Fprint(w, answer)
}

func (f *v3RefundFake) requests() []v3OrderRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

func newV3RefundTest(t *testing.T, hc *http.Client) (*Client, *v3RefundFake) {
	t.Helper()
	mch, platform := freshKey(t, 0), v3TestKey(t)
	f := &v3RefundFake{t: t, mchPub: &mch.PublicKey, platform: platform}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := NewClient(t.Context(), ClientConfig{
		BaseURL: srv.URL, MchID: v3TestMchID, MchCertSerial: v3TestMchSerial, MchPrivateKey: mch, HTTP: hc,
		Keys: mustV3Keys(t, map[string]*rsa.PublicKey{v3TestPlatformID: &platform.PublicKey}),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, f
}

func refundRequest(no string) payment.RefundRequest {
	return payment.RefundRequest{OutTradeNo: "order-refund-1", OutRefundNo: no, AmountFen: 300, TotalFen: 1000,
		Reason: "商品已售完", NotifyURL: "https://merchant.example/wechatpay/v3/notify"}
}

func TestV3ApplyRefund(t *testing.T) {
	c, f := newV3RefundTest(t, nil)
	got, err := c.ApplyRefund(t.Context(), refundRequest("R-ok"))
	if err != nil {
		t.Fatal(err)
	}
	want := payment.RefundTrade{OutRefundNo: "R-ok", RefundID: "50000408942018111907145868882", OutTradeNo: "order-refund-1",
		TransactionID: "4200000215201811190261405420", Status: payment.RefundProcessing, AmountFen: 300, TotalFen: 1000,
		CreateTime: time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)}
	if !got.CreateTime.Equal(want.CreateTime) {
		t.Errorf("create_time %v", got.CreateTime)
	}
	got.CreateTime = want.CreateTime
	if got != want {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	reqs := f.requests()
	wantBody := map[string]any{
		"out_trade_no": "order-refund-1", "out_refund_no": "R-ok", "reason": "商品已售完",
		"notify_url": "https://merchant.example/wechatpay/v3/notify",
		"amount":     map[string]any{"refund": 300.0, "total": 1000.0, "currency": "CNY"},
	}
	if len(reqs) != 1 || reqs[0].path != "POST /v3/refund/domestic/refunds" || !reflect.DeepEqual(reqs[0].body, wantBody) {
		t.Errorf("requests %+v\nwant body %v", reqs, wantBody)
	}

	// Without reason and notify_url, they are left out (WeChat then uses
	// the portal's refund URL).
	req := refundRequest("R-success")
	req.Reason, req.NotifyURL = "", ""
	got, err = c.ApplyRefund(t.Context(), req)
	if err != nil || got.Status != payment.RefundSuccess || !got.SuccessTime.Equal(time.Date(2026, 11, 26, 2, 0, 5, 0, time.UTC)) {
		t.Fatalf("success: %+v %v", got, err)
	}
	if body := f.requests()[1].body; body["reason"] != nil || body["notify_url"] != nil {
		t.Errorf("body %v", body)
	}
}

func TestV3QueryRefund(t *testing.T) {
	c, f := newV3RefundTest(t, nil)
	for no, status := range map[string]payment.RefundStatus{
		"R-ok": payment.RefundProcessing, "R-success": payment.RefundSuccess, "R-abnormal": payment.RefundAbnormal,
		"R-closed": payment.RefundClosed, "R-2026|a*b@c_d-e": payment.RefundProcessing,
	} {
		got, err := c.QueryRefund(t.Context(), no)
		if err != nil || got.Status != status || got.OutRefundNo != no || got.AmountFen != 300 || got.TotalFen != 1000 ||
			got.RefundID == "" || got.OutTradeNo != "order-refund-1" {
			t.Errorf("%s: %+v %v", no, got, err)
		}
	}
	for _, r := range f.requests() {
		if !strings.HasPrefix(r.path, "GET /v3/refund/domestic/refunds/") || r.body != nil {
			t.Errorf("request %+v", r)
		}
	}
	if got := f.requests(); !slices.ContainsFunc(got, func(r v3OrderRequest) bool {
		return r.path == "GET /v3/refund/domestic/refunds/R-2026%7Ca%2Ab@c_d-e"
	}) {
		t.Errorf("out_refund_no not escaped in the path as the SDK does: %+v", got)
	}

	_, err := c.QueryRefund(t.Context(), "R-none")
	if !errors.Is(err, wechatpay.ErrRefundNotExist) || wechatpay.Retryable(err) || errors.Is(err, wechatpay.ErrRefundRefused) {
		t.Errorf("unknown refund: %v", err)
	}
	var ae *wechatpay.APIError
	if !errors.As(err, &ae) || ae.Code != "RESOURCE_NOT_EXISTS" || ae.HTTPStatus != 404 {
		t.Errorf("unknown refund: %v", err)
	}
	for _, tc := range []struct {
		no, code string
		is       error
		retry    string
	}{
		{"R-500", "SYSTEM_ERROR", nil, "yes"},
		{"R-429", "FREQUENCY_LIMITED", nil, "yes"},
		{"R-502", "", wechatpay.ErrMissingSign, "yes"}, // a gateway's unsigned page: a fault, never WeChat's word
		{"R-param", "PARAM_ERROR", nil, ""},
		{"R-sign", "SIGN_ERROR", nil, ""},
		{"R-badsig", "", wechatpay.ErrBadSignature, ""},
		{"R-other", "ID_MISMATCH", nil, ""},
		{"R-nostatus", "", wechatpay.ErrMalformed, ""},
		{"R-weird", "", wechatpay.ErrMalformed, ""},
		{"R-noid", "", wechatpay.ErrMalformed, ""},
		{"R-nosuccesstime", "", wechatpay.ErrMalformed, ""},
		{"R-garbage", "", wechatpay.ErrMalformed, ""},
		{"bad/no", "", wechatpay.ErrMalformed, "no"},
	} {
		t.Run(tc.no, func(t *testing.T) {
			_, err := c.QueryRefund(t.Context(), tc.no)
			t.Log(err)
			checkRefundErr(t, err, tc.code, 0, tc.is, tc.retry)
		})
	}
}

func TestV3ApplyRefundErrors(t *testing.T) {
	c, _ := newV3RefundTest(t, nil)
	for _, tc := range []struct {
		no     string
		status int
		code   string
		is     error
		retry  string
	}{
		{"R-notenough", 403, "NOT_ENOUGH", wechatpay.ErrNotEnough, "no"},
		{"R-account", 403, "USER_ACCOUNT_ABNORMAL", wechatpay.ErrRefundRefused, "no"},
		{"R-invalid", 400, "INVALID_REQUEST", wechatpay.ErrRefundRefused, ""},
		{"R-param", 400, "PARAM_ERROR", wechatpay.ErrRefundRefused, ""},
		{"R-noauth", 403, "NO_AUTH", wechatpay.ErrRefundRefused, ""},
		{"R-none", 404, "RESOURCE_NOT_EXISTS", wechatpay.ErrRefundRefused, "no"},
		// Our configuration, not this refund: never a refusal.
		{"R-sign", 401, "SIGN_ERROR", nil, ""},
		{"R-mch", 400, "MCH_NOT_EXISTS", nil, ""},
		// Faults: the refund may or may not have been accepted.
		{"R-500", 500, "SYSTEM_ERROR", nil, "yes"},
		{"R-429", 429, "FREQUENCY_LIMITED", nil, "yes"},
		{"R-502", 0, "", wechatpay.ErrMissingSign, "yes"}, // a gateway's unsigned page: a fault
		{"R-badsig", 0, "", wechatpay.ErrBadSignature, ""},
		{"R-garbage", 0, "", wechatpay.ErrMalformed, ""},
		{"R-other", 200, "ID_MISMATCH", nil, ""},
		{"R-othertrade", 200, "ID_MISMATCH", nil, ""},
	} {
		t.Run(tc.no, func(t *testing.T) {
			_, err := c.ApplyRefund(t.Context(), refundRequest(tc.no))
			t.Log(err)
			checkRefundErr(t, err, tc.code, tc.status, tc.is, tc.retry)
			var ae *wechatpay.APIError
			if errors.Is(err, wechatpay.ErrRefundRefused) && (!errors.As(err, &ae) || ae.Message == "") {
				t.Errorf("a refusal without WeChat's message: %v", err)
			}
		})
	}
}

// checkRefundErr checks err's *wechatpay.APIError code and HTTP status
// (none when code is ""), the one refund sentinel it matches (is, or none),
// and its retryability when retry is "yes" or "no". Retryability is left
// open ("") where the fault classification decides it: configuration codes
// and unverifiable answers are retried faults there, and a refund refusal
// is told by its sentinel whatever that says.
func checkRefundErr(t *testing.T, err error, code string, status int, is error, retry string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	var ae *wechatpay.APIError
	if errors.As(err, &ae) != (code != "") {
		t.Fatalf("err = %v (%T), want an *wechatpay.APIError: %v", err, err, code != "")
	}
	if ae != nil && (ae.Code != code || (status != 0 && ae.HTTPStatus != status)) {
		t.Errorf("code %s HTTP %d, want %s %d", ae.Code, ae.HTTPStatus, code, status)
	}
	if is != nil && !errors.Is(err, is) {
		t.Errorf("err = %v, want it to match %v", err, is)
	}
	for _, s := range []error{wechatpay.ErrNotEnough, wechatpay.ErrRefundRefused, wechatpay.ErrRefundNotExist,
		wechatpay.ErrOrderNotExist, wechatpay.ErrOrderPaid, wechatpay.ErrOrderClosed} {
		if s != is && errors.Is(err, s) {
			t.Errorf("err = %v matches %v", err, s)
		}
	}
	if retry != "" && wechatpay.Retryable(err) != (retry == "yes") {
		t.Errorf("wechatpay.Retryable(%v) = %v, want %s", err, wechatpay.Retryable(err), retry)
	}
}

// Timeouts and network failures are retryable: WeChat may have accepted.
func TestV3RefundTimeout(t *testing.T) {
	c, _ := newV3RefundTest(t, &http.Client{Timeout: 100 * time.Millisecond})
	if _, err := c.ApplyRefund(t.Context(), refundRequest("R-slow")); err == nil || !wechatpay.Retryable(err) {
		t.Errorf("apply timeout: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.QueryRefund(ctx, "R-slow"); err == nil || !wechatpay.Retryable(err) {
		t.Errorf("query timeout: %v", err)
	}
}

// Requests WeChat would refuse fail before any call.
func TestV3ApplyRefundRejects(t *testing.T) {
	c, f := newV3RefundTest(t, nil)
	ok := refundRequest("R-ok")
	ok.Reason = strings.Repeat("退", 80)
	if _, err := c.ApplyRefund(t.Context(), ok); err != nil {
		t.Fatalf("80 characters: %v", err)
	}
	for name, mutate := range map[string]func(*payment.RefundRequest){
		"reason too long":     func(r *payment.RefundRequest) { r.Reason = strings.Repeat("a", 81) },
		"reason not UTF-8":    func(r *payment.RefundRequest) { r.Reason = "caf\xe9" },
		"bad out_trade_no":    func(r *payment.RefundRequest) { r.OutTradeNo = "no/1" },
		"bad out_refund_no":   func(r *payment.RefundRequest) { r.OutRefundNo = "R 1" },
		"long out_refund_no":  func(r *payment.RefundRequest) { r.OutRefundNo = strings.Repeat("R", 65) },
		"zero amount":         func(r *payment.RefundRequest) { r.AmountFen = 0 },
		"more than the total": func(r *payment.RefundRequest) { r.AmountFen = 1001 },
		"USD":                 func(r *payment.RefundRequest) { r.Currency = "USD" },
	} {
		req := refundRequest("R-ok")
		mutate(&req)
		if _, err := c.ApplyRefund(t.Context(), req); !errors.Is(err, wechatpay.ErrMalformed) || wechatpay.Retryable(err) {
			t.Errorf("%s: err = %v, want wechatpay.ErrMalformed", name, err)
		}
	}
	if n := len(f.requests()); n != 1 {
		t.Errorf("%d calls, want 1", n)
	}
}

// The client is what the refund activities use.
var _ interface {
	ApplyRefund(ctx context.Context, req payment.RefundRequest) (payment.RefundTrade, error)
	QueryRefund(ctx context.Context, outRefundNo string) (payment.RefundTrade, error)
} = (*Client)(nil)
