package apiv2

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

	"github.com/payflow/payflow/wechatpay"
)

// API v2 signature types, as sent in the sign_type field.
const (
	SignTypeMD5        = "MD5"
	SignTypeHMACSHA256 = "HMAC-SHA256"
)

var errEmptyKey = errors.New("wechatpay: empty API key")

// signString is the string WeChat signs, without the key: the non-empty
// params except "sign", sorted by ASCII key, joined as k=v&k=v.
func signString(params map[string]string) string {
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

// Sign computes the API v2 signature of params: the non-empty params
// except "sign", ASCII-sorted, joined as k=v&…, followed by "&key=" and the
// API key; MD5 or HMAC-SHA256 (keyed with the API key) of that string, in
// upper-case hex. An empty signType means MD5. A sign_type inside params is
// signed like any other field but does not choose the algorithm.
func Sign(params map[string]string, apiKey, signType string) (string, error) {
	if apiKey == "" {
		return "", errEmptyKey
	}
	s := signString(params) + "&key=" + apiKey
	switch signType {
	case SignTypeMD5, "":
		sum := md5.Sum([]byte(s))
		return strings.ToUpper(hex.EncodeToString(sum[:])), nil
	case SignTypeHMACSHA256:
		m := hmac.New(sha256.New, []byte(apiKey))
		m.Write([]byte(s))
		return strings.ToUpper(hex.EncodeToString(m.Sum(nil))), nil
	default:
		return "", fmt.Errorf("%w: %q", wechatpay.ErrUnsupportedSignType, wechatpay.Truncate(signType, 32))
	}
}

// Verify checks params["sign"] against the signature of params under
// apiKey. The algorithm comes from params["sign_type"], MD5 when absent.
// The comparison runs in constant time and ignores the case of the hex
// digits. Errors wrap wechatpay.ErrMissingSign, wechatpay.ErrUnsupportedSignType or
// wechatpay.ErrBadSignature.
func Verify(params map[string]string, apiKey string) error {
	return verify(params, apiKey, SignTypeMD5)
}

// verify is Verify with the algorithm to use when params carry no
// sign_type: WeChat signs order query responses with the request's
// sign_type without echoing it.
func verify(params map[string]string, apiKey, defaultSignType string) error {
	got := params["sign"]
	if got == "" {
		return wechatpay.ErrMissingSign
	}
	signType := params["sign_type"]
	if signType == "" {
		signType = defaultSignType
	}
	want, err := Sign(params, apiKey, signType)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare([]byte(strings.ToUpper(got)), []byte(want)) != 1 {
		return wechatpay.ErrBadSignature
	}
	return nil
}
