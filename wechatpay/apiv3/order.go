package apiv3

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/payflow/payflow/wechatpay"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/jsapi"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/native"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/payflow/payflow/payment"
)

// maxDescription is WeChat's limit on a v3 prepay's description
// (string[1,127]), counted in characters as the api package does.
const maxDescription = 127

// JSAPISignType is the signType of v3 wx.requestPayment parameters.
const JSAPISignType = "RSA"

// Prepay creates the order at WeChat (POST /v3/pay/transactions/jsapi or
// /native, through the SDK's services) and returns the code_url of a NATIVE
// order, or the prepay_id and signed wx.requestPayment parameters of a
// JSAPI order: signType RSA, paySign the base64 SHA256withRSA signature
// with the merchant key of "appId\ntimeStamp\nnonceStr\npackage\n". It needs
// ClientConfig.AppID. Bad requests (out_trade_no, amount, trade type,
// JSAPI without openid, no notify_url, a description over 127 characters
// or not UTF-8 text) fail before any call with an error wrapping
// wechatpay.ErrMalformed. Failures are classified as for QueryOrder: ORDERPAID and
// ORDER_CLOSED match wechatpay.ErrOrderPaid and wechatpay.ErrOrderClosed;
// OUT_TRADE_NO_USED is WeChat's refusal; 202, 5xx, 429, SYSTEM_ERROR,
// FREQUENCY_LIMITED, SIGN_ERROR, PARAM_ERROR and unverified answers are
// faults (see wechatpay.Fault).
func (c *Client) Prepay(ctx context.Context, req payment.PrepayRequest) (payment.Prepay, error) {
	op := "v3 prepay"
	if c.appID == "" {
		return payment.Prepay{}, fmt.Errorf("wechatpay %s: the client has no appid (ClientConfig.AppID)", op)
	}
	if err := wechatpay.CheckPrepayRequest(req, maxDescription, true); err != nil {
		return payment.Prepay{}, fmt.Errorf("wechatpay %s: %w", op, err)
	}
	currency := req.Currency
	if currency == "" {
		currency = payment.DefaultCurrency
	}
	var expire *time.Time
	if !req.TimeExpire.IsZero() {
		t := req.TimeExpire.In(wechatpay.Beijing).Truncate(time.Second) // the SDK writes RFC 3339 in this zone: +08:00
		expire = &t
	}

	if req.TradeType == payment.TradeTypeNative {
		op = "v3 native prepay"
		svc := native.NativeApiService{Client: c.api.Client}
		resp, result, err := svc.Prepay(ctx, native.PrepayRequest{
			Appid:       core.String(c.appID),
			Mchid:       core.String(c.mchID),
			Description: core.String(req.Description),
			OutTradeNo:  core.String(req.OutTradeNo),
			TimeExpire:  expire,
			NotifyUrl:   core.String(req.NotifyURL),
			Amount:      &native.Amount{Total: core.Int64(req.AmountFen), Currency: core.String(currency)},
		})
		if isAccepted(result) {
			return payment.Prepay{}, fmt.Errorf("prepay %s: %w", req.OutTradeNo, accepted(op))
		}
		if err != nil {
			return payment.Prepay{}, callError(op, "prepay", req.OutTradeNo, result, err)
		}
		if resp.CodeUrl == nil || *resp.CodeUrl == "" {
			return payment.Prepay{}, fmt.Errorf("wechatpay %s %s: answer lacks code_url: %w", op, req.OutTradeNo, wechatpay.ErrBadAnswer)
		}
		return payment.Prepay{CodeURL: *resp.CodeUrl}, nil
	}

	op = "v3 jsapi prepay"
	resp, result, err := c.api.Prepay(ctx, jsapi.PrepayRequest{
		Appid:       core.String(c.appID),
		Mchid:       core.String(c.mchID),
		Description: core.String(req.Description),
		OutTradeNo:  core.String(req.OutTradeNo),
		TimeExpire:  expire,
		NotifyUrl:   core.String(req.NotifyURL),
		Amount:      &jsapi.Amount{Total: core.Int64(req.AmountFen), Currency: core.String(currency)},
		Payer:       &jsapi.Payer{Openid: core.String(req.OpenID)},
	})
	if isAccepted(result) {
		return payment.Prepay{}, fmt.Errorf("prepay %s: %w", req.OutTradeNo, accepted(op))
	}
	if err != nil {
		return payment.Prepay{}, callError(op, "prepay", req.OutTradeNo, result, err)
	}
	if resp.PrepayId == nil || *resp.PrepayId == "" {
		return payment.Prepay{}, fmt.Errorf("wechatpay %s %s: answer lacks prepay_id: %w", op, req.OutTradeNo, wechatpay.ErrBadAnswer)
	}
	params, err := c.jsapiParams(ctx, *resp.PrepayId, time.Now())
	if err != nil {
		return payment.Prepay{}, fmt.Errorf("wechatpay %s %s: %w", op, req.OutTradeNo, err)
	}
	return payment.Prepay{PrepayID: *resp.PrepayId, JSAPI: params}, nil
}

