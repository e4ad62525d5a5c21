package config

import (
	"strings"
	"testing"
)

func TestInsecureSandbox(t *testing.T) {
	base := map[string]string{"WECHATPAY_APPID": "wx1", "WECHATPAY_MCHID": "1"}
	c, err := Load(env(base))
	if err != nil || c.InsecureSandbox {
		t.Fatalf("default: %v, %v", c.InsecureSandbox, err)
	}
	base["WECHATPAY_INSECURE_SANDBOX"] = "true"
	if c, err = Load(env(base)); err != nil || !c.InsecureSandbox {
		t.Fatalf("true: %v, %v", c.InsecureSandbox, err)
	}
	base["WECHATPAY_INSECURE_SANDBOX"] = "yes please"
	if _, err = Load(env(base)); err == nil || !strings.Contains(err.Error(), "WECHATPAY_INSECURE_SANDBOX") {
		t.Fatalf("not a boolean: %v", err)
	}
}
