package wechatpay

import "errors"

// Sentinels for API v3 notifications and answers. Errors from this package
// wrap them (together with ErrMalformed, ErrBadSignature and
// ErrUnsupportedSignType) so that callers can tell them apart with errors.Is.
var (
	// ErrStaleTimestamp: Wechatpay-Timestamp is more than five minutes away
	// from the receiver's clock, either way (a replay, or a skewed clock).
	ErrStaleTimestamp = errors.New("wechatpay: timestamp outside the accepted window")
	// ErrProbe: Wechatpay-Signature starts with WECHATPAY/SIGNTEST/, which
	// WeChat sends on purpose to check that signatures are verified.
	ErrProbe = errors.New("wechatpay: signature probe")
	// ErrUnknownKey: Wechatpay-Serial names no configured public key or
	// platform certificate.
	ErrUnknownKey = errors.New("wechatpay: unknown key serial")
	// ErrDecrypt: the resource did not decrypt with the APIv3 key (a wrong
	// key, or tampered ciphertext).
	ErrDecrypt = errors.New("wechatpay: resource does not decrypt")
)
