package apiv2

import (
	"bytes"
	"crypto/aes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/wechatpay"
)

// notifyVectors is testdata/notify/vectors.json: payloads shaped like the
// ones published in issues, signed and encrypted by testdata/notify/gen.py
// (Python's hashlib, hmac and cryptography, not this package).
type notifyVectors struct {
	APIKey string `json:"api_key"`
	AppID  string `json:"appid"`
	MchID  string `json:"mch_id"`
	Files  map[string]struct {
		Kind          string `json:"kind"`
		SignType      string `json:"sign_type"`
		Sign          string `json:"sign"`
		ID            string `json:"id"`
		OutTradeNo    string `json:"out_trade_no"`
		TransactionID string `json:"transaction_id"`
		AmountFen     int64  `json:"amount_fen"`
		TimeEnd       string `json:"time_end"`
		OutRefundNo   string `json:"out_refund_no"`
		RefundID      string `json:"refund_id"`
		Status        string `json:"status"`
		TotalFen      int64  `json:"total_fen"`
		SuccessTime   string `json:"success_time"`
		FromPortal    bool   `json:"from_portal"`
	} `json:"files"`
}

func loadNotifyVectors(t testing.TB) notifyVectors {
	t.Helper()
	raw, err := os.ReadFile("testdata/notify/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v notifyVectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Files) < 4 {
		t.Fatalf("vectors.json lists %d files", len(v.Files))
	}
	return v
}

