package wechatpay_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/payflow/payflow/wechatpay"
)

// TestFault is the table of every error class the clients return and the
// decision it must lead to: a fault (kind; retried, counted, never
// deciding anything) or WeChat's signed word (decisive), or a request we
// never sent.
func TestFault(t *testing.T) {
	api := func(status int, code string) error {
		return fmt.Errorf("query PF1: %w", &wechatpay.APIError{Op: "v3 orderquery", HTTPStatus: status, Code: code})
	}
	unverified := func(status int, err error) error {
		// As the v3 transport returns it, through net/http's *url.Error.
		return &url.Error{Op: "Get", URL: "https://api.mch.weixin.qq.com/v3/…",
			Err: &wechatpay.UnverifiedError{Op: "v3 orderquery", HTTPStatus: status, Err: err}}
	}
	const decisive = ""
	tests := []struct {
		name string
		err  error
		kind string // decisive ("") or a fault kind
		wait time.Duration
	}{
		// No answer.
		{"connection refused", &url.Error{Op: "Post", URL: "http://127.0.0.1:1", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}, wechatpay.FaultNetwork, 0},
		{"connection reset", fmt.Errorf("read: %w", syscall.ECONNRESET), wechatpay.FaultNetwork, 0},
		{"deadline", fmt.Errorf("wechatpay orderquery: %w", context.DeadlineExceeded), wechatpay.FaultTimeout, 0},
		{"client timeout", &url.Error{Op: "Get", URL: "x", Err: timeoutErr{}}, wechatpay.FaultTimeout, 0},

		// Answers that are not WeChat's signed word.
		{"proxy 403 page (v3, unsigned)", unverified(403, wechatpay.ErrMissingSign), wechatpay.FaultUnsigned, 0},
		{"proxy 404 page (v3, unsigned)", unverified(404, wechatpay.ErrMissingSign), wechatpay.FaultUnsigned, 0},
		{"unsigned ORDER_NOT_EXIST (v3)", unverified(404, wechatpay.ErrMissingSign), wechatpay.FaultUnsigned, 0},
		{"gateway 503 (unsigned)", unverified(503, wechatpay.ErrMissingSign), wechatpay.FaultHTTP5xx, 0},
		{"unsigned 429", unverified(429, wechatpay.ErrMissingSign), wechatpay.FaultRateLimited, wechatpay.RateLimitWait},
		{"badly signed 200", unverified(200, wechatpay.ErrBadSignature), wechatpay.FaultBadSignature, 0},
		{"badly signed ORDER_CLOSED", unverified(400, wechatpay.ErrBadSignature), wechatpay.FaultBadSignature, 0},
		{"signed by an unknown serial", unverified(200, fmt.Errorf("%w: PUB_KEY_ID_9", wechatpay.ErrUnknownKey)), wechatpay.FaultUnknownKey, wechatpay.SlowFaultWait},
		{"unknown serial behind bad signature", fmt.Errorf("%w: %w", wechatpay.ErrBadSignature, wechatpay.ErrUnknownKey), wechatpay.FaultUnknownKey, wechatpay.SlowFaultWait},
		{"clock skew", unverified(200, wechatpay.ErrStaleTimestamp), wechatpay.FaultClockSkew, wechatpay.SlowFaultWait},
		{"v2 answer without sign", &wechatpay.UnverifiedError{Op: "orderquery", HTTPStatus: 200, Err: wechatpay.ErrMissingSign}, wechatpay.FaultUnsigned, 0},
		{"v2 answer with a bad sign", &wechatpay.UnverifiedError{Op: "orderquery", HTTPStatus: 200, Err: wechatpay.ErrBadSignature}, wechatpay.FaultBadSignature, 0},
		{"v2 answer with sign_type SHA1", &wechatpay.UnverifiedError{Op: "orderquery", HTTPStatus: 200, Err: wechatpay.ErrUnsupportedSignType}, wechatpay.FaultBadSignature, 0},
		{"v2 HTTP 404 (a proxy)", api(404, wechatpay.CodeHTTP), wechatpay.FaultUnsigned, 0},
		{"v2 HTTP 502", api(502, wechatpay.CodeHTTP), wechatpay.FaultHTTP5xx, 0},
		{"v2 HTTP 429", api(429, wechatpay.CodeHTTP), wechatpay.FaultRateLimited, wechatpay.RateLimitWait},
		{"v2 HTTP 202", api(202, wechatpay.CodeHTTP), wechatpay.FaultAccepted, 0},

		// WeChat asking to call again.
		{"v3 429 FREQUENCY_LIMITED", api(429, "FREQUENCY_LIMITED"), wechatpay.FaultRateLimited, wechatpay.RateLimitWait},
		{"v3 403 FREQUENCY_LIMITED (close while paying)", api(403, "FREQUENCY_LIMITED"), wechatpay.FaultRateLimited, wechatpay.RateLimitWait},
		{"v2 FREQUENCY_LIMITED", api(200, "FREQUENCY_LIMITED"), wechatpay.FaultRateLimited, wechatpay.RateLimitWait},
		{"v3 202 accepted", api(202, wechatpay.CodeAccepted), wechatpay.FaultAccepted, 0},
		{"v3 500 SYSTEM_ERROR", api(500, "SYSTEM_ERROR"), wechatpay.FaultSystemError, 0},
		{"v3 502 signed, no code", api(502, "BAD_GATEWAY"), wechatpay.FaultHTTP5xx, 0},
		{"v2 SYSTEMERROR (signed or not)", api(200, "SYSTEMERROR"), wechatpay.FaultSystemError, 0},
		{"v2 BIZERR_NEED_RETRY", api(200, "BIZERR_NEED_RETRY"), wechatpay.FaultSystemError, 0},
		{"v2 return_code FAIL 系统繁忙", api(200, wechatpay.CodeSystemError), wechatpay.FaultSystemError, 0},

		// Our configuration, in WeChat's signed words.
		{"v3 401 SIGN_ERROR", api(401, "SIGN_ERROR"), wechatpay.FaultConfig, wechatpay.SlowFaultWait},
		{"v3 403 NO_AUTH", api(403, "NO_AUTH"), wechatpay.FaultConfig, wechatpay.SlowFaultWait},
		{"v3 400 PARAM_ERROR", api(400, "PARAM_ERROR"), wechatpay.FaultConfig, wechatpay.SlowFaultWait},
		{"v3 400 INVALID_REQUEST", api(400, "INVALID_REQUEST"), wechatpay.FaultConfig, wechatpay.SlowFaultWait},
		{"v3 400 MCH_NOT_EXISTS", api(400, "MCH_NOT_EXISTS"), wechatpay.FaultConfig, wechatpay.SlowFaultWait},
		{"v3 400 APPID_MCHID_NOT_MATCH", api(400, "APPID_MCHID_NOT_MATCH"), wechatpay.FaultConfig, wechatpay.SlowFaultWait},
		{"v2 return_code FAIL 签名错误", api(200, wechatpay.CodeSignError), wechatpay.FaultConfig, wechatpay.SlowFaultWait},
		{"v2 return_code FAIL, another reason", api(200, wechatpay.CodeFail), wechatpay.FaultConfig, wechatpay.SlowFaultWait},
		{"v2 NOAUTH", api(200, "NOAUTH"), wechatpay.FaultConfig, wechatpay.SlowFaultWait},
		{"v2 APPID_NOT_EXIST", api(200, "APPID_NOT_EXIST"), wechatpay.FaultConfig, wechatpay.SlowFaultWait},
		{"no API key", fmt.Errorf("sign request: %w", wechatpay.ErrConfig), wechatpay.FaultConfig, wechatpay.SlowFaultWait},

		// Answers that do not fit the question.
		{"answer about another order", api(200, wechatpay.CodeIDMismatch), wechatpay.FaultMalformed, 0},
		{"answer that does not parse", fmt.Errorf("answer: %w", wechatpay.ErrBadAnswer), wechatpay.FaultMalformed, 0},

		// WeChat's decisive signed answers.
		{"v3 404 ORDER_NOT_EXIST", api(404, wechatpay.CodeOrderNotExist), decisive, 0},
		{"v2 ORDERNOTEXIST", api(200, wechatpay.CodeOrderNotExist), decisive, 0},
		{"v3 ORDERPAID", api(400, "ORDERPAID"), decisive, 0},
		{"v3 ORDER_PAID", api(400, "ORDER_PAID"), decisive, 0},
		{"v3 ORDER_CLOSED", api(400, "ORDER_CLOSED"), decisive, 0},
		{"v2 ORDERCLOSED", api(200, "ORDERCLOSED"), decisive, 0},
		{"v3 OUT_TRADE_NO_USED", api(400, "OUT_TRADE_NO_USED"), decisive, 0},
		{"v2 OUT_TRADE_NO_USED", api(200, "OUT_TRADE_NO_USED"), decisive, 0},
		{"a signed refusal not listed", api(403, "RULE_LIMIT"), decisive, 0},

		// Nothing sent.
		{"invalid out_trade_no", fmt.Errorf("wechatpay orderquery: invalid out_trade_no: %w", wechatpay.ErrMalformed), decisive, 0},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, ok := wechatpay.Fault(tt.err)
			if kind != tt.kind || ok != (tt.kind != decisive) {
				t.Fatalf("Fault = %q, %v; want %q", kind, ok, tt.kind)
			}
			if got := wechatpay.Retryable(tt.err); got != ok {
				t.Errorf("Retryable = %v, want %v (every fault is retryable, no decision is)", got, ok)
			}
			if got := wechatpay.RetryAfter(tt.err); got != tt.wait {
				t.Errorf("RetryAfter = %s, want %s", got, tt.wait)
			}
			if ok && !slices.Contains(wechatpay.FaultKinds(), kind) {
				t.Errorf("kind %q is not in FaultKinds", kind)
			}
			// A fault never passes for one of the decisions callers act on.
			for _, d := range []error{wechatpay.ErrOrderNotExist, wechatpay.ErrOrderPaid, wechatpay.ErrOrderClosed} {
				if ok && errors.Is(tt.err, d) {
					t.Errorf("fault matches %v", d)
				}
			}
		})
		seen[tt.kind] = true
	}
	for _, k := range wechatpay.FaultKinds() {
		if !seen[k] {
			t.Errorf("no case for fault kind %q", k)
		}
	}
	if kind, ok := wechatpay.Fault(nil); ok || kind != "" || wechatpay.Retryable(nil) || wechatpay.RetryAfter(nil) != 0 {
		t.Error("nil is a fault")
	}
	// A client's advice makes a decisive answer retryable, never a fault.
	advised := &wechatpay.APIError{HTTPStatus: 403, Code: "NOT_ENOUGH", Retryable: true}
	if _, ok := wechatpay.Fault(advised); ok || !wechatpay.Retryable(advised) {
		t.Error("NOT_ENOUGH marked retryable")
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestUnverifiedError(t *testing.T) {
	err := error(&wechatpay.UnverifiedError{Op: "v3 close", HTTPStatus: 404, Err: wechatpay.ErrMissingSign})
	if !errors.Is(err, wechatpay.ErrMissingSign) || errors.Is(err, wechatpay.ErrOrderNotExist) {
		t.Fatal(err)
	}
	if got := err.Error(); got != "wechatpay v3 close: HTTP 404 answer not verified: wechatpay: missing sign" {
		t.Fatal(got)
	}
	if !errors.Is(wechatpay.ErrBadAnswer, wechatpay.ErrMalformed) || errors.Is(wechatpay.ErrMalformed, wechatpay.ErrBadAnswer) {
		t.Fatal("ErrBadAnswer must match ErrMalformed, not the reverse")
	}
}
