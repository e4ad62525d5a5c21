package apiv3

import (
	"bytes"
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/payflow/payflow/wechatpay"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/validators"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/jsapi"

	"github.com/payflow/payflow/payment"
)

// DefaultBaseURL is WeChat Pay's API host, which the SDK hard-codes.
const DefaultBaseURL = "https://api.mch.weixin.qq.com"

// maxResponse bounds the size of an API v3 answer we read.
const maxResponse = 1 << 20

// v3 error codes this package classifies (v3 codes have underscores).
const (
	codeV3OrderNotExist    = "ORDER_NOT_EXIST"
	codeV3SystemError      = "SYSTEM_ERROR"
	codeV3FrequencyLimited = "FREQUENCY_LIMITED"
)

// ClientConfig configures a Client.
type ClientConfig struct {
	BaseURL       string           // WECHATPAY_BASE_URL; DefaultBaseURL when empty
	MchID         string           // merchant id, sent as mchid
	AppID         string           // WECHATPAY_APPID: prepay bodies and the JSAPI paySign; only Prepay needs it
	MchCertSerial string           // WECHATPAY_MCH_CERT_SERIAL, sent as serial_no
	MchPrivateKey *rsa.PrivateKey  // from WECHATPAY_MCH_PRIVATE_KEY_FILE (utils.LoadPrivateKeyWithPath)
	Keys          *Keys            // verify WeChat's answers
	HTTP          *http.Client     // optional; a client with a 10 s timeout when nil
	Now           func() time.Time // optional clock for the answers' timestamp window; time.Now when nil
}

// Client calls WeChat Pay's API v3 through the official SDK (core.Client
// and services/payments/jsapi), sending every request to BaseURL instead of
// the SDK's hard-coded host. Requests are signed with the merchant key and
// every answer's signature is verified with Keys, error answers included
// (the SDK verifies 2xx answers only): an answer that is not WeChat's
// signed word is a *wechatpay.UnverifiedError, a fault, whatever its
// status and body say.
type Client struct {
	mchID string
	appID string
	api   jsapi.JsapiApiService
}

// NewClient checks cfg and builds the SDK client. It makes no call.
func NewClient(ctx context.Context, cfg ClientConfig) (*Client, error) {
	s, err := newSetup(cfg, "v3 client")
	if err != nil {
		return nil, err
	}
	client, err := s.verified(ctx, "v3 client", orderCallTimeout)
	if err != nil {
		return nil, err
	}
	return &Client{mchID: cfg.MchID, appID: cfg.AppID, api: jsapi.JsapiApiService{Client: client}}, nil
}

// QueryOrder asks WeChat for the trade of outTradeNo
// (GET /v3/pay/transactions/out-trade-no/{no}?mchid=…). trade_state
// USERPAYING is a trade in that state. Failures are:
//   - *wechatpay.APIError for signed answers: ORDER_NOT_EXIST (Code
//     ORDERNOTEXIST, so errors.Is(err, wechatpay.ErrOrderNotExist)); 202
//     (Code ACCEPTED: ask again), 5xx, 429, SYSTEM_ERROR, FREQUENCY_LIMITED,
//     401 SIGN_ERROR, 400 PARAM_ERROR, …; ID_MISMATCH for an answer about
//     another order or merchant;
//   - *wechatpay.UnverifiedError for an answer, of any status, without a
//     signature, with one that does not verify, by an unknown serial, or
//     with a timestamp more than five minutes from our clock;
//   - an error wrapping wechatpay.ErrBadAnswer for an answer that does not
//     parse, wechatpay.ErrMalformed for a bad out_trade_no (nothing sent);
//   - a plain wrapped network error.
//
// wechatpay.Fault tells the faults from WeChat's decisions.
func (c *Client) QueryOrder(ctx context.Context, outTradeNo string) (payment.Trade, error) {
	const op = "v3 orderquery"
	if !payment.ValidOutTradeNo(outTradeNo) {
		return payment.Trade{}, fmt.Errorf("wechatpay %s: invalid out_trade_no %q: %w", op, wechatpay.Truncate(outTradeNo, 40), wechatpay.ErrMalformed)
	}
	tx, result, err := c.api.QueryOrderByOutTradeNo(ctx, jsapi.QueryOrderByOutTradeNoRequest{
		OutTradeNo: core.String(outTradeNo),
		Mchid:      core.String(c.mchID),
	})
	status := 0
	if result != nil && result.Response != nil {
		status = result.Response.StatusCode
	}
	if status == http.StatusAccepted { // signed (the transport checked), but no transaction: ask again
		return payment.Trade{}, fmt.Errorf("query %s: %w", outTradeNo, accepted(op))
	}
	if err != nil {
		return payment.Trade{}, callError(op, "query", outTradeNo, result, err)
	}
	t, err := tradeOf(tx)
	if t.OutTradeNo != outTradeNo || t.MchID != c.mchID {
		return payment.Trade{}, &wechatpay.APIError{Op: op, HTTPStatus: status, Code: wechatpay.CodeIDMismatch, Retryable: true,
			Message: fmt.Sprintf("answer is about out_trade_no %q mchid %q", wechatpay.Truncate(t.OutTradeNo, 40), wechatpay.Truncate(t.MchID, 40))}
	}
	if err != nil {
		return payment.Trade{}, fmt.Errorf("wechatpay %s %s: answer: %w: %v", op, outTradeNo, wechatpay.ErrBadAnswer, err)
	}
	return t, nil
}