func readVector(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata/notify", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func vectorParser(t testing.TB, v notifyVectors) *NotifyParser {
	t.Helper()
	p, err := NewNotifyParser(v.AppID, v.MchID, v.APIKey)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Every vector parses into what gen.py says it is.
func TestNotifyParserVectors(t *testing.T) {
	v := loadNotifyVectors(t)
	p := vectorParser(t, v)
	for name, want := range v.Files {
		t.Run(name, func(t *testing.T) {
			body := readVector(t, name)
			n, err := p.Parse(nil, body)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if n.Source != payment.SourceV2 || n.OutTradeNo != want.OutTradeNo || n.TransactionID != want.TransactionID ||
				n.AppID != v.AppID || n.MchID != v.MchID || n.EventType != "" {
				t.Fatalf("notification %+v", n)
			}
			switch want.Kind {
			case "payment":
				params, _ := DecodeXML(body)
				if params["sign"] != want.Sign || (params["sign_type"] != "") != (want.SignType == SignTypeMD5) {
					t.Fatalf("vector %s: sign %q sign_type %q", name, params["sign"], params["sign_type"])
				}
				paidAt, _ := time.ParseInLocation("20060102150405", want.TimeEnd, wechatpay.Beijing)
				if n.Kind != payment.KindPayment || !n.Succeeded() || n.AmountFen != want.AmountFen ||
					!n.PaidAt.Equal(paidAt) || n.Refund != nil || !strings.HasPrefix(n.ID, "v2:") {
					t.Fatalf("payment %+v", n)
				}
			case "refund":
				f := n.Refund
				if n.Kind != payment.KindRefund || n.Succeeded() || f == nil || n.ID != want.ID {
					t.Fatalf("refund %+v (id %s, want %s)", n, n.ID, want.ID)
				}
				if f.OutRefundNo != want.OutRefundNo || f.RefundID != want.RefundID || string(f.Status) != want.Status ||
					f.AmountFen != want.AmountFen || f.TotalFen != want.TotalFen || f.FromPortal != want.FromPortal {
					t.Fatalf("refund facts %+v, want %+v", *f, want)
				}
				var st time.Time
				if want.SuccessTime != "" {
					st, _ = time.Parse(time.RFC3339, want.SuccessTime)
				}
				if !f.SuccessTime.Equal(st) {
					t.Fatalf("success time %v, want %v", f.SuccessTime, st)
				}
			default:
				t.Fatalf("vector kind %q", want.Kind)
			}
		})
	}
}

// The HMAC vector carries no sign_type: its 64-character sign is
// HMAC-SHA256. The MD5 vector carries sign_type=MD5, which is signed.
func TestVerifyVectorsSignType(t *testing.T) {
	v := loadNotifyVectors(t)
	hmacParams, err := DecodeXML(readVector(t, "hmac_no_sign_type.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, has := hmacParams["sign_type"]; has || len(hmacParams["sign"]) != 64 {
		t.Fatalf("HMAC vector: %v", hmacParams)
	}
	md5Params, err := DecodeXML(readVector(t, "md5_sign_type_coupons.xml"))
	if err != nil {
		t.Fatal(err)
	}
	with := func(p map[string]string, k, val string) map[string]string {
		q := maps.Clone(p)
		if val == "" {
			delete(q, k)
		} else {
			q[k] = val
		}
		return q
	}
	for _, tc := range []struct {
		name   string
		params map[string]string
		key    string
		want   error
	}{
		{"HMAC, no sign_type", hmacParams, v.APIKey, nil},
		{"HMAC, wrong key", hmacParams, docKey, wechatpay.ErrBadSignature},
		{"HMAC, said to be MD5", with(hmacParams, "sign_type", SignTypeMD5), v.APIKey, wechatpay.ErrBadSignature},
		{"HMAC, said to be HMAC (then signed too)", with(hmacParams, "sign_type", SignTypeHMACSHA256), v.APIKey, wechatpay.ErrBadSignature},
		{"HMAC, amount changed", with(hmacParams, "total_fee", "2"), v.APIKey, wechatpay.ErrBadSignature},
		{"MD5 with sign_type=MD5", md5Params, v.APIKey, nil},
		{"MD5, sign_type removed", with(md5Params, "sign_type", ""), v.APIKey, wechatpay.ErrBadSignature},
		{"MD5, a coupon removed", with(md5Params, "coupon_fee_1", ""), v.APIKey, wechatpay.ErrBadSignature},
		{"MD5, a field added", with(md5Params, "sub_mch_id", "1900000109"), v.APIKey, wechatpay.ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(tc.params, tc.key)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

// ecbRaw encrypts whole blocks with AES-ECB under reqInfoKey(key), adding
// no padding, so tests can build texts with padding of their choosing.
func ecbRaw(t *testing.T, plain []byte, key string) string {
	t.Helper()
	if len(plain)%aes.BlockSize != 0 {
		t.Fatalf("%d bytes", len(plain))
	}
	block, err := aes.NewCipher(reqInfoKey(key))
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, len(plain))
	for i := 0; i < len(plain); i += aes.BlockSize {
		block.Encrypt(out[i:], plain[i:i+aes.BlockSize])
	}
	return base64.StdEncoding.EncodeToString(out)
}

func TestDecryptReqInfo(t *testing.T) {
	v := loadNotifyVectors(t)
	outer, err := DecodeXML(readVector(t, "refund_success.xml"))
	if err != nil {
		t.Fatal(err)
	}
	inner, err := DecryptReqInfo(outer["req_info"], v.APIKey)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(inner, []byte("<root><out_refund_no>")) || !bytes.HasSuffix(inner, []byte("</root>")) {
		t.Fatalf("inner %q", inner)
	}
	again, err := EncryptReqInfo(inner, v.APIKey)
	if err != nil || again != outer["req_info"] {
		t.Fatalf("EncryptReqInfo does not reproduce the vector: %v", err)
	}

	body := []byte("<root><a>1</a></root>") // 21 bytes: two blocks with 11 bytes of padding
	padded := append(append([]byte{}, body...), bytes.Repeat([]byte{11}, 11)...)
	for _, tc := range []struct {
		name    string
		reqInfo string
		key     string
	}{
		{"another merchant's key", outer["req_info"], docKey},
		{"not base64", "%%%", v.APIKey},
		{"empty", "", v.APIKey},
		{"not whole blocks", base64.StdEncoding.EncodeToString(make([]byte, 20)), v.APIKey},
		{"last block cut off", base64.StdEncoding.EncodeToString(dropLast(mustB64(t, outer["req_info"]))), v.APIKey},
		{"padding byte 0", ecbRaw(t, append(append([]byte{}, body...), append(bytes.Repeat([]byte{11}, 10), 0)...), v.APIKey), v.APIKey},
		{"padding byte 17", ecbRaw(t, append(append([]byte{}, body[:15]...), bytes.Repeat([]byte{17}, 17)...), v.APIKey), v.APIKey},
		{"padding bytes differ", ecbRaw(t, append(append([]byte{}, body...), append(bytes.Repeat([]byte{11}, 9), 10, 11)...), v.APIKey), v.APIKey},
		{"no padding block", ecbRaw(t, bytes.Repeat([]byte("x"), 32), v.APIKey), v.APIKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecryptReqInfo(tc.reqInfo, tc.key)
			if !errors.Is(err, wechatpay.ErrDecrypt) {
				t.Fatalf("DecryptReqInfo = %q, %v; want wechatpay.ErrDecrypt", got, err)
			}
			if strings.Contains(err.Error(), tc.key) || strings.Contains(err.Error(), string(reqInfoKey(tc.key))) {
				t.Fatalf("error shows the key: %v", err)
			}
		})
	}
	if got, err := DecryptReqInfo(ecbRaw(t, padded, v.APIKey), v.APIKey); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("hand-padded text: %q, %v", got, err)
	}
	if _, err := DecryptReqInfo(outer["req_info"], ""); !errors.Is(err, wechatpay.ErrConfig) {
		t.Fatalf("empty key: %v", err)
	}
}

func dropLast(b []byte) []byte { return b[:len(b)-aes.BlockSize] }

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPKCS7Unpad(t *testing.T) {
	block := func(tail ...byte) []byte {
		return append(bytes.Repeat([]byte{'x'}, aes.BlockSize-len(tail)), tail...)
	}
	for _, tc := range []struct {
		b    []byte
		n    int
		good bool
	}{
		{block(1), 15, true},
		{block(2, 2), 14, true},
		{bytes.Repeat([]byte{16}, 16), 0, true},
		{append(block(1), bytes.Repeat([]byte{16}, 16)...), 16, true},
		{block(0), 0, false},
		{block(17), 0, false},
		{block(255), 0, false},
		{block(1, 2), 0, false},
		{block(3, 2, 3), 0, false},
		{nil, 0, false},
		{[]byte{1}, 0, false},
	} {
		n, good := pkcs7Unpad(tc.b)
		if n != tc.n || good != tc.good {
			t.Errorf("pkcs7Unpad(%v) = %d, %v; want %d, %v", tc.b, n, good, tc.n, tc.good)
		}
	}
}

// refundBody builds a v2 refund notification of inner (XML under <root>)
// encrypted with key, with the outer fields overridden by kv.
func refundBody(t *testing.T, v notifyVectors, inner, key string, kv ...string) []byte {
	t.Helper()
	ri, err := EncryptReqInfo([]byte(inner), key)
	if err != nil {
		t.Fatal(err)
	}
	outer := map[string]string{"return_code": "SUCCESS", "appid": v.AppID, "mch_id": v.MchID, "nonce_str": "n1", "req_info": ri}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "<delete>" {
			delete(outer, kv[i])
		} else {
			outer[kv[i]] = kv[i+1]
		}
	}
	return EncodeXML(outer)
}

func mustEncrypt(t *testing.T, plain, key string) string {
	t.Helper()
	s, err := EncryptReqInfo([]byte(plain), key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func innerXML(kv ...string) string {
	p := map[string]string{
		"out_refund_no": "RF0001", "out_trade_no": "PF2611270001", "refund_fee": "1", "total_fee": "1",
		"refund_id": "50300002612026112712345678909", "refund_status": "SUCCESS", "success_time": "2026-11-27 12:00:00",
		"transaction_id": "4200002611202611274211234567", "refund_request_source": "API",
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "<delete>" {
			delete(p, kv[i])
		} else {
			p[kv[i]] = kv[i+1]
		}
	}
	return strings.Replace(strings.Replace(string(EncodeXML(p)), "<xml>", "<root>", 1), "</xml>", "</root>", 1)
}

func TestNotifyParserRefunds(t *testing.T) {
	v := loadNotifyVectors(t)
	p := vectorParser(t, v)
	good := refundBody(t, v, innerXML(), v.APIKey)
	n, err := p.Parse(nil, good)
	if err != nil {
		t.Fatal(err)
	}
	if n.Kind != payment.KindRefund || n.Refund.Status != payment.RefundSuccess || n.Refund.FromPortal ||
		!n.Refund.SuccessTime.Equal(time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)) {
		t.Fatalf("%+v %+v", n, n.Refund)
	}
	// Another copy (another nonce) is the same notification; another
	// refund is not.
	if n2, err := p.Parse(nil, refundBody(t, v, innerXML(), v.APIKey, "nonce_str", "n2")); err != nil || n2.ID != n.ID {
		t.Fatalf("copy: %v, id %s vs %s", err, n2.ID, n.ID)
	}
	if n3, _ := p.Parse(nil, refundBody(t, v, innerXML("out_refund_no", "RF0002"), v.APIKey)); n3.ID == n.ID {
		t.Fatal("two refunds share an id")
	}
	for _, tc := range []struct {
		status string
		want   payment.RefundStatus
		extra  []string
	}{
		{"CHANGE", payment.RefundAbnormal, []string{"success_time", "<delete>"}},
		{"REFUNDCLOSE", payment.RefundClosed, []string{"success_time", "<delete>"}},
	} {
		n, err := p.Parse(nil, refundBody(t, v, innerXML(append([]string{"refund_status", tc.status}, tc.extra...)...), v.APIKey))
		if err != nil || n.Refund.Status != tc.want || !n.Refund.SuccessTime.IsZero() {
			t.Fatalf("%s: %+v, %v", tc.status, n.Refund, err)
		}
	}
	if n, err := p.Parse(nil, refundBody(t, v, innerXML("refund_request_source", "VENDOR_PLATFORM"), v.APIKey)); err != nil || !n.Refund.FromPortal {
		t.Fatalf("VENDOR_PLATFORM: %+v, %v", n.Refund, err)
	}

	for _, tc := range []struct {
		name string
		body []byte
		want error
	}{
		{"another merchant's key", refundBody(t, v, innerXML(), docKey), wechatpay.ErrDecrypt},
		{"req_info not base64", refundBody(t, v, innerXML(), v.APIKey, "req_info", "not base64!"), wechatpay.ErrDecrypt},
		{"req_info empty", refundBody(t, v, innerXML(), v.APIKey, "req_info", ""), wechatpay.ErrDecrypt},
		{"bad padding", refundBody(t, v, innerXML(), v.APIKey, "req_info", ecbRaw(t, bytes.Repeat([]byte("y"), 48), v.APIKey)), wechatpay.ErrDecrypt},
		{"foreign appid", refundBody(t, v, innerXML(), v.APIKey, "appid", "wx0000000000foreign"), wechatpay.ErrForeign},
		{"foreign mch_id", refundBody(t, v, innerXML(), v.APIKey, "mch_id", "1900000999"), wechatpay.ErrForeign},
		{"return_code FAIL", refundBody(t, v, innerXML(), v.APIKey, "return_code", "FAIL"), wechatpay.ErrMalformed},
		{"inner not XML", refundBody(t, v, "refund ok", v.APIKey), wechatpay.ErrMalformed},
		// ECB has no integrity: a text with its first block cut off still
		// decrypts, but is no refund any more. (Authenticity rests on our key
		// and, before anything counts, WeChat's refund query.)
		{"first block cut off", refundBody(t, v, innerXML(), v.APIKey, "req_info", base64.StdEncoding.EncodeToString(
			mustB64(t, mustEncrypt(t, innerXML(), v.APIKey))[aes.BlockSize:])), wechatpay.ErrMalformed},
		{"inner root xml", refundBody(t, v, "<xml><a>1</a></xml>", v.APIKey), wechatpay.ErrMalformed},
		{"unknown refund_status", refundBody(t, v, innerXML("refund_status", "PROCESSING"), v.APIKey), wechatpay.ErrMalformed},
		{"refund_fee decimal", refundBody(t, v, innerXML("refund_fee", "0.01"), v.APIKey), wechatpay.ErrMalformed},
		{"total_fee missing", refundBody(t, v, innerXML("total_fee", "<delete>"), v.APIKey), wechatpay.ErrMalformed},
		{"out_refund_no invalid", refundBody(t, v, innerXML("out_refund_no", "a b"), v.APIKey), wechatpay.ErrMalformed},
		{"out_trade_no invalid", refundBody(t, v, innerXML("out_trade_no", "x"), v.APIKey), wechatpay.ErrMalformed},
		{"refund_id missing", refundBody(t, v, innerXML("refund_id", "<delete>"), v.APIKey), wechatpay.ErrMalformed},
		{"SUCCESS without success_time", refundBody(t, v, innerXML("success_time", "<delete>"), v.APIKey), wechatpay.ErrMalformed},
		{"success_time malformed", refundBody(t, v, innerXML("success_time", "20261127120000"), v.APIKey), wechatpay.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := p.Parse(nil, tc.body)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Parse = %+v, %v; want %v", n, err, tc.want)
			}
			if strings.Contains(err.Error(), v.APIKey) {
				t.Fatalf("error shows the key: %v", err)
			}
		})
	}
}

