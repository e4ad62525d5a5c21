package apiv3

import (
	"encoding/json"
	"testing"
)

// EncryptResource and SignMessage reproduce the shared vector exactly
// (GCM and PKCS #1 v1.5 are deterministic), so the sandbox's notifications
// are the real thing.
func TestV3SignVector(t *testing.T) {
	vec := loadV3Vector(t)
	var env envelope
	if err := json.Unmarshal([]byte(vec.Body), &env); err != nil {
		t.Fatal(err)
	}
	ct, err := EncryptResource(vec.APIv3Key, env.Resource.Nonce, env.Resource.AssociatedData, []byte(vec.Plaintext))
	if err != nil {
		t.Fatal(err)
	}
	if ct != env.Resource.Ciphertext {
		t.Errorf("ciphertext = %s\nwant %s", ct, env.Resource.Ciphertext)
	}
	msg := NotifyMessage(vec.Headers["Wechatpay-Timestamp"], vec.Headers["Wechatpay-Nonce"], []byte(vec.Body))
	sig, err := SignMessage(v3TestKey(t), msg)
	if err != nil {
		t.Fatal(err)
	}
	if sig != vec.Headers["Wechatpay-Signature"] {
		t.Errorf("signature = %s\nwant %s", sig, vec.Headers["Wechatpay-Signature"])
	}
}

func TestV3SignMessages(t *testing.T) {
	if got, want := NotifyMessage("1722850421", "n", nil), "1722850421\nn\n\n"; got != want {
		t.Errorf("NotifyMessage = %q, want %q", got, want)
	}
	if got, want := RequestMessage("GET", "/v3/x?mchid=1", "1", "n", nil), "GET\n/v3/x?mchid=1\n1\nn\n\n"; got != want {
		t.Errorf("RequestMessage = %q, want %q", got, want)
	}
	if _, err := SignMessage(nil, "x"); err == nil {
		t.Error("SignMessage(nil) succeeded")
	}
	for _, c := range []struct{ key, nonce string }{{"short", "0123456789ab"}, {v3TestAPIKey, "0123456789a"}, {v3TestAPIKey, "0123456789abc"}} {
		if _, err := EncryptResource(c.key, c.nonce, "", []byte("x")); err == nil {
			t.Errorf("EncryptResource(key of %d, nonce of %d) succeeded", len(c.key), len(c.nonce))
		}
	}
}