// accepted is a signed 202: WeChat took the call and asks for it again
// with the same parameters.
func accepted(op string) *wechatpay.APIError {
	return &wechatpay.APIError{Op: op, HTTPStatus: http.StatusAccepted, Code: wechatpay.CodeAccepted,
		Message: "accepted: call again with the same parameters", Retryable: true}
}

// apiError turns a non-2xx answer, whose signature the transport has
// verified, into a *wechatpay.APIError.
func apiError(op string, e *core.APIError) *wechatpay.APIError {
	code, msg := e.Code, e.Message
	if code == "" {
		code, msg = wechatpay.CodeHTTP, http.StatusText(e.StatusCode)
	}
	retry := e.StatusCode >= 500 || e.StatusCode == http.StatusTooManyRequests ||
		code == codeV3SystemError || code == codeV3FrequencyLimited || wechatpay.RetryableCode(code)
	if code == codeV3OrderNotExist || code == wechatpay.CodeOrderNotExist {
		code, retry = wechatpay.CodeOrderNotExist, false // the code errors.go matches for wechatpay.ErrOrderNotExist
	}
	return &wechatpay.APIError{Op: op, HTTPStatus: e.StatusCode, Code: wechatpay.Truncate(code, 64), Message: wechatpay.Truncate(msg, 256), Retryable: retry}
}

// validatorOption installs a response validator in the SDK client.
type validatorOption struct{ v auth.Validator }

func (o validatorOption) Apply(s *core.DialSettings) error {
	s.Validator = o.v
	return nil
}

// responseValidator is the SDK's response validator whose every failure
// (missing header, stale timestamp, unknown serial, bad signature) wraps
// wechatpay.ErrBadSignature, so that QueryOrder can tell it from a network error.
type responseValidator struct {
	inner *validators.WechatPayResponseValidator
}

func (v responseValidator) Validate(ctx context.Context, resp *http.Response) error {
	err := v.inner.Validate(ctx, resp)
	if err != nil && !errors.Is(err, wechatpay.ErrBadSignature) {
		err = fmt.Errorf("%w: %w", wechatpay.ErrBadSignature, err)
	}
	return err
}

func (v responseValidator) GetAcceptSerial(ctx context.Context) (string, error) {
	return v.inner.GetAcceptSerial(ctx)
}

