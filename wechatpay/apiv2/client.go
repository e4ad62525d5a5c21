package apiv2

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/payflow/payflow/wechatpay"

	"github.com/payflow/payflow/config"
	"github.com/payflow/payflow/payment"
)

// maxResponse bounds the size of an API v2 answer we read.
const maxResponse = 1 << 20

// Client calls WeChat Pay's API v2 under BaseURL (for example
// https://api.mch.weixin.qq.com, or the local simulator). Its zero
// SignType, HTTP and Nonce fields mean MD5, http.DefaultClient and 32
// random hex characters.
type Client struct {
	BaseURL, AppID, MchID string
	APIKey                config.Secret // the API v2 key: masked whenever the client is printed
	SignType              string        // MD5 when empty
	HTTP                  *http.Client  // http.DefaultClient when nil
	Nonce                 func() string // random 32 hex chars when nil
}

// QueryOrder asks WeChat for the trade of outTradeNo (POST /pay/orderquery).
// It reads return_code, then verifies the answer's sign (a missing or bad
// sign is a *wechatpay.UnverifiedError), then the ids and result_code/
// err_code, and returns the trade. Failures are *wechatpay.APIError values
// (wechatpay.ErrOrderNotExist matches an unknown trade), errors wrapping
// wechatpay.ErrBadAnswer for an answer that does not parse, plain wrapped
// network errors, or wechatpay.ErrMalformed for an invalid out_trade_no
// (nothing sent). wechatpay.Fault tells the faults from WeChat's decisions.
func (c *Client) QueryOrder(ctx context.Context, outTradeNo string) (payment.Trade, error) {
	const op = "orderquery"
	if !payment.ValidOutTradeNo(outTradeNo) {
		return payment.Trade{}, fmt.Errorf("wechatpay %s: invalid out_trade_no %q: %w", op, wechatpay.Truncate(outTradeNo, 40), wechatpay.ErrMalformed)
	}
	resp, err := c.call(ctx, op, "/pay/orderquery", map[string]string{"out_trade_no": outTradeNo})
	if err != nil {
		return payment.Trade{}, fmt.Errorf("query %s: %w", outTradeNo, err)
	}
	if got := resp["out_trade_no"]; got != outTradeNo {
		return payment.Trade{}, &wechatpay.APIError{Op: op, HTTPStatus: http.StatusOK, Code: wechatpay.CodeIDMismatch, Retryable: true,
			Message: fmt.Sprintf("answer is about out_trade_no %q", wechatpay.Truncate(got, 40))}
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
		return payment.Trade{}, fmt.Errorf("wechatpay %s %s: missing trade_state: %w", op, outTradeNo, wechatpay.ErrBadAnswer)
	}
	if t.Currency == "" {
		t.Currency = payment.DefaultCurrency
	}
	if s, ok := resp["total_fee"]; ok || t.TradeState == payment.TradeSuccess {
		if t.AmountFen, err = wechatpay.ParseFen(s); err != nil {
			return payment.Trade{}, fmt.Errorf("wechatpay %s %s: total_fee: %v: %w", op, outTradeNo, err, wechatpay.ErrBadAnswer)
		}
	}
	if t.TradeState == payment.TradeSuccess && t.TransactionID == "" {
		return payment.Trade{}, fmt.Errorf("wechatpay %s %s: paid trade without transaction_id: %w", op, outTradeNo, wechatpay.ErrBadAnswer)
	}
	if s := resp["time_end"]; s != "" {
		if t.PaidAt, err = parseTime(s); err != nil {
			return payment.Trade{}, fmt.Errorf("wechatpay %s %s: time_end: %v: %w", op, outTradeNo, err, wechatpay.ErrBadAnswer)
		}
	}
	return t, nil
}

// signType is the client's SignType, MD5 when unset.
func (c *Client) signType() string {
	if c.SignType == "" {
		return SignTypeMD5
	}
	return c.SignType
}

// nonce is a fresh nonce_str from the client's Nonce, random when unset.
func (c *Client) nonce() string {
	if c.Nonce == nil {
		return randomNonce()
	}
	return c.Nonce()
}