func TestNotifyParserPayments(t *testing.T) {
	v := loadNotifyVectors(t)
	p := vectorParser(t, v)
	hmacBody := readVector(t, "hmac_no_sign_type.xml")
	params, _ := DecodeXML(hmacBody)
	resign := func(kv ...string) []byte {
		q := maps.Clone(params)
		for i := 0; i+1 < len(kv); i += 2 {
			q[kv[i]] = kv[i+1]
		}
		q["sign"], _ = Sign(q, v.APIKey, SignTypeHMACSHA256)
		return EncodeXML(q)
	}
	noSign := maps.Clone(params)
	delete(noSign, "sign")
	for _, tc := range []struct {
		name string
		body []byte
		want error
	}{
		{"newlines between tags are fine", hmacBody, nil},
		{"foreign appid, well signed", resign("appid", "wx0000000000foreign"), wechatpay.ErrForeign},
		{"foreign mch_id, well signed", resign("mch_id", "1900000999"), wechatpay.ErrForeign},
		{"tampered amount", bytes.Replace(hmacBody, []byte("<total_fee>1<"), []byte("<total_fee>2<"), 1), wechatpay.ErrBadSignature},
		{"no sign", EncodeXML(noSign), wechatpay.ErrMissingSign},
		{"sign_type SHA1", resign("sign_type", "SHA1"), wechatpay.ErrUnsupportedSignType},
		{"return_code FAIL", resign("return_code", "FAIL"), wechatpay.ErrMalformed},
		{"decimal total_fee, well signed", resign("total_fee", "1.00"), wechatpay.ErrMalformed},
		{"not XML", []byte("success"), wechatpay.ErrMalformed},
		{"JSON", []byte(`{"return_code":"SUCCESS"}`), wechatpay.ErrMalformed},
		{"DOCTYPE", append([]byte(`<!DOCTYPE xml [<!ENTITY x "y">]>`), hmacBody...), wechatpay.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := p.Parse(nil, tc.body)
			if tc.want == nil {
				if err != nil || n.Kind != payment.KindPayment {
					t.Fatalf("Parse = %+v, %v", n, err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Parse = %+v, %v; want %v", n, err, tc.want)
			}
		})
	}
}

func TestNewNotifyParser(t *testing.T) {
	for _, args := range [][3]string{{"", "1", "k"}, {"wx", "", "k"}, {"wx", "1", ""}} {
		if _, err := NewNotifyParser(args[0], args[1], args[2]); !errors.Is(err, wechatpay.ErrConfig) {
			t.Errorf("NewNotifyParser(%q) = %v", args, err)
		}
	}
	p, err := NewNotifyParser("wx1", "1", "secret-v2-key-0000000000000000")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprint(p), fmt.Sprintf("%+v", p), fmt.Sprintf("%#v", *p)} {
		if strings.Contains(s, "secret-v2-key") {
			t.Fatalf("formatting shows the key: %s", s)
		}
	}
	var _ wechatpay.NotificationParser = p
}

