// Package activities holds the payment workflow's side effects: asking
// WeChat Pay, checking amounts against our order and writing the order's
// status and log. Every activity is safe to run more than once: writes carry
// an idempotency key that the database enforces.
package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/payflow/payflow/metrics"
	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/store"
	"github.com/payflow/payflow/wechatpay"
)

// Orders is the part of the store the activities use.
type Orders interface {
	OrderRow(ctx context.Context, outTradeNo string) (payment.Order, error)
	MarkPaid(ctx context.Context, p store.MarkPaidParams) (store.PaidOutcome, error)
	MarkReview(ctx context.Context, p store.MarkReviewParams) (store.ReviewOutcome, error)
	MarkExamined(ctx context.Context, ns []payment.Notification) error
	ResolveReview(ctx context.Context, outTradeNo string, to payment.Status, remarks string, key payment.Key) (bool, payment.Status, error)
	OpenRefunds(ctx context.Context, mchID, outTradeNo string) ([]payment.Refund, error)
	Refundable(ctx context.Context, mchID, outTradeNo string) (left int64, refunds int, err error)
	AppendLog(ctx context.Context, outTradeNo, remarks string, idemKey payment.Key) (bool, error)
	RecordNotification(ctx context.Context, n payment.Notification, outcome payment.NotificationOutcome) (bool, error)
	MarkClosed(ctx context.Context, outTradeNo, reason string, idemKey payment.Key) (store.ClosedOutcome, error)
	GetPrepay(ctx context.Context, outTradeNo string) (payment.Prepay, string, bool, error)
	SavePrepay(ctx context.Context, outTradeNo, paramsHash string, p payment.Prepay) (payment.Prepay, error)
}

// WeChat is WeChat Pay's API as the activities use it (v2 or v3 client).
type WeChat interface {
	QueryOrder(ctx context.Context, outTradeNo string) (payment.Trade, error)
	Prepay(ctx context.Context, req payment.PrepayRequest) (payment.Prepay, error)
	CloseOrder(ctx context.Context, outTradeNo string) error
}

// Activities are the payment workflow's activities. The worker builds one
// value with its dependencies and registers its methods.
type Activities struct {
	Orders    Orders
	WeChat    WeChat
	AppID     string // our merchant's app id: a trade for another is not ours
	MchID     string
	NotifyURL string // the notify_url put in prepay requests
	Now       func() time.Time
	Metrics   *metrics.Metrics // counts final statuses; nil counts nothing
	// Settings are the worker's settings a run works with (LoadOrder
	// hands them to it).
	Settings Settings
}

// Settings are the worker's settings an order's run works with. LoadOrder
// returns them, so a run keeps the ones it started with.
type Settings struct {
	QueryAfter       time.Duration `json:"query_after,omitempty"`        // ORDER_QUERY_AFTER
	OrderTimeout     time.Duration `json:"order_timeout,omitempty"`      // ORDER_TIMEOUT, for orders stored without an expiry
	RefundQueryAfter time.Duration `json:"refund_query_after,omitempty"` // REFUND_QUERY_AFTER
}

// Error types the workflow tells apart. They are listed as non-retryable
// where retrying cannot help.
const (
	ErrTypeOrderNotExist = "OrderNotExist"  // WeChat knows no such order
	ErrTypeQueryRejected = "QueryRejected"  // kept for recorded histories: no activity returns it since faults are retried
	ErrTypeOrderNotFound = "OrderNotFound"  // we have no such order
	ErrTypePrepay        = "PrepayRejected" // WeChat refused the prepay, or it would differ from the first
	ErrTypeOrderPaid     = "OrderPaid"      // WeChat will not close or prepay: the order is paid
	// ErrTypePrepayConflict: the order was prepaid before with other order
	// parameters; what was prepaid may still be paid, so nothing closes.
	ErrTypePrepayConflict = "PrepayConflict"
)

func (a *Activities) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// wechatError classifies a WeChat call's error for Temporal, in one place:
// a fault (no trustworthy answer: the wire, 5xx, 429, an unsigned or badly
// signed answer, our keys, clock or configuration) is counted and retried,
// never decided on; WeChat's signed refusals are returned as they are for
// the caller to map.
func (a *Activities) wechatError(call string, err error) (fault bool) {
	kind, ok := wechatpay.Fault(err)
	if ok {
		a.Metrics.WeChatFault(call, kind)
	}
	return ok
}

// ErrTypeWeChatFault types a WeChat call that got no trustworthy answer and
// must wait longer than the usual backoff before the next attempt.
const ErrTypeWeChatFault = "WeChatFault"

// faultError is err as a retryable error; a rate limit or a fault that
// needs a person (our clock, keys or configuration) waits at least what
// wechatpay.RetryAfter says before Temporal tries again.
func faultError(err error) error {
	d := wechatpay.RetryAfter(err)
	if d <= 0 {
		return err
	}
	return temporal.NewApplicationErrorWithOptions(err.Error(), ErrTypeWeChatFault,
		temporal.ApplicationErrorOptions{NextRetryDelay: d, Cause: err})
}

// isNotFound lets a caller treat a missing order as an answer, not an error.
func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// storeError classifies a store error for Temporal, in one place: a missing
// order is final (ErrTypeOrderNotFound, not retried); anything else is
// wrapped with the step's name and retried. nil stays nil.
func storeError(op, outTradeNo string, err error) error {
	switch {
	case err == nil:
		return nil
	case isNotFound(err):
		return temporal.NewNonRetryableApplicationError(op+" "+outTradeNo+": order not found", ErrTypeOrderNotFound, err)
	default:
		return fmt.Errorf("%s %s: %w", op, outTradeNo, err)
	}
}
