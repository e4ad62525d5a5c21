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

// RefundStore is the part of the store the refund activities use.
type RefundStore interface {
	OrderRow(ctx context.Context, outTradeNo string) (payment.Order, error)
	AcceptRefund(ctx context.Context, p store.AcceptRefundParams) (store.AcceptRefundResult, error)
	RefundAccepted(ctx context.Context, mchID, outRefundNo, refundID string, at time.Time) error
	MarkRefund(ctx context.Context, p store.MarkRefundParams) (store.MarkRefundResult, error)
	GetRefund(ctx context.Context, mchID, outTradeNo, outRefundNo string) (payment.Refund, error)
}

// RefundsAPI is WeChat's refund API (the v3 client, whatever
// WECHATPAY_API_VERSION says).
type RefundsAPI interface {
	ApplyRefund(ctx context.Context, req payment.RefundRequest) (payment.RefundTrade, error)
	QueryRefund(ctx context.Context, outRefundNo string) (payment.RefundTrade, error)
}

// Refunds are the refund activities of the order workflow. The worker
// builds one value with its dependencies and registers its methods.
type Refunds struct {
	Store     RefundStore
	WeChat    RefundsAPI // nil when refunds are unavailable (no v3 credentials)
	MchID     string
	NotifyURL string // WECHATPAY_REFUND_NOTIFY_URL: the notify_url of refund requests
	Now       func() time.Time
	Metrics   *metrics.Metrics // nil counts nothing
}

// Error types of the refund activities, all non-retryable: the request is
// refused before anything is sent to WeChat, or cannot be made at all.
// ErrTypeOrderNotFound (an unknown order) is shared with Activities.
const (
	ErrTypeRefundConflict      = "RefundConflict"      // out_refund_no used with another amount or order
	ErrTypeNotRefundable       = "NotRefundable"       // the order is not PAID (or REVIEW with a payment), or REFUNDED
	ErrTypeTooManyRefunds      = "TooManyRefunds"      // the order has 50 refunds
	ErrTypeExceedsPaid         = "ExceedsPaid"         // more than is left to refund
	ErrTypeRefundNotFound      = "RefundNotFound"      // we have no such refund
	ErrTypeInvalidRefund       = "InvalidRefund"       // the parameters cannot make a refund
	ErrTypeRefundQueryRejected = "RefundQueryRejected" // WeChat refused the refund query, or its answer was not about our refund
	ErrTypeRefundsUnavailable  = "RefundsUnavailable"  // no WeChat client for refunds: the v3 credentials are not configured
)

// Outcomes of ApplyRefund.
const (
	ApplyAccepted     = "accepted"      // WeChat accepted the refund (Trade holds its answer)
	ApplyNotEnough    = "not_enough"    // NOT_ENOUGH: the merchant's balance is short; ask again much later, same number
	ApplyRefused      = "refused"       // a final refusal (Code, Message): the refund is FAILED
	ApplyAmbiguous    = "ambiguous"     // a fault (5xx, 429, timeout, unverifiable answer, our configuration): query before asking again
	ApplyAlreadyFinal = "already_final" // the refund is final here; WeChat was not asked
)

// Outcomes of QueryRefund.
const (
	QueryFound    = "found"     // WeChat knows the refund (Trade)
	QueryNotFound = "not_found" // WeChat's signed RESOURCE_NOT_EXISTS: no refund under that number
)

// unavailable is the error of a call to WeChat without a refund client.
func (r *Refunds) unavailable(op, no string) error {
	return temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("%s %s: refunds need WeChat Pay API v3 credentials, which are not configured", op, no), ErrTypeRefundsUnavailable, nil)
}

