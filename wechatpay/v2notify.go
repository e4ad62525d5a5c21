package wechatpay

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/payflow/payflow/payment"
)

// beijing is WeChat Pay's time zone (UTC+8, no daylight saving); a fixed
// zone avoids depending on tzdata.
var beijing = time.FixedZone("CST", 8*3600)

// v2TimeLayout is the layout of time_end, time_start and time_expire.
const v2TimeLayout = "20060102150405"

// V2Notification turns the params of an API v2 payment notification into a
// payment.Notification with Source v2. It does not check the signature:
// call VerifyV2 first. It requires return_code SUCCESS, a valid out_trade_no,
// appid, mch_id and result_code (SUCCESS or FAIL); when result_code is
// SUCCESS also transaction_id and total_fee (an integer > 0). Currency comes
// from fee_type (CNY when absent) and PaidAt from time_end (Beijing time).
// ID is "v2:" and the hex SHA-256 of the signed string without the key, so
// copies of one notification share it. ReceivedAt is left for the caller.
// Errors wrap ErrMalformed.
func V2Notification(params map[string]string) (payment.Notification, error) {
	var n payment.Notification
	if rc := params["return_code"]; rc != "SUCCESS" {
		return n, fmt.Errorf("%w: return_code %q", ErrMalformed, truncate(rc, 32))
	}
	no := params["out_trade_no"]
	if !payment.ValidOutTradeNo(no) {
		return n, fmt.Errorf("%w: invalid out_trade_no %q", ErrMalformed, truncate(no, 40))
	}
	for _, k := range []string{"appid", "mch_id", "result_code"} {
		if params[k] == "" {
			return n, fmt.Errorf("%w: missing %s", ErrMalformed, k)
		}
	}
	result := params["result_code"]
	if result != "SUCCESS" && result != "FAIL" {
		return n, fmt.Errorf("%w: result_code %q", ErrMalformed, truncate(result, 32))
	}
	var amount int64
	if s, ok := params["total_fee"]; ok || result == "SUCCESS" {
		a, err := parseFen(s)
		if err != nil {
			return n, fmt.Errorf("%w: total_fee: %v", ErrMalformed, err)
		}
		amount = a
	}
	if result == "SUCCESS" && params["transaction_id"] == "" {
		return n, fmt.Errorf("%w: missing transaction_id", ErrMalformed)
	}
	var paidAt time.Time
	if s := params["time_end"]; s != "" {
		t, err := parseV2Time(s)
		if err != nil {
			return n, fmt.Errorf("%w: time_end: %v", ErrMalformed, err)
		}
		paidAt = t
	}
	currency := params["fee_type"]
	if currency == "" {
		currency = payment.DefaultCurrency
	}
	sum := sha256.Sum256([]byte(v2SignString(params)))
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

// parseFen parses an amount in fen: ASCII digits only (no sign, no
// decimal point), greater than zero.
func parseFen(s string) (int64, error) {
	if s == "" || len(s) > 18 {
		return 0, fmt.Errorf("not an amount in fen: %q", truncate(s, 24))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("not an amount in fen: %q", truncate(s, 24))
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("not a positive amount in fen: %q", s)
	}
	return v, nil
}

// parseV2Time parses yyyyMMddHHmmss in Beijing time.
func parseV2Time(s string) (time.Time, error) {
	if len(s) != len(v2TimeLayout) {
		return time.Time{}, fmt.Errorf("want yyyyMMddHHmmss, got %q", truncate(s, 24))
	}
	t, err := time.ParseInLocation(v2TimeLayout, s, beijing)
	if err != nil {
		return time.Time{}, fmt.Errorf("want yyyyMMddHHmmss, got %q", s)
	}
	return t, nil
}

// FormatV2Time renders t as yyyyMMddHHmmss in Beijing time, the format of
// time_end, time_start and time_expire.
func FormatV2Time(t time.Time) string { return t.In(beijing).Format(v2TimeLayout) }

// V2Reply renders the answer to an API v2 notification: return_code SUCCESS
// and return_msg OK when ok, otherwise return_code FAIL with msg. The bytes
// contain no newlines, which WeChat would count as a failure.
func V2Reply(ok bool, msg string) []byte {
	code := "FAIL"
	if ok {
		code, msg = "SUCCESS", "OK"
	}
	return EncodeV2XML(map[string]string{"return_code": code, "return_msg": msg})
}
