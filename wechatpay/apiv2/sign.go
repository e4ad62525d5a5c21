package apiv2

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
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

var errEmptyKey = fmt.Errorf("%w: empty API key", wechatpay.ErrConfig)

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
// apiKey, as WeChat signs: the algorithm is sign_type when present (and
// sign_type is then part of the signed string, like any field), else the
// sign's length: 32 hex digits are MD5, 64 are HMAC-SHA256 (WeChat sends
// no sign_type in the notification of an order made with HMAC-SHA256). A
// sign of any other length is a bad signature. The comparison runs in
// constant time and ignores the case of the hex digits. Errors wrap
// wechatpay.ErrMissingSign, wechatpay.ErrUnsupportedSignType or
// wechatpay.ErrBadSignature.
func Verify(params map[string]string, apiKey string) error {
	got := params["sign"]
	if got == "" {
		return wechatpay.ErrMissingSign
	}
	signType := params["sign_type"]
	if signType == "" {
		switch len(got) {
		case md5HexLen:
			signType = SignTypeMD5
		case hmacHexLen:
			signType = SignTypeHMACSHA256
		default:
			return fmt.Errorf("%w: a sign of %d characters is neither MD5 nor HMAC-SHA256", wechatpay.ErrBadSignature, len(got))
		}
	} else if signType != SignTypeMD5 && signType != SignTypeHMACSHA256 {
		return fmt.Errorf("%w: %q", wechatpay.ErrUnsupportedSignType, wechatpay.Truncate(signType, 32))
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

// Hex lengths of the two signatures.
const (
	md5HexLen  = 2 * md5.Size
	hmacHexLen = 2 * sha256.Size
)