func (r *Refunds) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// refundStoreError classifies a store error for Temporal: the refusals and
// a missing order or refund are final, anything else is retried.
func refundStoreError(op, no string, err error) error {
	nonRetryable := func(typ string) error {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s %s: %v", op, no, err), typ, err)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrRefundNotFound):
		return nonRetryable(ErrTypeRefundNotFound)
	case errors.Is(err, store.ErrNotFound):
		return nonRetryable(ErrTypeOrderNotFound)
	case errors.Is(err, store.ErrRefundConflict):
		return nonRetryable(ErrTypeRefundConflict)
	case errors.Is(err, store.ErrNotRefundable):
		return nonRetryable(ErrTypeNotRefundable)
	case errors.Is(err, store.ErrTooManyRefunds):
		return nonRetryable(ErrTypeTooManyRefunds)
	case errors.Is(err, store.ErrExceedsPaid):
		return nonRetryable(ErrTypeExceedsPaid)
	case errors.Is(err, store.ErrInvalidRefund):
		return nonRetryable(ErrTypeInvalidRefund)
	default:
		return fmt.Errorf("%s %s: %w", op, no, err)
	}
}

// AcceptRefundInput is a refund asked for through the API.
type AcceptRefundInput struct {
	OutTradeNo  string `json:"out_trade_no"`
	OutRefundNo string `json:"out_refund_no"`
	AmountFen   int64  `json:"amount_fen"`
	Reason      string `json:"reason,omitempty"`
	// AcceptedBy names this acceptance (the workflow run and update): if
	// the workflow task runs again after the refund was committed, the
	// same acceptance is still answered Created.
	AcceptedBy string `json:"accepted_by,omitempty"`
}

// AcceptRefundResult is the refund as recorded, and whether this call
// recorded it (false: the same refund was asked for before).
type AcceptRefundResult struct {
	Refund  payment.Refund `json:"refund"`
	Created bool           `json:"created"`
}

// AcceptRefund records an API refund (source api, PROCESSING) under the
// order's row lock, or finds the same one recorded before. Refusals are
// non-retryable errors of types ErrTypeRefundConflict,
// ErrTypeNotRefundable, ErrTypeTooManyRefunds, ErrTypeExceedsPaid,
// ErrTypeOrderNotFound and ErrTypeInvalidRefund; nothing is sent to WeChat.
func (r *Refunds) AcceptRefund(ctx context.Context, in AcceptRefundInput) (AcceptRefundResult, error) {
	res, err := r.Store.AcceptRefund(ctx, store.AcceptRefundParams{
		MchID: r.MchID, OutTradeNo: in.OutTradeNo, OutRefundNo: in.OutRefundNo, AmountFen: in.AmountFen,
		Reason: in.Reason, Source: payment.RefundSourceAPI, AcceptedBy: in.AcceptedBy,
	})
	if err := refundStoreError("accept refund", in.OutRefundNo, err); err != nil {
		return AcceptRefundResult{}, err
	}
	if res.Created {
		r.Metrics.RefundStatus(string(payment.RefundProcessing))
	}
	return AcceptRefundResult{Refund: res.Refund, Created: res.Created}, nil
}

// RecordPortalRefundInput is a refund this service did not ask for (made in
// the merchant portal), as a notification or a bill told of it, or as
// WeChat's refund query confirmed it.
type RecordPortalRefundInput struct {
	OutTradeNo  string               `json:"out_trade_no"`
	OutRefundNo string               `json:"out_refund_no"`
	AmountFen   int64                `json:"amount_fen"`
	RefundID    string               `json:"refund_id,omitempty"`
	Status      payment.RefundStatus `json:"status,omitempty"` // what is known; PROCESSING when empty
	SuccessTime time.Time            `json:"success_time,omitzero"`
	Detail      string               `json:"detail,omitempty"`
}

// RecordPortalRefundResult is the refund as recorded.
type RecordPortalRefundResult struct {
	Refund  payment.Refund `json:"refund"`
	Created bool           `json:"created"`
	// LimitsExceeded: the order was not refundable, had 50 refunds or not
	// enough left; the workflow should send it to REVIEW.
	LimitsExceeded bool `json:"limits_exceeded,omitempty"`
	// StatusChanged: Status was applied now (with its log row); OrderFrom
	// and OrderTo are then the order's status before and after (they
	// differ when it became REFUNDED or REVIEW).
	StatusChanged bool           `json:"status_changed,omitempty"`
	OrderFrom     payment.Status `json:"order_from,omitempty"`
	OrderTo       payment.Status `json:"order_to,omitempty"`
}

