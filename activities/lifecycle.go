package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/store"
	"github.com/payflow/payflow/wechatpay"
)

// LoadOrderInput names the order.
type LoadOrderInput struct {
	OutTradeNo string `json:"out_trade_no"`
}

// LoadOrderResult is what an order's run starts from: the order (found,
// its status, amounts and lifetime), its refunds that are not final, and
// the worker's settings.
type LoadOrderResult struct {
	Found         bool           `json:"found"`
	Status        payment.Status `json:"status"`
	TransactionID string         `json:"transaction_id"`
	AmountFen     int64          `json:"amount_fen"`
	PaidFen       int64          `json:"paid_fen,omitempty"`
	RefundedFen   int64          `json:"refunded_fen,omitempty"`
	TradeType     string         `json:"trade_type"`
	CreatedAt     time.Time      `json:"created_at"`
	ExpiresAt     *time.Time     `json:"expires_at"`
	// OpenRefunds are the order's refunds not final yet (PROCESSING,
	// ABNORMAL), oldest first.
	OpenRefunds []payment.Refund `json:"open_refunds,omitempty"`
	Settings    Settings         `json:"settings"`
}

// LoadOrder reads the order; a missing order is an answer, not an error.
func (a *Activities) LoadOrder(ctx context.Context, in LoadOrderInput) (LoadOrderResult, error) {
	o, err := a.Orders.OrderRow(ctx, in.OutTradeNo)
	if isNotFound(err) {
		return LoadOrderResult{Settings: a.Settings}, nil
	}
	if err != nil {
		return LoadOrderResult{}, fmt.Errorf("load order %s: %w", in.OutTradeNo, err)
	}
	open, err := a.Orders.OpenRefunds(ctx, a.MchID, in.OutTradeNo)
	if err != nil {
		return LoadOrderResult{}, fmt.Errorf("load order %s: %w", in.OutTradeNo, err)
	}
	return LoadOrderResult{Found: true, Status: o.Status, TransactionID: o.TransactionID, AmountFen: o.AmountFen,
		PaidFen: o.PaidFen, RefundedFen: o.RefundedFen, TradeType: o.TradeType,
		CreatedAt: o.CreatedAt, ExpiresAt: o.ExpiresAt, OpenRefunds: open, Settings: a.Settings}, nil
}

// RefundableInput names the order.
type RefundableInput struct {
	OutTradeNo string `json:"out_trade_no"`
}

// RefundableResult is what is left to refund of the order's payment, and
// how many refunds it has.
type RefundableResult struct {
	LeftFen int64 `json:"left_fen"`
	Refunds int   `json:"refunds"`
}

// Refundable reads what is left to refund: the payment less its refunds
// that are not CLOSED or FAILED.
func (a *Activities) Refundable(ctx context.Context, in RefundableInput) (RefundableResult, error) {
	left, n, err := a.Orders.Refundable(ctx, a.MchID, in.OutTradeNo)
	if err := storeError("refundable", in.OutTradeNo, err); err != nil {
		return RefundableResult{}, err
	}
	return RefundableResult{LeftFen: left, Refunds: n}, nil
}

// PrepayInput names the order to prepay; everything else comes from it.
type PrepayInput struct {
	OutTradeNo string `json:"out_trade_no"`
}

// PrepayResult is what the client needs to pay.
type PrepayResult struct {
	Prepay payment.Prepay `json:"prepay"`
}

