package wechatpay

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/payflow/payflow/payment"
)

// Refund sentinels. The errors that match them also wrap the
// *APIError with WeChat's code and message (errors.As).
var (
	// ErrNotEnough: NOT_ENOUGH, the merchant's balance cannot pay the
	// refund now. Ask again much later under the same out_refund_no.
	ErrNotEnough = errors.New("wechatpay: refund balance not enough")
	// ErrRefundNotExist: RESOURCE_NOT_EXISTS answering a refund query:
	// WeChat has no refund under that out_refund_no.
	ErrRefundNotExist = errors.New("wechatpay: refund does not exist")
	// ErrRefundRefused: WeChat refused the refund for good
	// (USER_ACCOUNT_ABNORMAL, INVALID_REQUEST, PARAM_ERROR, NO_AUTH, or
	// RESOURCE_NOT_EXISTS answering an apply: the order is unpaid or
	// unknown). Nothing was refunded under that out_refund_no.
	ErrRefundRefused = errors.New("wechatpay: refund refused")
)

// v3 refund error codes (services/refunddomestic, api_refunds.go).
const (
	CodeNotEnough           = "NOT_ENOUGH"
	CodeResourceNotExists   = "RESOURCE_NOT_EXISTS"
	CodeUserAccountAbnormal = "USER_ACCOUNT_ABNORMAL"
	CodeInvalidRequest      = "INVALID_REQUEST"
	CodeParamError          = "PARAM_ERROR"
	CodeNoAuth              = "NO_AUTH"
)

// refundRefusals are the codes with which WeChat refuses a refund apply
// for good. SIGN_ERROR and MCH_NOT_EXISTS are left out on purpose: they
// say our configuration is wrong, not that this refund cannot be made,
// and are retried (and alerted on) rather than deciding anything.
var refundRefusals = map[string]bool{
	CodeUserAccountAbnormal: true,
	CodeInvalidRequest:      true,
	CodeParamError:          true,
	CodeNoAuth:              true,
	CodeResourceNotExists:   true,
}

// ClassifyRefundApply adds ErrNotEnough or ErrRefundRefused to an error
// of a refund apply that carries WeChat's answer (an *APIError that is not
// retryable) with such a code; any other error is returned as it is.
func ClassifyRefundApply(err error) error {
	var ae *APIError
	if err == nil || !errors.As(err, &ae) || ae.Retryable {
		return err
	}
	switch {
	case ae.Code == CodeNotEnough:
		return fmt.Errorf("%w: %w", ErrNotEnough, err)
	case refundRefusals[ae.Code]:
		return fmt.Errorf("%w: %w", ErrRefundRefused, err)
	}
	return err
}

// ClassifyRefundQuery adds ErrRefundNotExist to an error of a refund
// query that carries WeChat's RESOURCE_NOT_EXISTS; any other error is
// returned as it is.
func ClassifyRefundQuery(err error) error {
	var ae *APIError
	if err != nil && errors.As(err, &ae) && !ae.Retryable && ae.Code == CodeResourceNotExists {
		return fmt.Errorf("%w: %w", ErrRefundNotExist, err)
	}
	return err
}

// MaxRefundReason is WeChat's limit on a refund's reason (string(80)), in
// characters.
const MaxRefundReason = 80

// CheckRefundRequest rejects a refund request WeChat would refuse anyway
// (numbers, amounts, currency, reason, notify_url), with an error wrapping
// ErrMalformed; a client calls it before sending anything.
func CheckRefundRequest(req payment.RefundRequest) error {
	switch {
	case !payment.ValidOutTradeNo(req.OutTradeNo):
		return fmt.Errorf("invalid out_trade_no %q: %w", Truncate(req.OutTradeNo, 40), ErrMalformed)
	case !payment.ValidOutRefundNo(req.OutRefundNo):
		return fmt.Errorf("invalid out_refund_no %q: %w", Truncate(req.OutRefundNo, 70), ErrMalformed)
	case req.AmountFen <= 0 || req.TotalFen < req.AmountFen:
		return fmt.Errorf("%s: refund %d of a total of %d fen: %w", req.OutRefundNo, req.AmountFen, req.TotalFen, ErrMalformed)
	case req.Currency != "" && req.Currency != payment.DefaultCurrency:
		return fmt.Errorf("%s: currency %q is not CNY: %w", req.OutRefundNo, Truncate(req.Currency, 8), ErrMalformed)
	case !TextOK(req.Reason) || utf8.RuneCountInString(req.Reason) > MaxRefundReason:
		return fmt.Errorf("%s: reason must be UTF-8 text of at most %d characters: %w", req.OutRefundNo, MaxRefundReason, ErrMalformed)
	case !TextOK(req.NotifyURL):
		return fmt.Errorf("%s: notify_url is not UTF-8 text: %w", req.OutRefundNo, ErrMalformed)
	}
	return nil
}
