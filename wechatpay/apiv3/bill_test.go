package apiv3

import (
	"bytes"
	"compress/gzip"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payflow/payflow/bill"
	"github.com/payflow/payflow/wechatpay"
)

// testBill is a small ALL bill in WeChat's format.
const testBill = "\uFEFF交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类," +
	"应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注\r\n" +
	"`2026-11-25 10:00:00,`wxd678efh567hg6787,`1230000109,`0,`,`4200000001202611250000000001,`ORDER0001,`o1,`NATIVE,`SUCCESS,`OTHERS,`CNY," +
	"`12.34,`0.00,`0,`0,`0.00,`0.00,`,`,`咖啡,`,`0.07000,`0.60%,`12.34,`0.00,`\r\n" +
	"总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n" +
	"`1,`12.34,`0.00,`0.00,`0.07000,`12.34,`0.00\r\n"

// billFake plays WeChat's two bill steps on loopback: tradebill (our
// signature checked, the answer signed with the platform key) and the
// download (our signature checked, the answer unsigned, as WeChat does).
type billFake struct {
	t        *testing.T
	mchPub   *rsa.PublicKey
	platform *rsa.PrivateKey
	prefix   string
	url      string // the server's URL, for download links

	mu        sync.Mutex
	downloads int
	lastDL    http.Header
}

func (f *billFake) checkSignature(w http.ResponseWriter, r *http.Request, uri string) bool {
	m := authRE.FindStringSubmatch(r.Header.Get("Authorization"))
	sig, _ := base64.StdEncoding.DecodeString(func() string {
		if m == nil {
			return ""
		}
		return m[5]
	}())
	if m != nil {
		h := sha256.Sum256([]byte(RequestMessage(r.Method, uri, m[3], m[2], nil)))
		if m[1] == v3TestMchID && m[4] == v3TestMchSerial && rsa.VerifyPKCS1v15(f.mchPub, crypto.SHA256, h[:], sig) == nil {
			return true
		}
	}
	f.t.Errorf("%s %s: request not signed by the merchant", r.Method, uri)
	w.WriteHeader(http.StatusUnauthorized)
	fmt.Fprint(w, `{"code":"SIGN_ERROR","message":"签名错误"}`)
	return false
}

func (f *billFake) answer(w http.ResponseWriter, status int, body string, signed bool) {
	w.Header().Set("Content-Type", "application/json")
	if signed {
		ts, nonce := strconv.FormatInt(time.Now().Unix(), 10), "9c1d5b2e7f3a4c6b8d0e1f2a3b4c5d6e"
		sig, err := SignMessage(f.platform, NotifyMessage(ts, nonce, []byte(body)))
		if err != nil {
			f.t.Error(err)
		}
		w.Header().Set("Wechatpay-Serial", v3TestPlatformID)
		w.Header().Set("Wechatpay-Timestamp", ts)
		w.Header().Set("Wechatpay-Nonce", nonce)
		w.Header().Set("Wechatpay-Signature", sig)
		w.Header().Set("Wechatpay-Signature-Type", SignatureType)
	}
	w.WriteHeader(status)
	fmt.Fprint(w, body)
}