// Prepay asks WeChat to create the order (JSAPI or NATIVE) once. The
// request is derived from the stored order, so a retry sends the same
// parameters, which WeChat answers with the same prepay; the first answer is
// stored and returned to every later call. An order already prepaid with
// other parameters is refused, never prepaid twice.
func (a *Activities) Prepay(ctx context.Context, in PrepayInput) (PrepayResult, error) {
	o, err := a.Orders.OrderRow(ctx, in.OutTradeNo)
	if err := storeError("prepay", in.OutTradeNo, err); err != nil {
		return PrepayResult{}, err
	}
	req := payment.PrepayRequest{
		OutTradeNo: o.OutTradeNo, Description: o.Description, AmountFen: o.AmountFen, Currency: o.Currency,
		TradeType: o.TradeType, OpenID: o.OpenID, NotifyURL: a.NotifyURL,
	}
	if o.ExpiresAt != nil {
		req.TimeExpire = o.ExpiresAt.UTC()
	}
	hash, err := paramsHash(req)
	if err != nil {
		return PrepayResult{}, fmt.Errorf("prepay %s: %w", in.OutTradeNo, err)
	}
	stored, storedHash, found, err := a.Orders.GetPrepay(ctx, in.OutTradeNo)
	if err != nil {
		return PrepayResult{}, fmt.Errorf("prepay %s: %w", in.OutTradeNo, err)
	}
	if found {
		if storedHash != hash && storedHash != legacyParamsHash(req) {
			return PrepayResult{}, temporal.NewNonRetryableApplicationError(
				"prepay "+in.OutTradeNo+": already prepaid with different order parameters", ErrTypePrepayConflict, store.ErrPrepayConflict)
		}
		return PrepayResult{Prepay: stored}, nil
	}
	p, err := a.WeChat.Prepay(ctx, req)
	if errors.Is(err, wechatpay.ErrOrderPaid) {
		// Paid already (a prepay made before, whose answer was lost): not
		// a refusal; the workflow confirms the payment instead.
		return PrepayResult{}, temporal.NewNonRetryableApplicationError(
			"prepay "+in.OutTradeNo+": WeChat Pay says the order is already paid", ErrTypeOrderPaid, err)
	}
	if err != nil {
		// A fault is counted and retried (a rate limit or a fault that needs
		// a person waits longer), like the query's and the close's.
		if a.wechatError("prepay", err) || wechatpay.Retryable(err) {
			return PrepayResult{}, faultError(fmt.Errorf("prepay %s: %w", in.OutTradeNo, err))
		}
		return PrepayResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("prepay %s: WeChat Pay refused: %v", in.OutTradeNo, err), ErrTypePrepay, err)
	}
	saved, err := a.Orders.SavePrepay(ctx, in.OutTradeNo, hash, p)
	if errors.Is(err, store.ErrPrepayConflict) {
		return PrepayResult{}, temporal.NewNonRetryableApplicationError(
			"prepay "+in.OutTradeNo+": already prepaid with different order parameters", ErrTypePrepayConflict, err)
	}
	if err != nil {
		return PrepayResult{}, fmt.Errorf("prepay %s: %w", in.OutTradeNo, err)
	}
	return PrepayResult{Prepay: saved}, nil
}

// paramsHash identifies a prepay by the order's own parameters. The
// deployment's notify_url is left out: changing WECHATPAY_NOTIFY_URL must
// not make an order prepaid before look like a different one.
func paramsHash(req payment.PrepayRequest) (string, error) {
	req.NotifyURL, req.ClientIP = "", ""
	b, err := json.Marshal(req)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// legacyParamsHash is the fingerprint prepays were stored with before it
// left out the notify_url: an order prepaid then still matches itself.
func legacyParamsHash(req payment.PrepayRequest) string {
	b, _ := json.Marshal(req) // a struct of strings, ints and a time: never fails
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// CloseAtWeChatInput names the order to close at WeChat.
type CloseAtWeChatInput struct {
	OutTradeNo string `json:"out_trade_no"`
}

// CloseAtWeChatResult says whether WeChat knew the order.
type CloseAtWeChatResult struct {
	NotAtWeChat bool `json:"not_at_wechat"` // never prepaid there: nothing to close
}

// CloseAtWeChat closes the order at WeChat so it can no longer be paid.
// Closing twice is harmless; a paid order fails with ErrTypeOrderPaid so the
// workflow confirms the payment instead. Anything that is not WeChat's
// signed word (a fault, or a refusal such as closing too soon after the
// order was made) is a retryable error: the order stays open until WeChat
// has closed it.
func (a *Activities) CloseAtWeChat(ctx context.Context, in CloseAtWeChatInput) (CloseAtWeChatResult, error) {
	err := a.WeChat.CloseOrder(ctx, in.OutTradeNo)
	switch {
	case err == nil:
		return CloseAtWeChatResult{}, nil
	case errors.Is(err, wechatpay.ErrOrderNotExist):
		return CloseAtWeChatResult{NotAtWeChat: true}, nil
	case errors.Is(err, wechatpay.ErrOrderPaid):
		return CloseAtWeChatResult{}, temporal.NewNonRetryableApplicationError(
			"close "+in.OutTradeNo+": WeChat Pay says the order is paid", ErrTypeOrderPaid, err)
	}
	a.wechatError("close", err)
	return CloseAtWeChatResult{}, faultError(fmt.Errorf("close %s: %w", in.OutTradeNo, err))
}

// MarkClosedInput closes the order in our database.
type MarkClosedInput struct {
	OutTradeNo string      `json:"out_trade_no"`
	Reason     string      `json:"reason"`
	Key        payment.Key `json:"key"`
}

// MarkClosedResult is what the database found: closed, paid or review.
type MarkClosedResult struct {
	Outcome payment.ClosedOutcome `json:"outcome"`
}

// MarkClosed moves PENDING → CLOSED with its log row, once.
func (a *Activities) MarkClosed(ctx context.Context, in MarkClosedInput) (MarkClosedResult, error) {
	out, err := a.Orders.MarkClosed(ctx, in.OutTradeNo, in.Reason, in.Key)
	if err := storeError("mark closed", in.OutTradeNo, err); err != nil {
		return MarkClosedResult{}, err
	}
	if out == store.OutcomeClosed {
		a.Metrics.OrderFinal(string(payment.StatusClosed))
	}
	return MarkClosedResult{Outcome: out}, nil
}
