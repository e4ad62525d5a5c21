package apiv2

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"time"

	"github.com/payflow/payflow/wechatpay"

	"github.com/payflow/payflow/payment"
)

// timeLayout is the layout of time_end, time_start and time_expire.
const timeLayout = "20060102150405"

// PaymentNotification turns the params of an API v2 payment notification into a
// payment.Notification with Source v2 and Kind payment. It checks neither
// the signature nor the merchant ids: NotifyParser does. It requires return_code SUCCESS, a valid out_trade_no,
// appid, mch_id and result_code (SUCCESS or FAIL); when result_code is
// SUCCESS also transaction_id and total_fee (an integer > 0). Currency comes
// from fee_type (CNY when absent) and PaidAt from time_end (Beijing time).
// ID is "v2:" and the hex SHA-256 of the signed string without the key, so
// copies of one notification share it. ReceivedAt is left for the caller.
// Errors wrap wechatpay.ErrMalformed.
func PaymentNotification(params map[string]string) (payment.Notification, error) {
	var n payment.Notification
	if rc := params["return_code"]; rc != "SUCCESS" {
		return n, fmt.Errorf("%w: return_code %q", wechatpay.ErrMalformed, wechatpay.Truncate(rc, 32))
	}
	no := params["out_trade_no"]
	if !payment.ValidOutTradeNo(no) {
		return n, fmt.Errorf("%w: invalid out_trade_no %q", wechatpay.ErrMalformed, wechatpay.Truncate(no, 40))
	}
	for _, k := range []string{"appid", "mch_id", "result_code"} {
		if params[k] == "" {
			return n, fmt.Errorf("%w: missing %s", wechatpay.ErrMalformed, k)
		}
	}
	result := params["result_code"]
	if result != "SUCCESS" && result != "FAIL" {
		return n, fmt.Errorf("%w: result_code %q", wechatpay.ErrMalformed, wechatpay.Truncate(result, 32))
	}
	var amount int64
	if s, ok := params["total_fee"]; ok || result == "SUCCESS" {
		a, err := wechatpay.ParseFen(s)
		if err != nil {
			return n, fmt.Errorf("%w: total_fee: %v", wechatpay.ErrMalformed, err)
		}
		amount = a
	}
	if result == "SUCCESS" && params["transaction_id"] == "" {
		return n, fmt.Errorf("%w: missing transaction_id", wechatpay.ErrMalformed)
	}
	var paidAt time.Time
	if s := params["time_end"]; s != "" {
		t, err := parseTime(s)
		if err != nil {
			return n, fmt.Errorf("%w: time_end: %v", wechatpay.ErrMalformed, err)
		}
		paidAt = t
	}
	currency := params["fee_type"]
	if currency == "" {
		currency = payment.DefaultCurrency
	}
	sum := sha256.Sum256([]byte(signString(params)))
	return payment.Notification{
		ID:            "v2:" + hex.EncodeToString(sum[:]),
		Source:        payment.SourceV2,
		OutTradeNo:    no,
		TransactionID: params["transaction_id"],
		AppID:         params["appid"],
		MchID:         params["mch_id"],
		AmountFen:     amount,
		Currency:      currency,
		ResultCode:    result,
		ErrCode:       params["err_code"],
		ErrCodeDes:    params["err_code_des"],
		PaidAt:        paidAt,
	}, nil
}

// parseTime parses yyyyMMddHHmmss in Beijing time.
func parseTime(s string) (time.Time, error) {
	if len(s) != len(timeLayout) {
		return time.Time{}, fmt.Errorf("want yyyyMMddHHmmss, got %q", wechatpay.Truncate(s, 24))
	}
	t, err := time.ParseInLocation(timeLayout, s, wechatpay.Beijing)
	if err != nil {
		return time.Time{}, fmt.Errorf("want yyyyMMddHHmmss, got %q", s)
	}
	return t, nil
}

// FormatTime renders t as yyyyMMddHHmmss in Beijing time, the format of
// time_end, time_start and time_expire.
func FormatTime(t time.Time) string { return t.In(wechatpay.Beijing).Format(timeLayout) }