// FuzzNotifyParser feeds the whole v2 parser arbitrary bodies: it must
// never panic, its errors wrap one sentinel of the table the api maps, and
// what it accepts is a payment that verifies or a refund whose req_info
// decrypts under the key.
func FuzzNotifyParser(f *testing.F) {
	v := loadNotifyVectors(f)
	for name := range v.Files {
		f.Add(readVector(f, name))
	}
	f.Add([]byte(`<xml><return_code>SUCCESS</return_code><req_info>AAAA</req_info></xml>`))
	f.Add([]byte(`<xml><return_code>FAIL</return_code></xml>`))
	p, err := NewNotifyParser(v.AppID, v.MchID, v.APIKey)
	if err != nil {
		f.Fatal(err)
	}
	sentinels := []error{wechatpay.ErrMalformed, wechatpay.ErrMissingSign, wechatpay.ErrBadSignature,
		wechatpay.ErrUnsupportedSignType, wechatpay.ErrDecrypt, wechatpay.ErrForeign}
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := p.Parse(nil, body)
		if err != nil {
			for _, s := range sentinels {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error wraps no sentinel: %v", err)
		}
		params, derr := DecodeXML(body)
		if derr != nil {
			t.Fatalf("accepted a body that does not decode: %v", derr)
		}
		if n.AppID != v.AppID || n.MchID != v.MchID {
			t.Fatalf("accepted ids %s/%s", n.AppID, n.MchID)
		}
		switch n.Kind {
		case payment.KindPayment:
			if Verify(params, v.APIKey) != nil {
				t.Fatal("accepted a payment whose sign does not verify")
			}
		case payment.KindRefund:
			if _, err := DecryptReqInfo(params["req_info"], v.APIKey); err != nil || n.Refund == nil || n.Succeeded() {
				t.Fatalf("accepted refund %+v, %v", n, err)
			}
		default:
			t.Fatalf("kind %q", n.Kind)
		}
	})
}
