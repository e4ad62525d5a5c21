package apiv2

import (
	"crypto/aes"
	"crypto/md5"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/wechatpay"
)

// refundTimeLayout is success_time of a v2 refund notification
// (2017-12-15 09:46:01, Beijing time).
const refundTimeLayout = "2006-01-02 15:04:05"

// reqInfoKey is the AES-256 key of a refund notification's req_info: the
// lower-case hex MD5 of the API v2 key, used as its 32 ASCII bytes.
func reqInfoKey(apiKey string) []byte {
	sum := md5.Sum([]byte(apiKey))
	return []byte(hex.EncodeToString(sum[:]))
}

// DecryptReqInfo opens the req_info of an API v2 refund notification:
// base64 (standard alphabet) of AES-256-ECB with PKCS #7 padding, under
// the key reqInfoKey(apiKey). It returns the inner XML (<root>…</root>).
// Anything that does not decrypt to correctly padded blocks under our key
// (another merchant's key, a tampered or truncated text) is an error
// wrapping wechatpay.ErrDecrypt; the key never appears in it.
func DecryptReqInfo(reqInfo, apiKey string) ([]byte, error) {
	if apiKey == "" {
		return nil, errEmptyKey
	}
	ct, err := base64.StdEncoding.DecodeString(reqInfo)
	if err != nil {
		return nil, fmt.Errorf("%w: req_info is not base64", wechatpay.ErrDecrypt)
	}
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("%w: req_info is %d bytes, not whole AES blocks", wechatpay.ErrDecrypt, len(ct))
	}
	block, err := aes.NewCipher(reqInfoKey(apiKey))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", wechatpay.ErrDecrypt, err)
	}
	plain := make([]byte, len(ct))
	for i := 0; i < len(ct); i += aes.BlockSize { // ECB: each block on its own
		block.Decrypt(plain[i:i+aes.BlockSize], ct[i:i+aes.BlockSize])
	}
	n, ok := pkcs7Unpad(plain)
	if !ok {
		return nil, fmt.Errorf("%w: req_info padding is wrong (another key?)", wechatpay.ErrDecrypt)
	}
	return plain[:n], nil
}

// EncryptReqInfo is DecryptReqInfo's inverse, as WeChat encrypts req_info.
// The sandbox and tests use it.
func EncryptReqInfo(plain []byte, apiKey string) (string, error) {
	if apiKey == "" {
		return "", errEmptyKey
	}
	block, err := aes.NewCipher(reqInfoKey(apiKey))
	if err != nil {
		return "", err
	}
	pad := aes.BlockSize - len(plain)%aes.BlockSize
	buf := make([]byte, len(plain)+pad)
	copy(buf, plain)
	for i := len(plain); i < len(buf); i++ {
		buf[i] = byte(pad)
	}
	for i := 0; i < len(buf); i += aes.BlockSize {
		block.Encrypt(buf[i:i+aes.BlockSize], buf[i:i+aes.BlockSize])
	}
	return base64.StdEncoding.EncodeToString(buf), nil
}

// pkcs7Unpad returns the length of b without its PKCS #7 padding, and
// whether the padding is well formed (1 to 16 bytes, each equal to the
// count). It looks at the whole last block whatever the padding says, so
// its time does not depend on where the padding goes wrong.
func pkcs7Unpad(b []byte) (int, bool) {
	n := len(b)
	if n == 0 || n%aes.BlockSize != 0 {
		return 0, false
	}
	pad := int(b[n-1])
	good := subtle.ConstantTimeLessOrEq(1, pad) & subtle.ConstantTimeLessOrEq(pad, aes.BlockSize)
	for i := 0; i < aes.BlockSize; i++ {
		inPad := subtle.ConstantTimeLessOrEq(i+1, pad) // b[n-1-i] is a padding byte
		same := subtle.ConstantTimeByteEq(b[n-1-i], byte(pad))
		good &= (1 - inPad) | same
	}
	if good != 1 {
		return 0, false
	}
	return n - pad, true
}