// send signs an API v2 request (appid, mch_id, nonce_str, sign_type and
// fields) with the API key and POSTs it as XML to path; the caller reads
// and closes the answer. what names the call in the error of the round
// trip itself.
func (c *Client) send(ctx context.Context, op, what, path string, fields map[string]string) (*http.Response, error) {
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
	sign, err := Sign(req, c.APIKey.Reveal(), signType)
	if err != nil {
		return nil, fmt.Errorf("wechatpay %s: sign request: %w", op, err)
	}
	req["sign"] = sign

	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.BaseURL, "/")+path, bytes.NewReader(EncodeXML(req)))
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
		return nil, fmt.Errorf("wechatpay %s: %w", what, err)
	}
	return hresp, nil
}

// call sends one signed API v2 request and returns the verified answer of a
// call that succeeded (return_code and result_code SUCCESS, our ids).
func (c *Client) call(ctx context.Context, op, path string, fields map[string]string) (map[string]string, error) {
	hresp, err := c.send(ctx, op, op, path, fields)
	if err != nil {
		return nil, err
	}
	defer hresp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(hresp.Body, maxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("wechatpay %s: read answer: %w", op, err)
	}
	if hresp.StatusCode != http.StatusOK {
		// WeChat answers every v2 call with HTTP 200; anything else is a
		// proxy or gateway speaking, never WeChat's word.
		s := hresp.StatusCode
		return nil, &wechatpay.APIError{Op: op, HTTPStatus: s, Code: wechatpay.CodeHTTP, Message: http.StatusText(s), Retryable: true}
	}
	if len(body) > maxResponse {
		return nil, fmt.Errorf("wechatpay %s: answer larger than %d bytes: %w", op, maxResponse, wechatpay.ErrBadAnswer)
	}
	resp, err := DecodeXML(body)
	if err != nil {
		return nil, fmt.Errorf("wechatpay %s: answer: %w: %v", op, wechatpay.ErrBadAnswer, err)
	}
	return checkAnswer(op, resp, c.APIKey.Reveal(), c.AppID, c.MchID)
}

// checkAnswer reads a decoded v2 answer in WeChat's order: return_code
// (FAIL is never signed and never decides anything), then the sign, then
// the ids and result_code. A missing or bad sign is an
// *wechatpay.UnverifiedError, never a decision, except that an unsigned
// result_code FAIL with err_code SYSTEMERROR is WeChat asking to call again
// (it sends those without sign and ids).
func checkAnswer(op string, resp map[string]string, apiKey, appID, mchID string) (map[string]string, error) {
	if rc := resp["return_code"]; rc != "SUCCESS" {
		msg := resp["return_msg"]
		code := wechatpay.CodeFail
		switch {
		case msg == "签名错误" || strings.Contains(msg, wechatpay.CodeSignError):
			code = wechatpay.CodeSignError
		case wechatpay.RetryableCode(msg):
			code = wechatpay.CodeSystemError
		}
		return nil, &wechatpay.APIError{Op: op, HTTPStatus: http.StatusOK, Code: code, Message: wechatpay.Truncate(msg, 256), Retryable: true}
	}
	if resp["sign"] == "" && resp["result_code"] == "FAIL" && resp["err_code"] == wechatpay.CodeSystemError {
		return nil, &wechatpay.APIError{Op: op, HTTPStatus: http.StatusOK, Code: wechatpay.CodeSystemError,
			Message: wechatpay.Truncate(resp["err_code_des"], 256), Retryable: true}
	}
	if err := Verify(resp, apiKey); err != nil {
		return nil, &wechatpay.UnverifiedError{Op: op, HTTPStatus: http.StatusOK, Err: err}
	}
	if resp["appid"] != appID || resp["mch_id"] != mchID {
		return nil, &wechatpay.APIError{Op: op, HTTPStatus: http.StatusOK, Code: wechatpay.CodeIDMismatch, Retryable: true,
			Message: fmt.Sprintf("answer is for appid %q mch_id %q", wechatpay.Truncate(resp["appid"], 40), wechatpay.Truncate(resp["mch_id"], 40))}
	}
	if resp["result_code"] != "SUCCESS" {
		code := resp["err_code"]
		if code == "" {
			code = wechatpay.CodeFail
		}
		return nil, &wechatpay.APIError{Op: op, HTTPStatus: http.StatusOK, Code: wechatpay.Truncate(code, 64),
			Message: wechatpay.Truncate(resp["err_code_des"], 256), Retryable: wechatpay.RetryableCode(code)}
	}
	return resp, nil
}

// randomNonce returns 32 random hex characters.
func randomNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
