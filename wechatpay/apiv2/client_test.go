package apiv2

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/payflow/payflow/wechatpay"

	"github.com/payflow/payflow/config"
	"github.com/payflow/payflow/payment"
)

const (
	testAppID = "wx2421b1c4370ec43b"
	testMchID = "10000100"
)

// fakeOrderQuery answers /pay/orderquery with resp (signed with the
// request's sign_type unless sign is set), after checking the request.
func fakeOrderQuery(t *testing.T, status int, resp map[string]string, sign string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/pay/orderquery" {
			t.Errorf("request %s %s", r.Method, r.URL.Path)
		}
		body, _ := io.ReadAll(r.Body)
		req, err := DecodeXML(body)
		if err != nil {
			t.Errorf("request body: %v", err)
		}
		if err := Verify(req, docKey); err != nil {
			t.Errorf("request signature: %v", err)
		}
		for _, k := range []string{"appid", "mch_id", "out_trade_no", "nonce_str", "sign_type", "sign"} {
			if req[k] == "" {
				t.Errorf("request lacks %s", k)
			}
		}
		if status != http.StatusOK {
			w.WriteHeader(status)
			return
		}
		out := make(map[string]string, len(resp)+1)
		for k, v := range resp {
			out[k] = v
		}
		if resp["return_code"] == "SUCCESS" && sign != "-" {
			out["sign"] = sign
			if sign == "" {
				out["sign"], _ = Sign(out, docKey, req["sign_type"])
			}
		}
		_, _ = w.Write(EncodeXML(out))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func paidAnswer() map[string]string {
	return map[string]string{
		"return_code": "SUCCESS", "return_msg": "OK", "appid": testAppID, "mch_id": testMchID,
		"nonce_str": "abc", "result_code": "SUCCESS", "trade_state": "SUCCESS", "trade_state_desc": "支付成功",
		"out_trade_no": "order-0001", "transaction_id": "4200000000202401010000000001",
		"total_fee": "123", "cash_fee": "123", "fee_type": "CNY", "time_end": "20240101120000",
	}
}

