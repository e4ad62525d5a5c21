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
	// WeChat signs its error answers too.
	signed := func(status int, body string, signer *rsa.PrivateKey, serial string, stamp time.Time) {
		ts, nonce := strconv.FormatInt(stamp.Unix(), 10), "0ad4a5b1e1c84ab9a2c3d4e5f6a7b8c9"
		sigStr, err := SignMessage(signer, NotifyMessage(ts, nonce, []byte(body)))
		if err != nil {
			f.t.Error(err)
		}
		if body != "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.Header().Set("Wechatpay-Serial", serial)
		w.Header().Set("Wechatpay-Timestamp", ts)
		w.Header().Set("Wechatpay-Nonce", nonce)
		w.Header().Set("Wechatpay-Signature", sigStr)
		w.Header().Set("Wechatpay-Signature-Type", SignatureType)
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}
	fail := func(status int, code, msg string) {
		signed(status, fmt.Sprintf(`{"code":%q,"message":%q}`, code, msg), f.platform, v3TestPlatformID, time.Now())
	}
	unsigned := func(status int, body string) {
		w.WriteHeader(status)
		fmt.Fprint(w, body)
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
	case "order-accepted-empty":
		status = http.StatusAccepted
	case "order-paying-200":
		body = string(mustJSON(f.t, v3Tx(no, "USERPAYING", 100)))
	case "order-none":
		fail(http.StatusNotFound, "ORDER_NOT_EXIST", "订单不存在")
		return
	case "order-500":
		fail(http.StatusInternalServerError, "SYSTEM_ERROR", "系统错误")
		return
	case "order-502":
		unsigned(http.StatusBadGateway, "<html>bad gateway</html>")
		return
	case "order-503":
		unsigned(http.StatusServiceUnavailable, "")
		return
	case "order-proxy-403":
		unsigned(http.StatusForbidden, "<html><body><h1>403 Forbidden</h1></body></html>")
		return
	case "order-proxy-404":
		unsigned(http.StatusNotFound, "<html><body><h1>404 Not Found</h1>nginx</body></html>")
		return
	case "order-unsigned-none": // WeChat's words, not WeChat's signature
		unsigned(http.StatusNotFound, `{"code":"ORDER_NOT_EXIST","message":"订单不存在"}`)
		return
	case "order-unsigned-paid":
		unsigned(http.StatusOK, string(mustJSON(f.t, v3Tx(no, "SUCCESS", 100))))
		return
	case "order-unsigned-429":
		unsigned(http.StatusTooManyRequests, `{"code":"FREQUENCY_LIMITED","message":"频率超限"}`)
		return
	case "order-badsig-none":
		signed(http.StatusNotFound, `{"code":"ORDER_NOT_EXIST","message":"订单不存在"}`, freshKey(f.t, 2), v3TestPlatformID, time.Now())
		return
	case "order-unknown-serial-none":
		signed(http.StatusNotFound, `{"code":"ORDER_NOT_EXIST","message":"订单不存在"}`, freshKey(f.t, 2), "PUB_KEY_ID_0000000000000099999999999999999999", time.Now())
		return
	case "order-stale-none":
		signed(http.StatusNotFound, `{"code":"ORDER_NOT_EXIST","message":"订单不存在"}`, f.platform, v3TestPlatformID, time.Now().Add(-6*time.Minute))
		return
	case "order-future":
		body, stamp = string(mustJSON(f.t, v3Tx(no, "SUCCESS", 100))), time.Now().Add(6*time.Minute)
	case "order-probe":
		w.Header().Set("Wechatpay-Serial", v3TestPlatformID)
		w.Header().Set("Wechatpay-Timestamp", strconv.FormatInt(time.Now().Unix(), 10))
		w.Header().Set("Wechatpay-Nonce", "n")
		w.Header().Set("Wechatpay-Signature", ProbePrefix+"x")
		unsigned(http.StatusOK, string(mustJSON(f.t, v3Tx(no, "SUCCESS", 100))))
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
	signed(status, body, signer, serial, stamp)
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
	tr, err := c.QueryOrder(t.Context(), "order-paying-200")
	if err != nil || tr.TradeState != payment.TradeUserPaying || tr.OutTradeNo != "order-paying-200" || payment.TradeStateFinal(tr.TradeState) {
		t.Errorf("USERPAYING: %+v, %v", tr, err)
	}
}