// v2 refund statuses and what they are in payment.RefundStatus.
var v2RefundStatus = map[string]payment.RefundStatus{
	"SUCCESS":     payment.RefundSuccess,
	"CHANGE":      payment.RefundAbnormal, // 退款异常: the payer's card cannot take it
	"REFUNDCLOSE": payment.RefundClosed,
}

// refundSourcePortal is refund_request_source for a refund made in the
// merchant portal (商户平台) rather than through the API.
const refundSourcePortal = "VENDOR_PLATFORM"

// RefundNotification builds the payment.Notification of a v2 refund result
// from the outer params (appid, mch_id) and the decrypted inner XML. It
// requires a valid out_trade_no and out_refund_no, transaction_id,
// refund_id, refund_status SUCCESS, CHANGE (ABNORMAL) or REFUNDCLOSE
// (CLOSED), refund_fee and total_fee as positive integers in fen, and for
// SUCCESS a success_time (yyyy-MM-dd HH:mm:ss, Beijing time). ID is "v2r:"
// and the hex SHA-256 of the inner XML, so copies of one notification share
// it. Errors wrap wechatpay.ErrMalformed. It checks no ids: NotifyParser
// does.
func RefundNotification(outer map[string]string, inner []byte) (payment.Notification, error) {
	var n payment.Notification
	p, err := decodeFlat(inner, "root")
	if err != nil {
		return n, fmt.Errorf("v2 refund req_info: %w", err)
	}
	no, refundNo := p["out_trade_no"], p["out_refund_no"]
	switch {
	case !payment.ValidOutTradeNo(no):
		return n, fmt.Errorf("%w: v2 refund: invalid out_trade_no %q", wechatpay.ErrMalformed, wechatpay.Truncate(no, 40))
	case !payment.ValidOutRefundNo(refundNo):
		return n, fmt.Errorf("%w: v2 refund: invalid out_refund_no %q", wechatpay.ErrMalformed, wechatpay.Truncate(refundNo, 70))
	case p["transaction_id"] == "" || p["refund_id"] == "":
		return n, fmt.Errorf("%w: v2 refund without transaction_id or refund_id", wechatpay.ErrMalformed)
	}
	status, ok := v2RefundStatus[p["refund_status"]]
	if !ok {
		return n, fmt.Errorf("%w: v2 refund_status %q", wechatpay.ErrMalformed, wechatpay.Truncate(p["refund_status"], 32))
	}
	facts := &payment.RefundFacts{OutRefundNo: refundNo, RefundID: p["refund_id"], Status: status,
		FromPortal: p["refund_request_source"] == refundSourcePortal}
	if facts.AmountFen, err = wechatpay.ParseFen(p["refund_fee"]); err != nil {
		return n, fmt.Errorf("%w: v2 refund refund_fee: %v", wechatpay.ErrMalformed, err)
	}
	if facts.TotalFen, err = wechatpay.ParseFen(p["total_fee"]); err != nil {
		return n, fmt.Errorf("%w: v2 refund total_fee: %v", wechatpay.ErrMalformed, err)
	}
	if s := p["success_time"]; s != "" {
		t, err := time.ParseInLocation(refundTimeLayout, s, wechatpay.Beijing)
		if err != nil {
			return n, fmt.Errorf("%w: v2 refund success_time %q, want yyyy-MM-dd HH:mm:ss", wechatpay.ErrMalformed, wechatpay.Truncate(s, 32))
		}
		facts.SuccessTime = t
	} else if status == payment.RefundSuccess {
		return n, fmt.Errorf("%w: v2 refund SUCCESS without success_time", wechatpay.ErrMalformed)
	}
	sum := sha256.Sum256(inner)
	return payment.Notification{
		ID:            "v2r:" + hex.EncodeToString(sum[:]),
		Kind:          payment.KindRefund,
		Source:        payment.SourceV2,
		OutTradeNo:    no,
		TransactionID: p["transaction_id"],
		AppID:         outer["appid"],
		MchID:         outer["mch_id"],
		Refund:        facts,
	}, nil
}