func TestQueryOrder(t *testing.T) {
	notExist := map[string]string{"return_code": "SUCCESS", "appid": testAppID, "mch_id": testMchID, "nonce_str": "n",
		"result_code": "FAIL", "err_code": "ORDERNOTEXIST", "err_code_des": "此交易订单号不存在"}
	sysErr := map[string]string{"return_code": "SUCCESS", "appid": testAppID, "mch_id": testMchID, "nonce_str": "n",
		"result_code": "FAIL", "err_code": "SYSTEMERROR", "err_code_des": "系统错误"}
	foreign := paidAnswer()
	foreign["mch_id"] = "99999999"
	notPaid := paidAnswer()
	for _, k := range []string{"transaction_id", "time_end", "cash_fee"} {
		delete(notPaid, k)
	}
	notPaid["trade_state"], notPaid["trade_state_desc"] = "NOTPAY", "订单未支付"
	// WeChat sends SYSTEMERROR without sign and ids: "ask again".
	sysErrUnsigned := map[string]string{"return_code": "SUCCESS", "return_msg": "OK", "result_code": "FAIL",
		"err_code": "SYSTEMERROR", "err_code_des": "系统错误"}
	freq := map[string]string{"return_code": "SUCCESS", "appid": testAppID, "mch_id": testMchID, "nonce_str": "n",
		"result_code": "FAIL", "err_code": "FREQUENCY_LIMITED", "err_code_des": "频率限制"}
	otherOrder := paidAnswer()
	otherOrder["out_trade_no"] = "order-0002"
	badFee := paidAnswer()
	badFee["total_fee"] = "1.23"

	tests := []struct {
		name      string
		signType  string
		status    int
		resp      map[string]string
		sign      string
		want      payment.Trade
		wantErr   error
		wantCode  string
		wantFault string // "" for a trade or WeChat's decisive answer
	}{
		{name: "paid MD5", status: 200, resp: paidAnswer(), want: payment.Trade{
			OutTradeNo: "order-0001", TransactionID: "4200000000202401010000000001", AppID: testAppID, MchID: testMchID,
			TradeState: "SUCCESS", TradeStateDesc: "支付成功", AmountFen: 123, Currency: "CNY",
			PaidAt: time.Date(2024, 1, 1, 4, 0, 0, 0, time.UTC)}},
		{name: "paid HMAC", signType: SignTypeHMACSHA256, status: 200, resp: paidAnswer(), want: payment.Trade{
			OutTradeNo: "order-0001", TransactionID: "4200000000202401010000000001", AppID: testAppID, MchID: testMchID,
			TradeState: "SUCCESS", TradeStateDesc: "支付成功", AmountFen: 123, Currency: "CNY",
			PaidAt: time.Date(2024, 1, 1, 4, 0, 0, 0, time.UTC)}},
		{name: "not paid", status: 200, resp: notPaid, want: payment.Trade{
			OutTradeNo: "order-0001", AppID: testAppID, MchID: testMchID,
			TradeState: "NOTPAY", TradeStateDesc: "订单未支付", AmountFen: 123, Currency: "CNY"}},
		{name: "ORDERNOTEXIST", status: 200, resp: notExist, wantErr: wechatpay.ErrOrderNotExist, wantCode: "ORDERNOTEXIST"},
		{name: "SYSTEMERROR", status: 200, resp: sysErr, wantCode: "SYSTEMERROR", wantFault: wechatpay.FaultSystemError},
		{name: "SYSTEMERROR without sign", status: 200, resp: sysErrUnsigned, sign: "-", wantCode: "SYSTEMERROR", wantFault: wechatpay.FaultSystemError},
		{name: "ORDERNOTEXIST without sign", status: 200, resp: notExist, sign: "-", wantErr: wechatpay.ErrMissingSign, wantFault: wechatpay.FaultUnsigned},
		{name: "paid without sign", status: 200, resp: paidAnswer(), sign: "-", wantErr: wechatpay.ErrMissingSign, wantFault: wechatpay.FaultUnsigned},
		{name: "bad response signature", status: 200, resp: paidAnswer(), sign: "9A0A8659F005D6984697E2CA0A9CF3B7", wantErr: wechatpay.ErrBadSignature, wantFault: wechatpay.FaultBadSignature},
		{name: "ORDERNOTEXIST badly signed", status: 200, resp: notExist, sign: "9A0A8659F005D6984697E2CA0A9CF3B7", wantErr: wechatpay.ErrBadSignature, wantFault: wechatpay.FaultBadSignature},
		{name: "HTTP 500", status: 500, wantCode: "HTTP_ERROR", wantFault: wechatpay.FaultHTTP5xx},
		{name: "HTTP 429", status: 429, wantCode: "HTTP_ERROR", wantFault: wechatpay.FaultRateLimited},
		{name: "HTTP 404 (a proxy)", status: 404, wantCode: "HTTP_ERROR", wantFault: wechatpay.FaultUnsigned},
		{name: "HTTP 403 (a proxy)", status: 403, wantCode: "HTTP_ERROR", wantFault: wechatpay.FaultUnsigned},
		{name: "signature error", status: 200, resp: map[string]string{"return_code": "FAIL", "return_msg": "签名错误"}, wantCode: "SIGNERROR", wantFault: wechatpay.FaultConfig},
		{name: "FREQUENCY_LIMITED", status: 200, resp: freq, wantCode: "FREQUENCY_LIMITED", wantFault: wechatpay.FaultRateLimited},
		{name: "system busy", status: 200, resp: map[string]string{"return_code": "FAIL", "return_msg": "系统繁忙"}, wantCode: "SYSTEMERROR", wantFault: wechatpay.FaultSystemError},
		{name: "foreign merchant", status: 200, resp: foreign, wantCode: "ID_MISMATCH", wantFault: wechatpay.FaultMalformed},
		{name: "other order", status: 200, resp: otherOrder, wantCode: "ID_MISMATCH", wantFault: wechatpay.FaultMalformed},
		{name: "decimal total_fee", status: 200, resp: badFee, wantErr: wechatpay.ErrMalformed, wantFault: wechatpay.FaultMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fakeOrderQuery(t, tt.status, tt.resp, tt.sign)
			c := &Client{BaseURL: srv.URL, AppID: testAppID, MchID: testMchID, APIKey: config.NewSecret(docKey), SignType: tt.signType, HTTP: srv.Client()}
			got, err := c.QueryOrder(context.Background(), "order-0001")
			if tt.wantErr == nil && tt.wantCode == "" {
				if err != nil {
					t.Fatalf("QueryOrder: %v", err)
				}
				if !got.PaidAt.Equal(tt.want.PaidAt) {
					t.Errorf("PaidAt = %v, want %v", got.PaidAt, tt.want.PaidAt)
				}
				got.PaidAt = tt.want.PaidAt
				if got != tt.want {
					t.Errorf("got  %+v\nwant %+v", got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("QueryOrder = %+v, want an error", got)
			}
			if strings.Contains(err.Error(), docKey) {
				t.Fatalf("error contains the API key: %v", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantCode != "" {
				var ae *wechatpay.APIError
				if !errors.As(err, &ae) || ae.Code != tt.wantCode {
					t.Errorf("err = %v, want wechatpay.APIError %s", err, tt.wantCode)
				}
			}
			if kind, _ := wechatpay.Fault(err); kind != tt.wantFault {
				t.Errorf("wechatpay.Fault(%v) = %q, want %q", err, kind, tt.wantFault)
			}
			if wechatpay.Retryable(err) != (tt.wantFault != "") {
				t.Errorf("wechatpay.Retryable(%v) = %v, want %v", err, wechatpay.Retryable(err), tt.wantFault != "")
			}
		})
	}
}

func TestQueryOrderNetworkError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c := &Client{BaseURL: url, AppID: testAppID, MchID: testMchID, APIKey: config.NewSecret(docKey)}
	_, err := c.QueryOrder(context.Background(), "order-0001")
	if err == nil || !wechatpay.Retryable(err) {
		t.Fatalf("err = %v, want a retryable error", err)
	}
	if _, err := c.QueryOrder(context.Background(), "bad/no"); !errors.Is(err, wechatpay.ErrMalformed) {
		t.Fatalf("invalid out_trade_no: err = %v", err)
	}
}

func TestRetryable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("connection reset"), true},
		{&wechatpay.APIError{Code: "SYSTEMERROR", Retryable: true}, true},
		{&wechatpay.APIError{Code: "ORDERNOTEXIST"}, false},
		{wechatpay.ErrBadSignature, true}, // an answer nobody signed decides nothing: ask again
		{wechatpay.ErrMalformed, false},   // a request refused before sending
	}
	for _, tt := range tests {
		if got := wechatpay.Retryable(tt.err); got != tt.want {
			t.Errorf("wechatpay.Retryable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	if !errors.Is(&wechatpay.APIError{Code: "ORDERNOTEXIST"}, wechatpay.ErrOrderNotExist) || errors.Is(&wechatpay.APIError{Code: "SYSTEMERROR"}, wechatpay.ErrOrderNotExist) {
		t.Error("wechatpay.APIError.Is wrong")
	}
}

// The client holds the API key as a config.Secret: printing the client,
// as a log line or an error might, never shows the key.
func TestClientNeverPrintsItsKey(t *testing.T) {
	c := &Client{BaseURL: "http://127.0.0.1:1", AppID: testAppID, MchID: testMchID, APIKey: config.NewSecret(docKey)}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x"} {
		if out := fmt.Sprintf(verb, c) + fmt.Sprintf(verb, *c); strings.Contains(out, docKey) || strings.Contains(out, fmt.Sprintf("%x", docKey)) {
			t.Fatalf("%s shows the key: %s", verb, out)
		}
	}
}
