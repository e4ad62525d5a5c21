package apiv3

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payflow/payflow/wechatpay"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"
)

// Test material, copied from wechatpay-go v0.2.20 (never read from ../shared):
// testdata/v3/testing_key.pem is the RSA test key published in
// utils/sign_test.go (armour "TESTING KEY"), platform_cert_D7CE59D1F522D701.pem
// the self-signed certificate of core/notify/notify_test.go and
// public_key.pem the PUBLIC KEY of core/auth/verifiers, all the same key.
const (
	v3TestCertSerial = "D7CE59D1F522D701"
	v3TestPubKeyID   = "PUB_KEY_ID_0000000000000024101100397200000006"
	v3TestAPIKey     = "0123456789ABCDEFGHIJKLMNOPQRSTUV"
)

// v3Vector is the v3_notify entry of testdata/vectors.json.
type v3Vector struct {
	APIv3Key  string            `json:"apiv3_key"`
	Body      string            `json:"body"`
	Headers   map[string]string `json:"headers"`
	Plaintext string            `json:"plaintext"`
}

func loadV3Vector(t testing.TB) v3Vector {
	t.Helper()
	raw, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var all struct {
		V3 v3Vector `json:"v3_notify"`
	}
	if err := json.Unmarshal(raw, &all); err != nil {
		t.Fatal(err)
	}
	return all.V3
}

func (v v3Vector) header(serial string) http.Header {
	h := make(http.Header)
	for k, val := range v.Headers {
		h.Set(k, val)
	}
	if serial != "" {
		h.Set(headerV3Serial, serial)
	}
	return h
}

func (v v3Vector) time(t testing.TB) time.Time {
	ts, err := strconv.ParseInt(v.Headers[headerV3Timestamp], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return time.Unix(ts, 0)
}

// v3TestKey is the SDK's published test key (never a real secret).
func v3TestKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	raw, err := os.ReadFile("testdata/v3/testing_key.pem")
	if err != nil {
		t.Fatal(err)
	}
	k, err := utils.LoadPrivateKey(strings.ReplaceAll(string(raw), "TESTING KEY", "PRIVATE KEY"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func v3TestCert(t testing.TB) *x509.Certificate {
	t.Helper()
	c, err := utils.LoadCertificateWithPath("testdata/v3/platform_cert_D7CE59D1F522D701.pem")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var (
	freshKeysOnce sync.Once
	freshKeys     [3]*rsa.PrivateKey
)

// freshKey returns one of three RSA keys generated once per test binary.
func freshKey(t testing.TB, i int) *rsa.PrivateKey {
	t.Helper()
	freshKeysOnce.Do(func() {
		for j := range freshKeys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			freshKeys[j] = k
		}
	})
	return freshKeys[i]
}

// v3Tx is a decrypted transaction as WeChat sends it.
func v3Tx(outTradeNo, state string, total int64) map[string]any {
	tx := map[string]any{
		"appid": "wxd678efh567hg6787", "mchid": "1230000109",
		"out_trade_no": outTradeNo, "trade_type": "NATIVE",
		"trade_state": state, "trade_state_desc": "desc", "bank_type": "OTHERS",
		"payer":  map[string]any{"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
		"amount": map[string]any{"total": total, "payer_total": total, "currency": "CNY", "payer_currency": "CNY"},
	}
	if state == "SUCCESS" {
		tx["transaction_id"] = "4200001234202408050000000001"
		tx["success_time"] = "2024-08-05T17:33:41+08:00"
	}
	return tx
}

// v3NotifyBody encrypts plaintext (a JSON value) into a TRANSACTION.SUCCESS
// notification body.
func v3NotifyBody(t testing.TB, apiKey, nonce string, plaintext any) []byte {
	t.Helper()
	return v3EventBody(t, apiKey, nonce, EventTransactionSuccess, "transaction", plaintext)
}

// v3EventBody encrypts plaintext (a JSON value) into the body of a
// notification of eventType whose resource has originalType (also its
// associated data, as WeChat sets it).
func v3EventBody(t testing.TB, apiKey, nonce, eventType, originalType string, plaintext any) []byte {
	t.Helper()
	pt, err := json.Marshal(plaintext)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := EncryptResource(apiKey, nonce, originalType, pt)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(map[string]any{
		"id": "b7a7e2b0-6f1d-5a1e-9d1f-2f6c1a2b3c4d", "create_time": "2024-08-05T17:33:41+08:00",
		"resource_type": "encrypt-resource", "event_type": eventType, "summary": "summary",
		"resource": map[string]any{
			"original_type": originalType, "algorithm": ResourceAlgorithm,
			"ciphertext": ct, "associated_data": originalType, "nonce": nonce,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// v3Refund is a decrypted refund resource as WeChat sends it.
func v3Refund(outRefundNo, status string, refund, total int64) map[string]any {
	r := map[string]any{
		"mchid": "1230000109", "out_trade_no": "order-0001", "transaction_id": "4200001234202408050000000001",
		"out_refund_no": outRefundNo, "refund_id": "50000000382019052709732678859", "refund_status": status,
		"user_received_account": "招商银行信用卡0403",
		"amount":                map[string]any{"total": total, "refund": refund, "payer_total": total, "payer_refund": refund},
	}
	if status == "SUCCESS" {
		r["success_time"] = "2024-08-05T17:40:00+08:00"
	}
	return r
}

// v3SignedHeader signs body as WeChat would, under serial at time ts.
func v3SignedHeader(t testing.TB, priv *rsa.PrivateKey, serial string, ts time.Time, body []byte) http.Header {
	t.Helper()
	stamp, nonce := strconv.FormatInt(ts.Unix(), 10), "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"
	sig, err := SignMessage(priv, NotifyMessage(stamp, nonce, body))
	if err != nil {
		t.Fatal(err)
	}
	h := make(http.Header)
	h.Set(headerV3Serial, serial)
	h.Set(headerV3Signature, sig)
	h.Set(headerV3Timestamp, stamp)
	h.Set(headerV3Nonce, nonce)
	h.Set(headerV3SignatureType, SignatureType)
	return h
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writePublicKeyPEM(t testing.TB, path string, pub *rsa.PublicKey) {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// checkOrderErr checks err's *wechatpay.APIError code (none when code is ""),
// a sentinel it must match, its fault kind ("" for a decision or a request
// not sent; every fault is retryable, nothing else); and that no secret shows.
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
		t.Errorf("wechatpay.Retryable(%v) = %v, want %v (every fault, no decision)", err, fault == "", fault != "")
	}
	if strings.Contains(err.Error(), v3TestAPIKey) {
		t.Errorf("error shows the APIv3 key: %v", err)
	}
}
