package apiv3

import (
	"context"
	"fmt"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/services/refunddomestic"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/wechatpay"
)

// ApplyRefund asks WeChat to refund req.AmountFen of the order
// req.OutTradeNo under req.OutRefundNo (POST /v3/refund/domestic/refunds,
// through the SDK's services/refunddomestic; signed, the answer verified).
// Asking again under the same out_refund_no is safe: WeChat refunds it
// once. A nil error means WeChat accepted the refund; the result comes
// later (notification or QueryRefund). Failures are:
//   - errors matching wechatpay.ErrNotEnough (NOT_ENOUGH: ask again much
//     later under the same number) or wechatpay.ErrRefundRefused (final:
//     USER_ACCOUNT_ABNORMAL, INVALID_REQUEST, PARAM_ERROR, NO_AUTH,
//     RESOURCE_NOT_EXISTS); both wrap the *wechatpay.APIError with WeChat's
//     code and message;
//   - retryable errors (5xx, 429, SYSTEM_ERROR, FREQUENCY_LIMITED, network,
//     timeouts) and answers that do not verify or parse: the refund may or
//     may not have been accepted, so query it before asking again;
//   - an error wrapping wechatpay.ErrMalformed, before any call, for a
//     request WeChat would refuse (numbers, amounts, reason).
func (c *Client) ApplyRefund(ctx context.Context, req payment.RefundRequest) (payment.RefundTrade, error) {
	const op = "v3 refund"
	if err := wechatpay.CheckRefundRequest(req); err != nil {
		return payment.RefundTrade{}, fmt.Errorf("wechatpay %s: %w", op, err)
	}
	currency := req.Currency
	if currency == "" {
		currency = payment.DefaultCurrency
	}
	body := refunddomestic.CreateRequest{
		OutTradeNo:  core.String(req.OutTradeNo),
		OutRefundNo: core.String(req.OutRefundNo),
		Amount: &refunddomestic.AmountReq{
			Refund: core.Int64(req.AmountFen), Total: core.Int64(req.TotalFen), Currency: core.String(currency),
		},
	}
	if req.Reason != "" {
		body.Reason = core.String(req.Reason)
	}
	if req.NotifyURL != "" {
		body.NotifyUrl = core.String(req.NotifyURL)
	}
	svc := refunddomestic.RefundsApiService{Client: c.api.Client}
	resp, result, err := svc.Create(ctx, body)
	if err != nil {
		return payment.RefundTrade{}, wechatpay.ClassifyRefundApply(callError(op, "refund", req.OutRefundNo, result, err))
	}
	rt, err := c.refundTrade(op, resp, req.OutRefundNo, result)
	if err != nil {
		return payment.RefundTrade{}, err
	}
	if rt.OutTradeNo != "" && rt.OutTradeNo != req.OutTradeNo {
		return payment.RefundTrade{}, &wechatpay.APIError{Op: op, HTTPStatus: statusOf(result), Code: wechatpay.CodeIDMismatch,
			Message: fmt.Sprintf("answer is about out_trade_no %q", wechatpay.Truncate(rt.OutTradeNo, 40))}
	}
	return rt, nil
}

