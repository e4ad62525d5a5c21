package apiv3

import (
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/payflow/payflow/wechatpay"

	"github.com/payflow/payflow/payment"
)

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

func mustV3Keys(t testing.TB, pubs map[string]*rsa.PublicKey, certs ...*x509.Certificate) *Keys {
	t.Helper()
	k, err := NewKeys(pubs, certs)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustV3Parser(t testing.TB, keys *Keys, now time.Time) *NotifyParser {
	t.Helper()
	p, err := NewNotifyParser(ParserConfig{AppID: "wxd678efh567hg6787", MchID: "1230000109",
		APIv3Key: v3TestAPIKey, Keys: keys, Now: fixedClock(now)})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The shared vector verifies with the key given as the platform certificate
// (its serial) and as a WeChat Pay public key (under a PUB_KEY_ID_ id).
func TestV3ParseVector(t *testing.T) {
	vec := loadV3Vector(t)
	if vec.APIv3Key != v3TestAPIKey {
		t.Fatalf("vector key changed")
	}
	cert := v3TestCert(t)
	pub := cert.PublicKey.(*rsa.PublicKey)
	want := payment.Notification{
		ID:            "v3:EV-2018022511223320873",
		Source:        payment.SourceV3,
		OutTradeNo:    "1217752501201407033233368018",
		TransactionID: "1217752501201407033233368018",
		AppID:         "wxd678efh567hg6787",
		MchID:         "1230000109",
		AmountFen:     100,
		Currency:      "CNY",
		ResultCode:    "SUCCESS",
		TradeState:    "SUCCESS",
		PaidAt:        time.Date(2018, 6, 8, 2, 34, 56, 0, time.UTC),
		Kind:          payment.KindPayment,
		EventType:     "TRANSACTION.SUCCESS",
	}
	for _, tc := range []struct {
		name, serial string
		keys         *Keys
	}{
		{"certificate", v3TestCertSerial, mustV3Keys(t, nil, cert)},
		{"public key", v3TestPubKeyID, mustV3Keys(t, map[string]*rsa.PublicKey{v3TestPubKeyID: pub})},
		{"both, by certificate", v3TestCertSerial, mustV3Keys(t, map[string]*rsa.PublicKey{v3TestPubKeyID: pub}, cert)},
		{"both, by public key", v3TestPubKeyID, mustV3Keys(t, map[string]*rsa.PublicKey{v3TestPubKeyID: pub}, cert)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustV3Parser(t, tc.keys, vec.time(t))
			n, err := p.Parse(vec.header(tc.serial), []byte(vec.Body))
			if err != nil {
				t.Fatal(err)
			}
			if !n.PaidAt.Equal(want.PaidAt) {
				t.Errorf("PaidAt = %v, want %v", n.PaidAt, want.PaidAt)
			}
			n.PaidAt = want.PaidAt
			if n != want {
				t.Errorf("got  %+v\nwant %+v", n, want)
			}
			if !n.Succeeded() {
				t.Error("Succeeded() = false")
			}
		})
	}
}

// The same key set, loaded from files as the service configures it.
func TestLoadV3Keys(t *testing.T) {
	vec := loadV3Vector(t)
	dir := t.TempDir()
	copyFile(t, "testdata/v3/platform_cert_D7CE59D1F522D701.pem", filepath.Join(dir, "platform.pem"))
	copyFile(t, "testdata/v3/public_key.pem", filepath.Join(dir, "PUB_KEY_ID_OLD0000000001.pem"))
	if err := os.WriteFile(filepath.Join(dir, "README.txt"), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}

	keys, err := LoadKeys("testdata/v3/public_key.pem", v3TestPubKeyID, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{v3TestPubKeyID, "PUB_KEY_ID_OLD0000000001", v3TestCertSerial} {
		if !keys.Has(s) {
			t.Errorf("Has(%s) = false", s)
		}
		p := mustV3Parser(t, keys, vec.time(t))
		if _, err := p.Parse(vec.header(s), []byte(vec.Body)); err != nil {
			t.Errorf("serial %s: %v", s, err)
		}
	}
	if keys.Has("PUB_KEY_ID_OTHER") || keys.Has("") {
		t.Error("Has an unconfigured serial")
	}
	if s, _ := keys.Verifier().GetSerial(t.Context()); s != v3TestPubKeyID {
		t.Errorf("GetSerial = %q, want the configured public key id", s)
	}

	certOnly, err := LoadKeys("", "", dir)
	if err != nil {
		t.Fatal(err)
	}
	if !certOnly.Has(v3TestCertSerial) || certOnly.Has(v3TestPubKeyID) {
		t.Error("cert-only key set holds the wrong keys")
	}

	bad := []struct {
		name             string
		file, id, dir    string
		setup            func(dir string)
		wantErrSubstring string
	}{
		{name: "nothing", wantErrSubstring: "need a WeChat Pay public key"},
		{name: "file without id", file: "testdata/v3/public_key.pem", wantErrSubstring: "go together"},
		{name: "id without file", id: v3TestPubKeyID, wantErrSubstring: "go together"},
		{name: "missing file", file: "testdata/v3/nope.pem", id: v3TestPubKeyID, wantErrSubstring: "nope.pem"},
		{name: "certificate as public key", file: "testdata/v3/platform_cert_D7CE59D1F522D701.pem", id: v3TestPubKeyID, wantErrSubstring: "PUBLIC KEY"},
		{name: "placeholder id", file: "testdata/v3/public_key.pem", id: "YOUR_PUB_KEY_ID", wantErrSubstring: "PUB_KEY_ID_"},
		{name: "missing dir", dir: "testdata/v3/nope", wantErrSubstring: "nope"},
		{name: "garbage cert", setup: func(d string) {
			_ = os.WriteFile(filepath.Join(d, "x.pem"), []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o600)
		}, wantErrSubstring: "x.pem"},
		{name: "public key named like a cert", setup: func(d string) {
			copyFile(t, "testdata/v3/public_key.pem", filepath.Join(d, "platform.pem"))
		}, wantErrSubstring: "CERTIFICATE"},
		{name: "conflicting keys for one id", file: "testdata/v3/public_key.pem", id: "PUB_KEY_ID_X", setup: func(d string) {
			writePublicKeyPEM(t, filepath.Join(d, "PUB_KEY_ID_X.pem"), &freshKey(t, 0).PublicKey)
		}, wantErrSubstring: "another key"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.dir
			if tc.setup != nil {
				d = t.TempDir()
				tc.setup(d)
			}
			_, err := LoadKeys(tc.file, tc.id, d)
			if err == nil || !strings.Contains(err.Error(), tc.wantErrSubstring) {
				t.Errorf("err = %v, want one mentioning %q", err, tc.wantErrSubstring)
			}
		})
	}
}

func TestNewV3KeysRejects(t *testing.T) {
	pub := &freshKey(t, 0).PublicKey
	cert := v3TestCert(t)
	for name, f := range map[string]func() (*Keys, error){
		"empty":        func() (*Keys, error) { return NewKeys(nil, nil) },
		"bad id":       func() (*Keys, error) { return NewKeys(map[string]*rsa.PublicKey{"F5765756002FDD77": pub}, nil) },
		"bare prefix":  func() (*Keys, error) { return NewKeys(map[string]*rsa.PublicKey{PublicKeyIDPrefix: pub}, nil) },
		"nil key":      func() (*Keys, error) { return NewKeys(map[string]*rsa.PublicKey{v3TestPubKeyID: nil}, nil) },
		"nil cert":     func() (*Keys, error) { return NewKeys(nil, []*x509.Certificate{nil}) },
		"non-RSA cert": func() (*Keys, error) { return NewKeys(nil, []*x509.Certificate{{PublicKey: "ecdsa"}}) },
		"two certs, one serial": func() (*Keys, error) {
			other := *cert
			other.Raw = append([]byte{}, cert.Raw...)
			other.Raw[len(other.Raw)-1] ^= 1
			return NewKeys(nil, []*x509.Certificate{cert, &other})
		},
	} {
		if k, err := f(); err == nil {
			t.Errorf("%s: NewKeys = %v, want an error", name, k)
		}
	}
}

func TestV3ParseRejects(t *testing.T) {
	cert := v3TestCert(t)
	keys := mustV3Keys(t, map[string]*rsa.PublicKey{v3TestPubKeyID: cert.PublicKey.(*rsa.PublicKey)}, cert)
	priv := v3TestKey(t)
	now := time.Date(2024, 8, 5, 9, 33, 41, 0, time.UTC)
	p := mustV3Parser(t, keys, now)
	good := v3NotifyBody(t, v3TestAPIKey, "0123456789ab", v3Tx("order-0001", "SUCCESS", 100))
	if _, err := p.Parse(v3SignedHeader(t, priv, v3TestCertSerial, now, good), good); err != nil {
		t.Fatalf("good notification: %v", err)
	}

	signed := func(body []byte) (http.Header, []byte) {
		return v3SignedHeader(t, priv, v3TestPubKeyID, now, body), body
	}
	withHeader := func(name, value string) func() (http.Header, []byte) {
		return func() (http.Header, []byte) {
			h, b := signed(good)
			if value == "" {
				h.Del(name)
			} else {
				h.Set(name, value)
			}
			return h, b
		}
	}
	envelope := func(mutate func(env map[string]any, res map[string]any)) func() (http.Header, []byte) {
		return func() (http.Header, []byte) {
			env := map[string]any{
				"id": "EV-1", "create_time": "2024-08-05T17:33:41+08:00", "resource_type": "encrypt-resource",
				"event_type": "TRANSACTION.SUCCESS", "summary": "支付成功",
			}
			res := map[string]any{"original_type": "transaction", "algorithm": ResourceAlgorithm, "associated_data": "transaction"}
			nonce := "0123456789ab"
			ct, _ := EncryptResource(v3TestAPIKey, nonce, "transaction", []byte(`{"out_trade_no":"order-0001"}`))
			res["nonce"], res["ciphertext"] = nonce, ct
			env["resource"] = res
			mutate(env, res)
			return signed(mustJSON(t, env))
		}
	}
	withTx := func(tx map[string]any) func() (http.Header, []byte) {
		return func() (http.Header, []byte) { return signed(v3NotifyBody(t, v3TestAPIKey, "0123456789ab", tx)) }
	}

	for _, tc := range []struct {
		name string
		req  func() (http.Header, []byte)
		want error
	}{
		{"wrong key", func() (http.Header, []byte) {
			return v3SignedHeader(t, freshKey(t, 0), v3TestPubKeyID, now, good), good
		}, wechatpay.ErrBadSignature},
		{"wrong key under certificate serial", func() (http.Header, []byte) {
			return v3SignedHeader(t, freshKey(t, 0), v3TestCertSerial, now, good), good
		}, wechatpay.ErrBadSignature},
		{"unknown serial", func() (http.Header, []byte) {
			return v3SignedHeader(t, priv, "PUB_KEY_ID_0000000000000024101100397200000007", now, good), good
		}, wechatpay.ErrUnknownKey},
		{"unknown certificate serial", func() (http.Header, []byte) {
			return v3SignedHeader(t, priv, "5157F09EFDC096DE15EBE81A47057A7232F1B8E1", now, good), good
		}, wechatpay.ErrUnknownKey},
		{"301 s in the past", func() (http.Header, []byte) {
			return v3SignedHeader(t, priv, v3TestPubKeyID, now.Add(-301*time.Second), good), good
		}, wechatpay.ErrStaleTimestamp},
		{"301 s in the future", func() (http.Header, []byte) {
			return v3SignedHeader(t, priv, v3TestPubKeyID, now.Add(301*time.Second), good), good
		}, wechatpay.ErrStaleTimestamp},
		{"tampered body", func() (http.Header, []byte) {
			h, _ := signed(good)
			return h, []byte(strings.Replace(string(good), "TRANSACTION.SUCCESS", "TRANSACTION.FAILED!", 1))
		}, wechatpay.ErrBadSignature},
		{"body with a trailing newline", func() (http.Header, []byte) {
			h, _ := signed(good)
			return h, append(append([]byte{}, good...), '\n')
		}, wechatpay.ErrBadSignature},
		{"signature over another timestamp", func() (http.Header, []byte) {
			h, b := signed(good)
			h.Set(headerV3Timestamp, fmt.Sprint(now.Unix()+1))
			return h, b
		}, wechatpay.ErrBadSignature},
		{"signature not base64", withHeader(headerV3Signature, "%%%"), wechatpay.ErrBadSignature},
		{"wrong APIv3 key", func() (http.Header, []byte) {
			return signed(v3NotifyBody(t, "ABCDEFGHIJKLMNOPQRSTUV0123456789", "0123456789ab", v3Tx("order-0001", "SUCCESS", 100)))
		}, wechatpay.ErrDecrypt},
		{"tampered associated data", envelope(func(_, res map[string]any) { res["associated_data"] = "refund" }), wechatpay.ErrDecrypt},
		{"nonce of 11 bytes", envelope(func(_, res map[string]any) { res["nonce"] = "0123456789a" }), wechatpay.ErrMalformed},
		{"nonce of 13 bytes", envelope(func(_, res map[string]any) { res["nonce"] = "0123456789abc" }), wechatpay.ErrMalformed},
		{"empty nonce", envelope(func(_, res map[string]any) { delete(res, "nonce") }), wechatpay.ErrMalformed},
		{"algorithm", envelope(func(_, res map[string]any) { res["algorithm"] = "AEAD_AES_128_GCM" }), wechatpay.ErrMalformed},
		{"ciphertext not base64", envelope(func(_, res map[string]any) { res["ciphertext"] = "!!" }), wechatpay.ErrMalformed},
		{"ciphertext too short", envelope(func(_, res map[string]any) { res["ciphertext"] = "AAAA" }), wechatpay.ErrMalformed},
		{"no id", envelope(func(env, _ map[string]any) { delete(env, "id") }), wechatpay.ErrMalformed},
		{"no resource", envelope(func(env, _ map[string]any) { delete(env, "resource") }), wechatpay.ErrMalformed},
		{"resource is a string", envelope(func(env, _ map[string]any) { env["resource"] = "x" }), wechatpay.ErrMalformed},
		{"probe", withHeader(headerV3Signature, "WECHATPAY/SIGNTEST/Ys8VCl+jUPLx3OMCnMJ5ULVuqoSr5ojwPDqUB9jNbIqnkzWM6P1Pq8G1a7A+xqHK"), wechatpay.ErrProbe},
		{"missing serial", withHeader(headerV3Serial, ""), wechatpay.ErrMalformed},
		{"missing signature", withHeader(headerV3Signature, ""), wechatpay.ErrMalformed},
		{"missing timestamp", withHeader(headerV3Timestamp, ""), wechatpay.ErrMalformed},
		{"missing nonce", withHeader(headerV3Nonce, ""), wechatpay.ErrMalformed},
		{"timestamp not a number", withHeader(headerV3Timestamp, "1722850421.5"), wechatpay.ErrMalformed},
		{"signature type", withHeader(headerV3SignatureType, "WECHATPAY2-SM2-WITH-SM3"), wechatpay.ErrUnsupportedSignType},
		{"malformed JSON", func() (http.Header, []byte) { return signed([]byte(`{"id":"EV-1","resource":`)) }, wechatpay.ErrMalformed},
		{"empty body", func() (http.Header, []byte) { return signed(nil) }, wechatpay.ErrMalformed},
		{"plaintext not JSON", func() (http.Header, []byte) {
			ct, _ := EncryptResource(v3TestAPIKey, "0123456789ab", "transaction", []byte("not json"))
			return envelope(func(_, res map[string]any) { res["ciphertext"] = ct })()
		}, wechatpay.ErrMalformed},
		{"plaintext without out_trade_no", envelope(func(_, _ map[string]any) {}), wechatpay.ErrMalformed},
		{"bad out_trade_no", withTx(v3Tx("bad no!", "SUCCESS", 100)), wechatpay.ErrMalformed},
		{"no trade_state", withTx(func() map[string]any { tx := v3Tx("order-0001", "SUCCESS", 100); delete(tx, "trade_state"); return tx }()), wechatpay.ErrMalformed},
		{"paid without transaction_id", withTx(func() map[string]any {
			tx := v3Tx("order-0001", "SUCCESS", 100)
			delete(tx, "transaction_id")
			return tx
		}()), wechatpay.ErrMalformed},
		{"paid without amount", withTx(func() map[string]any { tx := v3Tx("order-0001", "SUCCESS", 100); delete(tx, "amount"); return tx }()), wechatpay.ErrMalformed},
		{"negative amount", withTx(v3Tx("order-0001", "NOTPAY", -1)), wechatpay.ErrMalformed},
		{"amount as string", withTx(func() map[string]any {
			tx := v3Tx("order-0001", "SUCCESS", 100)
			tx["amount"] = map[string]any{"total": "100"}
			return tx
		}()), wechatpay.ErrMalformed},
		{"bad success_time", withTx(func() map[string]any {
			tx := v3Tx("order-0001", "SUCCESS", 100)
			tx["success_time"] = "20240805173341"
			return tx
		}()), wechatpay.ErrMalformed},
		{"no mchid", withTx(func() map[string]any { tx := v3Tx("order-0001", "SUCCESS", 100); delete(tx, "mchid"); return tx }()), wechatpay.ErrMalformed},
		{"foreign appid", withTx(func() map[string]any {
			tx := v3Tx("order-0001", "SUCCESS", 100)
			tx["appid"] = "wx0000000000foreign"
			return tx
		}()), wechatpay.ErrForeign},
		{"foreign mchid", withTx(func() map[string]any { tx := v3Tx("order-0001", "SUCCESS", 100); tx["mchid"] = "1900000999"; return tx }()), wechatpay.ErrForeign},
		{"no event_type", envelope(func(env, _ map[string]any) { delete(env, "event_type") }), wechatpay.ErrMalformed},
		// Only a transaction resource can ever pay: a refund resource (or
		// none) under TRANSACTION.SUCCESS is malformed, and so is a
		// transaction under a refund event.
		{"payment event, refund resource", func() (http.Header, []byte) {
			return signed(v3EventBody(t, v3TestAPIKey, "0123456789ab", EventTransactionSuccess, "refund", v3Tx("order-0001", "SUCCESS", 100)))
		}, wechatpay.ErrMalformed},
		{"payment event, no original_type", envelope(func(_, res map[string]any) { delete(res, "original_type") }), wechatpay.ErrMalformed},
		{"refund event, transaction resource", func() (http.Header, []byte) {
			return signed(v3EventBody(t, v3TestAPIKey, "0123456789ab", EventRefundSuccess, "transaction", v3Tx("order-0001", "SUCCESS", 100)))
		}, wechatpay.ErrMalformed},
		{"refund event, no resource", envelope(func(env, _ map[string]any) { env["event_type"] = EventRefundSuccess; delete(env, "resource") }), wechatpay.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, body := tc.req()
			n, err := p.Parse(h, body)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if n != (payment.Notification{}) {
				t.Errorf("returned a notification with the error: %+v", n)
			}
			if strings.Contains(err.Error(), v3TestAPIKey) {
				t.Error("error shows the APIv3 key")
			}
		})
	}
}