// RecordPortalRefund records a portal refund on its order (source
// merchant_portal) whatever the order's state, never failing on the
// limits; a Status other than PROCESSING is applied in the same
// transaction as MarkRefund would, also to a refund recorded before (so a
// retried or repeated record converges). A number already used for another
// amount or order is ErrTypeRefundConflict.
func (r *Refunds) RecordPortalRefund(ctx context.Context, in RecordPortalRefundInput) (RecordPortalRefundResult, error) {
	res, err := r.Store.AcceptRefund(ctx, store.AcceptRefundParams{
		MchID: r.MchID, OutTradeNo: in.OutTradeNo, OutRefundNo: in.OutRefundNo, AmountFen: in.AmountFen,
		Source: payment.RefundSourcePortal, RefundID: in.RefundID, Status: in.Status, SuccessTime: in.SuccessTime, Detail: in.Detail,
	})
	if err := refundStoreError("record portal refund", in.OutRefundNo, err); err != nil {
		return RecordPortalRefundResult{}, err
	}
	if res.Created {
		r.Metrics.RefundStatus(string(payment.RefundProcessing))
	}
	if res.StatusChanged {
		r.countOutcome(res.Refund, res.OrderFrom, res.OrderTo)
	}
	return RecordPortalRefundResult{Refund: res.Refund, Created: res.Created, LimitsExceeded: res.LimitsExceeded,
		StatusChanged: res.StatusChanged, OrderFrom: res.OrderFrom, OrderTo: res.OrderTo}, nil
}

// countOutcome counts a refund that changed to its status now, and its
// order's change.
func (r *Refunds) countOutcome(ref payment.Refund, from, to payment.Status) {
	r.Metrics.RefundStatus(string(ref.Status))
	if ref.Status == payment.RefundSuccess && ref.SuccessTime != nil {
		r.Metrics.RefundSucceeded(ref.SuccessTime.Sub(ref.CreatedAt))
	}
	if to != from && to != "" {
		r.Metrics.OrderFinal(string(to))
	}
}

// ApplyRefundInput names the refund to ask WeChat for.
type ApplyRefundInput struct {
	OutTradeNo  string `json:"out_trade_no"`
	OutRefundNo string `json:"out_refund_no"`
}

// ApplyRefundResult is WeChat's answer as an outcome the workflow branches
// on (ApplyAccepted, ApplyNotEnough, ApplyRefused, ApplyAmbiguous,
// ApplyAlreadyFinal).
type ApplyRefundResult struct {
	Outcome string              `json:"outcome"`
	Trade   payment.RefundTrade `json:"trade,omitzero"`    // accepted: WeChat's answer
	Code    string              `json:"code,omitempty"`    // not_enough, refused: WeChat's code
	Message string              `json:"message,omitempty"` // not_enough, refused: WeChat's message; ambiguous: what went wrong
	Refund  payment.Refund      `json:"refund"`            // the refund as stored before the call
}

