package wechatpay

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// Fault kinds, the values of the kind label of payflow_wechat_faults_total.
// A fault says nothing about the payment: the call is made again, later,
// and nothing is decided on it.
const (
	FaultNetwork      = "network"       // no answer: connection refused or reset, DNS, TLS
	FaultTimeout      = "timeout"       // no answer in time
	FaultHTTP5xx      = "http_5xx"      // a 5xx, signed or not (a gateway, or WeChat asking to call again)
	FaultRateLimited  = "rate_limited"  // HTTP 429 or FREQUENCY_LIMITED: wait longer
	FaultAccepted     = "accepted"      // HTTP 202: accepted, call again with the same parameters
	FaultUnsigned     = "unsigned"      // an answer without WeChat's signature (a proxy's 403/404 page)
	FaultBadSignature = "bad_signature" // a signature that does not verify
	FaultUnknownKey   = "unknown_key"   // signed by a key we do not hold (WeChat rotated first)
	FaultClockSkew    = "clock_skew"    // a signed timestamp more than 5 minutes from our clock
	FaultSystemError  = "system_error"  // SYSTEM_ERROR / SYSTEMERROR: WeChat asks to call again
	FaultConfig       = "config"        // our configuration: SIGN_ERROR, NO_AUTH, PARAM_ERROR, a missing key, …
	FaultMalformed    = "malformed"     // an answer that does not parse or is about another order
)

// FaultKinds lists every kind Fault returns.
func FaultKinds() []string {
	return []string{FaultNetwork, FaultTimeout, FaultHTTP5xx, FaultRateLimited, FaultAccepted, FaultUnsigned,
		FaultBadSignature, FaultUnknownKey, FaultClockSkew, FaultSystemError, FaultConfig, FaultMalformed}
}

// Waits RetryAfter advises.
const (
	// RateLimitWait is the least wait after 429 or FREQUENCY_LIMITED.
	RateLimitWait = 30 * time.Second
	// SlowFaultWait is the least wait after a fault that a person or a key
	// refresh must clear (configuration, clock skew, an unknown key):
	// calling again at once only adds to the noise.
	SlowFaultWait = time.Minute
)

// Fault classifies an error returned by the clients of wechatpay/apiv2
// and wechatpay/apiv3. ok is true when the error says nothing about the
// payment: no answer, an answer that is not WeChat's signed word, a
// rate limit, a 5xx or 202, WeChat's SYSTEMERROR, or a configuration
// fault of ours (a signed SIGN_ERROR, NO_AUTH, PARAM_ERROR, …); kind is
// then one of the Fault* constants, a short metric label. Such errors are
// retried and never decide anything.
//
// ok is false for nil, for WeChat's decisive signed answers (ORDER_NOT_EXIST
// and ORDERNOTEXIST, ORDERPAID and ORDER_PAID, ORDER_CLOSED and
// ORDERCLOSED, prepay refusals such as OUT_TRADE_NO_USED, and any other
// signed 4xx code this table does not list) and for a request the client
// refused to send (an error wrapping ErrMalformed alone, e.g. an invalid
// out_trade_no).
func Fault(err error) (kind string, ok bool) {
	if err == nil {
		return "", false
	}
	var ue *UnverifiedError
	if errors.As(err, &ue) {
		switch s := ue.HTTPStatus; {
		case s == http.StatusTooManyRequests:
			return FaultRateLimited, true
		case s >= 500:
			return FaultHTTP5xx, true
		}
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return apiFault(ae)
	}
	switch {
	case errors.Is(err, ErrUnknownKey):
		return FaultUnknownKey, true
	case errors.Is(err, ErrStaleTimestamp):
		return FaultClockSkew, true
	case errors.Is(err, ErrMissingSign):
		return FaultUnsigned, true
	case errors.Is(err, ErrBadSignature), errors.Is(err, ErrUnsupportedSignType), errors.Is(err, ErrProbe):
		return FaultBadSignature, true
	case errors.Is(err, ErrBadAnswer):
		return FaultMalformed, true
	case errors.Is(err, ErrConfig):
		return FaultConfig, true
	case errors.Is(err, ErrMalformed):
		return "", false // our own request, refused before sending
	case isTimeout(err):
		return FaultTimeout, true
	}
	return FaultNetwork, true
}

// apiFault classifies an *APIError by HTTP status and WeChat's code.
func apiFault(e *APIError) (string, bool) {
	code, status := e.Code, e.HTTPStatus
	switch {
	case code == CodeHTTP: // an HTTP status without a WeChat body
		switch {
		case status == http.StatusTooManyRequests:
			return FaultRateLimited, true
		case status == http.StatusAccepted:
			return FaultAccepted, true
		case status >= 500:
			return FaultHTTP5xx, true
		}
		return FaultUnsigned, true
	case status == http.StatusTooManyRequests || rateLimitCodes[code]:
		return FaultRateLimited, true
	case status == http.StatusAccepted || code == CodeAccepted:
		return FaultAccepted, true
	case systemErrorCodes[code]:
		return FaultSystemError, true
	case status >= 500:
		return FaultHTTP5xx, true
	case configCodes[code]:
		return FaultConfig, true
	case code == CodeIDMismatch:
		return FaultMalformed, true
	}
	return "", false
}

// WeChat's codes for "slow down".
var rateLimitCodes = map[string]bool{"FREQUENCY_LIMITED": true, "FREQ_LIMIT": true}

// WeChat's codes for "call again" (v3 SYSTEM_ERROR, v2 SYSTEMERROR and
// BIZERR_NEED_RETRY, and the return_msg texts of a busy v2 gateway).
var systemErrorCodes = map[string]bool{
	"SYSTEM_ERROR": true, CodeSystemError: true, "BIZERR_NEED_RETRY": true,
	"系统错误": true, "系统繁忙": true, "系统繁忙,请稍后再试": true, "系统超时": true,
}

// Codes that name a fault in our configuration or request, never a fact
// about the payment: v3 (SIGN_ERROR, …) and v2 (SIGNERROR, …), and
// CodeFail, a v2 return_code FAIL for another reason (parameters, ids).
var configCodes = map[string]bool{
	"SIGN_ERROR": true, "NO_AUTH": true, "PARAM_ERROR": true, "INVALID_REQUEST": true,
	"MCH_NOT_EXISTS": true, "APPID_MCHID_NOT_MATCH": true,
	CodeSignError: true, "NOAUTH": true, "APPID_NOT_EXIST": true, "MCHID_NOT_EXIST": true,
	"LACK_PARAMS": true, "XML_FORMAT_ERROR": true, "REQUIRE_POST_METHOD": true,
	"POST_DATA_EMPTY": true, "NOT_UTF8": true, CodeFail: true,
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// RetryAfter is the least wait before calling again after err: RateLimitWait
// after a rate limit, SlowFaultWait after a configuration fault, clock
// skew or an unknown key, and 0 (the caller's usual backoff) after any
// other fault or an error that is not one.
func RetryAfter(err error) time.Duration {
	switch kind, ok := Fault(err); {
	case !ok:
		return 0
	case kind == FaultRateLimited:
		return RateLimitWait
	case kind == FaultConfig || kind == FaultClockSkew || kind == FaultUnknownKey:
		return SlowFaultWait
	}
	return 0
}