// Exactly five minutes either way is still inside the window.
func TestV3ParseWindowEdges(t *testing.T) {
	keys := mustV3Keys(t, nil, v3TestCert(t))
	now := time.Unix(1722850421, 0)
	p := mustV3Parser(t, keys, now)
	body := v3NotifyBody(t, v3TestAPIKey, "0123456789ab", v3Tx("order-0001", "SUCCESS", 100))
	for _, d := range []time.Duration{-Window, Window} {
		if _, err := p.Parse(v3SignedHeader(t, v3TestKey(t), v3TestCertSerial, now.Add(d), body), body); err != nil {
			t.Errorf("%v away: %v", d, err)
		}
	}
}

// A notification whose trade is not SUCCESS still parses, as FAIL.
func TestV3ParseNotSuccess(t *testing.T) {
	keys := mustV3Keys(t, nil, v3TestCert(t))
	now := time.Unix(1722850421, 0)
	p := mustV3Parser(t, keys, now)
	tx := v3Tx("order-0002", "CLOSED", 100)
	delete(tx["amount"].(map[string]any), "currency")
	body := v3NotifyBody(t, v3TestAPIKey, "0123456789ab", tx)
	n, err := p.Parse(v3SignedHeader(t, v3TestKey(t), v3TestCertSerial, now, body), body)
	if err != nil {
		t.Fatal(err)
	}
	if n.ResultCode != "FAIL" || n.TradeState != "CLOSED" || n.Succeeded() || n.Currency != "CNY" || !n.PaidAt.IsZero() {
		t.Errorf("got %+v", n)
	}
}

