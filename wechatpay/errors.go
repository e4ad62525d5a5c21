package wechatpay

import (
	"errors"
	"fmt"
)

// ErrOrderNotExist matches (with errors.Is) an *APIError whose Code is
// ORDERNOTEXIST: WeChat has no trade under that out_trade_no.
var ErrOrderNotExist = errors.New("wechatpay: order does not exist")

// ErrOrderPaid matches an *APIError saying the order is already paid
// (v2 ORDERPAID, v3 ORDERPAID or ORDER_PAID): it cannot be closed or
// prepaid again.
var ErrOrderPaid = errors.New("wechatpay: order already paid")

// ErrOrderClosed matches an *APIError saying the order is closed (v2
// ORDERCLOSED, v3 ORDER_CLOSED).
var ErrOrderClosed = errors.New("wechatpay: order closed")

// WeChat error codes the protocol packages classify, and codes they derive
// themselves for answers that carry none.
const (
	CodeOrderNotExist = "ORDERNOTEXIST"
	CodeSystemError   = "SYSTEMERROR"
	CodeSignError     = "SIGNERROR"
	CodeHTTP          = "HTTP_ERROR"
	CodeFail          = "FAIL"
	CodeIDMismatch    = "ID_MISMATCH"
)

// Sentinels of both APIs; test for them with errors.Is.
var (
	ErrMalformed           = errors.New("wechatpay: malformed message")
	ErrMissingSign         = errors.New("wechatpay: missing sign")
	ErrBadSignature        = errors.New("wechatpay: bad signature")
	ErrUnsupportedSignType = errors.New("wechatpay: unsupported sign_type")
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

// APIError is what a WeChat call returned when it did not succeed: an HTTP
// status other than 200, return_code FAIL, result_code FAIL, or an answer
// about another merchant or order.
type APIError struct {
	Op         string // the call, e.g. "orderquery"
	HTTPStatus int    // the HTTP status of the answer
	Code       string // err_code, or a code this package derived (SIGNERROR, HTTP_ERROR, FAIL, ID_MISMATCH)
	Message    string // err_code_des or return_msg, as WeChat wrote it
	Retryable  bool   // whether the same call may succeed later
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("wechatpay %s: %s", e.Op, e.Code)
	if e.HTTPStatus != 0 && e.HTTPStatus != 200 {
		s += fmt.Sprintf(" (HTTP %d)", e.HTTPStatus)
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Is makes errors.Is match the sentinels above by WeChat's code.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrOrderNotExist:
		return e.Code == CodeOrderNotExist
	case ErrOrderPaid:
		return e.Code == "ORDERPAID" || e.Code == "ORDER_PAID"
	case ErrOrderClosed:
		return e.Code == "ORDERCLOSED" || e.Code == "ORDER_CLOSED"
	}
	return false
}

// RetryableCode reports whether WeChat asks to retry the call on this
// err_code (or return_msg, which carries the reason when return_code is FAIL).
func RetryableCode(code string) bool {
	switch code {
	case CodeSystemError, "BIZERR_NEED_RETRY", "FREQUENCY_LIMITED", "系统错误", "系统繁忙", "系统繁忙,请稍后再试", "系统超时":
		return true
	}
	return false
}

// Retryable reports whether err may go away if the call is made again. It
// is true for network errors and WeChat's system errors, and false for nil,
// an *APIError marked not retryable, and anything wrapping ErrBadSignature
// or ErrMalformed.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrBadSignature) || errors.Is(err, ErrMalformed) {
		return false
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Retryable
	}
	return true
}
