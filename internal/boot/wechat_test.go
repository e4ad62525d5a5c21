package boot

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/payflow/payflow/config"
	"github.com/payflow/payflow/wechatpay/apiv2"
	"github.com/payflow/payflow/wechatpay/apiv3"
)

func TestCheckBaseURL(t *testing.T) {
	for _, tc := range []struct {
		url     string
		sandbox bool
		ok      bool
	}{
		{"https://api.mch.weixin.qq.com", false, true},
		{"https://api2.mch.weixin.qq.com/", false, true},
		{"https://proxy.internal:8443/wechat", false, true},
		{"http://127.0.0.1:8090", false, true},
		{"http://127.9.9.9:8090", false, true},
		{"http://[::1]:8090", false, true},
		{"http://localhost:8090", false, true},
		{"http://LOCALHOST", false, true},
		{"http://api.mch.weixin.qq.com", false, false},
		{"http://wechatpay-sim:8090", false, false},
		{"http://10.0.0.7:8090", false, false},
		{"http://0.0.0.0:8090", false, false},
		{"http://localhost.evil.example", false, false},
		{"http://wechatpay-sim:8090", true, true},
		{"ftp://127.0.0.1", false, false},
		{"ftp://127.0.0.1", true, false},
		{"127.0.0.1:8090", false, false},
		{"", false, false},
		{"http://", false, false},
	} {
		err := CheckBaseURL(tc.url, tc.sandbox)
		if (err == nil) != tc.ok {
			t.Errorf("CheckBaseURL(%q, %v) = %v, want ok %v", tc.url, tc.sandbox, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "WECHATPAY_BASE_URL") {
			t.Errorf("error %q does not name the setting", err)
		}
	}
	if err := CheckBaseURL("http://user:hunter2@10.0.0.7", false); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("password shown or accepted: %v", err)
	}
}

func testConfig(t *testing.T, kv ...string) config.Config {
	t.Helper()
	m := map[string]string{"WECHATPAY_APPID": "wx2421b1c4370ec43b", "WECHATPAY_MCHID": "10000100"}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	c, err := config.Load(func(k string) string { return m[k] })
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// writeKeys writes a WeChat Pay public key and a merchant private key.
func writeKeys(t *testing.T) (pubFile, privFile string) {
	t.Helper()
	dir := t.TempDir()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	pubFile = filepath.Join(dir, "pub.pem")
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	pk, _ := x509.MarshalPKCS8PrivateKey(k)
	privFile = filepath.Join(dir, "apiclient_key.pem")
	if err := os.WriteFile(privFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600); err != nil {
		t.Fatal(err)
	}
	return pubFile, privFile
}

func TestLoadWeChat(t *testing.T) {
	pub, priv := writeKeys(t)
	v3env := []string{"WECHATPAY_APIV3_KEY", "0123456789ABCDEFGHIJKLMNOPQRSTUV", "WECHATPAY_PUBLIC_KEY_FILE", pub,
		"WECHATPAY_PUBLIC_KEY_ID", "PUB_KEY_ID_0000000000000024101100397200000006"}

	// v2 only: a v2 parser and an HMAC-SHA256 v2 client, no v3.
	w, err := LoadWeChat(testConfig(t, "WECHATPAY_API_VERSION", "v2", "WECHATPAY_API_KEY", "192006250b4c09247ec02edce69f6a2d"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if v2, v3 := w.Parsers(); v2 == nil || v3 != nil || w.Keys != nil {
		t.Fatalf("parsers %v %v keys %v", v2, v3, w.Keys)
	}
	c, err := w.Client(t.Context())
	if cl, ok := c.(*apiv2.Client); err != nil || !ok || cl.SignType != apiv2.SignTypeHMACSHA256 || cl.HTTP.Timeout != clientTimeout {
		t.Fatalf("v2 client %#v, %v", c, err)
	}

	// v3 with both parsers and the v3 client.
	env := append([]string{"WECHATPAY_API_KEY", "192006250b4c09247ec02edce69f6a2d", "WECHATPAY_MCH_PRIVATE_KEY_FILE", priv,
		"WECHATPAY_MCH_CERT_SERIAL", "3775B6A45ACD588826D15E583A95F5DD4F4F2A6B"}, v3env...)
	w, err = LoadWeChat(testConfig(t, env...), nil)
	if err != nil {
		t.Fatal(err)
	}
	if v2, v3 := w.Parsers(); v2 == nil || v3 == nil || w.Keys == nil {
		t.Fatalf("parsers %v %v", v2, v3)
	}
	if c, err := w.Client(t.Context()); err != nil {
		t.Fatal(err)
	} else if _, ok := c.(*apiv3.Client); !ok {
		t.Fatalf("v3 client %T", c)
	}

	// v3 calls without the merchant's key: the parsers load, the client says what is missing.
	w, err = LoadWeChat(testConfig(t, v3env...), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Client(t.Context()); err == nil || !strings.Contains(err.Error(), "WECHATPAY_MCH_PRIVATE_KEY_FILE") ||
		!strings.Contains(err.Error(), "WECHATPAY_MCH_CERT_SERIAL") {
		t.Fatalf("missing merchant key: %v", err)
	}

	// Refused at start.
	for name, kv := range map[string][]string{
		"http base URL":    append([]string{"WECHATPAY_BASE_URL", "http://api.mch.weixin.qq.com"}, v3env...),
		"missing key file": {"WECHATPAY_PUBLIC_KEY_FILE", filepath.Join(t.TempDir(), "nope.pem"), "WECHATPAY_PUBLIC_KEY_ID", "PUB_KEY_ID_01"},
	} {
		if _, err := LoadWeChat(testConfig(t, kv...), nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := LoadWeChat(testConfig(t, "WECHATPAY_BASE_URL", "http://wechatpay-sim:8090", "WECHATPAY_INSECURE_SANDBOX", "true"), nil); err != nil {
		t.Errorf("sandbox on a private network: %v", err)
	}
}