// Rotation: two public keys (old and new) and a certificate are all
// accepted; a key id that is not configured is not.
func TestV3ParseRotation(t *testing.T) {
	oldKey, newKey := freshKey(t, 0), freshKey(t, 1)
	const oldID, newID = "PUB_KEY_ID_0000000000000024101100397200000001", "PUB_KEY_ID_0000000000000025010100397200000002"
	keys := mustV3Keys(t, map[string]*rsa.PublicKey{oldID: &oldKey.PublicKey, newID: &newKey.PublicKey}, v3TestCert(t))
	now := time.Unix(1722850421, 0)
	p := mustV3Parser(t, keys, now)
	body := v3NotifyBody(t, v3TestAPIKey, "0123456789ab", v3Tx("order-0003", "SUCCESS", 100))

	for _, tc := range []struct {
		name   string
		priv   *rsa.PrivateKey
		serial string
		want   error
	}{
		{"old public key", oldKey, oldID, nil},
		{"new public key", newKey, newID, nil},
		{"certificate", v3TestKey(t), v3TestCertSerial, nil},
		{"old key under the new id", oldKey, newID, wechatpay.ErrBadSignature},
		{"unconfigured id", freshKey(t, 2), "PUB_KEY_ID_0000000000000026010100397200000003", wechatpay.ErrUnknownKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.Parse(v3SignedHeader(t, tc.priv, tc.serial, now, body), body)
			if !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if s, _ := keys.Verifier().GetSerial(t.Context()); s != newID {
		t.Errorf("GetSerial = %q, want the greatest id %q", s, newID)
	}
}

func TestNewV3NotifyParser(t *testing.T) {
	keys := mustV3Keys(t, nil, v3TestCert(t))
	cfg := func(key string, keys *Keys, appID, mchID string) ParserConfig {
		return ParserConfig{AppID: appID, MchID: mchID, APIv3Key: key, Keys: keys}
	}
	for _, key := range []string{"", "testMchAPIv3Key0", v3TestAPIKey + "X"} {
		if _, err := NewNotifyParser(cfg(key, keys, "wx1", "1")); !errors.Is(err, wechatpay.ErrConfig) {
			t.Errorf("key of %d bytes: %v", len(key), err)
		} else if key != "" && strings.Contains(err.Error(), key) {
			t.Error("error shows the key")
		}
	}
	for _, c := range []ParserConfig{cfg(v3TestAPIKey, nil, "wx1", "1"), cfg(v3TestAPIKey, keys, "", "1"), cfg(v3TestAPIKey, keys, "wx1", "")} {
		if _, err := NewNotifyParser(c); !errors.Is(err, wechatpay.ErrConfig) {
			t.Errorf("%+v accepted: %v", c, err)
		}
	}
	p, err := NewNotifyParser(cfg(v3TestAPIKey, keys, "wx1", "1"))
	if err != nil {
		t.Fatal(err)
	}
	var _ wechatpay.NotificationParser = p
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d", "%q"} {
		if s := fmt.Sprintf(verb, p) + fmt.Sprintf(verb, *p); strings.Contains(s, v3TestAPIKey) || strings.Contains(s, fmt.Sprintf("%x", v3TestAPIKey)) {
			t.Errorf("%s shows the key: %s", verb, s)
		}
	}
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Refund events are refunds, read from the resource's refund_status
// (never "status", which the SDK's model reads: wechatpay-go #93).
func TestV3ParseRefundEvents(t *testing.T) {
	keys := mustV3Keys(t, nil, v3TestCert(t))
	now := time.Unix(1722850421, 0)
	p := mustV3Parser(t, keys, now)
	parse := func(event string, res any) (payment.Notification, error) {
		body := v3EventBody(t, v3TestAPIKey, "0123456789ab", event, "refund", res)
		return p.Parse(v3SignedHeader(t, v3TestKey(t), v3TestCertSerial, now, body), body)
	}
	for _, tc := range []struct {
		event string
		res   map[string]any
		want  payment.RefundFacts
	}{
		{EventRefundSuccess, v3Refund("RF-1", "SUCCESS", 30, 100), payment.RefundFacts{OutRefundNo: "RF-1",
			RefundID: "50000000382019052709732678859", Status: payment.RefundSuccess, AmountFen: 30, TotalFen: 100,
			SuccessTime: time.Date(2024, 8, 5, 9, 40, 0, 0, time.UTC)}},
		{EventRefundAbnormal, v3Refund("RF-2", "ABNORMAL", 100, 100), payment.RefundFacts{OutRefundNo: "RF-2",
			RefundID: "50000000382019052709732678859", Status: payment.RefundAbnormal, AmountFen: 100, TotalFen: 100}},
		{EventRefundClosed, v3Refund("RF-3", "CLOSED", 1, 100), payment.RefundFacts{OutRefundNo: "RF-3",
			RefundID: "50000000382019052709732678859", Status: payment.RefundClosed, AmountFen: 1, TotalFen: 100}},
	} {
		t.Run(tc.event, func(t *testing.T) {
			n, err := parse(tc.event, tc.res)
			if err != nil {
				t.Fatal(err)
			}
			if n.Kind != payment.KindRefund || n.EventType != tc.event || n.Source != payment.SourceV3 ||
				n.ID != "v3:b7a7e2b0-6f1d-5a1e-9d1f-2f6c1a2b3c4d" || n.OutTradeNo != "order-0001" ||
				n.TransactionID != "4200001234202408050000000001" || n.MchID != "1230000109" || n.Succeeded() || n.Refund == nil {
				t.Fatalf("notification %+v", n)
			}
			if !n.Refund.SuccessTime.Equal(tc.want.SuccessTime) {
				t.Errorf("success time %v, want %v", n.Refund.SuccessTime, tc.want.SuccessTime)
			}
			got := *n.Refund
			got.SuccessTime = tc.want.SuccessTime
			if got != tc.want {
				t.Errorf("facts %+v, want %+v", got, tc.want)
			}
		})
	}
	with := func(r map[string]any, k string, v any) map[string]any {
		q := map[string]any{}
		for kk, vv := range r {
			q[kk] = vv
		}
		if v == nil {
			delete(q, k)
		} else {
			q[k] = v
		}
		return q
	}
	good := v3Refund("RF-1", "SUCCESS", 30, 100)
	for _, tc := range []struct {
		name  string
		event string
		res   any
		want  error
	}{
		{"status instead of refund_status", EventRefundSuccess, with(with(good, "refund_status", nil), "status", "SUCCESS"), wechatpay.ErrMalformed},
		{"refund_status of another event", EventRefundSuccess, with(good, "refund_status", "CLOSED"), wechatpay.ErrMalformed},
		{"PROCESSING", EventRefundSuccess, with(good, "refund_status", "PROCESSING"), wechatpay.ErrMalformed},
		{"foreign mchid", EventRefundSuccess, with(good, "mchid", "1900000999"), wechatpay.ErrForeign},
		{"no mchid", EventRefundSuccess, with(good, "mchid", nil), wechatpay.ErrMalformed},
		{"bad out_refund_no", EventRefundSuccess, with(good, "out_refund_no", "a b"), wechatpay.ErrMalformed},
		{"bad out_trade_no", EventRefundSuccess, with(good, "out_trade_no", "x"), wechatpay.ErrMalformed},
		{"no refund_id", EventRefundSuccess, with(good, "refund_id", nil), wechatpay.ErrMalformed},
		{"no amount", EventRefundSuccess, with(good, "amount", nil), wechatpay.ErrMalformed},
		{"zero refund", EventRefundSuccess, with(good, "amount", map[string]any{"total": 100, "refund": 0}), wechatpay.ErrMalformed},
		{"SUCCESS without success_time", EventRefundSuccess, with(good, "success_time", nil), wechatpay.ErrMalformed},
		{"bad success_time", EventRefundSuccess, with(good, "success_time", "2024-08-05 17:40:00"), wechatpay.ErrMalformed},
		{"not an object", EventRefundSuccess, []int{1}, wechatpay.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if n, err := parse(tc.event, tc.res); !errors.Is(err, tc.want) {
				t.Fatalf("Parse = %+v, %v; want %v", n, err, tc.want)
			}
		})
	}
}

// Any other verified event is KindOther: acknowledged and audited by the
// api, never a payment, whatever its resource holds (it is not read).
func TestV3ParseOtherEvents(t *testing.T) {
	keys := mustV3Keys(t, nil, v3TestCert(t))
	now := time.Unix(1722850421, 0)
	p := mustV3Parser(t, keys, now)
	for _, tc := range []struct{ event, original string }{
		{"MCHTRANSFER.BILL.FINISHED", "mch_payment"},
		{"PAYSCORE.USER_CONFIRM", "payscore"},
		{"TRANSACTION.CLOSED", "transaction"}, // not an event WeChat sends, and no payment if it did
		{"COUPON.USE", "coupon"},
	} {
		t.Run(tc.event, func(t *testing.T) {
			body := v3EventBody(t, v3TestAPIKey, "0123456789ab", tc.event, tc.original, v3Tx("order-0001", "SUCCESS", 100))
			n, err := p.Parse(v3SignedHeader(t, v3TestKey(t), v3TestCertSerial, now, body), body)
			if err != nil {
				t.Fatal(err)
			}
			want := payment.Notification{ID: "v3:b7a7e2b0-6f1d-5a1e-9d1f-2f6c1a2b3c4d", Source: payment.SourceV3,
				Kind: payment.KindOther, EventType: tc.event}
			if n != want || n.Succeeded() {
				t.Fatalf("got %+v, want %+v", n, want)
			}
		})
	}
	// Its resource is not read: one that would not decrypt is still fine.
	body := []byte(`{"id":"EV-9","event_type":"PROFITSHARING.SUCCESS","resource":{"algorithm":"SM4","ciphertext":"?"}}`)
	if n, err := p.Parse(v3SignedHeader(t, v3TestKey(t), v3TestCertSerial, now, body), body); err != nil || n.Kind != payment.KindOther {
		t.Fatalf("%+v, %v", n, err)
	}
	// But it must be verified like any other.
	if _, err := p.Parse(v3SignedHeader(t, freshKey(t, 1), v3TestCertSerial, now, body), body); !errors.Is(err, wechatpay.ErrBadSignature) {
		t.Fatalf("unsigned other event: %v", err)
	}
	h := v3SignedHeader(t, v3TestKey(t), v3TestCertSerial, now, body)
	h.Set(headerV3Signature, ProbePrefix+"abc")
	if _, err := p.Parse(h, body); !errors.Is(err, wechatpay.ErrProbe) {
		t.Fatalf("probe: %v", err)
	}
}
