package apiv3

import (
	"crypto/rsa"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/payflow/payflow/wechatpay"

	"github.com/payflow/payflow/payment"
)

// FuzzParse feeds Parse arbitrary headers and envelopes. With sign set,
// the body is signed with the configured test key so that the fuzzer gets
// past the signature into the envelope, the decryption and the transaction
// (plaintext, when not empty, is encrypted into a valid envelope with the
// fuzzed nonce). Parse must never panic, and anything it accepts must be a
// complete notification.
func FuzzParse(f *testing.F) {
	vec := loadV3Vector(f)
	cert := v3TestCert(f)
	priv := v3TestKey(f)
	keys := mustV3Keys(f, map[string]*rsa.PublicKey{v3TestPubKeyID: cert.PublicKey.(*rsa.PublicKey)}, cert)
	now := vec.time(f)
	p := mustV3Parser(f, keys, now)

	ts := vec.Headers[headerV3Timestamp]
	tx := string(mustJSON(f, v3Tx("order-0001", "SUCCESS", 100)))
	f.Add(vec.Headers[headerV3Serial], vec.Headers[headerV3Signature], ts, vec.Headers[headerV3Nonce], SignatureType, []byte(vec.Body), false, "", "")
	f.Add(v3TestPubKeyID, "", ts, "nonce", "", []byte(vec.Body), true, "", "")
	f.Add(v3TestCertSerial, "", ts, "nonce", SignatureType, []byte(nil), true, tx, "0123456789ab")
	f.Add(v3TestCertSerial, "", ts, "nonce", "", []byte(nil), true, tx, "0123456789a")
	f.Add(v3TestCertSerial, "", ts, "nonce", "", []byte(nil), true, `{"out_trade_no":"x","amount":{"total":-1}}`, "0123456789ab")
	f.Add(v3TestCertSerial, "", ts, "nonce", "", []byte(nil), true, `[]`, "0123456789ab")
	f.Add(v3TestCertSerial, "", ts, "nonce", "", []byte(`{"id":"x","resource":{"algorithm":"AEAD_AES_256_GCM","nonce":"0123456789abc","ciphertext":"AAAAAAAAAAAAAAAAAAAAAA=="}}`), true, "", "")
	f.Add(v3TestCertSerial, "", ts, "nonce", "", []byte(`{"id":"x","resource":{"algorithm":"AEAD_AES_256_GCM","nonce":"0123456789ab","ciphertext":""}}`), true, "", "")
	f.Add(v3TestCertSerial, "", ts, "nonce", "", []byte(`{"id":"x","resource":null}`), true, "", "")
	f.Add(v3TestCertSerial, "", ts, "nonce", "", []byte(`{`), true, "", "")
	f.Add("PUB_KEY_ID_X", "WECHATPAY/SIGNTEST/abc", "-1", "n", "", []byte(`{}`), false, "", "")
	f.Add(v3TestCertSerial, "sig", "99999999999999999999", "n", "", []byte(`{}`), false, "", "")
	f.Add(" ", " ", " ", " ", "x", []byte(nil), false, "", "")

	f.Fuzz(func(t *testing.T, serial, signature, timestamp, nonce, sigType string, body []byte, sign bool, plaintext, resNonce string) {
		if plaintext != "" {
			ct, err := EncryptResource(v3TestAPIKey, resNonce, "transaction", []byte(plaintext))
			if err != nil {
				ct = "AAAAAAAAAAAAAAAAAAAAAA=="
			}
			body = mustJSON(t, map[string]any{"id": "EV-fuzz", "resource": map[string]any{
				"algorithm": ResourceAlgorithm, "ciphertext": ct, "associated_data": "transaction", "nonce": resNonce,
			}})
		}
		h := make(http.Header)
		if sign {
			s, err := SignMessage(priv, NotifyMessage(timestamp, nonce, body))
			if err != nil {
				t.Fatal(err)
			}
			signature = s
		}
		for k, v := range map[string]string{headerV3Serial: serial, headerV3Signature: signature,
			headerV3Timestamp: timestamp, headerV3Nonce: nonce, headerV3SignatureType: sigType} {
			if v != "" {
				h.Set(k, v)
			}
		}
		n, err := p.Parse(h, body)
		if err != nil {
			for _, s := range []error{wechatpay.ErrMalformed, wechatpay.ErrBadSignature, wechatpay.ErrUnsupportedSignType, wechatpay.ErrProbe, wechatpay.ErrStaleTimestamp, wechatpay.ErrUnknownKey, wechatpay.ErrDecrypt} {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error wraps no sentinel: %v", err)
		}
		if n.Source != payment.SourceV3 || len(n.ID) <= 3 || !payment.ValidOutTradeNo(n.OutTradeNo) || n.TradeState == "" ||
			n.AmountFen < 0 || n.Currency == "" || (n.Succeeded() && (n.TransactionID == "" || n.AmountFen == 0)) {
			t.Fatalf("accepted an incomplete notification: %+v", n)
		}
		sec, err := strconv.ParseInt(timestamp, 10, 64)
		if err != nil || now.Sub(time.Unix(sec, 0)).Abs() > Window {
			t.Fatalf("accepted timestamp %q", timestamp)
		}
	})
}