// QueryRefund asks WeChat about the refund outRefundNo
// (GET /v3/refund/domestic/refunds/{out_refund_no}; signed, the answer
// verified). Its Status is SUCCESS, CLOSED, PROCESSING or ABNORMAL (the
// answer's "status" field, which the SDK's model reads right for these
// answers). Failures are an error matching wechatpay.ErrRefundNotExist for
// WeChat's RESOURCE_NOT_EXISTS (no refund under that number), and
// otherwise classified as for QueryOrder: 5xx, 429, SYSTEM_ERROR,
// FREQUENCY_LIMITED and network errors retryable; ID_MISMATCH for an
// answer about another refund; wechatpay.ErrBadSignature and
// wechatpay.ErrMalformed for answers that do not verify or parse.
func (c *Client) QueryRefund(ctx context.Context, outRefundNo string) (payment.RefundTrade, error) {
	const op = "v3 refund query"
	if !payment.ValidOutRefundNo(outRefundNo) {
		return payment.RefundTrade{}, fmt.Errorf("wechatpay %s: invalid out_refund_no %q: %w", op, wechatpay.Truncate(outRefundNo, 70), wechatpay.ErrMalformed)
	}
	svc := refunddomestic.RefundsApiService{Client: c.api.Client}
	resp, result, err := svc.QueryByOutRefundNo(ctx, refunddomestic.QueryByOutRefundNoRequest{OutRefundNo: core.String(outRefundNo)})
	if err != nil {
		return payment.RefundTrade{}, wechatpay.ClassifyRefundQuery(callError(op, "refund query", outRefundNo, result, err))
	}
	return c.refundTrade(op, resp, outRefundNo, result)
}

// refundTrade maps WeChat's verified refund answer, which must be about
// outRefundNo and carry a refund_id and a known status.
func (c *Client) refundTrade(op string, r *refunddomestic.Refund, outRefundNo string, result *core.APIResult) (payment.RefundTrade, error) {
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	if r == nil {
		return payment.RefundTrade{}, fmt.Errorf("wechatpay %s %s: empty answer: %w", op, outRefundNo, errRefundAnswer)
	}
	if got := str(r.OutRefundNo); got != outRefundNo {
		return payment.RefundTrade{}, &wechatpay.APIError{Op: op, HTTPStatus: statusOf(result), Code: wechatpay.CodeIDMismatch,
			Message: fmt.Sprintf("answer is about out_refund_no %q", wechatpay.Truncate(got, 70))}
	}
	rt := payment.RefundTrade{
		OutRefundNo: outRefundNo, RefundID: str(r.RefundId), OutTradeNo: str(r.OutTradeNo), TransactionID: str(r.TransactionId),
	}
	if r.Status != nil {
		rt.Status = payment.RefundStatus(*r.Status)
	}
	switch rt.Status {
	case payment.RefundSuccess, payment.RefundClosed, payment.RefundProcessing, payment.RefundAbnormal:
	default:
		return payment.RefundTrade{}, fmt.Errorf("wechatpay %s %s: answer: status %q: %w", op, outRefundNo,
			wechatpay.Truncate(string(rt.Status), 20), errRefundAnswer)
	}
	if rt.RefundID == "" {
		return payment.RefundTrade{}, fmt.Errorf("wechatpay %s %s: answer lacks refund_id: %w", op, outRefundNo, errRefundAnswer)
	}
	if r.Amount != nil {
		if r.Amount.Refund != nil {
			rt.AmountFen = *r.Amount.Refund
		}
		if r.Amount.Total != nil {
			rt.TotalFen = *r.Amount.Total
		}
	}
	if rt.AmountFen <= 0 {
		return payment.RefundTrade{}, fmt.Errorf("wechatpay %s %s: answer lacks amount.refund: %w", op, outRefundNo, errRefundAnswer)
	}
	if r.CreateTime != nil {
		rt.CreateTime = *r.CreateTime
	}
	if r.SuccessTime != nil {
		rt.SuccessTime = *r.SuccessTime
	}
	if rt.Status == payment.RefundSuccess && rt.SuccessTime.IsZero() {
		return payment.RefundTrade{}, fmt.Errorf("wechatpay %s %s: SUCCESS without success_time: %w", op, outRefundNo, errRefundAnswer)
	}
	return rt, nil
}

// errRefundAnswer wraps a refund answer that does not parse: a fault
// (wechatpay.ErrBadAnswer, which also matches ErrMalformed), never a
// decision.
var errRefundAnswer = wechatpay.ErrBadAnswer

func statusOf(result *core.APIResult) int {
	if result != nil && result.Response != nil {
		return result.Response.StatusCode
	}
	return 0
}
