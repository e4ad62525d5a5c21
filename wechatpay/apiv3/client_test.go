package apiv3

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payflow/payflow/wechatpay"

	"github.com/payflow/payflow/payment"
)

const (
	v3TestMchID      = "1230000109"
	v3TestMchSerial  = "3775B6A45ACD588826D15E583A95F5DD4F4F2A6B"
	v3TestPlatformID = "PUB_KEY_ID_0000000000000024101100397200000006"
)

var authRE = regexp.MustCompile(`^WECHATPAY2-SHA256-RSA2048 mchid="([^"]*)",nonce_str="([^"]*)",timestamp="([^"]*)",serial_no="([^"]*)",signature="([^"]*)"$`)

// v3FakeWeChat is an httptest server (loopback) that plays WeChat's order
// query: it checks our Authorization header with the merchant public key
// and answers as the out_trade_no asks, signed with the platform key.
type v3FakeWeChat struct {
	t        *testing.T
	mchPub   *rsa.PublicKey
	platform *rsa.PrivateKey
	prefix   string // the base path the client must prefix

	mu    sync.Mutex
	calls int
}

func (f *v3FakeWeChat) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	fail := func(status int, code, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"code":%q,"message":%q}`, code, msg)
	}
	const path = "/v3/pay/transactions/out-trade-no/"
	if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, f.prefix+path) {
		fail(http.StatusNotFound, "NOT_FOUND", "no such path "+r.URL.Path)
		return
	}
	m := authRE.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil || m[1] != v3TestMchID || m[4] != v3TestMchSerial {
		fail(http.StatusUnauthorized, "SIGN_ERROR", "bad Authorization")
		return
	}
	// The signature covers the path as the SDK built it, without our prefix.
	uri := strings.TrimPrefix(r.URL.RequestURI(), f.prefix)
	sig, _ := base64.StdEncoding.DecodeString(m[5])
	h := sha256.Sum256([]byte(RequestMessage("GET", uri, m[3], m[2], nil)))
	if err := rsa.VerifyPKCS1v15(f.mchPub, crypto.SHA256, h[:], sig); err != nil {
		fail(http.StatusUnauthorized, "SIGN_ERROR", "签名错误")
		return
	}
	if ts, _ := strconv.ParseInt(m[3], 10, 64); time.Since(time.Unix(ts, 0)).Abs() > time.Minute {
		fail(http.StatusUnauthorized, "SIGN_ERROR", "stale request")
		return
	}
	if r.URL.Query().Get("mchid") != v3TestMchID || r.Header.Get("Wechatpay-Serial") != v3TestPlatformID {
		fail(http.StatusBadRequest, "PARAM_ERROR", "mchid or Wechatpay-Serial")
		return
	}

	no := strings.TrimPrefix(r.URL.Path, f.prefix+path)
	status, body := http.StatusOK, ""
	signer, serial, stamp := f.platform, v3TestPlatformID, time.Now()
	switch no {
	case "order-paid":
		body = string(mustJSON(f.t, v3Tx(no, "SUCCESS", 100)))
	case "order-notpay":
		tx := v3Tx(no, "NOTPAY", 100)
		delete(tx["amount"].(map[string]any), "currency")
		body = string(mustJSON(f.t, tx))
	case "order-paying":
		status, body = http.StatusAccepted, `{"code":"USERPAYING","message":"用户支付中，需要输入密码"}`
	case "order-paying-200":
		body = string(mustJSON(f.t, v3Tx(no, "USERPAYING", 100)))
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
	case "order-limited":
		fail(http.StatusTooManyRequests, "FREQUENCY_LIMITED", "频率超限")
		return
	case "order-sign":
		fail(http.StatusUnauthorized, "SIGN_ERROR", "签名错误")
		return
	case "order-param":
		fail(http.StatusBadRequest, "PARAM_ERROR", "参数错误")
		return
	case "order-forbidden":
		fail(http.StatusForbidden, "NO_AUTH", "商户无权限")
		return
	case "order-badsig":
		body, signer = string(mustJSON(f.t, v3Tx(no, "SUCCESS", 100))), freshKey(f.t, 2)
	case "order-unknown-serial":
		body, serial = string(mustJSON(f.t, v3Tx(no, "SUCCESS", 100))), "PUB_KEY_ID_0000000000000099999999999999999999"
	case "order-stale":
		body, stamp = string(mustJSON(f.t, v3Tx(no, "SUCCESS", 100))), time.Now().Add(-10*time.Minute)
	case "order-other":
		body = string(mustJSON(f.t, v3Tx("order-else", "SUCCESS", 100)))
	case "order-garbage":
		body = `{"trade_state":`
	case "order-huge":
		body = `{"x":"` + strings.Repeat("a", maxResponse) + `"}`
	default:
		fail(http.StatusNotFound, "ORDER_NOT_EXIST", "订单不存在")
		return
	}
	ts, nonce := strconv.FormatInt(stamp.Unix(), 10), "0ad4a5b1e1c84ab9a2c3d4e5f6a7b8c9"
	sigStr, err := SignMessage(signer, NotifyMessage(ts, nonce, []byte(body)))
	if err != nil {
		f.t.Error(err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Wechatpay-Serial", serial)
	w.Header().Set("Wechatpay-Timestamp", ts)
	w.Header().Set("Wechatpay-Nonce", nonce)
	w.Header().Set("Wechatpay-Signature", sigStr)
	w.Header().Set("Wechatpay-Signature-Type", SignatureType)
	w.WriteHeader(status)
	fmt.Fprint(w, body)
}

func newV3TestClient(t *testing.T, prefix string) (*Client, *v3FakeWeChat) {
	t.Helper()
	mch, platform := freshKey(t, 0), v3TestKey(t)
	fake := &v3FakeWeChat{t: t, mchPub: &mch.PublicKey, platform: platform, prefix: prefix}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	keys := mustV3Keys(t, map[string]*rsa.PublicKey{v3TestPlatformID: &platform.PublicKey}, v3TestCert(t))
	c, err := NewClient(t.Context(), ClientConfig{
		BaseURL: srv.URL + prefix, MchID: v3TestMchID, MchCertSerial: v3TestMchSerial, MchPrivateKey: mch, Keys: keys,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, fake
}

func TestV3ClientQueryOrder(t *testing.T) {
	c, _ := newV3TestClient(t, "")

	paid, err := c.QueryOrder(t.Context(), "order-paid")
	if err != nil {
		t.Fatal(err)
	}
	want := payment.Trade{
		OutTradeNo: "order-paid", TransactionID: "4200001234202408050000000001",
		AppID: "wxd678efh567hg6787", MchID: v3TestMchID, TradeState: "SUCCESS", TradeStateDesc: "desc",
		AmountFen: 100, Currency: "CNY", PaidAt: time.Date(2024, 8, 5, 9, 33, 41, 0, time.UTC),
	}
	if !paid.PaidAt.Equal(want.PaidAt) {
		t.Errorf("PaidAt = %v, want %v", paid.PaidAt, want.PaidAt)
	}
	paid.PaidAt = want.PaidAt
	if paid != want {
		t.Errorf("got  %+v\nwant %+v", paid, want)
	}

	notpay, err := c.QueryOrder(t.Context(), "order-notpay")
	if err != nil || notpay.TradeState != "NOTPAY" || notpay.Currency != "CNY" || notpay.TransactionID != "" || !notpay.PaidAt.IsZero() {
		t.Errorf("NOTPAY: %+v, %v", notpay, err)
	}
	for _, no := range []string{"order-paying", "order-paying-200"} {
		tr, err := c.QueryOrder(t.Context(), no)
		if err != nil || tr.TradeState != payment.TradeUserPaying || tr.OutTradeNo != no || payment.TradeStateFinal(tr.TradeState) {
			t.Errorf("%s: %+v, %v", no, tr, err)
		}
	}
}

func TestV3ClientQueryOrderErrors(t *testing.T) {
	c, _ := newV3TestClient(t, "")
	for _, tc := range []struct {
		no        string
		status    int
		code      string // of the *wechatpay.APIError; "" when none is expected
		is        error  // a sentinel the error must wrap
		retryable bool
	}{
		{"order-none", 404, "ORDERNOTEXIST", wechatpay.ErrOrderNotExist, false},
		{"order-500", 500, "SYSTEM_ERROR", nil, true},
		{"order-502", 502, "HTTP_ERROR", nil, true},
		{"order-limited", 429, "FREQUENCY_LIMITED", nil, true},
		{"order-sign", 401, "SIGN_ERROR", nil, false},
		{"order-param", 400, "PARAM_ERROR", nil, false},
		{"order-forbidden", 403, "NO_AUTH", nil, false},
		{"order-other", 200, "ID_MISMATCH", nil, false},
		{"order-badsig", 0, "", wechatpay.ErrBadSignature, false},
		{"order-unknown-serial", 0, "", wechatpay.ErrBadSignature, false},
		{"order-stale", 0, "", wechatpay.ErrBadSignature, false},
		{"order-garbage", 0, "", wechatpay.ErrMalformed, false},
		{"order-huge", 0, "", wechatpay.ErrBadSignature, false},
		{"bad order no!", 0, "", wechatpay.ErrMalformed, false},
	} {
		t.Run(tc.no, func(t *testing.T) {
			tr, err := c.QueryOrder(t.Context(), tc.no)
			t.Log(err)
			if err == nil {
				t.Fatalf("got %+v, want an error", tr)
			}
			var ae *wechatpay.APIError
			if got := errors.As(err, &ae); got != (tc.code != "") {
				t.Fatalf("err = %v (%T); want an *wechatpay.APIError: %v", err, err, tc.code != "")
			}
			if ae != nil && (ae.Code != tc.code || ae.HTTPStatus != tc.status) {
				t.Errorf("wechatpay.APIError = %+v, want code %s, status %d", ae, tc.code, tc.status)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("err = %v, want it to wrap %v", err, tc.is)
			}
			if tc.is != wechatpay.ErrOrderNotExist && errors.Is(err, wechatpay.ErrOrderNotExist) {
				t.Errorf("err = %v matches wechatpay.ErrOrderNotExist", err)
			}
			if wechatpay.Retryable(err) != tc.retryable {
				t.Errorf("wechatpay.Retryable(%v) = %v, want %v", err, !tc.retryable, tc.retryable)
			}
		})
	}
}

// WECHATPAY_BASE_URL may carry a path: it is prefixed, and the signature
// still covers WeChat's path.
func TestV3ClientBasePath(t *testing.T) {
	c, fake := newV3TestClient(t, "/wechat")
	if _, err := c.QueryOrder(t.Context(), "order-paid"); err != nil {
		t.Fatal(err)
	}
	if fake.calls != 1 {
		t.Errorf("calls = %d", fake.calls)
	}
}

// A network failure is retryable; a cancelled context is an error.
func TestV3ClientNetworkError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	keys := mustV3Keys(t, nil, v3TestCert(t))
	c, err := NewClient(t.Context(), ClientConfig{
		BaseURL: url, MchID: v3TestMchID, MchCertSerial: v3TestMchSerial, MchPrivateKey: freshKey(t, 0), Keys: keys,
		HTTP: &http.Client{Timeout: 2 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.QueryOrder(t.Context(), "order-paid")
	if err == nil || !wechatpay.Retryable(err) || errors.Is(err, wechatpay.ErrBadSignature) {
		t.Errorf("err = %v, want a retryable network error", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.QueryOrder(ctx, "order-paid"); err == nil {
		t.Error("cancelled query succeeded")
	}
}

func TestNewV3ClientRejects(t *testing.T) {
	keys := mustV3Keys(t, nil, v3TestCert(t))
	priv := freshKey(t, 0)
	good := ClientConfig{BaseURL: "http://127.0.0.1:1", MchID: v3TestMchID, MchCertSerial: v3TestMchSerial, MchPrivateKey: priv, Keys: keys}
	if _, err := NewClient(t.Context(), good); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*ClientConfig){
		"no mchid":       func(c *ClientConfig) { c.MchID = "" },
		"no serial":      func(c *ClientConfig) { c.MchCertSerial = "" },
		"no private key": func(c *ClientConfig) { c.MchPrivateKey = nil },
		"no keys":        func(c *ClientConfig) { c.Keys = nil },
		"ftp base":       func(c *ClientConfig) { c.BaseURL = "ftp://127.0.0.1" },
		"no host":        func(c *ClientConfig) { c.BaseURL = "http://" },
		"query in base":  func(c *ClientConfig) { c.BaseURL = "http://127.0.0.1:1/?x=1" },
		"user in base":   func(c *ClientConfig) { c.BaseURL = "http://u:p@127.0.0.1:1" },
		"not a URL":      func(c *ClientConfig) { c.BaseURL = "://" },
	} {
		cfg := good
		mutate(&cfg)
		if _, err := NewClient(t.Context(), cfg); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), ":p@") {
			t.Errorf("%s: error shows the URL password: %v", name, err)
		}
	}
}

// Our own request signature is checked: a merchant key WeChat does not
// know gets 401 SIGN_ERROR, which no retry fixes.
func TestV3ClientWrongMerchantKey(t *testing.T) {
	_, fake := newV3TestClient(t, "")
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	c, err := NewClient(t.Context(), ClientConfig{
		BaseURL: srv.URL, MchID: v3TestMchID, MchCertSerial: v3TestMchSerial, MchPrivateKey: freshKey(t, 1),
		Keys: mustV3Keys(t, map[string]*rsa.PublicKey{v3TestPlatformID: &v3TestKey(t).PublicKey}),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.QueryOrder(t.Context(), "order-paid")
	var ae *wechatpay.APIError
	if !errors.As(err, &ae) || ae.Code != "SIGN_ERROR" || ae.HTTPStatus != 401 || wechatpay.Retryable(err) {
		t.Errorf("err = %v, want a final 401 SIGN_ERROR", err)
	}
	t.Log(err)
}
