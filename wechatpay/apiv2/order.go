package apiv2

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/payflow/payflow/wechatpay"

	"github.com/payflow/payflow/payment"
)

// maxBody is WeChat's limit on a v2 unified order's body, in bytes.
const maxBody = 128

// defaultClientIP is spbill_create_ip when the request names no payer IP
// (WeChat wants one; for NATIVE it is the merchant's server).
const defaultClientIP = "127.0.0.1"

// Prepay creates the order at WeChat (POST /pay/unifiedorder) and returns
// the prepay_id, plus the code_url of a NATIVE order or the signed
// wx.requestPayment parameters of a JSAPI order (signType the client's
// SignType, paySign Sign over appId, timeStamp, nonceStr, package and
// signType with the API key). Bad requests (out_trade_no, amount, trade
// type, JSAPI without openid, no notify_url, a body over 128 bytes or not
// UTF-8 text, a bad client IP) fail before any call with an error wrapping
// wechatpay.ErrMalformed. WeChat's refusals are *wechatpay.APIError values: ORDERPAID and
// ORDERCLOSED match wechatpay.ErrOrderPaid and wechatpay.ErrOrderClosed; OUT_TRADE_NO_USED and
// other codes are not retryable, SYSTEMERROR is; see wechatpay.Retryable.
func (c *Client) Prepay(ctx context.Context, req payment.PrepayRequest) (payment.Prepay, error) {
	const op = "unifiedorder"
	if err := wechatpay.CheckPrepayRequest(req, maxBody, false); err != nil {
		return payment.Prepay{}, fmt.Errorf("wechatpay %s: %w", op, err)
	}
	currency := req.Currency
	if currency == "" {
		currency = payment.DefaultCurrency
	}
	ip := req.ClientIP
	if ip == "" {
		ip = defaultClientIP
	}
	fields := map[string]string{
		"body":             req.Description,
		"out_trade_no":     req.OutTradeNo,
		"total_fee":        strconv.FormatInt(req.AmountFen, 10),
		"fee_type":         currency,
		"spbill_create_ip": ip,
		"notify_url":       req.NotifyURL,
		"trade_type":       req.TradeType,
	}
	switch req.TradeType {
	case payment.TradeTypeJSAPI:
		fields["openid"] = req.OpenID
	case payment.TradeTypeNative:
		fields["product_id"] = req.OutTradeNo
	}
	if !req.TimeExpire.IsZero() {
		fields["time_expire"] = FormatTime(req.TimeExpire)
	}

	resp, err := c.call(ctx, op, "/pay/unifiedorder", fields)
	if err != nil {
		return payment.Prepay{}, fmt.Errorf("prepay %s: %w", req.OutTradeNo, err)
	}
	if tt := resp["trade_type"]; tt != "" && tt != req.TradeType {
		return payment.Prepay{}, fmt.Errorf("wechatpay %s %s: answer has trade_type %q: %w", op, req.OutTradeNo, wechatpay.Truncate(tt, 16), wechatpay.ErrBadAnswer)
	}
	p := payment.Prepay{PrepayID: resp["prepay_id"], CodeURL: resp["code_url"]}
	if p.PrepayID == "" {
		return payment.Prepay{}, fmt.Errorf("wechatpay %s %s: answer lacks prepay_id: %w", op, req.OutTradeNo, wechatpay.ErrBadAnswer)
	}
	if req.TradeType == payment.TradeTypeNative {
		if p.CodeURL == "" {
			return payment.Prepay{}, fmt.Errorf("wechatpay %s %s: answer lacks code_url: %w", op, req.OutTradeNo, wechatpay.ErrBadAnswer)
		}
		return p, nil
	}
	p.CodeURL = ""
	if p.JSAPI, err = c.jsapiParams(p.PrepayID, time.Now()); err != nil {
		return payment.Prepay{}, fmt.Errorf("wechatpay %s %s: %w", op, req.OutTradeNo, err)
	}
	return p, nil
}

// jsapiParams builds and signs wx.requestPayment's parameters (the v2 rule:
// Sign over the five fields with the API key and the client's SignType).
func (c *Client) jsapiParams(prepayID string, now time.Time) (*payment.JSAPIParams, error) {
	signType := c.signType()
	p := &payment.JSAPIParams{
		AppID:     c.AppID,
		TimeStamp: strconv.FormatInt(now.Unix(), 10),
		NonceStr:  c.nonce(),
		Package:   "prepay_id=" + prepayID,
		SignType:  signType,
	}
	sign, err := Sign(jsapiV2Fields(*p), c.APIKey.Reveal(), signType)
	if err != nil {
		return nil, fmt.Errorf("sign JSAPI parameters: %w", err)
	}
	p.PaySign = sign
	return p, nil
}

// jsapiV2Fields are the fields a v2 JSAPI paySign covers.
func jsapiV2Fields(p payment.JSAPIParams) map[string]string {
	return map[string]string{
		"appId":     p.AppID,
		"timeStamp": p.TimeStamp,
		"nonceStr":  p.NonceStr,
		"package":   p.Package,
		"signType":  p.SignType,
	}
}

// VerifyJSAPIPaySign checks the paySign of v2 wx.requestPayment
// parameters: Sign over appId, timeStamp, nonceStr, package and signType
// with apiKey, the algorithm being p.SignType (MD5 or HMAC-SHA256). The
// comparison runs in constant time and ignores the case of the hex digits.
// Errors wrap wechatpay.ErrMissingSign, wechatpay.ErrUnsupportedSignType or wechatpay.ErrBadSignature.
func VerifyJSAPIPaySign(apiKey string, p payment.JSAPIParams) error {
	if p.PaySign == "" {
		return wechatpay.ErrMissingSign
	}
	if p.SignType != SignTypeMD5 && p.SignType != SignTypeHMACSHA256 {
		return fmt.Errorf("%w: %q", wechatpay.ErrUnsupportedSignType, wechatpay.Truncate(p.SignType, 32))
	}
	want, err := Sign(jsapiV2Fields(p), apiKey, p.SignType)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare([]byte(strings.ToUpper(p.PaySign)), []byte(want)) != 1 {
		return wechatpay.ErrBadSignature
	}
	return nil
}

// CloseOrder closes the unpaid order outTradeNo at WeChat (POST
// /pay/closeorder). A closed order, also one closed before, gives nil.
// Otherwise failures are *wechatpay.APIError values: ORDERPAID matches wechatpay.ErrOrderPaid,
// ORDERNOTEXIST wechatpay.ErrOrderNotExist, SYSTEMERROR is retryable; or errors
// wrapping wechatpay.ErrBadAnswer or *wechatpay.UnverifiedError, or network errors; see wechatpay.Fault.
func (c *Client) CloseOrder(ctx context.Context, outTradeNo string) error {
	const op = "closeorder"
	if !payment.ValidOutTradeNo(outTradeNo) {
		return fmt.Errorf("wechatpay %s: invalid out_trade_no %q: %w", op, wechatpay.Truncate(outTradeNo, 40), wechatpay.ErrMalformed)
	}
	_, err := c.call(ctx, op, "/pay/closeorder", map[string]string{"out_trade_no": outTradeNo})
	if err != nil && !errors.Is(err, wechatpay.ErrOrderClosed) {
		return fmt.Errorf("close %s: %w", outTradeNo, err)
	}
	return nil
}
