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
	CodeAccepted      = "ACCEPTED" // v3 HTTP 202: accepted, call again with the same parameters
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
	// key, or tampered ciphertext), or a v2 refund's req_info did not
	// decrypt under the API v2 key.
	ErrDecrypt = errors.New("wechatpay: resource does not decrypt")
	// ErrForeign: a verified message names another appid or mchid than
	// ours.
	ErrForeign = errors.New("wechatpay: message for another merchant")
	// ErrBadAnswer: an answer that does not parse or lacks what the call
	// needs. It says nothing about the payment. It matches ErrMalformed
	// too (errors.Is), as every malformed message does.
	ErrBadAnswer error = badAnswer{}
	// ErrConfig: the client cannot make the call as configured (no key,
	// no appid). Nothing was sent.
	ErrConfig = errors.New("wechatpay: client not configured for this call")
)

type badAnswer struct{}

func (badAnswer) Error() string        { return "wechatpay: malformed answer" }
func (badAnswer) Is(target error) bool { return target == ErrMalformed }

// UnverifiedError is an HTTP answer that is not WeChat's signed word: it
// carries no signature, or one that does not verify, or one by a key we do
// not hold, or one whose timestamp is too far from our clock. Err wraps
// ErrMissingSign, ErrBadSignature, ErrUnknownKey or ErrStaleTimestamp. A
// proxy's 403 page, a gateway's 503 and an unsigned ORDER_NOT_EXIST all end
// here: none of them decides anything (see Fault).
type UnverifiedError struct {
	Op         string // the call, e.g. "v3 orderquery"
	HTTPStatus int
	Err        error
}

func (e *UnverifiedError) Error() string {
	return fmt.Sprintf("wechatpay %s: HTTP %d answer not verified: %v", e.Op, e.HTTPStatus, e.Err)
}

func (e *UnverifiedError) Unwrap() error { return e.Err }

// APIError is what a WeChat call returned when it did not succeed: an HTTP
// status other than 200, return_code FAIL, result_code FAIL, or an answer
// about another merchant or order. The clients build one only from an
// answer they could trust as far as it goes: a signed v3 answer, a signed
// v2 result_code FAIL (or an unsigned SYSTEMERROR, which asks to call
// again), a v2 return_code FAIL (which WeChat never signs and which never
// decides anything), or an HTTP status without a WeChat body (CodeHTTP).
// Fault says which of them decide something.
type APIError struct {
	Op         string // the call, e.g. "orderquery"
	HTTPStatus int    // the HTTP status of the answer
	Code       string // err_code, or a code this package derived (SIGNERROR, HTTP_ERROR, FAIL, ID_MISMATCH)
	Message    string // err_code_des or return_msg, as WeChat wrote it
	// Retryable: the client's advice that the same call may succeed later.
	// Every fault is retryable whatever this says (see Retryable).
	Retryable bool
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

// Retryable reports whether err may go away if the same call is made
// again: every fault (see Fault) is, and so is an *APIError its client
// marked retryable. It is false for nil, for WeChat's decisive answers
// (ORDERNOTEXIST, ORDERPAID, ORDERCLOSED, OUT_TRADE_NO_USED, …) and for a
// request we refused to send (ErrMalformed alone).
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	if _, ok := Fault(err); ok {
		return true
	}
	var ae *APIError
	return errors.As(err, &ae) && ae.Retryable
}