// Every answer that is not a trade, and the decision or fault it is: only
// WeChat's signed word decides anything; an unsigned or badly signed
// answer, one by an unknown key or off our clock, is a fault whatever its
// status and body say.
func TestV3ClientQueryOrderErrors(t *testing.T) {
	c, _ := newV3TestClient(t, "")
	for _, tc := range []struct {
		no     string
		status int
		code   string // of the *wechatpay.APIError; "" when none is expected
		is     error  // a sentinel the error must wrap
		fault  string // "" for WeChat's decisive answer or a request not sent
	}{
		{"order-none", 404, "ORDERNOTEXIST", wechatpay.ErrOrderNotExist, ""},
		{"order-paying", 202, "ACCEPTED", nil, wechatpay.FaultAccepted},
		{"order-accepted-empty", 202, "ACCEPTED", nil, wechatpay.FaultAccepted},
		{"order-500", 500, "SYSTEM_ERROR", nil, wechatpay.FaultSystemError},
		{"order-limited", 429, "FREQUENCY_LIMITED", nil, wechatpay.FaultRateLimited},
		{"order-sign", 401, "SIGN_ERROR", nil, wechatpay.FaultConfig},
		{"order-param", 400, "PARAM_ERROR", nil, wechatpay.FaultConfig},
		{"order-forbidden", 403, "NO_AUTH", nil, wechatpay.FaultConfig},
		{"order-other", 200, "ID_MISMATCH", nil, wechatpay.FaultMalformed},
		{"order-502", 0, "", wechatpay.ErrMissingSign, wechatpay.FaultHTTP5xx},
		{"order-503", 0, "", wechatpay.ErrMissingSign, wechatpay.FaultHTTP5xx},
		{"order-proxy-403", 0, "", wechatpay.ErrMissingSign, wechatpay.FaultUnsigned},
		{"order-proxy-404", 0, "", wechatpay.ErrMissingSign, wechatpay.FaultUnsigned},
		{"order-unsigned-none", 0, "", wechatpay.ErrMissingSign, wechatpay.FaultUnsigned},
		{"order-unsigned-paid", 0, "", wechatpay.ErrMissingSign, wechatpay.FaultUnsigned},
		{"order-unsigned-429", 0, "", wechatpay.ErrMissingSign, wechatpay.FaultRateLimited},
		{"order-badsig", 0, "", wechatpay.ErrBadSignature, wechatpay.FaultBadSignature},
		{"order-badsig-none", 0, "", wechatpay.ErrBadSignature, wechatpay.FaultBadSignature},
		{"order-probe", 0, "", wechatpay.ErrBadSignature, wechatpay.FaultBadSignature},
		{"order-unknown-serial", 0, "", wechatpay.ErrUnknownKey, wechatpay.FaultUnknownKey},
		{"order-unknown-serial-none", 0, "", wechatpay.ErrUnknownKey, wechatpay.FaultUnknownKey},
		{"order-stale", 0, "", wechatpay.ErrStaleTimestamp, wechatpay.FaultClockSkew},
		{"order-stale-none", 0, "", wechatpay.ErrStaleTimestamp, wechatpay.FaultClockSkew},
		{"order-future", 0, "", wechatpay.ErrStaleTimestamp, wechatpay.FaultClockSkew},
		{"order-garbage", 0, "", wechatpay.ErrBadAnswer, wechatpay.FaultMalformed},
		{"order-huge", 0, "", wechatpay.ErrBadAnswer, wechatpay.FaultMalformed},
		{"bad order no!", 0, "", wechatpay.ErrMalformed, ""},
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
			for _, d := range []error{wechatpay.ErrOrderNotExist, wechatpay.ErrOrderPaid, wechatpay.ErrOrderClosed} {
				if d != tc.is && errors.Is(err, d) {
					t.Errorf("err = %v matches %v", err, d)
				}
			}
			if kind, _ := wechatpay.Fault(err); kind != tc.fault {
				t.Errorf("wechatpay.Fault(%v) = %q, want %q", err, kind, tc.fault)
			}
			if wechatpay.Retryable(err) != (tc.fault != "") {
				t.Errorf("wechatpay.Retryable(%v) = %v, want %v", err, tc.fault == "", tc.fault != "")
			}
		})
	}
}

// A clock five minutes off ours (the merchant's server drifted) makes
// every signed answer a clock_skew fault; an injected clock shows it.
func TestV3ClientClockSkew(t *testing.T) {
	mch, platform := freshKey(t, 0), v3TestKey(t)
	fake := &v3FakeWeChat{t: t, mchPub: &mch.PublicKey, platform: platform}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	keys := mustV3Keys(t, map[string]*rsa.PublicKey{v3TestPlatformID: &platform.PublicKey})
	for _, tc := range []struct {
		skew  time.Duration
		fault string
	}{{0, ""}, {4 * time.Minute, ""}, {-4 * time.Minute, ""}, {6 * time.Minute, wechatpay.FaultClockSkew}, {-6 * time.Minute, wechatpay.FaultClockSkew}} {
		c, err := NewClient(t.Context(), ClientConfig{BaseURL: srv.URL, MchID: v3TestMchID, MchCertSerial: v3TestMchSerial,
			MchPrivateKey: mch, Keys: keys, Now: func() time.Time { return time.Now().Add(tc.skew) }})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.QueryOrder(t.Context(), "order-paid")
		if kind, _ := wechatpay.Fault(err); kind != tc.fault || (tc.fault == "") != (err == nil) {
			t.Errorf("skew %s: %v (fault %q), want %q", tc.skew, err, kind, tc.fault)
		}
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
// know gets a signed 401 SIGN_ERROR: a configuration fault, which says
// nothing about the payment.
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
	if kind, _ := wechatpay.Fault(err); !errors.As(err, &ae) || ae.Code != "SIGN_ERROR" || ae.HTTPStatus != 401 || kind != wechatpay.FaultConfig {
		t.Errorf("err = %v, want a 401 SIGN_ERROR configuration fault", err)
	}
	t.Log(err)
}
