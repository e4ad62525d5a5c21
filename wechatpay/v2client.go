package wechatpay

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/payflow/payflow/config"
	"github.com/payflow/payflow/payment"
)

// maxV2Response bounds the size of an API v2 answer we read.
const maxV2Response = 1 << 20

// V2Client calls WeChat Pay's API v2 under BaseURL (for example
// https://api.mch.weixin.qq.com, or the local simulator). Its zero
// SignType, HTTP and Nonce fields mean MD5, http.DefaultClient and 32
// random hex characters.
type V2Client struct {
	BaseURL, AppID, MchID string
	APIKey                config.Secret // the API v2 key: masked whenever the client is printed
	SignType              string        // MD5 when empty
	HTTP                  *http.Client  // http.DefaultClient when nil
	Nonce                 func() string // random 32 hex chars when nil
}

// QueryOrder asks WeChat for the trade of outTradeNo (POST /pay/orderquery).
// It reads return_code, then verifies the response signature (an error
// wrapping ErrBadSignature when it does not check out), then the ids and
// result_code/err_code, and returns the trade. Failures are *APIError
// values (ErrOrderNotExist matches an unknown trade), plain wrapped network
// errors, or errors wrapping ErrMalformed/ErrBadSignature; see Retryable.
func (c *V2Client) QueryOrder(ctx context.Context, outTradeNo string) (payment.Trade, error) {
	const op = "orderquery"
	if !payment.ValidOutTradeNo(outTradeNo) {
		return payment.Trade{}, fmt.Errorf("wechatpay %s: invalid out_trade_no %q: %w", op, truncate(outTradeNo, 40), ErrMalformed)
	}
	resp, err := c.call(ctx, op, "/pay/orderquery", map[string]string{"out_trade_no": outTradeNo})
	if err != nil {
		return payment.Trade{}, fmt.Errorf("query %s: %w", outTradeNo, err)
	}
	if got := resp["out_trade_no"]; got != outTradeNo {
		return payment.Trade{}, &APIError{Op: op, HTTPStatus: http.StatusOK, Code: codeIDMismatch,
			Message: fmt.Sprintf("answer is about out_trade_no %q", truncate(got, 40))}
	}
	t := payment.Trade{
		OutTradeNo:     outTradeNo,
		TransactionID:  resp["transaction_id"],
		AppID:          resp["appid"],
		MchID:          resp["mch_id"],
		TradeState:     resp["trade_state"],
		TradeStateDesc: resp["trade_state_desc"],
		Currency:       resp["fee_type"],
	}
	if t.TradeState == "" {
		return payment.Trade{}, fmt.Errorf("wechatpay %s %s: missing trade_state: %w", op, outTradeNo, ErrMalformed)
	}
	if t.Currency == "" {
		t.Currency = payment.DefaultCurrency
	}
	if s, ok := resp["total_fee"]; ok || t.TradeState == payment.TradeSuccess {
		if t.AmountFen, err = parseFen(s); err != nil {
			return payment.Trade{}, fmt.Errorf("wechatpay %s %s: total_fee: %v: %w", op, outTradeNo, err, ErrMalformed)
		}
	}
	if t.TradeState == payment.TradeSuccess && t.TransactionID == "" {
		return payment.Trade{}, fmt.Errorf("wechatpay %s %s: paid trade without transaction_id: %w", op, outTradeNo, ErrMalformed)
	}
	if s := resp["time_end"]; s != "" {
		if t.PaidAt, err = parseV2Time(s); err != nil {
			return payment.Trade{}, fmt.Errorf("wechatpay %s %s: time_end: %v: %w", op, outTradeNo, err, ErrMalformed)
		}
	}
	return t, nil
}

// signType is the client's SignType, MD5 when unset.
func (c *V2Client) signType() string {
	if c.SignType == "" {
		return SignTypeMD5
	}
	return c.SignType
}

// nonce is a fresh nonce_str from the client's Nonce, random when unset.
func (c *V2Client) nonce() string {
	if c.Nonce == nil {
		return randomNonce()
	}
	return c.Nonce()
}

// call sends one signed API v2 request and returns the verified answer of a
// call that succeeded (return_code and result_code SUCCESS, our ids).
func (c *V2Client) call(ctx context.Context, op, path string, fields map[string]string) (map[string]string, error) {
	signType := c.signType()
	req := map[string]string{
		"appid":     c.AppID,
		"mch_id":    c.MchID,
		"nonce_str": c.nonce(),
		"sign_type": signType,
	}
	for k, v := range fields {
		req[k] = v
	}
	sign, err := SignV2(req, c.APIKey.Reveal(), signType)
	if err != nil {
		return nil, fmt.Errorf("wechatpay %s: sign request: %w", op, err)
	}
	req["sign"] = sign

	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.BaseURL, "/")+path, bytes.NewReader(EncodeV2XML(req)))
	if err != nil {
		return nil, fmt.Errorf("wechatpay %s: %w", op, err)
	}
	hreq.Header.Set("Content-Type", "text/xml; charset=utf-8")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	hresp, err := hc.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("wechatpay %s: %w", op, err)
	}
	defer hresp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(hresp.Body, maxV2Response+1))
	if err != nil {
		return nil, fmt.Errorf("wechatpay %s: read answer: %w", op, err)
	}
	if hresp.StatusCode != http.StatusOK {
		s := hresp.StatusCode
		return nil, &APIError{Op: op, HTTPStatus: s, Code: codeHTTP, Message: http.StatusText(s),
			Retryable: s >= 500 || s == http.StatusTooManyRequests || s == http.StatusRequestTimeout}
	}
	if len(body) > maxV2Response {
		return nil, fmt.Errorf("wechatpay %s: answer larger than %d bytes: %w", op, maxV2Response, ErrMalformed)
	}
	resp, err := DecodeV2XML(body)
	if err != nil {
		return nil, fmt.Errorf("wechatpay %s: answer: %w", op, err)
	}

	if rc := resp["return_code"]; rc != "SUCCESS" {
		msg := resp["return_msg"]
		code := codeFail
		switch {
		case msg == "签名错误" || strings.Contains(msg, codeSignError):
			code = codeSignError
		case retryableCode(msg):
			code = codeSystemError
		}
		return nil, &APIError{Op: op, HTTPStatus: hresp.StatusCode, Code: code, Message: truncate(msg, 256), Retryable: code == codeSystemError}
	}
	if err := verifyV2(resp, c.APIKey.Reveal(), signType); err != nil {
		if !errors.Is(err, ErrBadSignature) {
			err = fmt.Errorf("%w: %w", ErrBadSignature, err)
		}
		return nil, fmt.Errorf("wechatpay %s: answer: %w", op, err)
	}
	if resp["appid"] != c.AppID || resp["mch_id"] != c.MchID {
		return nil, &APIError{Op: op, HTTPStatus: hresp.StatusCode, Code: codeIDMismatch,
			Message: fmt.Sprintf("answer is for appid %q mch_id %q", truncate(resp["appid"], 40), truncate(resp["mch_id"], 40))}
	}
	if resp["result_code"] != "SUCCESS" {
		code := resp["err_code"]
		if code == "" {
			code = codeFail
		}
		return nil, &APIError{Op: op, HTTPStatus: hresp.StatusCode, Code: truncate(code, 64),
			Message: truncate(resp["err_code_des"], 256), Retryable: retryableCode(code)}
	}
	return resp, nil
}

// randomNonce returns 32 random hex characters.
func randomNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