func (f *billFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == f.prefix+"/v3/bill/tradebill":
		if !f.checkSignature(w, r, strings.TrimPrefix(r.URL.RequestURI(), f.prefix)) {
			return
		}
		q := r.URL.Query()
		if q.Get("bill_type") != "ALL" || q.Get("tar_type") != "GZIP" {
			f.answer(w, http.StatusBadRequest, `{"code":"PARAM_ERROR","message":"bill_type"}`, true)
			return
		}
		sum := sha1.Sum([]byte(testBill))
		link := func(u string) string {
			return fmt.Sprintf(`{"hash_type":"SHA1","hash_value":%q,"download_url":%q}`, strings.ToUpper(hex.EncodeToString(sum[:])), u)
		}
		switch q.Get("bill_date") {
		case "2026-11-25":
			f.answer(w, http.StatusOK, link(f.url+f.prefix+"/v3/billdownload/file?token=good&tartype=gzip"), true)
		case "2026-11-24":
			f.answer(w, http.StatusBadRequest, `{"code":"STATEMENT_CREATING","message":"账单生成中"}`, true)
		case "2026-11-23":
			f.answer(w, http.StatusBadRequest, `{"code":"NO_STATEMENT_EXIST","message":"账单不存在"}`, true)
		case "2026-11-22":
			f.answer(w, http.StatusBadRequest, `{"code":"NO_STATEMENT_EXIST","message":"账单不存在"}`, false)
		case "2026-11-21":
			f.answer(w, http.StatusOK, link("http://203.0.113.9/v3/billdownload/file?token=x"), true)
		case "2026-11-20":
			f.answer(w, http.StatusOK, link("https://api.mch.weixin.qq.com/v3/billdownload/file?token=x&tartype=gzip"), true)
		case "2026-11-19":
			f.answer(w, http.StatusInternalServerError, `{"code":"SYSTEM_ERROR","message":"系统错误"}`, true)
		case "2026-11-18":
			f.answer(w, http.StatusOK, `{"hash_type":"MD5","hash_value":"00","download_url":"https://x/"}`, true)
		case "2026-11-17":
			w.Header().Set("Wechatpay-Signature", "forged")
			f.answer(w, http.StatusOK, link(f.url+f.prefix+"/v3/billdownload/file?token=good"), false)
		case "2026-11-16":
			f.answer(w, http.StatusOK, link(f.url+f.prefix+"/v3/billdownload/file?token=expired&tartype=gzip"), true)
		case "2026-11-15":
			f.answer(w, http.StatusOK, link(f.url+f.prefix+"/v3/billdownload/file?token=redirect&tartype=gzip"), true)
		case "2026-11-14":
			f.answer(w, http.StatusOK, link(f.url+f.prefix+"/v3/billdownload/file?token=busy&tartype=gzip"), true)
		default:
			f.answer(w, http.StatusBadRequest, `{"code":"PARAM_ERROR","message":"bill_date"}`, true)
		}
	case r.URL.Path == f.prefix+"/v3/billdownload/file":
		// The download URL is used as given: the signature covers all of it.
		if !f.checkSignature(w, r, r.URL.RequestURI()) {
			return
		}
		f.mu.Lock()
		f.downloads++
		f.lastDL = r.Header.Clone()
		f.mu.Unlock()
		switch r.URL.Query().Get("token") {
		case "good":
			var b bytes.Buffer
			zw := gzip.NewWriter(&b)
			_, _ = io.WriteString(zw, testBill)
			_ = zw.Close()
			w.Header().Set("Content-Type", "application/x-gzip")
			_, _ = w.Write(b.Bytes()) // no Wechatpay-* headers: WeChat does not sign bills
		case "expired":
			f.answer(w, http.StatusBadRequest, `{"code":"INVALID_REQUEST","message":"下载链接已过期"}`, false)
		case "redirect":
			http.Redirect(w, r, "http://203.0.113.9/elsewhere", http.StatusFound)
		case "busy":
			f.answer(w, http.StatusServiceUnavailable, `{"code":"SYSTEM_ERROR","message":"系统繁忙"}`, false)
		}
	default:
		f.answer(w, http.StatusNotFound, `{"code":"NOT_FOUND","message":"no such path"}`, false)
	}
}

