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
// past the signature into the envelope, the decryption and the resource
// (plaintext, when not empty, is encrypted into a valid envelope of
// eventType with a resource of originalType and the fuzzed nonce). Parse
// must never panic, and anything it accepts must be a complete
// notification of its kind; only a transaction resource under
// TRANSACTION.SUCCESS can be a payment.
func FuzzParse(f *testing.F) {
	vec := loadV3Vector(f)
	cert := v3TestCert(f)
	priv := v3TestKey(f)
	keys := mustV3Keys(f, map[string]*rsa.PublicKey{v3TestPubKeyID: cert.PublicKey.(*rsa.PublicKey)}, cert)
	now := vec.time(f)
	p := mustV3Parser(f, keys, now)

	ts := vec.Headers[headerV3Timestamp]
	tx := string(mustJSON(f, v3Tx("order-0001", "SUCCESS", 100)))
	f.Add(vec.Headers[headerV3Serial], vec.Headers[headerV3Signature], ts, vec.Headers[headerV3Nonce], SignatureType, []byte(vec.Body), false, "", "", "", "")
	f.Add(v3TestPubKeyID, "", ts, "nonce", "", []byte(vec.Body), true, "", "", "", "")
	f.Add(v3TestCertSerial, "", ts, "nonce", SignatureType, []byte(nil), true, tx, "0123456789ab", EventTransactionSuccess, "transaction")
	f.Add(v3TestCertSerial, "", ts, "nonce", "", []byte(nil), true, tx, "0123456789a", EventTransactionSuccess, "transaction")
	f.Add(v3TestCertSerial, "", ts, "nonce", "", []byte(nil), true, `{"out_trade_no":"x","amount":{"total":-1}}`, "0123456789ab", EventTransactionSuccess, "transaction")
	f.Add(v3TestCertSerial, "", ts, "nonce", "", []byte(nil), true, `[]`, "0123456789ab", EventTransactionSuccess, "transaction")
	f.Add(v3TestCertSerial, "", ts, "nonce", "", []byte(`{"id":"x","resource":{"algorithm":"AEAD_AES_256_GCM","nonce":"0123456789abc","ciphertext":"AAAAAAAAAAAAAAAAAAAAAA=="}}`), true, "", "", "", "")
	f.Add(v3TestCertSerial, "", ts, "nonce", "", []byte(`{"id":"x","resource":{"algorithm":"AEAD_AES_256_GCM","nonce":"0123456789ab","ciphertext":""}}`), true, "", "", "", "")
	f.Add(v3TestCertSerial, "", ts, "nonce", "", []byte(`{"id":"x","resource":null}`), true, "", "", "", "")
	f.Add(v3TestCertSerial, "", ts, "nonce", "", []byte(`{`), true, "", "", "", "")
	f.Add("PUB_KEY_ID_X", "WECHATPAY/SIGNTEST/abc", "-1", "n", "", []byte(`{}`), false, "", "", "", "")
	f.Add(v3TestCertSerial, "sig", "99999999999999999999", "n", "", []byte(`{}`), false, "", "", "", "")
	f.Add(" ", " ", " ", " ", "x", []byte(nil), false, "", "", "", "")
	refund := string(mustJSON(f, v3Refund("RF-1", "SUCCESS", 30, 100)))
	f.Add(v3TestCertSerial, "", ts, "nonce", "", []byte(nil), true, refund, "0123456789ab", EventRefundSuccess, "refund")
	f.Add(v3TestCertSerial, "", ts, "nonce", "", []byte(nil), true, string(mustJSON(f, v3Refund("RF-2", "ABNORMAL", 30, 100))), "0123456789ab", EventRefundAbnormal, "refund")
	f.Add(v3TestCertSerial, "", ts, "nonce", "", []byte(nil), true, refund, "0123456789ab", EventRefundClosed, "refund")
	f.Add(v3TestCertSerial, "", ts, "nonce", "", []byte(nil), true, refund, "0123456789ab", EventTransactionSuccess, "refund")
	f.Add(v3TestCertSerial, "", ts, "nonce", "", []byte(nil), true, tx, "0123456789ab", EventRefundSuccess, "transaction")
	f.Add(v3TestCertSerial, "", ts, "nonce", "", []byte(nil), true, tx, "0123456789ab", "MCHTRANSFER.BILL.FINISHED", "mch_payment")
	f.Add(v3TestCertSerial, "", ts, "nonce", "", []byte(nil), true, tx, "0123456789ab", "TRANSACTION.CLOSED", "transaction")

	f.Fuzz(func(t *testing.T, serial, signature, timestamp, nonce, sigType string, body []byte, sign bool, plaintext, resNonce, eventType, originalType string) {
		if plaintext != "" {
			ct, err := EncryptResource(v3TestAPIKey, resNonce, originalType, []byte(plaintext))
			if err != nil {
				ct = "AAAAAAAAAAAAAAAAAAAAAA=="
			}
			body = mustJSON(t, map[string]any{"id": "EV-fuzz", "event_type": eventType, "resource": map[string]any{
				"algorithm": ResourceAlgorithm, "ciphertext": ct, "associated_data": originalType, "nonce": resNonce,
				"original_type": originalType,
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
			for _, s := range []error{wechatpay.ErrMalformed, wechatpay.ErrBadSignature, wechatpay.ErrUnsupportedSignType, wechatpay.ErrProbe,
				wechatpay.ErrStaleTimestamp, wechatpay.ErrUnknownKey, wechatpay.ErrDecrypt, wechatpay.ErrForeign} {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error wraps no sentinel: %v", err)
		}
		if n.Source != payment.SourceV3 || len(n.ID) <= 3 || n.EventType == "" {
			t.Fatalf("accepted an incomplete notification: %+v", n)
		}
		switch n.Kind {
		case payment.KindPayment:
			if n.EventType != EventTransactionSuccess || !payment.ValidOutTradeNo(n.OutTradeNo) || n.TradeState == "" ||
				n.AmountFen < 0 || n.Currency == "" || (n.Succeeded() && (n.TransactionID == "" || n.AmountFen == 0)) ||
				n.AppID != "wxd678efh567hg6787" || n.MchID != "1230000109" || n.Refund != nil {
				t.Fatalf("accepted an incomplete payment: %+v", n)
			}
		case payment.KindRefund:
			if _, ok := refundEvents[n.EventType]; !ok || n.Refund == nil || n.Succeeded() || n.MchID != "1230000109" ||
				!payment.ValidOutRefundNo(n.Refund.OutRefundNo) || n.Refund.AmountFen <= 0 {
				t.Fatalf("accepted an incomplete refund: %+v", n)
			}
		case payment.KindOther:
			if _, refund := refundEvents[n.EventType]; refund || n.EventType == EventTransactionSuccess || n.Succeeded() ||
				n.OutTradeNo != "" || n.Refund != nil {
				t.Fatalf("accepted other event %+v", n)
			}
		default:
			t.Fatalf("kind %q", n.Kind)
		}
		sec, err := strconv.ParseInt(timestamp, 10, 64)
		if err != nil || now.Sub(time.Unix(sec, 0)).Abs() > Window {
			t.Fatalf("accepted timestamp %q", timestamp)
		}
	})
}
