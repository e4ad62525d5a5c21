package apiv3

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/wechatpay-apiv3/wechatpay-go/utils"
)

// API v3 constants.
const (
	// SignatureType is the only Wechatpay-Signature-Type (and the
	// Authorization scheme) API v3 uses.
	SignatureType = "WECHATPAY2-SHA256-RSA2048"
	// ResourceAlgorithm is the only resource.algorithm of notifications.
	ResourceAlgorithm = "AEAD_AES_256_GCM"
	// ProbePrefix starts a Wechatpay-Signature that is a deliberate probe.
	ProbePrefix = "WECHATPAY/SIGNTEST/"
)

// SignMessage signs message with SHA256withRSA (PKCS #1 v1.5) and returns
// the signature in base64, as WeChat puts it in Wechatpay-Signature and as
// merchants put it in Authorization. It uses the SDK's utils.SignSHA256WithRSA.
func SignMessage(priv *rsa.PrivateKey, message string) (string, error) {
	if priv == nil {
		return "", errors.New("wechatpay: sign v3 message: no private key")
	}
	sig, err := utils.SignSHA256WithRSA(message, priv)
	if err != nil {
		return "", fmt.Errorf("wechatpay: sign v3 message: %w", err)
	}
	return sig, nil
}

// NotifyMessage is the string WeChat signs for a notification or an API
// answer: "timestamp\nnonce\nbody\n", with the exact body bytes.
func NotifyMessage(timestamp, nonce string, body []byte) string {
	return timestamp + "\n" + nonce + "\n" + string(body) + "\n"
}

// RequestMessage is the string a merchant signs for an API v3 request:
// "METHOD\nURI\ntimestamp\nnonce\nbody\n", where URI is the path and query
// as sent (URL.RequestURI) and body is empty for GET.
func RequestMessage(method, uri, timestamp, nonce string, body []byte) string {
	return method + "\n" + uri + "\n" + timestamp + "\n" + nonce + "\n" + string(body) + "\n"
}

// EncryptResource encrypts plaintext as WeChat encrypts a notification
// resource: AES-256-GCM with the 32-byte APIv3 key, the 12-byte nonce and
// associatedData, returning base64 of ciphertext||tag. The key never appears
// in an error.
func EncryptResource(apiV3Key string, nonce, associatedData string, plaintext []byte) (string, error) {
	if len(apiV3Key) != 32 {
		return "", fmt.Errorf("wechatpay: encrypt v3 resource: APIv3 key must be 32 bytes, not %d", len(apiV3Key))
	}
	if len(nonce) != 12 {
		return "", fmt.Errorf("wechatpay: encrypt v3 resource: nonce must be 12 bytes, not %d", len(nonce))
	}
	block, err := aes.NewCipher([]byte(apiV3Key))
	if err != nil {
		return "", fmt.Errorf("wechatpay: encrypt v3 resource: %w", err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return "", fmt.Errorf("wechatpay: encrypt v3 resource: %w", err)
	}
	ct := gcm.Seal(nil, []byte(nonce), plaintext, []byte(associatedData))
	return base64.StdEncoding.EncodeToString(ct), nil
}