// Reply renders the answer to an API v2 notification: return_code SUCCESS
// and return_msg OK when ok, otherwise return_code FAIL with msg. The bytes
// contain no newlines, which WeChat would count as a failure.
func Reply(ok bool, msg string) []byte {
	code := "FAIL"
	if ok {
		code, msg = "SUCCESS", "OK"
	}
	return EncodeXML(map[string]string{"return_code": code, "return_msg": msg})
}

// NotifyParser verifies what arrives at the API v2 notify URL: payment
// results (signed with the API key, MD5 or HMAC-SHA256) and refund results
// (unsigned, with req_info encrypted under the API key). It implements
// wechatpay.NotificationParser, is safe for concurrent use, and never
// prints the key.
type NotifyParser struct {
	appID, mchID, apiKey string
}

// NewNotifyParser returns the parser of merchant appID/mchID with its API
// v2 key; all three are required.
func NewNotifyParser(appID, mchID, apiKey string) (*NotifyParser, error) {
	if appID == "" || mchID == "" || apiKey == "" {
		return nil, fmt.Errorf("%w: v2 notify parser needs appid, mch_id and the API v2 key", wechatpay.ErrConfig)
	}
	return &NotifyParser{appID: appID, mchID: mchID, apiKey: apiKey}, nil
}

// Format keeps the API key out of every fmt verb.
func (p NotifyParser) Format(f fmt.State, _ rune) {
	_, _ = fmt.Fprintf(f, "apiv2.NotifyParser{appid: %s, mch_id: %s, apiKey: [redacted]}", p.appID, p.mchID)
}

// Parse reads one v2 notification, in order:
//   - the body must be flat <xml> (wechatpay.ErrMalformed) with return_code
//     SUCCESS (wechatpay.ErrMalformed);
//   - with req_info it is a refund result: req_info must decrypt under our
//     key (wechatpay.ErrDecrypt), appid and mch_id must be ours
//     (wechatpay.ErrForeign), and the inner XML must be a refund
//     (RefundNotification; KindRefund);
//   - otherwise it is a payment result: the sign must verify (Verify:
//     wechatpay.ErrMissingSign, wechatpay.ErrBadSignature,
//     wechatpay.ErrUnsupportedSignType), appid and mch_id must be ours
//     (wechatpay.ErrForeign), and the params must make a payment
//     (PaymentNotification; KindPayment).
//
// The header is not used: v2 carries everything in the body.
func (p *NotifyParser) Parse(_ http.Header, body []byte) (payment.Notification, error) {
	var n payment.Notification
	params, err := DecodeXML(body)
	if err != nil {
		return n, fmt.Errorf("v2 notify: %w", err)
	}
	if rc := params["return_code"]; rc != "SUCCESS" {
		return n, fmt.Errorf("%w: v2 notify return_code %q", wechatpay.ErrMalformed, wechatpay.Truncate(rc, 32))
	}
	if reqInfo, refund := params["req_info"]; refund {
		inner, err := DecryptReqInfo(reqInfo, p.apiKey)
		if err != nil {
			return n, fmt.Errorf("v2 refund notify: %w", err)
		}
		if err := p.ours(params); err != nil {
			return n, err
		}
		return RefundNotification(params, inner)
	}
	if err := Verify(params, p.apiKey); err != nil {
		return n, fmt.Errorf("v2 notify: %w", err)
	}
	if err := p.ours(params); err != nil {
		return n, err
	}
	return PaymentNotification(params)
}

// ours checks appid and mch_id.
func (p *NotifyParser) ours(params map[string]string) error {
	if params["appid"] != p.appID || params["mch_id"] != p.mchID {
		return fmt.Errorf("%w: v2 notify for appid %q mch_id %q", wechatpay.ErrForeign,
			wechatpay.Truncate(params["appid"], 40), wechatpay.Truncate(params["mch_id"], 40))
	}
	return nil
}

var _ wechatpay.NotificationParser = (*NotifyParser)(nil)