// ApplyRefund asks WeChat for the refund under its out_refund_no, with the
// order's paid amount as the total and WECHATPAY_REFUND_NOTIFY_URL as the
// notify_url. Asking again under the same number is safe: WeChat refunds
// it once. WeChat's answers are outcomes, not errors: accepted (refund_id
// and accepted_at are recorded), not_enough, refused (with WeChat's code
// and message) or ambiguous (a 5xx, a 429, a timeout, an answer that does
// not verify, our configuration: the refund may or may not exist, so the
// workflow queries before asking again). A refund that is final here is
// not asked again (already_final). Errors: ErrTypeRefundNotFound and
// ErrTypeOrderNotFound; ErrTypeRefundsUnavailable without a v3 client; ErrTypeInvalidRefund for a portal refund (never
// asked for by us) or a request WeChat would refuse as malformed; store
// failures are retried.
func (r *Refunds) ApplyRefund(ctx context.Context, in ApplyRefundInput) (ApplyRefundResult, error) {
	ref, err := r.Store.GetRefund(ctx, r.MchID, in.OutTradeNo, in.OutRefundNo)
	if err := refundStoreError("apply refund", in.OutRefundNo, err); err != nil {
		return ApplyRefundResult{}, err
	}
	if ref.Status.Final() {
		return ApplyRefundResult{Outcome: ApplyAlreadyFinal, Refund: ref}, nil
	}
	if ref.Source != payment.RefundSourceAPI {
		return ApplyRefundResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("apply refund %s: a %s refund is WeChat's already, never asked for", in.OutRefundNo, ref.Source), ErrTypeInvalidRefund, nil)
	}
	order, err := r.Store.OrderRow(ctx, in.OutTradeNo)
	if err := refundStoreError("apply refund", in.OutRefundNo, err); err != nil {
		return ApplyRefundResult{}, err
	}
	req := payment.RefundRequest{
		OutTradeNo: in.OutTradeNo, OutRefundNo: in.OutRefundNo, AmountFen: ref.AmountFen, TotalFen: order.PaidFen,
		Currency: order.Currency, Reason: ref.Reason, NotifyURL: r.NotifyURL,
	}
	if err := wechatpay.CheckRefundRequest(req); err != nil {
		return ApplyRefundResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("apply refund %s: %v", in.OutRefundNo, err), ErrTypeInvalidRefund, err)
	}

	if r.WeChat == nil {
		return ApplyRefundResult{}, r.unavailable("apply refund", in.OutRefundNo)
	}
	trade, err := r.WeChat.ApplyRefund(ctx, req)
	res := ApplyRefundResult{Refund: ref}
	var ae *wechatpay.APIError
	switch {
	case err == nil:
		if err := r.Store.RefundAccepted(ctx, r.MchID, in.OutRefundNo, trade.RefundID, r.now()); err != nil {
			// Retried: asking again under the same number is safe.
			return ApplyRefundResult{}, refundStoreError("refund accepted", in.OutRefundNo, err)
		}
		res.Outcome, res.Trade = ApplyAccepted, trade
	// WeChat's refund answers first: PARAM_ERROR, INVALID_REQUEST and
	// NO_AUTH refuse this refund (FAILED), even where a fault
	// classification of order calls would call them configuration faults.
	case errors.Is(err, wechatpay.ErrNotEnough) && errors.As(err, &ae):
		res.Outcome, res.Code, res.Message = ApplyNotEnough, ae.Code, ae.Message
	case errors.Is(err, wechatpay.ErrRefundRefused) && errors.As(err, &ae):
		res.Outcome, res.Code, res.Message = ApplyRefused, ae.Code, ae.Message
	default:
		// Anything else decides nothing: a fault, an answer that cannot be
		// trusted, or our own configuration (SIGN_ERROR, MCH_NOT_EXISTS).
		r.fault("refund", err)
		res.Outcome, res.Message = ApplyAmbiguous, wechatpay.Truncate(err.Error(), 300)
	}
	r.Metrics.RefundApplied(res.Outcome)
	return res, nil
}

// QueryRefundInput names the refund to ask WeChat about; OutTradeNo, when
// given, is checked against WeChat's answer.
type QueryRefundInput struct {
	OutTradeNo  string `json:"out_trade_no,omitempty"`
	OutRefundNo string `json:"out_refund_no"`
}

// QueryRefundResult is WeChat's answer: QueryFound with Trade, or
// QueryNotFound.
type QueryRefundResult struct {
	Outcome string              `json:"outcome"`
	Trade   payment.RefundTrade `json:"trade,omitzero"`
	// Mismatch says how WeChat's refund differs from ours (another order or
	// amount under our number); the order needs a person (REVIEW).
	Mismatch string `json:"mismatch,omitempty"`
}