// baseURLTransport sends each request to base instead of the SDK's host:
// it replaces scheme and host and prefixes base's path. The signature covers
// only path and query, so it stays valid (without the prefix). It reads
// every answer (at most maxResponse bytes) and verifies its signature,
// whatever the status: an answer that does not verify is returned as a
// *wechatpay.UnverifiedError, so that neither the SDK nor our code ever
// reads an unsigned ORDER_NOT_EXIST or a proxy's 403 page as WeChat's word.
type baseURLTransport struct {
	base *url.URL
	next http.RoundTripper
	keys *Keys
	now  func() time.Time
}

func (t *baseURLTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.URL.Scheme, r.URL.Host, r.Host = t.base.Scheme, t.base.Host, ""
	if prefix := strings.TrimRight(t.base.Path, "/"); prefix != "" {
		r.URL.Path = prefix + req.URL.Path
		if req.URL.RawPath != "" {
			r.URL.RawPath = strings.TrimRight(t.base.EscapedPath(), "/") + req.URL.RawPath
		}
	}
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(&limitedBody{rc: resp.Body, left: maxResponse})
	_ = resp.Body.Close()
	if err != nil {
		if errors.Is(err, errTooLarge) {
			err = fmt.Errorf("%w: %v", wechatpay.ErrBadAnswer, err)
		}
		return nil, err
	}
	if err := verifyAnswer(t.keys, t.now(), resp.Header, body); err != nil {
		return nil, &wechatpay.UnverifiedError{Op: "v3 " + req.Method + " " + req.URL.Path, HTTPStatus: resp.StatusCode, Err: err}
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// verifyAnswer checks an answer's Wechatpay-* headers and signature over
// "timestamp\nnonce\nbody\n", as the SDK's validator does for 2xx answers,
// with errors that say which check failed: wechatpay.ErrMissingSign (no
// signature headers), wechatpay.ErrStaleTimestamp (five minutes or more from
// now: our clock or a replay), wechatpay.ErrUnknownKey (a serial we do not
// hold), wechatpay.ErrBadSignature.
func verifyAnswer(keys *Keys, now time.Time, h http.Header, body []byte) error {
	serial, sig := strings.TrimSpace(h.Get(headerV3Serial)), strings.TrimSpace(h.Get(headerV3Signature))
	ts, nonce := strings.TrimSpace(h.Get(headerV3Timestamp)), strings.TrimSpace(h.Get(headerV3Nonce))
	if serial == "" || sig == "" || ts == "" || nonce == "" {
		return fmt.Errorf("%w: the answer carries no Wechatpay-Serial, -Signature, -Timestamp and -Nonce", wechatpay.ErrMissingSign)
	}
	if st := strings.TrimSpace(h.Get(headerV3SignatureType)); st != "" && st != SignatureType {
		return fmt.Errorf("%w: %s %q", wechatpay.ErrBadSignature, headerV3SignatureType, wechatpay.Truncate(st, 64))
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: Wechatpay-Timestamp %q", wechatpay.ErrBadSignature, wechatpay.Truncate(ts, 32))
	}
	// The SDK's rule, in whole seconds: five minutes or more away fails.
	if d := now.Unix() - sec; d >= int64(Window/time.Second) || -d >= int64(Window/time.Second) {
		return fmt.Errorf("%w: Wechatpay-Timestamp %d is %ds from our clock", wechatpay.ErrStaleTimestamp, sec, d)
	}
	if !keys.Has(serial) {
		return fmt.Errorf("%w: Wechatpay-Serial %q", wechatpay.ErrUnknownKey, wechatpay.Truncate(serial, 64))
	}
	if err := keys.Verifier().Verify(context.Background(), serial, NotifyMessage(ts, nonce, body), sig); err != nil {
		if !errors.Is(err, wechatpay.ErrBadSignature) {
			err = fmt.Errorf("%w: %v", wechatpay.ErrBadSignature, err)
		}
		return err
	}
	return nil
}

var errTooLarge = fmt.Errorf("wechatpay: answer larger than %d bytes", maxResponse)

// limitedBody fails a read past its limit, and closes the body then.
type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		_ = b.rc.Close()
		return 0, errTooLarge
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// Compile-time checks against the SDK interfaces.
var (
	_ auth.Validator = responseValidator{}
	_ auth.Verifier  = keysVerifier{}
)
