package wechatpay

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// API v2 signature types, as sent in the sign_type field.
const (
	SignTypeMD5        = "MD5"
	SignTypeHMACSHA256 = "HMAC-SHA256"
)

// Sentinel errors; test for them with errors.Is.
var (
	ErrMalformed           = errors.New("wechatpay: malformed message")
	ErrMissingSign         = errors.New("wechatpay: missing sign")
	ErrBadSignature        = errors.New("wechatpay: bad signature")
	ErrUnsupportedSignType = errors.New("wechatpay: unsupported sign_type")
)

var errEmptyKey = errors.New("wechatpay: empty API key")

// v2SignString is the string WeChat signs, without the key: the non-empty
// params except "sign", sorted by ASCII key, joined as k=v&k=v.
func v2SignString(params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k, v := range params {
		if k == "sign" || v == "" {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(params[k])
	}
	return b.String()
}

// SignV2 computes the API v2 signature of params: the non-empty params
// except "sign", ASCII-sorted, joined as k=v&…, followed by "&key=" and the
// API key; MD5 or HMAC-SHA256 (keyed with the API key) of that string, in
// upper-case hex. An empty signType means MD5. A sign_type inside params is
// signed like any other field but does not choose the algorithm.
func SignV2(params map[string]string, apiKey, signType string) (string, error) {
	if apiKey == "" {
		return "", errEmptyKey
	}
	s := v2SignString(params) + "&key=" + apiKey
	switch signType {
	case SignTypeMD5, "":
		sum := md5.Sum([]byte(s))
		return strings.ToUpper(hex.EncodeToString(sum[:])), nil
	case SignTypeHMACSHA256:
		m := hmac.New(sha256.New, []byte(apiKey))
		m.Write([]byte(s))
		return strings.ToUpper(hex.EncodeToString(m.Sum(nil))), nil
	default:
		return "", fmt.Errorf("%w: %q", ErrUnsupportedSignType, truncate(signType, 32))
	}
}

// VerifyV2 checks params["sign"] against the signature of params under
// apiKey. The algorithm comes from params["sign_type"], MD5 when absent.
// The comparison runs in constant time and ignores the case of the hex
// digits. Errors wrap ErrMissingSign, ErrUnsupportedSignType or
// ErrBadSignature.
func VerifyV2(params map[string]string, apiKey string) error {
	return verifyV2(params, apiKey, SignTypeMD5)
}

// verifyV2 is VerifyV2 with the algorithm to use when params carry no
// sign_type: WeChat signs order query responses with the request's
// sign_type without echoing it.
func verifyV2(params map[string]string, apiKey, defaultSignType string) error {
	got := params["sign"]
	if got == "" {
		return ErrMissingSign
	}
	signType := params["sign_type"]
	if signType == "" {
		signType = defaultSignType
	}
	want, err := SignV2(params, apiKey, signType)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare([]byte(strings.ToUpper(got)), []byte(want)) != 1 {
		return ErrBadSignature
	}
	return nil
}

// truncate shortens attacker-controlled text quoted in error messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