// jsapiParams builds wx.requestPayment's parameters and signs them with the
// merchant key through the SDK client's signer.
func (c *Client) jsapiParams(ctx context.Context, prepayID string, now time.Time) (*payment.JSAPIParams, error) {
	nonce, err := utils.GenerateNonce() // 32 random characters
	if err != nil {
		return nil, fmt.Errorf("JSAPI nonce: %w", err)
	}
	p := &payment.JSAPIParams{
		AppID:     c.appID,
		TimeStamp: strconv.FormatInt(now.Unix(), 10),
		NonceStr:  nonce,
		Package:   "prepay_id=" + prepayID,
		SignType:  JSAPISignType,
	}
	sig, err := c.api.Client.Sign(ctx, JSAPIMessage(*p))
	if err != nil {
		return nil, fmt.Errorf("sign JSAPI parameters: %w", err)
	}
	p.PaySign = sig.Signature
	return p, nil
}

// JSAPIMessage is the string a v3 JSAPI paySign covers:
// "appId\ntimeStamp\nnonceStr\npackage\n".
func JSAPIMessage(p payment.JSAPIParams) string {
	return p.AppID + "\n" + p.TimeStamp + "\n" + p.NonceStr + "\n" + p.Package + "\n"
}

// VerifyJSAPIPaySign checks the paySign of v3 wx.requestPayment
// parameters: signType RSA and a base64 SHA256withRSA (PKCS #1 v1.5)
// signature of JSAPIMessage(p) under pub, the merchant's public key.
// Errors wrap wechatpay.ErrMissingSign, wechatpay.ErrUnsupportedSignType or wechatpay.ErrBadSignature.
func VerifyJSAPIPaySign(pub *rsa.PublicKey, p payment.JSAPIParams) error {
	if pub == nil {
		return errors.New("wechatpay: verify JSAPI paySign: no public key")
	}
	if p.PaySign == "" {
		return wechatpay.ErrMissingSign
	}
	if p.SignType != JSAPISignType {
		return fmt.Errorf("%w: %q", wechatpay.ErrUnsupportedSignType, wechatpay.Truncate(p.SignType, 32))
	}
	sig, err := base64.StdEncoding.DecodeString(p.PaySign)
	if err != nil {
		return fmt.Errorf("%w: paySign is not base64", wechatpay.ErrBadSignature)
	}
	h := sha256.Sum256([]byte(JSAPIMessage(p)))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], sig); err != nil {
		return wechatpay.ErrBadSignature
	}
	return nil
}

// CloseOrder closes the unpaid order outTradeNo at WeChat (POST
// /v3/pay/transactions/out-trade-no/{no}/close with {"mchid":…}); WeChat
// answers 204. An order already closed (ORDER_CLOSED) gives nil too.
// A 202 is not closed yet: an *wechatpay.APIError with Code ACCEPTED.
// Failures are classified as for QueryOrder: ORDERPAID matches
// wechatpay.ErrOrderPaid, ORDER_NOT_EXIST wechatpay.ErrOrderNotExist, and
// only signed answers decide anything (see wechatpay.Fault).
func (c *Client) CloseOrder(ctx context.Context, outTradeNo string) error {
	const op = "v3 closeorder"
	if !payment.ValidOutTradeNo(outTradeNo) {
		return fmt.Errorf("wechatpay %s: invalid out_trade_no %q: %w", op, wechatpay.Truncate(outTradeNo, 40), wechatpay.ErrMalformed)
	}
	result, err := c.api.CloseOrder(ctx, jsapi.CloseOrderRequest{
		OutTradeNo: core.String(outTradeNo),
		Mchid:      core.String(c.mchID),
	})
	if isAccepted(result) { // not 204: WeChat has not closed it yet
		return fmt.Errorf("close %s: %w", outTradeNo, accepted(op))
	}
	if err != nil {
		err = callError(op, "close", outTradeNo, result, err)
		if errors.Is(err, wechatpay.ErrOrderClosed) {
			return nil
		}
		return err
	}
	return nil
}

// isAccepted reports a 202 answer (verified by the transport when it got
// this far).
func isAccepted(result *core.APIResult) bool {
	return result != nil && result.Response != nil && result.Response.StatusCode == http.StatusAccepted
}

// callError classifies an SDK call's error: a signed non-2xx answer as a
// *wechatpay.APIError (wrapped with "verb outTradeNo: "), an answer the
// transport could not verify as the *wechatpay.UnverifiedError it made, a
// verified 2xx answer that the SDK still refused (its own validator) as
// wechatpay.ErrBadSignature, one that does not parse as wechatpay.ErrBadAnswer,
// anything else (no answer) as a plain wrapped network error.
func callError(op, verb, outTradeNo string, result *core.APIResult, err error) error {
	status := 0
	if result != nil && result.Response != nil {
		status = result.Response.StatusCode
	}
	var sdkErr *core.APIError
	var unverified *wechatpay.UnverifiedError
	switch {
	case errors.As(err, &unverified):
		unverified.Op = op
		return fmt.Errorf("%s %s: %w", verb, outTradeNo, unverified)
	case errors.As(err, &sdkErr):
		return fmt.Errorf("%s %s: %w", verb, outTradeNo, apiError(op, sdkErr))
	case errors.Is(err, wechatpay.ErrBadSignature), errors.Is(err, wechatpay.ErrBadAnswer):
		return fmt.Errorf("wechatpay %s %s: answer: %w", op, outTradeNo, err)
	case status != 0:
		return fmt.Errorf("wechatpay %s %s: answer (HTTP %d): %w: %v", op, outTradeNo, status, wechatpay.ErrBadAnswer, err)
	default:
		return fmt.Errorf("wechatpay %s %s: %w", op, outTradeNo, err)
	}
}
