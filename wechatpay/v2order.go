package wechatpay

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/payflow/payflow/payment"
)

// maxV2Body is WeChat's limit on a v2 unified order's body, in bytes.
const maxV2Body = 128

// defaultV2ClientIP is spbill_create_ip when the request names no payer IP
// (WeChat wants one; for NATIVE it is the merchant's server).
const defaultV2ClientIP = "127.0.0.1"

// Prepay creates the order at WeChat (POST /pay/unifiedorder) and returns
// the prepay_id, plus the code_url of a NATIVE order or the signed
// wx.requestPayment parameters of a JSAPI order (signType the client's
// SignType, paySign SignV2 over appId, timeStamp, nonceStr, package and
// signType with the API key). Bad requests (out_trade_no, amount, trade
// type, JSAPI without openid, no notify_url, a body over 128 bytes or not
// UTF-8 text, a bad client IP) fail before any call with an error wrapping
// ErrMalformed. WeChat's refusals are *APIError values: ORDERPAID and
// ORDERCLOSED match ErrOrderPaid and ErrOrderClosed; OUT_TRADE_NO_USED and
// other codes are not retryable, SYSTEMERROR is; see Retryable.
func (c *V2Client) Prepay(ctx context.Context, req payment.PrepayRequest) (payment.Prepay, error) {
	const op = "unifiedorder"
	if err := checkPrepayRequest(req, maxV2Body, false); err != nil {
		return payment.Prepay{}, fmt.Errorf("wechatpay %s: %w", op, err)
	}
	currency := req.Currency
	if currency == "" {
		currency = payment.DefaultCurrency
	}
	ip := req.ClientIP
	if ip == "" {
		ip = defaultV2ClientIP
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
		fields["time_expire"] = FormatV2Time(req.TimeExpire)
	}

	resp, err := c.call(ctx, op, "/pay/unifiedorder", fields)
	if err != nil {
		return payment.Prepay{}, fmt.Errorf("prepay %s: %w", req.OutTradeNo, err)
	}
	if tt := resp["trade_type"]; tt != "" && tt != req.TradeType {
		return payment.Prepay{}, fmt.Errorf("wechatpay %s %s: answer has trade_type %q: %w", op, req.OutTradeNo, truncate(tt, 16), ErrMalformed)
	}
	p := payment.Prepay{PrepayID: resp["prepay_id"], CodeURL: resp["code_url"]}
	if p.PrepayID == "" {
		return payment.Prepay{}, fmt.Errorf("wechatpay %s %s: answer lacks prepay_id: %w", op, req.OutTradeNo, ErrMalformed)
	}
	if req.TradeType == payment.TradeTypeNative {
		if p.CodeURL == "" {
			return payment.Prepay{}, fmt.Errorf("wechatpay %s %s: answer lacks code_url: %w", op, req.OutTradeNo, ErrMalformed)
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
// SignV2 over the five fields with the API key and the client's SignType).
func (c *V2Client) jsapiParams(prepayID string, now time.Time) (*payment.JSAPIParams, error) {
	signType := c.signType()
	p := &payment.JSAPIParams{
		AppID:     c.AppID,
		TimeStamp: strconv.FormatInt(now.Unix(), 10),
		NonceStr:  c.nonce(),
		Package:   "prepay_id=" + prepayID,
		SignType:  signType,
	}
	sign, err := SignV2(jsapiV2Fields(*p), c.APIKey.Reveal(), signType)
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

// VerifyJSAPIPaySignV2 checks the paySign of v2 wx.requestPayment
// parameters: SignV2 over appId, timeStamp, nonceStr, package and signType
// with apiKey, the algorithm being p.SignType (MD5 or HMAC-SHA256). The
// comparison runs in constant time and ignores the case of the hex digits.
// Errors wrap ErrMissingSign, ErrUnsupportedSignType or ErrBadSignature.
func VerifyJSAPIPaySignV2(apiKey string, p payment.JSAPIParams) error {
	if p.PaySign == "" {
		return ErrMissingSign
	}
	if p.SignType != SignTypeMD5 && p.SignType != SignTypeHMACSHA256 {
		return fmt.Errorf("%w: %q", ErrUnsupportedSignType, truncate(p.SignType, 32))
	}
	want, err := SignV2(jsapiV2Fields(p), apiKey, p.SignType)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare([]byte(strings.ToUpper(p.PaySign)), []byte(want)) != 1 {
		return ErrBadSignature
	}
	return nil
}

// CloseOrder closes the unpaid order outTradeNo at WeChat (POST
// /pay/closeorder). A closed order, also one closed before, gives nil.
// Otherwise failures are *APIError values: ORDERPAID matches ErrOrderPaid,
// ORDERNOTEXIST ErrOrderNotExist, SYSTEMERROR is retryable; or errors
// wrapping ErrMalformed/ErrBadSignature, or network errors; see Retryable.
func (c *V2Client) CloseOrder(ctx context.Context, outTradeNo string) error {
	const op = "closeorder"
	if !payment.ValidOutTradeNo(outTradeNo) {
		return fmt.Errorf("wechatpay %s: invalid out_trade_no %q: %w", op, truncate(outTradeNo, 40), ErrMalformed)
	}
	_, err := c.call(ctx, op, "/pay/closeorder", map[string]string{"out_trade_no": outTradeNo})
	if err != nil && !errors.Is(err, ErrOrderClosed) {
		return fmt.Errorf("close %s: %w", outTradeNo, err)
	}
	return nil
}

// checkPrepayRequest rejects what WeChat would refuse anyway, with an error
// wrapping ErrMalformed. maxDesc bounds the description in bytes, or in
// characters when descRunes.
func checkPrepayRequest(req payment.PrepayRequest, maxDesc int, descRunes bool) error {
	switch {
	case !payment.ValidOutTradeNo(req.OutTradeNo):
		return fmt.Errorf("invalid out_trade_no %q: %w", truncate(req.OutTradeNo, 40), ErrMalformed)
	case req.AmountFen <= 0:
		return fmt.Errorf("%s: amount %d fen is not positive: %w", req.OutTradeNo, req.AmountFen, ErrMalformed)
	case req.TradeType != payment.TradeTypeJSAPI && req.TradeType != payment.TradeTypeNative:
		return fmt.Errorf("%s: trade type %q is neither JSAPI nor NATIVE: %w", req.OutTradeNo, truncate(req.TradeType, 16), ErrMalformed)
	case req.TradeType == payment.TradeTypeJSAPI && req.OpenID == "":
		return fmt.Errorf("%s: JSAPI needs the payer's openid: %w", req.OutTradeNo, ErrMalformed)
	case req.NotifyURL == "":
		return fmt.Errorf("%s: no notify_url: %w", req.OutTradeNo, ErrMalformed)
	case req.Description == "":
		return fmt.Errorf("%s: empty description: %w", req.OutTradeNo, ErrMalformed)
	case !textOK(req.Description):
		return fmt.Errorf("%s: description is not UTF-8 text: %w", req.OutTradeNo, ErrMalformed)
	case !descRunes && len(req.Description) > maxDesc:
		return fmt.Errorf("%s: description is %d bytes, WeChat takes at most %d: %w", req.OutTradeNo, len(req.Description), maxDesc, ErrMalformed)
	case descRunes && utf8.RuneCountInString(req.Description) > maxDesc:
		return fmt.Errorf("%s: description is %d characters, WeChat takes at most %d: %w",
			req.OutTradeNo, utf8.RuneCountInString(req.Description), maxDesc, ErrMalformed)
	case !textOK(req.OpenID) || !textOK(req.NotifyURL) || !textOK(req.Currency):
		return fmt.Errorf("%s: openid, notify_url or currency is not UTF-8 text: %w", req.OutTradeNo, ErrMalformed)
	case req.ClientIP != "" && net.ParseIP(req.ClientIP) == nil:
		return fmt.Errorf("%s: client IP %q: %w", req.OutTradeNo, truncate(req.ClientIP, 40), ErrMalformed)
	}
	return nil
}

// textOK reports whether s is valid UTF-8 without control characters other
// than tab, LF and CR, so that it survives XML and WeChat's NOT_UTF8 check.
func textOK(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || r == 0x7f || r == 0xfffe || r == 0xffff {
			return false
		}
	}
	return true
}
