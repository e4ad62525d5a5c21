package apiv2

import (
	"encoding/json"
	"errors"
	"maps"
	"os"
	"strings"
	"testing"

	"github.com/payflow/payflow/wechatpay"
)

const docKey = "192006250b4c09247ec02edce69f6a2d"

func docParams() map[string]string {
	return map[string]string{
		"appid":       "wxd930ea5d5a258f4f",
		"mch_id":      "10000100",
		"device_info": "1000",
		"body":        "test",
		"nonce_str":   "ibuaiVcKdpRxkhJA",
	}
}

type v2NotifyVector struct {
	APIKey         string            `json:"api_key"`
	Params         map[string]string `json:"params"`
	SignMD5        string            `json:"sign_md5"`
	SignHMAC       string            `json:"sign_hmac_sha256"`
	StringSignTemp string            `json:"string_sign_temp"`
}

func loadV2NotifyVector(t testing.TB) v2NotifyVector {
	t.Helper()
	raw, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		V2Notify v2NotifyVector `json:"v2_notify"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return v.V2Notify
}

func TestSignV2Vectors(t *testing.T) {
	vec := loadV2NotifyVector(t)
	tests := []struct {
		name     string
		params   map[string]string
		key      string
		signType string
		want     string
	}{
		{"doc MD5", docParams(), docKey, SignTypeMD5, "9A0A8659F005D6984697E2CA0A9CF3B7"},
		{"doc empty type is MD5", docParams(), docKey, "", "9A0A8659F005D6984697E2CA0A9CF3B7"},
		{"doc HMAC", docParams(), docKey, SignTypeHMACSHA256, "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"},
		{"notify MD5", vec.Params, vec.APIKey, SignTypeMD5, vec.SignMD5},
		{"notify HMAC", vec.Params, vec.APIKey, SignTypeHMACSHA256, vec.SignHMAC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Sign(tt.params, tt.key, tt.signType)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Sign = %s, want %s", got, tt.want)
			}
		})
	}
	wantTemp := strings.TrimSuffix(vec.StringSignTemp, "&key="+vec.APIKey)
	if got := signString(vec.Params); got != wantTemp {
		t.Errorf("sign string\n got %s\nwant %s", got, wantTemp)
	}
}

func TestSignV2Errors(t *testing.T) {
	if _, err := Sign(docParams(), docKey, "SHA1"); !errors.Is(err, wechatpay.ErrUnsupportedSignType) {
		t.Errorf("SHA1: err = %v, want wechatpay.ErrUnsupportedSignType", err)
	}
	if _, err := Sign(docParams(), "", SignTypeMD5); err == nil {
		t.Error("empty key: no error")
	}
}

func TestVerifyV2(t *testing.T) {
	vec := loadV2NotifyVector(t)
	with := func(base map[string]string, kv ...string) map[string]string {
		p := maps.Clone(base)
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "<delete>" {
				delete(p, kv[i])
			} else {
				p[kv[i]] = kv[i+1]
			}
		}
		return p
	}
	signed := with(vec.Params, "sign", vec.SignMD5)
	hmacSigned := with(vec.Params, "sign_type", SignTypeHMACSHA256)
	hmacSign, err := Sign(hmacSigned, vec.APIKey, SignTypeHMACSHA256)
	if err != nil {
		t.Fatal(err)
	}
	hmacSigned["sign"] = hmacSign
	hmacNoType := with(vec.Params, "sign", vec.SignHMAC)
	md5Explicit := with(vec.Params, "sign_type", SignTypeMD5)
	md5ExplicitSign, _ := Sign(md5Explicit, vec.APIKey, SignTypeMD5)
	md5Explicit["sign"] = md5ExplicitSign

	tests := []struct {
		name   string
		params map[string]string
		key    string
		want   error
	}{
		{"published notify vector", signed, vec.APIKey, nil},
		{"lowercase sign accepted", with(signed, "sign", strings.ToLower(vec.SignMD5)), vec.APIKey, nil},
		{"sign_type HMAC present", hmacSigned, vec.APIKey, nil},
		{"sign_type MD5 present", md5Explicit, vec.APIKey, nil},
		{"extra empty field ignored", with(signed, "coupon_count", ""), vec.APIKey, nil},
		{"tampered total_fee", with(signed, "total_fee", "100"), vec.APIKey, wechatpay.ErrBadSignature},
		{"tampered out_trade_no", with(signed, "out_trade_no", "1409811654"), vec.APIKey, wechatpay.ErrBadSignature},
		{"added field", with(signed, "coupon_fee", "1"), vec.APIKey, wechatpay.ErrBadSignature},
		{"wrong key", signed, "192006250b4c09247ec02edce69f6a2e", wechatpay.ErrBadSignature},
		{"empty key", signed, "", errEmptyKey},
		{"missing sign", with(signed, "sign", "<delete>"), vec.APIKey, wechatpay.ErrMissingSign},
		{"empty sign", with(signed, "sign", ""), vec.APIKey, wechatpay.ErrMissingSign},
		{"unsupported sign_type", with(signed, "sign_type", "SHA1"), vec.APIKey, wechatpay.ErrUnsupportedSignType},
		// WeChat sends no sign_type for an HMAC-SHA256 order; the 64-character
		// sign says which algorithm. But sign_type, when present, is signed:
		// dropping it from a sign made with it breaks the sign.
		{"HMAC sign without sign_type, signed without it", hmacNoType, vec.APIKey, nil},
		{"HMAC sign made with sign_type, sent without it", with(hmacSigned, "sign_type", "<delete>"), vec.APIKey, wechatpay.ErrBadSignature},
		{"MD5 sign made with sign_type, sent without it", with(md5Explicit, "sign_type", "<delete>"), vec.APIKey, wechatpay.ErrBadSignature},
		{"HMAC sign claimed as MD5", with(hmacNoType, "sign_type", SignTypeMD5), vec.APIKey, wechatpay.ErrBadSignature},
		{"HMAC sign, tampered amount", with(hmacNoType, "total_fee", "100"), vec.APIKey, wechatpay.ErrBadSignature},
		{"HMAC sign lowercase", with(hmacNoType, "sign", strings.ToLower(hmacNoType["sign"])), vec.APIKey, nil},
		{"sign of 40 characters", with(signed, "sign", strings.Repeat("A", 40)), vec.APIKey, wechatpay.ErrBadSignature},
		{"sign of 63 characters", with(hmacNoType, "sign", hmacNoType["sign"][:63]), vec.APIKey, wechatpay.ErrBadSignature},
		{"MD5 sign claimed as HMAC", with(signed, "sign_type", SignTypeHMACSHA256), vec.APIKey, wechatpay.ErrBadSignature},
		{"truncated sign", with(signed, "sign", vec.SignMD5[:31]), vec.APIKey, wechatpay.ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.params, tt.key)
			if tt.want == nil && err != nil {
				t.Fatalf("Verify = %v, want nil", err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), vec.APIKey) {
				t.Fatalf("error message contains the API key: %v", err)
			}
		})
	}
}