// QueryRefund asks WeChat's refund query about the refund. A signed
// RESOURCE_NOT_EXISTS is QueryNotFound. Faults (wechatpay.Fault: network,
// 5xx, 429, SYSTEM_ERROR, an answer that does not verify, our
// configuration) are counted and returned as retryable errors; any other
// signed refusal of the query is a non-retryable
// ErrTypeRefundQueryRejected.
func (r *Refunds) QueryRefund(ctx context.Context, in QueryRefundInput) (QueryRefundResult, error) {
	if r.WeChat == nil {
		return QueryRefundResult{}, r.unavailable("query refund", in.OutRefundNo)
	}
	trade, err := r.WeChat.QueryRefund(ctx, in.OutRefundNo)
	switch {
	case err == nil:
	case errors.Is(err, wechatpay.ErrRefundNotExist):
		return QueryRefundResult{Outcome: QueryNotFound}, nil
	case r.fault("refund_query", err):
		return QueryRefundResult{}, fmt.Errorf("query refund %s: %w", in.OutRefundNo, err)
	default:
		return QueryRefundResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("query refund %s: %v", in.OutRefundNo, err), ErrTypeRefundQueryRejected, err)
	}
	res := QueryRefundResult{Outcome: QueryFound, Trade: trade}
	if in.OutTradeNo != "" {
		ours, err := r.Store.GetRefund(ctx, r.MchID, in.OutTradeNo, in.OutRefundNo)
		switch {
		case errors.Is(err, store.ErrNotFound):
			// Not recorded yet (a portal refund being learnt of): nothing to compare.
		case err != nil:
			return QueryRefundResult{}, fmt.Errorf("query refund %s: %w", in.OutRefundNo, err)
		case trade.OutTradeNo != "" && trade.OutTradeNo != in.OutTradeNo:
			res.Mismatch = fmt.Sprintf("WeChat's refund %s is of order %s", in.OutRefundNo, trade.OutTradeNo)
		case trade.AmountFen != ours.AmountFen:
			res.Mismatch = fmt.Sprintf("WeChat's refund %s is of %d fen, ours of %d", in.OutRefundNo, trade.AmountFen, ours.AmountFen)
		}
	}
	return res, nil
}

// fault reports whether err is a fault (wechatpay.Fault: no trustworthy
// answer, nothing decided on it) and counts it as one of call.
func (r *Refunds) fault(call string, err error) bool {
	kind, ok := wechatpay.Fault(err)
	if ok {
		r.Metrics.WeChatFault(call, kind)
	}
	return ok
}

// MarkRefundInput is what WeChat said about a refund (refund query,
// confirming a notification), or FAILED for a refused refund.
type MarkRefundInput struct {
	OutRefundNo string               `json:"out_refund_no"`
	Status      payment.RefundStatus `json:"status"` // SUCCESS, CLOSED, ABNORMAL, FAILED
	RefundID    string               `json:"refund_id,omitempty"`
	SuccessTime time.Time            `json:"success_time,omitzero"`
	Detail      string               `json:"detail,omitempty"` // FAILED: WeChat's code and message; ABNORMAL: why
}

// MarkRefundResult is what the database made of it.
type MarkRefundResult struct {
	Changed   bool           `json:"changed"` // false: already so, or already final
	Refund    payment.Refund `json:"refund"`
	OrderFrom payment.Status `json:"order_from"`
	OrderTo   payment.Status `json:"order_to"` // REFUNDED once the SUCCESS refunds add up to what was paid
	Exceeded  bool           `json:"exceeded,omitempty"`
}

// MarkRefund moves a refund that is not final to Status with one order log
// row, and on SUCCESS adds it to the order's refunded amount (REFUNDED
// when all was refunded), all in one transaction; a repeat changes
// nothing. It counts refunds by status, the time to SUCCESS and the
// order's REFUNDED (or REVIEW) when this call changed them.
func (r *Refunds) MarkRefund(ctx context.Context, in MarkRefundInput) (MarkRefundResult, error) {
	res, err := r.Store.MarkRefund(ctx, store.MarkRefundParams{
		MchID: r.MchID, OutRefundNo: in.OutRefundNo, Status: in.Status, RefundID: in.RefundID,
		SuccessTime: in.SuccessTime, Detail: in.Detail,
	})
	if err := refundStoreError("mark refund", in.OutRefundNo, err); err != nil {
		return MarkRefundResult{}, err
	}
	if res.Changed {
		r.countOutcome(res.Refund, res.OrderFrom, res.OrderTo)
	}
	return MarkRefundResult{Changed: res.Changed, Refund: res.Refund, OrderFrom: res.OrderFrom, OrderTo: res.OrderTo,
		Exceeded: res.Exceeded}, nil
}
