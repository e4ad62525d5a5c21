package apiv3

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/payflow/payflow/wechatpay"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/validators"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
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
	BaseURL       string          // WECHATPAY_BASE_URL; DefaultBaseURL when empty
	MchID         string          // merchant id, sent as mchid
	AppID         string          // WECHATPAY_APPID: prepay bodies and the JSAPI paySign; only Prepay needs it
	MchCertSerial string          // WECHATPAY_MCH_CERT_SERIAL, sent as serial_no
	MchPrivateKey *rsa.PrivateKey // from WECHATPAY_MCH_PRIVATE_KEY_FILE (utils.LoadPrivateKeyWithPath)
	Keys          *Keys           // verify WeChat's answers
	HTTP          *http.Client    // optional; a client with a 10 s timeout when nil
}

// Client calls WeChat Pay's API v3 through the official SDK (core.Client
// and services/payments/jsapi), sending every request to BaseURL instead of
// the SDK's hard-coded host. Requests are signed with the merchant key and
// every answer's signature is verified with Keys.
type Client struct {
	mchID string
	appID string
	api   jsapi.JsapiApiService
}

// NewClient checks cfg and builds the SDK client. It makes no call.
func NewClient(ctx context.Context, cfg ClientConfig) (*Client, error) {
	switch {
	case cfg.MchID == "":
		return nil, errors.New("wechatpay: v3 client: no mchid")
	case cfg.MchCertSerial == "":
		return nil, errors.New("wechatpay: v3 client: no merchant certificate serial")
	case cfg.MchPrivateKey == nil:
		return nil, errors.New("wechatpay: v3 client: no merchant private key")
	case cfg.Keys == nil:
		return nil, errors.New("wechatpay: v3 client: no WeChat Pay keys to verify answers")
	}
	raw := cfg.BaseURL
	if raw == "" {
		raw = DefaultBaseURL
	}
	base, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("wechatpay: v3 client: base URL does not parse")
	}
	if (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" ||
		base.User != nil || base.RawQuery != "" || base.Fragment != "" {
		return nil, fmt.Errorf("wechatpay: v3 client: base URL %q is not http(s)://host[/path]", wechatpay.Truncate(base.Redacted(), 100))
	}
	hc := http.Client{Timeout: 10 * time.Second}
	if cfg.HTTP != nil {
		hc = *cfg.HTTP // a copy: the caller's client keeps its transport
	}
	next := hc.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	hc.Transport = &baseURLTransport{base: base, next: next}

	client, err := core.NewClient(ctx,
		option.WithMerchantCredential(cfg.MchID, cfg.MchCertSerial, cfg.MchPrivateKey),
		validatorOption{responseValidator{validators.NewWechatPayResponseValidator(cfg.Keys.Verifier())}},
		option.WithHTTPClient(&hc),
	)
	if err != nil {
		return nil, fmt.Errorf("wechatpay: v3 client: %w", err)
	}
	return &Client{mchID: cfg.MchID, appID: cfg.AppID, api: jsapi.JsapiApiService{Client: client}}, nil
}

// QueryOrder asks WeChat for the trade of outTradeNo
// (GET /v3/pay/transactions/out-trade-no/{no}?mchid=…). A 202 answer, or
// trade_state USERPAYING, is a trade in state USERPAYING, not an error.
// Failures are:
//   - *wechatpay.APIError for answers WeChat gave: ORDER_NOT_EXIST (Code ORDERNOTEXIST,
//     so errors.Is(err, wechatpay.ErrOrderNotExist)); 5xx, 429, SYSTEM_ERROR and
//     FREQUENCY_LIMITED retryable; anything else (401 SIGN_ERROR, 400
//     PARAM_ERROR, 403, …) not; ID_MISMATCH for an answer about another
//     order or merchant;
//   - an error wrapping wechatpay.ErrBadSignature when a 2xx answer's signature,
//     timestamp or serial does not check out;
//   - an error wrapping wechatpay.ErrMalformed for a bad out_trade_no or answer;
//   - a plain wrapped network error (retryable).
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
	var sdkErr *core.APIError
	switch {
	case err == nil:
	case errors.As(err, &sdkErr):
		return payment.Trade{}, fmt.Errorf("query %s: %w", outTradeNo, apiError(op, sdkErr))
	case errors.Is(err, wechatpay.ErrBadSignature):
		return payment.Trade{}, fmt.Errorf("wechatpay %s %s: answer: %w", op, outTradeNo, err)
	case status == http.StatusAccepted: // verified, but the body is no transaction
	case status != 0:
		return payment.Trade{}, fmt.Errorf("wechatpay %s %s: answer: %w: %v", op, outTradeNo, wechatpay.ErrMalformed, err)
	default:
		return payment.Trade{}, fmt.Errorf("wechatpay %s %s: %w", op, outTradeNo, err)
	}
	if status == http.StatusAccepted { // the payer is still entering a password
		return payment.Trade{OutTradeNo: outTradeNo, TradeState: payment.TradeUserPaying, Currency: payment.DefaultCurrency}, nil
	}
	t, err := tradeOf(tx)
	if t.OutTradeNo != outTradeNo || t.MchID != c.mchID {
		return payment.Trade{}, &wechatpay.APIError{Op: op, HTTPStatus: status, Code: wechatpay.CodeIDMismatch,
			Message: fmt.Sprintf("answer is about out_trade_no %q mchid %q", wechatpay.Truncate(t.OutTradeNo, 40), wechatpay.Truncate(t.MchID, 40))}
	}
	if err != nil {
		return payment.Trade{}, fmt.Errorf("wechatpay %s %s: answer: %w: %v", op, outTradeNo, wechatpay.ErrMalformed, err)
	}
	return t, nil
}

// apiError classifies a non-2xx answer, which the SDK does not verify.
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
// only path and query, so it stays valid (without the prefix). Answers are
// cut off at maxResponse bytes with an error.
type baseURLTransport struct {
	base *url.URL
	next http.RoundTripper
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
	resp.Body = &limitedBody{rc: resp.Body, left: maxResponse}
	return resp, nil
}

// limitedBody fails a read past its limit, and closes the body then.
type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, fmt.Errorf("wechatpay: answer larger than %d bytes", maxResponse)
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		_ = b.rc.Close()
		return 0, fmt.Errorf("wechatpay: answer larger than %d bytes", maxResponse)
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// Compile-time checks against the SDK interfaces.
var (
	_ auth.Validator = responseValidator{}
	_ auth.Verifier  = keysVerifier{}
)