func newBillTestClient(t *testing.T, prefix string) (*BillClient, *billFake) {
	t.Helper()
	mch, platform := freshKey(t, 0), v3TestKey(t)
	fake := &billFake{t: t, mchPub: &mch.PublicKey, platform: platform, prefix: prefix}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	fake.url = srv.URL
	keys := mustV3Keys(t, map[string]*rsa.PublicKey{v3TestPlatformID: &platform.PublicKey}, v3TestCert(t))
	c, err := NewBillClient(t.Context(), ClientConfig{
		BaseURL: srv.URL + prefix, MchID: v3TestMchID, MchCertSerial: v3TestMchSerial, MchPrivateKey: mch, Keys: keys,
		HTTP: &http.Client{Timeout: 5 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, fake
}

func TestBillDownloadedAndChecked(t *testing.T) {
	for _, prefix := range []string{"", "/sandbox"} {
		c, fake := newBillTestClient(t, prefix)
		link, err := c.LocateBill(t.Context(), "2026-11-25")
		if err != nil {
			t.Fatal(err)
		}
		sum := sha1.Sum([]byte(testBill))
		if link.Date != "2026-11-25" || link.HashType != "SHA1" || link.HashValue != hex.EncodeToString(sum[:]) ||
			!strings.HasPrefix(link.DownloadURL, fake.url+prefix+"/v3/billdownload/file?token=good") {
			t.Fatalf("link %+v", link)
		}
		body, err := c.OpenBill(t.Context(), link)
		if err != nil {
			t.Fatal(err)
		}
		r, err := bill.NewGzipReader(body, bill.Options{MchID: v3TestMchID, SHA1: link.HashValue})
		if err != nil {
			t.Fatal(err)
		}
		row, err := r.Next()
		if err != nil || row.OutTradeNo != "ORDER0001" || row.OrderFen != 1234 {
			t.Fatalf("row %+v, %v", row, err)
		}
		if _, err := r.Next(); err != io.EOF {
			t.Fatalf("end: %v (the unsigned answer must not be refused, its SHA-1 must check out)", err)
		}
		body.Close()
		if fake.downloads != 1 || fake.lastDL.Get("Authorization") == "" {
			t.Fatalf("downloads %d, headers %v", fake.downloads, fake.lastDL)
		}
	}
}

func TestBillAnswers(t *testing.T) {
	c, fake := newBillTestClient(t, "")
	for _, tc := range []struct {
		date      string
		is        error
		retryable bool
	}{
		{"2026-11-24", wechatpay.ErrBillNotReady, false},
		{"2026-11-23", wechatpay.ErrNoBill, false},
		{"2026-11-19", nil, true},                      // 500: ask again
		{"2026-11-18", wechatpay.ErrBadAnswer, true},   // MD5 is not what WeChat promises: a fault
		{"2026-11-21", wechatpay.ErrBadAnswer, true},   // a plain-http link elsewhere: never followed
		{"2026-11-17", wechatpay.ErrMissingSign, true}, // an answer without WeChat's signature
		{"2026-11-22", wechatpay.ErrMissingSign, true}, // NO_STATEMENT_EXIST unsigned: not trusted
		{"2026-13-01", wechatpay.ErrMalformed, false},  // not a date
		{"2026-11-25T00:00:00+08:00", wechatpay.ErrMalformed, false},
	} {
		_, err := c.LocateBill(t.Context(), tc.date)
		if err == nil {
			t.Errorf("%s: no error", tc.date)
			continue
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%s: %v, want %v", tc.date, err, tc.is)
		}
		if tc.date == "2026-11-22" && errors.Is(err, wechatpay.ErrNoBill) {
			t.Errorf("an unsigned NO_STATEMENT_EXIST decided the day has no bill: %v", err)
		}
		if wechatpay.Retryable(err) != tc.retryable && tc.is != wechatpay.ErrBillNotReady && tc.is != wechatpay.ErrNoBill {
			t.Errorf("%s: Retryable(%v) = %v", tc.date, err, !tc.retryable)
		}
	}
	// An https link elsewhere is allowed: production links are WeChat's.
	if link, err := c.LocateBill(t.Context(), "2026-11-20"); err != nil || !strings.HasPrefix(link.DownloadURL, "https://api.mch.weixin.qq.com/") {
		t.Errorf("https link: %+v, %v", link, err)
	}
	for date, want := range map[string]error{"2026-11-16": wechatpay.ErrBillLinkExpired} {
		link, err := c.LocateBill(t.Context(), date)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.OpenBill(t.Context(), link); !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", date, err, want)
		}
	}
	link, err := c.LocateBill(t.Context(), "2026-11-15")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.OpenBill(t.Context(), link); err == nil || !strings.Contains(err.Error(), "neither https nor under") {
		t.Errorf("redirect elsewhere: %v", err)
	}
	link, err = c.LocateBill(t.Context(), "2026-11-14")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.OpenBill(t.Context(), link); err == nil || errors.Is(err, wechatpay.ErrBillLinkExpired) || !wechatpay.Retryable(err) {
		t.Errorf("503 on download: %v", err)
	}
	// A link that was never checked (say from an old workflow input) is
	// checked again before use.
	if _, err := c.OpenBill(t.Context(), wechatpay.BillLink{Date: "2026-11-25", DownloadURL: "http://203.0.113.9/x"}); !errors.Is(err, wechatpay.ErrMalformed) {
		t.Errorf("unchecked link: %v", err)
	}
	if fake.downloads != 3 {
		t.Errorf("%d downloads, want 3 (expired, redirect, busy)", fake.downloads)
	}
}
