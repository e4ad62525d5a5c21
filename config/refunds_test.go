package config

import (
	"strings"
	"testing"
	"time"
)

func TestRefundSettings(t *testing.T) {
	base := map[string]string{"WECHATPAY_APPID": "wx1", "WECHATPAY_MCHID": "1"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	c, err := Load(env(base))
	if err != nil || c.RefundNotifyURL != "" || c.RefundQueryAfter != time.Minute {
		t.Fatalf("defaults: %q %v %v", c.RefundNotifyURL, c.RefundQueryAfter, err)
	}
	c, err = Load(env(with("WECHATPAY_NOTIFY_URL", "https://m.example/wechatpay/notify")))
	if err != nil || c.RefundNotifyURL != "https://m.example/wechatpay/notify" {
		t.Fatalf("default refund notify URL: %q %v", c.RefundNotifyURL, err)
	}
	c, err = Load(env(with("WECHATPAY_NOTIFY_URL", "https://m.example/wechatpay/notify",
		"WECHATPAY_REFUND_NOTIFY_URL", " https://m.example/wechatpay/v3/notify ", "REFUND_QUERY_AFTER", "90s")))
	if err != nil || c.RefundNotifyURL != "https://m.example/wechatpay/v3/notify" || c.RefundQueryAfter != 90*time.Second ||
		c.NotifyURL != "https://m.example/wechatpay/notify" {
		t.Fatalf("set: %q %v %v", c.RefundNotifyURL, c.RefundQueryAfter, err)
	}
	for _, bad := range []string{"soon", "0s", "-1m", "60"} {
		if _, err := Load(env(with("REFUND_QUERY_AFTER", bad))); err == nil || !strings.Contains(err.Error(), "REFUND_QUERY_AFTER") {
			t.Errorf("REFUND_QUERY_AFTER=%s: %v", bad, err)
		}
	}
}

func TestRefundsConfigured(t *testing.T) {
	full := Config{MchPrivateKeyFile: "/k/apiclient_key.pem", MchCertSerial: "3775B6A4", PublicKeyFile: "/k/pub.pem"}
	if err := full.RefundsConfigured(); err != nil {
		t.Fatal(err)
	}
	certs := full
	certs.PublicKeyFile, certs.PlatformCertDir = "", "/k/platform"
	if err := certs.RefundsConfigured(); err != nil {
		t.Fatal(err)
	}
	// With WECHATPAY_API_VERSION=v2 and only the v2 key, refunds are unavailable, saying why.
	err := Config{APIVersion: "v2", APIKey: NewSecret("192006250b4c09247ec02edce69f6a2d")}.RefundsConfigured()
	if err == nil {
		t.Fatal("no v3 credentials, yet configured")
	}
	for _, want := range []string{"API v3", "WECHATPAY_MCH_PRIVATE_KEY_FILE", "WECHATPAY_MCH_CERT_SERIAL", "WECHATPAY_PUBLIC_KEY_FILE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not mention %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "192006250b4c09247ec02edce69f6a2d") {
		t.Error("the error shows the key")
	}
	noSerial := full
	noSerial.MchCertSerial = ""
	if err := noSerial.RefundsConfigured(); err == nil || strings.Contains(err.Error(), "PRIVATE_KEY") {
		t.Errorf("no serial: %v", err)
	}
}
