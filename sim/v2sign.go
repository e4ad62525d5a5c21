package sim

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"sort"
	"strings"
)

// The sandbox signs and checks API v2 messages with its own code, written
// from WeChat's published rule (签名算法) and tested against its published
// vectors, not with the client's: the two must not share a mistake.

var errV2Sign = errors.New("bad sign")

// signV2 is WeChat's API v2 signature of p: the non-empty fields except
// sign, sorted by ASCII key, joined as k=v&…, then &key=apiKey; MD5 (also
// for an empty signType) or HMAC-SHA256 keyed with apiKey; upper-case hex.
func signV2(p map[string]string, apiKey, signType string) (string, error) {
	if apiKey == "" {
		return "", errors.New("no API key")
	}
	keys := make([]string, 0, len(p))
	for k, v := range p {
		if k != "sign" && v != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "=" + p[k] + "&")
	}
	b.WriteString("key=" + apiKey)
	switch signType {
	case "", "MD5":
		sum := md5.Sum([]byte(b.String()))
		return strings.ToUpper(hex.EncodeToString(sum[:])), nil
	case "HMAC-SHA256":
		m := hmac.New(sha256.New, []byte(apiKey))
		m.Write([]byte(b.String()))
		return strings.ToUpper(hex.EncodeToString(m.Sum(nil))), nil
	}
	return "", errors.New("unsupported sign_type")
}

// checkV2Request verifies a merchant's request as WeChat does: with the
// algorithm its sign_type names (MD5 when it names none).
func checkV2Request(p map[string]string, apiKey string) error {
	want, err := signV2(p, apiKey, p["sign_type"])
	if err != nil {
		return err
	}
	if p["sign"] == "" || subtle.ConstantTimeCompare([]byte(strings.ToUpper(p["sign"])), []byte(want)) != 1 {
		return errV2Sign
	}
	return nil
}
