package wechatpay

import "errors"

// Fault reports whether err says nothing about the payment: the wire, a
// 5xx or 429, an answer that is not WeChat's signed word, our own keys,
// clock or configuration. Such an error is retried and never decides
// anything. kind is a short label for metrics. WeChat's decisive signed
// answers (no such order, already paid, already closed) are not faults.
func Fault(err error) (kind string, ok bool) {
	if err == nil {
		return "", false
	}
	var ae *APIError
	switch {
	case errors.Is(err, ErrOrderNotExist), errors.Is(err, ErrOrderPaid), errors.Is(err, ErrOrderClosed):
		return "", false
	case errors.As(err, &ae) && ae.Retryable:
		return "server_error", true
	case errors.As(err, &ae):
		return "config", true
	case errors.Is(err, ErrBadSignature):
		return "bad_signature", true
	case errors.Is(err, ErrMalformed):
		return "malformed", true
	}
	return "network", true
}
